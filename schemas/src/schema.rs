//! JSON Schema of each served kind: generation from the types (schemars),
//! compilation (jsonschema), and translation of schema violations into
//! field errors a person can act on.

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::{Map, Value};

use crate::field_error::{FieldError, Reason};
use crate::kinds::{KindInfo, served};
use crate::path::FieldPath;
use crate::quantity::QUANTITY_PATTERN;

/// Introduces the hint appended to "expected string, got number" errors.
pub const QUOTE_HINT: &str = " (quote it to make it a string: ";

/// Post-processes a generated root schema: pins `apiVersion` and `kind`,
/// makes optional fields non-nullable (explicit nulls are dropped before
/// validation, as Kubernetes treats them as unset) and records the
/// group/version/kind the way Kubernetes' OpenAPI does.
pub(crate) fn finish_root(schema: &mut Value, info: &KindInfo) {
    strip_null(schema);
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            "apiVersion".into(),
            serde_json::json!({"description": format!("`{}`.", info.api_version), "type": "string", "enum": [info.api_version]}),
        );
        props.insert(
            "kind".into(),
            serde_json::json!({"description": format!("`{}`.", info.kind), "type": "string", "enum": [info.kind]}),
        );
    }
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "x-kubernetes-group-version-kind".into(),
            serde_json::json!([{"group": info.group, "version": info.version, "kind": info.kind}]),
        );
        let mut required = vec![Value::from("apiVersion"), Value::from("kind")];
        if let Some(Value::Array(existing)) = obj.get("required") {
            required.extend(
                existing
                    .iter()
                    .filter(|r| *r != "apiVersion" && *r != "kind")
                    .cloned(),
            );
        }
        obj.insert("required".into(), Value::Array(required));
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

struct Compiled {
    schema: Value,
    validator: Validator,
}

fn compiled() -> &'static HashMap<&'static str, Compiled> {
    static CACHE: OnceLock<HashMap<&'static str, Compiled>> = OnceLock::new();
    CACHE.get_or_init(|| {
        served()
            .iter()
            .filter_map(|info| {
                let schema = info.json_schema();
                // The schemas are generated from our own types; a failure here is a bug
                // that the `schemas_compile` test catches.
                let validator = jsonschema::options().build(&schema).ok()?;
                Some((info.kind, Compiled { schema, validator }))
            })
            .collect()
    })
}

