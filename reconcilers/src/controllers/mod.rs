//! The controllers, one module each, and the manager that runs the enabled
//! ones on shared informers (one watch per kind for all controllers),
//! optionally behind leader election.

pub mod certificates;
pub mod claim;
pub mod clock;
pub mod cronjob;
pub mod custom_kinds;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod expectations;
pub mod garbage_collector;
pub mod informers;
pub mod job;
pub mod namespace;
pub mod node_health;
pub mod options;
pub mod persistentvolume;
pub mod podautoscaler;
pub mod podutil;
pub mod recorder;
pub mod replicaset;
pub mod root_ca_publisher;
pub mod scheduler;
pub mod serviceaccount;
pub mod serviceaccount_tokens;
pub mod statefulset;
pub mod ttl_after_finished;

use std::sync::Arc;

use tokio::sync::watch;

use crate::runtime::{Client, ControllerMetrics};

pub use events::record_event;
pub use informers::Informers;
pub use options::ControllerOptions;

/// Every controller korral has, by name (`--controllers` accepts these).
pub const ALL: &[&str] = &[
    "replicaset",
    "deployment",
    "garbage-collector",
    "namespace",
    "scheduler",
    "node-health",
    "endpoints",
    "endpointslice",
    "job",
    "cronjob",
    "ttl-after-finished",
    "serviceaccount",
    "root-ca-cert-publisher",
    "serviceaccount-token",
    "daemonset",
    "replicationcontroller",
    "disruption",
    "statefulset",
    "persistentvolume-binder",
    "local-path-provisioner",
    "pvc-protection",
    "pv-protection",
    "ephemeral-volume",
    "persistentvolume-expander",
    "horizontal-pod-autoscaler",
    "csrapproving",
    "csrsigning",
    "csrcleaner",
];

/// What every controller gets.
#[derive(Clone)]
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Shared informers.
    pub informers: Informers,
    /// Controller metrics.
    pub metrics: Arc<ControllerMetrics>,
    /// Resolves when the controllers must stop.
    pub shutdown: watch::Receiver<bool>,
    /// Tunables (grace periods, timeouts).
    pub options: Arc<ControllerOptions>,
}

