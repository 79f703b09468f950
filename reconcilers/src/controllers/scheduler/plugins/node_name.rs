//! NodeName: a pod that names its node fits only there.

use crate::controllers::scheduler::cache::NodeInfo;
use crate::controllers::scheduler::framework::{Code, Cycle, Plugin, PreFilter, Rejection};

/// kube-scheduler's reason.
pub const REASON: &str = "node(s) didn't match the requested node name";

/// The plugin.
pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    fn pre_filter(&self, cx: &mut Cycle<'_>) -> PreFilter {
        match cx.pod.spec().node_name.as_deref() {
            Some(n) if !n.is_empty() => PreFilter::Run,
            _ => PreFilter::Skip,
        }
    }

    fn filter(&self, cx: &Cycle<'_>, node: &NodeInfo) -> Result<(), Rejection> {
        match cx.pod.spec().node_name.as_deref() {
            Some(n) if !n.is_empty() && n != node.name => Err(Rejection::new(
                self.name(),
                Code::UnschedulableAndUnresolvable,
                REASON,
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::plugins::testing::{cache, filter, node, pod};
    use serde_json::json;

    #[test]
    fn only_the_named_node_fits() {
        let c = cache(
            vec![
                node("a", json!({}), json!({})),
                node("b", json!({}), json!({})),
            ],
            vec![],
        );
        let cases = [
            (json!({}), vec![None, None]),
            (
                json!({"nodeName": "b"}),
                vec![Some(REASON.to_string()), None],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                filter(&NodeName, &pod("p", json!({}), spec.clone()), &c),
                want,
                "{spec}"
            );
        }
    }
}
