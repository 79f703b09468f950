//! A StatefulSet pod's identity and storage, as Kubernetes'
//! `stateful_set_utils.go` defines them: the name `<set>-<ordinal>`, the
//! labels naming the pod and its index, hostname and subdomain, one claim
//! `<template>-<set>-<ordinal>` per volumeClaimTemplate, and the owner
//! references a claim carries under persistentVolumeClaimRetentionPolicy.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use schemas::MetaExt;

use crate::controllers::podutil::{controller_ref, is_available, is_ready};

/// The label holding the pod's own name (`apps.StatefulSetPodNameLabel`).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding the pod's ordinal (`apps.PodIndexLabel`).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label naming the ControllerRevision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The set's first ordinal (`spec.ordinals.start`, default 0).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0)
}

/// The set's desired replicas (default 1).
pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

/// The set's last ordinal (start + replicas - 1).
pub fn end_ordinal(set: &StatefulSet) -> i32 {
    start_ordinal(set) + replicas(set) - 1
}

/// `(parent, ordinal)` from a pod name `<parent>-<ordinal>`; the ordinal is
/// -1 when the name does not end in one.
pub fn parent_and_ordinal(name: &str) -> (&str, i32) {
    match name.rsplit_once('-') {
        Some((parent, digits))
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (parent, digits.parse().unwrap_or(-1))
        }
        _ => ("", -1),
    }
}

/// A pod's ordinal (-1 if its name has none).
pub fn ordinal(p: &Pod) -> i32 {
    parent_and_ordinal(p.metadata.name_str()).1
}

/// The name of the set's pod at `ordinal`.
pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.metadata.name_str())
}

/// Whether the pod's name makes it one of the set's (`isMemberOf`).
pub fn is_member(set: &StatefulSet, p: &Pod) -> bool {
    parent_and_ordinal(p.metadata.name_str()).0 == set.metadata.name_str()
}

/// Whether the pod's ordinal lies in `[start, end]`.
pub fn in_ordinal_range(set: &StatefulSet, p: &Pod) -> bool {
    let o = ordinal(p);
    o >= start_ordinal(set) && o <= end_ordinal(set)
}

/// The name of the claim for `template` at `ordinal`: `<claim>-<set>-<ordinal>`.
pub fn claim_name(set: &StatefulSet, template: &str, ordinal: i32) -> String {
    format!("{template}-{}-{ordinal}", set.metadata.name_str())
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether the API server has the pod (its phase is set).
pub fn is_created(p: &Pod) -> bool {
    !phase(p).is_empty()
}

/// Whether the pod is Pending.
pub fn is_pending(p: &Pod) -> bool {
    phase(p) == "Pending"
}

/// Whether the pod finished (Failed or Succeeded): it is deleted and made again.
pub fn is_finished(p: &Pod) -> bool {
    matches!(phase(p), "Failed" | "Succeeded")
}

/// Whether the pod is being deleted.
pub fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

/// Running and Ready.
pub fn is_running_and_ready(p: &Pod) -> bool {
    phase(p) == "Running" && is_ready(p)
}

/// Running and Ready for at least `min_ready_seconds`.
pub fn is_running_and_available(p: &Pod, min_ready_seconds: i32) -> bool {
    phase(p) == "Running" && is_available(p, min_ready_seconds)
}

/// Running, Ready and not terminating.
pub fn is_healthy(p: &Pod) -> bool {
    is_running_and_ready(p) && !is_terminating(p)
}

/// The revision (name) the pod was made from.
pub fn pod_revision(p: &Pod) -> &str {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .map_or("", String::as_str)
}

/// Whether name, namespace and the pod-name label are the pod's identity.
pub fn identity_matches(set: &StatefulSet, p: &Pod) -> bool {
    let (parent, ord) = parent_and_ordinal(p.metadata.name_str());
    ord >= 0
        && parent == set.metadata.name_str()
        && p.metadata.name_str() == pod_name(set, ord)
        && p.metadata.namespace_str() == set.metadata.namespace_str()
        && p.metadata
            .labels_map()
            .get(POD_NAME_LABEL)
            .map(String::as_str)
            == Some(p.metadata.name_str())
}

/// The labels that make up a pod's identity (`updateIdentity`).
pub fn identity_labels(p: &Pod) -> BTreeMap<String, String> {
    let name = p.metadata.name_str().to_string();
    BTreeMap::from([
        (POD_INDEX_LABEL.to_string(), ordinal(p).to_string()),
        (POD_NAME_LABEL.to_string(), name),
    ])
}

/// Whether every claim template is mounted from the pod's own claim.
pub fn storage_matches(set: &StatefulSet, p: &Pod) -> bool {
    let ord = ordinal(p);
    if ord < 0 {
        return false;
    }
    let volumes: BTreeMap<&str, &Volume> = p
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .map(|v| (v.name.as_str(), v))
        .collect();
    claim_templates(set).iter().all(|t| {
        let template = t.metadata.name_str();
        volumes
            .get(template)
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .is_some_and(|c| c.claim_name == claim_name(set, template, ord))
    })
}

fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or_default()
}

