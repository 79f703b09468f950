//! Validation of decoded objects: type lookup, JSON Schema, typed decoding
//! and semantic rules, with every error located; plus the duplicate check
//! across a set of manifests. The API server runs the same `validate_object`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::decode::Manifest;
use crate::diagnostic::{Class, Diagnostic};
use crate::field_error::{FieldError, Reason};
use crate::kinds::{KindInfo, Kinds, Registry};
use crate::path::FieldPath;
use crate::schema;

/// An object that passed validation.
#[derive(Clone, Debug)]
pub struct Valid {
    /// Where it came from.
    pub manifest: Manifest,
    /// Its kind.
    pub info: Arc<KindInfo>,
}

impl Valid {
    /// The object as written (explicit nulls removed, octal modes converted).
    pub fn object(&self) -> &Value {
        &self.manifest.object
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.object()["metadata"]["name"].as_str().unwrap_or("")
    }

    /// The object's namespace as written, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.object()["metadata"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
    }
}

/// Removes object entries whose value is null, recursively (Kubernetes treats
/// an explicit null like an absent field).
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// File modes written with a leading zero (`defaultMode: 0644`) are octal, as
/// Kubernetes' YAML 1.1 decoder reads them; YAML 1.2 keeps them as strings.
fn convert_octal_modes(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if (k == "defaultMode" || k == "mode")
                    && let Value::String(s) = x
                    && s.len() > 1
                    && s.starts_with('0')
                    && s.bytes().all(|b| (b'0'..=b'7').contains(&b))
                    && let Ok(n) = i64::from_str_radix(s, 8)
                {
                    *x = Value::from(n);
                } else {
                    convert_octal_modes(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(convert_octal_modes),
        _ => {}
    }
}

/// Validates an object of a known kind: schema first (precise paths for
/// unknown fields and wrong types), then typed decoding and semantic rules.
pub fn validate_object(info: &KindInfo, object: &Value) -> Vec<FieldError> {
    let mut errors = schema::validate(info, object);
    if info.custom().is_some() {
        return with_custom_rules(info, object, errors);
    }
    if errors.is_empty() {
        return info.check_typed(object);
    }
    // Run the semantic rules on the object without the fields the schema
    // rejected, so that one typo does not hide the object's other problems.
    let bad: Vec<FieldPath> = errors.iter().map(|e| e.path.clone()).collect();
    let mut repaired = object.clone();
    if bad.iter().all(|p| remove_field(&mut repaired, p))
        && schema::validate(info, &repaired).is_empty()
    {
        errors.extend(
            info.check_typed(&repaired)
                .into_iter()
                .filter(|e| !bad.iter().any(|b| e.path.starts_with(b))),
        );
    }
    errors
}

/// A custom resource's rules (CEL, list types, scale paths) after its schema
/// errors, as apiextensions runs them: not at all when a schema error is one
/// the rules could trip over (a missing, over-long or wrongly typed value,
/// an unsupported enum value), with an error saying so.
fn with_custom_rules(
    info: &KindInfo,
    object: &Value,
    mut errors: Vec<FieldError>,
) -> Vec<FieldError> {
    let blocking = errors.iter().any(|e| {
        matches!(
            e.reason,
            Reason::NotSupported
                | Reason::Required
                | Reason::TooLong
                | Reason::TooMany
                | Reason::TypeInvalid
        )
    });
    if blocking {
        errors.push(FieldError {
            path: FieldPath::root(),
            reason: Reason::Invalid,
            message: "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
        });
    } else {
        errors.extend(info.check_typed(object));
    }
    errors
}

/// Removes the field at `path` (a mapping entry); false when the path ends in
/// a list index, which cannot be removed without shifting its siblings.
pub(crate) fn remove_field(v: &mut Value, path: &FieldPath) -> bool {
    let Some((last, parent)) = path.segments().split_last() else {
        return false;
    };
    let (crate::path::PathSeg::Key(k) | crate::path::PathSeg::MapKey(k)) = last else {
        return false;
    };
    let mut node = v;
    for seg in parent {
        node = match (seg, node) {
            (crate::path::PathSeg::Key(k) | crate::path::PathSeg::MapKey(k), Value::Object(m)) => {
                match m.get_mut(k) {
                    Some(n) => n,
                    None => return true,
                }
            }
            (crate::path::PathSeg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(n) => n,
                None => return true,
            },
            _ => return true,
        };
    }
    if let Value::Object(m) = node {
        m.remove(k);
    }
    true
}

/// `Kind namespace/name` (or `Kind name`) for messages.
pub fn describe(object: &Value) -> Option<String> {
    let kind = object.get("kind").and_then(Value::as_str)?;
    let meta = object.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .or_else(|| {
            meta.and_then(|m| m.get("generateName"))
                .and_then(Value::as_str)
        })
        .unwrap_or("<unnamed>");
    Some(
        match meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
        {
            Some(ns) if !ns.is_empty() => format!("{kind} {ns}/{name}"),
            _ => format!("{kind} {name}"),
        },
    )
}

fn diag(m: &Manifest, path: &FieldPath, class: Class, mut message: String) -> Diagnostic {
    let (line, column) = m.position(path);
    // Show the value as written (`1.10`), not as parsed (`1.1`).
    if let Some(at) = message.find(schema::QUOTE_HINT)
        && let Some(raw) = m.raw_scalar(path)
    {
        let head = &message[..at];
        let head = head.rfind(' ').map_or(head, |sp| &head[..sp]);
        message = format!("{head} {raw}{}\"{raw}\")", schema::QUOTE_HINT);
    }
    Diagnostic {
        file: m.file.to_string(),
        line,
        column,
        document: Some(m.document),
        object: describe(&m.object),
        path: (!path.is_root()).then(|| path.to_string()),
        class,
        message,
    }
}

fn type_field(m: &Manifest, field: &str) -> Result<String, Box<Diagnostic>> {
    match m.object.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(other) => Err(Box::new(diag(
            m,
            &FieldPath::fields(field),
            Class::MissingType,
            format!("Invalid type: {field} must be a non-empty string, got {other}"),
        ))),
        None => Err(Box::new(diag(
            m,
            &FieldPath::root(),
            Class::MissingType,
            format!(
                "Required value: missing field {field:?} (every object needs apiVersion and kind)"
            ),
        ))),
    }
}

