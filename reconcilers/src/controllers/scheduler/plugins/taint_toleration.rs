//! TaintToleration: nodes with a `NoSchedule` or `NoExecute` taint the pod
//! does not tolerate are filtered out; nodes with more untolerated
//! `PreferNoSchedule` taints score lower.

use k8s_openapi::api::core::v1::{Taint, Toleration};
use schemas::object::tolerates;

use crate::controllers::scheduler::cache::NodeInfo;
use crate::controllers::scheduler::framework::{
    Code, Cycle, Plugin, PreFilter, Rejection, default_normalize,
};

/// The plugin.
pub struct TaintToleration;

/// kube-scheduler's reason for an untolerated taint.
pub fn reason(taint: &Taint) -> String {
    format!(
        "node(s) had untolerated taint {{{}: {}}}",
        taint.key,
        taint.value.as_deref().unwrap_or("")
    )
}

/// The first taint with one of `effects` that no toleration tolerates.
pub fn first_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effects: &[&str],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn pre_filter(&self, _cx: &mut Cycle<'_>) -> PreFilter {
        PreFilter::Run
    }

    fn filter(&self, cx: &Cycle<'_>, node: &NodeInfo) -> Result<(), Rejection> {
        if node.taints.is_empty() {
            return Ok(());
        }
        let tolerations = cx.pod.spec().tolerations.as_deref().unwrap_or_default();
        match first_untolerated(&node.taints, tolerations, &["NoSchedule", "NoExecute"]) {
            Some(t) => Err(Rejection::new(
                self.name(),
                Code::UnschedulableAndUnresolvable,
                reason(t),
            )),
            None => Ok(()),
        }
    }

    fn pre_score(&self, _cx: &mut Cycle<'_>, nodes: &[&NodeInfo]) -> bool {
        nodes
            .iter()
            .any(|n| n.taints.iter().any(|t| t.effect == "PreferNoSchedule"))
    }

    /// The number of untolerated `PreferNoSchedule` taints.
    fn score(&self, cx: &Cycle<'_>, node: &NodeInfo) -> i64 {
        let tolerations: Vec<&Toleration> = cx
            .pod
            .spec()
            .tolerations
            .iter()
            .flatten()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .collect();
        node.taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule")
            .filter(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
            .count() as i64
    }

    fn normalize(&self, _cx: &Cycle<'_>, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::plugins::testing::{cache, filter, node, pod, scores};
    use serde_json::{Value, json};

    #[test]
    fn untolerated_taints_filter_with_kubectls_wording() {
        let c = cache(
            vec![
                node("plain", json!({}), json!({})),
                node(
                    "gpu",
                    json!({}),
                    json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
                ),
                node(
                    "dying",
                    json!({}),
                    json!({"spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]}}),
                ),
                node(
                    "soft",
                    json!({}),
                    json!({"spec": {"taints": [{"key": "x", "effect": "PreferNoSchedule"}]}}),
                ),
            ],
            vec![],
        );
        let gpu = Some("node(s) had untolerated taint {dedicated: gpu}".to_string());
        let dying =
            Some("node(s) had untolerated taint {node.kubernetes.io/unreachable: }".to_string());
        let cases: Vec<(Value, Vec<Option<String>>)> = vec![
            (json!({}), vec![None, gpu.clone(), dying.clone(), None]),
            (
                json!({"tolerations": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
                vec![None, None, dying.clone(), None],
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
                vec![None, None, dying.clone(), None],
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "value": "cpu"}]}),
                vec![None, gpu.clone(), dying.clone(), None],
            ),
            (
                json!({"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}),
                vec![None, gpu.clone(), None, None],
            ),
            (
                json!({"tolerations": [{"operator": "Exists"}]}),
                vec![None, None, None, None],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                filter(&TaintToleration, &pod("p", json!({}), spec.clone()), &c),
                want,
                "{spec}"
            );
        }
    }

    #[test]
    fn prefer_no_schedule_lowers_the_score() {
        let c = cache(
            vec![
                node("clean", json!({}), json!({})),
                node(
                    "one",
                    json!({}),
                    json!({"spec": {"taints": [{"key": "a", "effect": "PreferNoSchedule"}]}}),
                ),
                node(
                    "two",
                    json!({}),
                    json!({"spec": {"taints": [{"key": "a", "effect": "PreferNoSchedule"}, {"key": "b", "effect": "PreferNoSchedule"}]}}),
                ),
            ],
            vec![],
        );
        assert_eq!(
            scores(&TaintToleration, &pod("p", json!({}), json!({})), &c),
            Some(vec![100, 50, 0])
        );
        let tolerant = pod(
            "q",
            json!({}),
            json!({"tolerations": [{"key": "b", "operator": "Exists", "effect": "PreferNoSchedule"}]}),
        );
        assert_eq!(
            scores(&TaintToleration, &tolerant, &c),
            Some(vec![100, 0, 0])
        );
    }
}