/// The claims of the set's pod at `ordinal`, by template name: each
/// template with its name, namespace, and the selector's labels added.
pub fn claims(set: &StatefulSet, ordinal: i32) -> Vec<(String, PersistentVolumeClaim)> {
    let selector_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|t| {
            let template = t.metadata.name_str().to_string();
            let mut claim = t.clone();
            claim.metadata.name = Some(claim_name(set, &template, ordinal));
            claim.metadata.namespace = set.metadata.namespace.clone();
            let labels = claim.metadata.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(selector_labels.clone());
            claim.status = None;
            (template, claim)
        })
        .collect()
}

/// The set's pod at `ordinal` from `set`'s template (`newStatefulSetPod`),
/// labelled with `revision`.
pub fn new_pod(set: &StatefulSet, ordinal: i32, revision: &str) -> Pod {
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let name = pod_name(set, ordinal);
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.to_string());
    let mut spec = template.spec.unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    // the claims' volumes first, then the template's others (`updateStorage`)
    let claims = claims(set, ordinal);
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(template, claim)| Volume {
            name: template.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name_str().to_string(),
                read_only: Some(false),
            }),
            ..Default::default()
        })
        .collect();
    volumes.extend(
        spec.volumes
            .take()
            .into_iter()
            .flatten()
            .filter(|v| !claims.iter().any(|(t, _)| *t == v.name)),
    );
    spec.volumes = Some(volumes).filter(|v| !v.is_empty());
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            generate_name: Some(format!("{}-", set.metadata.name_str())),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref(set)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

// ---- claims under persistentVolumeClaimRetentionPolicy ----

/// `(whenDeleted is Delete, whenScaled is Delete)`; anything else is Retain.
pub fn retention(set: &StatefulSet) -> (bool, bool) {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    (
        delete(p.and_then(|p| p.when_deleted.as_ref())),
        delete(p.and_then(|p| p.when_scaled.as_ref())),
    )
}

/// Whether `r` names `name` of kind `kind` in `group` (any uid: `matchesRef`).
fn matches_ref(r: &OwnerReference, group: &str, kind: &str, name: &str) -> bool {
    let ref_group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    ref_group == group && r.kind == kind && r.name == name
}

fn is_set_ref(r: &OwnerReference, set: &StatefulSet) -> bool {
    matches_ref(r, "apps", "StatefulSet", set.metadata.name_str())
}

fn is_pod_ref(r: &OwnerReference, p: &Pod) -> bool {
    matches_ref(r, "", "Pod", p.metadata.name_str())
}

fn refs(claim: &PersistentVolumeClaim) -> &[OwnerReference] {
    claim
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
}

fn has_owner(claim: &PersistentVolumeClaim, uid: &str) -> bool {
    !uid.is_empty() && refs(claim).iter().any(|r| r.uid == uid)
}

/// A reference to the set or pod by name but another uid (`hasStaleOwnerRef`):
/// left by an earlier set or pod of the same name.
fn has_stale_ref(
    claim: &PersistentVolumeClaim,
    matches: impl Fn(&OwnerReference) -> bool,
    uid: &str,
) -> bool {
    refs(claim)
        .iter()
        .find(|r| matches(r))
        .is_some_and(|r| r.uid != uid)
}

/// Whether a claim of the pod about to be created still belongs to an
/// earlier pod of that name, under whenScaled=Delete (`PodClaimIsStale`):
/// the garbage collector is about to delete it, so the pod must wait.
pub fn claim_is_stale(set: &StatefulSet, claim: &PersistentVolumeClaim, p: &Pod) -> bool {
    retention(set).1 && has_stale_ref(claim, |r| is_pod_ref(r, p), p.metadata.uid_str())
}

fn has_unexpected_controller(claim: &PersistentVolumeClaim, set: &StatefulSet, p: &Pod) -> bool {
    if retention(set) == (false, false) {
        return false;
    }
    refs(claim).iter().any(|r| {
        if is_set_ref(r, set) {
            return r.uid != set.metadata.uid_str();
        }
        if is_pod_ref(r, p) {
            return r.uid != p.metadata.uid_str();
        }
        r.controller == Some(true)
    })
}

