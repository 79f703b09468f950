//! The TTL-after-finished controller, after kube-controller-manager's: a
//! finished Job (Complete or Failed) with `ttlSecondsAfterFinished` is
//! deleted that many seconds after it finished — rechecked against a fresh
//! read first, deleted with foreground propagation (as kube does, so its
//! pods go first) and a uid precondition. Jobs whose time has not come are
//! requeued for their expiry, never polled.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use schemas::MetaExt;
use schemas::TimeExt;

use crate::controllers::Context;
use crate::controllers::job::status;
use crate::runtime::{Action, Cache, ClientError, Controller, DeleteParams, ObjectRef};

struct State {
    ctx: Context,
    jobs: Cache<Job>,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let informer = ctx.informers.get::<Job>();
    let controller = Controller::new("ttl-after-finished", &informer).workers(5);
    let state = Arc::new(State {
        ctx: ctx.clone(),
        jobs: informer.cache(),
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

/// When a finished Job with a TTL expires (`None`: not finished, no TTL,
/// being deleted, or no finish time recorded).
pub fn expires_at(job: &Job) -> Option<DateTime<Utc>> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let finished = status::finished(job)?.last_transition_time.as_ref()?.utc();
    Some(finished + chrono::Duration::seconds(i64::from(ttl)))
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(job) = state.jobs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let clock = &state.ctx.options.clock;
    let Some(expiry) = expires_at(&job) else {
        return Ok(Action::AwaitChange);
    };
    if expiry > clock.now() {
        return Ok(Action::Requeue(clock.until(expiry)));
    }
    // the cache may be stale (a TTL just changed): decide on a fresh read
    let api = state.ctx.client.api::<Job>(key.namespace.as_deref());
    let Some(fresh) = api.get_opt(&key.name).await? else {
        return Ok(Action::AwaitChange);
    };
    let Some(expiry) = expires_at(&fresh) else {
        return Ok(Action::AwaitChange);
    };
    if expiry > clock.now() {
        return Ok(Action::Requeue(clock.until(expiry)));
    }
    tracing::info!(job = %key, "deleting finished Job: its ttlSecondsAfterFinished expired");
    let dp = DeleteParams {
        propagation_policy: Some("Foreground".into()),
        precondition_uid: fresh.metadata.uid.clone(),
        ..Default::default()
    };
    match api.delete(fresh.metadata.name_str(), &dp).await {
        Ok(()) => Ok(Action::AwaitChange),
        Err(e) if e.is_not_found() || e.is_conflict() => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expiry_counts_from_the_finish() {
        let job: Job = serde_json::from_value(json!({
            "spec": {"ttlSecondsAfterFinished": 30, "template": {}},
            "status": {"conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"}]}
        }))
        .expect("job");
        assert_eq!(
            expires_at(&job),
            Some("2026-01-01T00:00:35Z".parse().expect("time"))
        );
        let running: Job = serde_json::from_value(
            json!({"spec": {"ttlSecondsAfterFinished": 30, "template": {}}}),
        )
        .expect("job");
        assert_eq!(expires_at(&running), None);
        let no_ttl: Job = serde_json::from_value(json!({"spec": {"template": {}},
            "status": {"conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"}]}}))
        .expect("job");
        assert_eq!(expires_at(&no_ttl), None);
    }
}