impl Context {
    /// A future that resolves on shutdown.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.clone();
        async move {
            while !*rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Parses `--controllers`: `all`, `none`, or a comma-separated list (a name
/// prefixed with `-` removes it from `all`, as kube-controller-manager does).
pub fn select(spec: &str) -> Result<Vec<&'static str>, String> {
    let spec = spec.trim();
    if spec == "none" || spec.is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<&'static str> = Vec::new();
    let mut removed = Vec::new();
    for part in spec.split(',').map(str::trim) {
        match part {
            "all" | "*" => out.extend(ALL.iter().copied()),
            p if p.starts_with('-') => removed.push(p.trim_start_matches('-').to_string()),
            p => match ALL.iter().find(|c| **c == p) {
                Some(c) => out.push(c),
                None => {
                    return Err(format!(
                        "unknown controller {p:?}; known: {}",
                        ALL.join(", ")
                    ));
                }
            },
        }
    }
    out.retain(|c| !removed.iter().any(|r| r == c));
    out.dedup();
    Ok(out)
}

/// Runs the named controllers until `ctx` shuts down.
pub async fn run(ctx: Context, enabled: &[&'static str]) {
    let mut tasks = Vec::new();
    for name in enabled {
        let ctx = ctx.clone();
        let name: &'static str = name;
        tasks.push(tokio::spawn(async move {
            tracing::info!(controller = name, "starting");
            start(name, ctx).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn start(name: &'static str, ctx: Context) {
    match name {
        "replicaset" => replicaset::run(ctx).await,
        "deployment" => deployment::run(ctx).await,
        "garbage-collector" => garbage_collector::run(ctx).await,
        "namespace" => namespace::run(ctx).await,
        "scheduler" => scheduler::run(ctx).await,
        "node-health" => node_health::run(ctx).await,
        "endpoints" => endpoints::run(ctx).await,
        "endpointslice" => endpointslice::run(ctx).await,
        "job" => job::run(ctx).await,
        "cronjob" => cronjob::run(ctx).await,
        "ttl-after-finished" => ttl_after_finished::run(ctx).await,
        "serviceaccount" => serviceaccount::run(ctx).await,
        "statefulset" => statefulset::run(ctx).await,
        "root-ca-cert-publisher" => root_ca_publisher::run(ctx).await,
        "serviceaccount-token" => serviceaccount_tokens::run(ctx).await,
        "daemonset" => daemonset::run(ctx).await,
        "replicationcontroller" => replicaset::run_replication_controllers(ctx).await,
        "disruption" => disruption::run(ctx).await,
        "persistentvolume-binder" => persistentvolume::binder::run(ctx).await,
        "local-path-provisioner" => persistentvolume::local_path::run(ctx).await,
        "pvc-protection" => persistentvolume::protection::run_claims(ctx).await,
        "pv-protection" => persistentvolume::protection::run_volumes(ctx).await,
        "ephemeral-volume" => persistentvolume::ephemeral::run(ctx).await,
        "persistentvolume-expander" => persistentvolume::expand::run(ctx).await,
        "horizontal-pod-autoscaler" => podautoscaler::run(ctx).await,
        "csrapproving" => certificates::approver::run(ctx).await,
        "csrsigning" => certificates::signer::run(ctx).await,
        "csrcleaner" => certificates::cleaner::run(ctx).await,
        other => {
            tracing::error!(controller = other, "no such controller");
            ctx.stopped().await;
        }
    }
}

/// Runs the controllers while this process leads (Lease `korral-controllers`
/// in `kube-system`); a standby waits and takes over when the leader's lease
/// expires; the lease is released on shutdown.
pub async fn run_elected(
    client: Client,
    enabled: Vec<&'static str>,
    identity: String,
    timing: crate::runtime::Timing,
    metrics: Arc<ControllerMetrics>,
    shutdown: watch::Receiver<bool>,
) {
    let options = ControllerOptions::default();
    run_elected_with(
        client, enabled, identity, timing, metrics, shutdown, options,
    )
    .await;
}

/// [`run_elected`] with explicit [`ControllerOptions`].
pub async fn run_elected_with(
    client: Client,
    enabled: Vec<&'static str>,
    identity: String,
    timing: crate::runtime::Timing,
    metrics: Arc<ControllerMetrics>,
    shutdown: watch::Receiver<bool>,
    options: ControllerOptions,
) {
    let options = Arc::new(options);
    use crate::runtime::LeaderElector;
    if enabled.is_empty() {
        // nothing to run: do not take the lease from processes that have controllers
        return;
    }
    let api = client.api::<k8s_openapi::api::coordination::v1::Lease>(Some("kube-system"));
    let mut elector = LeaderElector::new(api, "korral-controllers", &identity, timing);
    let stopped = |rx: watch::Receiver<bool>| {
        let mut rx = rx;
        async move {
            while !*rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }
    };
    loop {
        tokio::select! {
            _ = elector.acquire() => {}
            _ = stopped(shutdown.clone()) => return,
        }
        metrics.set_leader(true);
        let (stop_tx, stop_rx) = watch::channel(false);
        let informers = Informers::new(client.clone());
        let ctx = Context {
            client: client.clone(),
            informers: informers.clone(),
            metrics: metrics.clone(),
            shutdown: stop_rx,
            options: options.clone(),
        };
        let enabled_now = enabled.clone();
        let running = tokio::spawn(async move { run(ctx, &enabled_now).await });
        let shutting_down = tokio::select! {
            _ = elector.hold() => false,
            _ = stopped(shutdown.clone()) => true,
        };
        let _ = stop_tx.send(true);
        let _ = running.await;
        informers.stop();
        metrics.set_leader(false);
        if shutting_down {
            elector.release().await;
            return;
        }
        tracing::warn!(identity = %identity, "leadership lost; controllers stopped, standing by");
    }
}

/// A merge patch that replaces an object's `status` with `new`: fields the
/// old status had and the new one omits are set to null (a merge patch
/// would otherwise keep them).
pub fn status_patch<T: serde::Serialize>(old: Option<&T>, new: &T) -> crate::runtime::Patch {
    let new_v = serde_json::to_value(new).unwrap_or(serde_json::Value::Null);
    let mut status = new_v.clone();
    if let (Some(serde_json::Value::Object(old_m)), serde_json::Value::Object(new_m)) = (
        old.map(|o| serde_json::to_value(o).unwrap_or_default()),
        &mut status,
    ) {
        for k in old_m.keys() {
            if !new_m.contains_key(k) {
                new_m.insert(k.clone(), serde_json::Value::Null);
            }
        }
    }
    crate::runtime::Patch::Merge(serde_json::json!({ "status": status }))
}

/// Writes `new` as an object's status (a [`status_patch`] through the status
/// subresource) when it differs from `old`; `Ok(false)` when the object is
/// gone.
pub async fn write_status<K: schemas::Object, S: serde::Serialize + PartialEq>(
    api: &crate::runtime::Api<K>,
    name: &str,
    old: Option<&S>,
    new: &S,
    manager: &str,
) -> Result<bool, crate::runtime::ClientError> {
    if old == Some(new) {
        return Ok(true);
    }
    let wp = crate::runtime::WriteParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    match api.patch_status(name, &status_patch(old, new), &wp).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}