/// Validates one decoded object against the kinds known.
pub fn check_manifest(mut m: Manifest, kinds: &Kinds) -> Result<Valid, Vec<Diagnostic>> {
    if !m.object.is_object() {
        let got = match &m.object {
            Value::Array(_) => "a list",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(vec![diag(
            &m,
            &FieldPath::root(),
            Class::NotAMapping,
            format!(
                "document is {got}, not a mapping: a manifest must be an object with apiVersion, kind and metadata"
            ),
        )]);
    }
    let api_version = type_field(&m, "apiVersion");
    let kind = type_field(&m, "kind");
    let (api_version, kind) = match (api_version, kind) {
        (Ok(a), Ok(k)) => (a, k),
        (a, k) => {
            return Err([a.err(), k.err()]
                .into_iter()
                .flatten()
                .map(|d| *d)
                .collect());
        }
    };
    let info = kinds.lookup(&api_version, &kind).map_err(|e| {
        let field = match e {
            crate::kinds::LookupError::WrongVersion { .. } => "apiVersion",
            crate::kinds::LookupError::UnknownKind { .. } => "kind",
        };
        vec![diag(
            &m,
            &FieldPath::fields(field),
            Class::UnknownKind,
            e.to_string(),
        )]
    })?;
    convert_octal_modes(&mut m.object);
    // The schema (unknown fields, types) judges the object as written; the
    // rules judge it defaulted, as the API server runs them (a rule may
    // require a defaulted field, a CEL rule may read one). A built-in object
    // the schema refuses is judged as written throughout (its typed
    // defaulting would drop what the schema refused); a custom resource's
    // schema defaults only add fields.
    let errors = if let Some(custom) = info.custom() {
        validate_object(&info, &custom.apply_defaults(&info, m.object.clone()))
    } else if schema::validate(&info, &m.object).is_empty() {
        // defaults only fill in: what passes as written passes defaulted, so
        // only a refusal is worth a second look with the defaults applied
        let errors = info.check_typed(&m.object);
        if errors.is_empty() {
            errors
        } else {
            match info.apply_defaults(m.object.clone()) {
                Ok(defaulted) => info.check_typed(&defaulted),
                Err(_) => errors,
            }
        }
    } else {
        validate_object(&info, &m.object)
    };
    if errors.is_empty() {
        Ok(Valid { manifest: m, info })
    } else {
        let mut diags: Vec<Diagnostic> = errors
            .into_iter()
            .map(|e| diag(&m, &e.path, Class::Invalid, e.message))
            .collect();
        diags.sort_by(|a, b| {
            (a.line, a.column)
                .cmp(&(b.line, b.column))
                .then_with(|| a.path.cmp(&b.path))
        });
        diags.dedup();
        Err(diags)
    }
}

/// The outcome of checking a set of manifests.
#[derive(Debug, Default)]
pub struct Checked {
    /// Objects that passed.
    pub valid: Vec<Valid>,
    /// Every problem found.
    pub diagnostics: Vec<Diagnostic>,
}

/// Validates manifests and reports objects defined more than once
/// (same kind, namespace and name; a namespaced object that names no
/// namespace is in `default_namespace`). Custom resources are checked
/// against the CustomResourceDefinitions among the manifests.
pub fn check_all(manifests: Vec<Manifest>, default_namespace: &str) -> Checked {
    check_all_with(manifests, default_namespace, &Registry::builtin())
}

/// [`check_all`] with a registry that may already know custom kinds (read
/// from a cluster or a folder of definitions); definitions among the
/// manifests are added to it first.
pub fn check_all_with(
    manifests: Vec<Manifest>,
    default_namespace: &str,
    registry: &Registry,
) -> Checked {
    let mut out = Checked::default();
    out.diagnostics
        .extend(crate::crd::register_from_manifests(&manifests, registry));
    let kinds = registry.snapshot();
    for m in manifests {
        match check_manifest(m, &kinds) {
            Ok(v) => out.valid.push(v),
            Err(d) => out.diagnostics.extend(d),
        }
    }
    out.diagnostics
        .extend(duplicates(&out.valid, default_namespace));
    out
}

/// Diagnostics for every object that repeats an earlier one.
pub fn duplicates(valid: &[Valid], default_namespace: &str) -> Vec<Diagnostic> {
    let mut seen: HashMap<(String, &str, String, String), &Valid> = HashMap::new();
    let mut out = Vec::new();
    for v in valid {
        if v.name().is_empty() {
            continue;
        }
        let ns = if v.info.namespaced {
            v.namespace().unwrap_or(default_namespace).to_string()
        } else {
            String::new()
        };
        let key = (
            v.info.group.to_string(),
            v.info.kind.as_str(),
            ns,
            v.name().to_string(),
        );
        if let Some(first) = seen.get(&key) {
            let m = &v.manifest;
            out.push(diag(
                m,
                &FieldPath::fields("metadata.name"),
                Class::Duplicate,
                format!(
                    "duplicate object: {} is also defined at {}:{} (document {})",
                    describe(&m.object).unwrap_or_default(),
                    first.manifest.file,
                    first.manifest.line(),
                    first.manifest.document
                ),
            ));
        } else {
            seen.insert(key, v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_file;

    fn check(text: &str) -> Checked {
        check_all(decode_file("t.yaml", text).manifests, "default")
    }

    #[test]
    fn a_valid_deployment_passes() {
        let c = check(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n        volumeMounts: [{name: cfg, mountPath: /etc/cfg}]\n      volumes:\n      - name: cfg\n        configMap: {name: cfg, defaultMode: 0644}\n",
        );
        assert!(c.diagnostics.is_empty(), "{:#?}", c.diagnostics);
        assert_eq!(
            c.valid[0].object()["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"],
            420
        );
    }

    #[test]
    fn errors_carry_line_object_and_path() {
        let c = check(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: x\n    ports:\n    - containerPort: 70000\n",
        );
        assert_eq!(c.diagnostics.len(), 1, "{:#?}", c.diagnostics);
        let d = &c.diagnostics[0];
        assert_eq!(
            (d.line, d.object.as_deref(), d.path.as_deref()),
            (
                10,
                Some("Pod p"),
                Some("spec.containers[0].ports[0].containerPort")
            )
        );
    }

    #[test]
    fn selector_must_match_template() {
        let c = check(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: other}}\n    spec: {containers: [{name: c, image: x}]}\n",
        );
        assert_eq!(c.diagnostics.len(), 1, "{:#?}", c.diagnostics);
        assert!(
            c.diagnostics[0]
                .message
                .contains("`selector` does not match template `labels`")
        );
        assert_eq!(c.diagnostics[0].line, 7);
    }

    #[test]
    fn duplicates_are_found_across_default_namespace() {
        let c = check(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\n",
        );
        assert_eq!(c.diagnostics.len(), 1, "{:#?}", c.diagnostics);
        assert_eq!(c.diagnostics[0].class, Class::Duplicate);
        assert_eq!(c.diagnostics[0].line, 7);
    }

    #[test]
    fn not_a_mapping_and_missing_kind() {
        let c = check("- a\n- b\n---\napiVersion: v1\nmetadata: {name: x}\n");
        let classes: Vec<Class> = c.diagnostics.iter().map(|d| d.class).collect();
        assert_eq!(classes, vec![Class::NotAMapping, Class::MissingType]);
    }
}
