//! Keeps the RBAC [`Snapshot`] current: lists the Roles, ClusterRoles and
//! bindings, then follows their watches and rebuilds the snapshot after
//! every change (requests authorise against the snapshot of their moment).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Snapshot;
use crate::errors::{ApiError, ApiResult};
use crate::registry::{ListOptions, Registry, WatchOptions};

/// The kinds the snapshot is built from.
const KINDS: [&str; 4] = ["ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"];

/// The current RBAC snapshot, shared by every request.
#[derive(Default)]
pub struct RbacCache {
    current: RwLock<Arc<Snapshot>>,
}

fn decode_all<T: DeserializeOwned>(items: Vec<Value>) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|v| match serde_json::from_value(v) {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::warn!(error = %e, "a stored RBAC object does not decode; it grants nothing");
                None
            }
        })
        .collect()
}

impl RbacCache {
    /// The snapshot requests authorise against now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Builds the first snapshot (so the server authorises from its first
    /// request) and keeps it current in a background task.
    pub async fn start(
        self: &Arc<Self>,
        registry: Registry,
    ) -> ApiResult<tokio::task::JoinHandle<()>> {
        let revision = self.rebuild(&registry).await?;
        let cache = self.clone();
        Ok(tokio::spawn(
            async move { cache.run(registry, revision).await },
        ))
    }

    /// Lists the four kinds and swaps in a new snapshot; returns the newest
    /// revision read.
    async fn rebuild(&self, registry: &Registry) -> ApiResult<i64> {
        let mut lists = Vec::new();
        let mut revision = 0;
        for kind in KINDS {
            let info = schemas::lookup("rbac.authorization.k8s.io/v1", kind)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let page = registry.list(info, None, &ListOptions::default()).await?;
            revision = revision.max(page.resource_version);
            lists.push(page.items);
        }
        let mut lists = lists.into_iter();
        let mut next = || lists.next().unwrap_or_default();
        let snapshot = Snapshot::new(
            decode_all(next()),
            decode_all(next()),
            decode_all(next()),
            decode_all(next()),
        );
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(snapshot);
        }
        Ok(revision)
    }

    async fn run(&self, registry: Registry, mut revision: i64) {
        let mut failures = 0u32;
        loop {
            match self.follow(&registry, revision).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e.message, "the RBAC watch failed");
                }
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(25)))).await;
            match self.rebuild(&registry).await {
                Ok(rv) => revision = rv,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e.message, "cannot list the RBAC objects");
                }
            }
        }
    }

    /// Rebuilds after every batch of changes until a watch ends.
    async fn follow(&self, registry: &Registry, revision: i64) -> ApiResult<()> {
        // true: something changed; false: a watch ended (start over)
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bool>(4);
        let mut watches = Vec::new();
        for kind in KINDS {
            let info = schemas::lookup("rbac.authorization.k8s.io/v1", kind)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let opts = WatchOptions {
                resource_version: Some(revision.to_string()),
                ..Default::default()
            };
            let mut events = registry.watch(Arc::new(info.clone()), None, opts).await?;
            let tx = tx.clone();
            watches.push(tokio::spawn(async move {
                while let Some(e) = events.recv().await {
                    if e.kind == "ERROR" {
                        break;
                    }
                    // a full channel already holds a pending rebuild
                    let _ = tx.try_send(true);
                }
                let _ = tx.send(false).await;
            }));
        }
        drop(tx);
        let result = async {
            while let Some(true) = rx.recv().await {
                self.rebuild(registry).await?;
            }
            Ok(())
        }
        .await;
        for w in watches {
            w.abort();
        }
        result
    }
}
