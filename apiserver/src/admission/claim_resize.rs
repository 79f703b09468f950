//! The PersistentVolumeClaimResize admission plugin: raising a claim's
//! `spec.resources.requests.storage` is allowed only for a Bound claim whose
//! StorageClass (the same before and after) says `allowVolumeExpansion:
//! true`, with kube's Forbidden messages otherwise. Shrinking is the
//! validation's business (`schemas::validation::storage`).

use serde_json::Value;

use crate::errors::{ApiError, ApiResult};
use crate::registry::Registry;

/// The claim's requested storage, in bytes (nanos for exactness).
fn requested(pvc: &Value) -> Option<i128> {
    let q = pvc
        .pointer("/spec/resources/requests/storage")
        .and_then(Value::as_str)?;
    q.parse::<schemas::quantity::Amount>()
        .ok()
        .map(|a| a.nanos())
}

/// The claim's class: `spec.storageClassName`, else the beta annotation, else "".
fn class_of(pvc: &Value) -> &str {
    pvc.pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .or_else(|| {
            pvc.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
                .and_then(Value::as_str)
        })
        .unwrap_or("")
}

/// Checks an update of claim `old` to `new` (the main resource, not status).
pub async fn admit_update(registry: &Registry, old: &Value, new: &Value) -> ApiResult<()> {
    let (Some(new_size), old_size) = (requested(new), requested(old)) else {
        return Ok(());
    };
    if old_size.is_some_and(|o| new_size <= o) {
        return Ok(());
    }
    let name = crate::objects::name(new);
    let forbidden = |why: &str| {
        ApiError::forbidden_message(format!(
            "persistentvolumeclaims {name:?} is forbidden: {why}"
        ))
    };
    if old.pointer("/status/phase").and_then(Value::as_str) != Some("Bound") {
        return Err(forbidden(
            "Only bound persistent volume claims can be expanded",
        ));
    }
    let class = class_of(new);
    if !allows_expansion(registry, class).await? || class != class_of(old) {
        return Err(forbidden(
            "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
        ));
    }
    Ok(())
}

/// Whether StorageClass `class` exists and sets `allowVolumeExpansion: true`.
async fn allows_expansion(registry: &Registry, class: &str) -> ApiResult<bool> {
    if class.is_empty() {
        return Ok(false);
    }
    let info = registry
        .kinds()
        .lookup("storage.k8s.io/v1", "StorageClass")
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match registry.get_cached(&info, None, class).await {
        Ok(sc) => Ok(sc.get("allowVolumeExpansion").and_then(Value::as_bool) == Some(true)),
        Err(e) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}
