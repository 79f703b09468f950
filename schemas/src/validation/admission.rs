//! Semantic validation of admission configuration: webhook configurations,
//! ValidatingAdmissionPolicies and their bindings, with Kubernetes' messages.

use std::collections::HashSet;

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, MutatingWebhookConfiguration, RuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::field_error::FieldError;
use crate::path::FieldPath;
use crate::validation::{Errs, NameRule, Validate, names, validate_meta, validate_selector};

/// The fields the two webhook kinds share.
struct Webhook<'a> {
    name: &'a str,
    client_config: &'a WebhookClientConfig,
    rules: Option<&'a Vec<RuleWithOperations>>,
    failure_policy: Option<&'a str>,
    match_policy: Option<&'a str>,
    namespace_selector: Option<&'a LabelSelector>,
    object_selector: Option<&'a LabelSelector>,
    side_effects: &'a str,
    timeout_seconds: Option<i32>,
    admission_review_versions: &'a [String],
}

fn star_alone(errs: &mut Errs, list: &[String], p: &FieldPath, what: &str) {
    if list.len() > 1 && list.iter().any(|x| x == "*") {
        errs.push(FieldError::invalid(
            p.clone(),
            format!("{list:?}"),
            format!("if '*' is present, must not specify other {what}"),
        ));
    }
}

