//! Node health, as kube-controller-manager's node lifecycle controller: a
//! node whose Lease (`kube-node-lease`) or Ready heartbeat has not moved for
//! the grace period (40 s) gets its conditions set to `Unknown`, its pods
//! marked not ready, and the `node.kubernetes.io/unreachable` taints
//! (`NoSchedule` and `NoExecute`); a node reporting `Ready=False` gets the
//! `not-ready` ones; a cordoned node `node.kubernetes.io/unschedulable`.
//! The taint manager part evicts pods from nodes with `NoExecute` taints
//! they do not tolerate — at once, or after their `tolerationSeconds`.
//! When the lease resumes, conditions and taints are cleared.
//!
//! Staleness is judged by when *this* process saw the heartbeat move, so
//! clocks need not agree. Every node is checked each monitor period; between
//! passes only the nodes a change concerns are (a renewed Lease of a node
//! marked Unknown, a cordon, a readiness change), so thousands of heartbeats
//! a minute cost a lookup each, not a pass over every node.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use schemas::MetaExt;
use schemas::TimeExt;
use schemas::object::tolerates;

use super::Context;
use super::informers::PODS_BY_NODE;
use super::recorder::{NORMAL, Recorder, WARNING};
use crate::runtime::{DeleteParams, Patch, WriteParams};

/// The namespace of node heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Taint of a node whose heartbeat stopped.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint of a node that reports not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint of a cordoned node.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The reason node-health writes into conditions it sets to Unknown.
pub const STATUS_UNKNOWN: &str = "NodeStatusUnknown";
/// The reason for a node that never reported a Ready condition.
pub const NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
/// The reason node-health writes when a node heartbeats again.
pub const LEASE_RENEWED: &str = "NodeLeaseRenewed";

/// What the controller has seen of one node's heartbeats.
#[derive(Clone, Debug)]
struct Observed {
    /// When a heartbeat last moved, by our clock.
    probe: Instant,
    renew: Option<DateTime<Utc>>,
    heartbeat: Option<DateTime<Utc>>,
}

/// The Ready condition's status (`None` when the node never posted one).
pub fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str())
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
}

/// The conditions of a node whose heartbeat stopped: every condition
/// `Unknown`, as Kubernetes writes them (`None` when already so).
pub fn unknown_conditions(node: &Node) -> Option<Vec<NodeCondition>> {
    let now = schemas::time::now();
    let mut conds = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if !conds.iter().any(|c| c.type_ == "Ready") {
        conds.push(NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            last_heartbeat_time: None,
            last_transition_time: Some(now.clone()),
            reason: Some(NEVER_UPDATED.into()),
            message: Some("Kubelet never posted node status.".into()),
        });
    }
    let mut changed = false;
    for c in &mut conds {
        if c.status != "Unknown" {
            c.status = "Unknown".into();
            c.reason = Some(STATUS_UNKNOWN.into());
            c.message = Some("Kubelet stopped posting node status.".into());
            c.last_transition_time = Some(now.clone());
            changed = true;
        } else if c.reason.is_none() {
            c.reason = Some(STATUS_UNKNOWN.into());
            changed = true;
        }
    }
    let had_ready = ready_status(node).is_some();
    (changed || !had_ready).then_some(conds)
}

/// The conditions once the heartbeat resumed: those node-health set to
/// `Unknown` go back to healthy (`Ready=True`, pressure conditions `False`);
/// `None` when node-health has nothing to undo.
pub fn recovered_conditions(node: &Node) -> Option<Vec<NodeCondition>> {
    let ours = |c: &NodeCondition| {
        c.status == "Unknown" && matches!(c.reason.as_deref(), Some(STATUS_UNKNOWN | NEVER_UPDATED))
    };
    let current = node.status.as_ref().and_then(|s| s.conditions.as_ref())?;
    if !current.iter().any(ours) {
        return None;
    }
    let now = schemas::time::now();
    let mut conds = current.clone();
    let mut changed = false;
    for c in &mut conds {
        if ours(c) {
            c.status = if c.type_ == "Ready" { "True" } else { "False" }.into();
            c.reason = Some(LEASE_RENEWED.into());
            c.message = Some("The node is renewing its lease again.".into());
            c.last_transition_time = Some(now.clone());
            c.last_heartbeat_time = Some(now.clone());
            changed = true;
        }
    }
    changed.then_some(conds)
}

