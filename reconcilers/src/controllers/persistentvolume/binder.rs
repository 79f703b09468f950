//! The PersistentVolume binder, after kube's `persistentvolume-binder`
//! (pkg/controller/volume/persistentvolume): one `reconcile` for both kinds
//! — a namespaced key is a claim (`syncClaim`), a cluster-scoped one a
//! volume (`syncVolume`).
//!
//! A Pending claim binds to the smallest Available volume of its class
//! that offers its access modes, volume mode, size and `selector` (a
//! volume pre-bound to it through `claimRef`, or named by its
//! `volumeName`, first); the volume gets `claimRef` and phase Bound, the
//! claim `volumeName`, `pv.kubernetes.io/bind-completed` and
//! `pv.kubernetes.io/bound-by-controller` (where the controller chose) and
//! phase Bound with the volume's capacity. A claim of a class with a
//! provisioner and no volume to bind is handed to it
//! (`volume.kubernetes.io/storage-provisioner`); a `WaitForFirstConsumer`
//! claim waits for the scheduler's `volume.kubernetes.io/selected-node`.
//! A claim that names no class and finds no volume gets the default class
//! once there is one (kube's retroactive default StorageClass, GA in 1.28).
//! A volume whose claim is gone becomes Released; reclaim `Retain` keeps
//! it, `Delete` leaves it to its provisioner (local-path volumes: their
//! node daemon), `Delete` without one and `Recycle` make it Failed.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use schemas::{MetaExt, QuantityExt, SelectorExt};
use serde_json::json;

use super::State;
use super::{
    ANN_BETA_STORAGE_PROVISIONER, ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER, claim_class, claim_has_class, claim_phase,
    claim_volume, default_class, is_default_class, volume_class, volume_fits_node, volume_phase,
    waits_for_first_consumer,
};
use crate::controllers::Context;
use crate::controllers::recorder::{NORMAL, WARNING};
use crate::runtime::{Action, ClientError, Controller, ObjectRef, Patch, WriteParams};

const MANAGER: &str = "persistentvolume-binder-controller";

