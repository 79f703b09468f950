//! VolumeBinding, after kube-scheduler's: a pod's PersistentVolumeClaims
//! decide where it may go. A bound claim's volume must admit the node
//! (its required node affinity); an unbound claim of a
//! `WaitForFirstConsumer` class lets any node through (one whose static
//! volumes fit, for `kubernetes.io/no-provisioner` classes; the node the
//! scheduler already chose, once a claim carries
//! `volume.kubernetes.io/selected-node`); an unbound claim of an
//! `Immediate` class makes the pod unschedulable until it is bound. After a
//! decision, [`claims_to_select`] names the claims the scheduler annotates
//! with the chosen node (kube's PreBind) so the provisioner can create
//! their volumes there.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use schemas::MetaExt;

use crate::controllers::persistentvolume::{
    ANN_SELECTED_NODE, binder, claim_class, claim_phase, claim_volume, ephemeral,
    pod_claim_volumes, pod_claims, volume_fits_node, waits_for_first_consumer,
};
use crate::controllers::scheduler::cache::NodeInfo;
use crate::controllers::scheduler::framework::{Code, Cycle, Plugin, PreFilter, Rejection};
use crate::runtime::{Cache, ObjectRef};

const NAME: &str = "VolumeBinding";
/// kube-scheduler's reasons.
pub const UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
/// A bound volume's node affinity excludes the node.
pub const NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// No volume can be bound or provisioned for a delayed claim on the node.
pub const BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
/// A claim names a volume that does not exist.
pub const PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";

/// The caches the plugin reads.
#[derive(Clone)]
pub struct VolumeListers {
    /// PersistentVolumeClaims.
    pub claims: Cache<PersistentVolumeClaim>,
    /// PersistentVolumes.
    pub volumes: Cache<PersistentVolume>,
    /// StorageClasses.
    pub classes: Cache<StorageClass>,
}

impl VolumeListers {
    fn class(&self, c: &PersistentVolumeClaim) -> Option<Arc<StorageClass>> {
        let name = claim_class(c);
        (!name.is_empty())
            .then(|| self.classes.get(&ObjectRef::new(None, name)))
            .flatten()
    }
}

/// The plugin; without listers (the benchmark, unit tests) it lets every pod through.
pub struct VolumeBinding {
    /// Where claims, volumes and classes come from.
    pub listers: Option<VolumeListers>,
}

/// What PreFilter found about the pod's claims.
struct PodVolumes {
    /// Volumes of bound claims.
    bound: Vec<Arc<PersistentVolume>>,
    /// Delayed claims: (claim, the node already selected for it, static only).
    delayed: Vec<(Arc<PersistentVolumeClaim>, Option<String>, bool)>,
}

