//! InterPodAffinity: required pod affinity (a matching pod must run in the
//! node's topology domain), required anti-affinity (none may, in either
//! direction: existing pods' anti-affinity protects them too), and the
//! preferred terms scored by weight — the incoming pod's and, symmetrically,
//! the existing pods' terms that select it.

use std::collections::HashMap;

use crate::controllers::scheduler::cache::NodeInfo;
use crate::controllers::scheduler::framework::{
    Code, Cycle, MAX_NODE_SCORE, Plugin, PreFilter, Rejection,
};
use crate::controllers::scheduler::pod_info::{AffinityTerm, PodInfo};

/// The incoming pod's affinity is not met.
pub const AFFINITY_REASON: &str = "node(s) didn't match pod affinity rules";
/// The incoming pod's anti-affinity is violated.
pub const ANTI_AFFINITY_REASON: &str = "node(s) didn't match pod anti-affinity rules";
/// An existing pod's anti-affinity is violated.
pub const EXISTING_ANTI_AFFINITY_REASON: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// Weight of existing pods' required affinity terms in scoring (kube-scheduler's `hardPodAffinityWeight`).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

const FILTER_STATE: &str = "InterPodAffinity/filter";
const SCORE_STATE: &str = "InterPodAffinity/score";

/// Counts per (topology key, value).
type Domains = HashMap<(String, String), i64>;

struct FilterState {
    existing_anti: Domains,
    affinity: Domains,
    anti: Domains,
    /// No pod anywhere matches the affinity terms, but the pod matches its own.
    affinity_self_bootstrap: bool,
}

struct ScoreState {
    domains: Domains,
}

/// The plugin.
pub struct InterPodAffinity;

fn count(map: &mut Domains, key: &str, node: &NodeInfo, by: i64) {
    if let Some(v) = node.label(key) {
        *map.entry((key.to_string(), v.to_string())).or_insert(0) += by;
    }
}

