//! Semantic validation of StatefulSets, DaemonSets, ReplicationControllers,
//! PodTemplates and ControllerRevisions, with Kubernetes' messages.

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{PodTemplate, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::field_error::FieldError;
use crate::object::SelectorExt;
use crate::path::FieldPath;
use crate::validation::workloads::{
    LONG_RUNNING, TemplateRules, selector_immutable, validate_pod_template,
    validate_selector_and_template,
};
use crate::validation::{
    Errs, NameRule, Validate, at_most_100_percent, check_immutable, validate_int_or_percent,
    validate_meta,
};

fn meta_errs(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    rule: NameRule,
) -> Errs {
    let mut errs = Errs::default();
    validate_meta(&mut errs, meta, rule, &FieldPath::fields("metadata"));
    errs
}

impl Validate for StatefulSet {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = meta_errs(&self.metadata, NameRule::Label);
        let sp = FieldPath::fields("spec");
        let Some(spec) = &self.spec else {
            errs.push(FieldError::required(sp, ""));
            return errs.0;
        };
        match spec.pod_management_policy.as_deref() {
            None | Some("") => errs.push(FieldError::required(sp.key("podManagementPolicy"), "")),
            Some("OrderedReady" | "Parallel") => {}
            Some(other) => errs.push(FieldError::invalid(
                sp.key("podManagementPolicy"),
                other,
                "must be 'OrderedReady' or 'Parallel'",
            )),
        }
        let up = sp.key("updateStrategy");
        match spec.update_strategy.as_ref() {
            None => errs.push(FieldError::required(up, "")),
            Some(s) => match s.type_.as_deref() {
                None | Some("") => errs.push(FieldError::required(up, "")),
                Some("OnDelete") => {
                    if s.rolling_update.is_some() {
                        errs.push(FieldError::invalid(
                            up.key("rollingUpdate"),
                            "rollingUpdate",
                            "only allowed for updateStrategy 'RollingUpdate'",
                        ));
                    }
                }
                Some("RollingUpdate") => {
                    if let Some(ru) = &s.rolling_update {
                        let rp = up.key("rollingUpdate");
                        errs.non_negative(rp.key("partition"), ru.partition.map(i64::from));
                        if let Some(mu) = &ru.max_unavailable {
                            if matches!(mu, IntOrString::Int(0))
                                || matches!(mu, IntOrString::String(s) if s == "0%")
                            {
                                errs.push(FieldError::invalid(
                                    rp.key("maxUnavailable"),
                                    0,
                                    "cannot be 0",
                                ));
                            } else if validate_int_or_percent(
                                &mut errs,
                                mu,
                                &rp.key("maxUnavailable"),
                            ) {
                                at_most_100_percent(&mut errs, mu, &rp.key("maxUnavailable"));
                            }
                        }
                    }
                }
                Some(other) => errs.push(FieldError::invalid(
                    up,
                    other,
                    "must be 'RollingUpdate' or 'OnDelete'",
                )),
            },
        }
        if let Some(r) = &spec.persistent_volume_claim_retention_policy {
            let rp = sp.key("persistentVolumeClaimRetentionPolicy");
            errs.one_of(
                rp.key("whenDeleted"),
                r.when_deleted.as_deref(),
                &["Retain", "Delete"],
            );
            errs.one_of(
                rp.key("whenScaled"),
                r.when_scaled.as_deref(),
                &["Retain", "Delete"],
            );
        }
        errs.non_negative(sp.key("replicas"), spec.replicas.map(i64::from));
        errs.non_negative(
            sp.key("minReadySeconds"),
            spec.min_ready_seconds.map(i64::from),
        );
        if let Some(o) = &spec.ordinals {
            errs.non_negative(sp.key("ordinals").key("start"), o.start.map(i64::from));
        }
        validate_selector_and_template(
            &mut errs,
            Some(&spec.selector),
            Some(&spec.template),
            &sp,
            &TemplateRules {
                kind: "statefulset",
                pod_spec: false,
                ..LONG_RUNNING
            },
        );
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let (Some(new), Some(old)) = (&self.spec, &old.spec) else {
            return Vec::new();
        };
        let mut frozen = old.clone();
        frozen.replicas = new.replicas;
        frozen.template = new.template.clone();
        frozen.update_strategy = new.update_strategy.clone();
        frozen.min_ready_seconds = new.min_ready_seconds;
        frozen.ordinals = new.ordinals.clone();
        frozen.persistent_volume_claim_retention_policy =
            new.persistent_volume_claim_retention_policy.clone();
        if &frozen != new {
            return vec![FieldError::forbidden(
                FieldPath::fields("spec"),
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            )];
        }
        Vec::new()
    }
}

