//! The scheduling queue, as kube-scheduler's: an active queue ordered by
//! priority then arrival, a backoff queue (1 s doubling to 10 s per failed
//! attempt), and the unschedulable pods, which wait for a cluster event that
//! may help them (a node added or changed, a pod deleted, a pod added that
//! their affinity or spreading needs) or, at the latest, 5 minutes.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::runtime::ObjectRef;

use super::pod_info::PodInfo;

/// How long a pod stays unschedulable without any event before it is retried.
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// Where a queued pod is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Waiting to be scheduled.
    Active,
    /// Waiting for its backoff to expire.
    Backoff,
    /// Waiting for a cluster event.
    Unschedulable,
    /// Being scheduled now.
    InFlight,
}

/// A cluster event that may make unschedulable pods schedulable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A node was added.
    NodeAdd,
    /// A node changed (labels, taints, allocatable, schedulability).
    NodeUpdate,
    /// A bound pod was deleted or finished (freed resources and ports).
    AssignedPodDelete,
    /// A pod was bound (matters to affinity and spreading).
    AssignedPodAdd,
    /// A namespace or service changed.
    Other,
}

impl ClusterEvent {
    /// Whether this event may help a pod rejected by `plugins`.
    fn may_help(self, plugins: &BTreeSet<&'static str>) -> bool {
        match self {
            ClusterEvent::NodeAdd | ClusterEvent::NodeUpdate | ClusterEvent::Other => true,
            ClusterEvent::AssignedPodDelete => {
                plugins.is_empty()
                    || plugins.iter().any(|p| {
                        matches!(
                            *p,
                            "NodeResourcesFit"
                                | "NodePorts"
                                | "InterPodAffinity"
                                | "PodTopologySpread"
                        )
                    })
            }
            ClusterEvent::AssignedPodAdd => {
                plugins.is_empty()
                    || plugins
                        .iter()
                        .any(|p| matches!(*p, "InterPodAffinity" | "PodTopologySpread"))
            }
        }
    }
}

struct Entry {
    info: Arc<PodInfo>,
    stage: Stage,
    /// Bumped on every move, so stale heap items are skipped.
    seq: u64,
    /// When it (re-)entered the active queue, for ordering.
    since: Instant,
    /// When it was first added (for the end-to-end latency).
    added: Instant,
    attempts: u32,
    backoff_until: Instant,
    unschedulable_since: Instant,
    plugins: BTreeSet<&'static str>,
    /// The move-request count when it was popped.
    popped_at_moves: u64,
}

#[derive(PartialEq, Eq)]
struct ActiveItem {
    priority: i32,
    since: Reverse<Instant>,
    seq: Reverse<u64>,
    key: ObjectRef,
}

impl Ord for ActiveItem {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.priority, self.since, self.seq).cmp(&(o.priority, o.since, o.seq))
    }
}