/// The owner references the claim should carry (`isClaimOwnerUpToDate` +
/// `updateClaimOwnerRefForSetAndPod`), or `None` when they are right (or
/// the claim is in a state the controller leaves alone):
/// Retain/Retain none; whenDeleted=Delete the set; whenScaled=Delete the
/// pod once scaled down (and the set before, if whenDeleted=Delete).
pub fn claim_owners(
    set: &StatefulSet,
    claim: &PersistentVolumeClaim,
    p: &Pod,
) -> Option<Vec<OwnerReference>> {
    let (set_uid, pod_uid) = (set.metadata.uid_str(), p.metadata.uid_str());
    if has_stale_ref(claim, |r| is_set_ref(r, set), set_uid)
        || has_stale_ref(claim, |r| is_pod_ref(r, p), pod_uid)
    {
        return None;
    }
    let unexpected = has_unexpected_controller(claim, set, p);
    let ours = |r: &OwnerReference| is_set_ref(r, set) || is_pod_ref(r, p);
    let mut kept: Vec<OwnerReference> = refs(claim).iter().filter(|r| !ours(r)).cloned().collect();
    if unexpected {
        let touched = has_owner(claim, set_uid) || has_owner(claim, pod_uid);
        return touched.then_some(kept);
    }
    let (when_deleted, when_scaled) = retention(set);
    let scaled_down = !in_ordinal_range(set, p);
    let want_set = when_deleted && !(when_scaled && scaled_down);
    let want_pod = when_scaled && scaled_down && !pod_uid.is_empty();
    let non_controller = refs(claim)
        .iter()
        .any(|r| (r.uid == set_uid || r.uid == pod_uid) && r.controller != Some(true));
    if !non_controller
        && has_owner(claim, set_uid) == want_set
        && has_owner(claim, pod_uid) == want_pod
    {
        return None;
    }
    if want_set {
        kept.push(controller_ref(set));
    }
    if want_pod {
        kept.push(controller_ref(p));
    }
    Some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn set(retention: (&str, &str)) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"},
            "spec": {"replicas": 2, "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "nginx"}},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": retention.0, "whenScaled": retention.1},
                "template": {"metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}],
                             "volumes": [{"name": "www", "emptyDir": {}}, {"name": "cfg", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}
        }))
        .expect("statefulset")
    }

    #[test]
    fn names_and_ordinals() {
        assert_eq!(parent_and_ordinal("web-12"), ("web", 12));
        assert_eq!(parent_and_ordinal("my-web-0"), ("my-web", 0));
        assert_eq!(parent_and_ordinal("web-x"), ("", -1));
        assert_eq!(parent_and_ordinal("web"), ("", -1));
        let s = set(("Retain", "Retain"));
        assert_eq!(claim_name(&s, "www", 1), "www-web-1");
    }

    #[test]
    fn a_new_pod_has_its_identity_and_its_claims() {
        let s = set(("Retain", "Retain"));
        let p = new_pod(&s, 1, "web-abc");
        assert_eq!(p.metadata.name_str(), "web-1");
        let labels = p.metadata.labels_map();
        assert_eq!(labels[POD_NAME_LABEL], "web-1");
        assert_eq!(labels[POD_INDEX_LABEL], "1");
        assert_eq!(labels[REVISION_LABEL], "web-abc");
        assert_eq!(labels["app"], "nginx");
        let spec = p.spec.as_ref().expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some("web-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let volumes = spec.volumes.as_ref().expect("volumes");
        let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["www", "cfg"],
            "the claim replaces the template's volume"
        );
        assert_eq!(
            volumes[0]
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some("www-web-1")
        );
        assert!(identity_matches(&s, &p) && storage_matches(&s, &p));
        let (template, claim) = &claims(&s, 1)[0];
        assert_eq!(
            (template.as_str(), claim.metadata.name_str()),
            ("www", "www-web-1")
        );
        assert_eq!(claim.metadata.labels_map()["app"], "nginx");
        assert_eq!(
            p.metadata.owner_references.as_ref().expect("owner")[0].kind,
            "StatefulSet"
        );
    }

    fn with_uid(mut p: Pod, uid: &str) -> Pod {
        p.metadata.uid = Some(uid.into());
        p
    }

    fn only_owner(owners: &[OwnerReference]) -> (&str, &str) {
        assert_eq!(owners.len(), 1, "{owners:?}");
        (owners[0].kind.as_str(), owners[0].uid.as_str())
    }

    #[test]
    fn claim_owners_follow_the_retention_policy() {
        let claim = claims(&set(("Retain", "Retain")), 1).remove(0).1;
        // Retain/Retain: nothing to add
        let s = set(("Retain", "Retain"));
        let p = with_uid(new_pod(&s, 1, "r"), "pod-uid");
        assert_eq!(claim_owners(&s, &claim, &p), None);
        // whenDeleted=Delete: the set owns it
        let s = set(("Delete", "Retain"));
        let owners = claim_owners(&s, &claim, &p).expect("set ref added");
        assert_eq!(only_owner(&owners), ("StatefulSet", "set-uid"));
        let mut owned = claim.clone();
        owned.metadata.owner_references = Some(owners);
        assert_eq!(claim_owners(&s, &owned, &p), None, "up to date");
        // whenScaled=Delete: a scaled-down pod (ordinal 2 of 2 replicas) owns it, the set no longer
        let s = set(("Delete", "Delete"));
        let gone = with_uid(new_pod(&s, 2, "r"), "pod2-uid");
        let owners = claim_owners(&s, &owned, &gone).expect("moved to the pod");
        assert_eq!(only_owner(&owners), ("Pod", "pod2-uid"));
        // a claim still owned by an earlier pod of that name is stale for a new one
        let mut stale = claim.clone();
        stale.metadata.owner_references = Some(owners);
        let fresh = new_pod(&s, 2, "r");
        assert!(claim_is_stale(&s, &stale, &fresh));
        assert!(!claim_is_stale(&set(("Retain", "Retain")), &stale, &fresh));
    }
}
