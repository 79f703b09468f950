//! NodePorts: a pod's host ports must be free on the node (same port and
//! protocol on the same IP, or on `0.0.0.0`, conflict).

use crate::controllers::scheduler::cache::NodeInfo;
use crate::controllers::scheduler::framework::{Code, Cycle, Plugin, PreFilter, Rejection};

/// kube-scheduler's reason.
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// The plugin.
pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    fn pre_filter(&self, cx: &mut Cycle<'_>) -> PreFilter {
        if cx.pod.host_ports.is_empty() {
            PreFilter::Skip
        } else {
            PreFilter::Run
        }
    }

    fn filter(&self, cx: &Cycle<'_>, node: &NodeInfo) -> Result<(), Rejection> {
        let conflict = cx
            .pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| want.conflicts(used)));
        if conflict {
            Err(Rejection::new(self.name(), Code::Unschedulable, REASON))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::plugins::testing::{cache, filter, node, pod};
    use serde_json::{Value, json};

    fn ports(p: Value) -> Value {
        json!({"containers": [{"name": "c", "ports": p}]})
    }

    #[test]
    fn host_ports_conflict_by_ip_protocol_and_port() {
        let c = cache(
            vec![
                node("a", json!({}), json!({})),
                node("b", json!({}), json!({})),
            ],
            vec![
                (
                    pod(
                        "x",
                        json!({}),
                        ports(json!([{"containerPort": 80, "hostPort": 8080}])),
                    ),
                    "a",
                ),
                (
                    pod(
                        "y",
                        json!({}),
                        ports(
                            json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}]),
                        ),
                    ),
                    "b",
                ),
            ],
        );
        let no = Some(REASON.to_string());
        let cases: Vec<(Value, Vec<Option<String>>)> = vec![
            (
                ports(json!([{"containerPort": 80, "hostPort": 8080}])),
                vec![no.clone(), None],
            ),
            (
                ports(json!([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}])),
                vec![None, None],
            ),
            (ports(json!([{"containerPort": 80}])), vec![None, None]),
            (
                ports(
                    json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.2"}]),
                ),
                vec![None, None],
            ),
            (
                ports(json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP"}])),
                vec![None, no.clone()],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                filter(&NodePorts, &pod("p", json!({}), spec.clone()), &c),
                want,
                "{spec}"
            );
        }
    }
}