/// Validates `object` against the kind's schema; every violation becomes a field error.
pub fn validate(info: &KindInfo, object: &Value) -> Vec<FieldError> {
    let Some(c) = compiled().get(info.kind) else {
        return vec![FieldError {
            path: FieldPath::root(),
            reason: Reason::Invalid,
            message: format!(
                "internal error: the schema of {} does not compile",
                info.kind
            ),
        }];
    };
    let mut out = Vec::new();
    for e in c.validator.iter_errors(object) {
        translate(&e, object, &c.schema, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// Whether every served kind's schema compiles (checked by a test).
pub fn all_compile() -> Result<(), String> {
    for info in served() {
        jsonschema::options()
            .build(&info.json_schema())
            .map_err(|e| format!("{}: {e}", info.kind))?;
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

fn json_type_name(t: JsonType) -> &'static str {
    match t {
        JsonType::Array => "list",
        JsonType::Boolean => "boolean",
        JsonType::Integer => "integer",
        JsonType::Null => "null",
        JsonType::Number => "number",
        JsonType::Object => "mapping",
        JsonType::String => "string",
    }
}

fn short_value(v: &Value) -> String {
    let s = match v {
        Value::Object(_) => return "a mapping".into(),
        Value::Array(_) => return "a list".into(),
        other => other.to_string(),
    };
    if s.len() > 60 {
        format!("{}…", &s[..s.floor_char_boundary(60)])
    } else {
        s
    }
}

fn expected_types(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => json_type_name(*t).to_string(),
        TypeKind::Multiple(set) => set
            .iter()
            .map(json_type_name)
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn translate(e: &ValidationError<'_>, root: &Value, schema: &Value, out: &mut Vec<FieldError>) {
    let path = FieldPath::from_pointer(e.instance_path().as_str(), root);
    let value = path.lookup(root).unwrap_or(&Value::Null);
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known = known_properties(schema, e.schema_path().as_str());
            for field in unexpected {
                let hint = match closest(field, &known) {
                    Some(k) => format!(" (did you mean {k:?}?)"),
                    None if !known.is_empty() && known.len() <= 30 => {
                        format!("; known fields here: {}", known.join(", "))
                    }
                    None => String::new(),
                };
                out.push(FieldError {
                    path: path.key(field.clone()),
                    reason: Reason::UnknownField,
                    message: format!("unknown field {field:?}{hint}"),
                });
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default().to_string();
            out.push(FieldError {
                path: path.key(name.clone()),
                reason: Reason::Required,
                message: format!("Required value: missing field {name:?}"),
            });
        }
        ValidationErrorKind::Type { kind } => {
            let expected = expected_types(kind);
            let mut message = format!(
                "Invalid type: expected {expected}, got {} {}",
                type_name(value),
                short_value(value)
            );
            if expected == "string" && matches!(value, Value::Number(_) | Value::Bool(_)) {
                message.push_str(&format!("{QUOTE_HINT}\"{value}\")"));
            }
            out.push(FieldError {
                path,
                reason: Reason::TypeInvalid,
                message,
            });
        }
        ValidationErrorKind::Enum { options } => {
            let supported: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|o| o.as_str().map_or(o.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let supported: Vec<&str> = supported.iter().map(String::as_str).collect();
            out.push(FieldError::not_supported(
                path,
                &short_value(value),
                &supported,
            ));
        }
        ValidationErrorKind::Pattern { pattern } if pattern == QUANTITY_PATTERN => {
            out.push(FieldError::invalid(
                path,
                value.as_str().unwrap_or_default(),
                "must be a quantity: a number with an optional suffix (m, k, M, G, Ki, Mi, Gi, e3, ...), e.g. 250m or 64Mi",
            ));
        }
        ValidationErrorKind::AnyOf { context } => {
            // Alternatives of different types (IntOrString, Quantity): say which types fit.
            let mut types = Vec::new();
            let mut nested = Vec::new();
            for branch in context {
                for sub in branch {
                    match sub.kind() {
                        ValidationErrorKind::Type { kind } => types.push(expected_types(kind)),
                        _ => nested.push(sub),
                    }
                }
            }
            if nested.is_empty() || types.len() == context.len() {
                out.push(FieldError {
                    path,
                    reason: Reason::TypeInvalid,
                    message: format!(
                        "Invalid type: expected {}, got {} {}",
                        types.join(" or "),
                        type_name(value),
                        short_value(value)
                    ),
                });
            } else {
                for sub in nested {
                    translate(sub, root, schema, out);
                }
            }
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            out.push(FieldError::invalid(
                path,
                short_value(value),
                format!("must be greater than or equal to {limit}"),
            ));
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            out.push(FieldError::invalid(
                path,
                short_value(value),
                format!("must be less than or equal to {limit}"),
            ));
        }
        _ => out.push(FieldError {
            path,
            reason: Reason::Invalid,
            message: format!("Invalid value: {}", e.masked()),
        }),
    }
}

/// The property names the schema allows where `additionalProperties` failed.
fn known_properties(schema: &Value, keyword_pointer: &str) -> Vec<String> {
    let parent = keyword_pointer
        .strip_suffix("/additionalProperties")
        .unwrap_or(keyword_pointer);
    schema
        .pointer(&format!("{parent}/properties"))
        .and_then(Value::as_object)
        .map(|m: &Map<String, Value>| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The known name closest to a misspelt one, if it is close enough to be a typo.
pub fn closest(name: &str, known: &[String]) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| {
            let d = if k.to_ascii_lowercase() == lower {
                0
            } else {
                edit_distance(&lower, &k.to_ascii_lowercase())
            };
            (d, k)
        })
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::lookup;
    use serde_json::json;

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
    fn missing_required_fields_and_wrong_api_version() {
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
    fn closest_finds_typos_only() {
        let known = vec![
            "replicas".to_string(),
            "selector".to_string(),
            "template".to_string(),
        ];
        assert_eq!(closest("replica", &known), Some("replicas".into()));
        assert_eq!(closest("Replicas", &known), Some("replicas".into()));
        assert_eq!(closest("volumes", &known), None);
    }
}
