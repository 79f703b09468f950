//! Semantic validation of Jobs and CronJobs, with Kubernetes' messages.

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};

use crate::field_error::FieldError;
use crate::path::FieldPath;
use crate::validation::workloads::{TemplateRules, validate_selector_and_template};
use crate::validation::{Errs, NameRule, Validate, check_immutable, names, validate_meta};

const JOB_RULES: TemplateRules = TemplateRules {
    kind: "job",
    restart: &["OnFailure", "Never"],
    pod_spec: true,
    non_empty_selector: false,
};

/// The spec rules shared by Jobs and CronJobs' job templates.
fn validate_job_spec(errs: &mut Errs, spec: &JobSpec, sp: &FieldPath, check_selector: bool) {
    for (field, v) in [
        ("parallelism", spec.parallelism.map(i64::from)),
        ("completions", spec.completions.map(i64::from)),
        ("activeDeadlineSeconds", spec.active_deadline_seconds),
        ("backoffLimit", spec.backoff_limit.map(i64::from)),
        (
            "ttlSecondsAfterFinished",
            spec.ttl_seconds_after_finished.map(i64::from),
        ),
        (
            "backoffLimitPerIndex",
            spec.backoff_limit_per_index.map(i64::from),
        ),
        ("maxFailedIndexes", spec.max_failed_indexes.map(i64::from)),
    ] {
        errs.non_negative(sp.key(field), v);
    }
    if spec.max_failed_indexes.is_some() && spec.backoff_limit_per_index.is_none() {
        errs.push(FieldError::required(
            sp.key("backoffLimitPerIndex"),
            "when maxFailedIndexes is specified",
        ));
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {
            for (field, v) in [
                ("backoffLimitPerIndex", spec.backoff_limit_per_index),
                ("maxFailedIndexes", spec.max_failed_indexes),
            ] {
                if let Some(v) = v {
                    errs.push(FieldError::invalid(
                        sp.key(field),
                        v,
                        "requires indexed completion mode",
                    ));
                }
            }
        }
        Some("Indexed") => {
            if spec.completions.is_none() {
                errs.push(FieldError::required(
                    sp.key("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = spec.parallelism.filter(|p| *p > 100_000) {
                errs.push(FieldError::invalid(
                    sp.key("parallelism"),
                    p,
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
        }
        Some(other) => errs.push(FieldError::not_supported(
            sp.key("completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    if spec.success_policy.is_some() && !indexed {
        errs.push(FieldError::invalid(
            sp.key("successPolicy"),
            "successPolicy",
            "requires indexed completion mode",
        ));
    }
    match (
        &spec.pod_failure_policy,
        spec.pod_replacement_policy.as_deref(),
    ) {
        (Some(_), Some(p)) if p != "Failed" => errs.push(FieldError::not_supported(
            sp.key("podReplacementPolicy"),
            p,
            &["Failed"],
        )),
        (None, Some(p)) => errs.one_of(
            sp.key("podReplacementPolicy"),
            Some(p),
            &["Failed", "TerminatingOrFailed"],
        ),
        _ => {}
    }
    if let Some(pfp) = &spec.pod_failure_policy {
        let pp = sp.key("podFailurePolicy").key("rules");
        if pfp.rules.len() > 20 {
            errs.push(FieldError {
                path: pp.clone(),
                reason: crate::field_error::Reason::TooMany,
                message: format!("Too many: {}: must have at most 20 items", pfp.rules.len()),
            });
        }
        for (i, r) in pfp.rules.iter().enumerate() {
            let rp = pp.index(i);
            errs.one_of(
                rp.key("action"),
                Some(r.action.as_str()),
                &["Count", "FailIndex", "FailJob", "Ignore"],
            );
            if r.action == "FailIndex" && spec.backoff_limit_per_index.is_none() {
                errs.push(FieldError::invalid(
                    rp.key("action"),
                    "FailIndex",
                    "requires the backoffLimitPerIndex to be set",
                ));
            }
            match (&r.on_exit_codes, &r.on_pod_conditions) {
                (Some(_), Some(c)) if !c.is_empty() => errs.push(FieldError {
                    path: rp.clone(),
                    reason: crate::field_error::Reason::Invalid,
                    message: "Invalid value: specifying both OnExitCodes and OnPodConditions is not supported".into(),
                }),
                (None, None) => errs.push(FieldError {
                    path: rp.clone(),
                    reason: crate::field_error::Reason::Invalid,
                    message: "Invalid value: specifying one of OnExitCodes and OnPodConditions is required".into(),
                }),
                _ => {}
            }
            if let Some(codes) = &r.on_exit_codes {
                let cp = rp.key("onExitCodes");
                errs.one_of(
                    cp.key("operator"),
                    Some(codes.operator.as_str()),
                    &["In", "NotIn"],
                );
                if codes.values.is_empty() {
                    errs.push(FieldError::required(
                        cp.key("values"),
                        "at least one value is required",
                    ));
                }
                for (j, v) in codes.values.iter().enumerate() {
                    if codes.operator == "In" && *v == 0 {
                        errs.push(FieldError::invalid(
                            cp.key("values").index(j),
                            v,
                            "must not be 0 for the In operator",
                        ));
                    }
                    if j > 0 && codes.values[j - 1] >= *v {
                        errs.push(FieldError::invalid(
                            cp.key("values").index(j),
                            v,
                            "must be ordered",
                        ));
                    }
                }
            }
        }
    }
    validate_selector_and_template_for_job(errs, spec, sp, check_selector);
}

fn validate_selector_and_template_for_job(
    errs: &mut Errs,
    spec: &JobSpec,
    sp: &FieldPath,
    check_selector: bool,
) {
    if check_selector {
        validate_selector_and_template(
            errs,
            spec.selector.as_ref(),
            Some(&spec.template),
            sp,
            &JOB_RULES,
        );
    } else {
        crate::validation::workloads::validate_pod_template(
            errs,
            &spec.template,
            &sp.key("template"),
            &JOB_RULES,
        );
    }
    if spec.pod_failure_policy.is_some()
        && spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            == Some("OnFailure")
    {
        errs.push(FieldError::invalid(
            sp.key("template").key("spec").key("restartPolicy"),
            "OnFailure",
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
}

impl Validate for Job {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let sp = FieldPath::fields("spec");
        let Some(spec) = &self.spec else {
            errs.push(FieldError::required(sp, ""));
            return errs.0;
        };
        let name = self.metadata.name.as_deref().unwrap_or("");
        if spec.completion_mode.as_deref() == Some("Indexed")
            && let Some(c) = spec.completions.filter(|c| *c > 0)
            && !name.is_empty()
        {
            let pod = format!("{name}-{}", c - 1);
            if names::dns1123_label(&pod).is_some() {
                errs.push(FieldError::invalid(
                    FieldPath::fields("metadata.name"),
                    name,
                    format!("will not able to create pod with invalid DNS label: {pod}"),
                ));
            }
        }
        // without a selector the server generates one (and its labels) on create
        let check_selector = spec.selector.is_some() || spec.manual_selector == Some(true);
        validate_job_spec(&mut errs, spec, &sp, check_selector);
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        let (Some(new), Some(old_spec)) = (&self.spec, &old.spec) else {
            return errs.0;
        };
        let sp = FieldPath::fields("spec");
        check_immutable(
            &mut errs,
            sp.key("selector"),
            &new.selector,
            &old_spec.selector,
        );
        let suspended_never_started = old_spec.suspend == Some(true)
            && old.status.as_ref().is_none_or(|s| s.start_time.is_none());
        if !suspended_never_started {
            check_immutable(
                &mut errs,
                sp.key("template"),
                &new.template,
                &old_spec.template,
            );
        }
        if new.completion_mode.as_deref() == Some("Indexed") {
            if new.completions != old_spec.completions && new.completions != new.parallelism {
                errs.push(FieldError::invalid(
                    sp.key("completions"),
                    new.completions.unwrap_or(0),
                    "can only be modified in tandem with spec.parallelism",
                ));
            }
        } else {
            check_immutable(
                &mut errs,
                sp.key("completions"),
                &new.completions,
                &old_spec.completions,
            );
        }
        check_immutable(
            &mut errs,
            sp.key("completionMode"),
            &new.completion_mode,
            &old_spec.completion_mode,
        );
        check_immutable(
            &mut errs,
            sp.key("podFailurePolicy"),
            &new.pod_failure_policy,
            &old_spec.pod_failure_policy,
        );
        check_immutable(
            &mut errs,
            sp.key("backoffLimitPerIndex"),
            &new.backoff_limit_per_index,
            &old_spec.backoff_limit_per_index,
        );
        check_immutable(
            &mut errs,
            sp.key("managedBy"),
            &new.managed_by,
            &old_spec.managed_by,
        );
        check_immutable(
            &mut errs,
            sp.key("successPolicy"),
            &new.success_policy,
            &old_spec.success_policy,
        );
        errs.0
    }
}

/// Checks a CronJob `timeZone` as Kubernetes does.
fn validate_time_zone(errs: &mut Errs, tz: &str, p: FieldPath) {
    if tz.is_empty() {
        errs.push(FieldError::invalid(
            p,
            tz,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    if tz.eq_ignore_ascii_case("local") {
        errs.push(FieldError::invalid(
            p,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
        return;
    }
    let part_ok = |part: &str| {
        !part.is_empty()
            && part.len() <= 14
            && part != "."
            && part != ".."
            && !part.starts_with('-')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    };
    if !tz.split('/').all(part_ok) || tz.parse::<chrono_tz::Tz>().is_err() {
        errs.push(FieldError::invalid(
            p,
            tz,
            format!("unknown time zone {tz}"),
        ));
    }
}

impl Validate for CronJob {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        if let Some(e) = self
            .metadata
            .name
            .as_deref()
            .and_then(cron_job_name_too_long)
        {
            errs.push(e);
        }
        let sp = FieldPath::fields("spec");
        let Some(spec) = &self.spec else {
            errs.push(FieldError::required(sp, ""));
            return errs.0;
        };
        if spec.schedule.is_empty() {
            errs.push(FieldError::required(sp.key("schedule"), ""));
        } else if crate::cron::mentions_time_zone(&spec.schedule) {
            errs.push(FieldError::invalid(
                sp.key("schedule"),
                &spec.schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        } else if let Err(e) = crate::cron::parse(&spec.schedule) {
            errs.push(FieldError::invalid(sp.key("schedule"), &spec.schedule, e));
        }
        errs.non_negative(
            sp.key("startingDeadlineSeconds"),
            spec.starting_deadline_seconds,
        );
        if let Some(tz) = &spec.time_zone {
            validate_time_zone(&mut errs, tz, sp.key("timeZone"));
        }
        match spec.concurrency_policy.as_deref() {
            None | Some("") => errs.push(FieldError::required(sp.key("concurrencyPolicy"), "")),
            Some(p) => errs.one_of(
                sp.key("concurrencyPolicy"),
                Some(p),
                &["Allow", "Forbid", "Replace"],
            ),
        }
        errs.non_negative(
            sp.key("successfulJobsHistoryLimit"),
            spec.successful_jobs_history_limit.map(i64::from),
        );
        errs.non_negative(
            sp.key("failedJobsHistoryLimit"),
            spec.failed_jobs_history_limit.map(i64::from),
        );
        let jp = sp.key("jobTemplate").key("spec");
        match &spec.job_template.spec {
            None => errs.push(FieldError::required(jp, "")),
            Some(job) => {
                if job.selector.is_some() {
                    errs.push(FieldError::invalid(
                        jp.key("selector"),
                        "selector",
                        "`selector` will be auto-generated",
                    ));
                }
                if job.manual_selector == Some(true) {
                    errs.push(FieldError::not_supported(
                        jp.key("manualSelector"),
                        "true",
                        &["nil", "false"],
                    ));
                }
                validate_job_spec(&mut errs, job, &jp, false);
            }
        }
        errs.0
    }
}

/// The CronJob name limit on create (52: Job names get an 11-character suffix).
pub fn cron_job_name_too_long(name: &str) -> Option<FieldError> {
    (name.len() > 52).then(|| {
        FieldError::invalid(
            FieldPath::fields("metadata.name"),
            name,
            "must be no more than 52 characters",
        )
    })
}
