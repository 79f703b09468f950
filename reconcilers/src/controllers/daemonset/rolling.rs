//! A DaemonSet's RollingUpdate (kube's `rollingUpdate`): without surge,
//! delete old pods while at most `maxUnavailable` nodes lack an available
//! current pod (the manage step then creates the new ones); with surge,
//! start a new pod beside an old one on up to `maxSurge` nodes and delete
//! the old pod once the new one is available. Pure: it names the pods to
//! delete and the nodes to create on.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemas::MetaExt;
use schemas::object::scaled_value;

use crate::controllers::podutil::is_available;

use super::eligibility::{is_updated, min_ready_seconds, placement, template_generation};

/// What a rolling-update step asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Pods to delete (by name).
    pub delete: Vec<String>,
    /// Nodes to create a current pod on.
    pub create: Vec<String>,
}

/// (maxSurge, maxUnavailable) for `desired` nodes, both rounded up; never
/// both 0 (`updatedDesiredNodeCounts`).
pub fn surge_and_unavailable(ds: &DaemonSet, desired: i32) -> (i32, i32) {
    let ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let scaled = |v: Option<&IntOrString>, default: i32| {
        v.map(|v| scaled_value(v, desired, true).unwrap_or(default))
            .unwrap_or(default)
    };
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), 0);
    let mut unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), 1);
    if desired > 0 && surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// The one new and one old live pod on a node; `None` when there are more
/// (the manage step prunes them first) (`findUpdatedPodsOnNode`).
#[allow(clippy::type_complexity)]
fn new_and_old<'a>(
    pods: &'a [Arc<Pod>],
    hash: &str,
    generation: Option<&str>,
) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_updated(p, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(p.as_ref());
    }
    Some((new, old))
}

