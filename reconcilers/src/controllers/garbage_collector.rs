//! The garbage collector, after Kubernetes': objects whose owners (by
//! ownerReferences) are all gone are deleted; owners deleted in the
//! foreground (`foregroundDeletion` finalizer) wait until their dependents
//! are gone; owners deleted with `orphan` have their dependents' references
//! to them removed, then lose the finalizer. Built-in kinds are watched;
//! custom resources are swept on an interval.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use schemas::KindInfo;
use schemas::MetaExt;
use schemas::Object;

use crate::controllers::{Context, custom_kinds};
use crate::runtime::{Cache, ClientError, DeleteParams, Informer, Patch, Queue, WriteParams};

const MANAGER: &str = "garbage-collector";

/// What the collector knows of any object.
#[derive(Clone, Debug)]
struct Node {
    info: Arc<KindInfo>,
    namespace: Option<String>,
    name: String,
    uid: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

/// One kind's cache, seen through [`Node`]s.
trait Graph: Send + Sync {
    fn by_uid(&self, uid: &str) -> Option<Node>;
    fn owned_by(&self, uid: &str) -> Vec<Node>;
    /// The objects with an owner of a kind this collector does not watch.
    fn owned_by_unwatched(&self) -> Vec<Node>;
}

/// Whether objects of `api_version`/`kind` are watched by the collector
/// (built-in kinds are; custom ones are swept).
fn watched(api_version: &str, kind: &str) -> bool {
    schemas::lookup(api_version, kind).is_ok()
}

struct Typed<K> {
    cache: Cache<K>,
    info: Arc<KindInfo>,
}

fn node<K: Object>(k: &K, info: &Arc<KindInfo>) -> Node {
    let m = k.metadata();
    Node {
        info: info.clone(),
        namespace: m.namespace.clone().filter(|_| K::NAMESPACED),
        name: m.name_str().to_string(),
        uid: m.uid.clone().unwrap_or_default(),
        owners: m.owner_references.clone().unwrap_or_default(),
        deleting: m.deletion_timestamp.is_some(),
        finalizers: m.finalizers.clone().unwrap_or_default(),
    }
}

impl<K: Object> Graph for Typed<K> {
    fn by_uid(&self, uid: &str) -> Option<Node> {
        self.cache.by_uid(uid).map(|k| node(k.as_ref(), &self.info))
    }
    fn owned_by(&self, uid: &str) -> Vec<Node> {
        self.cache
            .owned_by(uid)
            .iter()
            .map(|k| node(k.as_ref(), &self.info))
            .collect()
    }
    fn owned_by_unwatched(&self) -> Vec<Node> {
        self.cache
            .all()
            .iter()
            .filter(|k| {
                k.metadata()
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| !watched(&o.api_version, &o.kind))
            })
            .map(|k| node(k.as_ref(), &self.info))
            .collect()
    }
}

struct State {
    ctx: Context,
    graphs: Vec<Arc<dyn Graph>>,
    queue: Queue<String>,
}

