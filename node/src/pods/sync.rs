//! The pod reconciler: for one pod key, start what should run (sandbox,
//! volumes, init containers in order, then containers), restart what exited
//! under the restart policy with crash-loop back-off, kill what fails its
//! liveness probe, stop everything gracefully when the pod is deleted, adopt
//! containers a previous daemon left running, and write the status back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use reconcilers::runtime::client::{DeleteParams, Patch, WriteParams};
use reconcilers::runtime::{Action, Cache, Client, ObjectRef, Queue};
use schemas::MetaExt;
use schemas::QuantityExt;

use crate::config::Timings;
use crate::pods::backoff::CrashBackoff;
use crate::pods::downward::Facts;
use crate::pods::probes::{Probes, Target};
use crate::pods::sources::Sources;
use crate::pods::status::{self, Attempts, Observed};
use crate::pods::{env, images, volumes};
use crate::runtime::{
    ContainerConfig, ContainerInfo, Mount, PodSandbox, Runtime, RuntimeError, State,
};

/// What the reconciler remembers about a pod between runs.
#[derive(Default)]
struct PodState {
    uid: String,
    ip: Option<String>,
    start_time: Option<Time>,
    backoff: HashMap<String, CrashBackoff>,
    /// container → (exited container id, restart not before).
    backoff_until: HashMap<String, (String, DateTime<Utc>)>,
    waiting: HashMap<String, (String, String)>,
    volumes: HashMap<String, PathBuf>,
    volumes_synced: Option<std::time::Instant>,
    volume_error: Option<String>,
    pull_backoff: images::PullBackoff,
}

/// Everything the pod reconciler of one node works with.
pub struct PodContext {
    /// The node's name.
    pub node: String,
    /// The API client (node identity).
    pub client: Client,
    /// The pods bound to this node.
    pub cache: Cache<Pod>,
    /// The container runtime.
    pub runtime: Arc<dyn Runtime>,
    /// Timings.
    pub timings: Timings,
    /// `DATA/pods/<uid>/` holds each pod's volumes and logs.
    pub data_dir: PathBuf,
    /// Node facts for the downward API.
    pub facts: Facts,
    /// Probe workers and verdicts.
    pub probes: Probes,
    /// Write volumes and resolve env (false for simulated nodes, which only pretend).
    pub materialize: bool,
    /// The controller's queue, to poke pods when probes or containers change.
    pub queue: OnceLock<Queue<ObjectRef>>,
    /// The cluster DNS pods' resolv.conf points at (`None`: the node's resolv.conf).
    pub dns: Option<crate::pods::dns::ClusterDns>,
    /// Where pods reach the API server when the `kubernetes` Service's
    /// cluster IP does not answer (the process runtime has no service
    /// proxy): `KUBERNETES_SERVICE_HOST`/`_PORT` then name this host and port.
    pub api_endpoint: Option<(String, u16)>,
    /// ServiceAccount tokens issued for the pods' projected volumes.
    pub tokens: crate::pods::tokens::Tokens,
    /// The kubelet's Events about pods (image pulls).
    pub recorder: reconcilers::controllers::recorder::Recorder,
    states: Mutex<HashMap<ObjectRef, PodState>>,
    uids: Mutex<HashMap<String, ObjectRef>>,
}

impl PodContext {
    /// A context; `queue` is set once the controller exists.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: String,
        client: Client,
        cache: Cache<Pod>,
        runtime: Arc<dyn Runtime>,
        timings: Timings,
        data_dir: PathBuf,
        facts: Facts,
        materialize: bool,
    ) -> Self {
        let recorder =
            reconcilers::controllers::recorder::Recorder::new(client.clone(), "kubelet", &node);
        PodContext {
            node,
            client,
            recorder,
            cache,
            runtime,
            timings,
            data_dir,
            facts,
            probes: Probes::default(),
            materialize,
            queue: OnceLock::new(),
            dns: None,
            api_endpoint: None,
            tokens: Default::default(),
            states: Mutex::new(HashMap::new()),
            uids: Mutex::new(HashMap::new()),
        }
    }

    /// The directory of a pod on the node.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.data_dir.join("pods").join(uid)
    }

    /// Queues the pod with this uid (after a runtime event).
    pub fn poke_uid(&self, uid: &str) {
        let key = self.uids.lock().ok().and_then(|m| m.get(uid).cloned());
        if let (Some(key), Some(q)) = (key, self.queue.get()) {
            q.add(key);
        }
    }

    /// The pod uids the reconciler currently tracks.
    pub fn tracked_uids(&self) -> Vec<String> {
        self.uids
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn take(&self, key: &ObjectRef) -> Option<PodState> {
        self.states.lock().ok()?.remove(key)
    }

    fn put(&self, key: &ObjectRef, st: PodState) {
        if let Ok(mut u) = self.uids.lock() {
            u.insert(st.uid.clone(), key.clone());
        }
        if let Ok(mut m) = self.states.lock() {
            m.insert(key.clone(), st);
        }
    }

    fn forget_uid(&self, uid: &str) {
        if let Ok(mut u) = self.uids.lock() {
            u.remove(uid);
        }
        self.tokens.forget(uid);
    }
}