/// The node's taints with node-health's own ones made to match its state
/// (`None` when they already do). Other taints are kept as they are.
pub fn desired_taints(node: &Node) -> Option<Vec<Taint>> {
    let current: &[Taint] = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let mut want: Vec<(&str, &str)> = Vec::new();
    match ready_status(node) {
        Some("False") => want.extend([(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]),
        Some("Unknown") => want.extend([(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]),
        _ => {}
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        want.push((UNSCHEDULABLE, "NoSchedule"));
    }
    let managed = |t: &Taint| {
        matches!(t.key.as_str(), UNREACHABLE | NOT_READY | UNSCHEDULABLE)
            && matches!(t.effect.as_str(), "NoSchedule" | "NoExecute")
    };
    // the common case: node-health's taints are already the wanted ones
    let held = current.iter().filter(|t| managed(t)).count();
    if held == want.len()
        && want
            .iter()
            .all(|(k, e)| current.iter().any(|t| t.key == *k && t.effect == *e))
    {
        return None;
    }
    let mut out: Vec<Taint> = current.iter().filter(|t| !managed(t)).cloned().collect();
    for (key, effect) in &want {
        let existing = current
            .iter()
            .find(|t| t.key == *key && t.effect == *effect);
        out.push(match existing {
            Some(t) => t.clone(),
            None => Taint {
                key: key.to_string(),
                value: None,
                effect: effect.to_string(),
                time_added: (*effect == "NoExecute").then(schemas::time::now),
            },
        });
    }
    let same = out.len() == current.len() && out.iter().all(|t| current.contains(t));
    (!same).then_some(out)
}

/// When a pod must leave a node with these taints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// It may stay.
    Never,
    /// It must go at (or after) this time.
    At(DateTime<Utc>),
}

/// The taint manager's rule: a pod that does not tolerate every `NoExecute`
/// taint goes at once (for the health taints: after `health_timeout`);
/// otherwise it goes after the smallest `tolerationSeconds` of the
/// tolerations used, counted from when the taints were added, or never
/// when none of them sets `tolerationSeconds`.
pub fn eviction(
    taints: &[Taint],
    tolerations: &[Toleration],
    health_timeout: Duration,
    observed: DateTime<Utc>,
) -> Eviction {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_execute.is_empty() {
        return Eviction::Never;
    }
    let since = no_execute
        .iter()
        .filter_map(|t| t.time_added.as_ref().map(TimeExt::utc))
        .max()
        .unwrap_or(observed);
    let mut used: Vec<&Toleration> = Vec::new();
    for t in &no_execute {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|tol| tolerates(tol, t)).collect();
        if matching.is_empty() {
            let health = t.key == UNREACHABLE || t.key == NOT_READY;
            let grace = if health {
                health_timeout
            } else {
                Duration::ZERO
            };
            let at = since + chrono::Duration::from_std(grace).unwrap_or_default();
            return Eviction::At(at);
        }
        used.extend(matching);
    }
    let min = used.iter().filter_map(|t| t.toleration_seconds).min();
    match min {
        None => Eviction::Never,
        Some(s) => Eviction::At(since + chrono::Duration::seconds(s.max(0))),
    }
}

struct NodeHealth {
    ctx: Context,
    recorder: Recorder,
    observed: HashMap<String, Observed>,
    /// When we first saw a node's NoExecute taints without `timeAdded`.
    taint_seen: HashMap<String, DateTime<Utc>>,
    /// Pods already being evicted (uid), so each is deleted once.
    evicting: HashMap<String, Instant>,
}

fn lease_renew(lease: &Lease) -> Option<DateTime<Utc>> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.as_ref().map(TimeExt::utc))
}

