//! The GitSource reconciler, run inside `korral server` and `korral up`
//! (leader-elected on the Lease `korral-intake`, so several servers never
//! sync the same source twice). Per source, on its interval, on a sync
//! request (`POST …/gitsources/NAME/sync`), on a spec change, and at once
//! when a watched folder changes: fetch, and sync a new revision. Then
//! check drift — also shortly after any change to an object the source
//! owns — publish the DriftReport and metric, and heal when asked. Until
//! what a sync applied is healthy, its health is checked again (every
//! second while progressing, until `spec.timeout`; then on changes and on
//! the interval).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use reconcilers::runtime::watcher::{self, Config as WatchConfig, Event};
use reconcilers::runtime::{
    Action, Client, Controller, ControllerMetrics, Informer, LeaderElector, ObjectRef, Queue,
    Timing,
};
use schemas::MetaExt;
use schemas::Object;
use schemas::korral::GitSource;

use crate::dependencies::{self, Blocked};
use crate::engine::{Engine, Outcome};
use crate::metrics::IntakeMetrics;
use crate::owner::SOURCE_LABEL;
use crate::progress::Progress;
use crate::render::Desired;
use crate::source::Location;
use crate::source::watch::FolderWatch;
use crate::status::Failure;

use crate::engine::SYNC_REQUESTED;

/// How the reconciler runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where Git mirrors live.
    pub cache_dir: PathBuf,
    /// This process's identity in leader election.
    pub identity: String,
    /// Leader-election timing.
    pub timing: Timing,
    /// Sources reconciled at once.
    pub workers: usize,
    /// How long a folder must be quiet before a change is picked up.
    pub folder_debounce: Duration,
    /// How long after a change to an owned object drift is checked.
    pub check_delay: Duration,
}

impl Config {
    /// Defaults for a server with its data in `data_dir`.
    pub fn new(data_dir: &std::path::Path, identity: String) -> Config {
        Config {
            cache_dir: data_dir.join("intake"),
            identity,
            timing: Timing::default(),
            workers: 2,
            folder_debounce: Duration::from_millis(300),
            check_delay: Duration::from_secs(1),
        }
    }
}

/// What the reconciler remembers about one source between runs.
#[derive(Default)]
struct SourceState {
    /// The newest copy of the object we wrote (the cache may lag).
    latest: Option<GitSource>,
    last_fetch: Option<Instant>,
    last_check: Option<Instant>,
    /// The sync request last handled.
    handled_request: Option<String>,
    /// The generation last handled.
    handled_generation: Option<i64>,
    /// A revision that failed validation (not retried until something changes).
    failed_revision: Option<String>,
    /// What the last applied revision declares.
    desired: Option<Arc<Desired>>,
    folder: Option<(PathBuf, FolderWatch)>,
    folder_dirty: bool,
    check_due: bool,
}

/// How often the health of what a sync applied is checked while it is
/// progressing (besides on changes to the objects).
const HEALTH_POLL: Duration = Duration::from_secs(1);

type States = Arc<Mutex<HashMap<ObjectRef, SourceState>>>;

#[derive(Clone)]
struct Ctx {
    engine: Engine,
    config: Config,
    cache: reconcilers::runtime::Cache<GitSource>,
    queue: Queue<ObjectRef>,
    states: States,
}

fn lock(states: &States) -> std::sync::MutexGuard<'_, HashMap<ObjectRef, SourceState>> {
    states.lock().unwrap_or_else(|p| p.into_inner())
}

fn resource_version(s: &GitSource) -> u64 {
    s.metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

use crate::engine::interval_of;

/// Starts the reconciler: it runs while this process holds the Lease
/// `korral-intake` in `kube-system`, until `shutdown` turns true.
pub fn start(
    client: Client,
    config: Config,
    metrics: Arc<IntakeMetrics>,
    controller_metrics: Arc<ControllerMetrics>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run_elected(
        client,
        config,
        metrics,
        controller_metrics,
        shutdown,
    ))
}

