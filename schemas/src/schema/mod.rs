//! The JSON Schema of every served kind, in one shape whatever its source:
//! built-in kinds' schemas generated from their types (k8s-openapi's and
//! korral's, via schemars) and custom kinds' converted from their CRD. Both
//! refuse unknown fields (`additionalProperties: false` wherever a schema
//! lists properties), so the same walk prunes unknown fields (`prune.rs`)
//! and the same validator reports violations (`translate.rs`).

mod prune;
mod translate;

use serde_json::{Map, Value, json};

use crate::field_error::{FieldError, Reason};
use crate::kinds::{BuiltinOps, KindInfo};
use crate::path::FieldPath;
use crate::quantity::QUANTITY_PATTERN;

pub use prune::prune_unknown;
pub use translate::{QUOTE_HINT, closest};

/// The k8s-openapi schema names whose generated schemas say nothing a
/// validator can check; korral's versions replace them.
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const ANY_JSON: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON";

/// How violations are worded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Built-in kinds: korral's wording (types seen, suggestions for typos).
    Korral,
    /// Custom resources: kube-openapi's wording, as kube-apiserver answers.
    KubeOpenApi,
}

/// A kind's schema, compiled once.
pub struct CompiledSchema {
    schema: Value,
    style: Style,
    validator: Result<jsonschema::Validator, String>,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema")
            .field("compiles", &self.validator.is_ok())
            .finish()
    }
}

impl CompiledSchema {
    /// Compiles a root schema (draft 2020-12, definitions under `$defs`).
    pub fn new(schema: Value, style: Style) -> CompiledSchema {
        let mut options = jsonschema::options();
        if style == Style::KubeOpenApi {
            options = translate::kube_formats(options).should_validate_formats(true);
        }
        let validator = options.build(&schema).map_err(|e| e.to_string());
        CompiledSchema {
            schema,
            style,
            validator,
        }
    }

    /// The schema.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Why the schema does not compile, if it does not.
    pub fn error(&self) -> Option<&str> {
        self.validator.as_ref().err().map(String::as_str)
    }

    /// Validates `object`; every violation becomes a field error.
    pub fn validate(&self, object: &Value) -> Vec<FieldError> {
        let validator = match &self.validator {
            Ok(v) => v,
            Err(e) => {
                return vec![FieldError {
                    path: FieldPath::root(),
                    reason: Reason::Invalid,
                    message: format!("internal error: the schema does not compile: {e}"),
                }];
            }
        };
        let mut out = Vec::new();
        for e in validator.iter_errors(object) {
            match self.style {
                Style::Korral => translate::translate(&e, object, &self.schema, &mut out),
                Style::KubeOpenApi => translate::translate_kube_openapi(&e, object, &mut out),
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Removes fields the schema does not know from `object`, returning
    /// their paths (what `fieldValidation` reports or refuses).
    pub fn prune(&self, object: &mut Value) -> Vec<FieldPath> {
        prune_unknown(&self.schema, object)
    }
}

/// Validates `object` against the kind's schema.
pub fn validate(info: &KindInfo, object: &Value) -> Vec<FieldError> {
    info.compiled().validate(object)
}

/// The root schema of a built-in kind: generated from its type, then made
/// strict and precise (see [`finish_root`]).
pub(crate) fn builtin_root(info: &KindInfo, ops: &BuiltinOps) -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
        s.meta_schema = Some("https://json-schema.org/draft/2020-12/schema".into());
    });
    let mut generator = settings.into_generator();
    let schema = (ops.schema)(&mut generator);
    let mut v = schema.to_value();
    finish_root(&mut v, info);
    v
}