/// Reconciles one pod key.
pub async fn reconcile(ctx: Arc<PodContext>, key: ObjectRef) -> Result<Action, String> {
    let pod = ctx.cache.get(&key);
    let old = ctx.take(&key);
    match pod {
        None => {
            if let Some(st) = old {
                teardown(&ctx, &st.uid, Duration::from_secs(2)).await?;
            }
            Ok(Action::AwaitChange)
        }
        Some(pod) => {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let st = match old {
                Some(st) if st.uid == uid => st,
                Some(stale) => {
                    teardown(&ctx, &stale.uid, Duration::from_secs(2)).await?;
                    PodState {
                        uid: uid.clone(),
                        ..Default::default()
                    }
                }
                None => PodState {
                    uid: uid.clone(),
                    ..Default::default()
                },
            };
            if pod.metadata.deletion_timestamp.is_some() {
                terminate(&ctx, &pod, st).await?;
                return Ok(Action::AwaitChange);
            }
            let mut st = st;
            let result = sync(&ctx, &key, &pod, &mut st).await;
            ctx.put(&key, st);
            result
        }
    }
}

/// Stops every running container of a pod: SIGTERM, then SIGKILL after `grace`.
async fn stop_all(ctx: &PodContext, uid: &str, grace: Duration) -> Result<(), String> {
    ctx.probes.stop_pod(uid);
    let infos = ctx.runtime.list_pod(uid).await.map_err(|e| e.to_string())?;
    let stops = infos
        .iter()
        .filter(|c| c.is_running())
        .map(|c| ctx.runtime.stop(&c.id, grace));
    for r in futures_util::future::join_all(stops).await {
        if let Err(e) = r {
            tracing::warn!(pod_uid = uid, error = %e, "stopping a container failed");
        }
    }
    Ok(())
}

/// Stops every container of a pod (SIGTERM, then SIGKILL after `grace`), removes them and the sandbox.
async fn teardown(ctx: &PodContext, uid: &str, grace: Duration) -> Result<(), String> {
    stop_all(ctx, uid, grace).await?;
    let infos = ctx.runtime.list_pod(uid).await.map_err(|e| e.to_string())?;
    for c in &infos {
        if let Err(e) = ctx.runtime.remove(&c.id).await {
            tracing::warn!(pod_uid = uid, container = %c.name, error = %e, "removing a container failed");
        }
    }
    ctx.runtime
        .remove_sandbox(uid)
        .await
        .map_err(|e| e.to_string())?;
    if ctx.materialize {
        let _ = std::fs::remove_dir_all(ctx.pod_dir(uid));
    }
    ctx.forget_uid(uid);
    Ok(())
}

