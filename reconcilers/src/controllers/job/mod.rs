//! The Job controller, after kube-controller-manager 1.33's: runs pods from
//! the template until `completions` succeed (or, without completions, until
//! one succeeds: work-queue Jobs), at most `parallelism` at once; Indexed
//! Jobs give each pod its index (annotation and label
//! `batch.kubernetes.io/job-completion-index`, `JOB_COMPLETION_INDEX`,
//! hostname `<job>-<index>`, name `<job>-<index>-<random>`). Failed pods
//! are replaced after an exponential back-off until `backoffLimit` (or
//! `backoffLimitPerIndex` / `maxFailedIndexes`); `activeDeadlineSeconds`,
//! `podFailurePolicy` and `successPolicy` end a Job early; `suspend` deletes
//! its pods.
//!
//! Pods carry the `batch.kubernetes.io/job-tracking` finalizer: a finished
//! pod is first written to `status.uncountedTerminatedPods`, then loses its
//! finalizer, then moves into the `succeeded`/`failed` counters, so no
//! finished pod is lost or counted twice whatever fails in between. A Job
//! ends with `SuccessCriteriaMet` then `Complete`, or `FailureTarget` then
//! `Failed`, once its pods are gone.

pub mod indexes;
pub mod policy;
pub mod status;
#[cfg(test)]
mod tracking_tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use k8s_openapi::api::batch::v1::{Job, JobCondition, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemas::MetaExt;

use crate::controllers::Context;
use crate::controllers::expectations::Expectations;
use crate::controllers::podutil::{
    controller_of, controller_ref, deletion_order, is_active, is_ready,
};
use crate::controllers::recorder::{NORMAL, Recorder, WARNING};
use crate::runtime::{
    Action, Api, Cache, ClientError, Controller, DeleteParams, ObjectRef, Patch, WriteParams,
};

use indexes::{COMPLETION_INDEX, INDEX_FAILURE_COUNT, INDEX_IGNORED_FAILURE_COUNT, Intervals};
use policy::{BackoffRecord, is_pod_failed, match_pod_failure_policy, only_replace_failed, phase};

/// The finalizer that keeps a Job's finished pods until they are counted.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The label the API server puts on a Job's pods naming it.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// `spec.managedBy` of Jobs this controller manages (or none).
pub const CONTROLLER_NAME: &str = "kubernetes.io/job-controller";
/// The environment variable holding an Indexed Job pod's index.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// At most this many pods wait in `uncountedTerminatedPods` (kube's MaxUncountedPods).
pub const MAX_UNCOUNTED_PODS: usize = 500;
/// At most this many pods are created or deleted per sync.
pub const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;
const MANAGER: &str = "job-controller";

struct State {
    ctx: Context,
    jobs: Cache<Job>,
    pods: Cache<Pod>,
    expectations: Expectations,
    /// Pod uids whose finalizer removal was sent but not yet seen, per Job.
    finalizer_removals: Mutex<HashMap<ObjectRef, HashSet<String>>>,
    /// Back-off of pod replacements, per Job.
    backoff: Mutex<HashMap<ObjectRef, BackoffRecord>>,
    /// The resourceVersion of each Job's last status write: a cache older
    /// than it would only meet a conflict.
    written: Mutex<HashMap<ObjectRef, u64>>,
    recorder: Recorder,
}

fn wp() -> WriteParams {
    WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// Whether the pod still carries the tracking finalizer.
pub fn has_tracking_finalizer(p: &Pod) -> bool {
    p.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let job_informer = ctx.informers.get::<Job>();
    let pod_informer = ctx.informers.pods();
    let controller = Controller::new("job", &job_informer)
        .owns::<Job, Pod>(&pod_informer)
        // orphaned pods still holding the finalizer: the Job they name releases them
        .watches(&pod_informer, |p: &Pod| {
            if controller_of(&p.metadata).is_some() || !has_tracking_finalizer(p) {
                return Vec::new();
            }
            p.metadata
                .labels_map()
                .get(JOB_NAME_LABEL)
                .map(|n| ObjectRef::new(p.metadata.namespace.as_deref(), n))
                .into_iter()
                .collect()
        })
        .workers(5);
    let state = Arc::new(State {
        recorder: Recorder::new(ctx.client.clone(), MANAGER, MANAGER),
        ctx: ctx.clone(),
        jobs: job_informer.cache(),
        pods: pod_informer.cache(),
        expectations: Expectations::default(),
        finalizer_removals: Mutex::new(HashMap::new()),
        backoff: Mutex::new(HashMap::new()),
        written: Mutex::new(HashMap::new()),
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

impl State {
    fn now(&self) -> DateTime<Utc> {
        self.ctx.options.clock.now()
    }

    fn forget(&self, key: &ObjectRef) {
        self.expectations.forget(key);
        if let Ok(mut m) = self.finalizer_removals.lock() {
            m.remove(key);
        }
        if let Ok(mut m) = self.backoff.lock() {
            m.remove(key);
        }
        if let Ok(mut m) = self.written.lock() {
            m.remove(key);
        }
    }

    /// Remembers the resourceVersion a status write produced.
    fn wrote(&self, key: &ObjectRef, job: &Job) {
        if let (Some(rv), Ok(mut m)) = (resource_version(job), self.written.lock()) {
            m.insert(key.clone(), rv);
        }
    }

    /// Whether the cached Job predates our last status write.
    fn stale(&self, key: &ObjectRef, cached: &Job) -> bool {
        let written = self.written.lock().ok().and_then(|m| m.get(key).copied());
        matches!((resource_version(cached), written), (Some(c), Some(w)) if c < w)
    }

    /// The uids whose finalizer removal is still unobserved in `pods`, the
    /// snapshot this sync counts from (kube's `uidTrackingExpectations`).
    ///
    /// The invariant: a pod is counted exactly once. It goes into
    /// `uncountedTerminatedPods` (a status write), its uid is expected here
    /// before the patch removing its finalizer, then it moves into
    /// `succeeded`/`failed`. From then on only this set keeps a view of the
    /// pod still showing the finalizer from being counted again, so a uid
    /// may only be forgotten when `pods` itself shows the removal (the pod
    /// without the finalizer, or gone), never from a fresh read of the
    /// cache: the cache runs ahead of the snapshot during the sync, and a
    /// uid forgotten because the cache already shows the removal, while
    /// the snapshot still shows the finalizer, was counted twice under load.
    fn expected_removals(&self, key: &ObjectRef, pods: &[Arc<Pod>]) -> HashSet<String> {
        let Ok(mut m) = self.finalizer_removals.lock() else {
            return HashSet::new();
        };
        let Some(set) = m.get_mut(key) else {
            return HashSet::new();
        };
        let shown: HashSet<&str> = pods
            .iter()
            .filter(|p| has_tracking_finalizer(p))
            .map(|p| p.metadata.uid_str())
            .collect();
        set.retain(|uid| shown.contains(uid.as_str()));
        let out = set.clone();
        if set.is_empty() {
            m.remove(key);
        }
        out
    }

    fn expect_removals(&self, key: &ObjectRef, uids: impl IntoIterator<Item = String>) {
        if let Ok(mut m) = self.finalizer_removals.lock() {
            m.entry(key.clone()).or_default().extend(uids);
        }
    }

    fn removal_failed(&self, key: &ObjectRef, uid: &str) {
        if let Ok(mut m) = self.finalizer_removals.lock()
            && let Some(set) = m.get_mut(key)
        {
            set.remove(uid);
        }
    }

    fn pod_api(&self, ns: &str) -> Api<Pod> {
        self.ctx.client.api::<Pod>(Some(ns))
    }

    /// Removes the tracking finalizer from a pod (gone counts as done).
    async fn release(&self, p: &Pod) -> Result<(), ClientError> {
        if !has_tracking_finalizer(p) {
            return Ok(());
        }
        let patch = Patch::Strategic(
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}}),
        );
        match self
            .pod_api(p.metadata.namespace_str())
            .patch(p.metadata.name_str(), &patch, &wp())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A resourceVersion as a number (korral's and etcd's are revisions).
fn resource_version(job: &Job) -> Option<u64> {
    job.metadata.resource_version.as_deref()?.parse().ok()
}

/// Releases the pods of a Job that is gone (or finished): those it
/// controlled, and orphans naming it in their job-name label.
async fn release_leftovers(
    state: &State,
    key: &ObjectRef,
    live: Option<&Job>,
) -> Result<(), ClientError> {
    let ns = key.namespace.as_deref().unwrap_or("default");
    let live_uid = live.and_then(|j| j.metadata.uid.clone());
    let finished = live.is_some_and(status::is_finished);
    let in_ns = |p: &Arc<Pod>| p.metadata.namespace_str() == ns;
    // a live Job's leftovers carry its name in their label; a gone Job's
    // pods (manual selectors too) are looked for in the whole namespace
    let mut candidates: Vec<Arc<Pod>> = match live {
        None => state.pods.in_namespace(ns),
        Some(_) => state
            .pods
            .with_label(JOB_NAME_LABEL, &key.name)
            .into_iter()
            .filter(in_ns)
            .collect(),
    };
    if finished && let Some(uid) = &live_uid {
        candidates.extend(state.pods.owned_by(uid));
    }
    for p in candidates {
        if !has_tracking_finalizer(&p) {
            continue;
        }
        let release = match controller_of(&p.metadata) {
            Some(r) if r.kind == "Job" && r.api_version == "batch/v1" && r.name == key.name => {
                // the Job it names is gone (another uid), or finished
                live_uid.as_deref() != Some(r.uid.as_str()) || finished
            }
            Some(_) => false,
            None => {
                p.metadata.labels_map().get(JOB_NAME_LABEL) == Some(&key.name)
                    && (live.is_none() || finished)
            }
        };
        if release {
            state.release(&p).await?;
        }
    }
    Ok(())
}

/// Everything one sync knows (kube's `syncJobCtx`).
struct JobCtx {
    job: Job,
    pods: Vec<Arc<Pod>>,
    finished: Option<JobCondition>,
    active_pods: Vec<Arc<Pod>>,
    succeeded: i32,
    failed: i32,
    prev_succeeded_indexes: Intervals,
    succeeded_indexes: Intervals,
    failed_indexes: Option<Intervals>,
    new_backoff: BackoffRecord,
    expected_rm: HashSet<String>,
    uncounted_succeeded: HashSet<String>,
    uncounted_failed: HashSet<String>,
    delayed_per_index: HashMap<i64, Arc<Pod>>,
    terminating: i32,
    ready: i32,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

fn per_index_limit(job: &Job) -> Option<i32> {
    job.spec.as_ref().and_then(|s| s.backoff_limit_per_index)
}

fn completions_of(job: &Job) -> Option<i32> {
    job.spec.as_ref().and_then(|s| s.completions)
}

fn suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some() && !matches!(phase(p), "Succeeded" | "Failed")
}

/// Whether the pod's index is valid for the Job (always, for NonIndexed Jobs).
fn valid_index(job: &Job, p: &Pod) -> bool {
    !is_indexed(job)
        || indexes::completion_index(p)
            .is_some_and(|ix| ix < i64::from(completions_of(job).unwrap_or(0)))
}

impl JobCtx {
    /// Pods with the finalizer, not yet counted, of valid index, passing `filter`.
    fn valid_pods(
        &self,
        skip: Option<&HashSet<String>>,
        filter: impl Fn(&Pod) -> bool,
    ) -> Vec<Arc<Pod>> {
        self.pods
            .iter()
            .filter(|p| {
                let uid = p.metadata.uid_str();
                has_tracking_finalizer(p)
                    && !skip.is_some_and(|s| s.contains(uid))
                    && !self.expected_rm.contains(uid)
                    && valid_index(&self.job, p)
                    && filter(p)
            })
            .cloned()
            .collect()
    }

    fn is_index_failed(&self, p: &Pod) -> bool {
        let mut counted = false;
        if is_pod_failed(p, &self.job) {
            let policy = self
                .job
                .spec
                .as_ref()
                .and_then(|s| s.pod_failure_policy.as_ref());
            if policy.is_some() {
                let m = match_pod_failure_policy(policy, p);
                if m.action.as_deref() == Some("FailIndex") {
                    return true;
                }
                counted = m.count;
            } else {
                counted = true;
            }
        }
        counted
            && indexes::count_annotation(p, INDEX_FAILURE_COUNT)
                >= i64::from(per_index_limit(&self.job).unwrap_or(0))
    }
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(shared) = state.jobs.get(&key) else {
        state.forget(&key);
        release_leftovers(&state, &key, None).await?;
        return Ok(Action::AwaitChange);
    };
    if let Some(by) = shared.spec.as_ref().and_then(|s| s.managed_by.as_deref())
        && by != CONTROLLER_NAME
    {
        return Ok(Action::AwaitChange);
    }
    if status::is_finished(&shared) {
        if let Ok(mut m) = state.backoff.lock() {
            m.remove(&key);
        }
        release_leftovers(&state, &key, Some(&shared)).await?;
        return Ok(Action::AwaitChange);
    }
    if let Some(mode) = shared
        .spec
        .as_ref()
        .and_then(|s| s.completion_mode.as_deref())
        && mode != "NonIndexed"
        && mode != "Indexed"
    {
        state.recorder.record(
            shared.as_ref(),
            WARNING,
            "UnknownCompletionMode",
            "",
            "Skipped Job sync because completion mode is unknown",
        );
        return Ok(Action::AwaitChange);
    }
    // orphans naming this Job by label may be adopted below; leftovers of a
    // previous Job of the same name are released
    release_leftovers(&state, &key, Some(&shared)).await?;
    if state.stale(&key, &shared) {
        // the watch brings our own write shortly, and with it this key
        return Ok(Action::Requeue(Duration::from_millis(200)));
    }
    match sync(&state, &key, (*shared).clone()).await {
        // someone else wrote the Job: look again at once, without piling
        // up per-key back-off
        Err(e) if e.is_conflict() => Ok(Action::Requeue(Duration::from_millis(50))),
        r => r,
    }
}

async fn sync(state: &State, key: &ObjectRef, mut job: Job) -> Result<Action, ClientError> {
    let ns = key.namespace.clone().unwrap_or_else(|| "default".into());
    let now = state.now();
    let mut requeue: Option<Duration> = None;
    let mut soon = |d: Duration| {
        let d = d.max(Duration::from_millis(10));
        requeue = Some(requeue.map_or(d, |r: Duration| r.min(d)));
    };

    let status = job.status.get_or_insert_with(Default::default);
    let uncounted = status
        .uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default)
        .clone();

    let pods_cache = state.pods.clone();
    let satisfied = state.expectations.satisfied(
        key,
        |name| pods_cache.get(&ObjectRef::new(Some(&ns), name)).is_some(),
        |name| {
            pods_cache
                .get(&ObjectRef::new(Some(&ns), name))
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        },
    );

    let selector = job
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    // the one read of the pod cache this sync counts from: adopted pods get
    // the tracking finalizer in the adoption patch and come back with it
    let pods = crate::controllers::claim::claim_adding_finalizer(
        &job,
        &selector,
        TRACKING_FINALIZER,
        &state.pods,
        &state.pod_api(&ns),
        MANAGER,
    )
    .await?;
    let active_pods: Vec<Arc<Pod>> = pods.iter().filter(|p| is_active(p)).cloned().collect();
    let mut jc = JobCtx {
        ready: count(active_pods.iter().filter(|p| is_ready(p)).count()),
        terminating: count(pods.iter().filter(|p| is_terminating(p)).count()),
        uncounted_succeeded: uncounted.succeeded.iter().flatten().cloned().collect(),
        uncounted_failed: uncounted.failed.iter().flatten().cloned().collect(),
        expected_rm: state.expected_removals(key, &pods),
        job,
        pods,
        active_pods,
        finished: None,
        succeeded: 0,
        failed: 0,
        prev_succeeded_indexes: Intervals::default(),
        succeeded_indexes: Intervals::default(),
        failed_indexes: None,
        new_backoff: BackoffRecord::default(),
        delayed_per_index: HashMap::new(),
    };
    let mut active = count(jc.active_pods.len());
    let new_succeeded = jc.valid_pods(Some(&jc.uncounted_succeeded), |p| phase(p) == "Succeeded");
    let new_failed = jc.valid_pods(Some(&jc.uncounted_failed), |p| is_pod_failed(p, &jc.job));
    let policy = jc
        .job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.clone());
    let counted_new_failed = new_failed
        .iter()
        .filter(|p| match_pod_failure_policy(policy.as_ref(), p).count)
        .count();
    let st = jc.job.status.clone().unwrap_or_default();
    jc.succeeded = st.succeeded.unwrap_or(0)
        + count(new_succeeded.len())
        + count(jc.uncounted_succeeded.len());
    jc.failed =
        st.failed.unwrap_or(0) + count(counted_new_failed) + count(jc.uncounted_failed.len());

    if st.start_time.is_none()
        && !suspended(&jc.job)
        && let Some(s) = jc.job.status.as_mut()
    {
        s.start_time = Some(schemas::time::from_utc(now));
    }
    let previous = state
        .backoff
        .lock()
        .ok()
        .and_then(|m| m.get(key).cloned())
        .unwrap_or_default();
    let ns_refs: Vec<&Pod> = new_succeeded.iter().map(AsRef::as_ref).collect();
    let nf_refs: Vec<&Pod> = new_failed.iter().map(AsRef::as_ref).collect();
    jc.new_backoff = previous.after(&ns_refs, &nf_refs);

    let spec = jc.job.spec.clone().unwrap_or_default();
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let exceeds_backoff_limit = jc.failed > backoff_limit;
    jc.finished = status::find_true(&jc.job, status::SUCCESS_CRITERIA_MET).cloned();
    if jc.finished.is_none() {
        if let Some(target) = status::find_true(&jc.job, status::FAILURE_TARGET) {
            jc.finished = Some(status::condition(
                status::FAILED,
                "True",
                target.reason.as_deref().unwrap_or(""),
                target.message.as_deref().unwrap_or(""),
                now,
            ));
        } else if let Some(msg) = policy::fail_job_message(&jc.job, &jc.pods) {
            jc.finished = Some(status::condition(
                status::FAILURE_TARGET,
                "True",
                status::POD_FAILURE_POLICY,
                &msg,
                now,
            ));
        }
    }
    if jc.finished.is_none() {
        let start = jc
            .job
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(schemas::TimeExt::utc);
        let deadline = spec
            .active_deadline_seconds
            .zip(start)
            .map(|(ads, start)| start + chrono::Duration::seconds(ads));
        if exceeds_backoff_limit || past_backoff_limit_on_failure(&jc.job, &jc.pods) {
            let (r, m) = status::BACKOFF_LIMIT_EXCEEDED;
            jc.finished = Some(status::condition(status::FAILURE_TARGET, "True", r, m, now));
        } else if let Some(deadline) = deadline.filter(|_| !suspended(&jc.job)) {
            if now >= deadline {
                let (r, m) = status::DEADLINE_EXCEEDED;
                jc.finished = Some(status::condition(status::FAILURE_TARGET, "True", r, m, now));
            } else {
                soon((deadline - now).to_std().unwrap_or_default());
            }
        }
    }

    if is_indexed(&jc.job) {
        let completions = i64::from(spec.completions.unwrap_or(0));
        jc.prev_succeeded_indexes =
            Intervals::parse(st.completed_indexes.as_deref().unwrap_or(""), completions);
        let newly: std::collections::BTreeSet<i64> = jc
            .pods
            .iter()
            .filter(|p| phase(p) == "Succeeded" && has_tracking_finalizer(p))
            .filter_map(|p| indexes::completion_index(p))
            .filter(|ix| *ix < completions)
            .collect();
        jc.succeeded_indexes = jc.prev_succeeded_indexes.with_indexes(newly);
        jc.succeeded = i32::try_from(jc.succeeded_indexes.total()).unwrap_or(i32::MAX);
        if per_index_limit(&jc.job).is_some() {
            let prev_failed =
                Intervals::parse(st.failed_indexes.as_deref().unwrap_or(""), completions);
            let newly_failed: std::collections::BTreeSet<i64> = jc
                .pods
                .iter()
                .filter(|p| has_tracking_finalizer(p) && jc.is_index_failed(p))
                .filter_map(|p| indexes::completion_index(p))
                .filter(|ix| *ix < completions)
                .collect();
            let failed_indexes = prev_failed.with_indexes(newly_failed);
            if jc.finished.is_none() {
                if spec
                    .max_failed_indexes
                    .is_some_and(|m| failed_indexes.total() > i64::from(m))
                {
                    let (r, m) = status::MAX_FAILED_INDEXES_EXCEEDED;
                    jc.finished =
                        Some(status::condition(status::FAILURE_TARGET, "True", r, m, now));
                } else if failed_indexes.total() > 0
                    && failed_indexes.total() + jc.succeeded_indexes.total() >= completions
                {
                    let (r, m) = status::FAILED_INDEXES;
                    jc.finished =
                        Some(status::condition(status::FAILURE_TARGET, "True", r, m, now));
                }
            }
            jc.failed_indexes = Some(failed_indexes);
            jc.delayed_per_index = delayed_deletions(&jc, completions);
        }
        if jc.finished.is_none()
            && let Some(msg) =
                policy::match_success_policy(&jc.job, completions, &jc.succeeded_indexes)
        {
            jc.finished = Some(status::condition(
                status::SUCCESS_CRITERIA_MET,
                "True",
                status::SUCCESS_POLICY,
                &msg,
                now,
            ));
        }
    }

    let mut suspend_changed = false;
    let mut manage_error: Option<ClientError> = None;
    if jc.finished.is_some() {
        let (deleted_ready, deleted, err) =
            delete_active_pods(state, &jc.job, &jc.active_pods).await;
        if deleted != active || !satisfied {
            // pods may remain, or be missing from the cache: not finished yet
            jc.finished = None;
        }
        active -= deleted;
        jc.terminating += deleted;
        jc.ready -= deleted_ready;
        manage_error = err;
    } else {
        let mut managed = false;
        if satisfied && jc.job.metadata.deletion_timestamp.is_none() {
            let (a, delay, err) = manage_job(state, key, &mut jc, now).await;
            active = a;
            if let Some(d) = delay {
                soon(d);
            }
            manage_error = err;
            managed = true;
        }
        let complete = match spec.completions {
            None => jc.succeeded > 0 && active == 0,
            Some(c) => jc.succeeded >= c && active == 0,
        };
        if complete {
            let (r, m) = status::COMPLETIONS_REACHED;
            jc.finished = Some(status::condition(
                status::SUCCESS_CRITERIA_MET,
                "True",
                r,
                m,
                now,
            ));
        } else if managed {
            let is_suspended = suspended(&jc.job);
            let conditions = jc
                .job
                .status
                .get_or_insert_with(Default::default)
                .conditions
                .get_or_insert_with(Vec::new);
            if is_suspended {
                if status::ensure(
                    conditions,
                    status::SUSPENDED,
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    now,
                ) {
                    suspend_changed = true;
                    state
                        .recorder
                        .record(&jc.job, NORMAL, "Suspended", "", "Job suspended");
                }
            } else if status::ensure(
                conditions,
                status::SUSPENDED,
                "False",
                "JobResumed",
                "Job resumed",
                now,
            ) {
                suspend_changed = true;
                state
                    .recorder
                    .record(&jc.job, NORMAL, "Resumed", "", "Job resumed");
                // the deadline counts from the resumption
                if let Some(s) = jc.job.status.as_mut() {
                    s.start_time = Some(schemas::time::from_utc(now));
                }
            }
        }
    }

    let s = jc.job.status.get_or_insert_with(Default::default);
    let needs_update = suspend_changed
        || active != s.active.unwrap_or(0)
        || s.ready != Some(jc.ready)
        || s.terminating != Some(jc.terminating);
    s.active = Some(active).filter(|a| *a != 0);
    s.ready = Some(jc.ready);
    s.terminating = Some(jc.terminating);
    track_status_and_remove_finalizers(state, key, &mut jc, needs_update, now).await?;
    if let Some(e) = manage_error {
        return Err(e);
    }
    Ok(match requeue {
        Some(d) => Action::Requeue(d),
        None if !satisfied => Action::Requeue(Duration::from_secs(5)),
        None => Action::AwaitChange,
    })
}

/// With `restartPolicy: OnFailure`, whether the container restarts of the
/// running pods reach the backoff limit.
fn past_backoff_limit_on_failure(job: &Job, pods: &[Arc<Pod>]) -> bool {
    let restart = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref());
    if restart != Some("OnFailure") {
        return false;
    }
    let mut restarts = 0i64;
    for p in pods {
        if matches!(phase(p), "Running" | "Pending") {
            let s = p.status.clone().unwrap_or_default();
            for cs in s
                .init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
            {
                restarts += i64::from(cs.restart_count);
            }
        }
    }
    let limit = i64::from(job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6));
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// For each index still to run again, the failed pod whose removal waits
/// until its replacement carries its failure count (backoffLimitPerIndex).
fn delayed_deletions(jc: &JobCtx, completions: i64) -> HashMap<i64, Arc<Pod>> {
    let active = indexes::indexes_of(jc.active_pods.iter().map(AsRef::as_ref));
    let failed = jc.failed_indexes.clone().unwrap_or_default();
    let mut out: HashMap<i64, Arc<Pod>> = HashMap::new();
    let absolute = |p: &Pod| {
        indexes::count_annotation(p, INDEX_FAILURE_COUNT)
            + indexes::count_annotation(p, INDEX_IGNORED_FAILURE_COUNT)
    };
    for p in jc.valid_pods(None, |p| is_pod_failed(p, &jc.job)) {
        let Some(ix) = indexes::completion_index(&p).filter(|ix| *ix < completions) else {
            continue;
        };
        if jc.succeeded_indexes.has(ix) || failed.has(ix) || active.contains(&ix) {
            continue;
        }
        match out.get(&ix) {
            Some(last)
                if !(absolute(last) <= absolute(&p)
                    && policy::finished_time(&p) >= policy::finished_time(last)) => {}
            _ => {
                out.insert(ix, p.clone());
            }
        }
    }
    out
}

/// Deletes the active pods of a Job that is finishing (finalizers kept: the
/// pods are counted once they are gone). Returns (ready deleted, deleted, error).
async fn delete_active_pods(
    state: &State,
    job: &Job,
    pods: &[Arc<Pod>],
) -> (i32, i32, Option<ClientError>) {
    let api = state.pod_api(job.metadata.namespace_str());
    let results = futures_util::future::join_all(pods.iter().map(|p| {
        let api = api.clone();
        async move {
            let r = api
                .delete(p.metadata.name_str(), &DeleteParams::default())
                .await;
            (p, r)
        }
    }))
    .await;
    let (mut ready, mut deleted, mut error) = (0, 0, None);
    for (p, r) in results {
        match r {
            Ok(()) => {
                deleted += 1;
                state.recorder.record(
                    job,
                    NORMAL,
                    "SuccessfulDelete",
                    "",
                    &format!("Deleted pod: {}", p.metadata.name_str()),
                );
            }
            Err(e) if e.is_not_found() => deleted += 1,
            Err(e) => {
                state.recorder.record(
                    job,
                    WARNING,
                    "FailedDelete",
                    "",
                    &format!("Error deleting: {e}"),
                );
                error = Some(e);
                continue;
            }
        }
        if is_ready(p) {
            ready += 1;
        }
    }
    (ready, deleted, error)
}

/// Deletes pods the Job no longer wants (excess or suspended), releasing
/// them first so they are not counted as failures.
async fn delete_job_pods(
    state: &State,
    key: &ObjectRef,
    job: &Job,
    pods: &[Arc<Pod>],
) -> (i32, i32, Option<ClientError>) {
    let api = state.pod_api(job.metadata.namespace_str());
    let results = futures_util::future::join_all(pods.iter().map(|p| {
        let api = api.clone();
        async move {
            if let Err(e) = state.release(p).await {
                return (p, Err(e));
            }
            (
                p,
                api.delete(p.metadata.name_str(), &DeleteParams::default())
                    .await,
            )
        }
    }))
    .await;
    let (mut ready, mut deleted, mut error) = (0, 0, None);
    for (p, r) in results {
        match r {
            Ok(()) => {
                deleted += 1;
                state.recorder.record(
                    job,
                    NORMAL,
                    "SuccessfulDelete",
                    "",
                    &format!("Deleted pod: {}", p.metadata.name_str()),
                );
                if is_ready(p) {
                    ready += 1;
                }
            }
            Err(e) if e.is_not_found() => {
                deleted += 1;
                if is_ready(p) {
                    ready += 1;
                }
            }
            Err(e) => {
                // the deletion will never be observed
                state.expectations.observed(key, p.metadata.name_str());
                state.recorder.record(
                    job,
                    WARNING,
                    "FailedDelete",
                    "",
                    &format!("Error deleting: {e}"),
                );
                error = Some(e);
            }
        }
    }
    (ready, deleted, error)
}

/// The pods to delete when `rm_at_least` too many run: for Indexed Jobs,
/// duplicates and invalid indexes first; then in Kubernetes' deletion order.
fn pods_for_removal(job: &Job, pods: &[Arc<Pod>], rm_at_least: usize) -> Vec<Arc<Pod>> {
    let mut rm: Vec<Arc<Pod>> = Vec::new();
    let mut left: Vec<Arc<Pod>> = Vec::new();
    if is_indexed(job) {
        let completions = i64::from(completions_of(job).unwrap_or(0));
        let mut by_index: std::collections::BTreeMap<i64, Vec<Arc<Pod>>> =
            std::collections::BTreeMap::new();
        for p in pods {
            match indexes::completion_index(p) {
                Some(ix) if ix < completions => by_index.entry(ix).or_default().push(p.clone()),
                _ => rm.push(p.clone()),
            }
        }
        for (_, mut same) in by_index {
            same.sort_by(|a, b| deletion_order(a, b));
            if let Some(keep) = same.pop() {
                left.push(keep);
            }
            rm.extend(same);
        }
    } else {
        left = pods.to_vec();
    }
    if rm.len() < rm_at_least {
        left.sort_by(|a, b| deletion_order(a, b));
        let more = (rm_at_least - rm.len()).min(left.len());
        rm.extend(left.into_iter().take(more));
    }
    rm
}

/// Creates or deletes pods toward the wanted number of active ones.
/// Returns (active, a delay to look again after, an error).
async fn manage_job(
    state: &State,
    key: &ObjectRef,
    jc: &mut JobCtx,
    now: DateTime<Utc>,
) -> (i32, Option<Duration>, Option<ClientError>) {
    let job = jc.job.clone();
    let spec = job.spec.clone().unwrap_or_default();
    let mut active = count(jc.active_pods.len());
    let parallelism = spec.parallelism.unwrap_or(1);
    if suspended(&job) {
        let victims = pods_for_removal(&job, &jc.active_pods, jc.active_pods.len());
        state.expectations.deleted(
            key,
            victims.iter().map(|p| p.metadata.name_str().to_string()),
        );
        let (ready, removed, err) = delete_job_pods(state, key, &job, &victims).await;
        jc.terminating += removed;
        jc.ready -= ready;
        return (active - removed, None, err);
    }
    let want = match spec.completions {
        None if jc.succeeded > 0 => active,
        None => parallelism,
        Some(c) => (c - jc.succeeded).clamp(0, parallelism.max(0)),
    };
    let rm_at_least = usize::try_from((active - want).max(0)).unwrap_or(0);
    let mut victims = pods_for_removal(&job, &jc.active_pods, rm_at_least);
    victims.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
    if !victims.is_empty() {
        state.expectations.deleted(
            key,
            victims.iter().map(|p| p.metadata.name_str().to_string()),
        );
        let (ready, removed, err) = delete_job_pods(state, key, &job, &victims).await;
        jc.terminating += removed;
        jc.ready -= ready;
        return (active - removed, None, err);
    }
    let terminating = if only_replace_failed(&job) {
        jc.terminating
    } else {
        0
    };
    let mut diff = want - terminating - active;
    if diff <= 0 {
        return (active, None, None);
    }
    let opts = &state.ctx.options;
    if per_index_limit(&job).is_none() {
        let remaining = jc.new_backoff.remaining(
            now,
            opts.job_pod_failure_backoff,
            opts.job_pod_failure_max_backoff,
        );
        if remaining > Duration::ZERO {
            return (active, Some(remaining), None);
        }
    }
    diff = diff.min(count(MAX_POD_CREATE_DELETE_PER_SYNC));
    let mut to_add: Vec<Option<i64>> = Vec::new();
    if is_indexed(&job) {
        let completions = i64::from(spec.completions.unwrap_or(0));
        let mut taken = jc.succeeded_indexes.with_indexes(indexes::indexes_of(
            jc.active_pods.iter().map(AsRef::as_ref),
        ));
        if only_replace_failed(&job) {
            taken = taken.with_indexes(indexes::indexes_of(
                jc.pods
                    .iter()
                    .filter(|p| is_terminating(p))
                    .map(AsRef::as_ref),
            ));
        }
        if let Some(f) = &jc.failed_indexes {
            taken = taken.merge(f);
        }
        let mut pending =
            indexes::first_pending(&taken, usize::try_from(diff).unwrap_or(0), completions);
        if per_index_limit(&job).is_some() {
            let mut now_ready = Vec::new();
            let mut min_wait: Option<Duration> = None;
            for ix in pending {
                let wait = jc
                    .delayed_per_index
                    .get(&ix)
                    .map_or(Duration::ZERO, |last| {
                        let failures = i32::try_from(
                            indexes::count_annotation(last, INDEX_FAILURE_COUNT)
                                + indexes::count_annotation(last, INDEX_IGNORED_FAILURE_COUNT)
                                + 1,
                        )
                        .unwrap_or(i32::MAX);
                        policy::remaining_for(
                            now,
                            opts.job_pod_failure_backoff,
                            opts.job_pod_failure_max_backoff,
                            failures,
                            Some(policy::finished_time(last)),
                        )
                    });
                if wait.is_zero() {
                    now_ready.push(ix);
                } else {
                    min_wait = Some(min_wait.map_or(wait, |m| m.min(wait)));
                }
            }
            if now_ready.is_empty()
                && let Some(w) = min_wait
            {
                return (active, Some(w), None);
            }
            pending = now_ready;
        }
        to_add = pending.into_iter().map(Some).collect();
    } else {
        to_add.resize(usize::try_from(diff).unwrap_or(0), None);
    }

    // slow start: 1, 2, 4, ... pods per batch, stopping at the first failed batch
    let api = state.pod_api(job.metadata.namespace_str());
    let mut batch = 1usize;
    let mut first_error = None;
    let mut queue = to_add.into_iter();
    loop {
        let this: Vec<Option<i64>> = queue.by_ref().take(batch).collect();
        if this.is_empty() {
            break;
        }
        let results = futures_util::future::join_all(this.iter().map(|ix| {
            let pod = pod_for(
                &job,
                *ix,
                ix.and_then(|i| jc.delayed_per_index.get(&i))
                    .map(AsRef::as_ref),
            );
            let api = api.clone();
            async move { api.create(&pod, &wp()).await }
        }))
        .await;
        let mut names = Vec::new();
        for r in results {
            match r {
                Ok(p) => {
                    state.recorder.record(
                        &job,
                        NORMAL,
                        "SuccessfulCreate",
                        "",
                        &format!("Created pod: {}", p.metadata.name_str()),
                    );
                    names.push(p.metadata.name_str().to_string());
                    active += 1;
                }
                Err(e) => {
                    state.recorder.record(
                        &job,
                        WARNING,
                        "FailedCreate",
                        "",
                        &format!("Error creating: {e}"),
                    );
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
        state.expectations.created(key, names);
        if first_error.is_some() {
            break;
        }
        batch *= 2;
    }
    (active, None, first_error)
}

/// The pod a Job's template describes (for Indexed Jobs, with its index).
pub fn pod_for(job: &Job, index: Option<i64>, replaced: Option<&Pod>) -> Pod {
    let spec = job.spec.clone().unwrap_or_default();
    let template = spec.template;
    let tmeta = template.metadata.unwrap_or_default();
    let name = job.metadata.name_str();
    let mut labels = tmeta.labels.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut finalizers = tmeta.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.into());
    }
    let mut pod_spec = template.spec.unwrap_or_default();
    let mut generate_name = format!("{name}-");
    if let Some(ix) = index {
        annotations.insert(COMPLETION_INDEX.into(), ix.to_string());
        labels.insert(COMPLETION_INDEX.into(), ix.to_string());
        pod_spec.hostname = Some(format!("{name}-{ix}"));
        generate_name = indexes::generate_name(name, ix);
        let env = EnvVar {
            name: COMPLETION_INDEX_ENV.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: format!("metadata.labels['{COMPLETION_INDEX}']"),
                }),
                ..Default::default()
            }),
        };
        for c in pod_spec
            .init_containers
            .iter_mut()
            .flatten()
            .chain(pod_spec.containers.iter_mut())
        {
            let vars = c.env.get_or_insert_with(Vec::new);
            if !vars.iter().any(|v| v.name == COMPLETION_INDEX_ENV) {
                vars.push(env.clone());
            }
        }
        if per_index_limit(job).is_some() {
            let (mut failures, mut ignored) = (0, 0);
            if let Some(old) = replaced {
                failures = indexes::count_annotation(old, INDEX_FAILURE_COUNT);
                ignored = indexes::count_annotation(old, INDEX_IGNORED_FAILURE_COUNT);
                if match_pod_failure_policy(spec.pod_failure_policy.as_ref(), old).count {
                    failures += 1;
                } else {
                    ignored += 1;
                }
            }
            annotations.insert(INDEX_FAILURE_COUNT.into(), failures.to_string());
            if ignored > 0 {
                annotations.insert(INDEX_IGNORED_FAILURE_COUNT.into(), ignored.to_string());
            }
        }
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels).filter(|l| !l.is_empty()),
            annotations: Some(annotations).filter(|a| !a.is_empty()),
            finalizers: Some(finalizers),
            owner_references: Some(vec![controller_ref(job)]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// Moves finished pods into `uncountedTerminatedPods`, releases them, moves
/// released ones into the counters, and finishes the Job when it can
/// (kube's `trackJobStatusAndRemoveFinalizers`).
async fn track_status_and_remove_finalizers(
    state: &State,
    key: &ObjectRef,
    jc: &mut JobCtx,
    mut needs_flush: bool,
    now: DateTime<Utc>,
) -> Result<(), ClientError> {
    let indexed = is_indexed(&jc.job);
    let completions = i64::from(completions_of(&jc.job).unwrap_or(0));
    if indexed {
        jc.pods
            .sort_by_key(|p| indexes::completion_index(p).unwrap_or(-1));
    }
    let mut with_finalizer: HashSet<String> = jc
        .pods
        .iter()
        .filter(|p| has_tracking_finalizer(p) && !jc.expected_rm.contains(p.metadata.uid_str()))
        .map(|p| p.metadata.uid_str().to_string())
        .collect();
    if clean_uncounted(&mut jc.job, &with_finalizer) {
        needs_flush = true;
    }
    let policy = jc
        .job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.clone());
    let finishing_as_failure = jc
        .finished
        .as_ref()
        .is_some_and(|c| c.type_ != status::SUCCESS_CRITERIA_MET);
    let mut to_release: Vec<Arc<Pod>> = Vec::new();
    let mut new_succeeded_indexes: Vec<i64> = Vec::new();
    let mut reached_max = false;
    let mut add_succeeded: Vec<String> = Vec::new();
    let mut add_failed: Vec<String> = Vec::new();
    let already = {
        let u = jc
            .job
            .status
            .as_ref()
            .and_then(|s| s.uncounted_terminated_pods.as_ref());
        u.map_or(0, |u| {
            u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len)
        })
    };
    for p in &jc.pods {
        let uid = p.metadata.uid_str().to_string();
        if !has_tracking_finalizer(p) || jc.expected_rm.contains(&uid) {
            continue;
        }
        let failed = is_pod_failed(p, &jc.job);
        if !can_release(jc, p, failed) {
            continue;
        }
        to_release.push(p.clone());
        let ix = indexes::completion_index(p);
        if phase(p) == "Succeeded" && !jc.uncounted_failed.contains(&uid) {
            if indexed {
                if let Some(ix) =
                    ix.filter(|ix| *ix < completions && !jc.prev_succeeded_indexes.has(*ix))
                {
                    new_succeeded_indexes.push(ix);
                    needs_flush = true;
                }
            } else if !jc.uncounted_succeeded.contains(&uid) {
                needs_flush = true;
                add_succeeded.push(uid.clone());
            }
        } else if (failed || finishing_as_failure)
            && !jc.uncounted_failed.contains(&uid)
            && (!indexed || ix.is_some_and(|ix| ix < completions))
            && match_pod_failure_policy(policy.as_ref(), p).count
        {
            needs_flush = true;
            add_failed.push(uid.clone());
        }
        if already + new_succeeded_indexes.len() + add_succeeded.len() + add_failed.len()
            >= MAX_UNCOUNTED_PODS
        {
            reached_max = true;
            break;
        }
    }
    {
        let u = jc
            .job
            .status
            .get_or_insert_with(Default::default)
            .uncounted_terminated_pods
            .get_or_insert_with(Default::default);
        if !add_succeeded.is_empty() {
            u.succeeded
                .get_or_insert_with(Vec::new)
                .extend(add_succeeded);
        }
        if !add_failed.is_empty() {
            u.failed.get_or_insert_with(Vec::new).extend(add_failed);
        }
    }
    if indexed {
        new_succeeded_indexes.sort_unstable();
        jc.succeeded_indexes = jc.succeeded_indexes.with_indexes(new_succeeded_indexes);
        let text = jc.succeeded_indexes.to_string();
        let s = jc.job.status.get_or_insert_with(Default::default);
        if s.completed_indexes.as_deref().unwrap_or("") != text {
            needs_flush = true;
        }
        s.succeeded = Some(i32::try_from(jc.succeeded_indexes.total()).unwrap_or(i32::MAX))
            .filter(|n| *n != 0);
        s.completed_indexes = Some(text).filter(|t| !t.is_empty());
        let failed_text = jc.failed_indexes.as_ref().map(ToString::to_string);
        if s.failed_indexes != failed_text {
            s.failed_indexes = failed_text;
            needs_flush = true;
        }
    }
    // interim conditions go out before any finalizer is removed
    if let Some(c) = jc.finished.clone() {
        let conditions = jc
            .job
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new);
        if c.type_ == status::FAILURE_TARGET {
            conditions.push(c.clone());
            needs_flush = true;
            jc.finished = Some(status::condition(
                status::FAILED,
                "True",
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or(""),
                now,
            ));
        } else if c.type_ == status::SUCCESS_CRITERIA_MET && c.status == "True" {
            if status::find(conditions, status::SUCCESS_CRITERIA_MET).is_none() {
                conditions.push(c.clone());
                needs_flush = true;
            }
            jc.finished = Some(status::condition(
                status::COMPLETE,
                "True",
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or(""),
                now,
            ));
        }
    }
    let api = state
        .ctx
        .client
        .api::<Job>(jc.job.metadata.namespace.as_deref());
    let name = jc.job.metadata.name_str().to_string();

    // 1. flush what is about to be released
    if needs_flush {
        jc.job = api.replace_status(&name, &jc.job, &wp()).await?;
        state.wrote(key, &jc.job);
        if let Ok(mut m) = state.backoff.lock() {
            m.insert(key.clone(), jc.new_backoff.clone());
        }
        needs_flush = false;
    }
    // 2. release
    let mut release_error = None;
    if !to_release.is_empty() {
        state.expect_removals(
            key,
            to_release.iter().map(|p| p.metadata.uid_str().to_string()),
        );
        let results = futures_util::future::join_all(
            to_release
                .iter()
                .map(|p| async move { (p, state.release(p).await) }),
        )
        .await;
        for (p, r) in results {
            match r {
                Ok(()) => {
                    with_finalizer.remove(p.metadata.uid_str());
                }
                Err(e) => {
                    state.removal_failed(key, p.metadata.uid_str());
                    release_error = Some(e);
                }
            }
        }
    }
    // 3. count the released ones
    if clean_uncounted(&mut jc.job, &with_finalizer) {
        needs_flush = true;
    }
    if let Some(e) = release_error {
        if needs_flush {
            let written = api.replace_status(&name, &jc.job, &wp()).await?;
            state.wrote(key, &written);
        }
        return Err(e);
    }
    // 4. finish
    let finished = !reached_max && enact_finished(jc, now);
    if finished {
        needs_flush = true;
    }
    if needs_flush {
        jc.job = api.replace_status(&name, &jc.job, &wp()).await?;
        state.wrote(key, &jc.job);
        if finished && let Some(c) = &jc.finished {
            if c.type_ == status::COMPLETE {
                if let Some(n) = completions_of(&jc.job)
                    && jc
                        .job
                        .status
                        .as_ref()
                        .and_then(|s| s.succeeded)
                        .unwrap_or(0)
                        > n
                {
                    state.recorder.record(
                        &jc.job,
                        WARNING,
                        "TooManySucceededPods",
                        "",
                        "Too many succeeded pods running after completion count reached",
                    );
                }
                state
                    .recorder
                    .record(&jc.job, NORMAL, "Completed", "", "Job completed");
            } else {
                state.recorder.record(
                    &jc.job,
                    WARNING,
                    c.reason.as_deref().unwrap_or(""),
                    "",
                    c.message.as_deref().unwrap_or(""),
                );
            }
        }
    }
    Ok(())
}