fn matches_all(terms: &[AffinityTerm], pod: &PodInfo, cx: &Cycle<'_>) -> bool {
    let ns = cx.cache;
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, ns))
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn pre_filter(&self, cx: &mut Cycle<'_>) -> PreFilter {
        let pod = cx.pod;
        let nodes = cx.cache.nodes();
        let anyone_anti = nodes.iter().any(|n| n.pods_with_required_anti_affinity > 0);
        if pod.required_affinity.is_empty() && pod.required_anti_affinity.is_empty() && !anyone_anti
        {
            return PreFilter::Skip;
        }
        let ns = cx.cache;
        let mut st = FilterState {
            existing_anti: Domains::new(),
            affinity: Domains::new(),
            anti: Domains::new(),
            affinity_self_bootstrap: false,
        };
        for node in nodes {
            if node.pods_with_required_anti_affinity > 0 {
                for existing in &node.pods {
                    for t in &existing.required_anti_affinity {
                        if t.matches(pod, ns) {
                            count(&mut st.existing_anti, &t.topology_key, node, 1);
                        }
                    }
                }
            }
            if pod.required_affinity.is_empty() && pod.required_anti_affinity.is_empty() {
                continue;
            }
            for existing in &node.pods {
                if !pod.required_affinity.is_empty()
                    && pod
                        .required_affinity
                        .iter()
                        .all(|t| t.matches(existing, ns))
                {
                    for t in &pod.required_affinity {
                        count(&mut st.affinity, &t.topology_key, node, 1);
                    }
                }
                for t in &pod.required_anti_affinity {
                    if t.matches(existing, ns) {
                        count(&mut st.anti, &t.topology_key, node, 1);
                    }
                }
            }
        }
        st.affinity_self_bootstrap =
            st.affinity.is_empty() && matches_all(&pod.required_affinity, pod, cx);
        cx.state.put(FILTER_STATE, st);
        PreFilter::Run
    }

    fn filter(&self, cx: &Cycle<'_>, node: &NodeInfo) -> Result<(), Rejection> {
        let Some(st) = cx.state.get::<FilterState>(FILTER_STATE) else {
            return Ok(());
        };
        let pod = cx.pod;
        if !pod.required_affinity.is_empty() {
            let all_met = pod.required_affinity.iter().all(|t| {
                node.label(&t.topology_key).is_some_and(|v| {
                    st.affinity
                        .get(&(t.topology_key.clone(), v.to_string()))
                        .is_some_and(|c| *c > 0)
                })
            });
            // the first pod of a group that selects itself may go anywhere
            // that has the topology keys
            let bootstrap = st.affinity_self_bootstrap
                && pod
                    .required_affinity
                    .iter()
                    .all(|t| node.label(&t.topology_key).is_some());
            if !all_met && !bootstrap {
                return Err(Rejection::new(
                    self.name(),
                    Code::UnschedulableAndUnresolvable,
                    AFFINITY_REASON,
                ));
            }
        }
        let violated = pod.required_anti_affinity.iter().any(|t| {
            node.label(&t.topology_key).is_some_and(|v| {
                st.anti
                    .get(&(t.topology_key.clone(), v.to_string()))
                    .is_some_and(|c| *c > 0)
            })
        });
        if violated {
            return Err(Rejection::new(
                self.name(),
                Code::Unschedulable,
                ANTI_AFFINITY_REASON,
            ));
        }
        if !st.existing_anti.is_empty() {
            let hit = node.labels().iter().any(|(k, v)| {
                st.existing_anti
                    .get(&(k.clone(), v.clone()))
                    .is_some_and(|c| *c > 0)
            });
            if hit {
                return Err(Rejection::new(
                    self.name(),
                    Code::Unschedulable,
                    EXISTING_ANTI_AFFINITY_REASON,
                ));
            }
        }
        Ok(())
    }

    fn pre_score(&self, cx: &mut Cycle<'_>, _nodes: &[&NodeInfo]) -> bool {
        let pod = cx.pod;
        let has_preferred =
            !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        let nodes = cx.cache.nodes();
        if !has_preferred && !nodes.iter().any(|n| n.pods_with_affinity > 0) {
            return false;
        }
        let ns = cx.cache;
        let mut domains = Domains::new();
        for node in nodes {
            if !has_preferred && node.pods_with_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                for w in &pod.preferred_affinity {
                    if w.term.matches(existing, ns) {
                        count(&mut domains, &w.term.topology_key, node, w.weight);
                    }
                }
                for w in &pod.preferred_anti_affinity {
                    if w.term.matches(existing, ns) {
                        count(&mut domains, &w.term.topology_key, node, -w.weight);
                    }
                }
                if !existing.has_affinity() {
                    continue;
                }
                for t in &existing.required_affinity {
                    if t.matches(pod, ns) {
                        count(
                            &mut domains,
                            &t.topology_key,
                            node,
                            HARD_POD_AFFINITY_WEIGHT,
                        );
                    }
                }
                for w in &existing.preferred_affinity {
                    if w.term.matches(pod, ns) {
                        count(&mut domains, &w.term.topology_key, node, w.weight);
                    }
                }
                for w in &existing.preferred_anti_affinity {
                    if w.term.matches(pod, ns) {
                        count(&mut domains, &w.term.topology_key, node, -w.weight);
                    }
                }
            }
        }
        domains.retain(|_, v| *v != 0);
        if domains.is_empty() {
            return false;
        }
        cx.state.put(SCORE_STATE, ScoreState { domains });
        true
    }

    fn score(&self, cx: &Cycle<'_>, node: &NodeInfo) -> i64 {
        let Some(st) = cx.state.get::<ScoreState>(SCORE_STATE) else {
            return 0;
        };
        st.domains
            .iter()
            .filter(|((k, v), _)| node.label(k) == Some(v.as_str()))
            .map(|(_, s)| *s)
            .sum()
    }

    fn normalize(&self, _cx: &Cycle<'_>, scores: &mut [i64]) {
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 {
                MAX_NODE_SCORE * (*s - min) / diff
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::plugins::testing::{cache, filter, node, pod, scores};
    use serde_json::{Value, json};

    const HOST: &str = "kubernetes.io/hostname";

    fn term(app: &str, key: &str) -> Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
    }

    fn nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
        vec![
            node("a", json!({HOST: "a", "zone": "z1"}), json!({})),
            node("b", json!({HOST: "b", "zone": "z1"}), json!({})),
            node("c", json!({HOST: "c", "zone": "z2"}), json!({})),
        ]
    }

    #[test]
    fn required_affinity_and_anti_affinity_by_topology() {
        let c = cache(
            nodes(),
            vec![(pod("db", json!({"app": "db"}), json!({})), "a")],
        );
        let aff = Some(AFFINITY_REASON.to_string());
        let anti = Some(ANTI_AFFINITY_REASON.to_string());
        let cases: Vec<(Value, Vec<Option<String>>)> = vec![
            // with the db, on its host
            (
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", HOST)]}}}),
                vec![None, aff.clone(), aff.clone()],
            ),
            // with the db, in its zone
            (
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}}),
                vec![None, None, aff.clone()],
            ),
            // away from the db's zone
            (
                json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}}),
                vec![anti.clone(), anti.clone(), None],
            ),
            // a topology key no node has: anti-affinity cannot be violated
            (
                json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", "rack")]}}}),
                vec![None, None, None],
            ),
            // affinity to pods that exist nowhere
            (
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("cache", HOST)]}}}),
                vec![aff.clone(), aff.clone(), aff.clone()],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                filter(
                    &InterPodAffinity,
                    &pod("p", json!({"app": "web"}), spec.clone()),
                    &c
                ),
                want,
                "{spec}"
            );
        }
        // the first of a group that selects itself may go anywhere
        let first = pod(
            "w0",
            json!({"app": "cache"}),
            json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("cache", HOST)]}}}),
        );
        assert_eq!(
            filter(&InterPodAffinity, &first, &c),
            vec![None, None, None]
        );
    }

    #[test]
    fn existing_pods_anti_affinity_keeps_others_away() {
        let lonely = pod(
            "lonely",
            json!({"app": "lonely"}),
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", "zone")]}}}),
        );
        let c = cache(nodes(), vec![(lonely, "c")]);
        let existing = Some(EXISTING_ANTI_AFFINITY_REASON.to_string());
        assert_eq!(
            filter(
                &InterPodAffinity,
                &pod("p", json!({"app": "web"}), json!({})),
                &c
            ),
            vec![None, None, existing]
        );
        assert_eq!(
            filter(
                &InterPodAffinity,
                &pod("q", json!({"app": "api"}), json!({})),
                &c
            ),
            vec![None, None, None]
        );
    }

    #[test]
    fn namespaces_limit_what_terms_select() {
        let mut other = pod("db", json!({"app": "db"}), json!({}));
        let mut v = (*other.pod).clone();
        v.metadata.namespace = Some("other".into());
        other = crate::controllers::scheduler::pod_info::PodInfo::new(std::sync::Arc::new(v));
        let c = cache(nodes(), vec![(other, "a")]);
        let own_ns = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", HOST)]}}});
        assert_eq!(
            filter(&InterPodAffinity, &pod("p", json!({}), own_ns), &c),
            vec![None, None, None]
        );
        let mut t = term("db", HOST);
        t["namespaces"] = json!(["other"]);
        let listed = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}});
        assert_eq!(
            filter(&InterPodAffinity, &pod("p", json!({}), listed), &c),
            vec![Some(ANTI_AFFINITY_REASON.to_string()), None, None]
        );
        let mut t = term("db", HOST);
        t["namespaceSelector"] = json!({});
        let all = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}});
        assert_eq!(
            filter(&InterPodAffinity, &pod("p", json!({}), all), &c),
            vec![Some(ANTI_AFFINITY_REASON.to_string()), None, None]
        );
    }

    #[test]
    fn preferred_terms_score_both_ways() {
        let c = cache(
            nodes(),
            vec![
                (pod("db", json!({"app": "db"}), json!({})), "a"),
                (pod("noisy", json!({"app": "noisy"}), json!({})), "c"),
            ],
        );
        let p = pod(
            "p",
            json!({"app": "web"}),
            json!({"affinity": {
                "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": term("db", "zone")}]},
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": term("noisy", HOST)}]}
            }}),
        );
        // a, b: +10 (zone z1); c: -10
        assert_eq!(scores(&InterPodAffinity, &p, &c), Some(vec![100, 100, 0]));
        // symmetry: an existing pod that prefers web pods attracts them
        let fan = pod(
            "fan",
            json!({"app": "fan"}),
            json!({"affinity": {"podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm": term("web", HOST)}]}}}),
        );
        let c = cache(nodes(), vec![(fan, "b")]);
        assert_eq!(
            scores(
                &InterPodAffinity,
                &pod("w", json!({"app": "web"}), json!({})),
                &c
            ),
            Some(vec![0, 100, 0])
        );
        assert_eq!(
            scores(
                &InterPodAffinity,
                &pod("x", json!({"app": "x"}), json!({})),
                &c
            ),
            None
        );
    }
}