/// A pod being deleted, as the kubelet ends it: graceful stop (SIGTERM,
/// grace, SIGKILL), then the status with the stopped containers — `Ready`
/// and `ContainersReady` False, containers terminated, a terminal phase —
/// so clients watching readiness see the pod go, then the containers and
/// sandbox are removed and the pod deleted for good (grace 0, this uid only).
async fn terminate(ctx: &PodContext, pod: &Pod, mut st: PodState) -> Result<(), String> {
    // a daemon restarted mid-deletion remembers nothing: the pod keeps the IP it reported
    if st.ip.is_none() {
        st.ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
    }
    let grace = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0);
    let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(0)).max(Duration::from_secs(1));
    tracing::info!(pod = %ObjectRef::of(pod), ?grace, "stopping the pod's containers");
    stop_all(ctx, &st.uid, grace).await?;
    let infos = ctx
        .runtime
        .list_pod(&st.uid)
        .await
        .map_err(|e| e.to_string())?;
    let last = pod_status(ctx, pod, &st, &infos, true);
    if pod.status.as_ref() != Some(&last) {
        // a failure is retried: the stop above is a no-op the second time
        write_status(ctx, pod, &last).await?;
    }
    teardown(ctx, &st.uid, grace).await?;
    let api = ctx.client.api::<Pod>(Some(pod.metadata.namespace_str()));
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        precondition_uid: Some(st.uid.clone()),
        ..Default::default()
    };
    match api.delete(pod.metadata.name_str(), &params).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
        Err(e) => Err(format!("final delete: {e}")),
    }
}

/// The pod's status from its containers as the runtime lists them and what
/// the reconciler remembers (`terminating`: the pod is being deleted).
fn pod_status(
    ctx: &PodContext,
    pod: &Pod,
    st: &PodState,
    infos: &[ContainerInfo],
    terminating: bool,
) -> k8s_openapi::api::core::v1::PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let attempts = status::by_name(infos);
    let mut waiting = st.waiting.clone();
    if let Some(e) = &st.volume_error {
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            waiting
                .entry(c.name.clone())
                .or_insert_with(|| ("ContainerCreating".into(), format!("volumes: {e}")));
        }
    }
    let backoff_until: HashMap<String, DateTime<Utc>> = st
        .backoff_until
        .iter()
        .map(|(k, (_, t))| (k.clone(), *t))
        .collect();
    let probes = ctx.probes.clone();
    let simulated = !ctx.materialize;
    let probe_fn = move |c: &Container, info: &ContainerInfo| {
        if simulated {
            return (true, true);
        }
        let v = probes.verdict(&info.pod_uid, c, &info.id);
        (v.ready && v.started, v.started)
    };
    let host_ip = ctx.facts.host_ip.clone();
    let observed = Observed {
        kind: ctx.runtime.kind(),
        attempts: &attempts,
        waiting: &waiting,
        backoff_until: &backoff_until,
        probes: &probe_fn,
        pod_ip: st.ip.as_deref(),
        host_ip: &host_ip,
        start_time: st.start_time.clone().unwrap_or_else(schemas::time::now),
        volumes_ready: st.volume_error.is_none(),
        terminating,
    };
    status::compute(pod, &observed)
}

fn secs(v: i64) -> Duration {
    Duration::from_secs(u64::try_from(v.max(0)).unwrap_or(0))
}