fn validate_rule_fields(
    errs: &mut Errs,
    operations: &[String],
    groups: &[String],
    versions: &[String],
    resources: &[String],
    scope: Option<&str>,
    p: &FieldPath,
) {
    if operations.is_empty() {
        errs.push(FieldError::required(p.key("operations"), ""));
    }
    star_alone(errs, operations, &p.key("operations"), "operations");
    for (k, op) in operations.iter().enumerate() {
        errs.one_of(
            p.key("operations").index(k),
            Some(op),
            &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"],
        );
    }
    if groups.is_empty() {
        errs.push(FieldError::required(p.key("apiGroups"), ""));
    }
    star_alone(errs, groups, &p.key("apiGroups"), "API groups");
    if versions.is_empty() {
        errs.push(FieldError::required(p.key("apiVersions"), ""));
    }
    star_alone(errs, versions, &p.key("apiVersions"), "API versions");
    for (k, v) in versions.iter().enumerate() {
        if v.is_empty() {
            errs.push(FieldError::required(p.key("apiVersions").index(k), ""));
        }
    }
    if resources.is_empty() {
        errs.push(FieldError::required(p.key("resources"), ""));
    }
    for (k, r) in resources.iter().enumerate() {
        if r.is_empty() {
            errs.push(FieldError::required(p.key("resources").index(k), ""));
        }
    }
    if resources.len() > 1 && resources.iter().any(|r| r == "*/*") {
        errs.push(FieldError::invalid(
            p.key("resources"),
            format!("{resources:?}"),
            "if '*/*' is present, must not specify other resources",
        ));
    } else if resources.iter().any(|r| r == "*")
        && resources.iter().any(|r| r != "*" && !r.contains('/'))
    {
        errs.push(FieldError::invalid(
            p.key("resources"),
            format!("{resources:?}"),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
    errs.one_of(p.key("scope"), scope, &["*", "Cluster", "Namespaced"]);
}

fn validate_client_config(errs: &mut Errs, c: &WebhookClientConfig, p: &FieldPath) {
    match (&c.url, &c.service) {
        (Some(_), Some(_)) | (None, None) => errs.push(FieldError::required(
            p.clone(),
            "exactly one of url or service is required",
        )),
        (Some(url), None) => {
            let up = p.key("url");
            const FORMAT: &str = "desired format: https://host[/path]";
            match url.split_once("://") {
                None => errs.push(FieldError::required(
                    up,
                    format!(
                        "url must be a valid URL: parse {url:?}: missing protocol scheme; {FORMAT}"
                    ),
                )),
                Some((scheme, rest)) => {
                    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
                    if scheme != "https" {
                        errs.push(FieldError::invalid(
                            up.clone(),
                            scheme,
                            format!("'https' is the only allowed URL scheme; {FORMAT}"),
                        ));
                    }
                    if host.is_empty() {
                        errs.push(FieldError::invalid(
                            up.clone(),
                            "",
                            format!("host must be specified; {FORMAT}"),
                        ));
                    }
                    if host.contains('@') {
                        errs.push(FieldError::invalid(
                            up.clone(),
                            url,
                            "user information is not permitted in the URL",
                        ));
                    }
                    if rest.contains('#') {
                        errs.push(FieldError::invalid(
                            up.clone(),
                            url,
                            "fragments are not permitted in the URL",
                        ));
                    }
                    if rest.contains('?') {
                        errs.push(FieldError::invalid(
                            up,
                            url,
                            "query parameters are not permitted in the URL",
                        ));
                    }
                }
            }
        }
        (None, Some(s)) => {
            let sp = p.key("service");
            // kube swaps name and namespace in these messages (kubernetes#141353)
            if s.name.is_empty() {
                errs.push(FieldError::required(sp.key("namespace"), ""));
            }
            if s.namespace.is_empty() {
                errs.push(FieldError::required(sp.key("name"), ""));
            }
            if let Some(port) = s.port
                && let Some(e) = names::port_number(port)
            {
                errs.push(FieldError::invalid(
                    sp.key("port"),
                    port,
                    format!("port is not valid: {e}"),
                ));
            }
            if let Some(path) = s.path.as_deref().filter(|p| !p.is_empty() && *p != "/") {
                if !path.starts_with('/') {
                    errs.push(FieldError::invalid(
                        sp.key("path"),
                        path,
                        "must start with a '/'",
                    ));
                } else {
                    let trimmed = path.strip_suffix('/').unwrap_or(path);
                    for (k, seg) in trimmed[1..].split('/').enumerate() {
                        if seg.is_empty() {
                            errs.push(FieldError::invalid(
                                sp.key("path"),
                                path,
                                format!("segment[{k}] may not be empty"),
                            ));
                        } else if let Some(e) = names::dns1123_subdomain(seg) {
                            errs.push(FieldError::invalid(
                                sp.key("path"),
                                path,
                                format!("segment[{k}]: {e}"),
                            ));
                        }
                    }
                }
            }
        }
    }
}

fn validate_webhook(errs: &mut Errs, w: &Webhook<'_>, p: &FieldPath) {
    if w.name.is_empty() {
        errs.push(FieldError::required(p.key("name"), ""));
    } else if let Some(e) = names::dns1123_subdomain(w.name) {
        errs.push(FieldError::invalid(p.key("name"), w.name, e));
    } else if w.name.split('.').count() < 3 {
        errs.push(FieldError::invalid(
            p.key("name"),
            w.name,
            "should be a domain with at least three segments separated by dots",
        ));
    }
    for (j, r) in w.rules.into_iter().flatten().enumerate() {
        let e = Vec::new();
        validate_rule_fields(
            errs,
            r.operations.as_ref().unwrap_or(&e),
            r.api_groups.as_ref().unwrap_or(&e),
            r.api_versions.as_ref().unwrap_or(&e),
            r.resources.as_ref().unwrap_or(&e),
            r.scope.as_deref(),
            &p.key("rules").index(j),
        );
    }
    errs.one_of(
        p.key("failurePolicy"),
        w.failure_policy,
        &["Fail", "Ignore"],
    );
    errs.one_of(
        p.key("matchPolicy"),
        w.match_policy,
        &["Equivalent", "Exact"],
    );
    if w.side_effects.is_empty() {
        errs.push(FieldError::required(
            p.key("sideEffects"),
            "must specify one of None, NoneOnDryRun",
        ));
    } else {
        errs.one_of(
            p.key("sideEffects"),
            Some(w.side_effects),
            &["None", "NoneOnDryRun"],
        );
    }
    if let Some(t) = w.timeout_seconds.filter(|t| !(1..=30).contains(t)) {
        errs.push(FieldError::invalid(
            p.key("timeoutSeconds"),
            t,
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    if let Some(s) = w.namespace_selector {
        validate_selector(errs, s, &p.key("namespaceSelector"));
    }
    if let Some(s) = w.object_selector {
        validate_selector(errs, s, &p.key("objectSelector"));
    }
    validate_client_config(errs, w.client_config, &p.key("clientConfig"));
    let ap = p.key("admissionReviewVersions");
    if w.admission_review_versions.is_empty() {
        errs.push(FieldError::required(ap, "must specify one of v1, v1beta1"));
    } else {
        let mut seen = HashSet::new();
        for (k, v) in w.admission_review_versions.iter().enumerate() {
            if !seen.insert(v) {
                errs.push(FieldError::invalid(ap.index(k), v, "duplicate version"));
            }
            errs.check(ap.index(k), v, names::dns1035_label(v));
        }
        if !w
            .admission_review_versions
            .iter()
            .any(|v| v == "v1" || v == "v1beta1")
        {
            errs.push(FieldError::invalid(
                ap,
                format!("{:?}", w.admission_review_versions),
                "must include at least one of v1, v1beta1",
            ));
        }
    }
}

fn unique_names<'a>(errs: &mut Errs, names: impl Iterator<Item = &'a str>) {
    let mut seen = HashSet::new();
    for (i, n) in names.enumerate() {
        if !n.is_empty() && !seen.insert(n) {
            errs.push(FieldError::duplicate(
                FieldPath::fields("webhooks").index(i).key("name"),
                n,
            ));
        }
    }
}

impl Validate for ValidatingWebhookConfiguration {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        for (i, w) in self.webhooks.iter().flatten().enumerate() {
            let hook = Webhook {
                name: &w.name,
                client_config: &w.client_config,
                rules: w.rules.as_ref(),
                failure_policy: w.failure_policy.as_deref(),
                match_policy: w.match_policy.as_deref(),
                namespace_selector: w.namespace_selector.as_ref(),
                object_selector: w.object_selector.as_ref(),
                side_effects: &w.side_effects,
                timeout_seconds: w.timeout_seconds,
                admission_review_versions: &w.admission_review_versions,
            };
            validate_webhook(&mut errs, &hook, &FieldPath::fields("webhooks").index(i));
        }
        unique_names(
            &mut errs,
            self.webhooks.iter().flatten().map(|w| w.name.as_str()),
        );
        errs.0
    }
}

impl Validate for MutatingWebhookConfiguration {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        for (i, w) in self.webhooks.iter().flatten().enumerate() {
            let p = FieldPath::fields("webhooks").index(i);
            let hook = Webhook {
                name: &w.name,
                client_config: &w.client_config,
                rules: w.rules.as_ref(),
                failure_policy: w.failure_policy.as_deref(),
                match_policy: w.match_policy.as_deref(),
                namespace_selector: w.namespace_selector.as_ref(),
                object_selector: w.object_selector.as_ref(),
                side_effects: &w.side_effects,
                timeout_seconds: w.timeout_seconds,
                admission_review_versions: &w.admission_review_versions,
            };
            validate_webhook(&mut errs, &hook, &p);
            errs.one_of(
                p.key("reinvocationPolicy"),
                w.reinvocation_policy.as_deref(),
                &["IfNeeded", "Never"],
            );
        }
        unique_names(
            &mut errs,
            self.webhooks.iter().flatten().map(|w| w.name.as_str()),
        );
        errs.0
    }
}

fn validate_match_resources(errs: &mut Errs, m: &MatchResources, p: &FieldPath, need_rules: bool) {
    match m.match_policy.as_deref() {
        None => errs.push(FieldError::required(p.key("matchPolicy"), "")),
        Some(mp) => errs.one_of(p.key("matchPolicy"), Some(mp), &["Equivalent", "Exact"]),
    }
    for (field, s) in [
        ("namespaceSelector", &m.namespace_selector),
        ("objectSelector", &m.object_selector),
    ] {
        match s {
            None => errs.push(FieldError::required(p.key(field), "")),
            Some(s) => validate_selector(errs, s, &p.key(field)),
        }
    }
    for (field, rules) in [
        ("resourceRules", &m.resource_rules),
        ("excludeResourceRules", &m.exclude_resource_rules),
    ] {
        for (j, r) in rules.iter().flatten().enumerate() {
            let e = Vec::new();
            let rp = p.key(field).index(j);
            validate_rule_fields(
                errs,
                r.operations.as_ref().unwrap_or(&e),
                r.api_groups.as_ref().unwrap_or(&e),
                r.api_versions.as_ref().unwrap_or(&e),
                r.resources.as_ref().unwrap_or(&e),
                r.scope.as_deref(),
                &rp,
            );
            for (k, n) in r.resource_names.iter().flatten().enumerate() {
                errs.check(rp.key("resourceNames").index(k), n, names::path_segment(n));
            }
        }
    }
    if need_rules && m.resource_rules.as_ref().is_none_or(Vec::is_empty) {
        errs.push(FieldError::required(p.key("resourceRules"), ""));
    }
}

impl Validate for ValidatingAdmissionPolicy {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let sp = FieldPath::fields("spec");
        let spec = self.spec.clone().unwrap_or_default();
        match spec.failure_policy.as_deref() {
            None => errs.push(FieldError::required(sp.key("failurePolicy"), "")),
            Some(f) => errs.one_of(sp.key("failurePolicy"), Some(f), &["Fail", "Ignore"]),
        }
        if let Some(pk) = &spec.param_kind {
            let pp = sp.key("paramKind");
            match pk.api_version.as_deref() {
                None | Some("") => errs.push(FieldError::required(pp.key("apiVersion"), "")),
                Some(av) if av.matches('/').count() > 1 => errs.push(FieldError::invalid(
                    pp.key("apiVersion"),
                    av,
                    format!("unexpected GroupVersion string: {av}"),
                )),
                Some(_) => {}
            }
            if pk.kind.as_deref().is_none_or(str::is_empty) {
                errs.push(FieldError::required(pp.key("kind"), ""));
            }
        }
        match &spec.match_constraints {
            None => errs.push(FieldError::required(sp.key("matchConstraints"), "")),
            Some(m) => validate_match_resources(&mut errs, m, &sp.key("matchConstraints"), true),
        }
        let validations = spec.validations.as_deref().unwrap_or_default();
        let audit = spec.audit_annotations.as_deref().unwrap_or_default();
        if validations.is_empty() && audit.is_empty() {
            for field in ["validations", "auditAnnotations"] {
                errs.push(FieldError::required(
                    sp.key(field),
                    "validations or auditAnnotations must contain at least one item",
                ));
            }
        }
        for (k, v) in validations.iter().enumerate() {
            let vp = sp.key("validations").index(k);
            if v.expression.trim().is_empty() {
                errs.push(FieldError::required(
                    vp.key("expression"),
                    "expression is not specified",
                ));
            } else if let Err(e) = crate::crd::cel::compile(&v.expression) {
                errs.push(FieldError::invalid(
                    vp.key("expression"),
                    &v.expression,
                    format!("compilation failed: {e}"),
                ));
            }
            if let Some(m) = v.message.as_deref() {
                if m.trim().is_empty() {
                    errs.push(FieldError::invalid(
                        vp.key("message"),
                        m,
                        "message must be non-empty if specified",
                    ));
                } else if m.contains('\n') {
                    errs.push(FieldError::invalid(
                        vp.key("message"),
                        m,
                        "message must not contain line breaks",
                    ));
                }
            }
            if let Some(m) = v
                .message_expression
                .as_deref()
                .filter(|m| m.trim().is_empty())
            {
                errs.push(FieldError::invalid(
                    vp.key("messageExpression"),
                    m,
                    "must be non-empty if specified",
                ));
            }
            errs.one_of(
                vp.key("reason"),
                v.reason.as_deref(),
                &["Forbidden", "Invalid", "RequestEntityTooLarge"],
            );
        }
        if audit.len() > 20 {
            errs.push(FieldError::invalid(
                sp.key("auditAnnotations"),
                audit.len(),
                "must not have more than 20 auditAnnotations",
            ));
        }
        for (k, v) in spec.variables.iter().flatten().enumerate() {
            let vp = sp.key("variables").index(k);
            if v.name.trim().is_empty() {
                errs.push(FieldError::required(
                    vp.key("name"),
                    "name is not specified",
                ));
            }
            if v.expression.trim().is_empty() {
                errs.push(FieldError::required(
                    vp.key("expression"),
                    "expression is not specified",
                ));
            }
        }
        errs.0
    }
}

impl Validate for ValidatingAdmissionPolicyBinding {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let sp = FieldPath::fields("spec");
        let spec = self.spec.clone().unwrap_or_default();
        match spec.policy_name.as_deref() {
            None | Some("") => errs.push(FieldError::required(sp.key("policyName"), "")),
            Some(n) => errs.check(sp.key("policyName"), n, names::dns1123_subdomain(n)),
        }
        if let Some(m) = &spec.match_resources {
            // kube's own path spelling
            validate_match_resources(&mut errs, m, &sp.key("matchResouces"), false);
        }
        let actions = spec.validation_actions.as_deref().unwrap_or_default();
        if actions.is_empty() {
            errs.push(FieldError::required(sp.key("validationActions"), ""));
        }
        let mut seen = HashSet::new();
        for (i, a) in actions.iter().enumerate() {
            let ap = sp.key("validationActions").index(i);
            if !seen.insert(a) {
                errs.push(FieldError::duplicate(ap.clone(), a));
            }
            errs.one_of(ap, Some(a), &["Audit", "Deny", "Warn"]);
        }
        if actions.iter().any(|a| a == "Deny") && actions.iter().any(|a| a == "Warn") {
            errs.push(FieldError::invalid(
                sp.key("validationActions"),
                format!("{actions:?}"),
                "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
            ));
        }
        if let Some(pr) = &spec.param_ref {
            let pp = sp.key("paramRef");
            match pr.parameter_not_found_action.as_deref() {
                None | Some("") => {
                    errs.push(FieldError::required(pp.key("parameterNotFoundAction"), ""))
                }
                Some(a) => errs.one_of(
                    pp.key("parameterNotFoundAction"),
                    Some(a),
                    &["Allow", "Deny"],
                ),
            }
            if pr.name.is_some() && pr.selector.is_some() {
                errs.push(FieldError::forbidden(
                    pp.key("name"),
                    "name and selector are mutually exclusive",
                ));
            }
        }
        errs.0
    }
}
