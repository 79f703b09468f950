//! The DaemonSet controller: one pod per eligible node (`eligibility.rs`),
//! created pinned to its node by a required node affinity on
//! `metadata.name` for the scheduler to bind; pods on nodes that stop
//! qualifying, failed pods (with a per-node back-off) and extra pods are
//! deleted; ControllerRevisions record the templates (`history.rs`);
//! RollingUpdate replaces pods within maxUnavailable/maxSurge
//! (`rolling.rs`), OnDelete only when someone deletes them; status counts
//! desired, current, ready, available, updated and misscheduled pods.
//! Nodes are watched: a new or changed node gets its pod at once.

pub mod eligibility;
pub mod history;
pub mod rolling;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use schemas::MetaExt;

use crate::controllers::claim::adopters;
use crate::controllers::expectations::Expectations;
use crate::controllers::podutil::{controller_of, is_available, is_ready};
use crate::controllers::recorder::{NORMAL, Recorder, WARNING};
use crate::controllers::{Context, write_status};
use crate::runtime::{
    Action, Cache, ClientError, Controller, DeleteParams, ObjectRef, WriteParams,
};

use eligibility::{
    REVISION_HASH, is_rolling, is_updated, min_ready_seconds, placement, pod_for, target_node,
    template_generation,
};
use history::HistoryError;

const MANAGER: &str = "daemonset-controller";
/// At most this many pods are created or deleted per sync (burstReplicas).
const BURST: usize = 250;
/// The first and the longest wait before a failed daemon pod on a node is
/// deleted again (kube's failedPodsBackoff).
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

struct State {
    ctx: Context,
    daemonsets: Cache<DaemonSet>,
    pods: Cache<Pod>,
    nodes: Cache<Node>,
    revisions: Cache<ControllerRevision>,
    expectations: Expectations,
    recorder: Recorder,
    /// (DaemonSet, node) → (not before, current back-off) for failed pods.
    failed_backoff: Mutex<HashMap<(ObjectRef, String), (Instant, Duration)>>,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let ds_informer = ctx.informers.get::<DaemonSet>();
    let pod_informer = ctx.informers.pods();
    let node_informer = ctx.informers.get::<Node>();
    let cr_informer = ctx.informers.get::<ControllerRevision>();
    let ds_for_orphans = ds_informer.cache();
    let (ds_for_nodes, pods_for_nodes) = (ds_informer.cache(), pod_informer.cache());
    let node_cache = node_informer.cache();
    let controller = Controller::new("daemonset", &ds_informer)
        .owns::<DaemonSet, Pod>(&pod_informer)
        .owns::<DaemonSet, ControllerRevision>(&cr_informer)
        .watches(&pod_informer, move |p: &Pod| {
            adopters(&ds_for_orphans, p, |ds: &DaemonSet| {
                ds.spec.as_ref().map(|s| s.selector.clone())
            })
        })
        .watches(&node_informer, move |n: &Node| {
            daemonsets_to_act_on(n, &ds_for_nodes, &pods_for_nodes, &node_cache)
        })
        .workers(4);
    let state = Arc::new(State {
        recorder: Recorder::new(ctx.client.clone(), MANAGER, MANAGER),
        ctx: ctx.clone(),
        daemonsets: ds_informer.cache(),
        pods: pod_informer.cache(),
        nodes: node_informer.cache(),
        revisions: cr_informer.cache(),
        expectations: Expectations::default(),
        failed_backoff: Mutex::new(HashMap::new()),
    });
    let shutdown = ctx.stopped();
    controller
        .run(
            move |key| reconcile(state.clone(), key),
            ctx.metrics.clone(),
            shutdown,
        )
        .await;
}

/// The DaemonSets a node change may concern: those whose pod on the node
/// should come or go (a new node, changed labels or taints), and all that
/// counted the node when it is deleted.
fn daemonsets_to_act_on(
    node: &Node,
    daemonsets: &Cache<DaemonSet>,
    pods: &Cache<Pod>,
    nodes: &Cache<Node>,
) -> Vec<ObjectRef> {
    let name = node.metadata.name_str();
    let deleted = nodes.get(&ObjectRef::new(None, name)).is_none();
    let on_node = pods.by_index(crate::controllers::informers::PODS_BY_NODE, name);
    daemonsets
        .all()
        .iter()
        .filter(|ds| {
            let uid = ds.metadata.uid.as_deref().unwrap_or("");
            let has_pod = on_node
                .iter()
                .any(|p| controller_of(&p.metadata).is_some_and(|r| r.uid == uid));
            let p = placement(node, ds);
            if deleted {
                p.should_run || has_pod
            } else {
                p.should_run != has_pod || (has_pod && !p.should_continue_running)
            }
        })
        .map(|ds| ObjectRef::of(ds.as_ref()))
        .collect()
}