async fn sync(
    ctx: &Arc<PodContext>,
    key: &ObjectRef,
    pod: &Pod,
    st: &mut PodState,
) -> Result<Action, String> {
    let uid = st.uid.clone();
    if let Ok(mut u) = ctx.uids.lock() {
        u.insert(uid.clone(), key.clone());
    }
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_dir = ctx.pod_dir(&uid);
    if st.start_time.is_none() {
        st.start_time = Some(
            pod.status
                .as_ref()
                .and_then(|s| s.start_time.clone())
                .unwrap_or_else(schemas::time::now),
        );
    }
    let sandbox = PodSandbox {
        uid: uid.clone(),
        namespace: pod.metadata.namespace_str().to_string(),
        name: pod.metadata.name_str().to_string(),
        hostname: spec
            .hostname
            .clone()
            .unwrap_or_else(|| pod.metadata.name_str().to_string()),
        host_network: spec.host_network.unwrap_or(false),
        dir: pod_dir.clone(),
        resolv_conf: ctx
            .materialize
            .then(|| {
                let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                crate::pods::dns::resolv_conf(pod, ctx.dns.as_ref(), &host)
            })
            .flatten(),
    };
    let mut requeue = ctx.timings.pod_sync;
    if st.ip.is_none() {
        if ctx.materialize {
            std::fs::create_dir_all(&pod_dir).map_err(|e| format!("{}: {e}", pod_dir.display()))?;
        }
        match ctx.runtime.run_sandbox(&sandbox).await {
            Ok(ip) => st.ip = Some(ip),
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "cannot set up the pod sandbox");
                for c in spec
                    .init_containers
                    .iter()
                    .flatten()
                    .chain(&spec.containers)
                {
                    st.waiting.insert(
                        c.name.clone(),
                        ("ContainerCreating".into(), format!("pod sandbox: {e}")),
                    );
                }
                requeue = Duration::from_secs(2).min(requeue);
            }
        }
    }
    let mut facts = ctx.facts.clone();
    facts.pod_ip = st.ip.clone();
    let mut sources = Sources::new(&ctx.client, pod.metadata.namespace_str(), &ctx.tokens);
    if ctx.materialize
        && st.ip.is_some()
        && st
            .volumes_synced
            .is_none_or(|t| t.elapsed() >= ctx.timings.pod_sync)
    {
        match volumes::prepare(pod, &pod_dir, &facts, &mut sources).await {
            Ok(v) => {
                st.volumes = v;
                st.volume_error = None;
                st.volumes_synced = Some(std::time::Instant::now());
            }
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "volumes not ready");
                st.volume_error = Some(e);
                requeue = Duration::from_secs(2).min(requeue);
            }
        }
    }
    let infos = ctx
        .runtime
        .list_pod(&uid)
        .await
        .map_err(|e| e.to_string())?;
    let attempts = status::by_name(&infos);
    let policy = status::restart_policy(pod).to_string();
    let ready_to_start = st.ip.is_some() && st.volume_error.is_none();
    let empty = Vec::new();
    let inits = spec.init_containers.as_ref().unwrap_or(&empty);

    // init containers, in order
    let mut initialized = true;
    let mut terminal = false;
    for c in inits {
        let a = attempts.get(&c.name).cloned().unwrap_or_default();
        match a.latest.as_ref().map(|l| &l.state) {
            Some(State::Exited { code: 0, .. }) => continue,
            Some(State::Exited { .. }) if policy == "Never" => {
                terminal = true;
                initialized = false;
                break;
            }
            Some(State::Running | State::Created) => {
                initialized = false;
                break;
            }
            Some(State::Exited { .. }) | None => {
                initialized = false;
                if ready_to_start {
                    let wake =
                        restart_or_start(ctx, pod, &sandbox, c, &a, st, &mut sources, &facts).await;
                    if let Some(w) = wake {
                        requeue = requeue.min(w);
                    }
                }
                break;
            }
        }
    }

    // the containers, once initialized
    let pod_terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    if initialized && !terminal && !pod_terminal {
        for c in &spec.containers {
            let a = attempts.get(&c.name).cloned().unwrap_or_default();
            match a.latest.as_ref() {
                Some(l) if l.is_running() => {
                    // simulated containers have nothing to probe: they pass (as kubemark's hollow nodes)
                    if ctx.materialize && !ctx.probes.running_for(&uid, &c.name, &l.id) {
                        start_probes(ctx, key, &uid, c, l, st.ip.as_deref());
                    }
                    let v = ctx.probes.verdict(&uid, c, &l.id);
                    if v.unhealthy {
                        let grace = c
                            .liveness_probe
                            .as_ref()
                            .and_then(|p| p.termination_grace_period_seconds)
                            .or(spec.termination_grace_period_seconds)
                            .unwrap_or(30);
                        tracing::info!(pod = %key, container = %c.name, "killing the container: it failed its liveness probe");
                        ctx.probes.stop(&uid, &c.name);
                        if let Err(e) = ctx.runtime.stop(&l.id, secs(grace)).await {
                            tracing::warn!(pod = %key, container = %c.name, error = %e, "stop failed");
                        }
                        requeue = Duration::ZERO;
                    }
                }
                Some(l) => {
                    ctx.probes.stop(&uid, &c.name);
                    let code = match l.state {
                        State::Exited { code, .. } => code,
                        _ => 0,
                    };
                    if status::restarts(&policy, code)
                        && ready_to_start
                        && let Some(w) =
                            restart_or_start(ctx, pod, &sandbox, c, &a, st, &mut sources, &facts)
                                .await
                    {
                        requeue = requeue.min(w);
                    }
                }
                None if ready_to_start => {
                    if let Some(w) =
                        restart_or_start(ctx, pod, &sandbox, c, &a, st, &mut sources, &facts).await
                    {
                        requeue = requeue.min(w);
                    }
                }
                None => {}
            }
        }
    }

    // status
    let infos = ctx
        .runtime
        .list_pod(&uid)
        .await
        .map_err(|e| e.to_string())?;
    let new_status = pod_status(ctx, pod, st, &infos, false);
    if pod.status.as_ref() != Some(&new_status) {
        write_status(ctx, pod, &new_status).await?;
    }
    Ok(Action::Requeue(requeue.max(Duration::from_millis(50))))
}

