//! Keeps every ResourceQuota's `status` (`hard` and `used`) current, as
//! kube-controller-manager's quota controller does: recomputed from what
//! each namespace holds whenever a quota or an object that counts changes.
//! It runs in the API server, beside the admission plugin whose usage
//! arithmetic it shares (`quota::usage`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceQuota;
use serde_json::{Value, json};

use crate::errors::{ApiError, ApiResult};
use crate::registry::{ListOptions, Registry, WriteOptions};
use crate::watched::{Changes, backoff, decode_all};

/// The kinds whose changes can move a quota's usage.
const WATCHED: &[(&str, &str)] = &[
    ("v1", "ResourceQuota"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "ReplicationController"),
];

fn info(api_version: &str, kind: &str) -> ApiResult<&'static schemas::KindInfo> {
    schemas::lookup(api_version, kind).map_err(|e| ApiError::internal(e.to_string()))
}

/// Starts the background task.
pub fn start(registry: Registry) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let waited = async {
                let revision = sync_all(&registry).await?;
                let mut changes = Changes::watch(&registry, WATCHED, revision).await?;
                // the quotas' own status writes come back here: recomputed
                // to the same status, they are skipped
                while changes.next().await {
                    sync_all(&registry).await?;
                }
                Ok::<_, ApiError>(())
            }
            .await;
            match waited {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e.message, "cannot keep ResourceQuota status current");
                }
            }
            tokio::time::sleep(backoff(failures)).await;
        }
    })
}

/// Recomputes and writes every quota whose status is stale; returns the
/// revision read at.
async fn sync_all(registry: &Registry) -> ApiResult<i64> {
    let page = registry
        .list(info("v1", "ResourceQuota")?, None, &ListOptions::default())
        .await?;
    let revision = page.resource_version;
    let quotas: Vec<ResourceQuota> = decode_all(page.items);
    let mut by_ns: BTreeMap<String, Vec<ResourceQuota>> = BTreeMap::new();
    for q in quotas {
        by_ns
            .entry(q.metadata.namespace.clone().unwrap_or_default())
            .or_default()
            .push(q);
    }
    let kinds = registry.kinds().snapshot();
    for (ns, quotas) in by_ns {
        let mut holdings = super::quota::Holdings::new();
        for q in &quotas {
            for (plural, group) in super::quota::counted_kinds(q) {
                let key = if group.is_empty() {
                    plural.clone()
                } else {
                    format!("{plural}.{group}")
                };
                if holdings.contains_key(&key) {
                    continue;
                }
                if let Some(i) = kinds
                    .all()
                    .iter()
                    .find(|k| k.group == group && k.plural == plural)
                {
                    let items = registry
                        .list(i, Some(&ns), &ListOptions::default())
                        .await?
                        .items;
                    holdings.insert(key, items);
                }
            }
        }
        for q in &quotas {
            let hard = q
                .spec
                .as_ref()
                .and_then(|s| s.hard.clone())
                .unwrap_or_default();
            let used = super::quota::usage(q, &holdings);
            let status = json!({"hard": hard, "used": used});
            let current = serde_json::to_value(&q.status).unwrap_or(Value::Null);
            if current == status {
                continue;
            }
            let name = q.metadata.name.clone().unwrap_or_default();
            let result = registry
                .update_with(
                    info("v1", "ResourceQuota")?,
                    Some(&ns),
                    &name,
                    Some("status"),
                    &WriteOptions::default(),
                    None,
                    |old| {
                        let mut new = old.clone();
                        new["status"] = status.clone();
                        Ok(new)
                    },
                    |_, _| Ok(()),
                )
                .await;
            if let Err(e) = result
                && e.code != 404
            {
                return Err(e);
            }
        }
    }
    Ok(revision)
}
