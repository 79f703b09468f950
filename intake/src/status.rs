//! The GitSource's status after each step: revisions fetched and applied,
//! counts, inventory, the `Ready`, `Healthy` and `Stalled` conditions, and
//! the last error with every problem's file, line, document and field path.
//!
//! A sync that applied everything leaves the source `Ready=Unknown`
//! (reason `Progressing`, the unhealthy objects named) until what it
//! applied is healthy (`Ready=True`, `Healthy=True`), or `spec.timeout`
//! passes (or an object fails) first: `Ready=False`, `Stalled=True`,
//! `Healthy=False`, reason `HealthCheckFailed`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemas::Diagnostic;
use schemas::korral::{GitSourceStatus, SourceError, SyncError};

use crate::drift::text::short_revision;
use crate::health::{Unhealthy, summary};
use crate::sync::SyncReport;

/// At most this many errors are kept in the status (the rest are counted).
pub const MAX_ERRORS: usize = 100;

/// Why a sync did not complete, as condition reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The source could not be read: retried on the next interval.
    FetchFailed,
    /// Some manifest is invalid (or refused in the dry run): nothing applied;
    /// stalled until the source changes.
    ValidationFailed,
    /// Some writes failed: retried on the next interval.
    ApplyFailed,
    /// A sync wave or hook was not healthy in time (or failed): retried
    /// on the next interval.
    HealthCheckFailed,
}

impl Failure {
    fn reason(self) -> &'static str {
        match self {
            Failure::FetchFailed => "FetchFailed",
            Failure::ValidationFailed => "ValidationFailed",
            Failure::ApplyFailed => "ApplyFailed",
            Failure::HealthCheckFailed => HEALTH_CHECK_FAILED,
        }
    }
}

/// The reason of `Ready=Unknown` while applied objects become healthy.
pub const PROGRESSING: &str = "Progressing";
/// The reason of `Ready=False` when they did not in time.
pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
/// The condition saying whether what a source applied is healthy.
pub const HEALTHY: &str = "Healthy";

/// Sets a condition, keeping its transition time when its status is unchanged.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" };
    set_condition_to(conditions, type_, status, reason, message, generation);
}

/// Sets a condition to `status` (`True`, `False` or `Unknown`), keeping its
/// transition time when its status is unchanged.
pub fn set_condition_to(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
) {
    let old = conditions.iter().position(|c| c.type_ == type_);
    let transition = match old.map(|i| &conditions[i]) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => schemas::time::now(),
    };
    let c = Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        observed_generation: generation,
        last_transition_time: transition,
        reason: reason.to_string(),
        message,
    };
    match old {
        Some(i) => conditions[i] = c,
        None => conditions.push(c),
    }
}

/// The status after fetching `revision`.
pub fn fetched(old: &GitSourceStatus, revision: &str) -> GitSourceStatus {
    GitSourceStatus {
        last_fetched_revision: Some(revision.to_string()),
        ..old.clone()
    }
}

/// The status after a successful sync.
pub fn synced(
    old: &GitSourceStatus,
    report: &SyncReport,
    generation: Option<i64>,
    unhealthy: &[Unhealthy],
) -> GitSourceStatus {
    let mut s = old.clone();
    s.observed_generation = generation;
    s.last_fetched_revision = Some(report.revision.clone());
    s.last_applied_revision = Some(report.revision.clone());
    s.last_sync_time = Some(schemas::time::now());
    s.applied = Some(report.applied.len() as i64);
    s.unchanged = Some(report.unchanged as i64);
    s.pruned = Some(report.pruned.len() as i64);
    s.inventory = Some(report.inventory.clone());
    s.last_error = None;
    health(&s, unhealthy, false, generation)
}

/// What the last sync applied, in one line.
fn applied_message(s: &GitSourceStatus) -> String {
    format!(
        "applied revision {}: {} applied, {} unchanged, {} pruned",
        short_revision(s.last_applied_revision.as_deref().unwrap_or("")),
        s.applied.unwrap_or(0),
        s.unchanged.unwrap_or(0),
        s.pruned.unwrap_or(0)
    )
}