async fn write_status(
    ctx: &PodContext,
    pod: &Pod,
    status: &k8s_openapi::api::core::v1::PodStatus,
) -> Result<(), String> {
    let api = ctx.client.api::<Pod>(Some(pod.metadata.namespace_str()));
    let mut body = serde_json::json!({"status": status});
    // make absent fields explicit so a merge patch clears them
    for f in [
        "podIP",
        "podIPs",
        "initContainerStatuses",
        "message",
        "reason",
    ] {
        if body["status"].get(f).is_none() {
            body["status"][f] = serde_json::Value::Null;
        }
    }
    let params = WriteParams {
        field_manager: Some("korral-node".into()),
        ..Default::default()
    };
    match api
        .patch_status(pod.metadata.name_str(), &Patch::Merge(body), &params)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(format!("writing the status: {e}")),
    }
}

fn start_probes(
    ctx: &Arc<PodContext>,
    key: &ObjectRef,
    uid: &str,
    c: &Container,
    l: &ContainerInfo,
    ip: Option<&str>,
) {
    let queue = ctx.queue.get().cloned();
    let key = key.clone();
    let poke: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        if let Some(q) = &queue {
            q.add(key.clone());
        }
    });
    ctx.probes.start(
        uid,
        c,
        Target {
            runtime: ctx.runtime.clone(),
            container_id: l.id.clone(),
            pod_ip: ip.unwrap_or("127.0.0.1").to_string(),
        },
        poke,
    );
}

/// Starts a container that never ran, or restarts one that exited once its
/// back-off allows; returns when to look again if it must wait.
#[allow(clippy::too_many_arguments)]
async fn restart_or_start(
    ctx: &Arc<PodContext>,
    pod: &Pod,
    sandbox: &PodSandbox,
    c: &Container,
    a: &Attempts,
    st: &mut PodState,
    sources: &mut Sources<'_>,
    facts: &Facts,
) -> Option<Duration> {
    let attempt = match &a.latest {
        None => 0,
        Some(l) => {
            let State::Exited { finished_at, .. } = l.state else {
                return None;
            };
            let until = match st.backoff_until.get(&c.name) {
                Some((id, until)) if *id == l.id => *until,
                _ => {
                    let ran = l
                        .started_at
                        .map(|s| (finished_at - s).to_std().unwrap_or_default())
                        .unwrap_or_default();
                    let t = &ctx.timings;
                    let delay = st.backoff.entry(c.name.clone()).or_default().delay(
                        ran,
                        t.backoff_base,
                        t.backoff_max,
                        t.backoff_reset,
                    );
                    let until = finished_at + chrono::Duration::from_std(delay).unwrap_or_default();
                    st.backoff_until
                        .insert(c.name.clone(), (l.id.clone(), until));
                    until
                }
            };
            let now = Utc::now();
            if until > now {
                return Some((until - now).to_std().unwrap_or_default());
            }
            l.attempt + 1
        }
    };
    let puller = images::Puller {
        runtime: ctx.runtime.as_ref(),
        recorder: &ctx.recorder,
        base: ctx.timings.backoff_base,
        max: ctx.timings.backoff_max,
    };
    if let Err(n) = images::ensure(&puller, pod, c, &mut st.pull_backoff, sources).await {
        tracing::info!(pod = %ObjectRef::of(pod), container = %c.name, reason = %n.reason, message = %n.message, "the container's image is not ready");
        st.waiting.insert(c.name.clone(), (n.reason, n.message));
        return Some(n.retry_in);
    }
    let config = match container_config(ctx, pod, c, attempt, st, sources, facts).await {
        Ok(cfg) => cfg,
        Err(msg) => {
            st.waiting
                .insert(c.name.clone(), ("CreateContainerConfigError".into(), msg));
            return Some(Duration::from_secs(2));
        }
    };
    match ctx.runtime.start(sandbox, &config).await {
        Ok(info) => {
            st.waiting.remove(&c.name);
            st.backoff_until.remove(&c.name);
            if attempt > 0 {
                st.backoff.entry(c.name.clone()).or_default().restarted();
            }
            tracing::info!(pod = %ObjectRef::of(pod), container = %c.name, attempt, id = %info.id, "container started");
            if let Some(prev) = &a.previous {
                // keep only the last exited attempt (for --previous logs and lastState)
                let _ = ctx.runtime.remove(&prev.id).await;
            }
            let key = ObjectRef::of(pod);
            start_probes(ctx, &key, &st.uid, c, &info, st.ip.as_deref());
            None
        }
        Err(e) => {
            let reason = match &e {
                RuntimeError::ImageNotPresent(_) => "ErrImageNeverPull",
                RuntimeError::Invalid(_) => "CreateContainerConfigError",
                _ => "RunContainerError",
            };
            tracing::warn!(pod = %ObjectRef::of(pod), container = %c.name, error = %e, "cannot start the container");
            st.waiting
                .insert(c.name.clone(), (reason.into(), e.to_string()));
            Some(Duration::from_secs(2))
        }
    }
}

