//! Shared informers: one watcher and one cache per kind, shared by every
//! controller that needs the kind, with change notifications (old and new
//! object) broadcast to subscribers.

use std::sync::Arc;

use tokio::sync::broadcast;

use schemas::Object;

use crate::runtime::cache::{Cache, IndexFn, new_cache};
use crate::runtime::client::Api;
use crate::runtime::watcher::{self, Config, Event};

/// A change as subscribers see it.
#[derive(Debug)]
pub enum Change<K> {
    /// Created or updated (`old` is the cached object before, if any).
    Applied {
        /// The object before.
        old: Option<Arc<K>>,
        /// The object now.
        new: Arc<K>,
    },
    /// Deleted.
    Deleted(Arc<K>),
    /// The cache was relisted: subscribers should re-examine everything.
    Resynced,
}

/// One kind's watcher, cache and change feed.
pub struct Informer<K> {
    cache: Cache<K>,
    changes: broadcast::Sender<Arc<Change<K>>>,
    task: tokio::task::AbortHandle,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            cache: self.cache.clone(),
            changes: self.changes.clone(),
            task: self.task.clone(),
        }
    }
}

impl<K: Object> Informer<K> {
    /// Starts watching `api` with `config`, indexing with the built-in
    /// indexes plus `indexes`.
    pub fn start(
        api: Api<K>,
        config: Config,
        indexes: Vec<(&'static str, IndexFn<K>)>,
    ) -> Informer<K> {
        let (cache, mut writer) = new_cache(indexes);
        let (changes, _) = broadcast::channel(4096);
        let tx = changes.clone();
        let mut events = watcher::watcher(api, config);
        let task = tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                // the cache and the change share one copy of the object
                let change = match ev {
                    Event::Applied(o) => {
                        let new = Arc::new(o);
                        let old = writer.put(new.clone());
                        Change::Applied { old, new }
                    }
                    Event::Deleted(o) => {
                        writer.remove(&o);
                        Change::Deleted(Arc::new(o))
                    }
                    Event::Restarted(objs) => {
                        writer.restart(objs);
                        Change::Resynced
                    }
                };
                // no subscribers yet is fine: they start from the cache
                let _ = tx.send(Arc::new(change));
            }
        });
        Informer {
            cache,
            changes,
            task: task.abort_handle(),
        }
    }

    /// Stops watching (the cache keeps its last state).
    pub fn stop(&self) {
        self.task.abort();
    }

    /// The cache.
    pub fn cache(&self) -> Cache<K> {
        self.cache.clone()
    }

    /// A change feed; a subscriber that lags gets `Lagged` and should resync from the cache.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change<K>>> {
        self.changes.subscribe()
    }
}
