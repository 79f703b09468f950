//! The CronJob controller, after kube-controller-manager 1.33's
//! `cronjob_controllerv2`: at each time the schedule names (in
//! `spec.timeZone`), it creates the Job `<cronjob>-<minutes since the
//! epoch>` from the template (annotated with
//! `batch.kubernetes.io/cronjob-scheduled-timestamp`), honouring
//! `concurrencyPolicy` (Allow, Forbid, Replace), `startingDeadlineSeconds`
//! and `suspend`; after downtime only the most recent missed run starts
//! (more than 100 missed ones also warn `TooManyMissedTimes`). It keeps
//! `status.active`, `lastScheduleTime` and `lastSuccessfulTime`, prunes
//! finished Jobs beyond the history limits, and requeues itself for the
//! next scheduled time — no polling.

pub mod schedule;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemas::MetaExt;
use schemas::TimeExt;

use crate::controllers::Context;
use crate::controllers::job::status as job_status;
use crate::controllers::podutil::{controller_of, controller_ref};
use crate::controllers::recorder::{NORMAL, Recorder, WARNING};
use crate::runtime::{
    Action, Api, Cache, ClientError, Controller, DeleteParams, ObjectRef, WriteParams,
};

use schedule::{CronSchedule, Missed};

/// The annotation holding the time a Job was scheduled for (RFC 3339, in the CronJob's zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
const MANAGER: &str = "cronjob-controller";

struct State {
    ctx: Context,
    cronjobs: Cache<CronJob>,
    jobs: Cache<Job>,
    recorder: Recorder,
}