fn wp() -> WriteParams {
    WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// The claim a volume's `claimRef` names.
fn claim_key(v: &PersistentVolume) -> Option<ObjectRef> {
    let r = v.spec.as_ref()?.claim_ref.as_ref()?;
    Some(ObjectRef::new(r.namespace.as_deref(), r.name.as_deref()?))
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let claims = ctx.informers.get::<PersistentVolumeClaim>();
    let volumes = ctx.informers.get::<PersistentVolume>();
    let classes = ctx.informers.get::<StorageClass>();
    let (for_classes, for_volumes) = (claims.cache(), claims.cache());
    let controller = Controller::new("persistentvolume-binder", &claims)
        // a claim's volume follows its claim
        .watches(&claims, |c: &PersistentVolumeClaim| {
            claim_volume(c)
                .map(|v| ObjectRef::new(None, v))
                .into_iter()
                .collect()
        })
        // a volume is synced, and so is the claim it names; an unclaimed
        // one is offered to the pending claims of its class
        .watches(&volumes, move |v: &PersistentVolume| {
            let mut keys: Vec<ObjectRef> = std::iter::once(ObjectRef::of(v))
                .chain(claim_key(v))
                .collect();
            if claim_key(v).is_none() && v.metadata.deletion_timestamp.is_none() {
                keys.extend(
                    for_volumes
                        .all()
                        .iter()
                        .filter(|c| claim_volume(c).is_none() && claim_class(c) == volume_class(v))
                        .map(|c| ObjectRef::of(c.as_ref())),
                );
            }
            keys
        })
        // pending claims of a class that appears or changes; a default class
        // also takes the claims that name none
        .watches(&classes, move |sc: &StorageClass| {
            let default = is_default_class(sc);
            for_classes
                .all()
                .iter()
                .filter(|c| {
                    claim_volume(c).is_none()
                        && (claim_class(c) == sc.metadata.name_str()
                            || (default && !claim_has_class(c)))
                })
                .map(|c| ObjectRef::of(c.as_ref()))
                .collect()
        })
        .workers(5);
    super::run_controller(ctx, MANAGER, controller, reconcile).await;
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    if key.namespace.is_some() {
        sync_claim(&state, &key).await
    } else {
        sync_volume(&state, &key).await
    }
}

// ---- claims ----

/// Whether volume `v` can satisfy claim `c` (its class, modes, size, selector),
/// ignoring who it is bound to.
pub fn volume_matches(c: &PersistentVolumeClaim, v: &PersistentVolume) -> bool {
    let (Some(cs), Some(vs)) = (c.spec.as_ref(), v.spec.as_ref()) else {
        return false;
    };
    if claim_class(c) != volume_class(v) {
        return false;
    }
    let have_modes = vs.access_modes.as_deref().unwrap_or_default();
    if !cs
        .access_modes
        .iter()
        .flatten()
        .all(|m| have_modes.contains(m))
    {
        return false;
    }
    let mode = |m: Option<&String>| m.map(|s| s.as_str()).unwrap_or("Filesystem").to_string();
    if mode(cs.volume_mode.as_ref()) != mode(vs.volume_mode.as_ref()) {
        return false;
    }
    if let Some(sel) = &cs.selector
        && !sel.matches(v.metadata.labels_map())
    {
        return false;
    }
    let want = cs
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"));
    let have = vs.capacity.as_ref().and_then(|c| c.get("storage"));
    match (want, have) {
        (Some(w), Some(h)) => h.nanos() >= w.nanos(),
        (None, _) => true,
        (Some(_), None) => false,
    }
}

fn capacity(v: &PersistentVolume) -> i128 {
    v.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map(|q| q.nanos())
        .unwrap_or(0)
}

/// Whether `v`'s `claimRef` names claim `c` (by uid when it has one).
fn refers_to(v: &PersistentVolume, c: &PersistentVolumeClaim) -> bool {
    let Some(r) = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    r.name.as_deref() == Some(c.metadata.name_str())
        && r.namespace.as_deref() == Some(c.metadata.namespace_str())
        && r.uid
            .as_deref()
            .is_none_or(|u| u.is_empty() || u == c.metadata.uid_str())
}

/// kube's `findBestMatchForClaim`: a volume pre-bound to the claim, else the
/// smallest Available unclaimed volume that matches (on `node`, when the
/// claim waits for its first consumer and the scheduler chose one).
pub fn best_match<'a>(
    c: &PersistentVolumeClaim,
    volumes: &'a [Arc<PersistentVolume>],
    node: Option<&Node>,
) -> Option<&'a Arc<PersistentVolume>> {
    let usable = |v: &&Arc<PersistentVolume>| {
        v.metadata.deletion_timestamp.is_none()
            && volume_matches(c, v)
            && node
                .is_none_or(|n| volume_fits_node(v, n.metadata.name_str(), n.metadata.labels_map()))
    };
    if let Some(pre) = volumes.iter().filter(usable).find(|v| refers_to(v, c)) {
        return Some(pre);
    }
    volumes
        .iter()
        .filter(usable)
        .filter(|v| {
            v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).is_none()
                && matches!(volume_phase(v), "Available" | "")
        })
        .min_by_key(|v| capacity(v))
}

async fn sync_claim(state: &State, key: &ObjectRef) -> Result<Action, ClientError> {
    let Some(claim) = state.claims.get(key) else {
        return Ok(Action::AwaitChange);
    };
    if claim.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    match claim_volume(&claim) {
        None => sync_unbound_claim(state, &claim).await,
        Some(name) => {
            let name = name.to_string();
            sync_named_claim(state, &claim, &name).await
        }
    }
}