impl NodeHealth {
    fn observe(&mut self, node: &Node, lease: Option<&Lease>, now: Instant) -> Instant {
        let name = node.metadata.name_str();
        let renew = lease.and_then(lease_renew);
        let heartbeat = ready_condition(node)
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(TimeExt::utc);
        if !self.observed.contains_key(name) {
            self.observed.insert(
                name.to_string(),
                Observed {
                    probe: now,
                    renew,
                    heartbeat,
                },
            );
        }
        let Some(o) = self.observed.get_mut(name) else {
            return now;
        };
        if o.renew != renew || o.heartbeat != heartbeat {
            o.probe = now;
            o.renew = renew;
            o.heartbeat = heartbeat;
        }
        o.probe
    }

    /// Checks every node (`only`: just these); returns when the next
    /// eviction is due, if any (of the nodes checked).
    async fn monitor(&mut self, only: Option<HashSet<String>>) -> Option<DateTime<Utc>> {
        let cache = self.ctx.informers.get::<Node>().cache();
        let nodes = match only {
            None => {
                let nodes = cache.all();
                let names: HashSet<&str> = nodes.iter().map(|n| n.metadata.name_str()).collect();
                self.observed.retain(|n, _| names.contains(n.as_str()));
                self.taint_seen.retain(|n, _| names.contains(n.as_str()));
                nodes
            }
            Some(names) => names
                .iter()
                .filter_map(|n| cache.get(&crate::runtime::ObjectRef::new(None, n)))
                .collect(),
        };
        let leases = self.ctx.informers.get::<Lease>().cache();
        let now = Instant::now();
        let grace = self.ctx.options.node_monitor_grace_period;
        let mut next: Option<DateTime<Utc>> = None;
        for node in nodes {
            let name = node.metadata.name_str().to_string();
            let lease = leases.get(&crate::runtime::ObjectRef::new(
                Some(LEASE_NAMESPACE),
                &name,
            ));
            let probe = self.observe(&node, lease.as_deref(), now);
            let stale = now.duration_since(probe) > grace;
            let node = match self.update_conditions(&node, stale).await {
                Some(n) => Arc::new(n),
                None => node,
            };
            let node = match desired_taints(&node) {
                Some(taints) => match self.set_taints(&node, taints).await {
                    Some(n) => Arc::new(n),
                    None => node,
                },
                None => node,
            };
            if ready_status(&node) == Some("Unknown") {
                self.mark_pods_not_ready(&name).await;
            }
            if let Some(at) = self.evict(&node).await {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        let cutoff = Duration::from_secs(600);
        self.evicting.retain(|_, t| now.duration_since(*t) < cutoff);
        next
    }

    async fn update_conditions(&self, node: &Node, stale: bool) -> Option<Node> {
        let (conds, what) = if stale {
            (unknown_conditions(node)?, "NodeNotReady")
        } else {
            (recovered_conditions(node)?, "NodeReady")
        };
        let mut updated = node.clone();
        updated
            .status
            .get_or_insert_with(Default::default)
            .conditions = Some(conds);
        let api = self.ctx.client.api::<Node>(None);
        match api
            .replace_status(node.metadata.name_str(), &updated, &WriteParams::default())
            .await
        {
            Ok(n) => {
                tracing::info!(
                    node = node.metadata.name_str(),
                    status = what,
                    "node status changed"
                );
                let (type_, msg) = if stale {
                    (
                        WARNING,
                        format!(
                            "Node {} status is now: NodeNotReady",
                            node.metadata.name_str()
                        ),
                    )
                } else {
                    (
                        NORMAL,
                        format!("Node {} status is now: NodeReady", node.metadata.name_str()),
                    )
                };
                self.recorder.record(node, type_, what, "", &msg);
                Some(n)
            }
            Err(e) => {
                tracing::debug!(node = node.metadata.name_str(), error = %e, "cannot update node status");
                None
            }
        }
    }

    async fn set_taints(&self, node: &Node, taints: Vec<Taint>) -> Option<Node> {
        let mut updated = node.clone();
        updated.spec.get_or_insert_with(Default::default).taints = if taints.is_empty() {
            None
        } else {
            Some(taints)
        };
        let api = self.ctx.client.api::<Node>(None);
        match api
            .replace(node.metadata.name_str(), &updated, &WriteParams::default())
            .await
        {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::debug!(node = node.metadata.name_str(), error = %e, "cannot update node taints");
                None
            }
        }
    }

    /// Sets `Ready=False` on the pods of an unreachable node.
    async fn mark_pods_not_ready(&self, node: &str) {
        let pods = self
            .ctx
            .informers
            .pods()
            .cache()
            .by_index(PODS_BY_NODE, node);
        for pod in pods {
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .map(|c| c.status.as_str());
            if ready != Some("True") || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let patch = json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": schemas::time::now()}
            ]}});
            let api = self
                .ctx
                .client
                .api::<Pod>(Some(pod.metadata.namespace_str()));
            if let Err(e) = api
                .patch_status(
                    pod.metadata.name_str(),
                    &Patch::Strategic(patch),
                    &WriteParams::default(),
                )
                .await
            {
                tracing::debug!(pod = pod.metadata.name_str(), error = %e, "cannot mark pod not ready");
            } else {
                self.recorder.record(
                    pod.as_ref(),
                    WARNING,
                    "NodeNotReady",
                    "",
                    "Node is not ready",
                );
            }
        }
    }

    /// Evicts the pods that must leave `node` now; returns when the next one is due.
    async fn evict(&mut self, node: &Node) -> Option<DateTime<Utc>> {
        let name = node.metadata.name_str();
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default();
        if !taints.iter().any(|t| t.effect == "NoExecute") {
            self.taint_seen.remove(name);
            return None;
        }
        let now = Utc::now();
        let observed = *self.taint_seen.entry(name.to_string()).or_insert(now);
        let timeout = self.ctx.options.pod_eviction_timeout;
        let mut next: Option<DateTime<Utc>> = None;
        for pod in self
            .ctx
            .informers
            .pods()
            .cache()
            .by_index(PODS_BY_NODE, name)
        {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if self.evicting.contains_key(&uid) {
                continue;
            }
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.as_deref())
                .unwrap_or_default();
            match eviction(taints, tolerations, timeout, observed) {
                Eviction::Never => {}
                Eviction::At(at) if at > now => next = Some(next.map_or(at, |n| n.min(at))),
                Eviction::At(_) => {
                    self.evicting.insert(uid.clone(), Instant::now());
                    self.delete_pod(&pod, &uid).await;
                }
            }
        }
        next
    }

    async fn delete_pod(&self, pod: &Pod, uid: &str) {
        let ns = pod.metadata.namespace_str();
        let name = pod.metadata.name_str();
        let api = self.ctx.client.api::<Pod>(Some(ns));
        let condition = json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
            "reason": "DeletionByTaintManager", "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": schemas::time::now()}]}});
        if let Err(e) = api
            .patch_status(name, &Patch::Strategic(condition), &WriteParams::default())
            .await
        {
            tracing::debug!(pod = name, error = %e, "cannot set DisruptionTarget");
        }
        self.recorder.record(
            pod,
            NORMAL,
            "TaintManagerEviction",
            "",
            &format!("Marking for deletion Pod {ns}/{name}"),
        );
        let params = DeleteParams {
            precondition_uid: Some(uid.to_string()),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(()) => tracing::info!(pod = %format!("{ns}/{name}"), "evicted by NoExecute taint"),
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "eviction failed"),
        }
    }
}

