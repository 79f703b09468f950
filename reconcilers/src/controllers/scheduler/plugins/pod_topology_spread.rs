//! PodTopologySpread: `DoNotSchedule` constraints filter out nodes where
//! placing the pod would make (matching pods in the node's domain + 1 −
//! the least-loaded domain's count) exceed `maxSkew`; `ScheduleAnyway`
//! constraints score nodes in emptier domains higher. Pods without
//! constraints get kube-scheduler's system defaults (hostname skew 3, zone
//! skew 5, ScheduleAnyway) over the pods of the same Services and owner.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use schemas::SelectorExt;

use crate::controllers::scheduler::cache::NodeInfo;
use crate::controllers::scheduler::framework::{
    Code, Cycle, MAX_NODE_SCORE, Plugin, PreFilter, Rejection,
};
use crate::controllers::scheduler::pod_info::PodInfo;

use super::node_affinity::required_matches;
use super::taint_toleration::first_untolerated;

/// Skew exceeded.
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
/// The node lacks a constraint's topology key.
pub const MISSING_LABEL_REASON: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";
const FILTER_STATE: &str = "PodTopologySpread/filter";
const SCORE_STATE: &str = "PodTopologySpread/score";

/// Which pods a constraint counts.
#[derive(Clone, Debug)]
enum Selects {
    /// A label selector (`None` selects nothing).
    Labels(Option<LabelSelector>),
    /// The system default: pods matching every Service selecting the pod,
    /// and sharing its controlling owner.
    Siblings {
        services: Vec<BTreeMap<String, String>>,
        owner: Option<String>,
    },
}

impl Selects {
    fn matches(&self, pod: &PodInfo) -> bool {
        match self {
            Selects::Labels(s) => s.as_ref().is_some_and(|s| s.matches(pod.labels())),
            Selects::Siblings { services, owner } => {
                let labels = pod.labels();
                services
                    .iter()
                    .all(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
                    && owner
                        .as_deref()
                        .is_none_or(|o| pod.controller_uid() == Some(o))
            }
        }
    }
}

/// A constraint resolved against the incoming pod.
#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    key: String,
    selects: Selects,
    min_domains: Option<i64>,
    honor_affinity: bool,
    honor_taints: bool,
}

fn resolve(pod: &PodInfo, c: &TopologySpreadConstraint) -> Constraint {
    let labels = pod.labels();
    let selector = c.label_selector.clone().map(|mut s| {
        let extra: Vec<_> = c
            .match_label_keys
            .iter()
            .flatten()
            .filter_map(|k| {
                labels.get(k).map(|v| LabelSelectorRequirement {
                    key: k.clone(),
                    operator: "In".into(),
                    values: Some(vec![v.clone()]),
                })
            })
            .collect();
        if !extra.is_empty() {
            s.match_expressions
                .get_or_insert_with(Vec::new)
                .extend(extra);
        }
        s
    });
    Constraint {
        max_skew: i64::from(c.max_skew),
        key: c.topology_key.clone(),
        selects: Selects::Labels(selector),
        min_domains: c.min_domains.map(i64::from),
        honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
        honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
    }
}

fn explicit(pod: &PodInfo, when: &str) -> Vec<Constraint> {
    pod.spec()
        .topology_spread_constraints
        .iter()
        .flatten()
        .filter(|c| c.when_unsatisfiable == when)
        .map(|c| resolve(pod, c))
        .collect()
}