async fn sync_unbound_claim(
    state: &State,
    claim: &PersistentVolumeClaim,
) -> Result<Action, ClientError> {
    let class_name = claim_class(claim).to_string();
    let class = (!class_name.is_empty())
        .then(|| state.classes.get(&ObjectRef::new(None, &class_name)))
        .flatten();
    let delayed = waits_for_first_consumer(class.as_deref());
    let selected = claim.metadata.annotations_map().get(ANN_SELECTED_NODE);
    let node = selected.and_then(|n| state.nodes.get(&ObjectRef::new(None, n)));
    let volumes = state.volumes.all();
    if (!delayed || selected.is_some())
        && let Some(v) = best_match(claim, &volumes, node.as_deref())
    {
        return bind(state, v, claim).await;
    }
    // kube ≥ 1.28 (RetroactiveDefaultStorageClass): a claim created while
    // no class was the default gets the one there is now
    if !claim_has_class(claim)
        && let Some(sc) = default_class(&state.classes.all())
    {
        let name = sc.metadata.name_str();
        let patch = json!({
            "metadata": {"resourceVersion": claim.metadata.resource_version},
            "spec": {"storageClassName": name},
        });
        claims_api(state, claim)
            .patch(claim.metadata.name_str(), &Patch::Merge(patch), &wp())
            .await?;
        tracing::info!(claim = %ObjectRef::of(claim), class = name, "assigned the default StorageClass");
        return Ok(Action::AwaitChange);
    }
    // recorded on every sync, as kube's controller does (the events aggregate)
    if delayed && selected.is_none() {
        state.recorder.record(
            claim,
            NORMAL,
            "WaitForFirstConsumer",
            "",
            "waiting for first consumer to be created before binding",
        );
        return set_claim_pending(state, claim).await;
    }
    match class.as_deref() {
        Some(sc)
            if !sc.provisioner.is_empty() && sc.provisioner != "kubernetes.io/no-provisioner" =>
        {
            let a = claim.metadata.annotations_map();
            if a.get(ANN_STORAGE_PROVISIONER) != Some(&sc.provisioner) {
                let patch = json!({"metadata": {
                "resourceVersion": claim.metadata.resource_version,
                "annotations": {
                    ANN_STORAGE_PROVISIONER: sc.provisioner,
                    ANN_BETA_STORAGE_PROVISIONER: sc.provisioner,
                }}});
                claims_api(state, claim)
                    .patch(claim.metadata.name_str(), &Patch::Merge(patch), &wp())
                    .await?;
                state.recorder.record(
                    claim,
                    NORMAL,
                    "ExternalProvisioning",
                    "",
                    &format!(
                        "Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
                        sc.provisioner
                    ),
                );
            }
        }
        None if !class_name.is_empty() => {
            state.recorder.record(
                claim,
                WARNING,
                "ProvisioningFailed",
                "",
                &format!("storageclass.storage.k8s.io {class_name:?} not found"),
            );
        }
        _ => {
            state.recorder.record(
                claim,
                NORMAL,
                "FailedBinding",
                "",
                "no persistent volumes available for this claim and no storage class is set",
            );
        }
    }
    set_claim_pending(state, claim).await
}

async fn sync_named_claim(
    state: &State,
    claim: &PersistentVolumeClaim,
    volume: &str,
) -> Result<Action, ClientError> {
    let completed = claim
        .metadata
        .annotations_map()
        .contains_key(ANN_BIND_COMPLETED);
    let Some(v) = state.volumes.get(&ObjectRef::new(None, volume)) else {
        if completed {
            if claim_phase(claim) != "Lost" {
                state.recorder.record(
                    claim,
                    WARNING,
                    "ClaimLost",
                    "",
                    "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
                );
            }
            return set_claim_phase(state, claim, "Lost").await;
        }
        return set_claim_pending(state, claim).await;
    };
    let has_ref = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).is_some();
    if !has_ref || refers_to(&v, claim) {
        if !has_ref && !volume_matches(claim, &v) {
            state.recorder.record(
                claim,
                WARNING,
                "VolumeMismatch",
                "",
                &format!("Cannot bind to requested volume {volume:?}: it does not match the claim"),
            );
            return set_claim_pending(state, claim).await;
        }
        return bind(state, &v, claim).await;
    }
    if completed {
        state.recorder.record(
            claim,
            WARNING,
            "ClaimMisbound",
            "",
            "Two claims are bound to the same volume, this one is bound incorrectly",
        );
        return set_claim_phase(state, claim, "Lost").await;
    }
    state.recorder.record(
        claim,
        WARNING,
        "FailedBinding",
        "",
        &format!("volume {volume:?} already bound to a different claim."),
    );
    set_claim_pending(state, claim).await
}