fn run_as(pod: &Pod, c: &Container) -> Option<(u32, Option<u32>)> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = c.security_context.as_ref();
    let uid = csc
        .and_then(|s| s.run_as_user)
        .or_else(|| psc.and_then(|s| s.run_as_user))?;
    let gid = csc
        .and_then(|s| s.run_as_group)
        .or_else(|| psc.and_then(|s| s.run_as_group));
    Some((
        u32::try_from(uid).ok()?,
        gid.and_then(|g| u32::try_from(g).ok()),
    ))
}

/// The runtime configuration of a container from the pod spec.
async fn container_config(
    ctx: &PodContext,
    pod: &Pod,
    c: &Container,
    attempt: u32,
    st: &PodState,
    sources: &mut Sources<'_>,
    facts: &Facts,
) -> Result<ContainerConfig, String> {
    let env = if ctx.materialize {
        let services = sources.service_env(pod, ctx.api_endpoint.as_ref()).await?;
        env::build(pod, c, facts, sources, &services).await?
    } else {
        Vec::new()
    };
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let base = st
            .volumes
            .get(&m.name)
            .cloned()
            .or_else(|| (!ctx.materialize).then(PathBuf::new))
            .ok_or_else(|| format!("volume {:?} is not ready", m.name))?;
        let sub = m.sub_path.clone().filter(|s| !s.is_empty()).or_else(|| {
            m.sub_path_expr
                .as_ref()
                .map(|e| env::expand(e, &env.iter().cloned().collect()))
        });
        let host_path = match sub {
            Some(s) if s.contains("..") || s.starts_with('/') => {
                return Err(format!("subPath {s:?} must be relative without '..'"));
            }
            Some(s) => {
                let p = base.join(&s);
                if ctx.materialize && !p.exists() {
                    std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                }
                p
            }
            None => base,
        };
        mounts.push(Mount {
            container_path: m.mount_path.clone(),
            host_path,
            read_only: m.read_only.unwrap_or(false),
        });
    }
    let res = c.resources.clone().unwrap_or_default();
    let limit = |r: &str| res.limits.as_ref().and_then(|l| l.get(r).cloned());
    let request = |r: &str| res.requests.as_ref().and_then(|l| l.get(r).cloned());
    let log_path = ctx
        .pod_dir(&st.uid)
        .join("logs")
        .join(&c.name)
        .join(format!("{attempt}.log"));
    Ok(ContainerConfig {
        pod_uid: st.uid.clone(),
        pod_namespace: pod.metadata.namespace_str().to_string(),
        pod_name: pod.metadata.name_str().to_string(),
        name: c.name.clone(),
        attempt,
        image: c.image.clone().unwrap_or_default(),
        command: env::expand_all(c.command.as_deref().unwrap_or(&[]), &env),
        args: env::expand_all(c.args.as_deref().unwrap_or(&[]), &env),
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        run_as: run_as(pod, c),
        mounts,
        cpu_limit_millis: limit("cpu").map(|q| q.millis()),
        cpu_request_millis: request("cpu").or_else(|| limit("cpu")).map(|q| q.millis()),
        memory_limit_bytes: limit("memory").map(|q| q.value()),
        log_path,
        pod_ip: st.ip.clone(),
        io: crate::runtime::ContainerIo::of(c),
        env,
    })
}
