//! The CRD finalizer: once a CustomResourceDefinition is deleted, delete
//! every object of its kind (their own finalizers still hold them), then
//! remove `customresourcecleanup.apiextensions.k8s.io` so the definition goes.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::crds::{CLEANUP_FINALIZER, conditions, crd_kind};
use crate::errors::{ApiError, ApiResult};
use crate::objects;
use crate::registry::{DeleteOptions, ListOptions, Registry, WatchOptions, WriteOptions};

/// How long to wait for the objects to go before saying so in the condition.
const CHECK_AFTER: Duration = Duration::from_secs(60);

/// Deletes `crd`'s objects, then lets the definition go.
pub async fn run(registry: &Registry, crd: &CustomResourceDefinition) -> ApiResult<()> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    set_terminating(
        registry,
        &name,
        true,
        "InstanceDeletionInProgress",
        "CustomResource deletion is in progress",
    )
    .await?;
    let storage = crd
        .spec
        .versions
        .iter()
        .find(|v| v.storage)
        .map(|v| v.name.clone())
        .unwrap_or_default();
    let kind = registry
        .kinds()
        .custom_kinds(&name)
        .into_iter()
        .find(|k| k.version == storage)
        .or_else(|| registry.kinds().custom_kinds(&name).into_iter().next());
    match kind {
        None => {
            set_terminating(
                registry,
                &name,
                false,
                "NeverEstablished",
                "resource was never established",
            )
            .await?;
        }
        Some(info) => {
            delete_all(registry, &name, &info).await?;
            set_terminating(
                registry,
                &name,
                false,
                "InstanceDeletionCompleted",
                "removed all instances",
            )
            .await?;
        }
    }
    remove_finalizer(registry, &name).await
}

/// Deletes every object of `info` and waits until none is left.
async fn delete_all(
    registry: &Registry,
    crd_name: &str,
    info: &std::sync::Arc<schemas::KindInfo>,
) -> ApiResult<()> {
    let page = registry.list(info, None, &ListOptions::default()).await?;
    let mut left: BTreeSet<(Option<String>, String)> = BTreeSet::new();
    for item in &page.items {
        let ns = objects::namespace(item).map(str::to_string);
        let n = objects::name(item).to_string();
        if !objects::is_deleting(item) {
            match registry
                .delete(info, ns.as_deref(), &n, &DeleteOptions::default())
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 404 => continue,
                Err(e) => {
                    set_terminating(
                        registry,
                        crd_name,
                        true,
                        "InstanceDeletionFailed",
                        &format!("could not issue all deletes: {}", e.message),
                    )
                    .await?;
                    return Err(e);
                }
            }
        }
        left.insert((ns, n));
    }
    if left.is_empty() {
        return Ok(());
    }
    tracing::info!(
        crd = crd_name,
        objects = left.len(),
        "waiting for the objects of a deleted CustomResourceDefinition to go"
    );
    let opts = WatchOptions {
        resource_version: Some(page.resource_version.to_string()),
        ..Default::default()
    };
    let mut rx = registry.watch(info.clone(), None, opts).await?;
    let mut reported = false;
    // objects already deleted between the list and the watch show up as
    // DELETED events too, since the watch starts at the list's revision
    while !left.is_empty() {
        match tokio::time::timeout(CHECK_AFTER, rx.recv()).await {
            Ok(Some(ev)) if ev.kind == "DELETED" => {
                left.remove(&(
                    objects::namespace(&ev.object).map(str::to_string),
                    objects::name(&ev.object).to_string(),
                ));
            }
            Ok(Some(ev)) if ev.kind == "ERROR" => {
                return Err(ApiError::internal(format!(
                    "watching the objects failed: {}",
                    ev.object
                )));
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err(ApiError::internal("the watch of the objects ended")),
            Err(_) if !reported => {
                reported = true;
                set_terminating(
                    registry,
                    crd_name,
                    true,
                    "InstanceDeletionCheck",
                    &format!(
                        "could not confirm zero CustomResources remaining: {} left",
                        left.len()
                    ),
                )
                .await?;
            }
            Err(_) => {}
        }
    }
    Ok(())
}

async fn set_terminating(
    registry: &Registry,
    name: &str,
    status: bool,
    reason: &str,
    message: &str,
) -> ApiResult<()> {
    let info = crd_kind(registry)?;
    let change = |old: &Value| -> ApiResult<Value> {
        let mut crd: CustomResourceDefinition =
            serde_json::from_value(old.clone()).map_err(|e| ApiError::internal(e.to_string()))?;
        conditions::set(&mut crd, conditions::TERMINATING, status, reason, message);
        let mut new = old.clone();
        if let (Value::Object(root), Some(s)) = (&mut new, crd.status) {
            root.insert(
                "status".into(),
                serde_json::to_value(s).map_err(|e| ApiError::internal(e.to_string()))?,
            );
        }
        Ok(new)
    };
    registry
        .update_with(
            &info,
            None,
            name,
            Some("status"),
            &WriteOptions::default(),
            None,
            change,
            |_, _| Ok(()),
        )
        .await
        .map(|_| ())
}

async fn remove_finalizer(registry: &Registry, name: &str) -> ApiResult<()> {
    let info = crd_kind(registry)?;
    let change = |old: &Value| -> ApiResult<Value> {
        let mut new = old.clone();
        let left: Vec<String> = objects::finalizers(old)
            .into_iter()
            .filter(|f| f != CLEANUP_FINALIZER)
            .collect();
        objects::set_finalizers(&mut new, &left);
        Ok(new)
    };
    match registry
        .update_with(
            &info,
            None,
            name,
            None,
            &WriteOptions::default(),
            None,
            change,
            |_, _| Ok(()),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
