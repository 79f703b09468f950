//! The scheduler as a controller: one loop owns the [`Scheduler`] and feeds
//! it from the shared informers (pods, nodes, namespaces, services), then
//! schedules pods for up to 5 ms per turn; bindings go out concurrently through the
//! `binding` subresource and report back to the loop. A pod that fits
//! nowhere gets `PodScheduled=False` (reason `Unschedulable`) and a
//! `FailedScheduling` event; a bound one a `Scheduled` event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{Semaphore, broadcast, mpsc};

use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, PodCondition, Service,
};
use k8s_openapi::api::storage::v1::StorageClass;
use schemas::MetaExt;

use crate::controllers::Context;
use crate::controllers::persistentvolume::ANN_SELECTED_NODE;
use crate::controllers::recorder::{NORMAL, Recorder, WARNING};
use crate::runtime::{Change, ClientError, Informer, ObjectRef, Patch, WriteParams};

use super::core::{Outcome, Scheduler};
use super::plugins::volume_binding::{VolumeListers, claims_to_select};
use super::pod_info::{DEFAULT_SCHEDULER, PodInfo};

/// Bindings in flight at once.
const MAX_CONCURRENT_BINDS: usize = 256;

/// How long the loop schedules pods before it lets other tasks run: one pod
/// per turn made the rate depend on how many tasks share the runtime.
const SLICE: Duration = Duration::from_millis(5);

/// The answer to one binding.
struct BindResult {
    info: Arc<PodInfo>,
    node: String,
    result: Result<(), ClientError>,
}

struct Feeds {
    pods: broadcast::Receiver<Arc<Change<Pod>>>,
    nodes: broadcast::Receiver<Arc<Change<Node>>>,
    namespaces: broadcast::Receiver<Arc<Change<Namespace>>>,
    services: broadcast::Receiver<Arc<Change<Service>>>,
    claims: broadcast::Receiver<Arc<Change<PersistentVolumeClaim>>>,
    volumes: broadcast::Receiver<Arc<Change<PersistentVolume>>>,
    classes: broadcast::Receiver<Arc<Change<StorageClass>>>,
}

struct Sources {
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    namespaces: Informer<Namespace>,
    services: Informer<Service>,
    claims: Informer<PersistentVolumeClaim>,
    volumes: Informer<PersistentVolume>,
    classes: Informer<StorageClass>,
}

fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{DEFAULT_SCHEDULER}-{host}")
}

/// Runs the scheduler until `ctx` shuts down.
pub async fn run(ctx: Context) {
    let src = Sources {
        pods: ctx.informers.pods(),
        nodes: ctx.informers.get::<Node>(),
        namespaces: ctx.informers.get::<Namespace>(),
        services: ctx.informers.get::<Service>(),
        claims: ctx.informers.get::<PersistentVolumeClaim>(),
        volumes: ctx.informers.get::<PersistentVolume>(),
        classes: ctx.informers.get::<StorageClass>(),
    };
    // subscribe before reading the caches, so nothing falls in between
    let mut feeds = Feeds {
        pods: src.pods.subscribe(),
        nodes: src.nodes.subscribe(),
        namespaces: src.namespaces.subscribe(),
        services: src.services.subscribe(),
        claims: src.claims.subscribe(),
        volumes: src.volumes.subscribe(),
        classes: src.classes.subscribe(),
    };
    let synced = async {
        src.nodes.cache().wait_synced().await;
        src.namespaces.cache().wait_synced().await;
        src.services.cache().wait_synced().await;
        src.claims.cache().wait_synced().await;
        src.volumes.cache().wait_synced().await;
        src.classes.cache().wait_synced().await;
        src.pods.cache().wait_synced().await;
    };
    tokio::select! {
        _ = synced => {}
        _ = ctx.stopped() => return,
    }
    let listers = VolumeListers {
        claims: src.claims.cache(),
        volumes: src.volumes.cache(),
        classes: src.classes.cache(),
    };
    let mut s = Scheduler::with_volumes(&ctx.options, listers.clone());
    resync(&mut s, &src, Instant::now());
    tracing::info!(
        nodes = s.cache.nodes().len(),
        pods = s.cache.pod_count(),
        "scheduler caches synced"
    );
    let recorder = Recorder::new(ctx.client.clone(), DEFAULT_SCHEDULER, &identity());
    let (bind_tx, mut bind_rx) = mpsc::unbounded_channel::<BindResult>();
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_BINDS));
    let stopped = ctx.stopped();
    tokio::pin!(stopped);
    loop {
        let now = Instant::now();
        if drain(&mut s, &mut feeds, &src, now) {
            resync(&mut s, &src, now);
        }
        while let Ok(r) = bind_rx.try_recv() {
            bound(&mut s, &src, r, now);
        }
        if let Some(outcome) = s.schedule_next(now) {
            handle(&ctx, &recorder, &bind_tx, &permits, &listers, outcome);
            let slice_end = Instant::now() + SLICE;
            while Instant::now() < slice_end {
                let Some(outcome) = s.schedule_next(Instant::now()) else {
                    break;
                };
                handle(&ctx, &recorder, &bind_tx, &permits, &listers, outcome);
            }
            tokio::task::yield_now().await;
            continue;
        }
        let wake = s
            .next_wakeup()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(30));
        let lagged = tokio::select! {
            c = feeds.pods.recv() => match c {
                Ok(c) => { on_pod(&mut s, &c, Instant::now()); false }
                Err(_) => true,
            },
            c = feeds.nodes.recv() => match c {
                Ok(c) => { on_node(&mut s, &c, Instant::now()); false }
                Err(_) => true,
            },
            c = feeds.namespaces.recv() => match c {
                Ok(c) => { on_namespace(&mut s, &c, Instant::now()); false }
                Err(_) => true,
            },
            c = feeds.services.recv() => match c {
                Ok(c) => { on_service(&mut s, &c); false }
                Err(_) => true,
            },
            Ok(_) | Err(RecvError::Lagged(_)) = feeds.claims.recv() => { s.on_storage_change(Instant::now()); false }
            Ok(_) | Err(RecvError::Lagged(_)) = feeds.volumes.recv() => { s.on_storage_change(Instant::now()); false }
            Ok(_) | Err(RecvError::Lagged(_)) = feeds.classes.recv() => { s.on_storage_change(Instant::now()); false }
            Some(r) = bind_rx.recv() => { bound(&mut s, &src, r, Instant::now()); false }
            _ = tokio::time::sleep_until(wake) => false,
            _ = &mut stopped => break,
        };
        if lagged {
            resync(&mut s, &src, Instant::now());
        }
    }
    tracing::info!("scheduler stopped");
}

