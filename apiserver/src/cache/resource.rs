//! The cache of one resource (one store prefix): its objects in a persistent
//! ordered map (O(1) snapshots for paging at one revision), a bounded ring
//! of recent events for watches resuming from a revision, snapshots kept
//! for continue tokens, and the broadcast that fans events out to watchers.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use imbl::OrdMap;
use tokio::sync::broadcast;

use crate::errors::ApiResult;
use crate::objects;
use crate::store::{Event, EventType, KeyValue, Revision};

use super::event::CachedEvent;
use super::object::{CachedObject, FieldNames};

/// The objects of a resource, by key.
pub type Objects = OrdMap<Arc<str>, Arc<CachedObject>>;

/// Sizes of a resource cache.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Recent events kept for watches resuming from a revision (kube's
    /// watch cache keeps 100 to 102,400; older starts read the store).
    pub ring: usize,
    /// Events a watcher may fall behind the live feed before it must catch
    /// up from the ring (closed, to re-watch, when the ring has moved past it).
    pub watcher_buffer: usize,
    /// Snapshots kept for continue tokens, and for how long.
    pub snapshots: usize,
    /// How long a snapshot is kept.
    pub snapshot_ttl: Duration,
    /// How long a list waits for the cache to reach the revision it needs
    /// before reading the store instead.
    pub wait: Duration,
    /// Bookmarks are sent to a watcher that asked at this interval.
    pub bookmark_interval: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ring: 4096,
            watcher_buffer: 1024,
            snapshots: 16,
            snapshot_ttl: Duration::from_secs(75),
            wait: Duration::from_secs(3),
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

struct State {
    objects: Objects,
    /// The revision of the last change applied (or of the initial list).
    applied: Revision,
    ring: VecDeque<Arc<CachedEvent>>,
    /// Every change after this revision is in the ring.
    ring_from: Revision,
    snapshots: VecDeque<(Revision, Objects, Instant)>,
}

/// What a watch gets when it subscribes: the events to replay, the live feed.
pub struct Subscription {
    /// Events after the requested revision, from the ring, in order.
    pub replay: Vec<Arc<CachedEvent>>,
    /// The objects at `revision` (when asked for).
    pub snapshot: Option<Objects>,
    /// The revision the subscription starts after.
    pub revision: Revision,
    /// Live events (may repeat replayed ones: skip revisions already seen).
    pub live: broadcast::Receiver<Arc<CachedEvent>>,
}

/// One resource's cache.
pub struct ResourceCache {
    prefix: String,
    fields: FieldNames,
    config: CacheConfig,
    state: RwLock<State>,
    events: broadcast::Sender<Arc<CachedEvent>>,
}

impl ResourceCache {
    /// A cache holding `objects`, listed at `revision`.
    pub fn new(
        prefix: String,
        fields: FieldNames,
        config: CacheConfig,
        objects: Objects,
        revision: Revision,
    ) -> Self {
        let (events, _) = broadcast::channel(config.watcher_buffer.max(1));
        ResourceCache {
            prefix,
            fields,
            state: RwLock::new(State {
                objects,
                applied: revision,
                ring: VecDeque::with_capacity(config.ring.min(1024)),
                ring_from: revision,
                snapshots: VecDeque::new(),
            }),
            config,
            events,
        }
    }