fn is_terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Bound pods first, then oldest first, then by name (`podByCreationTimestampAndPhase`).
fn oldest_first(a: &Arc<Pod>, b: &Arc<Pod>) -> std::cmp::Ordering {
    let bound = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.clone().map(|t| t.0);
    bound(b)
        .cmp(&bound(a))
        .then_with(|| created(a).cmp(&created(b)))
        .then_with(|| a.metadata.name_str().cmp(b.metadata.name_str()))
}

/// The DaemonSet's pods by the node they are for (terminal pods being
/// deleted left out: nothing more to do with them).
fn by_node(owned: &[Arc<Pod>]) -> BTreeMap<String, Vec<Arc<Pod>>> {
    let mut out: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
    for p in owned {
        if is_terminal(p) && p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node(p) {
            out.entry(node).or_default().push(p.clone());
        }
    }
    for pods in out.values_mut() {
        pods.sort_by(oldest_first);
    }
    out
}

fn ns_of(key: &ObjectRef) -> &str {
    key.namespace.as_deref().unwrap_or("default")
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(ds) = state.daemonsets.get(&key) else {
        state.expectations.forget(&key);
        return Ok(Action::AwaitChange);
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let ns = ns_of(&key).to_string();
    let client = &state.ctx.client;
    let cr_api = client.api::<ControllerRevision>(Some(&ns));
    let ds_api = client.api::<DaemonSet>(Some(&ns));
    let pod_api = client.api::<Pod>(Some(&ns));
    let history = match history::construct(&ds, &state.revisions, &cr_api, &ds_api, MANAGER).await {
        Ok(h) => h,
        Err(HistoryError::Collision) => return Ok(Action::requeue(Duration::from_millis(100))),
        Err(HistoryError::Api(e)) if e.is_conflict() || e.is_not_found() => {
            return Ok(Action::requeue(Duration::from_millis(200)));
        }
        Err(HistoryError::Api(e)) => return Err(e),
    };
    let hash = history.hash();
    let selector = ds
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    let owned =
        crate::controllers::claim::claim(ds.as_ref(), &selector, &state.pods, &pod_api, MANAGER)
            .await?;
    let nodes: BTreeMap<String, Arc<Node>> = state
        .nodes
        .all()
        .into_iter()
        .map(|n| (n.metadata.name_str().to_string(), n))
        .collect();

    let pods_cache = state.pods.clone();
    let satisfied = state.expectations.satisfied(
        &key,
        |name| pods_cache.get(&ObjectRef::new(Some(&ns), name)).is_some(),
        |name| {
            pods_cache
                .get(&ObjectRef::new(Some(&ns), name))
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        },
    );
    let mut requeue: Option<Duration> = None;
    let mut sync_error = None;
    if satisfied {
        let nodes_pods = by_node(&owned);
        let (mut delete, create, wait) = manage(&state, &key, &ds, &nodes, &nodes_pods, &hash);
        requeue = wait;
        let mut create = create;
        let rolling = is_rolling(&ds);
        if rolling && delete.is_empty() && create.is_empty() {
            let step = rolling::step(&ds, &nodes, &nodes_pods, &hash);
            delete = step.delete;
            create = step.create;
        }
        if let Err(e) = sync_nodes(&state, &key, &ds, delete, create, &hash).await {
            sync_error = Some(e);
        }
        let live: HashSet<String> = owned
            .iter()
            .filter_map(|p| p.metadata.labels_map().get(REVISION_HASH).cloned())
            .collect();
        history::cleanup(&ds, &history.old, &live, &cr_api).await?;
    }

    let nodes_pods = by_node(&owned);
    let status = compute_status(&ds, &nodes, &nodes_pods, &hash, satisfied);
    let name = ds.metadata.name_str();
    if !write_status(&ds_api, name, ds.status.as_ref(), &status, MANAGER).await? {
        return Ok(Action::AwaitChange);
    }
    if let Some(e) = sync_error {
        return Err(e);
    }
    let min_ready = min_ready_seconds(&ds);
    if min_ready > 0 && status.number_ready != status.number_available.unwrap_or(0) {
        let d = Duration::from_secs(u64::try_from(min_ready).unwrap_or(1));
        requeue = Some(requeue.map_or(d, |r| r.min(d)));
    }
    if !satisfied {
        requeue = Some(requeue.map_or(Duration::from_secs(5), |r| r.min(Duration::from_secs(5))));
    }
    Ok(requeue.map_or(Action::AwaitChange, Action::requeue))
}

/// The pods to delete and nodes needing a pod (`manage` and
/// `podsShouldBeOnNode`), and when to look again for failed pods in back-off.
fn manage(
    state: &State,
    key: &ObjectRef,
    ds: &DaemonSet,
    nodes: &BTreeMap<String, Arc<Node>>,
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    hash: &str,
) -> (Vec<String>, Vec<String>, Option<Duration>) {
    let surge = rolling::surge_and_unavailable(ds, 1).0 > 0 && is_rolling(ds);
    let min_ready = min_ready_seconds(ds);
    let (mut delete, mut create) = (Vec::new(), Vec::new());
    let mut wait: Option<Duration> = None;
    let now = Instant::now();
    for (name, node) in nodes {
        let p = placement(node, ds);
        let pods = by_node.get(name);
        match pods {
            None if p.should_run => create.push(name.clone()),
            Some(pods) if p.should_continue_running => {
                let mut running = Vec::new();
                for pod in pods
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                {
                    match phase(pod) {
                        "Failed" => {
                            let bk = (key.clone(), name.clone());
                            let Ok(mut backoff) = state.failed_backoff.lock() else {
                                continue;
                            };
                            match backoff.get(&bk).copied() {
                                Some((not_before, _)) if not_before > now => {
                                    let left = not_before - now;
                                    wait = Some(wait.map_or(left, |w| w.min(left)));
                                }
                                previous => {
                                    let next = previous
                                        .map_or(BACKOFF_START, |(_, d)| (d * 2).min(BACKOFF_MAX));
                                    backoff.insert(bk, (now + next, next));
                                    state.recorder.record(
                                        ds,
                                        WARNING,
                                        "FailedDaemonPod",
                                        "",
                                        &format!(
                                            "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                                            pod.metadata.namespace_str(),
                                            pod.metadata.name_str()
                                        ),
                                    );
                                    delete.push(pod.metadata.name_str().to_string());
                                }
                            }
                        }
                        "Succeeded" => delete.push(pod.metadata.name_str().to_string()),
                        _ => running.push(pod.clone()),
                    }
                }
                if !surge {
                    // one pod per node: the oldest stays
                    delete.extend(
                        running
                            .iter()
                            .skip(1)
                            .map(|p| p.metadata.name_str().to_string()),
                    );
                    continue;
                }
                if running.len() <= 1 {
                    if running.is_empty() && p.should_run {
                        create.push(name.clone());
                    }
                    continue;
                }
                // surging: keep the oldest new and the oldest old pod, the
                // old one only while the new one is not yet available
                let (mut oldest_new, mut oldest_old) = (None, None);
                let generation = template_generation(ds);
                for pod in &running {
                    let slot = if is_updated(pod, hash, generation.as_deref()) {
                        &mut oldest_new
                    } else {
                        &mut oldest_old
                    };
                    if slot.is_none() {
                        *slot = Some(pod.clone());
                    } else {
                        delete.push(pod.metadata.name_str().to_string());
                    }
                }
                if let (Some(new), Some(old)) = (oldest_new, oldest_old)
                    && (!is_ready(&old) || is_available(&new, min_ready))
                {
                    delete.push(old.metadata.name_str().to_string());
                }
            }
            Some(pods) if !p.should_continue_running => delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| p.metadata.name_str().to_string()),
            ),
            _ => {}
        }
    }
    // pods never bound, meant for nodes that no longer exist
    for (name, pods) in by_node {
        if nodes.contains_key(name) {
            continue;
        }
        delete.extend(
            pods.iter()
                .filter(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_deref())
                            .is_none_or(str::is_empty)
                })
                .map(|p| p.metadata.name_str().to_string()),
        );
    }
    (delete, create, wait)
}

