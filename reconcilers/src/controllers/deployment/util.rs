//! Deployment helpers, after Kubernetes' deployment util: the pod template
//! hash, revisions and their annotations, maxSurge/maxUnavailable, and the
//! replica arithmetic of a rolling update.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemas::MetaExt;
use schemas::object::scaled_value;

/// The label that ties a ReplicaSet's pods to its template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// A ReplicaSet's (and its Deployment's) revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Revisions a ReplicaSet had before (after rollbacks).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";

/// Annotations of a Deployment never copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// Kubernetes' safe alphabet for generated names (no vowels, no look-alikes).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The pod template hash of `template` (with `collision_count`), encoded like Kubernetes'.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut t = template.clone();
    if let Some(meta) = t.metadata.as_mut()
        && let Some(labels) = meta.labels.as_mut()
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    let text = serde_json::to_string(&t).unwrap_or_default();
    let mut h: u32 = 0x811c9dc5;
    for b in text.bytes().chain(
        collision_count
            .map(|c| c.to_string())
            .unwrap_or_default()
            .bytes(),
    ) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    safe_encode(&h.to_string())
}

/// apimachinery's `rand.SafeEncodeString`: each byte mapped into the safe
/// alphabet, so generated names never spell words.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Whether a ReplicaSet's template is the Deployment's, ignoring the hash label.
pub fn same_template(rs: &ReplicaSet, d: &Deployment) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(meta) = t.metadata.as_mut() {
            if let Some(labels) = meta.labels.as_mut() {
                labels.remove(POD_TEMPLATE_HASH);
                if labels.is_empty() {
                    meta.labels = None;
                }
            }
            if meta.annotations.as_ref().is_some_and(BTreeMap::is_empty) {
                meta.annotations = None;
            }
        }
        serde_json::to_value(&t).unwrap_or_default()
    };
    match (
        rs.spec.as_ref().and_then(|s| s.template.as_ref()),
        d.spec.as_ref(),
    ) {
        (Some(a), Some(b)) => strip(a) == strip(&b.template),
        _ => false,
    }
}

/// A ReplicaSet's revision (0 when unset).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations_map()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The annotations the new ReplicaSet gets from its Deployment.
pub fn copied_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.metadata
        .annotations_map()
        .iter()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The Deployment's desired replicas.
pub fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// A ReplicaSet's desired replicas.
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// A ReplicaSet's available replicas.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// Whether the strategy is Recreate.
pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// (maxSurge, maxUnavailable) resolved against the desired replicas, as
/// Kubernetes does: surge rounds up, unavailable down, and never both 0.
pub fn max_surge_unavailable(d: &Deployment) -> (i32, i32) {
    if is_recreate(d) {
        return (0, 0);
    }
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let replicas = desired(d);
    let quarter = IntOrString::String("25%".into());
    let surge = scaled_value(
        ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&quarter),
        replicas,
        true,
    )
    .unwrap_or(0)
    .max(0);
    let mut unavailable = scaled_value(
        ru.and_then(|r| r.max_unavailable.as_ref())
            .unwrap_or(&quarter),
        replicas,
        false,
    )
    .unwrap_or(0)
    .max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas))
}

/// maxUnavailable alone.
pub fn max_unavailable(d: &Deployment) -> i32 {
    if is_recreate(d) {
        return 0;
    }
    max_surge_unavailable(d).1
}

/// The new ReplicaSet's replicas for this step of a rolling update.
pub fn new_rs_new_replicas(d: &Deployment, all: &[Arc<ReplicaSet>], new_rs: &ReplicaSet) -> i32 {
    if is_recreate(d) {
        return desired(d);
    }
    let (surge, _) = max_surge_unavailable(d);
    let current: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let max_total = desired(d) + surge;
    if current >= max_total {
        return rs_replicas(new_rs);
    }
    let up = (max_total - current)
        .min(desired(d) - rs_replicas(new_rs))
        .max(0);
    rs_replicas(new_rs) + up
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(
        replicas: i32,
        surge: serde_json::Value,
        unavailable: serde_json::Value,
    ) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {"replicas": replicas, "selector": {},
            "template": {}, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}}))
        .expect("deployment")
    }

    #[test]
    fn surge_rounds_up_unavailable_rounds_down() {
        assert_eq!(
            max_surge_unavailable(&deployment(10, json!("25%"), json!("25%"))),
            (3, 2)
        );
        assert_eq!(
            max_surge_unavailable(&deployment(3, json!(1), json!(0))),
            (1, 0)
        );
        assert_eq!(
            max_surge_unavailable(&deployment(3, json!(0), json!(0))),
            (0, 1),
            "never both zero"
        );
        assert_eq!(
            max_surge_unavailable(&deployment(1, json!("25%"), json!("25%"))),
            (1, 0)
        );
    }

    #[test]
    fn hashes_are_stable_and_use_the_safe_alphabet() {
        let t: PodTemplateSpec = serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "v1"}]}})).expect("template");
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&t, None));
        assert!(h.bytes().all(|b| ALPHANUMS.contains(&b)), "{h}");
        assert_ne!(h, template_hash(&t, Some(1)));
        let mut with_label = t.clone();
        with_label
            .metadata
            .as_mut()
            .expect("meta")
            .labels
            .as_mut()
            .expect("labels")
            .insert(POD_TEMPLATE_HASH.into(), "x".into());
        assert_eq!(
            h,
            template_hash(&with_label, None),
            "the hash label itself is ignored"
        );
    }

    #[test]
    fn new_replicas_respect_surge() {
        let d = deployment(4, json!(1), json!(0));
        let rs = |n: i32| -> Arc<ReplicaSet> {
            Arc::new(serde_json::from_value(json!({"metadata": {"name": format!("r{n}")}, "spec": {"replicas": n, "selector": {}}})).expect("rs"))
        };
        let old = rs(4);
        let new = rs(0);
        assert_eq!(
            new_rs_new_replicas(&d, &[old.clone(), new.clone()], &new),
            1
        );
        let new1 = rs(1);
        assert_eq!(
            new_rs_new_replicas(&d, &[old, new1.clone()], &new1),
            1,
            "at max total: wait for old to scale down"
        );
    }
}