fn stopped(rx: watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send {
    let mut rx = rx;
    async move {
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

async fn run_elected(
    client: Client,
    config: Config,
    metrics: Arc<IntakeMetrics>,
    controller_metrics: Arc<ControllerMetrics>,
    shutdown: watch::Receiver<bool>,
) {
    let api = client.api::<k8s_openapi::api::coordination::v1::Lease>(Some("kube-system"));
    let mut elector = LeaderElector::new(api, "korral-intake", &config.identity, config.timing);
    loop {
        tokio::select! {
            _ = elector.acquire() => {}
            _ = stopped(shutdown.clone()) => return,
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let running = tokio::spawn(run(
            client.clone(),
            config.clone(),
            metrics.clone(),
            controller_metrics.clone(),
            stop_rx,
        ));
        let shutting_down = tokio::select! {
            _ = elector.hold() => false,
            _ = stopped(shutdown.clone()) => true,
        };
        let _ = stop_tx.send(true);
        let _ = running.await;
        if shutting_down {
            elector.release().await;
            return;
        }
        tracing::warn!(identity = %config.identity, "intake lost its lease; standing by");
    }
}

/// Runs the reconciler (without leader election) until `shutdown`.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Arc<IntakeMetrics>,
    controller_metrics: Arc<ControllerMetrics>,
    shutdown: watch::Receiver<bool>,
) {
    let informer =
        Informer::<GitSource>::start(client.api(None), WatchConfig::default(), Vec::new());
    let controller = Controller::new("gitsource", &informer).workers(config.workers);
    let ctx = Ctx {
        engine: Engine {
            client: client.clone(),
            cache_dir: config.cache_dir.clone(),
            metrics,
            progress: Progress::Log,
        },
        config,
        cache: informer.cache(),
        queue: controller.queue(),
        states: Arc::default(),
    };
    let watchers = watch_owned(&client, &ctx);
    let reconcile_ctx = ctx.clone();
    controller
        .run(
            move |key| {
                let ctx = reconcile_ctx.clone();
                async move { reconcile(ctx, key).await }
            },
            controller_metrics,
            stopped(shutdown),
        )
        .await;
    for w in watchers {
        w.abort();
    }
    informer.stop();
    lock(&ctx.states).clear();
}

/// Watches every kind a source may own, for objects with the source label:
/// a change schedules a drift check of the owning source.
fn watch_owned(client: &Client, ctx: &Ctx) -> Vec<tokio::task::JoinHandle<()>> {
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Pod, Secret, Service};
    vec![
        watch_kind::<Namespace>(client, ctx),
        watch_kind::<ConfigMap>(client, ctx),
        watch_kind::<Secret>(client, ctx),
        watch_kind::<Service>(client, ctx),
        watch_kind::<Endpoints>(client, ctx),
        watch_kind::<Deployment>(client, ctx),
        watch_kind::<ReplicaSet>(client, ctx),
        watch_kind::<Pod>(client, ctx),
    ]
}

fn watch_kind<K: Object>(client: &Client, ctx: &Ctx) -> tokio::task::JoinHandle<()> {
    let config = WatchConfig {
        label_selector: Some(SOURCE_LABEL.to_string()),
        ..Default::default()
    };
    let mut events = watcher::watcher(client.api::<K>(None), config);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let objects: Vec<&K> = match &ev {
                Event::Applied(o) | Event::Deleted(o) => vec![o],
                Event::Restarted(all) => all.iter().collect(),
            };
            for o in objects {
                let annotation = o
                    .metadata()
                    .annotations_map()
                    .get(crate::owner::SOURCE_ANNOTATION);
                if let Some((ns, name)) = annotation.and_then(|a| a.split_once('/')) {
                    let key = ObjectRef::new(Some(ns), name);
                    let schedule = {
                        let mut states = lock(&ctx.states);
                        match states.get_mut(&key) {
                            Some(st) if !st.check_due => {
                                st.check_due = true;
                                true
                            }
                            _ => false,
                        }
                    };
                    if schedule {
                        ctx.queue.add_after(key, ctx.config.check_delay);
                    }
                }
            }
        }
    })
}