fn claims_api(
    state: &State,
    c: &PersistentVolumeClaim,
) -> crate::runtime::Api<PersistentVolumeClaim> {
    state
        .ctx
        .client
        .api::<PersistentVolumeClaim>(Some(c.metadata.namespace_str()))
}

async fn set_claim_pending(
    state: &State,
    claim: &PersistentVolumeClaim,
) -> Result<Action, ClientError> {
    set_claim_phase(state, claim, "Pending").await
}

async fn set_claim_phase(
    state: &State,
    claim: &PersistentVolumeClaim,
    phase: &str,
) -> Result<Action, ClientError> {
    if claim_phase(claim) != phase {
        claims_api(state, claim)
            .patch_status(
                claim.metadata.name_str(),
                &Patch::Merge(json!({"status": {"phase": phase}})),
                &wp(),
            )
            .await?;
    }
    Ok(Action::AwaitChange)
}

/// Binds volume `v` and claim `c` both ways (`bind` in kube's controller):
/// the volume's `claimRef` and phase, then the claim's `volumeName`,
/// annotations and status. Each step is skipped when already done.
async fn bind(
    state: &State,
    v: &PersistentVolume,
    c: &PersistentVolumeClaim,
) -> Result<Action, ClientError> {
    let vname = v.metadata.name_str().to_string();
    let pv_api = state.ctx.client.api::<PersistentVolume>(None);
    let current_ref = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    let ref_done = current_ref.is_some_and(|r| r.uid.as_deref() == Some(c.metadata.uid_str()));
    if !ref_done {
        let mut meta = json!({"resourceVersion": v.metadata.resource_version});
        if current_ref.is_none() {
            meta["annotations"] = json!({ANN_BOUND_BY_CONTROLLER: "yes"});
        }
        let patch = json!({"metadata": meta, "spec": {"claimRef": {
            "kind": "PersistentVolumeClaim", "apiVersion": "v1",
            "namespace": c.metadata.namespace_str(), "name": c.metadata.name_str(),
            "uid": c.metadata.uid_str(), "resourceVersion": c.metadata.resource_version,
        }}});
        pv_api.patch(&vname, &Patch::Merge(patch), &wp()).await?;
    }
    if volume_phase(v) != "Bound" {
        pv_api
            .patch_status(
                &vname,
                &Patch::Merge(
                    json!({"status": {"phase": "Bound", "message": null, "reason": null}}),
                ),
                &wp(),
            )
            .await?;
    }
    let a = c.metadata.annotations_map();
    let named = claim_volume(c).is_some();
    if !named || !a.contains_key(ANN_BIND_COMPLETED) {
        let mut ann = json!({ANN_BIND_COMPLETED: "yes"});
        if !named {
            ann[ANN_BOUND_BY_CONTROLLER] = json!("yes");
        }
        let patch = json!({
            "metadata": {"resourceVersion": c.metadata.resource_version, "annotations": ann},
            "spec": {"volumeName": vname},
        });
        claims_api(state, c)
            .patch(c.metadata.name_str(), &Patch::Merge(patch), &wp())
            .await?;
    }
    let vs = v.spec.as_ref();
    let st = c.status.as_ref();
    let mut want_status = json!({
        "phase": "Bound",
        "accessModes": vs.and_then(|s| s.access_modes.clone()),
    });
    let mut have_status = json!({
        "phase": st.and_then(|s| s.phase.clone()),
        "accessModes": st.and_then(|s| s.access_modes.clone()),
    });
    // capacity is set as the claim becomes Bound, not after (as kube's
    // updateClaimStatus): a resize (`expand.rs`) owns it from then on
    if claim_phase(c) != "Bound" {
        want_status["capacity"] = json!(vs.and_then(|s| s.capacity.clone()));
        have_status["capacity"] = json!(st.and_then(|s| s.capacity.clone()));
    }
    if want_status != have_status {
        claims_api(state, c)
            .patch_status(
                c.metadata.name_str(),
                &Patch::Merge(json!({"status": want_status})),
                &wp(),
            )
            .await?;
        tracing::info!(claim = %ObjectRef::of(c), volume = %vname, "bound");
    }
    Ok(Action::AwaitChange)
}

