//! A value built from every object of a few kinds and kept current: the
//! objects are listed, the kinds watched, and the value rebuilt after every
//! batch of changes (requests use the value of their moment). The RBAC
//! snapshot and the admission policies are built this way.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;

use crate::errors::{ApiError, ApiResult};
use crate::registry::{ListOptions, Registry};
use crate::store::WatchItem;

/// Builds the value from the objects of each kind, in the order given.
pub type Build<T> = fn(Vec<Vec<Value>>) -> T;

/// The current value and how to rebuild it.
pub struct Watched<T> {
    kinds: &'static [(&'static str, &'static str)],
    build: Build<T>,
    current: RwLock<Arc<T>>,
}

impl<T: Send + Sync + 'static> Watched<T> {
    /// A value of `kinds` (apiVersion, kind), empty until started.
    pub fn new(kinds: &'static [(&'static str, &'static str)], build: Build<T>) -> Self {
        Watched {
            kinds,
            build,
            current: RwLock::new(Arc::new(build(vec![Vec::new(); kinds.len()]))),
        }
    }

    /// The value now.
    pub fn snapshot(&self) -> Arc<T> {
        self.current
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Builds the first value (so the server uses it from its first
    /// request) and keeps it current in a background task.
    pub async fn start(
        self: &Arc<Self>,
        registry: Registry,
    ) -> ApiResult<tokio::task::JoinHandle<()>> {
        let revision = self.rebuild(&registry).await?;
        let me = self.clone();
        Ok(tokio::spawn(
            async move { me.run(registry, revision).await },
        ))
    }

    fn info(api_version: &str, kind: &str) -> ApiResult<&'static schemas::KindInfo> {
        schemas::lookup(api_version, kind).map_err(|e| ApiError::internal(e.to_string()))
    }

    /// Lists the kinds and swaps in a new value; returns the newest revision read.
    async fn rebuild(&self, registry: &Registry) -> ApiResult<i64> {
        let mut lists = Vec::new();
        let mut revision = 0;
        for (api_version, kind) in self.kinds {
            let page = registry
                .list(
                    Self::info(api_version, kind)?,
                    None,
                    &ListOptions::default(),
                )
                .await?;
            revision = revision.max(page.resource_version);
            lists.push(page.items);
        }
        let value = (self.build)(lists);
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(value);
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
                    tracing::warn!(error = %e.message, kinds = ?self.kinds, "a watch behind a cached value failed");
                }
            }
            tokio::time::sleep(backoff(failures)).await;
            match self.rebuild(&registry).await {
                Ok(rv) => revision = rv,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e.message, kinds = ?self.kinds, "cannot list the objects behind a cached value");
                }
            }
        }
    }

    /// Rebuilds after every batch of changes until a watch ends.
    async fn follow(&self, registry: &Registry, revision: i64) -> ApiResult<()> {
        let mut changes = Changes::watch(registry, self.kinds, revision).await?;
        while changes.next().await {
            self.rebuild(registry).await?;
        }
        Ok(())
    }
}

/// The pause before starting over after `failures` failures in a row
/// (0.2 s more each time, at most 5 s).
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(200 * u64::from(failures.min(25)))
}

/// Changes to objects of a few kinds after a revision, in batches; the
/// watches stop when this is dropped.
pub struct Changes {
    rx: tokio::sync::mpsc::Receiver<bool>,
    watches: Vec<tokio::task::JoinHandle<()>>,
}

impl Changes {
    /// Watches `kinds` (apiVersion, kind) in every namespace from `revision`.
    pub async fn watch(
        registry: &Registry,
        kinds: &[(&str, &str)],
        revision: i64,
    ) -> ApiResult<Changes> {
        // true: something changed; false: a watch ended
        let (tx, rx) = tokio::sync::mpsc::channel::<bool>(4);
        let mut watches = Vec::new();
        for (api_version, kind) in kinds {
            let info = schemas::lookup(api_version, kind)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            // only "something changed" matters: the store's events are not
            // decoded (a watch of pods would otherwise decode every pod twice)
            let prefix = crate::objects::prefix(info, None);
            let mut events = registry.store().watch(&prefix, revision + 1).await?;
            let tx = tx.clone();
            watches.push(tokio::spawn(async move {
                while let Some(item) = events.next().await {
                    match item {
                        // a full channel already holds a pending batch
                        Ok(WatchItem::Event(_)) => {
                            let _ = tx.try_send(true);
                        }
                        Ok(WatchItem::Progress(_)) => {}
                        Err(_) => break,
                    }
                }
                let _ = tx.send(false).await;
            }));
        }
        Ok(Changes { rx, watches })
    }

    /// Waits for the next batch of changes: `false` once a watch has ended
    /// (the caller starts over from a fresh read).
    pub async fn next(&mut self) -> bool {
        matches!(self.rx.recv().await, Some(true))
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        for w in &self.watches {
            w.abort();
        }
    }
}

/// Decodes every object that decodes as `T` (one that does not is logged
/// and left out).
pub fn decode_all<T: serde::de::DeserializeOwned>(items: Vec<Value>) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|v| match serde_json::from_value(v) {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::warn!(error = %e, "a stored object does not decode; it is left out");
                None
            }
        })
        .collect()
}