fn ensure_folder_watch(ctx: &Ctx, key: &ObjectRef, source: &GitSource) {
    let location = Engine::location(source).ok();
    let mut states = lock(&ctx.states);
    let Some(st) = states.get_mut(key) else {
        return;
    };
    let wanted = match location {
        Some(Location::Folder { path }) => Some(path),
        _ => None,
    };
    if st.folder.as_ref().map(|(p, _)| p) == wanted.as_ref() {
        return;
    }
    st.folder = None;
    if let Some(path) = wanted {
        let (states_c, queue, k) = (ctx.states.clone(), ctx.queue.clone(), key.clone());
        match FolderWatch::start(&path, ctx.config.folder_debounce, move || {
            if let Some(st) = lock(&states_c).get_mut(&k) {
                st.folder_dirty = true;
            }
            queue.add(k.clone());
        }) {
            Ok(w) => st.folder = Some((path, w)),
            Err(e) => {
                tracing::warn!(source = %key, folder = %path.display(), error = %e, "cannot watch the folder; relying on the interval")
            }
        }
    }
}

async fn reconcile(ctx: Ctx, key: ObjectRef) -> Result<Action, String> {
    let Some(cached) = ctx.cache.get(&key) else {
        if lock(&ctx.states).remove(&key).is_some() {
            ctx.engine.metrics.forget(&format!(
                "{}/{}",
                key.namespace.as_deref().unwrap_or(""),
                key.name
            ));
        }
        return Ok(Action::AwaitChange);
    };
    // the freshest copy: the cache, or what we wrote last if the cache lags
    let source = {
        let mut states = lock(&ctx.states);
        let st = states.entry(key.clone()).or_default();
        match &st.latest {
            Some(l) if resource_version(l) > resource_version(&cached) => l.clone(),
            _ => (*cached).clone(),
        }
    };
    ensure_folder_watch(&ctx, &key, &source);
    wake_dependents(&ctx, &key, &source);
    let spec = source.spec.clone().unwrap_or_default();
    let interval = interval_of(&source);
    if spec.suspend == Some(true) {
        return Ok(Action::Requeue(interval));
    }
    if let Some(blocked) = dependencies::check(&source, &|r| ctx.cache.get(r)) {
        return Ok(hold(&ctx, &key, &source, &blocked, interval).await);
    }
    let request = source
        .metadata
        .annotations_map()
        .get(SYNC_REQUESTED)
        .cloned();
    let generation = source.metadata.generation;
    let (fetch_due, check_due, requested, spec_changed, failed_revision, desired) = {
        let mut states = lock(&ctx.states);
        let st = states.entry(key.clone()).or_default();
        let requested = request.is_some() && request != st.handled_request;
        let spec_changed = generation != st.handled_generation;
        let fetch_due = st.last_fetch.is_none_or(|t| t.elapsed() >= interval)
            || requested
            || spec_changed
            || st.folder_dirty;
        let check_due = st.check_due || st.last_check.is_none_or(|t| t.elapsed() >= interval);
        if fetch_due {
            st.last_fetch = Some(Instant::now());
            st.folder_dirty = false;
            st.handled_request = request.clone();
            st.handled_generation = generation;
        }
        (
            fetch_due,
            check_due,
            requested,
            spec_changed,
            st.failed_revision.clone(),
            st.desired.clone(),
        )
    };
    let mut desired = desired;
    let mut source = source;
    let mut check_due = check_due;
    if fetch_due {
        match ctx.engine.snapshot(&source, None).await {
            Err(e) => {
                let already = source
                    .status
                    .as_ref()
                    .and_then(crate::status::ready)
                    .is_some_and(|c| {
                        matches!(c.reason.as_str(), "FetchFailed" | "ValidationFailed")
                            && c.message.contains(&e.to_string())
                    });
                if !already {
                    ctx.engine.fetch_failed(&source, &e).await;
                    refresh(&ctx, &key, &source).await;
                }
            }
            Ok(snapshot) => {
                let applied = source
                    .status
                    .as_ref()
                    .and_then(|s| s.last_applied_revision.clone());
                let observed = source.status.as_ref().and_then(|s| s.observed_generation);
                let new_revision = applied.as_deref() != Some(snapshot.revision.as_str());
                let known_bad = failed_revision.as_deref() == Some(snapshot.revision.as_str());
                // back at the applied revision after a failed one (a bad file removed again)
                let recovering = !new_revision
                    && source
                        .status
                        .as_ref()
                        .is_some_and(|s| s.last_error.is_some());
                let needs_sync = requested
                    || (spec_changed && observed != generation)
                    || (new_revision && !known_bad)
                    || recovering;
                if needs_sync {
                    let outcome = ctx.engine.sync_snapshot(&source, snapshot).await;
                    let (synced, failed_rev) = match outcome {
                        Outcome::Synced { desired: d, .. } => (Some(Arc::new(d)), None),
                        Outcome::Failed {
                            revision,
                            failure: Failure::ValidationFailed,
                            ..
                        } => (None, revision),
                        Outcome::Failed { .. } => (None, None),
                    };
                    {
                        let mut states = lock(&ctx.states);
                        let st = states.entry(key.clone()).or_default();
                        if let Some(d) = &synced {
                            st.desired = Some(d.clone());
                            st.failed_revision = None;
                        }
                        if failed_rev.is_some() {
                            st.failed_revision = failed_rev;
                        }
                    }
                    if let Some(d) = synced {
                        desired = Some(d);
                        check_due = true;
                    }
                    source = refresh(&ctx, &key, &source).await;
                } else if desired.is_none() && !new_revision {
                    if let Ok(d) = ctx.engine.render(&source, snapshot).await {
                        let d = Arc::new(d);
                        if let Some(st) = lock(&ctx.states).get_mut(&key) {
                            st.desired = Some(d.clone());
                        }
                        desired = Some(d);
                    }
                } else if source
                    .status
                    .as_ref()
                    .and_then(|s| s.last_fetched_revision.as_deref())
                    != Some(snapshot.revision.as_str())
                {
                    let new = crate::status::fetched(
                        &source.status.clone().unwrap_or_default(),
                        &snapshot.revision,
                    );
                    if let Err(e) = ctx.engine.write_status(&source, &new).await {
                        tracing::warn!(source = %key, error = %e, "cannot record the fetched revision");
                    }
                    source = refresh(&ctx, &key, &source).await;
                }
            }
        }
    }
    if desired.is_none()
        && check_due
        && let Some(rev) = source
            .status
            .as_ref()
            .and_then(|s| s.last_applied_revision.clone())
    {
        // after a restart: the last applied revision, read again
        if let Ok(snapshot) = ctx.engine.snapshot(&source, Some(&rev)).await
            && let Ok(d) = ctx.engine.render(&source, snapshot).await
        {
            let d = Arc::new(d);
            if let Some(st) = lock(&ctx.states).get_mut(&key) {
                st.desired = Some(d.clone());
            }
            desired = Some(d);
        }
    }
    if check_due && let Some(d) = &desired {
        if let Some(st) = lock(&ctx.states).get_mut(&key) {
            st.check_due = false;
            st.last_check = Some(Instant::now());
        }
        let drift = ctx
            .engine
            .check(&source, d, false)
            .await
            .map_err(|e| e.to_string())?;
        if !drift.is_clean() && spec.self_heal == Some(true) {
            ctx.engine.heal(&source, d, &drift).await;
            let after = ctx
                .engine
                .check(&source, d, false)
                .await
                .map_err(|e| e.to_string())?;
            ctx.engine.publish(&source, &after).await;
        } else {
            ctx.engine.publish(&source, &drift).await;
        }
    }
    // what the last sync applied, until it is healthy: at once while
    // progressing, then on changes and on the interval
    let mut waiting = false;
    if let Some(d) = &desired
        && let Some(st) = source.status.as_ref()
        && crate::status::health_pending(st)
        && (check_due || crate::status::progressing(st))
    {
        if let Some(s) = ctx.engine.update_health(&source, d).await {
            if let Some(st) = lock(&ctx.states).get_mut(&key) {
                st.latest = Some(s.clone());
            }
            source = s;
        }
        waiting = source
            .status
            .as_ref()
            .is_some_and(crate::status::progressing);
    }
    let states = lock(&ctx.states);
    let next = states
        .get(&key)
        .map(|st| {
            let left = |t: Option<Instant>| {
                t.map_or(Duration::ZERO, |t| interval.saturating_sub(t.elapsed()))
            };
            left(st.last_fetch).min(left(st.last_check))
        })
        .unwrap_or(interval);
    let next = if waiting { next.min(HEALTH_POLL) } else { next };
    Ok(Action::Requeue(next.max(Duration::from_millis(100))))
}