fn feed<K: Object>(informer: &Informer<K>, queue: Queue<String>, graphs: Arc<Vec<Arc<dyn Graph>>>) {
    let mut rx = informer.subscribe();
    let cache = informer.cache();
    tokio::spawn(async move {
        cache.wait_synced().await;
        let enqueue_all = |q: &Queue<String>| {
            for o in cache.all() {
                let m = o.metadata();
                let interesting = m.owner_references.as_ref().is_some_and(|r| !r.is_empty())
                    || m.deletion_timestamp.is_some();
                if interesting && let Some(uid) = &m.uid {
                    q.add(uid.clone());
                }
            }
        };
        enqueue_all(&queue);
        loop {
            match rx.recv().await {
                Ok(change) => match change.as_ref() {
                    crate::runtime::Change::Applied { new, .. } => {
                        if let Some(uid) = &new.metadata().uid {
                            queue.add(uid.clone());
                        }
                    }
                    crate::runtime::Change::Deleted(o) => {
                        // its dependents may now be orphaned
                        if let Some(uid) = &o.metadata().uid {
                            for g in graphs.iter() {
                                for d in g.owned_by(uid) {
                                    queue.add(d.uid);
                                }
                            }
                        }
                    }
                    crate::runtime::Change::Resynced => enqueue_all(&queue),
                },
                Err(RecvError::Lagged(_)) => enqueue_all(&queue),
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Runs the collector until shutdown.
pub async fn run(ctx: Context) {
    use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{
        ConfigMap, Endpoints, Namespace, Node as CoreNode, PersistentVolumeClaim, Pod, Secret,
        Service,
    };
    use schemas::korral::{DriftReport, GitSource};

    macro_rules! kinds {
        ($($k:ty),*) => {{
            let mut graphs: Vec<Arc<dyn Graph>> = Vec::new();
            let mut starters: Vec<Box<dyn Fn(Queue<String>, Arc<Vec<Arc<dyn Graph>>>) + Send>> = Vec::new();
            $(
                let inf = ctx.informers.get::<$k>();
                let (api_version, kind) = (<$k as k8s_openapi::Resource>::API_VERSION, <$k as k8s_openapi::Resource>::KIND);
                if let Some(info) = schemas::builtin_kinds().iter().find(|i| i.api_version == api_version && i.kind == kind) {
                    graphs.push(Arc::new(Typed { cache: inf.cache(), info: info.clone() }));
                    starters.push(Box::new(move |q, g| feed(&inf, q, g)));
                }
            )*
            (graphs, starters)
        }};
    }
    let (graphs, starters) = kinds!(
        Pod,
        ReplicaSet,
        Deployment,
        StatefulSet,
        ControllerRevision,
        PersistentVolumeClaim,
        Job,
        CronJob,
        k8s_openapi::api::apps::v1::DaemonSet,
        k8s_openapi::api::core::v1::ReplicationController,
        Service,
        Endpoints,
        k8s_openapi::api::discovery::v1::EndpointSlice,
        ConfigMap,
        Secret,
        Namespace,
        CoreNode,
        Lease,
        GitSource,
        DriftReport
    );
    let queue: Queue<String> = Queue::new();
    let shared = Arc::new(graphs.clone());
    for s in starters {
        s(queue.clone(), shared.clone());
    }
    let state = Arc::new(State {
        ctx: ctx.clone(),
        graphs,
        queue: queue.clone(),
    });
    let mut workers = vec![tokio::spawn(sweep_custom(state.clone()))];
    for _ in 0..4 {
        let state = state.clone();
        workers.push(tokio::spawn(async move {
            while let Some(uid) = state.queue.get().await {
                let started = std::time::Instant::now();
                let result = process(&state, &uid).await;
                state.ctx.metrics.reconciled("garbage-collector", started.elapsed(), result.is_err());
                match result {
                    Ok(Some(after)) => {
                        state.queue.forget(&uid);
                        state.queue.add_after(uid.clone(), after);
                    }
                    Ok(None) => state.queue.forget(&uid),
                    Err(e) => {
                        tracing::warn!(uid = %uid, error = %e, "garbage collection failed; will retry");
                        state.queue.add_rate_limited(uid.clone());
                    }
                }
                state.queue.done(&uid);
                let (adds, retries) = state.queue.counters();
                state.ctx.metrics.queue("garbage-collector", state.queue.len(), adds, retries);
            }
        }));
    }
    ctx.stopped().await;
    queue.shutdown();
    for w in workers {
        let _ = w.await;
    }
}

impl State {
    fn find(&self, uid: &str) -> Option<Node> {
        self.graphs.iter().find_map(|g| g.by_uid(uid))
    }

    fn dependents(&self, uid: &str) -> Vec<Node> {
        self.graphs.iter().flat_map(|g| g.owned_by(uid)).collect()
    }

    /// Whether an owner reference points at a live object, confirmed with the
    /// API when the cache does not have it (it may just be slow).
    async fn owner_exists(
        &self,
        dependent: &Node,
        owner: &OwnerReference,
    ) -> Result<bool, ClientError> {
        if self.find(&owner.uid).is_some() {
            return Ok(true);
        }
        let Some(info) =
            custom_kinds::resolve(&self.ctx.client, &owner.api_version, &owner.kind).await?
        else {
            // a kind the cluster does not serve (yet, or any more): as
            // Kubernetes' collector, leave the dependent alone
            tracing::debug!(kind = %owner.kind, api_version = %owner.api_version, "owner of an unserved kind; not collecting");
            return Ok(true);
        };
        let ns = dependent.namespace.as_deref().filter(|_| info.namespaced);
        match self
            .ctx
            .client
            .dynamic(&info, ns)
            .get_opt(&owner.name)
            .await?
        {
            Some(v) => {
                Ok(v.pointer("/metadata/uid").and_then(Value::as_str) == Some(owner.uid.as_str()))
            }
            None => Ok(false),
        }
    }

    async fn remove_finalizer(&self, n: &Node, finalizer: &str) -> Result<(), ClientError> {
        let remaining: Vec<&String> = n.finalizers.iter().filter(|f| *f != finalizer).collect();
        let api = self.ctx.client.dynamic(&n.info, n.namespace.as_deref());
        let Some(current) = api.get_opt(&n.name).await? else {
            return Ok(());
        };
        let rv = current
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        let patch = json!({"metadata": {"finalizers": if remaining.is_empty() { Value::Null } else { json!(remaining) }, "resourceVersion": rv}});
        match api
            .patch(
                &n.name,
                &Patch::Merge(patch),
                &WriteParams {
                    field_manager: Some(MANAGER.into()),
                    ..Default::default()
                },
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn drop_owner_refs(&self, d: &Node, gone: &[String]) -> Result<(), ClientError> {
        let keep: Vec<&OwnerReference> =
            d.owners.iter().filter(|o| !gone.contains(&o.uid)).collect();
        let api = self.ctx.client.dynamic(&d.info, d.namespace.as_deref());
        let patch = json!({"metadata": {"ownerReferences": if keep.is_empty() { Value::Null } else { json!(keep) }, "uid": d.uid}});
        match api
            .patch(
                &d.name,
                &Patch::Merge(patch),
                &WriteParams {
                    field_manager: Some(MANAGER.into()),
                    ..Default::default()
                },
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, n: &Node, policy: &str) -> Result<(), ClientError> {
        tracing::info!(kind = %n.info.kind, namespace = ?n.namespace, name = %n.name, policy, "deleting dependent whose owners are gone");
        let dp = DeleteParams {
            propagation_policy: Some(policy.into()),
            precondition_uid: Some(n.uid.clone()),
            ..Default::default()
        };
        match self
            .ctx
            .client
            .dynamic(&n.info, n.namespace.as_deref())
            .delete(&n.name, &dp)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// One object's collection; `Some(d)` asks to look again after `d`.
async fn process(state: &State, uid: &str) -> Result<Option<Duration>, ClientError> {
    let Some(n) = state.find(uid) else {
        return Ok(None);
    };
    collect(state, n).await
}

/// How often custom resources are swept (the typed kinds are watched).
const CUSTOM_SWEEP: Duration = Duration::from_secs(15);

/// A custom resource as a [`Node`].
fn custom_node(info: &Arc<KindInfo>, obj: &Value) -> Option<Node> {
    let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
        serde_json::from_value(obj.get("metadata")?.clone()).ok()?;
    Some(Node {
        info: info.clone(),
        namespace: meta.namespace.clone().filter(|_| info.namespaced),
        name: meta.name_str().to_string(),
        uid: meta.uid.clone().unwrap_or_default(),
        owners: meta.owner_references.clone().unwrap_or_default(),
        deleting: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
    })
}

/// Collects custom resources whose owners are gone (and custom owners
/// deleted in the foreground or with orphaning): they have no informer
/// here, so they are listed every [`CUSTOM_SWEEP`].
async fn sweep_custom(state: Arc<State>) {
    loop {
        tokio::select! {
            () = state.ctx.stopped() => return,
            () = tokio::time::sleep(CUSTOM_SWEEP) => {}
        }
        // watched objects whose owner is a custom resource: its deletion
        // reaches no informer here
        let orphans: Vec<Node> = state
            .graphs
            .iter()
            .flat_map(|g| g.owned_by_unwatched())
            .collect();
        for n in orphans {
            if let Err(e) = collect(&state, n).await {
                tracing::warn!(error = %e, "collecting an object owned by a custom resource failed; will retry");
            }
        }
        let kinds = match custom_kinds::stored(&state.ctx.client).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the custom kinds to collect");
                continue;
            }
        };
        for info in kinds {
            let objects = match state.ctx.client.dynamic(&info, None).list_all().await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(kind = %info.kind, error = %e, "cannot list custom resources to collect");
                    continue;
                }
            };
            for n in objects.iter().filter_map(|o| custom_node(&info, o)) {
                if n.owners.is_empty() && !n.deleting {
                    continue;
                }
                if let Err(e) = collect(&state, n).await {
                    tracing::warn!(kind = %info.kind, error = %e, "collecting a custom resource failed; will retry");
                }
            }
        }
    }
}

/// Collects one object, as an owner being deleted and as a dependent.
async fn collect(state: &State, n: Node) -> Result<Option<Duration>, ClientError> {
    // as an owner being deleted
    if n.deleting {
        if n.finalizers.iter().any(|f| f == "orphan") {
            for d in state.dependents(&n.uid) {
                state
                    .drop_owner_refs(&d, std::slice::from_ref(&n.uid))
                    .await?;
            }
            state.remove_finalizer(&n, "orphan").await?;
            return Ok(None);
        }
        if n.finalizers.iter().any(|f| f == "foregroundDeletion") {
            let deps = state.dependents(&n.uid);
            let blocking: Vec<&Node> = deps
                .iter()
                .filter(|d| {
                    d.owners
                        .iter()
                        .any(|o| o.uid == n.uid && o.block_owner_deletion == Some(true))
                })
                .collect();
            for d in &deps {
                if !d.deleting {
                    let has_own = !state.dependents(&d.uid).is_empty();
                    state
                        .delete(d, if has_own { "Foreground" } else { "Background" })
                        .await?;
                }
            }
            if blocking.is_empty() {
                state.remove_finalizer(&n, "foregroundDeletion").await?;
                return Ok(None);
            }
            // dependents are going; their deletions requeue this owner
            return Ok(Some(Duration::from_secs(2)));
        }
    }
    // as a dependent
    if n.owners.is_empty() {
        return Ok(None);
    }
    let mut gone = Vec::new();
    let mut foreground_owner = false;
    for o in &n.owners {
        if state.owner_exists(&n, o).await? {
            if let Some(owner) = state.find(&o.uid)
                && owner.deleting
                && owner.finalizers.iter().any(|f| f == "foregroundDeletion")
            {
                foreground_owner = true;
            }
        } else {
            gone.push(o.uid.clone());
        }
    }
    if gone.len() == n.owners.len() {
        if !n.deleting {
            state.delete(&n, "Background").await?;
        }
    } else if !gone.is_empty() {
        state.drop_owner_refs(&n, &gone).await?;
    } else if foreground_owner && !n.deleting {
        state.delete(&n, "Background").await?;
    }
    Ok(None)
}
