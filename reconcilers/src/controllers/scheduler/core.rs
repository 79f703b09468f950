//! The scheduler without I/O: the cache, the queue and the profile, fed with
//! cluster changes, handing out decisions one pod at a time. The controller
//! (`run.rs`) drives it from informers and binds; the benchmark drives it
//! directly to measure scheduling alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use schemas::MetaExt;

use crate::controllers::options::ControllerOptions;
use crate::runtime::ObjectRef;

use super::cache::ClusterCache;
use super::framework::{Decision, Profile, ScheduleError};
use super::plugins::volume_binding::VolumeListers;
use super::plugins::{default_profile, default_profile_with};
use super::pod_info::{PodInfo, bound_node, gated, ours, terminal};
use super::queue::{ClusterEvent, SchedulingQueue};

/// The result of one scheduling attempt.
#[derive(Debug)]
pub enum Outcome {
    /// Placed (and assumed) on a node; bind it next.
    Scheduled {
        /// The pod.
        info: Arc<PodInfo>,
        /// The decision.
        decision: Decision,
        /// How long the attempt took.
        took: Duration,
        /// When the pod was first queued.
        queued: Instant,
    },
    /// No node fits; the pod waits in the queue.
    Unschedulable {
        /// The pod.
        info: Arc<PodInfo>,
        /// Why.
        error: ScheduleError,
        /// How long the attempt took.
        took: Duration,
    },
}

/// The scheduler's state.
pub struct Scheduler {
    /// The cluster as placed so far.
    pub cache: ClusterCache,
    /// Pods waiting.
    pub queue: SchedulingQueue,
    profile: Profile,
}

fn node_changed(old: &Node, new: &Node) -> bool {
    let conditions = |n: &Node| -> Vec<(String, String)> {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    };
    let alloc = |n: &Node| {
        n.status
            .as_ref()
            .map(|s| (s.allocatable.clone(), s.capacity.clone()))
    };
    let images = |n: &Node| n.status.as_ref().and_then(|s| s.images.clone());
    old.metadata.labels != new.metadata.labels
        || old.spec != new.spec
        || alloc(old) != alloc(new)
        || conditions(old) != conditions(new)
        || images(old) != images(new)
}

impl Scheduler {
    /// A scheduler with the default profile.
    pub fn new(options: &ControllerOptions) -> Self {
        Scheduler {
            cache: ClusterCache::new(),
            queue: SchedulingQueue::new(options.pod_initial_backoff, options.pod_max_backoff),
            profile: default_profile(options.percentage_of_nodes_to_score),
        }
    }

    /// A scheduler with the default profile whose VolumeBinding reads `volumes`.
    pub fn with_volumes(options: &ControllerOptions, volumes: VolumeListers) -> Self {
        Scheduler {
            profile: default_profile_with(options.percentage_of_nodes_to_score, Some(volumes)),
            ..Scheduler::new(options)
        }
    }

    /// A claim, volume or class changed: pods waiting for storage may fit now.
    pub fn on_storage_change(&mut self, now: Instant) {
        self.queue.on_event(ClusterEvent::Other, now);
    }

    /// A node was added or changed.
    pub fn on_node(&mut self, old: Option<&Node>, new: Arc<Node>, now: Instant) {
        let known = self.cache.node(new.metadata.name_str()).is_some();
        let event = match old {
            _ if !known => Some(ClusterEvent::NodeAdd),
            Some(o) if node_changed(o, &new) => Some(ClusterEvent::NodeUpdate),
            None => Some(ClusterEvent::NodeUpdate),
            Some(_) => None,
        };
        self.cache.set_node(new);
        if let Some(e) = event {
            self.queue.on_event(e, now);
        }
    }

    /// A node was deleted.
    pub fn on_node_delete(&mut self, name: &str) {
        self.cache.remove_node(name);
    }

