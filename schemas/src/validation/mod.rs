//! Semantic validation of typed objects: what the JSON Schema cannot say
//! (name formats, cross-field rules, references within an object), with
//! Kubernetes' messages and field paths.

mod admission;
mod batch;
mod cluster;
mod config;
pub mod names;
mod networking;
mod other;
pub(crate) mod pod;
mod rbac;
mod scaling;
mod service;
mod sets;
mod storage;
mod workloads;

use std::collections::BTreeMap;

use crate::field_error::FieldError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::object::MetaExt;
use crate::path::FieldPath;

pub use batch::cron_job_name_too_long;
pub use other::is_variable_name;
pub use pod::validate_pod_spec;

/// Semantic checks of one kind.
pub trait Validate {
    /// Every problem found; empty when valid.
    fn validate(&self) -> Vec<FieldError>;

    /// The problems of an update from `old` (immutable fields, transitions);
    /// `self` has passed [`Validate::validate`].
    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }

    /// Problems visible only in the JSON, before it is decoded into the
    /// type (base64 that does not decode).
    fn check_json(_v: &serde_json::Value) -> Vec<FieldError> {
        Vec::new()
    }
}

/// Which name rule a kind's `metadata.name` follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (Namespaces, StatefulSets).
    Label,
    /// RFC 1035 label (Services).
    Label1035,
    /// Any path segment (RBAC kinds, PodDisruptionBudgets): not `.`, `..`, no `/` or `%`.
    PathSegment,
}

/// `field is immutable` at `path`, showing the new value.
pub(crate) fn immutable(path: FieldPath, new: &serde_json::Value) -> FieldError {
    let shown = match new {
        serde_json::Value::String(s) => format!("{s:?}"),
        serde_json::Value::Null => "null".to_string(),
        other => other.to_string(),
    };
    FieldError {
        path,
        reason: crate::field_error::Reason::Invalid,
        message: format!("Invalid value: {shown}: field is immutable"),
    }
}

/// `field is immutable` when a serialisable field changed.
pub(crate) fn check_immutable<T: serde::Serialize + PartialEq>(
    errs: &mut Errs,
    path: FieldPath,
    new: &T,
    old: &T,
) {
    if new != old {
        errs.push(immutable(
            path,
            &serde_json::to_value(new).unwrap_or_default(),
        ));
    }
}

/// Checks an int-or-percent field (`maxSurge`, `minAvailable`): a
/// non-negative integer or a percentage; false when it is not valid.
pub(crate) fn validate_int_or_percent(errs: &mut Errs, v: &IntOrString, p: &FieldPath) -> bool {
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
                errs.push(FieldError::invalid(
                    p.clone(),
                    s,
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ));
                false
            }
        },
    }
}

/// A percentage above 100% where at most 100% makes sense.
pub(crate) fn at_most_100_percent(errs: &mut Errs, v: &IntOrString, p: &FieldPath) {
    if let IntOrString::String(s) = v
        && s.strip_suffix('%')
            .and_then(|n| n.parse::<i64>().ok())
            .is_some_and(|n| n > 100)
    {
        errs.push(FieldError::invalid(
            p.clone(),
            s,
            "must not be greater than 100%",
        ));
    }
}

/// A list of field errors being collected.
#[derive(Default)]
pub(crate) struct Errs(pub Vec<FieldError>);

impl Errs {
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    /// Records an invalid value when `check` returned a reason.
    pub fn check(&mut self, path: FieldPath, value: &str, check: Option<String>) {
        if let Some(reason) = check {
            self.0.push(FieldError::invalid(path, value, reason));
        }
    }

    /// Records a value outside `allowed`.
    pub fn one_of(&mut self, path: FieldPath, value: Option<&str>, allowed: &[&str]) {
        if let Some(v) = value
            && !allowed.contains(&v)
        {
            self.0.push(FieldError::not_supported(path, v, allowed));
        }
    }

    /// Records a negative number.
    pub fn non_negative(&mut self, path: FieldPath, value: Option<i64>) {
        if let Some(v) = value
            && v < 0
        {
            self.0.push(FieldError::invalid(
                path,
                v,
                "must be greater than or equal to 0",
            ));
        }
    }

