//! The API server's watch cache (kube-apiserver's cacher): lists, gets at
//! `resourceVersion=0` and watches served from memory.
//!
//! One store watch of every key (the *dispatcher*) feeds a cache per
//! resource (store prefix). A resource's cache starts on first use (built-in
//! and custom kinds alike: memory goes only to kinds clients read, and the
//! server starts without listing everything): it is registered at the
//! dispatcher's revision R, lists its prefix at R while the dispatcher
//! buffers its changes, then applies the buffer and serves. Because the
//! dispatcher sees every revision in order, each cache is complete up to
//! the dispatcher's revision even when its own kind is idle, so a consistent
//! read (the store's current revision, KEP-2340) rarely waits. A deleted
//! CustomResourceDefinition's cache is dropped (its watchers end and
//! re-watch). If the dispatcher's watch fails, every cache is dropped and
//! rebuilt on next use; until a cache is ready, requests read the store.
//! The dispatcher and its store watch run on a thread of their own: among
//! the request handlers' tasks a saturated server starved them, the cache
//! fell minutes behind the store, and its history was compacted under it.
//!
//! - `object.rs`: one object's served JSON and what selectors need.
//! - `event.rs`: one change, its JSON line and protobuf frame encoded once.
//! - `resource.rs`: one resource's map, ring of events, snapshots, fan-out.
//! - `list.rs`: lists and gets from a cache, with the `resourceVersion` rules.
//! - `watcher.rs`: one watcher: replay, live events, selector translation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use schemas::KindInfo;
use tokio::sync::watch;

use crate::store::{Event, EventType, ListRequest, Revision, Store, StoreError, WatchItem};

pub mod event;
pub mod list;
pub mod object;
pub mod resource;
pub mod watcher;

pub use resource::{CacheConfig, CacheStats, ResourceCache};
pub use watcher::{CacheWatch, Delivery};

/// Page size of a cache's initial list.
const SYNC_PAGE: usize = 5000;

enum Entry {
    /// Listing at `since`; changes after it wait in `buffer`.
    Pending {
        since: Revision,
        buffer: Vec<Event>,
    },
    Ready(Arc<ResourceCache>),
}

struct State {
    running: bool,
    entries: HashMap<String, Entry>,
}

struct Inner {
    store: Arc<dyn Store>,
    config: CacheConfig,
    state: Mutex<State>,
    /// Every change up to this revision has been applied to every ready cache.
    revision: watch::Sender<Revision>,
    start: tokio::sync::Mutex<()>,
    /// Woken whenever a resource's cache becomes ready.
    readied: tokio::sync::Notify,
}

/// The watch caches of one server, one per resource.
#[derive(Clone)]
pub struct Caches {
    inner: Arc<Inner>,
}