/// Deletes `delete` and creates a pod on each of `create`, in slow-start
/// batches, with expectations and events (`syncNodes`).
async fn sync_nodes(
    state: &State,
    key: &ObjectRef,
    ds: &DaemonSet,
    mut delete: Vec<String>,
    mut create: Vec<String>,
    hash: &str,
) -> Result<(), ClientError> {
    delete.truncate(BURST);
    create.truncate(BURST);
    let pod_api = state
        .ctx
        .client
        .api::<Pod>(ds.metadata.namespace.as_deref());
    let wp = WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let mut first_error = None;
    let mut batch = 1usize;
    let mut queue = create.as_slice();
    while !queue.is_empty() && first_error.is_none() {
        let (now, rest) = queue.split_at(batch.min(queue.len()));
        queue = rest;
        let pods: Vec<Pod> = now.iter().map(|node| pod_for(ds, node, hash)).collect();
        let results =
            futures_util::future::join_all(pods.iter().map(|pod| pod_api.create(pod, &wp))).await;
        let mut names = Vec::new();
        for r in results {
            match r {
                Ok(p) => {
                    state.recorder.record(
                        ds,
                        NORMAL,
                        "SuccessfulCreate",
                        "",
                        &format!("Created pod: {}", p.metadata.name_str()),
                    );
                    names.push(p.metadata.name_str().to_string());
                }
                Err(e) => {
                    state.recorder.record(
                        ds,
                        WARNING,
                        "FailedCreate",
                        "",
                        &format!("Error creating: {e}"),
                    );
                    first_error.get_or_insert(e);
                }
            }
        }
        state.expectations.created(key, names);
        batch *= 2;
    }
    state.expectations.deleted(key, delete.iter().cloned());
    let results = futures_util::future::join_all(delete.iter().map(|name| {
        let pod_api = pod_api.clone();
        async move { (name, pod_api.delete(name, &DeleteParams::default()).await) }
    }))
    .await;
    for (name, r) in results {
        match r {
            Ok(()) => state.recorder.record(
                ds,
                NORMAL,
                "SuccessfulDelete",
                "",
                &format!("Deleted pod: {name}"),
            ),
            Err(e) if e.is_not_found() => state.expectations.observed(key, name),
            Err(e) => {
                state.expectations.observed(key, name);
                state.recorder.record(
                    ds,
                    WARNING,
                    "FailedDelete",
                    "",
                    &format!("Error deleting: {e}"),
                );
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The status for the pods as they are (`updateDaemonSetStatus`);
/// `observedGeneration` moves only when the sync acted on this generation.
fn compute_status(
    ds: &DaemonSet,
    nodes: &BTreeMap<String, Arc<Node>>,
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    hash: &str,
    observed: bool,
) -> DaemonSetStatus {
    let min_ready = min_ready_seconds(ds);
    let generation = template_generation(ds);
    let (mut desired, mut current, mut ready, mut available, mut updated, mut misscheduled) =
        (0, 0, 0, 0, 0, 0);
    for (name, node) in nodes {
        let pods = by_node.get(name).filter(|p| !p.is_empty());
        if placement(node, ds).should_run {
            desired += 1;
            let Some(pod) = pods.and_then(|p| p.first()) else {
                continue;
            };
            current += 1;
            if is_ready(pod) {
                ready += 1;
                if is_available(pod, min_ready) {
                    available += 1;
                }
            }
            if is_updated(pod, hash, generation.as_deref()) {
                updated += 1;
            }
        } else if pods.is_some() {
            misscheduled += 1;
        }
    }
    let old = ds.status.clone().unwrap_or_default();
    let some = |n: i32| (n != 0).then_some(n);
    DaemonSetStatus {
        collision_count: old.collision_count,
        conditions: old.conditions,
        current_number_scheduled: current,
        desired_number_scheduled: desired,
        number_available: some(available),
        number_misscheduled: misscheduled,
        number_ready: ready,
        number_unavailable: some(desired - available),
        observed_generation: if observed {
            ds.metadata.generation
        } else {
            old.observed_generation
        },
        updated_number_scheduled: some(updated),
    }
}
