//! The Job rules that judge pods, as kube's job controller applies them:
//! `podFailurePolicy` (FailJob / FailIndex / Ignore / Count on exit codes and
//! pod conditions), `successPolicy`, when a pod counts as failed, when it
//! finished, and the exponential back-off before failed pods are replaced.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use schemas::MetaExt;
use schemas::TimeExt;

use super::indexes::Intervals;

/// What a pod failure policy decided for a failed pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyMatch {
    /// The Job failure message (a `FailJob` rule matched).
    pub fail_job: Option<String>,
    /// Whether the failure counts toward the backoff limits (not for `Ignore`).
    pub count: bool,
    /// The action of the rule that matched, if any.
    pub action: Option<String>,
}

/// The pod's phase ("" when unknown).
pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether only failed pods are replaced (not terminating ones).
pub fn only_replace_failed(job: &Job) -> bool {
    let spec = job.spec.as_ref();
    spec.and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
        || spec.is_some_and(|s| s.pod_failure_policy.is_some())
}

/// Whether the pod counts as failed: phase Failed, or (unless only failed
/// pods are replaced) deleted before it succeeded.
pub fn is_pod_failed(p: &Pod, job: &Job) -> bool {
    if phase(p) == "Failed" {
        return true;
    }
    if only_replace_failed(job) {
        return false;
    }
    p.metadata.deletion_timestamp.is_some() && phase(p) != "Succeeded"
}

fn exit_code_matches(code: i32, req: &PodFailurePolicyOnExitCodesRequirement) -> bool {
    match req.operator.as_str() {
        "In" => req.values.contains(&code),
        "NotIn" => !req.values.contains(&code),
        _ => false,
    }
}

fn matching_container<'a>(
    statuses: &'a [ContainerStatus],
    req: &PodFailurePolicyOnExitCodesRequirement,
) -> Option<(&'a ContainerStatus, i32)> {
    statuses.iter().find_map(|cs| {
        let t = cs.state.as_ref()?.terminated.as_ref()?;
        let name_ok = req.container_name.as_ref().is_none_or(|n| *n == cs.name);
        (name_ok && t.exit_code != 0 && exit_code_matches(t.exit_code, req))
            .then_some((cs, t.exit_code))
    })
}

/// Matches a failed pod against the policy's rules, first match wins.
pub fn match_pod_failure_policy(policy: Option<&PodFailurePolicy>, p: &Pod) -> PolicyMatch {
    let none = PolicyMatch {
        fail_job: None,
        count: true,
        action: None,
    };
    let Some(policy) = policy else {
        return none;
    };
    let status = p.status.clone().unwrap_or_default();
    let ns = p.metadata.namespace_str();
    let name = p.metadata.name_str();
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched: Option<String> = if let Some(req) = &rule.on_exit_codes {
            let containers = status.container_statuses.as_deref().unwrap_or_default();
            let inits = status
                .init_container_statuses
                .as_deref()
                .unwrap_or_default();
            matching_container(containers, req)
                .or_else(|| matching_container(inits, req))
                .map(|(cs, code)| {
                    format!(
                        "Container {} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {index}",
                        cs.name, rule.action
                    )
                })
        } else if let Some(patterns) = &rule.on_pod_conditions {
            status.conditions.iter().flatten().find_map(|c| {
                patterns
                    .iter()
                    .any(|pt| pt.type_ == c.type_ && pt.status == c.status)
                    .then(|| {
                        format!(
                            "Pod {ns}/{name} has condition {} matching {} rule at index {index}",
                            c.type_, rule.action
                        )
                    })
            })
        } else {
            None
        };
        let Some(message) = matched else {
            continue;
        };
        let action = Some(rule.action.clone());
        return match rule.action.as_str() {
            "Ignore" => PolicyMatch {
                fail_job: None,
                count: false,
                action,
            },
            "FailJob" => PolicyMatch {
                fail_job: Some(message),
                count: true,
                action,
            },
            // Count and FailIndex both count the failure
            _ => PolicyMatch {
                fail_job: None,
                count: true,
                action,
            },
        };
    }
    none
}