/// Applies every waiting change; `true` when a feed lagged (resync needed).
fn drain(s: &mut Scheduler, f: &mut Feeds, _src: &Sources, now: Instant) -> bool {
    let mut lagged = false;
    loop {
        match f.nodes.try_recv() {
            Ok(c) => on_node(s, &c, now),
            Err(TryRecvError::Lagged(_)) => lagged = true,
            Err(_) => break,
        }
    }
    loop {
        match f.namespaces.try_recv() {
            Ok(c) => on_namespace(s, &c, now),
            Err(TryRecvError::Lagged(_)) => lagged = true,
            Err(_) => break,
        }
    }
    loop {
        match f.services.try_recv() {
            Ok(c) => on_service(s, &c),
            Err(TryRecvError::Lagged(_)) => lagged = true,
            Err(_) => break,
        }
    }
    let mut storage = false;
    while matches!(f.claims.try_recv(), Ok(_) | Err(TryRecvError::Lagged(_))) {
        storage = true;
    }
    while matches!(f.volumes.try_recv(), Ok(_) | Err(TryRecvError::Lagged(_))) {
        storage = true;
    }
    while matches!(f.classes.try_recv(), Ok(_) | Err(TryRecvError::Lagged(_))) {
        storage = true;
    }
    if storage {
        s.on_storage_change(now);
    }
    loop {
        match f.pods.try_recv() {
            Ok(c) => on_pod(s, &c, now),
            Err(TryRecvError::Lagged(_)) => lagged = true,
            Err(_) => break,
        }
    }
    lagged
}

fn on_pod(s: &mut Scheduler, c: &Change<Pod>, now: Instant) {
    match c {
        Change::Applied { new, .. } => s.on_pod(new.clone(), now),
        Change::Deleted(p) => s.on_pod_delete(p, now),
        Change::Resynced => {}
    }
}

fn on_node(s: &mut Scheduler, c: &Change<Node>, now: Instant) {
    match c {
        Change::Applied { old, new } => s.on_node(old.as_deref(), new.clone(), now),
        Change::Deleted(n) => s.on_node_delete(n.metadata.name_str()),
        Change::Resynced => {}
    }
}

fn on_namespace(s: &mut Scheduler, c: &Change<Namespace>, now: Instant) {
    match c {
        Change::Applied { new, .. } => s.on_namespace(
            new.metadata.name_str(),
            Some(new.metadata.labels_map().clone()),
            now,
        ),
        Change::Deleted(n) => s.on_namespace(n.metadata.name_str(), None, now),
        Change::Resynced => {}
    }
}

fn on_service(s: &mut Scheduler, c: &Change<Service>) {
    match c {
        Change::Applied { new, .. } => s.on_service(ObjectRef::of(new.as_ref()), Some(new)),
        Change::Deleted(svc) => s.on_service(ObjectRef::of(svc.as_ref()), None),
        Change::Resynced => {}
    }
}

