//! The built-in dynamic provisioner `korral.dev/local-path`, after k3s's
//! local-path provisioner: it makes sure the default StorageClass
//! `local-path` exists (`WaitForFirstConsumer`, reclaim `Delete`,
//! `allowVolumeExpansion`), and for
//! each claim of a class it provisions that the binder handed over
//! (`volume.kubernetes.io/storage-provisioner`) and the scheduler placed
//! (`volume.kubernetes.io/selected-node`), creates a volume `pvc-<claim
//! uid>`: a `hostPath` directory `<root>/<volume>` (root: the node's
//! `korral.dev/local-path-root` annotation) with a required node affinity
//! on `kubernetes.io/hostname`, pre-bound to the claim; the binder binds
//! them. It never touches a node's files: the node daemon creates the
//! directory when a pod mounts it and removes it when the Released volume
//! is deleted (reclaim `Delete`).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use schemas::MetaExt;
use serde_json::json;

use super::State;
use super::{
    ANN_DEFAULT_CLASS, ANN_LOCAL_PATH_NODE, ANN_LOCAL_PATH_ROOT, ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER, DEFAULT_LOCAL_PATH_ROOT, LOCAL_PATH_CLASS,
    LOCAL_PATH_PROVISIONER, claim_class, claim_volume, waits_for_first_consumer,
};
use crate::controllers::Context;
use crate::controllers::recorder::{NORMAL, WARNING};
use crate::runtime::{Action, ClientError, Controller, ObjectRef, WriteParams};

const MANAGER: &str = "local-path-provisioner";

/// The default StorageClass korral serves (k3s's `local-path`).
pub fn default_class() -> StorageClass {
    serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": LOCAL_PATH_CLASS, "annotations": {ANN_DEFAULT_CLASS: "true"}},
        "provisioner": LOCAL_PATH_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        // a directory has no size to grow: `expand.rs` raises the volume's capacity
        "allowVolumeExpansion": true,
    }))
    .unwrap_or_default()
}

/// The name of the volume provisioned for a claim (kube's `pvc-<uid>`).
pub fn volume_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.metadata.uid_str())
}

/// Runs the provisioner until shutdown.
pub async fn run(ctx: Context) {
    let api = ctx.client.api::<StorageClass>(None);
    let wp = WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    match api.create(&default_class(), &wp).await {
        Ok(_) => tracing::info!(class = LOCAL_PATH_CLASS, "created the default StorageClass"),
        Err(e) if e.is_already_exists() => {}
        Err(e) => tracing::warn!(error = %e, "cannot create the default StorageClass"),
    }
    let claims = ctx.informers.get::<PersistentVolumeClaim>();
    let controller = Controller::new(MANAGER, &claims).workers(3);
    super::run_controller(ctx, MANAGER, controller, reconcile).await;
}

/// The volume for `claim` on node `node` whose local-path root is `root`.
pub fn volume_for(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &str,
    hostname: &str,
    root: &str,
) -> Result<PersistentVolume, serde_json::Error> {
    let name = volume_name(claim);
    let spec = claim.spec.clone().unwrap_or_default();
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage").cloned());
    let path = format!("{}/{name}", root.trim_end_matches('/'));
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {
            ANN_PROVISIONED_BY: LOCAL_PATH_PROVISIONER,
            ANN_LOCAL_PATH_NODE: node,
        }},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.access_modes,
            "volumeMode": spec.volume_mode.unwrap_or_else(|| "Filesystem".into()),
            "persistentVolumeReclaimPolicy": class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            "storageClassName": class.metadata.name_str(),
            "mountOptions": class.mount_options,
            "hostPath": {"path": path, "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [hostname]}]}]}},
            "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                "namespace": claim.metadata.namespace_str(), "name": claim.metadata.name_str(),
                "uid": claim.metadata.uid_str(), "resourceVersion": claim.metadata.resource_version},
        },
    }))
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(claim) = state.claims.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if claim.metadata.deletion_timestamp.is_some() || claim_volume(&claim).is_some() {
        return Ok(Action::AwaitChange);
    }
    let a = claim.metadata.annotations_map();
    if a.get(ANN_STORAGE_PROVISIONER).map(|s| s.as_str()) != Some(LOCAL_PATH_PROVISIONER) {
        return Ok(Action::AwaitChange);
    }
    let Some(class) = state
        .classes
        .get(&ObjectRef::new(None, claim_class(&claim)))
    else {
        return Ok(Action::AwaitChange);
    };
    if class.provisioner != LOCAL_PATH_PROVISIONER {
        return Ok(Action::AwaitChange);
    }
    let name = volume_name(&claim);
    if state.volumes.get(&ObjectRef::new(None, &name)).is_some() {
        return Ok(Action::AwaitChange);
    }
    let fail = |message: &str| {
        state
            .recorder
            .record(claim.as_ref(), WARNING, "ProvisioningFailed", "", message);
    };
    if claim
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some()
    {
        fail("claim Selector is not supported");
        return Ok(Action::AwaitChange);
    }
    if !waits_for_first_consumer(Some(&class)) {
        fail(
            "korral.dev/local-path needs volumeBindingMode WaitForFirstConsumer: its volumes live on one node",
        );
        return Ok(Action::AwaitChange);
    }
    let Some(node_name) = a.get(ANN_SELECTED_NODE) else {
        return Ok(Action::AwaitChange);
    };
    let Some(node) = state.nodes.get(&ObjectRef::new(None, node_name)) else {
        fail(&format!(
            "failed to get the selected node {node_name:?}: not found"
        ));
        return Ok(Action::requeue(std::time::Duration::from_secs(5)));
    };
    let root = node
        .metadata
        .annotations_map()
        .get(ANN_LOCAL_PATH_ROOT)
        .map(|s| s.as_str())
        .unwrap_or(DEFAULT_LOCAL_PATH_ROOT);
    let hostname = node
        .metadata
        .labels_map()
        .get("kubernetes.io/hostname")
        .map(|s| s.as_str())
        .unwrap_or(node_name);
    state.recorder.record(
        claim.as_ref(),
        NORMAL,
        "Provisioning",
        "",
        &format!("External provisioner is provisioning volume for claim \"{key}\""),
    );
    let pv = volume_for(&claim, &class, node_name, hostname, root)
        .map_err(|e| ClientError::Decode(format!("building volume {name}: {e}")))?;
    let wp = WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    match state
        .ctx
        .client
        .api::<PersistentVolume>(None)
        .create(&pv, &wp)
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_already_exists() => return Ok(Action::AwaitChange),
        Err(e) => {
            fail(&format!(
                "failed to provision volume with StorageClass {:?}: {e}",
                class.metadata.name_str()
            ));
            return Err(e);
        }
    }
    tracing::info!(claim = %key, volume = %name, node = %node_name, "provisioned a local-path volume");
    state.recorder.record(
        claim.as_ref(),
        NORMAL,
        "ProvisioningSucceeded",
        "",
        &format!("Successfully provisioned volume {name}"),
    );
    Ok(Action::AwaitChange)
}