fn system_defaults(cx: &Cycle<'_>) -> Vec<Constraint> {
    let pod = cx.pod;
    let labels = pod.labels();
    let services: Vec<BTreeMap<String, String>> = cx
        .cache
        .service_selectors(pod.namespace())
        .filter(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
        .cloned()
        .collect();
    let owner = pod.controller_uid().map(str::to_string);
    if services.is_empty() && owner.is_none() {
        return Vec::new();
    }
    let selects = Selects::Siblings { services, owner };
    [(HOSTNAME, 3), (ZONE, 5)]
        .into_iter()
        .map(|(key, skew)| Constraint {
            max_skew: skew,
            key: key.to_string(),
            selects: selects.clone(),
            min_domains: None,
            honor_affinity: true,
            honor_taints: false,
        })
        .collect()
}

fn eligible(c: &Constraint, cx: &Cycle<'_>, node: &NodeInfo) -> bool {
    if c.honor_affinity && !required_matches(cx.pod.spec(), node) {
        return false;
    }
    if c.honor_taints {
        let tolerations = cx.pod.spec().tolerations.as_deref().unwrap_or_default();
        if first_untolerated(&node.taints, tolerations, &["NoSchedule", "NoExecute"]).is_some() {
            return false;
        }
    }
    true
}

fn matching_pods(c: &Constraint, pod: &PodInfo, node: &NodeInfo) -> i64 {
    node.pods
        .iter()
        .filter(|p| !p.terminating() && p.namespace() == pod.namespace() && c.selects.matches(p))
        .count() as i64
}

struct FilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: matching pods per domain value.
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: the smallest domain count (0 below `minDomains`).
    min: Vec<i64>,
}

struct ScoreState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
    /// Nodes lacking a key of an explicit constraint: scored 0.
    ignored: HashSet<String>,
}