/// Whether a pod's finalizer may go now (kube's `canRemoveFinalizer`).
fn can_release(jc: &JobCtx, p: &Pod, failed: bool) -> bool {
    if jc.job.metadata.deletion_timestamp.is_some()
        || jc.finished.is_some()
        || phase(p) == "Succeeded"
    {
        return true;
    }
    if !failed {
        return false;
    }
    if per_index_limit(&jc.job).is_some()
        && let Some(ix) = indexes::completion_index(p)
        && jc
            .delayed_per_index
            .get(&ix)
            .is_some_and(|d| d.metadata.uid == p.metadata.uid)
    {
        return false;
    }
    true
}

/// Moves uncounted pods that lost their finalizer into the counters.
fn clean_uncounted(job: &mut Job, with_finalizer: &HashSet<String>) -> bool {
    let s = job.status.get_or_insert_with(Default::default);
    let u = s
        .uncounted_terminated_pods
        .get_or_insert_with(Default::default);
    let mut changed = false;
    let succeeded = u.succeeded.take().unwrap_or_default();
    let keep: Vec<String> = succeeded
        .iter()
        .filter(|x| with_finalizer.contains(*x))
        .cloned()
        .collect();
    if keep.len() != succeeded.len() {
        changed = true;
        s.succeeded = Some(s.succeeded.unwrap_or(0) + count(succeeded.len() - keep.len()));
    }
    u.succeeded = Some(keep).filter(|k| !k.is_empty());
    let failed = u.failed.take().unwrap_or_default();
    let keep: Vec<String> = failed
        .iter()
        .filter(|x| with_finalizer.contains(*x))
        .cloned()
        .collect();
    if keep.len() != failed.len() {
        changed = true;
        s.failed = Some(s.failed.unwrap_or(0) + count(failed.len() - keep.len()));
    }
    u.failed = Some(keep).filter(|k| !k.is_empty());
    changed
}

