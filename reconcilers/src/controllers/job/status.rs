//! Job conditions as kube's job controller writes them: the types and
//! reasons, `ensureJobConditionStatus` (append, or update only when status,
//! reason or message change), and whether a Job has finished.

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, JobCondition};

/// `Complete`.
pub const COMPLETE: &str = "Complete";
/// `Failed`.
pub const FAILED: &str = "Failed";
/// `FailureTarget`: the Job will fail once its pods are gone.
pub const FAILURE_TARGET: &str = "FailureTarget";
/// `SuccessCriteriaMet`: the Job will complete once its pods are gone.
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
/// `Suspended`.
pub const SUSPENDED: &str = "Suspended";

/// Reason and message when the backoff limit is passed.
pub const BACKOFF_LIMIT_EXCEEDED: (&str, &str) = (
    "BackoffLimitExceeded",
    "Job has reached the specified backoff limit",
);
/// Reason and message when activeDeadlineSeconds passed.
pub const DEADLINE_EXCEEDED: (&str, &str) = (
    "DeadlineExceeded",
    "Job was active longer than specified deadline",
);
/// Reason and message when more indexes failed than maxFailedIndexes allows.
pub const MAX_FAILED_INDEXES_EXCEEDED: (&str, &str) = (
    "MaxFailedIndexesExceeded",
    "Job has exceeded the specified maximal number of failed indexes",
);
/// Reason and message when every index finished and some failed.
pub const FAILED_INDEXES: (&str, &str) = ("FailedIndexes", "Job has failed indexes");
/// Reason and message when the completions were reached.
pub const COMPLETIONS_REACHED: (&str, &str) = (
    "CompletionsReached",
    "Reached expected number of succeeded pods",
);
/// Reason of conditions set by a pod failure policy rule.
pub const POD_FAILURE_POLICY: &str = "PodFailurePolicy";
/// Reason of conditions set by a success policy rule.
pub const SUCCESS_POLICY: &str = "SuccessPolicy";

/// A new condition, both times `now`.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> JobCondition {
    let t = schemas::time::from_utc(now);
    JobCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()).filter(|r| !r.is_empty()),
        message: Some(message.to_string()).filter(|m| !m.is_empty()),
        last_probe_time: Some(t.clone()),
        last_transition_time: Some(t),
    }
}

/// The condition of this type, if any.
pub fn find<'a>(list: &'a [JobCondition], type_: &str) -> Option<&'a JobCondition> {
    list.iter().find(|c| c.type_ == type_)
}

/// The condition of this type if its status is True.
pub fn find_true<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .and_then(|c| find(c, type_))
        .filter(|c| c.status == "True")
}

/// Sets a condition: updates one of the type when its status, reason or
/// message differ, appends otherwise (but never a new False one). Returns
/// whether anything changed.
pub fn ensure(
    list: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> bool {
    if let Some(c) = list.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status
            || c.reason.as_deref().unwrap_or("") != reason
            || c.message.as_deref().unwrap_or("") != message
        {
            *c = condition(type_, status, reason, message, now);
            return true;
        }
        return false;
    }
    if status != "False" {
        list.push(condition(type_, status, reason, message, now));
        return true;
    }
    false
}

/// `Complete` or `Failed`, if the Job has finished.
pub fn finished(job: &Job) -> Option<&JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == COMPLETE || c.type_ == FAILED) && c.status == "True")
}

/// Whether the Job has finished (Complete or Failed).
pub fn is_finished(job: &Job) -> bool {
    finished(job).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_appends_updates_and_skips_new_false() {
        let now = Utc::now();
        let mut list = Vec::new();
        assert!(!ensure(
            &mut list,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert!(list.is_empty());
        assert!(ensure(
            &mut list,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(!ensure(
            &mut list,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(ensure(
            &mut list,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, "False");
        assert_eq!(list[0].reason.as_deref(), Some("JobResumed"));
    }

    #[test]
    fn finished_means_complete_or_failed_true() {
        let mut job = Job::default();
        assert!(!is_finished(&job));
        job.status = Some(Default::default());
        if let Some(s) = job.status.as_mut() {
            s.conditions = Some(vec![condition(
                FAILURE_TARGET,
                "True",
                "x",
                "y",
                Utc::now(),
            )]);
        }
        assert!(!is_finished(&job));
        if let Some(s) = job.status.as_mut() {
            s.conditions.get_or_insert_with(Vec::new).push(condition(
                FAILED,
                "True",
                "x",
                "y",
                Utc::now(),
            ));
        }
        assert!(is_finished(&job));
    }
}