/// Brings the scheduler in line with the informers' caches (at start, and
/// after a feed lagged or relisted): everything present is (re-)applied,
/// everything gone is removed; assumed pods stay.
fn resync(s: &mut Scheduler, src: &Sources, now: Instant) {
    let nodes = src.nodes.cache().all();
    let names: std::collections::HashSet<String> = nodes
        .iter()
        .map(|n| n.metadata.name_str().to_string())
        .collect();
    let stale: Vec<String> = s
        .cache
        .nodes()
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| !names.contains(n))
        .collect();
    for n in stale {
        s.on_node_delete(&n);
    }
    for n in nodes {
        let old = s.cache.node(n.metadata.name_str()).map(|i| i.node.clone());
        s.on_node(old.as_deref(), n, now);
    }
    for ns in src.namespaces.cache().all() {
        s.on_namespace(
            ns.metadata.name_str(),
            Some(ns.metadata.labels_map().clone()),
            now,
        );
    }
    for svc in src.services.cache().all() {
        s.on_service(ObjectRef::of(svc.as_ref()), Some(&svc));
    }
    let pods = src.pods.cache();
    for key in s.cache.placed_pods() {
        if !s.cache.is_assumed(&key) && pods.get(&key).is_none() {
            s.cache.remove_pod(&key);
        }
    }
    for p in pods.all() {
        s.on_pod(p, now);
    }
}

fn bound(s: &mut Scheduler, src: &Sources, r: BindResult, now: Instant) {
    let Err(e) = r.result else {
        return;
    };
    // retry only if the pod still exists and is still unbound
    let current = src.pods.cache().get(&r.info.key);
    let retry = !e.is_not_found()
        && current.as_deref().is_some_and(|p| {
            super::pod_info::bound_node(p).is_none() && p.metadata.deletion_timestamp.is_none()
        });
    tracing::warn!(pod = %r.info.key, node = %r.node, error = %e, retry, "binding failed");
    s.bind_failed(r.info, retry, now);
}

fn handle(
    ctx: &Context,
    recorder: &Recorder,
    bind_tx: &mpsc::UnboundedSender<BindResult>,
    permits: &Arc<Semaphore>,
    listers: &VolumeListers,
    outcome: Outcome,
) {
    match outcome {
        Outcome::Scheduled {
            info,
            decision,
            took,
            ..
        } => {
            ctx.metrics.reconciled("scheduler", took, false);
            tracing::debug!(pod = %info.key, node = %decision.node, evaluated = decision.evaluated,
                feasible = decision.feasible, ?took, "scheduled");
            let api = ctx.client.api::<Pod>(Some(info.namespace()));
            let (tx, permits, recorder) = (bind_tx.clone(), permits.clone(), recorder.clone());
            let to_select = claims_to_select(listers, &info.pod);
            let claims_api = ctx
                .client
                .api::<PersistentVolumeClaim>(Some(info.namespace()));
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                // PreBind: the delayed claims learn the node, for their provisioner
                for c in &to_select {
                    let patch = json!({"metadata": {"resourceVersion": c.metadata.resource_version,
                        "annotations": {ANN_SELECTED_NODE: decision.node}}});
                    if let Err(e) = claims_api
                        .patch(
                            c.metadata.name_str(),
                            &Patch::Merge(patch),
                            &WriteParams::default(),
                        )
                        .await
                    {
                        let _ = tx.send(BindResult {
                            info,
                            node: decision.node,
                            result: Err(e),
                        });
                        return;
                    }
                }
                let body = json!({"apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": info.name(), "namespace": info.namespace()},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": decision.node}});
                let result = api
                    .create_subresource(info.name(), "binding", &body)
                    .await
                    .map(|_| ());
                if result.is_ok() {
                    recorder.record(
                        info.pod.as_ref(),
                        NORMAL,
                        "Scheduled",
                        "Binding",
                        &format!(
                            "Successfully assigned {}/{} to {}",
                            info.namespace(),
                            info.name(),
                            decision.node
                        ),
                    );
                }
                let _ = tx.send(BindResult {
                    info,
                    node: decision.node,
                    result,
                });
            });
        }
        Outcome::Unschedulable { info, error, took } => {
            ctx.metrics.reconciled("scheduler", took, true);
            let message = error.message();
            tracing::info!(pod = %info.key, %message, "unschedulable");
            recorder.record(
                info.pod.as_ref(),
                WARNING,
                "FailedScheduling",
                "Scheduling",
                &message,
            );
            let api = ctx.client.api::<Pod>(Some(info.namespace()));
            tokio::spawn(async move {
                if let Err(e) = mark_unschedulable(&api, &info, &message).await {
                    tracing::debug!(pod = %info.key, error = %e, "cannot update PodScheduled");
                }
            });
        }
    }
}

/// Sets `PodScheduled=False`, reason `Unschedulable`, unless it already says so.
async fn mark_unschedulable(
    api: &crate::runtime::Api<Pod>,
    info: &PodInfo,
    message: &str,
) -> Result<(), ClientError> {
    let current: Option<&PodCondition> = info
        .pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
    if current.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
            && c.message.as_deref() == Some(message)
    }) {
        return Ok(());
    }
    let transition = current
        .filter(|c| c.status == "False")
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(schemas::time::now);
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": null, "lastTransitionTime": transition
    }]}});
    api.patch_status(
        info.name(),
        &Patch::Strategic(patch),
        &WriteParams::default(),
    )
    .await
    .map(|_| ())
}