/// One step of the rolling update of `ds` to the revision `hash`.
pub fn step(
    ds: &DaemonSet,
    nodes: &BTreeMap<String, Arc<Node>>,
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    hash: &str,
) -> Step {
    let min_ready = min_ready_seconds(ds);
    let generation = template_generation(ds);
    let generation = generation.as_deref();
    let should_run = |node: &str| nodes.get(node).is_some_and(|n| placement(n, ds).should_run);
    let desired = i32::try_from(nodes.keys().filter(|n| should_run(n)).count()).unwrap_or(i32::MAX);
    let (max_surge, max_unavailable) = surge_and_unavailable(ds, desired);
    let available = |p: &Pod| is_available(p, min_ready);
    let mut out = Step::default();

    if max_surge == 0 {
        let mut unavailable = 0;
        let mut replace_now = Vec::new();
        let mut candidates = Vec::new();
        for pods in by_node.values() {
            let Some((new, old)) = new_and_old(pods, hash, generation) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(n), None) => {
                    if !available(n) {
                        unavailable += 1;
                    }
                }
                (None, Some(o)) => {
                    if !available(o) {
                        replace_now.push(o.metadata.name_str().to_string());
                    } else if unavailable < max_unavailable {
                        candidates.push(o.metadata.name_str().to_string());
                    }
                }
            }
        }
        let room = usize::try_from((max_unavailable - unavailable).max(0))
            .unwrap_or(0)
            .min(candidates.len());
        out.delete = replace_now;
        out.delete.extend(candidates.into_iter().take(room));
        return out;
    }

    let mut surging = 0;
    let mut num_available = 0;
    let mut allowed_new = Vec::new();
    let mut candidate_new = Vec::new();
    let mut should_not_run = Vec::new();
    for (node, pods) in by_node {
        let Some((new, old)) = new_and_old(pods, hash, generation) else {
            surging += 1;
            continue;
        };
        if let Some(p) = old.or(new)
            && available(p)
        {
            num_available += 1;
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(o)) => {
                if !available(o) {
                    if should_run(node) {
                        allowed_new.push(node.clone());
                    } else {
                        out.delete.push(o.metadata.name_str().to_string());
                    }
                } else if !should_run(node) {
                    should_not_run.push(o.metadata.name_str().to_string());
                } else if surging < max_surge {
                    candidate_new.push(node.clone());
                }
            }
            (Some(n), Some(o)) => {
                if available(n) {
                    out.delete.push(o.metadata.name_str().to_string());
                } else {
                    surging += 1;
                }
            }
        }
    }
    // pods on nodes that no longer qualify go only once enough others are available
    let deletable = usize::try_from((num_available - desired).max(0))
        .unwrap_or(0)
        .min(should_not_run.len());
    out.delete
        .extend(should_not_run.into_iter().take(deletable));
    let room = usize::try_from((max_surge - surging).max(0))
        .unwrap_or(0)
        .min(candidate_new.len());
    out.create = allowed_new;
    out.create.extend(candidate_new.into_iter().take(room));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ds(surge: serde_json::Value, unavailable: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "a"}},
                     "updateStrategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                     "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": []}}}
        }))
        .expect("ds")
    }

    fn pod(name: &str, hash: &str, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"controller-revision-hash": hash}},
                "spec": {"containers": []},
                "status": {"phase": "Running", "conditions": [{"type": "Ready",
                    "status": if ready { "True" } else { "False" }}]}
            }))
            .expect("pod"),
        )
    }

    fn nodes(n: usize) -> BTreeMap<String, Arc<Node>> {
        (0..n)
            .map(|i| {
                let name = format!("n{i}");
                let node: Node =
                    serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
                (name, Arc::new(node))
            })
            .collect()
    }

    #[test]
    fn counts_round_up_and_never_both_zero() {
        assert_eq!(
            surge_and_unavailable(&ds(json!(0), json!("25%")), 10),
            (0, 3)
        );
        assert_eq!(
            surge_and_unavailable(&ds(json!("10%"), json!(0)), 10),
            (1, 0)
        );
        assert_eq!(surge_and_unavailable(&ds(json!(0), json!(0)), 4), (0, 1));
    }

    #[test]
    fn without_surge_old_pods_go_within_max_unavailable() {
        let d = ds(json!(0), json!(2));
        let by_node: BTreeMap<String, Vec<Arc<Pod>>> = (0..4)
            .map(|i| (format!("n{i}"), vec![pod(&format!("old-{i}"), "v1", true)]))
            .collect();
        let s = step(&d, &nodes(4), &by_node, "v2");
        assert_eq!(s.delete, vec!["old-0", "old-1"]);
        assert!(s.create.is_empty());
        // one new pod not yet available leaves room for one more
        let mut by_node = by_node;
        by_node.insert("n0".into(), vec![pod("new-0", "v2", false)]);
        let s = step(&d, &nodes(4), &by_node, "v2");
        assert_eq!(s.delete, vec!["old-1"]);
        // an unavailable old pod is replaced regardless
        by_node.insert("n3".into(), vec![pod("old-3", "v1", false)]);
        let s = step(&d, &nodes(4), &by_node, "v2");
        assert_eq!(s.delete, vec!["old-3", "old-1"]);
    }

    #[test]
    fn with_surge_new_pods_start_first_and_old_ones_go_when_they_are_available() {
        let d = ds(json!(1), json!(0));
        let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = (0..3)
            .map(|i| (format!("n{i}"), vec![pod(&format!("old-{i}"), "v1", true)]))
            .collect();
        let s = step(&d, &nodes(3), &by_node, "v2");
        assert_eq!(s.create, vec!["n0"]);
        assert!(s.delete.is_empty());
        by_node
            .get_mut("n0")
            .expect("n0")
            .push(pod("new-0", "v2", false));
        let s = step(&d, &nodes(3), &by_node, "v2");
        assert_eq!(s, Step::default(), "waits for the surge pod");
        by_node.insert(
            "n0".into(),
            vec![pod("old-0", "v1", true), pod("new-0", "v2", true)],
        );
        let s = step(&d, &nodes(3), &by_node, "v2");
        assert_eq!(s.delete, vec!["old-0"]);
        assert_eq!(s.create, vec!["n1"]);
    }
}
