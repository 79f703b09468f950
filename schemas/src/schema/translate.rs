//! Schema violations (from the `jsonschema` crate) translated into field
//! errors a person can act on: unknown fields with a suggestion, types with
//! the value seen, enums with the supported values.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError};
use serde_json::{Map, Value};

use crate::field_error::{FieldError, Reason};
use crate::path::FieldPath;
use crate::quantity::QUANTITY_PATTERN;

/// Introduces the hint appended to "expected string, got number" errors.
pub const QUOTE_HINT: &str = " (quote it to make it a string: ";

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

pub(crate) fn translate(
    e: &ValidationError<'_>,
    root: &Value,
    schema: &Value,
    out: &mut Vec<FieldError>,
) {
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

/// The formats Kubernetes checks in custom resources that JSON Schema does
/// not know, or knows differently (`duration` is Go's, not ISO 8601's).
pub(crate) fn kube_formats<'i>(
    options: jsonschema::ValidationOptions<'i>,
) -> jsonschema::ValidationOptions<'i> {
    options
        .with_format("k8s-duration", |s: &str| {
            crate::duration::parse_duration(s).is_ok()
        })
        .with_format("k8s-quantity", |s: &str| {
            s.parse::<crate::quantity::Amount>().is_ok()
        })
        .with_format("k8s-cidr", |s: &str| {
            crate::validation::names::cidr(s).is_none()
        })
        .with_format("k8s-mac", |s: &str| {
            let parts: Vec<&str> = s.split([':', '-']).collect();
            matches!(parts.len(), 6 | 8 | 20)
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .with_format("k8s-byte", |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        })
}

/// The JSON type name kube-openapi shows for a value.
fn kube_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value as Go's `%v`/`%q` print it in field errors.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn kube_type_names(kind: &TypeKind) -> String {
    let name = |t: JsonType| match t {
        JsonType::Array => "array",
        JsonType::Boolean => "boolean",
        JsonType::Integer => "integer",
        JsonType::Null => "null",
        JsonType::Number => "number",
        JsonType::Object => "object",
        JsonType::String => "string",
    };
    match kind {
        TypeKind::Single(t) => name(*t).to_string(),
        TypeKind::Multiple(set) => set
            .iter()
            .filter(|t| *t != JsonType::Null)
            .map(name)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Translates a violation into kube-openapi's wording, as kube-apiserver
/// reports custom resources' schema violations.
pub(crate) fn translate_kube_openapi(
    e: &ValidationError<'_>,
    root: &Value,
    out: &mut Vec<FieldError>,
) {
    let path = FieldPath::from_pointer(e.instance_path().as_str(), root);
    let value = path.lookup(root).unwrap_or(&Value::Null);
    let p = path.to_string();
    let invalid = |shown: String, detail: String| FieldError {
        path: path.clone(),
        reason: Reason::Invalid,
        message: format!("Invalid value: {shown}: {detail}"),
    };
    match e.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default().to_string();
            out.push(FieldError {
                path: path.key(name),
                reason: Reason::Required,
                message: "Required value".into(),
            });
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for field in unexpected {
                let child = path.key(field.clone());
                out.push(FieldError {
                    message: format!("unknown field {:?}", child.to_string()),
                    path: child,
                    reason: Reason::UnknownField,
                });
            }
        }
        ValidationErrorKind::Type { kind } => {
            let t = kube_type(value);
            out.push(FieldError {
                path: path.clone(),
                reason: Reason::TypeInvalid,
                message: format!(
                    "Invalid value: {t:?}: {p} in body must be of type {}: {t:?}",
                    kube_type_names(kind)
                ),
            });
        }
        ValidationErrorKind::AnyOf { context } => {
            // int-or-string: both alternatives are types
            let all_types = context.iter().all(|b| {
                b.iter()
                    .all(|sub| matches!(sub.kind(), ValidationErrorKind::Type { .. }))
            });
            if all_types {
                let t = kube_type(value);
                out.push(FieldError {
                    path: path.clone(),
                    reason: Reason::TypeInvalid,
                    message: format!(
                        "Invalid value: {t:?}: {p} in body must be of type integer,string: {t:?}"
                    ),
                });
            } else {
                out.push(invalid(
                    go_value(value),
                    format!("{p} in body must validate at least one schema (anyOf)"),
                ));
            }
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
            let shown = value.as_str().map_or(value.to_string(), str::to_string);
            out.push(FieldError::not_supported(path, &shown, &supported));
        }
        ValidationErrorKind::Pattern { pattern } => {
            out.push(invalid(
                go_value(value),
                format!("{p} in body should match '{pattern}'"),
            ));
        }
        ValidationErrorKind::Format { format } => {
            let f = format.strip_prefix("k8s-").unwrap_or(format);
            out.push(invalid(
                go_value(value),
                format!("{p} in body must be of type {f}: {}", go_value(value)),
            ));
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit }
        | ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            let relation = match e.kind() {
                ValidationErrorKind::Minimum { .. } => "greater than or equal to",
                ValidationErrorKind::ExclusiveMinimum { .. } => "greater than",
                ValidationErrorKind::Maximum { .. } => "less than or equal to",
                _ => "less than",
            };
            out.push(invalid(
                go_value(value),
                format!("{p} in body should be {relation} {}", go_float(limit)),
            ));
        }
        ValidationErrorKind::MultipleOf { multiple_of } => {
            out.push(invalid(
                go_value(value),
                format!("{p} in body should be a multiple of {multiple_of}"),
            ));
        }
        ValidationErrorKind::MaxLength { limit } => out.push(FieldError {
            path: path.clone(),
            reason: Reason::TooLong,
            message: format!("Too long: may not be more than {limit} bytes"),
        }),
        ValidationErrorKind::MinLength { limit } => {
            out.push(invalid(
                go_value(value),
                format!("{p} in body should be at least {limit} chars long"),
            ));
        }
        ValidationErrorKind::MaxItems { limit } | ValidationErrorKind::MaxProperties { limit } => {
            let n = value
                .as_array()
                .map(Vec::len)
                .or_else(|| value.as_object().map(Map::len))
                .unwrap_or(0);
            out.push(FieldError {
                path: path.clone(),
                reason: Reason::TooMany,
                message: format!("Too many: {n}: must have at most {limit} items"),
            });
        }
        ValidationErrorKind::MinItems { limit } => {
            let n = value.as_array().map_or(0, Vec::len);
            out.push(invalid(
                n.to_string(),
                format!("{p} in body should have at least {limit} items"),
            ));
        }
        ValidationErrorKind::MinProperties { limit } => {
            let n = value.as_object().map_or(0, Map::len);
            out.push(invalid(
                n.to_string(),
                format!("{p} in body should have at least {limit} properties"),
            ));
        }
        ValidationErrorKind::OneOfNotValid { .. } => {
            out.push(invalid(
                go_value(value),
                format!("{p:?} must validate one and only one schema (oneOf). Found none valid"),
            ));
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            out.push(invalid(
                go_value(value),
                format!("{p:?} must validate one and only one schema (oneOf). Found more than one"),
            ));
        }
        ValidationErrorKind::Not { .. } => {
            out.push(invalid(
                go_value(value),
                format!("{p} in body must not validate the schema (not)"),
            ));
        }
        _ => out.push(invalid(go_value(value), e.masked().to_string())),
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

/// A schema limit as Go's `%v` prints a float64 (`10`, not `10.0`).
fn go_float(limit: &Value) -> String {
    match limit.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => limit.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