    /// A pod was added or changed.
    pub fn on_pod(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = ObjectRef::of(pod.as_ref());
        if let Some(node) = bound_node(&pod).map(str::to_string) {
            self.queue.remove(&key);
            if terminal(&pod) {
                if self.cache.remove_pod(&key) {
                    self.queue.on_event(ClusterEvent::AssignedPodDelete, now);
                }
                return;
            }
            let new = self.cache.placement(&key).is_none();
            self.cache.set_bound_pod(Arc::new(PodInfo::new(pod)), &node);
            if new {
                self.queue.on_event(ClusterEvent::AssignedPodAdd, now);
            }
            return;
        }
        if !ours(&pod) || pod.metadata.deletion_timestamp.is_some() || terminal(&pod) || gated(&pod)
        {
            self.queue.remove(&key);
            return;
        }
        if self.cache.is_assumed(&key) {
            // bound by us a moment ago; the informer has not caught up yet
            return;
        }
        self.queue.add_or_update(Arc::new(PodInfo::new(pod)), now);
    }

    /// A pod was deleted.
    pub fn on_pod_delete(&mut self, pod: &Pod, now: Instant) {
        let key = ObjectRef::of(pod);
        self.queue.remove(&key);
        if self.cache.remove_pod(&key) {
            self.queue.on_event(ClusterEvent::AssignedPodDelete, now);
        }
    }

    /// A namespace was added, changed or (`labels: None`) deleted.
    pub fn on_namespace(
        &mut self,
        name: &str,
        labels: Option<std::collections::BTreeMap<String, String>>,
        now: Instant,
    ) {
        match labels {
            Some(l) => self.cache.set_namespace(name, l),
            None => self.cache.remove_namespace(name),
        }
        self.queue.on_event(ClusterEvent::Other, now);
    }

    /// A service was added or changed, or (`None`) deleted.
    pub fn on_service(&mut self, key: ObjectRef, svc: Option<&Service>) {
        match svc {
            Some(s) => self
                .cache
                .set_service(key, s.spec.as_ref().and_then(|s| s.selector.clone())),
            None => self.cache.remove_service(&key),
        }
    }

    /// Schedules the next pod in the queue, if any: on success the pod is
    /// assumed on its node and leaves the queue; otherwise it waits.
    pub fn schedule_next(&mut self, now: Instant) -> Option<Outcome> {
        self.queue.flush(now);
        let popped = self.queue.pop()?;
        let started = Instant::now();
        let result = self.profile.schedule(&popped.info, &self.cache);
        let took = started.elapsed();
        let key = popped.info.key.clone();
        Some(match result {
            Ok(decision) => {
                self.cache.assume(popped.info.clone(), &decision.node);
                self.queue.done(&key);
                Outcome::Scheduled {
                    info: popped.info,
                    decision,
                    took,
                    queued: popped.added,
                }
            }
            Err(error) => {
                self.queue.unschedulable(&key, error.plugins(), now);
                Outcome::Unschedulable {
                    info: popped.info,
                    error,
                    took,
                }
            }
        })
    }

    /// Binding failed: take the pod back off its node and retry it later
    /// (unless it is gone).
    pub fn bind_failed(&mut self, info: Arc<PodInfo>, retry: bool, now: Instant) {
        self.cache.forget(&info.key);
        if retry {
            self.queue.requeue_after_failed_bind(info, now);
        }
        self.queue.on_event(ClusterEvent::AssignedPodDelete, now);
    }

