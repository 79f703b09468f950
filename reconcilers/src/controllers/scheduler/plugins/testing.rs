//! Helpers for the plugins' table-driven tests: nodes and pods from JSON,
//! a cache from them, and running one plugin's filter or scores.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::controllers::scheduler::cache::ClusterCache;
use crate::controllers::scheduler::framework::{Cycle, CycleState, Plugin, PreFilter, Rejection};
use crate::controllers::scheduler::pod_info::PodInfo;

/// A node named `name` with `extra` merged into `{metadata, status}`.
pub fn node(name: &str, labels: Value, extra: Value) -> k8s_openapi::api::core::v1::Node {
    let mut v = json!({"metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}});
    merge(&mut v, extra);
    serde_json::from_value(v).expect("node")
}

/// A pod in namespace `default` with `spec` (containers default to one named `c`).
pub fn pod(name: &str, labels: Value, spec: Value) -> PodInfo {
    let mut v = json!({"metadata": {"name": name, "namespace": "default", "uid": name, "labels": labels},
        "spec": {"containers": [{"name": "c"}]}});
    merge(&mut v, json!({"spec": spec}));
    PodInfo::new(Arc::new(serde_json::from_value(v).expect("pod")))
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// A cache with these nodes and these pods bound (pod, node name).
pub fn cache(
    nodes: Vec<k8s_openapi::api::core::v1::Node>,
    bound: Vec<(PodInfo, &str)>,
) -> ClusterCache {
    let mut c = ClusterCache::new();
    for n in nodes {
        c.set_node(Arc::new(n));
    }
    for (p, n) in bound {
        c.set_bound_pod(Arc::new(p), n);
    }
    c
}

/// Runs PreFilter and Filter of `plugin` for `pod` on every node, in order:
/// `None` where the node fits, else the rejection's reasons.
pub fn filter(plugin: &dyn Plugin, pod: &PodInfo, c: &ClusterCache) -> Vec<Option<String>> {
    let mut cx = Cycle {
        pod,
        cache: c,
        state: CycleState::default(),
    };
    match plugin.pre_filter(&mut cx) {
        PreFilter::Skip => c.nodes().iter().map(|_| None).collect(),
        PreFilter::Reject(r) => c
            .nodes()
            .iter()
            .map(|_| Some(r.reasons.join(", ")))
            .collect(),
        PreFilter::Run => c
            .nodes()
            .iter()
            .map(|n| {
                plugin
                    .filter(&cx, n)
                    .err()
                    .map(|r: Rejection| r.reasons.join(", "))
            })
            .collect(),
    }
}

/// The normalised scores of `plugin` for `pod` on every node (`None` when it does not score).
pub fn scores(plugin: &dyn Plugin, pod: &PodInfo, c: &ClusterCache) -> Option<Vec<i64>> {
    let mut cx = Cycle {
        pod,
        cache: c,
        state: CycleState::default(),
    };
    let nodes: Vec<_> = c.nodes().iter().collect();
    if !plugin.pre_score(&mut cx, &nodes) {
        return None;
    }
    let mut s: Vec<i64> = nodes.iter().map(|n| plugin.score(&cx, n)).collect();
    plugin.normalize(&cx, &mut s);
    Some(s)
}