/// Runs node-health until `ctx` shuts down.
pub async fn run(ctx: Context) {
    let nodes = ctx.informers.get::<Node>();
    let leases = ctx.informers.get::<Lease>();
    let pods = ctx.informers.pods();
    let mut node_rx = nodes.subscribe();
    let mut lease_rx = leases.subscribe();
    let mut pod_rx = pods.subscribe();
    let synced = async {
        nodes.cache().wait_synced().await;
        leases.cache().wait_synced().await;
        pods.cache().wait_synced().await;
    };
    tokio::select! {
        _ = synced => {}
        _ = ctx.stopped() => return,
    }
    let period = ctx
        .options
        .node_monitor_period
        .max(Duration::from_millis(10));
    let recorder = Recorder::new(ctx.client.clone(), "node-controller", "node-controller");
    let mut h = NodeHealth {
        ctx: ctx.clone(),
        recorder,
        observed: HashMap::new(),
        taint_seen: HashMap::new(),
        evicting: HashMap::new(),
    };
    let stopped = ctx.stopped();
    tokio::pin!(stopped);
    // the nodes to check before the next full pass (`all`: every node)
    let mut all = true;
    let mut dirty: HashSet<String> = HashSet::new();
    let mut next_tick = tokio::time::Instant::now();
    loop {
        if all || tokio::time::Instant::now() >= next_tick {
            let next_eviction = h.monitor(None).await;
            (all, dirty) = (false, HashSet::new());
            next_tick = tokio::time::Instant::now() + period;
            if let Some(at) = next_eviction {
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                next_tick = next_tick.min(tokio::time::Instant::now() + wait);
            }
        } else if !dirty.is_empty()
            && let Some(at) = h.monitor(Some(std::mem::take(&mut dirty))).await
        {
            let wait = (at - Utc::now()).to_std().unwrap_or_default();
            next_tick = next_tick.min(tokio::time::Instant::now() + wait);
        }
        // react at once to heartbeats resuming, cordons and new taints;
        // pods landing on tainted nodes are caught by the next pass
        tokio::select! {
            c = lease_rx.recv() => match c.as_deref() {
                Ok(crate::runtime::Change::Applied { new, .. }) => {
                    let name = new.metadata.name_str();
                    let r = crate::runtime::ObjectRef::new(None, name);
                    if nodes.cache().get(&r).is_some_and(|n| ready_status(&n) == Some("Unknown")) {
                        dirty.insert(name.to_string());
                    }
                }
                Ok(_) => {}
                Err(_) => all = true,
            },
            c = node_rx.recv() => match c.as_deref() {
                Ok(crate::runtime::Change::Applied { old, new }) => {
                    let changed = old.as_ref().is_none_or(|old| {
                        old.spec != new.spec || ready_status(old) != ready_status(new)
                    });
                    if changed {
                        dirty.insert(new.metadata.name_str().to_string());
                    }
                }
                // a deleted node is forgotten by the next full pass
                Ok(crate::runtime::Change::Deleted(_)) => {}
                Ok(crate::runtime::Change::Resynced) | Err(_) => all = true,
            },
            c = pod_rx.recv() => all |= c.is_err(),
            _ = tokio::time::sleep_until(next_tick) => {}
            _ = &mut stopped => break,
        }
    }
    tracing::info!("node-health stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).expect("node")
    }

    fn taint(key: &str, effect: &str, added: Option<DateTime<Utc>>) -> Taint {
        Taint {
            key: key.into(),
            value: None,
            effect: effect.into(),
            time_added: added.map(schemas::time::from_utc),
        }
    }

    fn tol(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).expect("toleration")
    }

    #[test]
    fn stale_nodes_turn_unknown_and_recover() {
        let n = node(
            serde_json::json!({"metadata": {"name": "n1"}, "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady"},
                {"type": "MemoryPressure", "status": "False"}
            ]}}),
        );
        let conds = unknown_conditions(&n).expect("changed");
        assert!(
            conds
                .iter()
                .all(|c| c.status == "Unknown" && c.reason.as_deref() == Some(STATUS_UNKNOWN))
        );
        assert_eq!(
            conds[0].message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        let mut unknown = n.clone();
        unknown.status.as_mut().expect("status").conditions = Some(conds);
        assert!(unknown_conditions(&unknown).is_none(), "already unknown");
        let back = recovered_conditions(&unknown).expect("recovered");
        assert_eq!(back[0].status, "True");
        assert_eq!(back[1].status, "False");
        assert!(recovered_conditions(&n).is_none(), "nothing to undo");
        let never = node(serde_json::json!({"metadata": {"name": "n2"}}));
        let conds = unknown_conditions(&never).expect("added");
        assert_eq!(conds[0].reason.as_deref(), Some(NEVER_UPDATED));
    }

    #[test]
    fn taints_follow_readiness_and_cordon() {
        let unknown = node(serde_json::json!({"metadata": {"name": "n"},
            "spec": {"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}));
        let t = desired_taints(&unknown).expect("taints");
        let keys: Vec<(String, String)> = t
            .iter()
            .map(|t| (t.key.clone(), t.effect.clone()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("dedicated".into(), "NoSchedule".into()),
                (UNREACHABLE.into(), "NoSchedule".into()),
                (UNREACHABLE.into(), "NoExecute".into()),
            ]
        );
        assert!(t[2].time_added.is_some() && t[1].time_added.is_none());
        let mut tainted = unknown.clone();
        tainted.spec.as_mut().expect("spec").taints = Some(t);
        assert!(desired_taints(&tainted).is_none(), "stable");
        // ready again and cordoned
        let mut ready = tainted.clone();
        ready
            .status
            .as_mut()
            .expect("status")
            .conditions
            .as_mut()
            .expect("c")[0]
            .status = "True".into();
        ready.spec.as_mut().expect("spec").unschedulable = Some(true);
        let t = desired_taints(&ready).expect("taints");
        let keys: Vec<&str> = t.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, vec!["dedicated", UNSCHEDULABLE]);
        let mut not_ready = ready.clone();
        not_ready
            .status
            .as_mut()
            .expect("status")
            .conditions
            .as_mut()
            .expect("c")[0]
            .status = "False".into();
        not_ready.spec.as_mut().expect("spec").unschedulable = None;
        let t = desired_taints(&not_ready).expect("taints");
        assert!(
            t.iter()
                .any(|t| t.key == NOT_READY && t.effect == "NoExecute")
        );
    }

    #[test]
    fn evictions_follow_toleration_seconds() {
        let added = schemas::time::now().utc() - chrono::Duration::seconds(10);
        let taints = vec![
            taint(UNREACHABLE, "NoExecute", Some(added)),
            taint(UNREACHABLE, "NoSchedule", None),
        ];
        let five_min = Duration::from_secs(300);
        let seen = Utc::now();
        // the API server's default toleration: 300 s
        let default = tol(
            serde_json::json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
        );
        assert_eq!(
            eviction(&taints, &[default], five_min, seen),
            Eviction::At(added + chrono::Duration::seconds(300))
        );
        let short = tol(
            serde_json::json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}),
        );
        assert_eq!(
            eviction(&taints, &[short], five_min, seen),
            Eviction::At(added + chrono::Duration::seconds(2))
        );
        let forever = tol(serde_json::json!({"operator": "Exists"}));
        assert_eq!(
            eviction(&taints, &[forever], five_min, seen),
            Eviction::Never
        );
        // no toleration for a health taint: the pod eviction timeout
        assert_eq!(
            eviction(&taints, &[], Duration::from_secs(7), seen),
            Eviction::At(added + chrono::Duration::seconds(7))
        );
        // another NoExecute taint without toleration: at once
        let other = vec![taint("maintenance", "NoExecute", Some(added))];
        assert_eq!(eviction(&other, &[], five_min, seen), Eviction::At(added));
        assert_eq!(
            eviction(&[taint("x", "NoSchedule", None)], &[], five_min, seen),
            Eviction::Never
        );
        // no timeAdded: counted from when the taint was first seen
        let unstamped = vec![taint("maintenance", "NoExecute", None)];
        assert_eq!(
            eviction(&unstamped, &[], five_min, seen),
            Eviction::At(seen)
        );
    }
}