impl Validate for DaemonSet {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = meta_errs(&self.metadata, NameRule::Subdomain);
        let sp = FieldPath::fields("spec");
        let Some(spec) = &self.spec else {
            errs.push(FieldError::required(sp, ""));
            return errs.0;
        };
        validate_selector_and_template(
            &mut errs,
            Some(&spec.selector),
            Some(&spec.template),
            &sp,
            &TemplateRules {
                kind: "daemonset",
                ..LONG_RUNNING
            },
        );
        errs.non_negative(
            sp.key("minReadySeconds"),
            spec.min_ready_seconds.map(i64::from),
        );
        errs.non_negative(
            sp.key("revisionHistoryLimit"),
            spec.revision_history_limit.map(i64::from),
        );
        if let Some(s) = &spec.update_strategy {
            let up = sp.key("updateStrategy");
            match s.type_.as_deref() {
                Some("OnDelete") | None => {}
                Some("RollingUpdate") => match &s.rolling_update {
                    None => errs.push(FieldError::required(up.key("rollingUpdate"), "")),
                    Some(ru) => {
                        let rp = up.key("rollingUpdate");
                        let zero = |v: &Option<IntOrString>| match v {
                            None | Some(IntOrString::Int(0)) => true,
                            Some(IntOrString::String(s)) => s == "0%",
                            _ => false,
                        };
                        for (field, v) in [
                            ("maxUnavailable", &ru.max_unavailable),
                            ("maxSurge", &ru.max_surge),
                        ] {
                            if let Some(v) = v
                                && validate_int_or_percent(&mut errs, v, &rp.key(field))
                            {
                                at_most_100_percent(&mut errs, v, &rp.key(field));
                            }
                        }
                        match (zero(&ru.max_unavailable), zero(&ru.max_surge)) {
                            (false, false) => errs.push(FieldError::invalid(
                                rp.key("maxSurge"),
                                crate::object::int_or_string_text(
                                    ru.max_surge.as_ref().unwrap_or(&IntOrString::Int(0)),
                                ),
                                "may not be set when maxUnavailable is non-zero",
                            )),
                            (true, true) => errs.push(FieldError::required(
                                rp.key("maxUnavailable"),
                                "cannot be 0 when maxSurge is 0",
                            )),
                            _ => {}
                        }
                    }
                },
                Some(other) => errs.push(FieldError::not_supported(
                    up,
                    other,
                    &["RollingUpdate", "OnDelete"],
                )),
            }
        }
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        selector_immutable(
            self.spec.as_ref().map(|s| &s.selector),
            old.spec.as_ref().map(|s| &s.selector),
        )
    }
}

impl Validate for ReplicationController {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = meta_errs(&self.metadata, NameRule::Subdomain);
        let sp = FieldPath::fields("spec");
        let Some(spec) = &self.spec else {
            errs.push(FieldError::required(sp, ""));
            return errs.0;
        };
        errs.non_negative(
            sp.key("minReadySeconds"),
            spec.min_ready_seconds.map(i64::from),
        );
        errs.non_negative(sp.key("replicas"), spec.replicas.map(i64::from));
        let selector = spec
            .selector
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|m| LabelSelector {
                match_labels: Some(m.clone()),
                match_expressions: None,
            });
        if selector.is_none() {
            errs.push(FieldError::required(sp.key("selector"), ""));
        }
        match &spec.template {
            None => errs.push(FieldError::required(sp.key("template"), "")),
            Some(t) => {
                validate_pod_template(
                    &mut errs,
                    t,
                    &sp.key("template"),
                    &TemplateRules {
                        kind: "replicationcontroller",
                        ..LONG_RUNNING
                    },
                );
                let labels = t
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                if let Some(sel) = &selector
                    && !sel.matches(&labels)
                {
                    errs.push(FieldError::invalid(
                        sp.key("template").key("metadata").key("labels"),
                        crate::object::selector_string(&labels),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
        errs.0
    }
}

impl Validate for PodTemplate {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = meta_errs(&self.metadata, NameRule::Subdomain);
        match &self.template {
            None => errs.push(FieldError::required(FieldPath::fields("template"), "")),
            Some(t) => {
                validate_pod_template(
                    &mut errs,
                    t,
                    &FieldPath::fields("template"),
                    &TemplateRules {
                        kind: "podtemplate",
                        restart: &["Always", "OnFailure", "Never"],
                        pod_spec: true,
                        non_empty_selector: false,
                    },
                );
                if t.spec.as_ref().is_some_and(|s| {
                    s.ephemeral_containers
                        .as_ref()
                        .is_some_and(|e| !e.is_empty())
                }) {
                    errs.push(FieldError::forbidden(
                        FieldPath::fields("template.spec.ephemeralContainers"),
                        "ephemeral containers not allowed in pod template",
                    ));
                }
            }
        }
        errs.0
    }
}

impl Validate for ControllerRevision {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = meta_errs(&self.metadata, NameRule::Subdomain);
        if self.data.is_none() {
            errs.push(FieldError::required(
                FieldPath::fields("data"),
                "data is mandatory",
            ));
        }
        errs.non_negative(FieldPath::fields("revision"), Some(self.revision));
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        check_immutable(&mut errs, FieldPath::fields("data"), &self.data, &old.data);
        errs.0
    }
}
