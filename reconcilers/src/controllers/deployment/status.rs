//! A Deployment's status: replica counts from its ReplicaSets and the
//! Available/Progressing conditions, with Kubernetes' reasons and messages
//! (`kubectl rollout status` reads them).

use std::sync::Arc;

use chrono::Utc;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use schemas::TimeExt;

use crate::controllers::deployment::util::{desired, max_unavailable};

/// Progressing reasons.
pub mod reason {
    /// A new ReplicaSet was created.
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    /// The new ReplicaSet was found.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// The rollout made progress.
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    /// The rollout is complete.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// No progress within progressDeadlineSeconds.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// Paused.
    pub const PAUSED: &str = "DeploymentPaused";
    /// Resumed.
    pub const RESUMED: &str = "DeploymentResumed";
}

fn sum(all: &[Arc<ReplicaSet>], f: impl Fn(&ReplicaSet) -> Option<i32>) -> i32 {
    all.iter().map(|r| f(r).unwrap_or(0)).sum()
}

/// Finds a condition.
pub fn condition<'a>(status: &'a DeploymentStatus, ty: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.as_ref()?.iter().find(|c| c.type_ == ty)
}

/// Sets a condition, keeping the transition time when the status is unchanged.
pub fn set_condition(
    status: &mut DeploymentStatus,
    ty: &str,
    value: &str,
    reason: &str,
    message: String,
) {
    let now = schemas::time::now();
    let conds = status.conditions.get_or_insert_with(Vec::new);
    let prev = conds.iter().find(|c| c.type_ == ty).cloned();
    // a repeat of the same reason keeps its timestamps (no write storm)
    if let Some(p) = &prev
        && p.status == value
        && p.reason.as_deref() == Some(reason)
        && p.message.as_deref() == Some(message.as_str())
    {
        return;
    }
    let transition = match &prev {
        Some(p) if p.status == value => p.last_transition_time.clone().or(Some(now.clone())),
        _ => Some(now.clone()),
    };
    conds.retain(|c| c.type_ != ty);
    conds.push(DeploymentCondition {
        type_: ty.to_string(),
        status: value.to_string(),
        last_update_time: Some(now),
        last_transition_time: transition,
        reason: Some(reason.to_string()),
        message: Some(message),
    });
    conds.sort_by_key(|c| if c.type_ == "Available" { 0 } else { 1 });
}

/// Counts and the Available condition.
pub fn calculate(
    d: &Deployment,
    all: &[Arc<ReplicaSet>],
    new_rs: Option<&ReplicaSet>,
) -> DeploymentStatus {
    let available = sum(all, |r| {
        r.status.as_ref().and_then(|s| s.available_replicas)
    });
    let total = sum(all, |r| r.status.as_ref().map(|s| s.replicas));
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(
            new_rs
                .and_then(|r| r.status.as_ref())
                .map_or(0, |s| s.replicas),
        ),
        ready_replicas: Some(sum(all, |r| {
            r.status.as_ref().and_then(|s| s.ready_replicas)
        })),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired(d) - available).max(0)),
        terminating_replicas: None,
        conditions: d.status.as_ref().and_then(|s| s.conditions.clone()),
        collision_count: d.status.as_ref().and_then(|s| s.collision_count),
    };
    if available >= desired(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
        );
    } else {
        set_condition(
            &mut status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        );
    }
    // zeroes are omitted as Kubernetes omits them
    for f in [
        &mut status.replicas,
        &mut status.updated_replicas,
        &mut status.ready_replicas,
        &mut status.available_replicas,
        &mut status.unavailable_replicas,
    ] {
        if *f == Some(0) {
            *f = None;
        }
    }
    status
}

/// Whether the rollout is complete.
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let n = desired(d);
    s.updated_replicas.unwrap_or(0) == n
        && s.replicas.unwrap_or(0) == n
        && s.available_replicas.unwrap_or(0) == n
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether the new status shows progress over the old one.
pub fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_total = old.replicas.unwrap_or(0);
    let new_total = new.replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_total - new.updated_replicas.unwrap_or(0)
            < old_total - old.updated_replicas.unwrap_or(0)
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

/// Seconds until the progress deadline passes (None when there is none or it passed).
pub fn seconds_to_deadline(d: &Deployment, s: &DeploymentStatus) -> Option<i64> {
    let deadline = i64::from(d.spec.as_ref()?.progress_deadline_seconds?);
    let c = condition(s, "Progressing")?;
    if c.reason.as_deref() == Some(reason::NEW_RS_AVAILABLE)
        || c.reason.as_deref() == Some(reason::TIMED_OUT)
    {
        return None;
    }
    let last = c.last_update_time.as_ref()?.utc();
    let left = deadline - (Utc::now() - last).num_seconds();
    Some(left)
}

/// Whether the rollout missed its progress deadline.
pub fn timed_out(d: &Deployment, s: &DeploymentStatus) -> bool {
    if condition(s, "Progressing").is_some_and(|c| c.reason.as_deref() == Some(reason::TIMED_OUT)) {
        return true;
    }
    seconds_to_deadline(d, s).is_some_and(|left| left <= 0)
}