impl Caches {
    /// Caches over `store` (nothing starts until first use).
    pub fn new(store: Arc<dyn Store>, config: CacheConfig) -> Self {
        Caches {
            inner: Arc::new(Inner {
                store,
                config,
                state: Mutex::new(State {
                    running: false,
                    entries: HashMap::new(),
                }),
                revision: watch::channel(0).0,
                start: tokio::sync::Mutex::new(()),
                readied: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The store behind the caches.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The revision every ready cache is complete up to.
    pub fn revision(&self) -> Revision {
        *self.inner.revision.borrow()
    }

    /// A receiver of [`Caches::revision`].
    pub fn revisions(&self) -> watch::Receiver<Revision> {
        self.inner.revision.subscribe()
    }

    /// Waits until every change up to `rev` has been applied; false when
    /// `wait` passes first.
    pub async fn wait_for(&self, rev: Revision, wait: Duration) -> bool {
        let mut rx = self.inner.revision.subscribe();
        matches!(
            tokio::time::timeout(wait, rx.wait_for(|r| *r >= rev)).await,
            Ok(Ok(_))
        )
    }

    /// The cache of `info`'s resource if it is ready; otherwise starts it
    /// (and the dispatcher) and answers `None`: read the store meanwhile.
    pub async fn resource(&self, info: &KindInfo) -> Option<Arc<ResourceCache>> {
        let prefix = format!("{}/", info.storage_prefix);
        {
            let state = self.inner.lock();
            if state.running {
                return match state.entries.get(&prefix) {
                    Some(Entry::Ready(c)) => Some(c.clone()),
                    Some(Entry::Pending { .. }) => None,
                    None => {
                        drop(state);
                        self.register(prefix, info);
                        None
                    }
                };
            }
        }
        if let Err(e) = self.start().await {
            tracing::warn!(error = %e, "the watch cache could not start; reading the store");
            return None;
        }
        self.register(prefix, info);
        None
    }

    /// Whether a cache for the store prefix (`pods/`) exists, and is ready.
    pub fn state_of(&self, prefix: &str) -> Option<bool> {
        match self.inner.lock().entries.get(prefix) {
            None => None,
            Some(Entry::Pending { .. }) => Some(false),
            Some(Entry::Ready(_)) => Some(true),
        }
    }

    /// The sizes of the ready cache of a store prefix.
    pub fn stats(&self, prefix: &str) -> Option<CacheStats> {
        match self.inner.lock().entries.get(prefix) {
            Some(Entry::Ready(c)) => Some(c.clone()),
            _ => None,
        }
        .map(|c| c.stats())
    }

    /// Waits until the cache of `info` is ready (tests and benchmarks).
    pub async fn ready(&self, info: &KindInfo, wait: Duration) -> Option<Arc<ResourceCache>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // registered before looking, so a cache readied meanwhile wakes us
            let readied = self.inner.readied.notified();
            tokio::pin!(readied);
            readied.as_mut().enable();
            if let Some(c) = self.resource(info).await {
                return Some(c);
            }
            tokio::time::timeout_at(deadline, readied).await.ok()?;
        }
    }

    async fn start(&self) -> crate::store::Result<()> {
        let _guard = self.inner.start.lock().await;
        if self.inner.lock().running {
            return Ok(());
        }
        let store = self.inner.store.clone();
        let rev = store.current_revision().await?;
        let (opened, watching) = tokio::sync::oneshot::channel();
        let inner = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("korral-watch-cache".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = opened.send(Err(StoreError::Internal(format!(
                            "cannot start the watch cache's runtime: {e}"
                        ))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    // opened here, so the store's watch task runs on this thread too
                    match store.watch("", rev + 1).await {
                        Ok(stream) => {
                            let _ = opened.send(Ok(()));
                            dispatch(inner, stream).await;
                        }
                        Err(e) => {
                            let _ = opened.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| {
                StoreError::Internal(format!("cannot start the watch cache's thread: {e}"))
            })?;
        watching.await.map_err(|_| {
            StoreError::Internal("the watch cache's thread ended before its watch opened".into())
        })??;
        self.inner.revision.send_modify(|r| *r = (*r).max(rev));
        self.inner.lock().running = true;
        tracing::debug!(revision = rev, "watch cache dispatcher started");
        Ok(())
    }

    fn register(&self, prefix: String, info: &KindInfo) {
        let since;
        {
            let mut state = self.inner.lock();
            if !state.running || state.entries.contains_key(&prefix) {
                return;
            }
            since = *self.inner.revision.borrow();
            state.entries.insert(
                prefix.clone(),
                Entry::Pending {
                    since,
                    buffer: Vec::new(),
                },
            );
        }
        let fields = object::field_names(info);
        tokio::spawn(sync(self.inner.clone(), prefix, since, fields));
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The prefix of the cache a key could belong to: its first segment
    /// (built-in kinds) or first two (custom kinds, `<group>/<plural>`).
    fn entry_for<'a>(entries: &'a mut HashMap<String, Entry>, key: &str) -> Option<&'a mut Entry> {
        let mut ends = key.match_indices('/').map(|(i, _)| i + 1);
        let first = ends.next()?;
        if entries.contains_key(&key[..first]) {
            return entries.get_mut(&key[..first]);
        }
        let second = ends.next()?;
        entries.get_mut(&key[..second])
    }

    /// Routes one change to its cache (or its pending buffer); drops the
    /// cache of a deleted CustomResourceDefinition.
    fn dispatch(&self, e: Event) {
        let rev = e.revision();
        let ready = {
            let mut state = self.lock();
            if e.kind == EventType::Deleted
                && e.kv.key.starts_with("customresourcedefinitions/")
                && let Some(prefix) = e.prev.as_ref().and_then(|p| crd_prefix(&p.value))
                && state.entries.remove(&prefix).is_some()
            {
                tracing::debug!(%prefix, "dropped the watch cache of a deleted CustomResourceDefinition");
            }
            match Self::entry_for(&mut state.entries, &e.kv.key) {
                Some(Entry::Ready(c)) => Some(c.clone()),
                Some(Entry::Pending { buffer, .. }) => {
                    buffer.push(e.clone());
                    None
                }
                None => None,
            }
            .or_else(|| {
                // nothing to apply: the revision moves on under the lock, so a
                // cache registered now lists at or after this change
                self.revision.send_modify(|r| *r = (*r).max(rev));
                None
            })
        };
        if let Some(cache) = ready {
            if let Err(err) = cache.apply(&e) {
                tracing::warn!(key = %e.kv.key, error = %err, "the watch cache could not apply a change; dropping it");
                self.lock().entries.remove(cache.prefix());
            }
            self.revision.send_modify(|r| *r = (*r).max(rev));
        }
    }

    fn progress(&self, rev: Revision) {
        let _state = self.lock();
        self.revision.send_modify(|r| *r = (*r).max(rev));
    }

    /// Drops every cache (their watchers end) and stops dispatching.
    fn reset(&self) {
        let mut state = self.lock();
        state.entries.clear();
        state.running = false;
    }
}

/// The store prefix of a CustomResourceDefinition's objects (`<group>/<plural>/`).
fn crd_prefix(stored: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(stored).ok()?;
    let group = v.pointer("/spec/group")?.as_str()?;
    let plural = v.pointer("/spec/names/plural")?.as_str()?;
    Some(format!("{group}/{plural}/"))
}

async fn dispatch(inner: Weak<Inner>, mut stream: crate::store::WatchStream) {
    loop {
        let item = stream.next().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match item {
            Some(Ok(WatchItem::Event(e))) => inner.dispatch(e),
            Some(Ok(WatchItem::Progress(rev))) => inner.progress(rev),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the watch cache's store watch failed; caches rebuild on next use");
                inner.reset();
                return;
            }
            None => {
                inner.reset();
                return;
            }
        }
    }
}

/// Lists a resource at `since`, then hands it the changes buffered meanwhile.
async fn sync(inner: Arc<Inner>, prefix: String, since: Revision, fields: object::FieldNames) {
    let started = std::time::Instant::now();
    let listed = initial_list(&inner, &prefix, since, &fields).await;
    let mut state = inner.lock();
    let Some(Entry::Pending { since: s, .. }) = state.entries.get(&prefix) else {
        return; // reset or dropped meanwhile
    };
    if *s != since {
        return;
    }
    let objects = match listed {
        Ok(objects) => objects,
        Err(e) => {
            tracing::warn!(%prefix, error = %e, "the watch cache's initial list failed; retrying on next use");
            state.entries.remove(&prefix);
            return;
        }
    };
    let Some(Entry::Pending { buffer, .. }) = state.entries.remove(&prefix) else {
        return;
    };
    let count = objects.len();
    let cache = Arc::new(ResourceCache::new(
        prefix.clone(),
        fields,
        inner.config.clone(),
        objects,
        since,
    ));
    for e in &buffer {
        if let Err(err) = cache.apply(e) {
            tracing::warn!(key = %e.kv.key, error = %err, "the watch cache could not apply a change");
            return;
        }
    }
    state.entries.insert(prefix.clone(), Entry::Ready(cache));
    inner.readied.notify_waiters();
    tracing::debug!(%prefix, objects = count, revision = since, elapsed_ms = started.elapsed().as_millis() as u64, "watch cache ready");
}

async fn initial_list(
    inner: &Inner,
    prefix: &str,
    at: Revision,
    fields: &object::FieldNames,
) -> crate::errors::ApiResult<resource::Objects> {
    let mut objects = resource::Objects::new();
    let mut start_after = None;
    loop {
        let page = inner
            .store
            .list(ListRequest {
                prefix: prefix.to_string(),
                revision: Some(at),
                limit: Some(SYNC_PAGE),
                start_after: start_after.take(),
            })
            .await?;
        for kv in &page.kvs {
            let o = object::CachedObject::from_kv(kv, fields)?;
            objects.insert(o.key.clone(), Arc::new(o));
        }
        start_after = page.kvs.last().map(|kv| kv.key.clone());
        if !page.more || start_after.is_none() {
            return Ok(objects);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_route_to_built_in_and_custom_caches() {
        let mut entries = HashMap::new();
        for prefix in ["pods/", "example.com/widgets/"] {
            entries.insert(
                prefix.to_string(),
                Entry::Pending {
                    since: 1,
                    buffer: Vec::new(),
                },
            );
        }
        let routed = |entries: &mut HashMap<String, Entry>, key: &str| {
            Inner::entry_for(entries, key).is_some()
        };
        assert!(routed(&mut entries, "pods/default/web"));
        assert!(routed(&mut entries, "example.com/widgets/default/w1"));
        assert!(!routed(&mut entries, "podtemplates/default/t"));
        assert!(!routed(&mut entries, "example.com/gadgets/default/g"));
        assert!(!routed(&mut entries, "ipallocations/services/10.96.0.1"));
    }

    #[test]
    fn a_definitions_prefix_is_its_group_and_plural() {
        let crd =
            br#"{"spec":{"group":"example.com","names":{"plural":"widgets","kind":"Widget"}}}"#;
        assert_eq!(crd_prefix(crd).as_deref(), Some("example.com/widgets/"));
        assert_eq!(crd_prefix(b"{}"), None);
        assert_eq!(crd_prefix(b"not json"), None);
    }
}