/// Records why `source` waits for its dependencies (once per reason and
/// message) and when to look again: shortly for a dependency not Ready
/// (a dependency turning Ready also wakes it, `wake_dependents`), on the
/// interval for a cycle.
async fn hold(
    ctx: &Ctx,
    key: &ObjectRef,
    source: &GitSource,
    blocked: &Blocked,
    interval: Duration,
) -> Action {
    // a sync request (`korral sync`) is answered with the wait, not left pending
    let request = source
        .metadata
        .annotations_map()
        .get(SYNC_REQUESTED)
        .cloned();
    let unanswered = request.is_some()
        && source
            .status
            .as_ref()
            .and_then(|s| s.last_handled_sync_request.clone())
            != request;
    if unanswered || !dependencies::already_held(source.status.as_ref(), blocked) {
        tracing::info!(source = %key, reason = blocked.reason(), "{}", blocked.message());
        let new = crate::engine::handled(
            source,
            dependencies::held(
                &source.status.clone().unwrap_or_default(),
                blocked,
                source.metadata.generation,
            ),
        );
        if let Err(e) = ctx.engine.write_status(source, &new).await {
            tracing::warn!(source = %key, error = %e, "cannot record the dependency wait");
        }
        refresh(ctx, key, source).await;
    }
    Action::Requeue(match blocked {
        Blocked::Cycle(_) => interval,
        Blocked::NotReady(_) => interval.min(DEPENDENCY_RETRY),
    })
}