/// The status after a health check of what the last sync applied:
/// healthy (`Ready`), still `Progressing`, or — when `gave_up` (the
/// timeout passed, or an object failed) — `HealthCheckFailed`.
pub fn health(
    old: &GitSourceStatus,
    unhealthy: &[Unhealthy],
    gave_up: bool,
    generation: Option<i64>,
) -> GitSourceStatus {
    let mut s = old.clone();
    let applied = applied_message(&s);
    let mut conditions = s.conditions.take().unwrap_or_default();
    if unhealthy.is_empty() {
        set_condition(
            &mut conditions,
            "Ready",
            true,
            "Synced",
            applied,
            generation,
        );
        set_condition(
            &mut conditions,
            HEALTHY,
            true,
            "Healthy",
            "every applied object is healthy".into(),
            generation,
        );
        set_condition(
            &mut conditions,
            "Stalled",
            false,
            "Synced",
            "the last revision was applied".into(),
            generation,
        );
    } else if gave_up {
        let message = format!("{applied}; not healthy: {}", summary(unhealthy));
        set_condition(
            &mut conditions,
            "Ready",
            false,
            HEALTH_CHECK_FAILED,
            message.clone(),
            generation,
        );
        set_condition(
            &mut conditions,
            HEALTHY,
            false,
            HEALTH_CHECK_FAILED,
            summary(unhealthy),
            generation,
        );
        set_condition(
            &mut conditions,
            "Stalled",
            true,
            HEALTH_CHECK_FAILED,
            format!("{message}; checked again on changes and on the interval"),
            generation,
        );
    } else {
        let message = format!("{applied}; waiting for: {}", summary(unhealthy));
        set_condition_to(
            &mut conditions,
            "Ready",
            "Unknown",
            PROGRESSING,
            message,
            generation,
        );
        set_condition_to(
            &mut conditions,
            HEALTHY,
            "Unknown",
            PROGRESSING,
            summary(unhealthy),
            generation,
        );
        set_condition(
            &mut conditions,
            "Stalled",
            false,
            PROGRESSING,
            "waiting for the applied objects to become healthy".into(),
            generation,
        );
    }
    s.conditions = Some(conditions);
    s
}

/// The condition of `type_`, if set.
pub fn condition<'a>(s: &'a GitSourceStatus, type_: &str) -> Option<&'a Condition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// Whether the health of what the last sync applied is still being
/// waited for (`Ready=Unknown`, `Progressing`).
pub fn progressing(s: &GitSourceStatus) -> bool {
    ready(s).is_some_and(|c| c.status == "Unknown" && c.reason == PROGRESSING)
}

/// Whether the last sync applied everything and its objects' health is
/// not (yet, or any longer) good: checked again until it is.
pub fn health_pending(s: &GitSourceStatus) -> bool {
    s.last_error.is_none()
        && s.last_applied_revision.is_some()
        && condition(s, HEALTHY).is_some_and(|c| c.status != "True")
}

/// `Healthy`, `Progressing`, `Degraded` (the `Healthy` condition), or `-`
/// before the first sync.
pub fn health_column(s: &GitSourceStatus) -> &'static str {
    match condition(s, HEALTHY).map(|c| c.status.as_str()) {
        Some("True") => "Healthy",
        Some("False") => "Degraded",
        Some(_) => "Progressing",
        None => "-",
    }
}

/// The status after a failed sync of `revision`; the cluster stays at the
/// last applied revision.
pub fn failed(
    old: &GitSourceStatus,
    revision: Option<&str>,
    failure: Failure,
    summary: &str,
    errors: &[Diagnostic],
    generation: Option<i64>,
) -> GitSourceStatus {
    let mut s = old.clone();
    s.observed_generation = generation;
    if let Some(r) = revision {
        s.last_fetched_revision = Some(r.to_string());
    }
    s.last_sync_time = Some(schemas::time::now());
    let mut list: Vec<SourceError> = errors
        .iter()
        .take(MAX_ERRORS)
        .map(SourceError::from)
        .collect();
    if errors.len() > MAX_ERRORS {
        list.push(SourceError {
            message: format!("... and {} more errors", errors.len() - MAX_ERRORS),
            ..Default::default()
        });
    }
    if list.is_empty() {
        list.push(SourceError {
            message: summary.to_string(),
            ..Default::default()
        });
    }
    s.last_error = Some(SyncError {
        revision: revision.map(str::to_string),
        errors: Some(list),
    });
    let stays = match &old.last_applied_revision {
        Some(r) => format!("the cluster stays at revision {}", short_revision(r)),
        None => "nothing has been applied yet".to_string(),
    };
    let first = errors
        .first()
        .map(|d| format!("; first: {d}"))
        .unwrap_or_default();
    let message = match revision {
        Some(r) => format!("revision {}: {summary}; {stays}{first}", short_revision(r)),
        None => format!("{summary}; {stays}"),
    };
    let mut conditions = s.conditions.take().unwrap_or_default();
    set_condition(
        &mut conditions,
        "Ready",
        false,
        failure.reason(),
        message.clone(),
        generation,
    );
    if failure == Failure::HealthCheckFailed {
        set_condition(
            &mut conditions,
            HEALTHY,
            false,
            failure.reason(),
            summary.to_string(),
            generation,
        );
    }
    let stalled = matches!(
        failure,
        Failure::ValidationFailed | Failure::HealthCheckFailed
    );
    set_condition(
        &mut conditions,
        "Stalled",
        stalled,
        failure.reason(),
        if failure == Failure::HealthCheckFailed {
            format!("{message}; retried on the next interval")
        } else if stalled {
            format!("{message}; waiting for a new revision")
        } else {
            "retrying on the next interval".into()
        },
        generation,
    );
    s.conditions = Some(conditions);
    s
}