/// The message of a `FailJob` rule matched by any failed pod.
pub fn fail_job_message(job: &Job, pods: &[std::sync::Arc<Pod>]) -> Option<String> {
    let policy = job.spec.as_ref()?.pod_failure_policy.as_ref()?;
    pods.iter()
        .filter(|p| is_pod_failed(p, job))
        .find_map(|p| match_pod_failure_policy(Some(policy), p).fail_job)
}

/// Whether the success policy is met by `succeeded` indexes, and its message.
pub fn match_success_policy(job: &Job, completions: i64, succeeded: &Intervals) -> Option<String> {
    let policy = job.spec.as_ref()?.success_policy.as_ref()?;
    if succeeded.is_empty() {
        return None;
    }
    for (index, rule) in policy.rules.iter().enumerate() {
        let met = if let Some(text) = &rule.succeeded_indexes {
            let required = Intervals::parse(text, completions);
            if required.is_empty() {
                continue;
            }
            let contains: i64 = required
                .0
                .iter()
                .map(|r| {
                    succeeded
                        .0
                        .iter()
                        .map(|s| (r.last.min(s.last) - r.first.max(s.first) + 1).max(0))
                        .sum::<i64>()
                })
                .sum();
            contains == required.total()
                || rule
                    .succeeded_count
                    .is_some_and(|c| contains >= i64::from(c))
        } else {
            rule.succeeded_count
                .is_some_and(|c| succeeded.total() >= i64::from(c))
        };
        if met {
            return Some(format!("Matched rules at index {index}"));
        }
    }
    None
}

/// When the pod finished: its containers' latest finish, else when Ready
/// turned False, else its deletion time less the grace period, else its creation.
pub fn finished_time(p: &Pod) -> DateTime<Utc> {
    let status = p.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    if !containers.is_empty() {
        let mut latest: Option<DateTime<Utc>> = None;
        let mut all = true;
        for cs in containers {
            match cs
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.finished_at.as_ref())
            {
                Some(t) => latest = Some(latest.map_or(t.utc(), |l| l.max(t.utc()))),
                None => all = false,
            }
        }
        if all && let Some(t) = latest {
            return t;
        }
    }
    if let Some(t) = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "False"))
        .and_then(|c| c.last_transition_time.as_ref())
    {
        return t.utc();
    }
    if let Some(d) = &p.metadata.deletion_timestamp {
        let grace = p.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return d.utc() - chrono::Duration::seconds(grace);
    }
    p.metadata
        .creation_timestamp
        .as_ref()
        .map(TimeExt::utc)
        .unwrap_or_default()
}

/// Consecutive failures since the last success, for the back-off of pod
/// replacements (kube's `backoffRecord`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    /// Failures since the last success.
    pub failures_after_last_success: i32,
    /// When the last of them happened.
    pub last_failure_time: Option<DateTime<Utc>>,
}

impl BackoffRecord {
    /// The record after these newly finished pods.
    pub fn after(&self, new_succeeded: &[&Pod], new_failed: &[&Pod]) -> BackoffRecord {
        let mut succeeded: Vec<DateTime<Utc>> =
            new_succeeded.iter().map(|p| finished_time(p)).collect();
        let mut failed: Vec<DateTime<Utc>> = new_failed.iter().map(|p| finished_time(p)).collect();
        succeeded.sort();
        failed.sort();
        let mut out = self.clone();
        match succeeded.last() {
            None => {
                if let Some(last) = failed.last() {
                    out.failures_after_last_success +=
                        i32::try_from(failed.len()).unwrap_or(i32::MAX);
                    out.last_failure_time = Some(*last);
                }
            }
            Some(last_success) => {
                out.failures_after_last_success = 0;
                out.last_failure_time = None;
                for f in failed.iter().rev() {
                    if f <= last_success {
                        break;
                    }
                    if out.last_failure_time.is_none() {
                        out.last_failure_time = Some(*f);
                    }
                    out.failures_after_last_success += 1;
                }
            }
        }
        out
    }

    /// How long until a replacement may be created.
    pub fn remaining(&self, now: DateTime<Utc>, base: Duration, max: Duration) -> Duration {
        remaining_for(
            now,
            base,
            max,
            self.failures_after_last_success,
            self.last_failure_time,
        )
    }
}

