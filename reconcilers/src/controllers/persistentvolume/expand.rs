//! Volume expansion for `korral.dev/local-path` volumes, what kube's
//! external-resizer and the kubelet do together for a CSI driver: a Bound
//! claim whose `spec.resources.requests.storage` exceeds its
//! `status.capacity` (the API server admits that only when the class has
//! `allowVolumeExpansion: true`) gets its volume's `spec.capacity` raised —
//! a local-path volume is a directory, with no filesystem to grow — and
//! ends as kube's finished resize: `status.capacity` and
//! `status.allocatedResources` at the new size, no `allocatedResourceStatuses`,
//! no `Resizing`/`FileSystemResizePending` condition. Other volumes are left
//! to an external resizer, as kube's expand controller does.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemas::{MetaExt, QuantityExt};
use serde_json::json;

use super::{
    ANN_PROVISIONED_BY, LOCAL_PATH_PROVISIONER, State, claim_class, claim_phase, claim_volume,
};
use crate::controllers::Context;
use crate::controllers::recorder::NORMAL;
use crate::runtime::{Action, ClientError, Controller, ObjectRef, Patch, WriteParams};

const MANAGER: &str = "persistentvolume-expander";
/// The conditions a resize in progress sets on a claim; a finished one has none.
const RESIZE_CONDITIONS: &[&str] = &["Resizing", "FileSystemResizePending"];

fn storage(q: Option<&std::collections::BTreeMap<String, Quantity>>) -> Option<&Quantity> {
    q.and_then(|m| m.get("storage"))
}

/// The size a claim asks for when it is larger than what it has (a resize
/// to do), else None.
pub fn pending_resize(c: &PersistentVolumeClaim) -> Option<&Quantity> {
    let want = storage(
        c.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    )?;
    let have = storage(c.status.as_ref().and_then(|s| s.capacity.as_ref()));
    (have.is_none_or(|h| want.nanos() > h.nanos())).then_some(want)
}

/// The status merge patch that ends a resize at `size` (kube's
/// `MarkFSResizeFinished`): capacity and allocated resources at the new
/// size, no resize status, no resize condition.
pub fn finished_status(c: &PersistentVolumeClaim, size: &Quantity) -> serde_json::Value {
    let conditions: Vec<_> = c
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|x| !RESIZE_CONDITIONS.contains(&x.type_.as_str()))
        .collect();
    json!({"status": {
        "capacity": {"storage": size},
        "allocatedResources": {"storage": size},
        "allocatedResourceStatuses": null,
        "conditions": conditions,
    }})
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let claims = ctx.informers.get::<PersistentVolumeClaim>();
    let volumes = ctx.informers.get::<PersistentVolume>();
    let controller = Controller::new(MANAGER, &claims)
        // a volume's capacity change may finish its claim's resize
        .watches(&volumes, |v: &PersistentVolume| {
            v.spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|r| Some(ObjectRef::new(r.namespace.as_deref(), r.name.as_deref()?)))
                .into_iter()
                .collect()
        })
        .workers(2);
    super::run_controller(ctx, MANAGER, controller, reconcile).await;
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(claim) = state.claims.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if claim.metadata.deletion_timestamp.is_some() || claim_phase(&claim) != "Bound" {
        return Ok(Action::AwaitChange);
    }
    let (Some(size), Some(vname)) = (pending_resize(&claim), claim_volume(&claim)) else {
        return Ok(Action::AwaitChange);
    };
    let size = size.clone();
    let Some(pv) = state.volumes.get(&ObjectRef::new(None, vname)) else {
        return Ok(Action::AwaitChange);
    };
    let ours = pv
        .metadata
        .annotations_map()
        .get(ANN_PROVISIONED_BY)
        .map(String::as_str)
        == Some(LOCAL_PATH_PROVISIONER);
    if !ours {
        state.recorder.record(
            claim.as_ref(),
            NORMAL,
            "ExternalExpanding",
            "",
            "waiting for an external controller to expand this PVC",
        );
        return Ok(Action::AwaitChange);
    }
    let allowed = state
        .classes
        .get(&ObjectRef::new(None, claim_class(&claim)))
        .is_some_and(|c| c.allow_volume_expansion == Some(true));
    if !allowed {
        // admitted before the class changed: nothing may grow it now
        return Ok(Action::AwaitChange);
    }
    let wp = WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let have = storage(pv.spec.as_ref().and_then(|s| s.capacity.as_ref()));
    if have.is_none_or(|h| h.nanos() < size.nanos()) {
        state.recorder.record(
            claim.as_ref(),
            NORMAL,
            "Resizing",
            "",
            &format!("External resizer is resizing volume {vname}"),
        );
        let patch = json!({
            "metadata": {"resourceVersion": pv.metadata.resource_version},
            "spec": {"capacity": {"storage": size}},
        });
        state
            .ctx
            .client
            .api::<PersistentVolume>(None)
            .patch(vname, &Patch::Merge(patch), &wp)
            .await?;
    }
    state
        .ctx
        .client
        .api::<PersistentVolumeClaim>(key.namespace.as_deref())
        .patch_status(
            &key.name,
            &Patch::Merge(finished_status(&claim, &size)),
            &wp,
        )
        .await?;
    tracing::info!(claim = %key, volume = vname, size = %size.0, "volume expanded");
    state.recorder.record(
        claim.as_ref(),
        NORMAL,
        "VolumeResizeSuccessful",
        "",
        "Resize volume succeeded",
    );
    Ok(Action::AwaitChange)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(request: &str, capacity: Option<&str>) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "default"},
            "spec": {"resources": {"requests": {"storage": request}}},
            "status": {"phase": "Bound", "capacity": capacity.map(|c| json!({"storage": c})),
                "conditions": [
                    {"type": "Resizing", "status": "True"},
                    {"type": "ModifyingVolume", "status": "True"},
                ]},
        }))
        .expect("claim")
    }

    #[test]
    fn only_a_larger_request_is_a_resize() {
        assert_eq!(
            pending_resize(&claim("2Gi", Some("1Gi"))).map(|q| q.0.as_str()),
            Some("2Gi")
        );
        assert!(pending_resize(&claim("1Gi", Some("1Gi"))).is_none());
        assert!(pending_resize(&claim("1024Mi", Some("1Gi"))).is_none());
        assert!(pending_resize(&claim("512Mi", Some("1Gi"))).is_none());
    }

    #[test]
    fn a_finished_resize_leaves_no_resize_state() {
        let c = claim("2Gi", Some("1Gi"));
        let got = finished_status(&c, &Quantity("2Gi".into()));
        assert_eq!(
            got,
            json!({"status": {
                "capacity": {"storage": "2Gi"},
                "allocatedResources": {"storage": "2Gi"},
                "allocatedResourceStatuses": null,
                "conditions": [{"type": "ModifyingVolume", "status": "True"}],
            }})
        );
    }
}