    /// Records a number below `min`.
    pub fn at_least(&mut self, path: FieldPath, value: Option<i64>, min: i64) {
        if let Some(v) = value
            && v < min
        {
            self.0.push(FieldError::invalid(
                path,
                v,
                format!("must be greater than or equal to {min}"),
            ));
        }
    }
}

/// Checks object metadata.
pub(crate) fn validate_meta(errs: &mut Errs, meta: &ObjectMeta, rule: NameRule, path: &FieldPath) {
    let name = meta.name.as_deref().unwrap_or("");
    if name.is_empty() {
        if meta.generate_name.as_deref().is_none_or(str::is_empty) {
            errs.push(FieldError::required(
                path.key("name"),
                "name or generateName is required",
            ));
        }
    } else {
        let check = match rule {
            NameRule::Subdomain => names::dns1123_subdomain(name),
            NameRule::Label => names::dns1123_label(name),
            NameRule::Label1035 => names::dns1035_label(name),
            NameRule::PathSegment => names::path_segment(name),
        };
        errs.check(path.key("name"), name, check);
    }
    if let Some(ns) = meta.namespace.as_deref().filter(|n| !n.is_empty()) {
        errs.check(path.key("namespace"), ns, names::dns1123_label(ns));
    }
    validate_labels(errs, meta.labels_map(), &path.key("labels"));
    let mut total = 0usize;
    for (k, v) in meta.annotations_map() {
        errs.check(path.key("annotations"), k, names::qualified_name(k));
        total += k.len() + v.len();
    }
    if total > 256 * 1024 {
        errs.push(FieldError::too_long(path.key("annotations"), 256 * 1024));
    }
    let mut controllers = 0;
    for (i, r) in meta.owner_references.iter().flatten().enumerate() {
        let p = path.key("ownerReferences").index(i);
        for (field, value) in [
            ("apiVersion", &r.api_version),
            ("kind", &r.kind),
            ("name", &r.name),
            ("uid", &r.uid),
        ] {
            if value.is_empty() {
                errs.push(FieldError::required(
                    p.key(field),
                    format!("{field} must not be empty"),
                ));
            }
        }
        if r.controller == Some(true) {
            controllers += 1;
        }
    }
    if controllers > 1 {
        errs.push(FieldError::invalid(
            path.key("ownerReferences"),
            controllers,
            "Only one reference can have Controller set to true",
        ));
    }
    for (i, f) in meta.finalizers.iter().flatten().enumerate() {
        errs.check(path.key("finalizers").index(i), f, names::qualified_name(f));
    }
}

/// Checks label keys and values.
pub(crate) fn validate_labels(
    errs: &mut Errs,
    labels: &BTreeMap<String, String>,
    path: &FieldPath,
) {
    for (k, v) in labels {
        errs.check(path.clone(), k, names::qualified_name(k));
        errs.check(path.key(k.clone()), v, names::label_value(v));
    }
}

/// Checks a label selector's keys, values and operators.
pub(crate) fn validate_selector(errs: &mut Errs, sel: &LabelSelector, path: &FieldPath) {
    if let Some(m) = &sel.match_labels {
        validate_labels(errs, m, &path.key("matchLabels"));
    }
    for (i, r) in sel.match_expressions.iter().flatten().enumerate() {
        let p = path.key("matchExpressions").index(i);
        errs.check(p.key("key"), &r.key, names::qualified_name(&r.key));
        let n = r.values.as_ref().map_or(0, Vec::len);
        match r.operator.as_str() {
            "In" | "NotIn" if n == 0 => errs.push(FieldError::required(
                p.key("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if n > 0 => errs.push(FieldError::forbidden(
                p.key("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::not_supported(
                p.key("operator"),
                other,
                &["In", "NotIn", "Exists", "DoesNotExist"],
            )),
        }
        for (j, v) in r.values.iter().flatten().enumerate() {
            errs.check(p.key("values").index(j), v, names::label_value(v));
        }
    }
}
