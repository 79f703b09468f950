//! The controller loop: triggers (the primary kind, owned kinds via
//! ownerReferences, related kinds via a mapper) feed a work queue; N workers
//! run `reconcile(key)` once caches have synced; results requeue after a
//! delay, errors back off per key.
//!
//! A controller is one module with a `reconcile` function and its triggers:
//!
//! ```ignore
//! Controller::new("replicaset", &replicasets)
//!     .owns(&pods)
//!     .run(|key| reconcile(ctx.clone(), key), metrics, shutdown)
//! ```

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;

use schemas::Object;

use crate::runtime::cache::ObjectRef;
use crate::runtime::informer::{Change, Informer};
use crate::runtime::metrics::ControllerMetrics;
use crate::runtime::queue::Queue;

/// What to do after a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes.
    AwaitChange,
    /// Run again after this long (also on success, e.g. to check a deadline).
    Requeue(Duration),
}

impl Action {
    /// Requeue after `d`.
    pub fn requeue(d: Duration) -> Action {
        Action::Requeue(d)
    }
}

type Trigger = Box<dyn FnOnce(Queue<ObjectRef>) -> tokio::task::JoinHandle<()> + Send>;
/// Maps a changed object to the keys to reconcile.
type Mapper<C> = Arc<dyn Fn(&C) -> Vec<ObjectRef> + Send + Sync>;
type SyncWait = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A controller being assembled.
pub struct Controller {
    name: &'static str,
    queue: Queue<ObjectRef>,
    triggers: Vec<Trigger>,
    synced: Vec<SyncWait>,
    workers: usize,
}

fn spawn_feed<C: Object>(
    informer: &Informer<C>,
    queue: Queue<ObjectRef>,
    map: Mapper<C>,
) -> tokio::task::JoinHandle<()> {
    let mut rx = informer.subscribe();
    let cache = informer.cache();
    tokio::spawn(async move {
        // everything already cached counts as a change at start
        cache.wait_synced().await;
        for o in cache.all() {
            for r in map(&o) {
                queue.add(r);
            }
        }
        loop {
            match rx.recv().await {
                Ok(change) => match change.as_ref() {
                    Change::Applied { old, new } => {
                        for r in old.iter().flat_map(|o| map(o)).chain(map(new)) {
                            queue.add(r);
                        }
                    }
                    Change::Deleted(o) => {
                        for r in map(o) {
                            queue.add(r);
                        }
                    }
                    Change::Resynced => {
                        for o in cache.all() {
                            for r in map(&o) {
                                queue.add(r);
                            }
                        }
                    }
                },
                Err(RecvError::Lagged(_)) => {
                    for o in cache.all() {
                        for r in map(&o) {
                            queue.add(r);
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// The references to the controlling owner of kind `P` named by an object.
pub fn controller_owner<P: Object, C: Object>(child: &C) -> Vec<ObjectRef> {
    let ns = child.metadata().namespace.clone();
    child
        .metadata()
        .owner_references
        .iter()
        .flatten()
        .filter(|o| {
            o.controller == Some(true) && o.kind == P::KIND && o.api_version == P::API_VERSION
        })
        .map(|o| ObjectRef::new(ns.as_deref().filter(|_| P::NAMESPACED), &o.name))
        .collect()
}

impl Controller {
    /// A controller whose primary kind comes from `primary`.
    pub fn new<K: Object>(name: &'static str, primary: &Informer<K>) -> Self {
        let mut c = Controller {
            name,
            queue: Queue::new(),
            triggers: Vec::new(),
            synced: Vec::new(),
            workers: 2,
        };
        c = c.watches(primary, |o: &K| vec![ObjectRef::of(o)]);
        c
    }

    /// Also triggers on changes of kind `C`, for the objects `map` names.
    pub fn watches<C: Object>(
        mut self,
        informer: &Informer<C>,
        map: impl Fn(&C) -> Vec<ObjectRef> + Send + Sync + 'static,
    ) -> Self {
        let inf = informer.clone();
        let map: Mapper<C> = Arc::new(map);
        self.triggers
            .push(Box::new(move |q| spawn_feed(&inf, q, map)));
        let cache = informer.cache();
        self.synced
            .push(Box::pin(async move { cache.wait_synced().await }));
        self
    }

    /// Also triggers the controlling owner (of the primary kind `P`) when an owned `C` changes.
    pub fn owns<P: Object, C: Object>(self, informer: &Informer<C>) -> Self {
        self.watches(informer, controller_owner::<P, C>)
    }

    /// Runs this many reconciles at once (default 2).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// The queue (to add keys from elsewhere).
    pub fn queue(&self) -> Queue<ObjectRef> {
        self.queue.clone()
    }

    /// Runs until `shutdown` resolves: waits for every cache to sync, then
    /// reconciles. Errors are logged and requeued with per-key backoff.
    pub async fn run<F, Fut, E>(
        self,
        reconcile: F,
        metrics: Arc<ControllerMetrics>,
        shutdown: impl Future<Output = ()> + Send,
    ) where
        F: Fn(ObjectRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let Controller {
            name,
            queue,
            triggers,
            synced,
            workers,
        } = self;
        for s in synced {
            s.await;
        }
        tracing::info!(
            controller = name,
            workers,
            "caches synced; starting workers"
        );
        let feeds: Vec<_> = triggers.into_iter().map(|t| t(queue.clone())).collect();
        let reconcile = Arc::new(reconcile);
        let mut handles = Vec::new();
        for _ in 0..workers {
            let (q, reconcile, metrics) = (queue.clone(), reconcile.clone(), metrics.clone());
            handles.push(tokio::spawn(async move {
                while let Some(key) = q.get().await {
                    let started = Instant::now();
                    let result = reconcile(key.clone()).await;
                    metrics.reconciled(name, started.elapsed(), result.is_err());
                    match result {
                        Ok(Action::AwaitChange) => q.forget(&key),
                        Ok(Action::Requeue(d)) => {
                            q.forget(&key);
                            q.add_after(key.clone(), d);
                        }
                        Err(e) => {
                            tracing::warn!(controller = name, key = %key, error = %e, "reconcile failed; will retry");
                            q.add_rate_limited(key.clone());
                        }
                    }
                    q.done(&key);
                    let (adds, retries) = q.counters();
                    metrics.queue(name, q.len(), adds, retries);
                }
            }));
        }
        shutdown.await;
        queue.shutdown();
        for f in feeds {
            f.abort();
        }
        for h in handles {
            let _ = h.await;
        }
        tracing::info!(controller = name, "stopped");
    }
}