/// Post-processes a root schema: optional fields not nullable (explicit
/// nulls are dropped before validation, as Kubernetes treats them as unset),
/// unknown fields refused, quantities and int-or-strings checked, `metadata`
/// not required (its absence is reported as a missing name), `apiVersion`
/// and `kind` pinned, and the group/version/kind recorded as Kubernetes'
/// OpenAPI does.
pub(crate) fn finish_root(schema: &mut Value, info: &KindInfo) {
    make_strict(schema);
    if let Some(Value::Object(defs)) = schema.get_mut("$defs") {
        fix_defs(defs);
    }
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (field, value) in [("apiVersion", &info.api_version), ("kind", &info.kind)] {
            let description = props
                .get(field)
                .and_then(|p| p.get("description"))
                .cloned()
                .unwrap_or_else(|| Value::String(format!("`{value}`.")));
            props.insert(
                field.into(),
                json!({"description": description, "type": "string", "enum": [value]}),
            );
        }
    }
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": info.group, "version": info.version, "kind": info.kind}]),
        );
        let mut required = vec![Value::from("apiVersion"), Value::from("kind")];
        if let Some(Value::Array(existing)) = obj.get("required") {
            required.extend(
                existing
                    .iter()
                    .filter(|r| *r != "apiVersion" && *r != "kind" && *r != "metadata")
                    .cloned(),
            );
        }
        obj.insert("required".into(), Value::Array(required));
    }
}

/// Optional fields not nullable, unknown fields refused, everywhere in `v`.
pub(crate) fn make_strict(v: &mut Value) {
    strip_null(v);
    close_objects(v);
}

/// Replaces the generated definitions of quantities and int-or-strings
/// (which say nothing a validator can check) with checkable ones.
pub(crate) fn fix_defs(defs: &mut Map<String, Value>) {
    for (name, def) in defs.iter_mut() {
        let description = def.get("description").cloned();
        let replacement = match name.as_str() {
            QUANTITY => Some(json!({"anyOf": [
                {"type": "string", "pattern": QUANTITY_PATTERN},
                {"type": "number"}
            ]})),
            INT_OR_STRING => Some(json!({"anyOf": [{"type": "integer"}, {"type": "string"}]})),
            ANY_JSON => {
                // any JSON value (a CRD schema's `default`, `enum`, `example`)
                let mut any = json!({"x-kubernetes-preserve-unknown-fields": true});
                if let (Some(d), Some(m)) = (description, any.as_object_mut()) {
                    m.insert("description".into(), d);
                }
                *def = any;
                continue;
            }
            _ => None,
        };
        if let Some(mut r) = replacement {
            if let Some(m) = r.as_object_mut() {
                if let Some(d) = description {
                    m.insert("description".into(), d);
                }
                m.insert("x-kubernetes-int-or-string".into(), Value::Bool(true));
            }
            *def = r;
        }
    }
}

/// Adds `additionalProperties: false` to every schema that lists properties
/// and says nothing about others.
fn close_objects(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            if obj.contains_key("properties")
                && !obj.contains_key("additionalProperties")
                && obj.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true))
            {
                obj.insert("additionalProperties".into(), Value::Bool(false));
            }
            for child in obj.values_mut() {
                close_objects(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// Removes `null` from `type` lists and `{"type": "null"}` from `anyOf`
/// alternatives, everywhere in the schema.
fn strip_null(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            if let Some(Value::Array(types)) = obj.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let single = types.remove(0);
                    obj.insert("type".into(), single);
                }
            }
            if let Some(Value::Array(alts)) = obj.get_mut("anyOf") {
                alts.retain(|a| a.get("type").is_none_or(|t| t != "null"));
                if alts.len() == 1 {
                    let single = alts.remove(0);
                    obj.remove("anyOf");
                    if let Value::Object(inner) = single {
                        for (k, val) in inner {
                            obj.entry(k).or_insert(val);
                        }
                    }
                }
            }
            for child in obj.values_mut() {
                strip_null(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// Resolves a local `$ref` (`#/$defs/NAME`) against the root schema.
pub(crate) fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let mut s = schema;
    for _ in 0..16 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(target) => s = target,
                None => return s,
            },
            None => return s,
        }
    }
    s
}