fn wp() -> WriteParams {
    WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let cj_informer = ctx.informers.get::<CronJob>();
    let job_informer = ctx.informers.get::<Job>();
    let controller = Controller::new("cronjob", &cj_informer)
        .owns::<CronJob, Job>(&job_informer)
        .workers(5);
    // a moved clock (tests) is a reason to look at every CronJob again
    let queue = controller.queue();
    let all = cj_informer.cache();
    let mut moves = ctx.options.clock.moves();
    let stopped = ctx.stopped();
    tokio::spawn(async move {
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                r = moves.changed() => {
                    if r.is_err() {
                        return;
                    }
                    for cj in all.all() {
                        queue.add(ObjectRef::of(cj.as_ref()));
                    }
                }
                _ = &mut stopped => return,
            }
        }
    });
    let state = Arc::new(State {
        recorder: Recorder::new(ctx.client.clone(), MANAGER, MANAGER),
        ctx: ctx.clone(),
        cronjobs: cj_informer.cache(),
        jobs: job_informer.cache(),
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

/// `<cronjob>-<scheduled time in minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: DateTime<Utc>) -> String {
    format!("{cronjob}-{}", scheduled.timestamp().div_euclid(60))
}

/// The Job a CronJob starts for `scheduled` (`getJobFromTemplate2`).
pub fn job_from_template(cj: &CronJob, scheduled: DateTime<Utc>) -> Job {
    let spec = cj.spec.clone().unwrap_or_default();
    let template = spec.job_template;
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let tz = spec
        .time_zone
        .as_deref()
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
        .unwrap_or(chrono_tz::UTC);
    annotations.insert(
        SCHEDULED_TIMESTAMP.into(),
        scheduled
            .with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj.metadata.name_str(), scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels.filter(|l| !l.is_empty()),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        namespace: job.metadata.namespace.clone(),
        name: job.metadata.name.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

fn active(cj: &CronJob) -> &[ObjectReference] {
    cj.status
        .as_ref()
        .and_then(|s| s.active.as_deref())
        .unwrap_or_default()
}

fn in_active_list(cj: &CronJob, uid: &str) -> bool {
    active(cj).iter().any(|r| r.uid.as_deref() == Some(uid))
}

fn delete_from_active_list(cj: &mut CronJob, uid: &str) {
    if let Some(s) = cj.status.as_mut()
        && let Some(a) = s.active.as_mut()
    {
        a.retain(|r| r.uid.as_deref() != Some(uid));
    }
}

/// `Complete` or `Failed`, whichever the Job reached.
fn finished_type(j: &Job) -> Option<String> {
    job_status::finished(j).map(|c| c.type_.clone())
}

/// The RFC 1123 form with a numeric zone Go writes (`RFC1123Z`).
fn rfc1123z(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(shared) = state.cronjobs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let ns = key.namespace.clone().unwrap_or_else(|| "default".into());
    // every Job naming it as controller, matching labels or not
    let jobs: Vec<Arc<Job>> = state
        .jobs
        .in_namespace(&ns)
        .into_iter()
        .filter(|j| {
            controller_of(&j.metadata).is_some_and(|r| r.kind == "CronJob" && r.name == key.name)
        })
        .collect();
    let mut cj = (*shared).clone();
    let cleaned = cleanup_finished_jobs(&state, &mut cj, &jobs).await;
    let (requeue, synced, sync_error) = sync_cronjob(&state, &mut cj, &jobs).await;
    if cleaned || synced {
        let api = state.ctx.client.api::<CronJob>(Some(&ns));
        match api.replace_status(cj.metadata.name_str(), &cj, &wp()).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(Action::AwaitChange),
            // a stale cache: the Jobs created are found by name next time
            Err(e) if e.is_conflict() => {
                return Ok(Action::Requeue(std::time::Duration::from_millis(50)));
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(d) = requeue {
        return Ok(Action::Requeue(d));
    }
    match sync_error {
        Some(e) => Err(e),
        None => Ok(Action::AwaitChange),
    }
}

/// The schedule as the controller reads it: a `TZ=` in it is used (with a
/// warning, as kube does), else `spec.timeZone`.
fn schedule_of(state: &State, cj: &CronJob, warn: bool) -> Result<CronSchedule, String> {
    let spec = cj.spec.clone().unwrap_or_default();
    if spec.schedule.contains("TZ") {
        if warn {
            state.recorder.record(
                cj,
                WARNING,
                "UnsupportedSchedule",
                "",
                &format!(
                    "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                    spec.schedule
                ),
            );
        }
        return schedule::parse(&spec.schedule, None);
    }
    let tz = spec
        .time_zone
        .as_deref()
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok());
    schedule::parse(&spec.schedule, tz)
}

async fn delete_job(state: &State, cj: &mut CronJob, job: &Job) -> bool {
    let api = state
        .ctx
        .client
        .api::<Job>(job.metadata.namespace.as_deref());
    let dp = DeleteParams {
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    match api.delete(job.metadata.name_str(), &dp).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            state.recorder.record(
                &*cj,
                WARNING,
                "FailedDelete",
                "",
                &format!("Deleted job: {e}"),
            );
            return false;
        }
    }
    delete_from_active_list(cj, job.metadata.uid_str());
    state.recorder.record(
        &*cj,
        NORMAL,
        "SuccessfulDelete",
        "",
        &format!("Deleted job {}", job.metadata.name_str()),
    );
    true
}

/// Deletes the oldest finished Jobs beyond the history limits.
async fn cleanup_finished_jobs(state: &State, cj: &mut CronJob, jobs: &[Arc<Job>]) -> bool {
    let spec = cj.spec.clone().unwrap_or_default();
    if spec.successful_jobs_history_limit.is_none() && spec.failed_jobs_history_limit.is_none() {
        return false;
    }
    let mut succeeded: Vec<Arc<Job>> = Vec::new();
    let mut failed: Vec<Arc<Job>> = Vec::new();
    for j in jobs {
        match finished_type(j).as_deref() {
            Some(job_status::COMPLETE) => succeeded.push(j.clone()),
            Some(job_status::FAILED) => failed.push(j.clone()),
            _ => {}
        }
    }
    let mut updated = false;
    for (mut list, limit) in [
        (succeeded, spec.successful_jobs_history_limit),
        (failed, spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let excess = list
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        if excess == 0 {
            continue;
        }
        // oldest start first; never-started last; then by name
        list.sort_by(|a, b| {
            let start = |j: &Job| {
                j.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(TimeExt::utc)
            };
            match (start(a), start(b)) {
                (Some(x), Some(y)) if x != y => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                _ => a.metadata.name_str().cmp(b.metadata.name_str()),
            }
        });
        for j in list.iter().take(excess) {
            if delete_job(state, cj, j).await {
                updated = true;
            }
        }
    }
    updated
}

/// One pass of `syncCronJob`: (requeue after, status changed, error).
async fn sync_cronjob(
    state: &State,
    cj: &mut CronJob,
    jobs: &[Arc<Job>],
) -> (Option<std::time::Duration>, bool, Option<ClientError>) {
    let now = state.ctx.options.clock.now();
    let ns = cj.metadata.namespace_str().to_string();
    let job_api: Api<Job> = state.ctx.client.api::<Job>(Some(&ns));
    let mut updated = false;

    let mut children = std::collections::HashSet::new();
    for j in jobs {
        let uid = j.metadata.uid_str().to_string();
        children.insert(uid.clone());
        let found = in_active_list(cj, &uid);
        let finished = finished_type(j);
        if !found && finished.is_none() {
            // perhaps our own status update is not in the cache yet
            match state
                .ctx
                .client
                .api::<CronJob>(Some(&ns))
                .get(cj.metadata.name_str())
                .await
            {
                Ok(fresh) if in_active_list(&fresh, &uid) => continue,
                Ok(_) => {}
                Err(e) => return (None, updated, Some(e)),
            }
            state.recorder.record(
                &*cj,
                WARNING,
                "UnexpectedJob",
                "",
                &format!(
                    "Saw a job that the controller did not create or forgot: {}",
                    j.metadata.name_str()
                ),
            );
        } else if let Some(kind) = finished {
            if found {
                delete_from_active_list(cj, &uid);
                state.recorder.record(
                    &*cj,
                    NORMAL,
                    "SawCompletedJob",
                    "",
                    &format!(
                        "Saw completed job: {}, condition: {kind}",
                        j.metadata.name_str()
                    ),
                );
                updated = true;
            }
            if kind == job_status::COMPLETE {
                let done = j.status.as_ref().and_then(|s| s.completion_time.clone());
                let s = cj.status.get_or_insert_with(Default::default);
                if s.last_successful_time.is_none() {
                    s.last_successful_time = done.clone();
                    updated = true;
                }
                if let Some(d) = done
                    && s.last_successful_time
                        .as_ref()
                        .is_none_or(|l| d.utc() > l.utc())
                {
                    s.last_successful_time = Some(d);
                    updated = true;
                }
            }
        }
    }
    // active Jobs that are gone
    for r in active(cj).to_vec() {
        let uid = r.uid.clone().unwrap_or_default();
        if children.contains(&uid) {
            continue;
        }
        let name = r.name.clone().unwrap_or_default();
        match job_api.get_opt(&name).await {
            Ok(None) => {
                state.recorder.record(
                    &*cj,
                    NORMAL,
                    "MissingJob",
                    "",
                    &format!("Active job went missing: {name}"),
                );
                delete_from_active_list(cj, &uid);
                updated = true;
            }
            Ok(Some(_)) => {}
            Err(e) => return (None, updated, Some(e)),
        }
    }
    if cj.metadata.deletion_timestamp.is_some() {
        return (None, updated, None);
    }
    let spec = cj.spec.clone().unwrap_or_default();
    if let Some(tz) = &spec.time_zone
        && tz.parse::<chrono_tz::Tz>().is_err()
    {
        state.recorder.record(
            &*cj,
            WARNING,
            "UnknownTimeZone",
            "",
            &format!("invalid timeZone: {tz:?}: unknown time zone {tz}"),
        );
        return (None, updated, None);
    }
    if spec.suspend == Some(true) {
        return (None, updated, None);
    }
    let sched = match schedule_of(state, cj, true) {
        Ok(s) => s,
        Err(e) => {
            state.recorder.record(
                &*cj,
                WARNING,
                "UnparseableSchedule",
                "",
                &format!("unparseable schedule: {:?} : {e}", spec.schedule),
            );
            return (None, updated, None);
        }
    };
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .map(TimeExt::utc)
        .unwrap_or(now);
    let last = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map(TimeExt::utc);
    let next_in = |cj: &CronJob| {
        let last = cj
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(TimeExt::utc);
        schedule::requeue_after(&sched, created, last, now)
    };
    let recent = match schedule::most_recent(
        &sched,
        created,
        last,
        spec.starting_deadline_seconds,
        now,
        true,
    ) {
        Ok(r) => r,
        Err(e) => {
            state.recorder.record(
                &*cj,
                WARNING,
                "InvalidSchedule",
                "",
                &format!("invalid schedule: {} : {e}", spec.schedule),
            );
            return (None, updated, None);
        }
    };
    let Some(scheduled) = recent.most_recent.filter(|t| *t <= now) else {
        return (next_in(cj), updated, None);
    };
    if recent.missed == Missed::Many {
        state.recorder.record(
            &*cj,
            WARNING,
            "TooManyMissedTimes",
            "",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
        );
    }
    if let Some(deadline) = spec.starting_deadline_seconds
        && scheduled + chrono::Duration::seconds(deadline) < now
    {
        state.recorder.record(
            &*cj,
            WARNING,
            "MissSchedule",
            "",
            &format!(
                "Missed scheduled time to start a job: {}",
                rfc1123z(scheduled)
            ),
        );
        return (next_in(cj), updated, None);
    }
    let name = job_name(cj.metadata.name_str(), scheduled);
    let already = active(cj)
        .iter()
        .any(|r| r.name.as_deref() == Some(name.as_str()))
        || last == Some(scheduled);
    if already {
        return (next_in(cj), updated, None);
    }
    let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
    if policy == "Forbid" && !active(cj).is_empty() {
        state.recorder.record(
            &*cj,
            NORMAL,
            "JobAlreadyActive",
            "",
            "Not starting job because prior execution is running and concurrency policy is Forbid",
        );
        return (next_in(cj), updated, None);
    }
    if policy == "Replace" {
        for r in active(cj).to_vec() {
            let jname = r.name.clone().unwrap_or_default();
            let job = match job_api.get(&jname).await {
                Ok(j) => j,
                Err(e) => {
                    state
                        .recorder
                        .record(&*cj, WARNING, "FailedGet", "", &format!("Get job: {e}"));
                    return (None, updated, Some(e));
                }
            };
            if !delete_job(state, cj, &job).await {
                return (
                    None,
                    updated,
                    Some(ClientError::Transport(format!(
                        "could not replace job {ns}/{jname}"
                    ))),
                );
            }
            updated = true;
        }
    }
    let request = job_from_template(cj, scheduled);
    let created_job = match job_api.create(&request, &wp()).await {
        Ok(j) => {
            state.recorder.record(
                &*cj,
                NORMAL,
                "SuccessfulCreate",
                "",
                &format!("Created job {}", j.metadata.name_str()),
            );
            j
        }
        Err(e) if e.is_already_exists() => {
            // created before but not recorded (or by someone else)
            let existing = match job_api.get(&name).await {
                Ok(j) => j,
                Err(e) => return (None, updated, Some(e)),
            };
            let ours = controller_of(&existing.metadata)
                .is_some_and(|r| Some(&r.uid) == cj.metadata.uid.as_ref());
            if !ours || in_active_list(cj, existing.metadata.uid_str()) {
                return (None, updated, None);
            }
            existing
        }
        Err(e) => {
            state.recorder.record(
                &*cj,
                WARNING,
                "FailedCreate",
                "",
                &format!("Error creating job: {e}"),
            );
            return (None, updated, Some(e));
        }
    };
    let s = cj.status.get_or_insert_with(Default::default);
    s.active
        .get_or_insert_with(Vec::new)
        .push(reference(&created_job));
    s.last_schedule_time = Some(schemas::time::from_utc(scheduled));
    (next_in(cj), true, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jobs_are_named_by_the_scheduled_minute_and_annotated() {
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "backup", "namespace": "ns", "uid": "u1"},
            "spec": {"schedule": "*/1 * * * *", "timeZone": "Europe/Paris", "jobTemplate": {
                "metadata": {"labels": {"app": "backup"}, "annotations": {"a": "b"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}}
        }))
        .expect("cronjob");
        let t: DateTime<Utc> = "2026-01-10T12:34:00Z".parse().expect("time");
        let j = job_from_template(&cj, t);
        assert_eq!(j.metadata.name.as_deref(), Some("backup-29467474"));
        assert_eq!(
            j.metadata
                .annotations_map()
                .get(SCHEDULED_TIMESTAMP)
                .map(String::as_str),
            Some("2026-01-10T13:34:00+01:00")
        );
        assert_eq!(
            j.metadata.annotations_map().get("a").map(String::as_str),
            Some("b")
        );
        assert_eq!(
            j.metadata.labels_map().get("app").map(String::as_str),
            Some("backup")
        );
        let owner = &j.metadata.owner_references.expect("owner")[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("CronJob", "u1"));
        assert_eq!(rfc1123z(t), "Sat, 10 Jan 2026 12:34:00 +0000");
    }
}