/// The back-off left after `failures` failures, the last at `last`: `base`
/// doubled per failure after the first, at most `max`, less the time since.
pub fn remaining_for(
    now: DateTime<Utc>,
    base: Duration,
    max: Duration,
    failures: i32,
    last: Option<DateTime<Utc>>,
) -> Duration {
    let Some(last) = last else {
        return Duration::ZERO;
    };
    if failures <= 0 {
        return Duration::ZERO;
    }
    let mut delay = base;
    for _ in 1..failures {
        delay = delay.saturating_mul(2);
        if delay >= max {
            delay = max;
            break;
        }
    }
    let elapsed = (now - last).to_std().unwrap_or(Duration::ZERO);
    delay.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn failed_with(code: i32) -> Pod {
        pod(json!({"metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "finishedAt": "2026-01-01T00:00:10Z"}}}]}}))
    }

    fn policy(v: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(v).expect("policy")
    }

    #[test]
    fn exit_code_rules_decide_in_order() {
        let p = policy(json!({"rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1, 2]}},
            {"action": "Count", "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [0]}}
        ]}));
        let m = match_pod_failure_policy(Some(&p), &failed_with(42));
        assert_eq!(
            m.fail_job.as_deref(),
            Some(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 0"
            )
        );
        let m = match_pod_failure_policy(Some(&p), &failed_with(2));
        assert!(!m.count);
        assert_eq!(m.action.as_deref(), Some("Ignore"));
        let m = match_pod_failure_policy(Some(&p), &failed_with(7));
        assert!(m.count && m.fail_job.is_none());
        assert_eq!(m.action.as_deref(), Some("Count"));
    }

    #[test]
    fn condition_rules_match_type_and_status() {
        let p = policy(json!({"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]}));
        let disrupted = pod(json!({"metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True"}]}}));
        assert!(!match_pod_failure_policy(Some(&p), &disrupted).count);
        assert!(match_pod_failure_policy(Some(&p), &failed_with(1)).count);
        assert!(match_pod_failure_policy(None, &failed_with(1)).count);
    }

    #[test]
    fn success_policy_rules() {
        let job: Job =
            serde_json::from_value(json!({"spec": {"template": {}, "successPolicy": {"rules": [
                {"succeededIndexes": "0-2", "succeededCount": 2},
                {"succeededCount": 4}
            ]}}}))
            .expect("job");
        let s = Intervals::parse("0,5", 10);
        assert_eq!(match_success_policy(&job, 10, &s), None);
        let s = Intervals::parse("0,2", 10);
        assert_eq!(
            match_success_policy(&job, 10, &s).as_deref(),
            Some("Matched rules at index 0")
        );
        let s = Intervals::parse("5-8", 10);
        assert_eq!(
            match_success_policy(&job, 10, &s).as_deref(),
            Some("Matched rules at index 1")
        );
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_on_success() {
        let t0: DateTime<Utc> = "2026-01-01T00:00:10Z".parse().expect("time");
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(600);
        let r = BackoffRecord::default().after(&[], &[&failed_with(1)]);
        assert_eq!(r.failures_after_last_success, 1);
        assert_eq!(r.remaining(t0, base, max), base);
        assert_eq!(
            r.remaining(t0 + chrono::Duration::seconds(4), base, max),
            Duration::from_secs(6)
        );
        let r3 = BackoffRecord {
            failures_after_last_success: 3,
            last_failure_time: Some(t0),
        };
        assert_eq!(r3.remaining(t0, base, max), Duration::from_secs(40));
        let r9 = BackoffRecord {
            failures_after_last_success: 9,
            last_failure_time: Some(t0),
        };
        assert_eq!(r9.remaining(t0, base, max), max);
        let ok = pod(
            json!({"metadata": {"name": "s"}, "status": {"phase": "Succeeded",
            "containerStatuses": [{"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-01-01T00:00:20Z"}}}]}}),
        );
        assert_eq!(
            r3.after(&[&ok], &[&failed_with(1)]),
            BackoffRecord::default()
        );
    }
}
