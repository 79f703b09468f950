//! What workload controllers need to know about pods and owner references:
//! active/ready/available, the controlling owner, and Kubernetes' ranking of
//! pods to delete first when scaling down.

use std::cmp::Ordering;

use chrono::Utc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use schemas::MetaExt;
use schemas::Object;
use schemas::TimeExt;

/// Whether the pod counts toward replicas: not finished and not being deleted.
pub fn is_active(p: &Pod) -> bool {
    let phase = p
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    phase != "Succeeded" && phase != "Failed" && p.metadata.deletion_timestamp.is_none()
}

/// Whether the pod is being deleted.
pub fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

/// The pod's Ready condition, if present: (status is True, last transition).
fn ready_condition(p: &Pod) -> Option<(bool, Option<chrono::DateTime<Utc>>)> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| {
            (
                c.status == "True",
                c.last_transition_time.as_ref().map(TimeExt::utc),
            )
        })
}

/// Whether the pod is Ready.
pub fn is_ready(p: &Pod) -> bool {
    ready_condition(p).is_some_and(|(r, _)| r)
}

/// Whether the pod has been Ready for at least `min_ready_seconds`.
pub fn is_available(p: &Pod, min_ready_seconds: i32) -> bool {
    match ready_condition(p) {
        Some((true, _)) if min_ready_seconds <= 0 => true,
        Some((true, Some(since))) => {
            (Utc::now() - since).num_seconds() >= i64::from(min_ready_seconds)
        }
        _ => false,
    }
}

/// Seconds until a ready pod becomes available (0 if it already is or is not ready).
pub fn seconds_until_available(p: &Pod, min_ready_seconds: i32) -> i64 {
    match ready_condition(p) {
        Some((true, Some(since))) if min_ready_seconds > 0 => {
            (i64::from(min_ready_seconds) - (Utc::now() - since).num_seconds()).max(0)
        }
        _ => 0,
    }
}

/// The controlling owner reference, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

/// A controller owner reference to `owner`.
pub fn controller_ref<K: Object>(owner: &K) -> OwnerReference {
    let m = owner.metadata();
    OwnerReference {
        api_version: K::API_VERSION.to_string(),
        kind: K::KIND.to_string(),
        name: m.name_str().to_string(),
        uid: m.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn phase_rank(p: &Pod) -> u8 {
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

/// Kubernetes' order of pods to delete first (`ActivePods` less): unassigned
/// before assigned, pending before unknown before running, not ready before
/// ready, recently ready before long ready, more restarts first, newer first.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let assigned = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(is_ready(a).cmp(&is_ready(b)))
        .then_with(|| {
            // among ready pods, the more recently ready goes first
            let since = |p: &Pod| ready_condition(p).and_then(|(_, t)| t);
            match (since(a), since(b)) {
                (Some(x), Some(y)) if is_ready(a) && is_ready(b) => y.cmp(&x),
                _ => Ordering::Equal,
            }
        })
        .then(restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.clone().map(|t| t.0);
            created(b).cmp(&created(a))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn unassigned_and_not_ready_pods_go_first() {
        let unassigned = pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": []}, "status": {"phase": "Pending"}}),
        );
        let running_not_ready = pod(
            json!({"metadata": {"name": "b"}, "spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Running"}}),
        );
        let ready = pod(
            json!({"metadata": {"name": "c"}, "spec": {"nodeName": "n", "containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}}),
        );
        let mut pods = [ready.clone(), running_not_ready.clone(), unassigned.clone()];
        pods.sort_by(deletion_order);
        let names: Vec<&str> = pods.iter().map(|p| p.metadata.name_str()).collect();
        assert_eq!(names, vec!["a", "b", "c"]);
        assert!(is_available(&ready, 10));
        assert!(!is_available(&running_not_ready, 0));
    }
}
