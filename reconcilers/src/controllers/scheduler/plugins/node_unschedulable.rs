//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods
//! that tolerate `node.kubernetes.io/unschedulable:NoSchedule`.

use k8s_openapi::api::core::v1::Taint;
use schemas::object::tolerates;

use crate::controllers::scheduler::cache::NodeInfo;
use crate::controllers::scheduler::framework::{Code, Cycle, Plugin, PreFilter, Rejection};

/// kube-scheduler's reason.
pub const REASON: &str = "node(s) were unschedulable";
/// The taint a cordoned node carries.
pub const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

/// The plugin.
pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn pre_filter(&self, _cx: &mut Cycle<'_>) -> PreFilter {
        PreFilter::Run
    }

    fn filter(&self, cx: &Cycle<'_>, node: &NodeInfo) -> Result<(), Rejection> {
        if !node.unschedulable {
            return Ok(());
        }
        let taint = Taint {
            key: TAINT_KEY.into(),
            value: None,
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let tolerated = cx
            .pod
            .spec()
            .tolerations
            .iter()
            .flatten()
            .any(|t| tolerates(t, &taint));
        if tolerated {
            Ok(())
        } else {
            Err(Rejection::new(
                self.name(),
                Code::UnschedulableAndUnresolvable,
                REASON,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::plugins::testing::{cache, filter, node, pod};
    use serde_json::json;

    #[test]
    fn cordoned_nodes_take_only_tolerating_pods() {
        let c = cache(
            vec![
                node("open", json!({}), json!({})),
                node(
                    "cordoned",
                    json!({}),
                    json!({"spec": {"unschedulable": true}}),
                ),
            ],
            vec![],
        );
        let cases = [
            (json!({}), vec![None, Some(REASON.to_string())]),
            (
                json!({"tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]}),
                vec![None, None],
            ),
            (
                json!({"tolerations": [{"operator": "Exists"}]}),
                vec![None, None],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                filter(&NodeUnschedulable, &pod("p", json!({}), spec.clone()), &c),
                want,
                "{spec}"
            );
        }
    }
}
