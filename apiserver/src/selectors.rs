//! `labelSelector` and `fieldSelector` query parameters: parsing Kubernetes'
//! string syntax (`app=web,tier!=db,env in (a,b),!canary`) and matching objects.

use std::collections::BTreeMap;

use serde_json::Value;

use schemas::KindInfo;

use crate::errors::{ApiError, ApiResult};
use crate::objects;

/// One label requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value` (also matches objects without the key).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also matches objects without the key).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
    /// `key>n` / `key<n` (integer values).
    Gt(String, i64),
    /// `key<n`.
    Lt(String, i64),
}

/// A parsed label selector (all requirements must hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn check_key(k: &str, whole: &str) -> ApiResult<String> {
    if k.is_empty() || schemas::validation::names::qualified_name(k).is_some() {
        return Err(ApiError::bad_request(format!(
            "unable to parse requirement: invalid label key {k:?} in selector {whole:?}"
        )));
    }
    Ok(k.to_string())
}

fn check_value(v: &str, whole: &str) -> ApiResult<String> {
    if schemas::validation::names::label_value(v).is_some() {
        return Err(ApiError::bad_request(format!(
            "unable to parse requirement: invalid label value {v:?} in selector {whole:?}"
        )));
    }
    Ok(v.to_string())
}

fn parse_set(rest: &str, whole: &str) -> ApiResult<Vec<String>> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "found '{rest}', expected: '(' in selector {whole:?}"
            ))
        })?;
    inner
        .split(',')
        .map(|v| check_value(v.trim(), whole))
        .collect()
}

impl LabelSelector {
    /// Parses the string form.
    pub fn parse(s: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for part in split_top_level(s) {
            let p = part.trim();
            if p.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "empty requirement in label selector {s:?}"
                )));
            }
            let req = if let Some(k) = p.strip_prefix('!') {
                Requirement::DoesNotExist(check_key(k.trim(), s)?)
            } else if let Some((k, v)) = p.split_once("!=") {
                Requirement::NotEquals(check_key(k.trim(), s)?, check_value(v.trim(), s)?)
            } else if let Some((k, v)) = p.split_once("==") {
                Requirement::Equals(check_key(k.trim(), s)?, check_value(v.trim(), s)?)
            } else if let Some((k, v)) = p.split_once('=') {
                Requirement::Equals(check_key(k.trim(), s)?, check_value(v.trim(), s)?)
            } else if let Some((k, v)) = p.split_once('>') {
                let n = v.trim().parse().map_err(|_| {
                    ApiError::bad_request(format!("{v:?} is not an integer in selector {s:?}"))
                })?;
                Requirement::Gt(check_key(k.trim(), s)?, n)
            } else if let Some((k, v)) = p.split_once('<') {
                let n = v.trim().parse().map_err(|_| {
                    ApiError::bad_request(format!("{v:?} is not an integer in selector {s:?}"))
                })?;
                Requirement::Lt(check_key(k.trim(), s)?, n)
            } else if let Some(idx) = p.find(" notin ") {
                Requirement::NotIn(check_key(p[..idx].trim(), s)?, parse_set(&p[idx + 7..], s)?)
            } else if let Some(idx) = p.find(" in ") {
                Requirement::In(check_key(p[..idx].trim(), s)?, parse_set(&p[idx + 4..], s)?)
            } else if p.contains(' ') || p.contains('(') {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement {p:?} in label selector {s:?}"
                )));
            } else {
                Requirement::Exists(check_key(p, s)?)
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_by(|k| labels.get(k).map(String::as_str))
    }

    /// Whether labels looked up by `get` (a label's value, `None` when
    /// absent) satisfy every requirement.
    pub fn matches_by<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
            Requirement::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Requirement::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }

    /// Whether there are no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One field requirement: `field=value` or `field!=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field, e.g. `spec.nodeName`.
    pub field: String,
    /// The value compared with.
    pub value: String,
    /// `!=` rather than `=`.
    pub negated: bool,
}

/// A parsed field selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

/// The fields a kind can be selected by, besides `metadata.name` and `metadata.namespace`.
pub fn selectable_fields(info: &KindInfo) -> Vec<String> {
    if let Some(custom) = info.custom() {
        return custom.selectable_fields.clone();
    }
    let fields: &[&str] = match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Secret") => &["type"],
        ("", "Namespace") => &["status.phase"],
        ("apps", "ReplicaSet") | ("", "ReplicationController") => &["status.replicas"],
        ("", "Service") => &["spec.clusterIP", "spec.type"],
        ("batch", "Job") => &["status.successful"],
        ("certificates.k8s.io", "CertificateSigningRequest") => &["spec.signerName"],
        ("events.k8s.io", "Event") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        _ => &[],
    };
    fields.iter().map(|f| f.to_string()).collect()
}