fn reject(reason: impl Into<String>) -> PreFilter {
    PreFilter::Reject(Rejection::new(
        NAME,
        Code::UnschedulableAndUnresolvable,
        reason,
    ))
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, cx: &mut Cycle<'_>) -> PreFilter {
        let Some(l) = &self.listers else {
            return PreFilter::Skip;
        };
        let pod = &cx.pod.pod;
        let names = pod_claim_volumes(pod);
        if names.is_empty() {
            return PreFilter::Skip;
        }
        let ns = cx.pod.namespace();
        let mut found = PodVolumes {
            bound: Vec::new(),
            delayed: Vec::new(),
        };
        let mut immediate = false;
        for (name, is_ephemeral) in names {
            let Some(claim) = l.claims.get(&ObjectRef::new(Some(ns), &name)) else {
                // normal right after a pod with an ephemeral volume is created
                return reject(if is_ephemeral {
                    format!(
                        "waiting for ephemeral volume controller to create the persistentvolumeclaim {name:?}"
                    )
                } else {
                    format!("persistentvolumeclaim {name:?} not found")
                });
            };
            if claim_phase(&claim) == "Lost" {
                return reject(format!(
                    "persistentvolumeclaim {name:?} bound to non-existent persistentvolume {:?}",
                    claim_volume(&claim).unwrap_or("")
                ));
            }
            if claim.metadata.deletion_timestamp.is_some() {
                return reject(format!("persistentvolumeclaim {name:?} is being deleted"));
            }
            if is_ephemeral && let Err(e) = ephemeral::volume_is_for_pod(pod, &claim) {
                return reject(e);
            }
            if let Some(v) = claim_volume(&claim) {
                match l.volumes.get(&ObjectRef::new(None, v)) {
                    Some(pv) => found.bound.push(pv),
                    None => return reject(PV_NOT_EXIST),
                }
                continue;
            }
            let class = l.class(&claim);
            if waits_for_first_consumer(class.as_deref()) {
                let selected = claim
                    .metadata
                    .annotations_map()
                    .get(ANN_SELECTED_NODE)
                    .cloned();
                let static_only = class
                    .as_deref()
                    .is_some_and(|c| c.provisioner == "kubernetes.io/no-provisioner");
                found.delayed.push((claim, selected, static_only));
            } else {
                immediate = true;
            }
        }
        if immediate {
            return reject(UNBOUND_IMMEDIATE);
        }
        cx.state.put(NAME, found);
        PreFilter::Run
    }

    fn filter(&self, cx: &Cycle<'_>, node: &NodeInfo) -> Result<(), Rejection> {
        let (Some(l), Some(found)) = (&self.listers, cx.state.get::<PodVolumes>(NAME)) else {
            return Ok(());
        };
        let no = |reason: &str| {
            Err(Rejection::new(
                NAME,
                Code::UnschedulableAndUnresolvable,
                reason,
            ))
        };
        if !found
            .bound
            .iter()
            .all(|pv| volume_fits_node(pv, &node.name, node.labels()))
        {
            return no(NODE_CONFLICT);
        }
        for (claim, selected, static_only) in &found.delayed {
            if selected.as_deref().is_some_and(|s| s != node.name) {
                return no(BIND_CONFLICT);
            }
            if *static_only
                && binder::best_match(claim, &l.volumes.all(), Some(&node.node)).is_none()
            {
                return no(BIND_CONFLICT);
            }
        }
        Ok(())
    }
}

