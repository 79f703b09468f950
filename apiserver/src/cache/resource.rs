//! The cache of one resource (one store prefix): its objects in a persistent
//! ordered map (O(1) snapshots for paging at one revision), a ring of recent
//! events for watches resuming from a revision (sized by how recent they
//! are, as kube's watch cache sizes its buffer), snapshots kept for continue
//! tokens, and the feeds that fan events out to watchers: one for every
//! watcher, and one per value of an indexed field (`spec.nodeName`,
//! `metadata.name`) for watchers selecting that value, so a change wakes
//! only the watchers it can concern (kube's cacher indexes pods' watchers
//! by node name the same way).

use std::collections::{HashMap, VecDeque};
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
    /// Recent events always kept for watches resuming from a revision.
    pub ring: usize,
    /// Events younger than this are kept beyond `ring` (up to `ring_max`),
    /// so a watcher resuming from a bookmark of the last minute finds its
    /// changes however busy the resource is (kube: `eventFreshDuration`, 75 s).
    pub ring_fresh: Duration,
    /// The most events kept (kube's watch cache: 102,400).
    pub ring_max: usize,
    /// Events a watcher may fall behind the live feed before it must catch
    /// up from the ring (closed, to re-watch, when the ring has moved past it).
    pub watcher_buffer: usize,
    /// The same for the feed of one value of an indexed field (one per
    /// node for pods: kept small, there can be thousands).
    pub indexed_buffer: usize,
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
            ring_fresh: Duration::from_secs(75),
            ring_max: 102_400,
            watcher_buffer: 1024,
            indexed_buffer: 64,
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
    /// Recent changes, with when they were applied.
    ring: VecDeque<(Instant, Arc<CachedEvent>)>,
    /// Every change after this revision is in the ring.
    ring_from: Revision,
    snapshots: VecDeque<(Revision, Objects, Instant)>,
    /// The feeds of watchers selecting one value of an indexed field: per
    /// entry of `ResourceCache::indexed`, by value.
    feeds: Vec<HashMap<Box<str>, broadcast::Sender<Arc<CachedEvent>>>>,
    /// Feeds held after the last sweep of unused ones.
    swept: usize,
}