/// How often a source waiting for a dependency looks again (at most).
const DEPENDENCY_RETRY: Duration = Duration::from_secs(5);

/// When `source` is Ready, queues the sources waiting for it.
fn wake_dependents(ctx: &Ctx, key: &ObjectRef, source: &GitSource) {
    if dependencies::not_ready(Some(source)).is_some() {
        return;
    }
    for s in ctx.cache.all() {
        let waiting = s
            .status
            .as_ref()
            .and_then(crate::status::ready)
            .is_some_and(|c| c.reason == dependencies::NOT_READY);
        if waiting && dependencies::depends_on(&s, key) {
            ctx.queue.add(ObjectRef::of(&*s));
        }
    }
}

/// Re-reads the source after we wrote its status, remembering it.
async fn refresh(ctx: &Ctx, key: &ObjectRef, fallback: &GitSource) -> GitSource {
    let api = ctx.engine.client.api::<GitSource>(key.namespace.as_deref());
    match api.get_opt(&key.name).await {
        Ok(Some(s)) => {
            if let Some(st) = lock(&ctx.states).get_mut(key) {
                st.latest = Some(s.clone());
            }
            s
        }
        _ => fallback.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::korral::GitSourceSpec;

    #[test]
    fn intervals_default_to_a_minute_and_never_go_below_a_second() {
        let mut s = GitSource::default();
        assert_eq!(interval_of(&s), Duration::from_secs(60));
        s.spec = Some(GitSourceSpec {
            interval: Some("5m".into()),
            ..Default::default()
        });
        assert_eq!(interval_of(&s), Duration::from_secs(300));
        s.spec = Some(GitSourceSpec {
            interval: Some("10ms".into()),
            ..Default::default()
        });
        assert_eq!(interval_of(&s), Duration::from_secs(1));
    }
}