impl PartialOrd for ActiveItem {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// A pod handed out for scheduling.
#[derive(Clone, Debug)]
pub struct Popped {
    /// The pod.
    pub info: Arc<PodInfo>,
    /// Attempts so far, including this one.
    pub attempts: u32,
    /// When the pod was first queued.
    pub added: Instant,
}

/// The queue.
pub struct SchedulingQueue {
    entries: HashMap<ObjectRef, Entry>,
    active: BinaryHeap<ActiveItem>,
    backoff: BinaryHeap<Reverse<(Instant, u64, ObjectRef)>>,
    /// Keys in the Unschedulable stage (so events need not scan everything).
    unschedulable: HashSet<ObjectRef>,
    last_stale_scan: Option<Instant>,
    seq: u64,
    moves: u64,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl SchedulingQueue {
    /// An empty queue with these backoff bounds.
    pub fn new(initial_backoff: Duration, max_backoff: Duration) -> Self {
        SchedulingQueue {
            entries: HashMap::new(),
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            unschedulable: HashSet::new(),
            last_stale_scan: None,
            seq: 0,
            moves: 0,
            initial_backoff,
            max_backoff,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn move_to_active(&mut self, key: &ObjectRef, now: Instant) {
        self.unschedulable.remove(key);
        let seq = self.next_seq();
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.stage = Stage::Active;
        e.seq = seq;
        e.since = now;
        self.active.push(ActiveItem {
            priority: e.info.priority,
            since: Reverse(now),
            seq: Reverse(seq),
            key: key.clone(),
        });
    }

    fn move_to_backoff(&mut self, key: &ObjectRef) {
        self.unschedulable.remove(key);
        let seq = self.next_seq();
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.stage = Stage::Backoff;
        e.seq = seq;
        self.backoff
            .push(Reverse((e.backoff_until, seq, key.clone())));
    }

    fn backoff_for(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff)
    }

    /// Adds a pod, or updates a queued one. A changed pod waiting as
    /// unschedulable is retried (after its backoff).
    pub fn add_or_update(&mut self, info: Arc<PodInfo>, now: Instant) {
        let key = info.key.clone();
        match self.entries.get_mut(&key) {
            Some(e) => {
                let changed = e.info.pod.spec != info.pod.spec
                    || e.info.pod.metadata.labels != info.pod.metadata.labels;
                e.info = info;
                if changed && e.stage == Stage::Unschedulable {
                    if e.backoff_until > now {
                        self.move_to_backoff(&key);
                    } else {
                        self.move_to_active(&key, now);
                    }
                }
            }
            None => {
                self.entries.insert(
                    key.clone(),
                    Entry {
                        info,
                        stage: Stage::Active,
                        seq: 0,
                        since: now,
                        added: now,
                        attempts: 0,
                        backoff_until: now,
                        unschedulable_since: now,
                        plugins: BTreeSet::new(),
                        popped_at_moves: 0,
                    },
                );
                self.move_to_active(&key, now);
            }
        }
    }

    /// Removes a pod (deleted, bound elsewhere, or no longer ours).
    pub fn remove(&mut self, key: &ObjectRef) {
        self.unschedulable.remove(key);
        self.entries.remove(key);
    }

    /// Whether the pod is queued (in any stage).
    pub fn contains(&self, key: &ObjectRef) -> bool {
        self.entries.contains_key(key)
    }

    /// The stage of a queued pod.
    pub fn stage(&self, key: &ObjectRef) -> Option<Stage> {
        self.entries.get(key).map(|e| e.stage)
    }

    /// Moves pods whose backoff expired to the active queue, and retries
    /// pods unschedulable for too long.
    pub fn flush(&mut self, now: Instant) {
        while let Some(Reverse((at, seq, key))) = self.backoff.peek().cloned() {
            if at > now {
                break;
            }
            self.backoff.pop();
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.seq == seq && e.stage == Stage::Backoff)
            {
                self.move_to_active(&key, now);
            }
        }
        // the long-waiting scan runs at most once a second
        if self
            .last_stale_scan
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_stale_scan = Some(now);
        let stale: Vec<ObjectRef> = self
            .unschedulable
            .iter()
            .filter(|k| {
                self.entries.get(*k).is_some_and(|e| {
                    now.saturating_duration_since(e.unschedulable_since) >= MAX_IN_UNSCHEDULABLE
                })
            })
            .cloned()
            .collect();
        for k in stale {
            self.move_to_active(&k, now);
        }
    }

    /// The next pod to schedule.
    pub fn pop(&mut self) -> Option<Popped> {
        while let Some(item) = self.active.pop() {
            let Some(e) = self.entries.get_mut(&item.key) else {
                continue;
            };
            if e.seq != item.seq.0 || e.stage != Stage::Active {
                continue;
            }
            e.stage = Stage::InFlight;
            e.attempts += 1;
            e.popped_at_moves = self.moves;
            return Some(Popped {
                info: e.info.clone(),
                attempts: e.attempts,
                added: e.added,
            });
        }
        None
    }

    /// The pod was placed: it leaves the queue.
    pub fn done(&mut self, key: &ObjectRef) {
        self.unschedulable.remove(key);
        self.entries.remove(key);
    }

    /// The pod fits nowhere (rejected by `plugins`): it waits for an event,
    /// or backs off at once if an event came while it was being scheduled.
    pub fn unschedulable(
        &mut self,
        key: &ObjectRef,
        plugins: BTreeSet<&'static str>,
        now: Instant,
    ) {
        let backoff = self.entries.get(key).map(|e| self.backoff_for(e.attempts));
        let moves = self.moves;
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.backoff_until = now + backoff.unwrap_or_default();
        e.plugins = plugins;
        if e.popped_at_moves != moves {
            self.move_to_backoff(key);
        } else {
            let seq = self.next_seq();
            if let Some(e) = self.entries.get_mut(key) {
                e.stage = Stage::Unschedulable;
                e.unschedulable_since = now;
                e.seq = seq;
                self.unschedulable.insert(key.clone());
            }
        }
    }

    /// Scheduling or binding failed for another reason: retry after backoff.
    pub fn retry(&mut self, key: &ObjectRef, now: Instant) {
        let backoff = self.entries.get(key).map(|e| self.backoff_for(e.attempts));
        if let Some(e) = self.entries.get_mut(key) {
            e.backoff_until = now + backoff.unwrap_or_default();
        }
        self.move_to_backoff(key);
    }

    /// Re-queues a pod whose binding failed (it had left the queue).
    pub fn requeue_after_failed_bind(&mut self, info: Arc<PodInfo>, now: Instant) {
        let key = info.key.clone();
        if !self.entries.contains_key(&key) {
            self.add_or_update(info, now);
            if let Some(e) = self.entries.get_mut(&key) {
                e.attempts = 1;
            }
        }
        self.retry(&key, now);
    }

    /// A cluster event: unschedulable pods it may help move on (to backoff
    /// if theirs has not expired, else to active).
    pub fn on_event(&mut self, event: ClusterEvent, now: Instant) {
        self.moves += 1;
        let keys: Vec<ObjectRef> = self
            .unschedulable
            .iter()
            .filter(|k| {
                self.entries
                    .get(*k)
                    .is_some_and(|e| event.may_help(&e.plugins))
            })
            .cloned()
            .collect();
        for k in keys {
            let in_backoff = self.entries.get(&k).is_some_and(|e| e.backoff_until > now);
            if in_backoff {
                self.move_to_backoff(&k);
            } else {
                self.move_to_active(&k, now);
            }
        }
    }

    /// When the earliest backoff expires.
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Pods waiting in each stage: (active, backoff, unschedulable).
    pub fn lengths(&self) -> (usize, usize, usize) {
        let mut out = (0, 0, 0);
        for e in self.entries.values() {
            match e.stage {
                Stage::Active => out.0 += 1,
                Stage::Backoff => out.1 += 1,
                Stage::Unschedulable => out.2 += 1,
                Stage::InFlight => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(name: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d"},
                "spec": {"priority": priority, "containers": [{"name": "c"}]}}))
            .expect("pod"),
        )))
    }

    fn q() -> SchedulingQueue {
        SchedulingQueue::new(Duration::from_secs(1), Duration::from_secs(10))
    }

    #[test]
    fn active_pods_pop_by_priority_then_arrival() {
        let mut q = q();
        let t = Instant::now();
        q.add_or_update(info("low", 0), t);
        q.add_or_update(info("high", 10), t + Duration::from_millis(1));
        q.add_or_update(info("low2", 0), t + Duration::from_millis(2));
        let order: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|p| p.info.name().to_string())
            .collect();
        assert_eq!(order, vec!["high", "low", "low2"]);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_helpful_event_then_back_off() {
        let mut q = q();
        let t = Instant::now();
        let p = info("p", 0);
        q.add_or_update(p.clone(), t);
        let popped = q.pop().expect("pod");
        assert_eq!(popped.attempts, 1);
        q.unschedulable(&p.key, BTreeSet::from(["NodeAffinity"]), t);
        assert_eq!(q.stage(&p.key), Some(Stage::Unschedulable));
        assert!(q.pop().is_none());
        // a pod deletion does not help a node-affinity problem
        q.on_event(ClusterEvent::AssignedPodDelete, t);
        assert_eq!(q.stage(&p.key), Some(Stage::Unschedulable));
        // a new node may; the first backoff (1 s) has not expired yet
        q.on_event(ClusterEvent::NodeAdd, t + Duration::from_millis(100));
        assert_eq!(q.stage(&p.key), Some(Stage::Backoff));
        assert!(q.pop().is_none());
        q.flush(t + Duration::from_millis(900));
        assert!(q.pop().is_none());
        q.flush(t + Duration::from_secs(1));
        assert_eq!(q.pop().map(|p| p.attempts), Some(2));
        // second failure: 2 s backoff, and after an event the pod waits that long
        q.unschedulable(
            &p.key,
            BTreeSet::from(["NodeResourcesFit"]),
            t + Duration::from_secs(1),
        );
        q.on_event(ClusterEvent::AssignedPodDelete, t + Duration::from_secs(2));
        q.flush(t + Duration::from_millis(2900));
        assert!(q.pop().is_none());
        q.flush(t + Duration::from_secs(3));
        assert!(q.pop().is_some());
    }

    #[test]
    fn an_event_during_the_attempt_sends_the_pod_move_to_backoff() {
        let mut q = q();
        let t = Instant::now();
        let p = info("p", 0);
        q.add_or_update(p.clone(), t);
        q.pop().expect("pod");
        q.on_event(ClusterEvent::NodeAdd, t);
        q.unschedulable(&p.key, BTreeSet::from(["NodeResourcesFit"]), t);
        assert_eq!(q.stage(&p.key), Some(Stage::Backoff));
        assert_eq!(q.next_backoff(), Some(t + Duration::from_secs(1)));
    }

    #[test]
    fn long_unschedulable_pods_are_retried_and_updates_requeue() {
        let mut q = q();
        let t = Instant::now();
        let p = info("p", 0);
        q.add_or_update(p.clone(), t);
        q.pop().expect("pod");
        q.unschedulable(&p.key, BTreeSet::new(), t);
        q.flush(t + MAX_IN_UNSCHEDULABLE);
        assert_eq!(q.stage(&p.key), Some(Stage::Active));
        q.pop().expect("pod");
        q.unschedulable(&p.key, BTreeSet::new(), t);
        // a spec/label change retries it
        let mut changed = (*p.pod).clone();
        changed.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
        q.add_or_update(
            Arc::new(PodInfo::new(Arc::new(changed))),
            t + Duration::from_secs(20),
        );
        assert_eq!(q.stage(&p.key), Some(Stage::Active));
        q.remove(&p.key);
        assert!(q.pop().is_none());
        assert_eq!(q.lengths(), (0, 0, 0));
    }
}