    /// When the queue next needs attention without any new event.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.queue.next_backoff()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}}),
            )
            .expect("node"),
        )
    }

    fn pod(name: &str, cpu: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "d", "uid": name},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}),
            )
            .expect("pod"),
        )
    }

    fn scheduled(o: Option<Outcome>) -> String {
        match o {
            Some(Outcome::Scheduled { decision, .. }) => decision.node,
            other => panic!("expected a placement, got {other:?}"),
        }
    }

    #[test]
    fn consecutive_decisions_never_overcommit() {
        let mut s = Scheduler::new(&ControllerOptions::default());
        let t = Instant::now();
        s.on_node(None, node("a", "1"), t);
        s.on_node(None, node("b", "1"), t);
        for i in 0..5 {
            s.on_pod(pod(&format!("p{i}"), "500m"), t);
        }
        let mut placed = Vec::new();
        for _ in 0..4 {
            placed.push(scheduled(s.schedule_next(t)));
        }
        placed.sort();
        assert_eq!(placed, vec!["a", "a", "b", "b"]);
        match s.schedule_next(t) {
            Some(Outcome::Unschedulable { error, .. }) => assert_eq!(
                error.message(),
                "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
            ),
            other => panic!("{other:?}"),
        }
        assert!(s.schedule_next(t).is_none());
        // a bound pod goes away: the waiting pod is retried (after its backoff)
        let freed = s
            .cache
            .placement(&ObjectRef::new(Some("d"), "p0"))
            .expect("p0 placed")
            .to_string();
        s.on_pod_delete(&pod("p0", "500m"), t);
        assert!(s.schedule_next(t).is_none(), "still backing off");
        assert_eq!(
            scheduled(s.schedule_next(t + Duration::from_secs(1))),
            freed
        );
    }

    #[test]
    fn bound_pods_confirm_assumed_ones_and_others_are_ignored() {
        let mut s = Scheduler::new(&ControllerOptions::default());
        let t = Instant::now();
        s.on_node(None, node("a", "2"), t);
        s.on_pod(pod("p", "1"), t);
        let node = scheduled(s.schedule_next(t));
        let key = ObjectRef::new(Some("d"), "p");
        assert!(s.cache.is_assumed(&key));
        // our own status update of the unbound pod does not requeue it
        s.on_pod(pod("p", "1"), t);
        assert!(!s.queue.contains(&key));
        let mut bound = (*pod("p", "1")).clone();
        bound.spec.as_mut().expect("spec").node_name = Some(node);
        s.on_pod(Arc::new(bound), t);
        assert!(!s.cache.is_assumed(&key));
        assert_eq!(s.cache.node("a").expect("a").requested.milli_cpu, 1000);
        // other schedulers' pods and gated pods are not ours
        let mut other = (*pod("o", "1")).clone();
        other.spec.as_mut().expect("spec").scheduler_name = Some("custom".into());
        s.on_pod(Arc::new(other), t);
        let mut g = (*pod("g", "1")).clone();
        g.spec.as_mut().expect("spec").scheduling_gates =
            Some(vec![k8s_openapi::api::core::v1::PodSchedulingGate {
                name: "wait".into(),
            }]);
        s.on_pod(Arc::new(g), t);
        assert!(s.schedule_next(t).is_none());
    }

    #[test]
    fn failed_binds_are_forgotten_and_retried() {
        let mut s = Scheduler::new(&ControllerOptions::default());
        let t = Instant::now();
        s.on_node(None, node("a", "1"), t);
        s.on_pod(pod("p", "1"), t);
        let Some(Outcome::Scheduled { info, .. }) = s.schedule_next(t) else {
            panic!("not scheduled")
        };
        s.bind_failed(info, true, t);
        assert_eq!(s.cache.node("a").expect("a").requested.milli_cpu, 0);
        assert!(s.schedule_next(t).is_none());
        assert_eq!(scheduled(s.schedule_next(t + Duration::from_secs(1))), "a");
    }

    #[test]
    fn no_nodes_has_its_own_message() {
        let mut s = Scheduler::new(&ControllerOptions::default());
        let t = Instant::now();
        s.on_pod(pod("p", "1"), t);
        match s.schedule_next(t) {
            Some(Outcome::Unschedulable { error, .. }) => {
                assert_eq!(error.message(), "no nodes available to schedule pods")
            }
            other => panic!("{other:?}"),
        }
        // a node arriving retries it (after backoff)
        s.on_node(None, node("a", "1"), t);
        assert_eq!(scheduled(s.schedule_next(t + Duration::from_secs(1))), "a");
    }
}
