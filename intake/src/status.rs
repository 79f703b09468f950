//! The GitSource's status after each step: revisions fetched and applied,
//! counts, inventory, the `Ready` and `Stalled` conditions, and the last
//! error with every problem's file, line, document and field path.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemas::Diagnostic;
use schemas::korral::{GitSourceStatus, SourceError, SyncError};

use crate::drift::text::short_revision;
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
}

impl Failure {
    fn reason(self) -> &'static str {
        match self {
            Failure::FetchFailed => "FetchFailed",
            Failure::ValidationFailed => "ValidationFailed",
            Failure::ApplyFailed => "ApplyFailed",
        }
    }
}

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
    let mut conditions = s.conditions.take().unwrap_or_default();
    let message = format!(
        "applied revision {}: {} applied, {} unchanged, {} pruned",
        short_revision(&report.revision),
        report.applied.len(),
        report.unchanged,
        report.pruned.len()
    );
    set_condition(
        &mut conditions,
        "Ready",
        true,
        "Synced",
        message,
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
    s.conditions = Some(conditions);
    s
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
    let stalled = failure == Failure::ValidationFailed;
    set_condition(
        &mut conditions,
        "Stalled",
        stalled,
        failure.reason(),
        if stalled {
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
    s.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::Class;

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