// ---- volumes ----

async fn set_volume_phase(
    state: &State,
    v: &PersistentVolume,
    phase: &str,
    message: Option<&str>,
) -> Result<(), ClientError> {
    let have_message = v.status.as_ref().and_then(|s| s.message.as_deref());
    if volume_phase(v) == phase && have_message == message {
        return Ok(());
    }
    state
        .ctx
        .client
        .api::<PersistentVolume>(None)
        .patch_status(
            v.metadata.name_str(),
            &Patch::Merge(json!({"status": {"phase": phase, "message": message}})),
            &wp(),
        )
        .await?;
    Ok(())
}

async fn sync_volume(state: &State, key: &ObjectRef) -> Result<Action, ClientError> {
    // a volume being deleted is still synced: pv-protection waits for it to leave Bound
    let Some(v) = state.volumes.get(key) else {
        return Ok(Action::AwaitChange);
    };
    let Some(r) = v.spec.as_ref().and_then(|s| s.claim_ref.clone()) else {
        set_volume_phase(state, &v, "Available", None).await?;
        return Ok(Action::AwaitChange);
    };
    let uid = r.uid.clone().unwrap_or_default();
    if uid.is_empty() {
        // pre-bound by a user; waits for its claim
        set_volume_phase(state, &v, "Available", None).await?;
        return Ok(Action::AwaitChange);
    }
    let Some(ck) = claim_key(&v) else {
        return Ok(Action::AwaitChange);
    };
    let mut claim = state
        .claims
        .get(&ck)
        .filter(|c| c.metadata.uid_str() == uid);
    if claim.is_none() {
        // the cache may lag a claim just created: decide on a fresh read
        let api = state
            .ctx
            .client
            .api::<PersistentVolumeClaim>(ck.namespace.as_deref());
        claim = api
            .get_opt(&ck.name)
            .await?
            .filter(|c| c.metadata.uid_str() == uid)
            .map(Arc::new);
    }
    match claim {
        None => release(state, &v).await,
        Some(c) => match claim_volume(&c) {
            // binding in progress: the claim's sync finishes it
            None => Ok(Action::AwaitChange),
            Some(name) if name == v.metadata.name_str() => {
                set_volume_phase(state, &v, "Bound", None).await?;
                Ok(Action::AwaitChange)
            }
            Some(_) => {
                // the claim went elsewhere
                if v.metadata
                    .annotations_map()
                    .contains_key(ANN_BOUND_BY_CONTROLLER)
                {
                    let patch = json!({
                        "metadata": {"resourceVersion": v.metadata.resource_version,
                            "annotations": {ANN_BOUND_BY_CONTROLLER: null}},
                        "spec": {"claimRef": null},
                    });
                    state
                        .ctx
                        .client
                        .api::<PersistentVolume>(None)
                        .patch(v.metadata.name_str(), &Patch::Merge(patch), &wp())
                        .await?;
                    Ok(Action::AwaitChange)
                } else {
                    release(state, &v).await
                }
            }
        },
    }
}

