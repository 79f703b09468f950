//! NodeAffinity: `nodeSelector` and required node affinity filter nodes
//! (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt` on labels; `In`,
//! `NotIn` on `metadata.name`); preferred node affinity scores them by the
//! weights of the terms they match.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

use crate::controllers::scheduler::cache::NodeInfo;
use crate::controllers::scheduler::framework::{
    Code, Cycle, Plugin, PreFilter, Rejection, default_normalize,
};

/// kube-scheduler's reason.
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

/// The plugin.
pub struct NodeAffinity;

fn requirement_matches(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let value = labels.get(&r.key);
    let as_int = |s: &str| s.trim().parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(want)) = (
                value.and_then(|v| as_int(v)),
                values.first().and_then(|v| as_int(v)),
            ) else {
                return false;
            };
            if values.len() != 1 {
                return false;
            }
            if r.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

fn field_matches(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    if r.key != "metadata.name" {
        return false;
    }
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => values.iter().any(|v| v == node_name),
        "NotIn" => !values.iter().any(|v| v == node_name),
        _ => false,
    }
}

/// Whether `node` satisfies one term (an empty term matches nothing).
pub fn term_matches(t: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    term_matches_node(t, &node.name, node.labels())
}

/// Whether the node `name` with `labels` satisfies one term (an empty term
/// matches nothing).
pub fn term_matches_node(
    t: &NodeSelectorTerm,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_matches(r, labels))
        && fields.iter().all(|r| field_matches(r, name))
}

/// Whether `node` satisfies the pod's `nodeSelector` and required node affinity.
pub fn required_matches(spec: &PodSpec, node: &NodeInfo) -> bool {
    required_matches_node(spec, &node.name, node.labels())
}

/// Whether the node `name` with `labels` satisfies the pod's `nodeSelector`
/// and required node affinity (`GetRequiredNodeAffinity(pod).Match(node)`;
/// the DaemonSet controller asks this of every node).
pub fn required_matches_node(
    spec: &PodSpec,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    if !selector_ok {
        return false;
    }
    match spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        }) {
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches_node(t, name, labels)),
        None => true,
    }
}

fn has_required(spec: &PodSpec) -> bool {
    spec.node_selector.as_ref().is_some_and(|s| !s.is_empty())
        || spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some()
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn pre_filter(&self, cx: &mut Cycle<'_>) -> PreFilter {
        if has_required(cx.pod.spec()) {
            PreFilter::Run
        } else {
            PreFilter::Skip
        }
    }

    fn filter(&self, cx: &Cycle<'_>, node: &NodeInfo) -> Result<(), Rejection> {
        if required_matches(cx.pod.spec(), node) {
            Ok(())
        } else {
            Err(Rejection::new(
                self.name(),
                Code::UnschedulableAndUnresolvable,
                REASON,
            ))
        }
    }

    fn pre_score(&self, cx: &mut Cycle<'_>, _nodes: &[&NodeInfo]) -> bool {
        cx.pod
            .spec()
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some_and(|p| !p.is_empty())
    }

    fn score(&self, cx: &Cycle<'_>, node: &NodeInfo) -> i64 {
        cx.pod
            .spec()
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|p| p.weight != 0 && term_matches(&p.preference, node))
            .map(|p| i64::from(p.weight))
            .sum()
    }

    fn normalize(&self, _cx: &Cycle<'_>, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::plugins::testing::{cache, filter, node, pod, scores};
    use serde_json::{Value, json};

    fn required(exprs: Value) -> Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": exprs}]}}}})
    }

    #[test]
    fn every_operator_filters_as_kubernetes() {
        let c = cache(
            vec![
                node(
                    "a",
                    json!({"zone": "z1", "cores": "8", "ssd": "true"}),
                    json!({}),
                ),
                node("b", json!({"zone": "z2", "cores": "2"}), json!({})),
                node("c", json!({}), json!({})),
            ],
            vec![],
        );
        let no = Some(REASON.to_string());
        let cases: Vec<(Value, Vec<Option<String>>)> = vec![
            (
                json!({"nodeSelector": {"zone": "z1"}}),
                vec![None, no.clone(), no.clone()],
            ),
            (
                required(json!([{"key": "zone", "operator": "In", "values": ["z1", "z2"]}])),
                vec![None, None, no.clone()],
            ),
            (
                required(json!([{"key": "zone", "operator": "NotIn", "values": ["z1"]}])),
                vec![no.clone(), None, None],
            ),
            (
                required(json!([{"key": "ssd", "operator": "Exists"}])),
                vec![None, no.clone(), no.clone()],
            ),
            (
                required(json!([{"key": "ssd", "operator": "DoesNotExist"}])),
                vec![no.clone(), None, None],
            ),
            (
                required(json!([{"key": "cores", "operator": "Gt", "values": ["4"]}])),
                vec![None, no.clone(), no.clone()],
            ),
            (
                required(json!([{"key": "cores", "operator": "Lt", "values": ["4"]}])),
                vec![no.clone(), None, no.clone()],
            ),
            // requirements in a term are ANDed
            (
                required(
                    json!([{"key": "zone", "operator": "Exists"}, {"key": "cores", "operator": "Lt", "values": ["4"]}]),
                ),
                vec![no.clone(), None, no.clone()],
            ),
            // terms are ORed; an empty term matches nothing
            (
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {}, {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}]}}}}),
                vec![no.clone(), None, None],
            ),
            // nodeSelector and affinity must both hold
            (
                {
                    let mut v = required(json!([{"key": "zone", "operator": "Exists"}]));
                    v["nodeSelector"] = json!({"cores": "2"});
                    v
                },
                vec![no.clone(), None, no.clone()],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                filter(&NodeAffinity, &pod("p", json!({}), spec.clone()), &c),
                want,
                "{spec}"
            );
        }
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let c = cache(
            vec![
                node("a", json!({"zone": "z1", "disk": "ssd"}), json!({})),
                node("b", json!({"zone": "z1"}), json!({})),
                node("c", json!({}), json!({})),
            ],
            vec![],
        );
        let p = pod(
            "p",
            json!({}),
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 20, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}},
                {"weight": 60, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}
            ]}}}),
        );
        assert_eq!(scores(&NodeAffinity, &p, &c), Some(vec![100, 25, 0]));
        assert_eq!(
            scores(&NodeAffinity, &pod("q", json!({}), json!({})), &c),
            None
        );
    }
}
