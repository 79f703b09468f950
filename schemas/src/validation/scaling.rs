//! Semantic validation of HorizontalPodAutoscalers (autoscaling/v2 and v1)
//! and PodDisruptionBudgets, with Kubernetes' messages.

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler as HpaV1;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler, MetricSpec, MetricTarget,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::field_error::FieldError;
use crate::path::FieldPath;
use crate::quantity::QuantityExt;
use crate::validation::{
    Errs, NameRule, Validate, at_most_100_percent, names, validate_int_or_percent, validate_meta,
    validate_selector,
};

fn validate_replicas(errs: &mut Errs, min: Option<i32>, max: i32, sp: &FieldPath) {
    let min = min.unwrap_or(1);
    if min < 1 {
        errs.push(FieldError::invalid(
            sp.key("minReplicas"),
            min,
            "must be greater than or equal to 1",
        ));
    }
    if max < 1 {
        errs.push(FieldError::invalid(
            sp.key("maxReplicas"),
            max,
            "must be greater than 0",
        ));
    }
    if max < min {
        errs.push(FieldError::invalid(
            sp.key("maxReplicas"),
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
}

fn validate_target_ref(errs: &mut Errs, kind: &str, name: &str, p: &FieldPath) {
    for (field, value) in [("kind", kind), ("name", name)] {
        if value.is_empty() {
            errs.push(FieldError::required(p.key(field), ""));
        } else if let Some(e) = names::path_segment(value) {
            errs.push(FieldError::invalid(p.key(field), value, e));
        }
    }
}

fn validate_target(errs: &mut Errs, t: &MetricTarget, p: &FieldPath) {
    match t.type_.as_str() {
        "" => errs.push(FieldError::required(
            p.key("type"),
            "must specify a metric target type",
        )),
        "Utilization" | "Value" | "AverageValue" => {}
        other => errs.push(FieldError::invalid(
            p.key("type"),
            other,
            "must be either Utilization, Value, or AverageValue",
        )),
    }
    for (field, q) in [("value", &t.value), ("averageValue", &t.average_value)] {
        if let Some(q) = q
            && q.nanos() <= 0
        {
            errs.push(FieldError::invalid(
                p.key(field),
                q.0.as_str(),
                "must be positive",
            ));
        }
    }
    if let Some(u) = t.average_utilization.filter(|u| *u < 1) {
        errs.push(FieldError::invalid(
            p.key("averageUtilization"),
            u,
            "must be greater than 0",
        ));
    }
}

fn validate_metric(errs: &mut Errs, m: &MetricSpec, p: &FieldPath) {
    const TYPES: &[&str] = &[
        "ContainerResource",
        "External",
        "Object",
        "Pods",
        "Resource",
    ];
    let set = [
        ("containerResource", m.container_resource.is_some()),
        ("external", m.external.is_some()),
        ("object", m.object.is_some()),
        ("pods", m.pods.is_some()),
        ("resource", m.resource.is_some()),
    ];
    let wanted = match m.type_.as_str() {
        "" => {
            errs.push(FieldError::required(
                p.key("type"),
                "must specify a metric source type",
            ));
            return;
        }
        "ContainerResource" => "containerResource",
        "External" => "external",
        "Object" => "object",
        "Pods" => "pods",
        "Resource" => "resource",
        other => {
            errs.push(FieldError::not_supported(p.key("type"), other, TYPES));
            return;
        }
    };
    for (field, present) in set {
        if field == wanted && !present {
            errs.push(FieldError::required(
                p.key(field),
                "must populate information for the given metric source",
            ));
        } else if field != wanted && present {
            errs.push(FieldError::forbidden(
                p.key(field),
                "must populate the given metric source only",
            ));
        }
    }
    if let Some(r) = &m.resource {
        let rp = p.key("resource");
        if r.name.is_empty() {
            errs.push(FieldError::required(
                rp.key("name"),
                "must specify a resource name",
            ));
        }
        validate_target(errs, &r.target, &rp.key("target"));
        resource_target_choice(errs, &r.target, &rp.key("target"));
    }
    if let Some(r) = &m.container_resource {
        let rp = p.key("containerResource");
        if r.name.is_empty() {
            errs.push(FieldError::required(
                rp.key("name"),
                "must specify a resource name",
            ));
        }
        if r.container.is_empty() {
            errs.push(FieldError::required(
                rp.key("container"),
                "must specify a container",
            ));
        } else {
            errs.check(
                rp.key("container"),
                &r.container,
                names::dns1123_label(&r.container),
            );
        }
        validate_target(errs, &r.target, &rp.key("target"));
        resource_target_choice(errs, &r.target, &rp.key("target"));
    }
    if let Some(pods) = &m.pods {
        let pp = p.key("pods");
        if pods.metric.name.is_empty() {
            errs.push(FieldError::required(
                pp.key("metric").key("name"),
                "must specify a metric name",
            ));
        }
        validate_target(errs, &pods.target, &pp.key("target"));
        if pods.target.average_value.is_none() {
            errs.push(FieldError::required(
                pp.key("target").key("averageValue"),
                "must specify a positive target averageValue",
            ));
        }
    }
    if let Some(o) = &m.object {
        let op = p.key("object");
        validate_cross_ref(errs, &o.described_object, &op.key("describedObject"));
        if o.metric.name.is_empty() {
            errs.push(FieldError::required(
                op.key("metric").key("name"),
                "must specify a metric name",
            ));
        }
        validate_target(errs, &o.target, &op.key("target"));
        if o.target.value.is_none() && o.target.average_value.is_none() {
            errs.push(FieldError::required(
                op.key("target").key("averageValue"),
                "must set either a target value or averageValue",
            ));
        }
    }
    if let Some(e) = &m.external {
        let ep = p.key("external");
        if e.metric.name.is_empty() {
            errs.push(FieldError::required(
                ep.key("metric").key("name"),
                "must specify a metric name",
            ));
        }
        validate_target(errs, &e.target, &ep.key("target"));
        match (&e.target.value, &e.target.average_value) {
            (None, None) => errs.push(FieldError::required(
                ep.key("target").key("averageValue"),
                "must set either a target value for metric or a per-pod target",
            )),
            (Some(_), Some(_)) => errs.push(FieldError::forbidden(
                ep.key("target").key("value"),
                "may not set both a target value for metric and a per-pod target",
            )),
            _ => {}
        }
    }
}

fn resource_target_choice(errs: &mut Errs, t: &MetricTarget, p: &FieldPath) {
    match (t.average_utilization, &t.average_value) {
        (None, None) => errs.push(FieldError::required(
            p.key("averageUtilization"),
            "must set either a target raw value or a target utilization",
        )),
        (Some(_), Some(_)) => errs.push(FieldError::forbidden(
            p.key("averageValue"),
            "may not set both a target raw value and a target utilization",
        )),
        _ => {}
    }
}

fn validate_cross_ref(errs: &mut Errs, r: &CrossVersionObjectReference, p: &FieldPath) {
    validate_target_ref(errs, &r.kind, &r.name, p);
}

fn validate_rules(errs: &mut Errs, r: &HPAScalingRules, p: &FieldPath) {
    if let Some(w) = r.stabilization_window_seconds {
        if w < 0 {
            errs.push(FieldError::invalid(
                p.key("stabilizationWindowSeconds"),
                w,
                "must be greater than or equal to zero",
            ));
        } else if w > 3600 {
            errs.push(FieldError::invalid(
                p.key("stabilizationWindowSeconds"),
                w,
                "must be less than or equal to 3600",
            ));
        }
    }
    errs.one_of(
        p.key("selectPolicy"),
        r.select_policy.as_deref(),
        &["Disabled", "Max", "Min"],
    );
    match &r.policies {
        Some(policies) if !policies.is_empty() => {
            for (j, pol) in policies.iter().enumerate() {
                let pp = p.key("policies").index(j);
                errs.one_of(
                    pp.key("type"),
                    Some(pol.type_.as_str()),
                    &["Percent", "Pods"],
                );
                if pol.value <= 0 {
                    errs.push(FieldError::invalid(
                        pp.key("value"),
                        pol.value,
                        "must be greater than zero",
                    ));
                }
                if pol.period_seconds <= 0 {
                    errs.push(FieldError::invalid(
                        pp.key("periodSeconds"),
                        pol.period_seconds,
                        "must be greater than zero",
                    ));
                } else if pol.period_seconds > 1800 {
                    errs.push(FieldError::invalid(
                        pp.key("periodSeconds"),
                        pol.period_seconds,
                        "must be less than or equal to 1800",
                    ));
                }
            }
        }
        _ => errs.push(FieldError::required(
            p.key("policies"),
            "must specify at least one Policy",
        )),
    }
}

impl Validate for HorizontalPodAutoscaler {
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
        validate_replicas(&mut errs, spec.min_replicas, spec.max_replicas, &sp);
        validate_cross_ref(&mut errs, &spec.scale_target_ref, &sp.key("scaleTargetRef"));
        for (i, m) in spec.metrics.iter().flatten().enumerate() {
            validate_metric(&mut errs, m, &sp.key("metrics").index(i));
        }
        if let Some(b) = &spec.behavior {
            let bp = sp.key("behavior");
            if let Some(up) = &b.scale_up {
                validate_rules(&mut errs, up, &bp.key("scaleUp"));
            }
            if let Some(down) = &b.scale_down {
                validate_rules(&mut errs, down, &bp.key("scaleDown"));
            }
        }
        errs.0
    }
}

impl Validate for HpaV1 {
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
        validate_replicas(&mut errs, spec.min_replicas, spec.max_replicas, &sp);
        validate_target_ref(
            &mut errs,
            &spec.scale_target_ref.kind,
            &spec.scale_target_ref.name,
            &sp.key("scaleTargetRef"),
        );
        if let Some(t) = spec.target_cpu_utilization_percentage.filter(|t| *t < 1) {
            errs.push(FieldError::invalid(
                sp.key("targetCPUUtilizationPercentage"),
                t,
                "must be greater than 0",
            ));
        }
        errs.0
    }
}

impl Validate for PodDisruptionBudget {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::PathSegment,
            &FieldPath::fields("metadata"),
        );
        let sp = FieldPath::fields("spec");
        let Some(spec) = &self.spec else {
            return errs.0;
        };
        if spec.min_available.is_some() && spec.max_unavailable.is_some() {
            errs.push(FieldError::invalid(
                sp.clone(),
                "spec",
                "minAvailable and maxUnavailable cannot be both set",
            ));
        }
        for (field, v) in [
            ("minAvailable", &spec.min_available),
            ("maxUnavailable", &spec.max_unavailable),
        ] {
            if let Some(v) = v
                && validate_int_or_percent(&mut errs, v, &sp.key(field))
            {
                at_most_100_percent(&mut errs, v, &sp.key(field));
            }
        }
        if let Some(sel) = &spec.selector {
            validate_selector(&mut errs, sel, &sp.key("selector"));
        }
        errs.one_of(
            sp.key("unhealthyPodEvictionPolicy"),
            spec.unhealthy_pod_eviction_policy.as_deref(),
            &["AlwaysAllow", "IfHealthyBudget"],
        );
        errs.0
    }
}