/// A watcher's value of an indexed field: it is fed only the changes whose
/// object had or has that value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// The entry in the cache's indexed fields.
    slot: usize,
    /// The value selected.
    value: Box<str>,
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
    /// Positions in `fields` of the indexed fields.
    indexed: Vec<usize>,
    /// The revision the cache was listed at: history before it is the store's.
    listed: Revision,
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
        let indexed: Vec<usize> = INDEXED_FIELDS
            .iter()
            .filter_map(|f| fields.iter().position(|n| n == f))
            .collect();
        ResourceCache {
            prefix,
            state: RwLock::new(State {
                objects,
                applied: revision,
                ring: VecDeque::with_capacity(config.ring.min(1024)),
                ring_from: revision,
                snapshots: VecDeque::new(),
                feeds: vec![HashMap::new(); indexed.len()],
                swept: 0,
            }),
            fields,
            indexed,
            listed: revision,
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
        let now = Instant::now();
        state.ring.push_back((now, event.clone()));
        self.trim_ring(&mut state, now);
        // sent under the lock, so a subscription sees each event exactly once
        self.feed_indexed(&mut state, &event);
        let _ = self.events.send(event);
        Ok(())
    }

    /// Drops the oldest events beyond `ring` that are no longer fresh, and
    /// any beyond `ring_max`.
    fn trim_ring(&self, state: &mut State, now: Instant) {
        let c = &self.config;
        while state.ring.len() > c.ring.max(1) {
            let Some((at, _)) = state.ring.front() else {
                break;
            };
            if state.ring.len() <= c.ring_max && now.duration_since(*at) < c.ring_fresh {
                break;
            }
            if let Some((_, old)) = state.ring.pop_front() {
                state.ring_from = old.revision;
            }
        }
    }

    /// Sends a change to the feeds of the values its object had and has;
    /// a feed nobody listens to any more is dropped.
    fn feed_indexed(&self, state: &mut State, event: &Arc<CachedEvent>) {
        for (slot, &field) in self.indexed.iter().enumerate() {
            let feeds = &mut state.feeds[slot];
            if feeds.is_empty() {
                continue;
            }
            let now = event.object.as_ref().and_then(|o| o.field(field));
            let before = event.prev.as_ref().and_then(|o| o.field(field));
            let values = [now, before.filter(|b| Some(*b) != now)];
            for value in values.into_iter().flatten() {
                if let Some(feed) = feeds.get(value)
                    && feed.send(event.clone()).is_err()
                {
                    feeds.remove(value);
                }
            }
        }
    }

    /// The indexed field value `selectors` require, if any: a watcher with
    /// one is fed only the changes of objects with that value.
    pub fn trigger(&self, selectors: &crate::selectors::Selectors) -> Option<Trigger> {
        self.indexed.iter().enumerate().find_map(|(slot, &field)| {
            let value = selectors.fields.equals(&self.fields[field])?;
            Some(Trigger {
                slot,
                value: value.into(),
            })
        })
    }

    /// The live feed for a trigger (or every change); under the state's
    /// lock, so the feed starts exactly after the state read with it.
    fn live(
        &self,
        state: &mut State,
        trigger: Option<&Trigger>,
    ) -> broadcast::Receiver<Arc<CachedEvent>> {
        let Some(t) = trigger else {
            return self.events.subscribe();
        };
        let capacity = self.config.indexed_buffer.max(1);
        let feeds = &mut state.feeds[t.slot];
        if feeds.len() > 2 * state.swept.max(64) {
            feeds.retain(|_, f| f.receiver_count() > 0);
            state.swept = feeds.len();
        }
        feeds
            .entry(t.value.clone())
            .or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe()
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
    /// revision, with the objects at it) — those of `trigger`'s value only,
    /// when given — or `None` when the ring no longer holds every change
    /// after `after`.
    pub fn subscribe(
        &self,
        after: Option<Revision>,
        global: Revision,
        trigger: Option<&Trigger>,
    ) -> Option<Subscription> {
        let mut state = self.write();
        let current = state.applied.max(global);
        if after.is_some_and(|a| a < state.ring_from) {
            return None;
        }
        let live = self.live(&mut state, trigger);
        match after {
            None => Some(Subscription {
                replay: Vec::new(),
                snapshot: Some(state.objects.clone()),
                revision: current,
                live,
            }),
            Some(after) => Some(Subscription {
                replay: {
                    // the ring is in revision order: start at the first change after `after`
                    let from = state.ring.partition_point(|(_, e)| e.revision <= after);
                    let concerns = |e: &CachedEvent| match trigger {
                        None => true,
                        Some(t) => {
                            let field = self.indexed[t.slot];
                            [&e.object, &e.prev]
                                .into_iter()
                                .flatten()
                                .any(|o| o.field(field) == Some(&*t.value))
                        }
                    };
                    state
                        .ring
                        .range(from..)
                        .filter(|(_, e)| concerns(e))
                        .map(|(_, e)| e.clone())
                        .collect()
                },
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

    /// Whether a watch from `after` is too old for the cache *and* for its
    /// history: the ring has dropped changes after it (a start before the
    /// cache was listed, with nothing dropped since, is the store's to serve).
    pub fn too_old(&self, after: Revision) -> Option<Revision> {
        let state = self.read();
        (after < state.ring_from && state.ring_from > self.listed).then_some(state.ring_from)
    }

    /// How many events the ring holds, and the revision it is complete after.
    pub fn ring_span(&self) -> (usize, Revision) {
        let state = self.read();
        (state.ring.len(), state.ring_from)
    }
}

/// The fields whose watchers are fed by value: a node's pods, one object.
const INDEXED_FIELDS: [&str; 2] = ["spec.nodeName", "metadata.name"];

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