/// The plugin.
pub struct PodTopologySpread;

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn pre_filter(&self, cx: &mut Cycle<'_>) -> PreFilter {
        let constraints = explicit(cx.pod, "DoNotSchedule");
        if constraints.is_empty() {
            return PreFilter::Skip;
        }
        let mut counts = vec![HashMap::new(); constraints.len()];
        for node in cx.cache.nodes() {
            if !constraints.iter().all(|c| node.label(&c.key).is_some()) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !eligible(c, cx, node) {
                    continue;
                }
                let Some(value) = node.label(&c.key) else {
                    continue;
                };
                *counts[i].entry(value.to_string()).or_insert(0) += matching_pods(c, cx.pod, node);
            }
        }
        let min = constraints
            .iter()
            .zip(&counts)
            .map(|(c, domains)| {
                let least = domains.values().copied().min().unwrap_or(0);
                match c.min_domains {
                    Some(m) if (domains.len() as i64) < m => 0,
                    _ => least,
                }
            })
            .collect();
        cx.state.put(
            FILTER_STATE,
            FilterState {
                constraints,
                counts,
                min,
            },
        );
        PreFilter::Run
    }

    fn filter(&self, cx: &Cycle<'_>, node: &NodeInfo) -> Result<(), Rejection> {
        let Some(st) = cx.state.get::<FilterState>(FILTER_STATE) else {
            return Ok(());
        };
        for (i, c) in st.constraints.iter().enumerate() {
            let Some(value) = node.label(&c.key) else {
                return Err(Rejection::new(
                    self.name(),
                    Code::UnschedulableAndUnresolvable,
                    MISSING_LABEL_REASON,
                ));
            };
            let self_match = i64::from(c.selects.matches(cx.pod));
            let here = st.counts[i].get(value).copied().unwrap_or(0);
            if here + self_match - st.min[i] > c.max_skew {
                return Err(Rejection::new(self.name(), Code::Unschedulable, REASON));
            }
        }
        Ok(())
    }

    fn pre_score(&self, cx: &mut Cycle<'_>, nodes: &[&NodeInfo]) -> bool {
        let mut constraints = explicit(cx.pod, "ScheduleAnyway");
        let has_explicit = cx
            .pod
            .spec()
            .topology_spread_constraints
            .as_ref()
            .is_some_and(|c| !c.is_empty());
        if !has_explicit {
            constraints = system_defaults(cx);
        }
        if constraints.is_empty() {
            return false;
        }
        let mut ignored = HashSet::new();
        // domains among the feasible nodes
        let mut domains: Vec<HashSet<&str>> = vec![HashSet::new(); constraints.len()];
        for n in nodes {
            if has_explicit && !constraints.iter().all(|c| n.label(&c.key).is_some()) {
                ignored.insert(n.name.clone());
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if let Some(v) = n.label(&c.key) {
                    domains[i].insert(v);
                }
            }
        }
        let weights: Vec<f64> = domains
            .iter()
            .map(|d| ((d.len() + 2) as f64).ln())
            .collect();
        let mut counts = vec![HashMap::new(); constraints.len()];
        for (i, c) in constraints.iter().enumerate() {
            // no feasible node has the key (e.g. zones in a zoneless cluster): nothing to count
            if domains[i].is_empty() {
                continue;
            }
            // a hostname domain is one node: only the feasible nodes' pods
            // matter (kube counts those per node in Score); other keys
            // count every node of the domains
            let candidates: Vec<&NodeInfo> = if c.key == HOSTNAME {
                nodes.to_vec()
            } else {
                cx.cache.nodes().iter().collect()
            };
            for node in candidates {
                if has_explicit && !constraints.iter().all(|c| node.label(&c.key).is_some()) {
                    continue;
                }
                let Some(value) = node.label(&c.key) else {
                    continue;
                };
                if !domains[i].contains(value) || !eligible(c, cx, node) {
                    continue;
                }
                *counts[i].entry(value.to_string()).or_insert(0) += matching_pods(c, cx.pod, node);
            }
        }
        cx.state.put(
            SCORE_STATE,
            ScoreState {
                constraints,
                counts,
                weights,
                ignored,
            },
        );
        true
    }

    fn score(&self, cx: &Cycle<'_>, node: &NodeInfo) -> i64 {
        let Some(st) = cx.state.get::<ScoreState>(SCORE_STATE) else {
            return 0;
        };
        if st.ignored.contains(&node.name) {
            return -1;
        }
        let mut score = 0.0;
        for (i, c) in st.constraints.iter().enumerate() {
            if let Some(v) = node.label(&c.key) {
                let cnt = st.counts[i].get(v).copied().unwrap_or(0);
                score += cnt as f64 * st.weights[i] + (c.max_skew - 1) as f64;
            }
        }
        score.round() as i64
    }

    fn normalize(&self, _cx: &Cycle<'_>, scores: &mut [i64]) {
        let valid = scores.iter().copied().filter(|s| *s >= 0);
        let min = valid.clone().min().unwrap_or(0);
        let max = valid.max().unwrap_or(0);
        for s in scores.iter_mut() {
            if *s < 0 {
                *s = 0;
            } else if max == 0 {
                *s = MAX_NODE_SCORE;
            } else {
                *s = MAX_NODE_SCORE * (max + min - *s) / max;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::plugins::testing::{cache, filter, node, pod, scores};
    use serde_json::{Value, json};

    fn nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
        vec![
            node("a1", json!({"zone": "a", HOSTNAME: "a1"}), json!({})),
            node("a2", json!({"zone": "a", HOSTNAME: "a2"}), json!({})),
            node("b1", json!({"zone": "b", HOSTNAME: "b1"}), json!({})),
            node("none", json!({HOSTNAME: "none"}), json!({})),
        ]
    }

    fn spread(key: &str, skew: i32, when: &str) -> Value {
        json!({"topologySpreadConstraints": [{"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}}]})
    }

    #[test]
    fn skew_limits_where_the_next_replica_goes() {
        let web = |n: &str| pod(n, json!({"app": "web"}), json!({}));
        // zone a has 2 web pods, zone b 0
        let c = cache(nodes(), vec![(web("w1"), "a1"), (web("w2"), "a2")]);
        let skew = Some(REASON.to_string());
        let missing = Some(MISSING_LABEL_REASON.to_string());
        let cases: Vec<(Value, Vec<Option<String>>)> = vec![
            (
                spread("zone", 1, "DoNotSchedule"),
                vec![skew.clone(), skew.clone(), None, missing.clone()],
            ),
            (
                spread("zone", 3, "DoNotSchedule"),
                vec![None, None, None, missing.clone()],
            ),
            (
                spread(HOSTNAME, 1, "DoNotSchedule"),
                vec![skew.clone(), skew.clone(), None, None],
            ),
            (
                spread("zone", 1, "ScheduleAnyway"),
                vec![None, None, None, None],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                filter(
                    &PodTopologySpread,
                    &pod("p", json!({"app": "web"}), spec.clone()),
                    &c
                ),
                want,
                "{spec}"
            );
        }
        // a pod the selector does not match does not count itself
        let other = pod(
            "q",
            json!({"app": "other"}),
            spread("zone", 1, "DoNotSchedule"),
        );
        assert_eq!(
            filter(&PodTopologySpread, &other, &c),
            vec![skew.clone(), skew.clone(), None, missing.clone()]
        );
        // minDomains above the number of domains makes the minimum 0
        let c1 = cache(nodes(), vec![(web("w1"), "a1"), (web("w2"), "b1")]);
        let s = spread("zone", 1, "DoNotSchedule");
        assert_eq!(
            filter(
                &PodTopologySpread,
                &pod("p", json!({"app": "web"}), s.clone()),
                &c1
            ),
            vec![None, None, None, missing.clone()]
        );
        let mut s = s;
        s["topologySpreadConstraints"][0]["minDomains"] = json!(3);
        assert_eq!(
            filter(&PodTopologySpread, &pod("p", json!({"app": "web"}), s), &c1),
            vec![skew.clone(), skew.clone(), skew.clone(), missing.clone()]
        );
    }

    #[test]
    fn node_affinity_policy_limits_the_domains_counted() {
        // only zone a is eligible by nodeSelector; its count is 1, zone b's (3) is not counted
        let web = |n: &str| pod(n, json!({"app": "web"}), json!({}));
        let c = cache(
            nodes(),
            vec![
                (web("w1"), "a1"),
                (web("w2"), "b1"),
                (web("w3"), "b1"),
                (web("w4"), "b1"),
            ],
        );
        let mut s = spread("zone", 1, "DoNotSchedule");
        s["nodeSelector"] = json!({"zone": "a"});
        let r = filter(
            &PodTopologySpread,
            &pod("p", json!({"app": "web"}), s.clone()),
            &c,
        );
        assert_eq!(r[0], None, "{r:?}");
        s["topologySpreadConstraints"][0]["nodeAffinityPolicy"] = json!("Ignore");
        let r = filter(&PodTopologySpread, &pod("p", json!({"app": "web"}), s), &c);
        assert_eq!(r[0], None, "min is zone a's 1: {r:?}");
        assert_eq!(r[2], Some(REASON.to_string()), "{r:?}");
    }

    #[test]
    fn schedule_anyway_scores_emptier_domains_higher() {
        let web = |n: &str| pod(n, json!({"app": "web"}), json!({}));
        let c = cache(nodes(), vec![(web("w1"), "a1"), (web("w2"), "a2")]);
        let s = scores(
            &PodTopologySpread,
            &pod(
                "p",
                json!({"app": "web"}),
                spread("zone", 1, "ScheduleAnyway"),
            ),
            &c,
        )
        .expect("scores");
        // a1, a2 share zone a (2 pods); b1 has none; "none" lacks the key: 0
        assert!(s[2] > s[0] && s[0] == s[1] && s[3] == 0, "{s:?}");
    }

    #[test]
    fn system_defaults_spread_siblings_by_owner() {
        let owned = |n: &str| pod(n, json!({"app": "web"}), json!({}));
        let with_owner = |p: crate::controllers::scheduler::pod_info::PodInfo| {
            let mut v = (*p.pod).clone();
            v.metadata.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "rs".into(),
                    uid: "rs-uid".into(),
                    controller: Some(true),
                    block_owner_deletion: None,
                },
            ]);
            crate::controllers::scheduler::pod_info::PodInfo::new(std::sync::Arc::new(v))
        };
        let c = cache(
            nodes(),
            vec![(with_owner(owned("w1")), "a1"), (owned("stranger"), "a2")],
        );
        let s = scores(&PodTopologySpread, &with_owner(owned("p")), &c).expect("scores");
        // a1 holds a sibling; a2's pod has another owner
        assert!(s[1] > s[0], "{s:?}");
        assert_eq!(scores(&PodTopologySpread, &owned("lone"), &c), None);
    }
}
