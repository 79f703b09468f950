//! Semantic validation of Deployments and ReplicaSets: selector vs template
//! labels, replica counts, rollout strategy.

use crate::apps::{Deployment, ReplicaSet};
use crate::core::PodTemplateSpec;
use crate::field_error::FieldError;
use crate::intstr::IntOrString;
use crate::meta::LabelSelector;
use crate::path::FieldPath;
use crate::validation::{
    Errs, NameRule, Validate, validate_labels, validate_meta, validate_pod_spec, validate_selector,
};

/// Checks a workload's selector and template together.
fn validate_selector_and_template(
    errs: &mut Errs,
    sel: &LabelSelector,
    template: Option<&PodTemplateSpec>,
    spec: &FieldPath,
) {
    if sel.is_empty() {
        errs.push(FieldError::required(
            spec.key("selector"),
            "a non-empty selector is required",
        ));
    } else {
        validate_selector(errs, sel, &spec.key("selector"));
    }
    let Some(t) = template else {
        errs.push(FieldError::required(
            spec.key("template"),
            "the pod template",
        ));
        return;
    };
    let tp = spec.key("template");
    let labels = t
        .metadata
        .as_ref()
        .map(|m| m.labels().clone())
        .unwrap_or_default();
    validate_labels(errs, &labels, &tp.key("metadata").key("labels"));
    if !sel.is_empty() && !sel.matches(&labels) {
        errs.push(FieldError::invalid(
            tp.key("metadata").key("labels"),
            crate::apps::selector_string(&labels),
            "`selector` does not match template `labels`",
        ));
    }
    match &t.spec {
        Some(ps) => {
            errs.0.extend(validate_pod_spec(ps, &tp.key("spec")));
            if let Some(rp) = ps.restart_policy.as_deref()
                && rp != "Always"
            {
                errs.push(FieldError::not_supported(
                    tp.key("spec").key("restartPolicy"),
                    rp,
                    &["Always"],
                ));
            }
        }
        None => errs.push(FieldError::required(
            tp.key("spec"),
            "the pod template's spec",
        )),
    }
}

fn validate_int_or_percent(errs: &mut Errs, v: &IntOrString, p: &FieldPath) -> bool {
    match v {
        IntOrString::Int(i) if *i < 0 => {
            errs.push(FieldError::invalid(
                p.clone(),
                i,
                "must be greater than or equal to 0",
            ));
            false
        }
        IntOrString::Int(_) => true,
        IntOrString::String(s) => match s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
            Some(n) if n >= 0 => true,
            _ => {
                errs.push(FieldError::invalid(p.clone(), s, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')"));
                false
            }
        },
    }
}

impl Validate for Deployment {
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
            errs.push(FieldError::required(sp, "a deployment needs a spec"));
            return errs.0;
        };
        errs.non_negative(sp.key("replicas"), spec.replicas.map(i64::from));
        errs.non_negative(
            sp.key("minReadySeconds"),
            spec.min_ready_seconds.map(i64::from),
        );
        errs.non_negative(
            sp.key("revisionHistoryLimit"),
            spec.revision_history_limit.map(i64::from),
        );
        validate_selector_and_template(&mut errs, &spec.selector, Some(&spec.template), &sp);
        if let Some(pd) = spec.progress_deadline_seconds {
            let min_ready = spec.min_ready_seconds.unwrap_or(0);
            if pd <= min_ready {
                errs.push(FieldError::invalid(
                    sp.key("progressDeadlineSeconds"),
                    pd,
                    "must be greater than minReadySeconds",
                ));
            }
        }
        if let Some(s) = &spec.strategy {
            let stp = sp.key("strategy");
            errs.one_of(
                stp.key("type"),
                s.type_.as_deref(),
                &["RollingUpdate", "Recreate"],
            );
            if s.type_.as_deref() == Some("Recreate") && s.rolling_update.is_some() {
                errs.push(FieldError::forbidden(
                    stp.key("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
            if let Some(ru) = &s.rolling_update {
                let rp = stp.key("rollingUpdate");
                let surge_ok = ru
                    .max_surge
                    .as_ref()
                    .is_none_or(|v| validate_int_or_percent(&mut errs, v, &rp.key("maxSurge")));
                let unavail_ok = ru.max_unavailable.as_ref().is_none_or(|v| {
                    validate_int_or_percent(&mut errs, v, &rp.key("maxUnavailable"))
                });
                let zero = |v: &Option<IntOrString>| {
                    matches!(v, Some(IntOrString::Int(0)))
                        || matches!(v, Some(IntOrString::String(s)) if s == "0%")
                };
                if surge_ok && unavail_ok && zero(&ru.max_surge) && zero(&ru.max_unavailable) {
                    errs.push(FieldError::invalid(
                        rp.key("maxUnavailable"),
                        0,
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                if let Some(IntOrString::String(s)) = &ru.max_unavailable
                    && s.strip_suffix('%')
                        .and_then(|n| n.parse::<i64>().ok())
                        .is_some_and(|n| n > 100)
                {
                    errs.push(FieldError::invalid(
                        rp.key("maxUnavailable"),
                        s,
                        "must not be greater than 100%",
                    ));
                }
            }
        }
        errs.0
    }
}

impl Validate for ReplicaSet {
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
            errs.push(FieldError::required(sp, "a replicaset needs a spec"));
            return errs.0;
        };
        errs.non_negative(sp.key("replicas"), spec.replicas.map(i64::from));
        errs.non_negative(
            sp.key("minReadySeconds"),
            spec.min_ready_seconds.map(i64::from),
        );
        validate_selector_and_template(&mut errs, &spec.selector, spec.template.as_ref(), &sp);
        errs.0
    }
}