/// The pod's unbound `WaitForFirstConsumer` claims that do not name a node
/// yet: the scheduler sets `volume.kubernetes.io/selected-node` on them.
pub fn claims_to_select(l: &VolumeListers, pod: &Pod) -> Vec<Arc<PersistentVolumeClaim>> {
    let ns = pod.metadata.namespace_str();
    pod_claims(pod)
        .iter()
        .filter_map(|name| l.claims.get(&ObjectRef::new(Some(ns), name)))
        .filter(|c| {
            claim_volume(c).is_none()
                && !c.metadata.annotations_map().contains_key(ANN_SELECTED_NODE)
                && waits_for_first_consumer(l.class(c).as_deref())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::plugins::testing::{cache, filter, node, pod};
    use crate::runtime::cache::new_cache;
    use serde_json::{Value, json};

    fn cache_of<K: schemas::Object + serde::de::DeserializeOwned>(items: Vec<Value>) -> Cache<K> {
        let (c, mut w) = new_cache::<K>(Vec::new());
        let objs = items
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("object"))
            .collect();
        w.restart(objs);
        c
    }

    /// `claim` controlled by the pod whose uid is `uid`.
    fn owned(mut claim: Value, uid: &str) -> Value {
        claim["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Pod",
            "name": "p", "uid": uid, "controller": true}]);
        claim
    }

    fn listers() -> VolumeListers {
        let claim = |name: &str, class: &str, volume: Option<&str>, ann: Value| {
            json!({"metadata": {"name": name, "namespace": "default", "annotations": ann},
                "spec": {"storageClassName": class, "volumeName": volume,
                    "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        };
        let on = |node: &str| {
            json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}})
        };
        VolumeListers {
            claims: cache_of(vec![
                claim("bound", "wait", Some("pv-b"), json!({})),
                claim("immediate", "now", None, json!({})),
                claim("delayed", "wait", None, json!({})),
                claim("chosen", "wait", None, json!({ANN_SELECTED_NODE: "c"})),
                claim("static", "static", None, json!({})),
                claim("dangling", "wait", Some("gone"), json!({})),
                owned(claim("p-mine", "wait", None, json!({})), "p"),
                owned(claim("p-theirs", "wait", None, json!({})), "another-p"),
            ]),
            volumes: cache_of(vec![
                json!({"metadata": {"name": "pv-b"}, "spec": {"nodeAffinity": on("b")}}),
                json!({"metadata": {"name": "pv-s"}, "spec": {"nodeAffinity": on("a"),
                    "storageClassName": "static", "accessModes": ["ReadWriteOnce"],
                    "capacity": {"storage": "2Gi"}}, "status": {"phase": "Available"}}),
            ]),
            classes: cache_of(vec![
                json!({"metadata": {"name": "wait"}, "provisioner": "korral.dev/local-path",
                    "volumeBindingMode": "WaitForFirstConsumer"}),
                json!({"metadata": {"name": "now"}, "provisioner": "x", "volumeBindingMode": "Immediate"}),
                json!({"metadata": {"name": "static"}, "provisioner": "kubernetes.io/no-provisioner",
                    "volumeBindingMode": "WaitForFirstConsumer"}),
            ]),
        }
    }

    #[test]
    fn claims_decide_the_nodes() {
        let host = |n: &str| node(n, json!({"kubernetes.io/hostname": n}), json!({}));
        let c = cache(vec![host("a"), host("b"), host("c")], Vec::new());
        let plugin = VolumeBinding {
            listers: Some(listers()),
        };
        let using = |claim: &str| {
            pod(
                "p",
                json!({}),
                json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}),
            )
        };
        let conflict = Some(NODE_CONFLICT.to_string());
        let bind = Some(BIND_CONFLICT.to_string());
        let all = |r: &str| vec![Some(r.to_string()); 3];
        let cases: Vec<(&str, Vec<Option<String>>)> = vec![
            ("bound", vec![conflict.clone(), None, conflict]),
            ("immediate", all(UNBOUND_IMMEDIATE)),
            ("delayed", vec![None, None, None]),
            ("chosen", vec![bind.clone(), bind.clone(), None]),
            ("static", vec![None, bind.clone(), bind]),
            ("dangling", all(PV_NOT_EXIST)),
            (
                "missing",
                all("persistentvolumeclaim \"missing\" not found"),
            ),
        ];
        for (claim, want) in cases {
            assert_eq!(filter(&plugin, &using(claim), &c), want, "{claim}");
        }
        // generic ephemeral volumes: claim `<pod>-<volume>`, controlled by the pod
        let ephemeral = |volume: &str| {
            pod(
                "p",
                json!({}),
                json!({"volumes": [{"name": volume, "ephemeral": {"volumeClaimTemplate": {
                    "spec": {"resources": {"requests": {"storage": "1Gi"}}}}}}]}),
            )
        };
        for (volume, want) in [
            ("mine", vec![None, None, None]),
            (
                "theirs",
                all("PVC default/p-theirs was not created for pod default/p (pod is not owner)"),
            ),
            (
                "absent",
                all(
                    "waiting for ephemeral volume controller to create the persistentvolumeclaim \"p-absent\"",
                ),
            ),
        ] {
            assert_eq!(filter(&plugin, &ephemeral(volume), &c), want, "{volume}");
        }
        let l = listers();
        let p = using("delayed");
        let names: Vec<String> = claims_to_select(&l, &p.pod)
            .iter()
            .map(|c| c.metadata.name_str().to_string())
            .collect();
        assert_eq!(names, ["delayed"]);
        assert!(claims_to_select(&l, &using("chosen").pod).is_empty());
        // without listers every pod passes
        let none = VolumeBinding { listers: None };
        assert_eq!(
            filter(&none, &using("immediate"), &c),
            vec![None, None, None]
        );
    }
}