impl FieldSelector {
    /// Parses the string form and checks every field is selectable for the kind.
    pub fn parse(s: &str, info: &KindInfo) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(reqs));
        }
        let allowed = selectable_fields(info);
        // an empty term (`metadata.name=foo,`) selects nothing, as in kube-apiserver
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let p = part.trim();
            let (field, value, negated) = if let Some((f, v)) = p.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = p.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = p.split_once('=') {
                (f, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: {s:?}; can't understand {p:?}"
                )));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !allowed.iter().any(|a| a == field)
            {
                // kinds without field label conversions of their own answer
                // with apimachinery's DefaultMetaV1FieldSelectorConversion
                if allowed.is_empty() && info.custom().is_none() {
                    return Err(ApiError::bad_request(format!(
                        "{field:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                    )));
                }
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push(FieldRequirement {
                field: field.to_string(),
                value: value.trim().to_string(),
                negated,
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether the object satisfies every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let actual = field_value(obj, &r.field);
            (actual == r.value) != r.negated
        })
    }

    /// Whether field values looked up by `value` (as [`field_value`] gives
    /// them) satisfy every requirement; `None` when `value` lacks a field.
    pub fn matches_by<'a>(&self, value: impl Fn(&str) -> Option<&'a str>) -> Option<bool> {
        for r in &self.0 {
            if (value(&r.field)? == r.value) == r.negated {
                return Some(false);
            }
        }
        Some(true)
    }

    /// The value required for `field` with `=`, if any (to narrow a list to one name or namespace).
    pub fn equals(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.field == field && !r.negated)
            .map(|r| r.value.as_str())
    }

    /// Whether there are no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A selectable field's value as a string ("" when absent, "false" for an absent boolean).
pub fn field_value(obj: &Value, field: &str) -> String {
    if field == "source" {
        return obj
            .get("source")
            .and_then(|s| s.get("component"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
    }
    let mut node = obj;
    for part in field.split('.') {
        match node.get(part) {
            Some(n) => node = n,
            None => {
                return if field == "spec.unschedulable" || field == "spec.hostNetwork" {
                    "false".into()
                } else if field == "status.replicas" {
                    "0".into()
                } else {
                    String::new()
                };
            }
        }
    }
    match node {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Both selectors of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    /// Labels.
    pub labels: LabelSelector,
    /// Fields.
    pub fields: FieldSelector,
}

impl Selectors {
    /// Whether an object matches both.
    pub fn matches(&self, obj: &Value) -> bool {
        (self.labels.is_empty() || self.labels.matches(&objects::labels(obj)))
            && (self.fields.is_empty() || self.fields.matches(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_label_operator() {
        let s = LabelSelector::parse(
            "app=web, tier!=db,env in (prod, staging),zone notin (z3),canary,!legacy,gen>2",
        )
        .expect("parse");
        assert_eq!(s.0.len(), 7);
        assert!(s.matches(&l(&[
            ("app", "web"),
            ("env", "prod"),
            ("canary", ""),
            ("gen", "3")
        ])));
        assert!(!s.matches(&l(&[
            ("app", "web"),
            ("env", "dev"),
            ("canary", ""),
            ("gen", "3")
        ])));
        assert!(!s.matches(&l(&[
            ("app", "web"),
            ("env", "prod"),
            ("canary", ""),
            ("legacy", "1"),
            ("gen", "3")
        ])));
        assert!(LabelSelector::parse("app in prod").is_err());
        assert!(LabelSelector::parse("a b").is_err());
        assert!(LabelSelector::parse("=x").is_err());
        assert!(LabelSelector::parse("").expect("empty").is_empty());
    }

    #[test]
    fn field_selectors_check_supported_fields() {
        let pod = schemas::lookup("v1", "Pod").expect("pod");
        let s = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed", pod).expect("parse");
        assert!(s.matches(&json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})));
        assert!(!s.matches(&json!({"spec": {"nodeName": "n2"}})));
        assert_eq!(s.equals("spec.nodeName"), Some("n1"));
        let e = FieldSelector::parse("spec.foo=1", pod).expect_err("unsupported");
        assert_eq!(e.message, "field label not supported: spec.foo");
        let cm = schemas::lookup("v1", "ConfigMap").expect("configmap");
        let e = FieldSelector::parse("data.a=1", cm).expect_err("unsupported");
        assert_eq!(
            e.message,
            "\"data.a\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        let node = schemas::lookup("v1", "Node").expect("node");
        let s = FieldSelector::parse("spec.unschedulable=false", node).expect("parse");
        assert!(s.matches(&json!({"spec": {}})));
        let ev = schemas::lookup("v1", "Event").expect("event");
        let s = FieldSelector::parse("involvedObject.name=web,involvedObject.kind=Pod", ev)
            .expect("parse");
        assert!(s.matches(&json!({"involvedObject": {"name": "web", "kind": "Pod"}})));
    }
}