/// The claim is gone: Released, then the reclaim policy.
async fn release(state: &State, v: &PersistentVolume) -> Result<Action, ClientError> {
    if volume_phase(v) == "Failed" {
        return Ok(Action::AwaitChange);
    }
    let policy = v
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain");
    let provisioned_by = v.metadata.annotations_map().get(ANN_PROVISIONED_BY);
    let name = v.metadata.name_str();
    let failed = match policy {
        "Delete" if provisioned_by.is_none() => Some((
            "VolumeFailedDelete",
            format!(
                "error getting deleter volume plugin for volume {name:?}: no deletable volume plugin matched"
            ),
        )),
        "Recycle" => Some((
            "VolumeFailedRecycle",
            "No recycler plugin found for the volume!".to_string(),
        )),
        _ => None,
    };
    if volume_phase(v) != "Released" {
        tracing::info!(volume = name, policy, "released: its claim is gone");
        set_volume_phase(state, v, "Released", None).await?;
    }
    if let Some((reason, message)) = failed {
        state.recorder.record(v, WARNING, reason, "", &message);
        let fresh = state
            .ctx
            .client
            .api::<PersistentVolume>(None)
            .get(name)
            .await?;
        set_volume_phase(state, &fresh, "Failed", Some(&message)).await?;
    }
    Ok(Action::AwaitChange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn merge(base: &mut Value, patch: Value) {
        match (base, patch) {
            (Value::Object(b), Value::Object(p)) => {
                for (k, v) in p {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, p) => *b = p,
        }
    }

    fn pv(name: &str, size: &str, extra: Value) -> Arc<PersistentVolume> {
        let mut v = json!({"metadata": {"name": name, "labels": {"tier": "fast"}},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                "storageClassName": "manual", "hostPath": {"path": "/x"}},
            "status": {"phase": "Available"}});
        merge(&mut v, extra);
        Arc::new(serde_json::from_value(v).expect("pv"))
    }

    fn pvc(extra: Value) -> PersistentVolumeClaim {
        let mut c = json!({"metadata": {"name": "data", "namespace": "default", "uid": "u1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
                "resources": {"requests": {"storage": "1Gi"}}}});
        merge(&mut c, extra);
        serde_json::from_value(c).expect("pvc")
    }

    #[test]
    fn the_smallest_fitting_volume_wins() {
        let vols = vec![
            pv("big", "10Gi", json!({})),
            pv("small", "512Mi", json!({})),
            pv("fit", "2Gi", json!({})),
            pv(
                "rwx-only",
                "1Gi",
                json!({"spec": {"accessModes": ["ReadWriteMany"]}}),
            ),
            pv(
                "taken",
                "1Gi",
                json!({"spec": {"claimRef": {"namespace": "x", "name": "y"}}}),
            ),
            pv(
                "other-class",
                "1Gi",
                json!({"spec": {"storageClassName": "slow"}}),
            ),
        ];
        let got = best_match(&pvc(json!({})), &vols, None).expect("a match");
        assert_eq!(got.metadata.name_str(), "fit");
    }

    #[test]
    fn the_newest_default_class_is_assigned_only_to_claims_naming_none() {
        let sc = |name: &str, default: &str, at: &str| -> Arc<StorageClass> {
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name, "creationTimestamp": at,
                    "annotations": {super::super::ANN_DEFAULT_CLASS: default}},
                    "provisioner": "x"}))
                .expect("class"),
            )
        };
        let classes = vec![
            sc("old", "true", "2026-01-01T00:00:00Z"),
            sc("new", "true", "2026-02-01T00:00:00Z"),
            sc("newest", "false", "2026-03-01T00:00:00Z"),
        ];
        let got = default_class(&classes).map(|c| c.metadata.name_str());
        assert_eq!(got, Some("new"));
        assert!(default_class(&classes[2..]).is_none());
        let mut none = pvc(json!({}));
        if let Some(s) = none.spec.as_mut() {
            s.storage_class_name = None;
        }
        assert!(!claim_has_class(&none));
        assert!(claim_has_class(&pvc(
            json!({"spec": {"storageClassName": ""}})
        )));
        assert!(claim_has_class(&pvc(json!({}))));
    }

    #[test]
    fn selectors_and_prebinding_choose() {
        let vols = vec![
            pv("fit", "2Gi", json!({})),
            pv(
                "labelled",
                "5Gi",
                json!({"metadata": {"labels": {"tier": "gold"}}}),
            ),
            pv(
                "mine",
                "8Gi",
                json!({"spec": {"claimRef": {"namespace": "default", "name": "data"}}}),
            ),
        ];
        let sel = pvc(json!({"spec": {"selector": {"matchLabels": {"tier": "gold"}}}}));
        assert_eq!(
            best_match(&sel, &vols, None)
                .expect("match")
                .metadata
                .name_str(),
            "labelled"
        );
        assert_eq!(
            best_match(&pvc(json!({})), &vols, None)
                .expect("match")
                .metadata
                .name_str(),
            "mine",
            "a volume pre-bound to the claim comes first"
        );
    }
}