/// The `Ready` condition of a status, if set.
pub fn ready(s: &GitSourceStatus) -> Option<&Condition> {
    condition(s, "Ready")
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::Class;

    #[test]
    fn health_is_progressing_then_failed_or_healthy() {
        use crate::health::{Health, Status};
        let report = SyncReport {
            revision: "aaaaaaaaaaaaaaaa".into(),
            applied: Vec::new(),
            unchanged: 3,
            ..Default::default()
        };
        let web = Unhealthy {
            object: "Deployment/web".into(),
            health: Health {
                status: Status::InProgress,
                message: "0/3 available".into(),
            },
            why: Some("ImagePullBackOff".into()),
        };
        let waiting = synced(
            &GitSourceStatus::default(),
            &report,
            Some(1),
            std::slice::from_ref(&web),
        );
        let r = ready(&waiting).expect("ready");
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("Unknown", PROGRESSING)
        );
        assert!(
            r.message
                .ends_with("waiting for: Deployment/web: 0/3 available: ImagePullBackOff"),
            "{}",
            r.message
        );
        assert!(progressing(&waiting) && health_pending(&waiting));
        assert_eq!(health_column(&waiting), "Progressing");

        let failed = health(&waiting, &[web], true, Some(1));
        let r = ready(&failed).expect("ready");
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", HEALTH_CHECK_FAILED)
        );
        assert_eq!(
            condition(&failed, "Stalled").map(|c| c.status.as_str()),
            Some("True")
        );
        assert!(!progressing(&failed) && health_pending(&failed));
        assert_eq!(health_column(&failed), "Degraded");

        let healthy = health(&failed, &[], false, Some(1));
        assert_eq!(ready(&healthy).map(|c| c.status.as_str()), Some("True"));
        assert!(!health_pending(&healthy));
        assert_eq!(health_column(&healthy), "Healthy");
        assert_eq!(health_column(&GitSourceStatus::default()), "-");
    }

    #[test]
    fn failures_keep_the_applied_revision_and_locate_errors() {
        let ok = synced(
            &GitSourceStatus::default(),
            &SyncReport {
                revision: "aaaaaaaaaaaaaaaa".into(),
                unchanged: 2,
                ..Default::default()
            },
            Some(1),
            &[],
        );
        assert_eq!(ready(&ok).map(|c| c.status.as_str()), Some("True"));
        let d = Diagnostic {
            file: "web.yaml".into(),
            line: 7,
            column: 3,
            document: Some(0),
            object: Some("Deployment default/web".into()),
            path: Some("spec.replicas".into()),
            class: Class::Invalid,
            message: "Invalid value: -1".into(),
        };
        let bad = failed(
            &ok,
            Some("bbbbbbbbbbbbbbbb"),
            Failure::ValidationFailed,
            "1 invalid manifest; nothing applied",
            &[d],
            Some(2),
        );
        assert_eq!(
            bad.last_applied_revision.as_deref(),
            Some("aaaaaaaaaaaaaaaa")
        );
        assert_eq!(
            bad.last_fetched_revision.as_deref(),
            Some("bbbbbbbbbbbbbbbb")
        );
        let e = &bad
            .last_error
            .as_ref()
            .and_then(|e| e.errors.clone())
            .expect("errors")[0];
        assert_eq!(
            (e.file.as_deref(), e.line, e.path.as_deref()),
            (Some("web.yaml"), Some(7), Some("spec.replicas"))
        );
        let r = ready(&bad).expect("ready");
        assert_eq!(r.status, "False");
        assert!(
            r.message.contains("stays at revision aaaaaaaaaaaa")
                && r.message.contains("web.yaml:7")
        );
        let stalled = bad
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Stalled")
            .expect("stalled");
        assert_eq!(stalled.status, "True");
    }
}