/// The schema of a property (`field`) of an object schema, following
/// references and `allOf` wrappers.
pub fn property<'a>(root: &'a Value, schema: &'a Value, field: &str) -> Option<&'a Value> {
    let s = resolve(root, schema);
    if let Some(p) = s.get("properties").and_then(|p| p.get(field)) {
        return Some(p);
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        return all.iter().find_map(|sub| property(root, sub, field));
    }
    match s.get("additionalProperties") {
        Some(Value::Object(_)) => s.get("additionalProperties"),
        _ => None,
    }
}

/// Fills the required scalar properties `v` lacks with their zero values,
/// as Go's encoder writes a struct's non-`omitempty` fields: a new
/// ReplicaSet's `status` is `{"replicas": 0}`, not `{}`.
pub fn fill_go_zero_values(root: &Value, schema: &Value, v: &mut Value) {
    let s = resolve(root, schema);
    let Value::Object(obj) = v else { return };
    for field in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = field.as_str() else { continue };
        if obj.contains_key(name) {
            continue;
        }
        let zero = match property(root, s, name)
            .map(|p| resolve(root, p))
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
        {
            Some("integer" | "number") => json!(0),
            Some("boolean") => json!(false),
            Some("string") => json!(""),
            _ => continue,
        };
        obj.insert(name.to_string(), zero);
    }
}

/// Whether every built-in kind's schema compiles (checked by a test).
pub fn all_compile() -> Result<(), String> {
    for info in crate::kinds::builtin_kinds() {
        if let Some(e) = info.compiled().error() {
            return Err(format!("{} {}: {e}", info.api_version, info.kind));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::lookup;

    fn errors(v: Value) -> Vec<String> {
        let info = lookup(
            v["apiVersion"].as_str().unwrap_or(""),
            v["kind"].as_str().unwrap_or(""),
        )
        .expect("kind");
        validate(info, &v).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_schema_compiles() {
        assert_eq!(all_compile(), Ok(()));
    }

    #[test]
    fn unknown_fields_get_a_suggestion() {
        let e = errors(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c", "imagee": "x"}]}}),
        );
        assert_eq!(
            e,
            vec![r#"spec.containers[0].imagee: unknown field "imagee" (did you mean "image"?)"#]
        );
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let e = errors(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"v": 1.5}}}),
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("metadata.labels.v: Invalid type: expected string, got number 1.5"),
            "{e:?}"
        );
        assert!(e[0].contains("quote it"), "{e:?}");
    }

    #[test]
    fn int_or_string_and_quantities_report_their_forms() {
        let e = errors(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
            "spec": {"ports": [{"port": 80, "targetPort": true}]}}),
        );
        assert_eq!(
            e,
            vec![
                "spec.ports[0].targetPort: Invalid type: expected integer or string, got boolean true"
            ]
        );
        let e = errors(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "lots"}}}]}}),
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("spec.containers[0].resources.limits.cpu: Invalid value: \"lots\": must be a quantity"), "{e:?}");
    }

    #[test]
    fn missing_required_fields() {
        let e = errors(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": [{"image": "x"}]}}),
        );
        assert_eq!(
            e,
            vec![r#"spec.containers[0].name: Required value: missing field "name""#]
        );
    }

    #[test]
    fn unknown_fields_are_pruned_with_their_paths() {
        let info = lookup("apps/v1", "Deployment").expect("kind");
        let mut v = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "bogus": 1},
            "spec": {"foo": 1, "selector": {}, "template": {"spec": {"containers": [{"name": "c", "baz": true}]}}}});
        let pruned: Vec<String> = info
            .compiled()
            .prune(&mut v)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            pruned,
            vec![
                "metadata.bogus",
                "spec.foo",
                "spec.template.spec.containers[0].baz"
            ]
        );
        assert!(validate(info, &v).is_empty(), "{:?}", validate(info, &v));
    }
}