/// Adds `Complete`/`Failed` once nothing is uncounted or terminating.
fn enact_finished(jc: &mut JobCtx, now: DateTime<Utc>) -> bool {
    let Some(c) = jc.finished.clone() else {
        return false;
    };
    let s = jc.job.status.get_or_insert_with(Default::default);
    let uncounted = s.uncounted_terminated_pods.as_ref().map_or(0, |u| {
        u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len)
    });
    if uncounted > 0 || jc.terminating > 0 {
        return false;
    }
    let conditions = s.conditions.get_or_insert_with(Vec::new);
    status::ensure(
        conditions,
        &c.type_,
        &c.status,
        c.reason.as_deref().unwrap_or(""),
        c.message.as_deref().unwrap_or(""),
        now,
    );
    if c.type_ == status::COMPLETE {
        s.completion_time =
            status::find(conditions, status::COMPLETE).and_then(|c| c.last_transition_time.clone());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(v: serde_json::Value) -> Job {
        serde_json::from_value(v).expect("job")
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let j = job(json!({
            "metadata": {"name": "pi", "namespace": "ns", "uid": "u1"},
            "spec": {"completionMode": "Indexed", "completions": 3, "template": {
                "metadata": {"labels": {"app": "pi"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}
        }));
        let p = pod_for(&j, Some(2), None);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-2-"));
        assert_eq!(
            p.metadata
                .annotations_map()
                .get(COMPLETION_INDEX)
                .map(String::as_str),
            Some("2")
        );
        assert_eq!(
            p.metadata
                .labels_map()
                .get(COMPLETION_INDEX)
                .map(String::as_str),
            Some("2")
        );
        assert_eq!(
            p.metadata.labels_map().get("app").map(String::as_str),
            Some("pi")
        );
        let spec = p.spec.expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some("pi-2"));
        let env = spec.containers[0].env.clone().unwrap_or_default();
        assert_eq!(env[0].name, COMPLETION_INDEX_ENV);
        assert!(
            p.metadata
                .finalizers
                .unwrap_or_default()
                .contains(&TRACKING_FINALIZER.to_string())
        );
        let owner = &p.metadata.owner_references.expect("owner")[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
        let plain = pod_for(&j, None, None);
        assert_eq!(plain.metadata.generate_name.as_deref(), Some("pi-"));
    }

    #[test]
    fn uncounted_pods_move_to_counters_once_released() {
        let mut j = job(
            json!({"spec": {"template": {}}, "status": {"succeeded": 2, "failed": 1,
            "uncountedTerminatedPods": {"succeeded": ["a", "b"], "failed": ["c"]}}}),
        );
        let still: HashSet<String> = ["b".to_string()].into();
        assert!(clean_uncounted(&mut j, &still));
        let s = j.status.expect("status");
        assert_eq!((s.succeeded, s.failed), (Some(3), Some(2)));
        let u = s.uncounted_terminated_pods.expect("uncounted");
        assert_eq!(u.succeeded, Some(vec!["b".to_string()]));
        assert_eq!(u.failed, None);
    }

    #[test]
    fn duplicate_and_invalid_indexes_are_removed_first() {
        let j =
            job(json!({"spec": {"completionMode": "Indexed", "completions": 2, "template": {}}}));
        let p = |name: &str, ix: &str| {
            Arc::new(
                serde_json::from_value::<Pod>(json!({"metadata": {"name": name,
                    "annotations": {COMPLETION_INDEX: ix}}, "status": {"phase": "Running"}}))
                .expect("pod"),
            )
        };
        let pods = vec![p("a", "0"), p("b", "0"), p("c", "1"), p("d", "7")];
        let rm = pods_for_removal(&j, &pods, 0);
        let names: HashSet<&str> = rm.iter().map(|p| p.metadata.name_str()).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains("d"));
        assert!(names.contains("a") || names.contains("b"));
    }
}
