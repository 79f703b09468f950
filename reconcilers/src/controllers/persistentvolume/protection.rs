//! kube's `pvc-protection` and `pv-protection` controllers, which finish
//! what the StorageObjectInUseProtection admission plugin starts: a claim
//! being deleted keeps its `kubernetes.io/pvc-protection` finalizer while
//! any pod that has not finished uses it (checked in the cache, then with a
//! fresh list, as kube asks the API server too); a volume being deleted
//! keeps `kubernetes.io/pv-protection` while it is Bound. So data is never
//! reclaimed under a running pod.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use schemas::MetaExt;
use serde_json::json;

use super::ephemeral::volume_is_for_pod;
use super::{pod_claim_volumes, pod_claims, volume_phase};
use crate::controllers::Context;
use crate::controllers::scheduler::pod_info::terminal;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::runtime::{
    Action, Api, Cache, ClientError, Controller, ListParams, ObjectRef, Patch, WriteParams,
};

/// The claims' finalizer.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The volumes' finalizer.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// Drops `finalizer` from the object `meta` describes (a merge patch guarded
/// by its resourceVersion); an object already gone is fine.
async fn release<K: schemas::Object>(
    api: &Api<K>,
    meta: &ObjectMeta,
    finalizer: &str,
    manager: &str,
) -> Result<Action, ClientError> {
    let rest: Vec<&String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .collect();
    let patch = Patch::Merge(
        json!({"metadata": {"resourceVersion": meta.resource_version, "finalizers": rest}}),
    );
    let wp = WriteParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    match api.patch(meta.name_str(), &patch, &wp).await {
        Ok(_) => Ok(Action::AwaitChange),
        Err(e) if e.is_not_found() => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}

fn has(meta: &ObjectMeta, f: &str) -> bool {
    meta.deletion_timestamp.is_some() && meta.finalizers.iter().flatten().any(|x| x == f)
}

/// Whether a pod that has not finished uses `claim` (the claim of a pod's
/// generic ephemeral volume only when the pod controls it, as kube's `podUsesPVC`).
fn in_use<'a>(pods: impl IntoIterator<Item = &'a Pod>, claim: &PersistentVolumeClaim) -> bool {
    let name = claim.metadata.name_str();
    pods.into_iter().any(|p| {
        !terminal(p)
            && pod_claim_volumes(p).iter().any(|(c, is_ephemeral)| {
                c == name && (!is_ephemeral || volume_is_for_pod(p, claim).is_ok())
            })
    })
}

/// Runs `pvc-protection` until shutdown.
pub async fn run_claims(ctx: Context) {
    let claims = ctx.informers.get::<PersistentVolumeClaim>();
    let pods = ctx.informers.pods();
    let controller = Controller::new("pvc-protection", &claims)
        // a pod that finishes or goes may free its claims
        .watches(&pods, |p: &Pod| {
            pod_claims(p)
                .iter()
                .map(|c| ObjectRef::new(Some(p.metadata.namespace_str()), c))
                .collect()
        })
        .workers(3);
    let (claims, pods) = (claims.cache(), pods.cache());
    pods.wait_synced().await;
    let state = ctx.clone();
    controller
        .run(
            move |key| reconcile_claim(state.clone(), claims.clone(), pods.clone(), key),
            ctx.metrics.clone(),
            ctx.stopped(),
        )
        .await;
}

async fn reconcile_claim(
    ctx: Context,
    claims: Cache<PersistentVolumeClaim>,
    pods: Cache<Pod>,
    key: ObjectRef,
) -> Result<Action, ClientError> {
    let Some(claim) = claims.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if !has(&claim.metadata, PVC_PROTECTION) {
        return Ok(Action::AwaitChange);
    }
    let ns = claim.metadata.namespace_str();
    let cached = pods.in_namespace(ns);
    if in_use(cached.iter().map(Arc::as_ref), &claim) {
        return Ok(Action::AwaitChange);
    }
    let live = ctx
        .client
        .api::<Pod>(Some(ns))
        .list_all(&ListParams::default())
        .await?;
    if in_use(live.items.iter(), &claim) {
        return Ok(Action::AwaitChange);
    }
    let api = ctx.client.api::<PersistentVolumeClaim>(Some(ns));
    release(
        &api,
        &claim.metadata,
        PVC_PROTECTION,
        "pvc-protection-controller",
    )
    .await
}

/// Runs `pv-protection` until shutdown.
pub async fn run_volumes(ctx: Context) {
    let volumes = ctx.informers.get::<PersistentVolume>();
    let controller = Controller::new("pv-protection", &volumes).workers(2);
    let cache = volumes.cache();
    let state = ctx.clone();
    controller
        .run(
            move |key| reconcile_volume(state.clone(), cache.clone(), key),
            ctx.metrics.clone(),
            ctx.stopped(),
        )
        .await;
}

async fn reconcile_volume(
    ctx: Context,
    volumes: Cache<PersistentVolume>,
    key: ObjectRef,
) -> Result<Action, ClientError> {
    let Some(pv) = volumes.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if !has(&pv.metadata, PV_PROTECTION) || volume_phase(&pv) == "Bound" {
        return Ok(Action::AwaitChange);
    }
    let api = ctx.client.api::<PersistentVolume>(None);
    release(
        &api,
        &pv.metadata,
        PV_PROTECTION,
        "pv-protection-controller",
    )
    .await
}
