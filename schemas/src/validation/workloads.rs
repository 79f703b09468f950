//! Semantic validation of Deployments and ReplicaSets: selector vs template
//! labels, replica counts, rollout strategy.

use crate::field_error::FieldError;
use crate::object::{MetaExt, SelectorExt};
use crate::path::FieldPath;
use crate::validation::{
    Errs, NameRule, Validate, immutable, validate_int_or_percent, validate_labels, validate_meta,
    validate_pod_spec, validate_selector,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What a workload kind requires of its pod template.
pub(crate) struct TemplateRules {
    /// The kind, lower case, for "empty selector is invalid for ..." messages.
    pub kind: &'static str,
    /// The restart policies allowed.
    pub restart: &'static [&'static str],
    /// Whether the pod spec is validated (StatefulSet's is not, as in Kubernetes).
    pub pod_spec: bool,
    /// Whether an empty selector is refused.
    pub non_empty_selector: bool,
}

/// The rules of Deployments, ReplicaSets, DaemonSets.
pub(crate) const LONG_RUNNING: TemplateRules = TemplateRules {
    kind: "deployment",
    restart: &["Always"],
    pod_spec: true,
    non_empty_selector: true,
};

/// Checks a workload's selector and template together.
pub(crate) fn validate_selector_and_template(
    errs: &mut Errs,
    sel: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
    spec: &FieldPath,
    rules: &TemplateRules,
) {
    match sel {
        None => errs.push(FieldError::required(spec.key("selector"), "")),
        Some(sel) if sel.is_empty() && rules.non_empty_selector => errs.push(FieldError::invalid(
            spec.key("selector"),
            "{}",
            format!("empty selector is invalid for {}", rules.kind),
        )),
        Some(sel) => validate_selector(errs, sel, &spec.key("selector")),
    }
    let Some(t) = template else {
        errs.push(FieldError::required(spec.key("template"), ""));
        return;
    };
    let tp = spec.key("template");
    validate_pod_template(errs, t, &tp, rules);
    let labels = t
        .metadata
        .as_ref()
        .map(|m| m.labels_map().clone())
        .unwrap_or_default();
    if let Some(sel) = sel
        && !sel.is_empty()
        && !sel.matches(&labels)
    {
        errs.push(FieldError::invalid(
            tp.key("metadata").key("labels"),
            crate::object::selector_string(&labels),
            "`selector` does not match template `labels`",
        ));
    }
}

/// Checks a pod template: its labels and annotations, its pod spec (unless
/// the kind skips it), and the restart policies the kind allows.
pub(crate) fn validate_pod_template(
    errs: &mut Errs,
    t: &PodTemplateSpec,
    tp: &FieldPath,
    rules: &TemplateRules,
) {
    if let Some(m) = &t.metadata {
        validate_labels(errs, m.labels_map(), &tp.key("metadata").key("labels"));
        for k in m.annotations_map().keys() {
            errs.check(
                tp.key("metadata").key("annotations"),
                k,
                crate::validation::names::qualified_name(k),
            );
        }
    }
    let Some(ps) = &t.spec else {
        errs.push(FieldError::required(tp.key("spec"), ""));
        return;
    };
    if rules.pod_spec {
        errs.0.extend(validate_pod_spec(ps, &tp.key("spec")));
    }
    let rp = ps.restart_policy.as_deref().unwrap_or("Always");
    let rpp = tp.key("spec").key("restartPolicy");
    if !rules.restart.contains(&rp) {
        if rp == "Always" {
            let list = rules
                .restart
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            errs.push(FieldError::required(rpp, format!("valid values: {list}")));
        } else {
            errs.push(FieldError::not_supported(rpp, rp, rules.restart));
        }
    }
    if rules.restart == ["Always"] && ps.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            tp.key("spec").key("activeDeadlineSeconds"),
            format!(
                "activeDeadlineSeconds in {} is not Supported",
                kind_title(rules.kind)
            ),
        ));
    }
}

fn kind_title(kind: &str) -> &'static str {
    match kind {
        "statefulset" => "StatefulSet",
        "daemonset" => "DaemonSet",
        "replicationcontroller" => "ReplicationController",
        "replicaset" => "ReplicaSet",
        _ => "Deployment",
    }
}

/// apps/v1 workloads' selectors cannot change.
pub(crate) fn selector_immutable(
    new: Option<&LabelSelector>,
    old: Option<&LabelSelector>,
) -> Vec<FieldError> {
    if new != old {
        vec![immutable(
            FieldPath::fields("spec.selector"),
            &serde_json::to_value(new).unwrap_or_default(),
        )]
    } else {
        Vec::new()
    }
}

impl Validate for Deployment {
    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        selector_immutable(
            self.spec.as_ref().map(|s| &s.selector),
            old.spec.as_ref().map(|s| &s.selector),
        )
    }

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
        validate_selector_and_template(
            &mut errs,
            Some(&spec.selector),
            Some(&spec.template),
            &sp,
            &LONG_RUNNING,
        );
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
    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        selector_immutable(
            self.spec.as_ref().map(|s| &s.selector),
            old.spec.as_ref().map(|s| &s.selector),
        )
    }

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
        validate_selector_and_template(
            &mut errs,
            Some(&spec.selector),
            spec.template.as_ref(),
            &sp,
            &TemplateRules {
                kind: "replicaset",
                ..LONG_RUNNING
            },
        );
        errs.0
    }
}
