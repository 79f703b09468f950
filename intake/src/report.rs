//! The `DriftReport` object of a source (same name and namespace, owned by
//! the GitSource so it goes when the source goes), rewritten on every check.

use serde_json::{Value, json};

use reconcilers::runtime::{Client, ClientError, Patch, WriteParams};
use schemas::MetaExt;
use schemas::korral::{DriftReport, GitSource};

use crate::drift::Drift;
use crate::owner::{MANAGER, Owner, SOURCE_LABEL};

/// Writes `drift` as the DriftReport of `source`.
pub async fn write(client: &Client, source: &GitSource, drift: &Drift) -> Result<(), ClientError> {
    let ns = source.metadata.namespace_str();
    let name = source.metadata.name_str();
    let owner = Owner::new(ns, name);
    let api = client.api::<DriftReport>(Some(ns));
    let mut meta = json!({
        "name": name,
        "namespace": ns,
        "labels": {SOURCE_LABEL: owner.label_value()},
    });
    if let Some(uid) = &source.metadata.uid {
        meta["ownerReferences"] = json!([{
            "apiVersion": "korral.dev/v1alpha1",
            "kind": "GitSource",
            "name": name,
            "uid": uid,
            "controller": true,
        }]);
    }
    let object = json!({
        "apiVersion": "korral.dev/v1alpha1",
        "kind": "DriftReport",
        "metadata": meta,
        "spec": {"source": name},
    });
    let params = WriteParams {
        field_manager: Some(MANAGER.into()),
        force: true,
        dry_run: false,
    };
    api.patch(name, &Patch::Apply(object), &params).await?;
    let mut status = serde_json::to_value(drift.to_status()).unwrap_or(Value::Null);
    if let Some(m) = status.as_object_mut() {
        for k in ["missing", "extra", "modified"] {
            m.entry(k).or_insert(Value::Null);
        }
    }
    let params = WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    api.patch_status(name, &Patch::Merge(json!({ "status": status })), &params)
        .await?;
    Ok(())
}