    /// The store prefix (`pods/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The field names objects keep.
    pub fn fields(&self) -> &FieldNames {
        &self.fields
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one change from the store (in revision order).
    pub fn apply(&self, e: &Event) -> ApiResult<()> {
        let rev = e.revision();
        let key: Arc<str> = e.kv.key.as_str().into();
        let object = match e.kind {
            EventType::Deleted => None,
            EventType::Added | EventType::Modified => {
                Some(Arc::new(CachedObject::from_kv(&e.kv, &self.fields)?))
            }
        };
        let deleted = match (&e.kind, &e.prev) {
            (EventType::Deleted, Some(prev)) => Some(bytes::Bytes::from(
                objects::with_resource_version(&KeyValue {
                    mod_revision: rev,
                    ..prev.clone()
                })?,
            )),
            _ => None,
        };
        let mut state = self.write();
        if rev <= state.applied {
            return Ok(());
        }
        let prev = match &object {
            Some(o) => state.objects.insert(key.clone(), o.clone()),
            None => state.objects.remove(&*key),
        };
        if object.is_none() && prev.is_none() {
            // a delete of a key the cache never had: nothing to tell
            state.applied = rev;
            return Ok(());
        }
        let event = Arc::new(CachedEvent::new(rev, e.kind, object, prev, deleted));
        state.applied = rev;
        state.ring.push_back(event.clone());
        while state.ring.len() > self.config.ring {
            if let Some(old) = state.ring.pop_front() {
                state.ring_from = old.revision;
            }
        }
        // sent under the lock, so a subscription sees each event exactly once
        let _ = self.events.send(event);
        Ok(())
    }

    /// The objects and the revision they are current at, given the
    /// revision every change has been applied up to (`global`).
    pub fn current(&self, global: Revision) -> (Objects, Revision) {
        let state = self.read();
        (state.objects.clone(), state.applied.max(global))
    }

    /// The objects at exactly `revision`: current if the cache is there,
    /// else a kept snapshot.
    pub fn at(&self, revision: Revision, global: Revision) -> Option<Objects> {
        let state = self.read();
        if state.applied.max(global) == revision {
            return Some(state.objects.clone());
        }
        state
            .snapshots
            .iter()
            .find(|(r, _, _)| *r == revision)
            .map(|(_, o, _)| o.clone())
    }

    /// Keeps `objects` at `revision` for continue tokens.
    pub fn keep_snapshot(&self, revision: Revision, objects: &Objects) {
        let mut state = self.write();
        let now = Instant::now();
        let ttl = self.config.snapshot_ttl;
        state.snapshots.retain(|(_, _, at)| now - *at < ttl);
        if state.snapshots.iter().any(|(r, _, _)| *r == revision) {
            return;
        }
        state.snapshots.push_back((revision, objects.clone(), now));
        while state.snapshots.len() > self.config.snapshots {
            state.snapshots.pop_front();
        }
    }

    /// Subscribes to changes after `after` (`None`: after the current
    /// revision, with the objects at it), or `None` when the ring no longer
    /// holds every change after `after`.
    pub fn subscribe(&self, after: Option<Revision>, global: Revision) -> Option<Subscription> {
        let state = self.read();
        let current = state.applied.max(global);
        let live = self.events.subscribe();
        match after {
            None => Some(Subscription {
                replay: Vec::new(),
                snapshot: Some(state.objects.clone()),
                revision: current,
                live,
            }),
            Some(after) if after < state.ring_from => None,
            Some(after) => Some(Subscription {
                replay: state
                    .ring
                    .iter()
                    .filter(|e| e.revision > after)
                    .cloned()
                    .collect(),
                snapshot: None,
                revision: after,
                live,
            }),
        }
    }

    /// How many objects, their JSON bytes and their footprint in memory.
    pub fn stats(&self) -> CacheStats {
        let objects = self.read().objects.clone();
        let mut stats = CacheStats {
            objects: objects.len(),
            ..Default::default()
        };
        for o in objects.values() {
            stats.json_bytes += o.bytes.len();
            // the map's entry: key and value pointers, and its share of a B-tree node
            stats.footprint_bytes += o.footprint() + 2 * 16;
        }
        stats
    }

    /// How many events the ring holds, and the revision it is complete after.
    pub fn ring_span(&self) -> (usize, Revision) {
        let state = self.read();
        (state.ring.len(), state.ring_from)
    }
}

/// Sizes of one resource cache (see [`ResourceCache::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Objects held.
    pub objects: usize,
    /// Their served JSON, in bytes.
    pub json_bytes: usize,
    /// What they take in memory, estimated from their allocations.
    pub footprint_bytes: usize,
}
