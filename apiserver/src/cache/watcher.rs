//! One watcher of a resource cache: the initial objects (when asked for),
//! the ring's events after its revision, then live events, each translated
//! for its namespace and selectors (an object moving in or out of the
//! selector is ADDED or DELETED); bookmarks at an interval. A watcher that
//! falls more than the live buffer behind catches up from the ring; only
//! when the ring no longer holds its next change is it closed (as kube's
//! cacher closes a slow watcher), and its client re-watches.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

use schemas::KindInfo;

use crate::selectors::Selectors;
use crate::store::{EventType, Revision};

use super::event::{CachedEvent, Kind};
use super::object::{CachedObject, FieldNames};
use super::resource::{ResourceCache, Subscription, Trigger};

/// What a watcher is sent next.
#[derive(Debug)]
pub enum Delivery {
    /// A change, as this watcher sees it.
    Event(Kind, Arc<CachedEvent>),
    /// An initial object, as ADDED.
    Initial(Arc<CachedObject>),
    /// A bookmark at a revision (`true`: the one ending the initial events).
    Bookmark(Revision, bool),
}

/// A watch served from a resource cache.
pub struct CacheWatch {
    cache: Arc<ResourceCache>,
    info: Arc<KindInfo>,
    prefix: String,
    selectors: Selectors,
    fields: FieldNames,
    /// The indexed field value this watcher is fed by, if any.
    trigger: Option<Trigger>,
    /// Closed for falling behind the ring.
    fell_behind: bool,
    backlog: VecDeque<Delivery>,
    replay: VecDeque<Arc<CachedEvent>>,
    live: broadcast::Receiver<Arc<CachedEvent>>,
    /// Changes up to this revision have been handled.
    after: Revision,
    /// The last revision a bookmark or event told the client.
    told: Revision,
    revisions: watch::Receiver<Revision>,
    bookmarks: Option<tokio::time::Interval>,
}

/// How a watch starts.
pub struct WatchStart {
    /// The kind as the client asked for it.
    pub info: Arc<KindInfo>,
    /// The namespace prefix watched (`pods/default/`, or the kind's).
    pub prefix: String,
    /// Selectors.
    pub selectors: Selectors,
    /// Send the objects of the snapshot first, as ADDED.
    pub initial: bool,
    /// End the initial objects with the `k8s.io/initial-events-end` bookmark.
    pub end_bookmark: bool,
    /// Send bookmarks every this often.
    pub bookmarks: Option<std::time::Duration>,
}

impl CacheWatch {
    /// A watch from a subscription (made with `trigger`).
    pub fn new(
        cache: Arc<ResourceCache>,
        start: WatchStart,
        sub: Subscription,
        trigger: Option<Trigger>,
        revisions: watch::Receiver<Revision>,
    ) -> Self {
        let fields = cache.fields().clone();
        let mut backlog = VecDeque::new();
        if start.initial
            && let Some(objects) = &sub.snapshot
        {
            let range = objects
                .range::<_, str>((
                    std::ops::Bound::Included(start.prefix.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.starts_with(&start.prefix));
            for (_, o) in range {
                if o.matches(&start.info, &start.selectors, &fields) {
                    backlog.push_back(Delivery::Initial(o.clone()));
                }
            }
        }
        if start.end_bookmark {
            backlog.push_back(Delivery::Bookmark(sub.revision, true));
        }
        let bookmarks = start.bookmarks.map(|every| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        CacheWatch {
            cache,
            info: start.info,
            prefix: start.prefix,
            selectors: start.selectors,
            fields,
            trigger,
            fell_behind: false,
            backlog,
            replay: sub.replay.into(),
            live: sub.live,
            after: sub.revision,
            told: sub.revision,
            revisions,
            bookmarks,
        }
    }

    /// The next delivery, or `None` when the watch ends (the cache went
    /// away, or this watcher fell too far behind).
    pub async fn next(&mut self) -> Option<Delivery> {
        if let Some(d) = self.backlog.pop_front() {
            return Some(d);
        }
        loop {
            while let Some(e) = self.replay.pop_front() {
                if let Some(d) = self.take(e) {
                    return Some(d);
                }
            }
            let bookmarks = &mut self.bookmarks;
            let tick = async move {
                match bookmarks {
                    Some(i) => {
                        i.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                received = self.live.recv() => match received {
                    Ok(e) => {
                        if let Some(d) = self.take(e) {
                            return Some(d);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        // catch up from the ring, from the last change handled
                        let global = *self.revisions.borrow();
                        match self.cache.subscribe(Some(self.after), global, self.trigger.as_ref()) {
                            Some(sub) => {
                                tracing::debug!(missed, prefix = %self.prefix, "a watcher fell behind the live buffer; catching up from the ring");
                                self.replay = sub.replay.into();
                                self.live = sub.live;
                            }
                            None => {
                                tracing::info!(missed, prefix = %self.prefix, after = self.after, "closing a watcher that fell behind the watch cache's ring");
                                self.fell_behind = true;
                                return None;
                            }
                        }
                    }
                    Err(RecvError::Closed) => return None,
                },
                () = tick => {
                    // read the revision first: every change up to it was sent
                    // before it was published, so an empty feed means all
                    // of them have been handled
                    let rev = *self.revisions.borrow();
                    if self.live.is_empty() && rev > self.told {
                        self.after = self.after.max(rev);
                        self.told = rev;
                        return Some(Delivery::Bookmark(rev, false));
                    }
                }
            }
        }
    }

    /// Whether the watch ended because this watcher fell behind the ring
    /// (its client re-watches; kube counts these as terminated watchers).
    pub fn fell_behind(&self) -> bool {
        self.fell_behind
    }

    /// This watcher's view of a change, if it sees it.
    fn take(&mut self, e: Arc<CachedEvent>) -> Option<Delivery> {
        if e.revision <= self.after {
            return None;
        }
        self.after = e.revision;
        if !e.key().starts_with(&self.prefix) {
            return None;
        }
        let matches = |o: &Option<Arc<CachedObject>>| {
            o.as_ref()
                .is_some_and(|o| o.matches(&self.info, &self.selectors, &self.fields))
        };
        let kind = match e.kind {
            EventType::Deleted => matches(&e.prev).then_some(Kind::Deleted)?,
            EventType::Added | EventType::Modified => {
                match (matches(&e.prev), matches(&e.object)) {
                    (true, true) => Kind::Modified,
                    (false, true) => Kind::Added,
                    (true, false) => Kind::Deleted,
                    (false, false) => return None,
                }
            }
        };
        self.told = e.revision;
        Some(Delivery::Event(kind, e))
    }
}
