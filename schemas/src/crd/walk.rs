//! Walks of a custom object along its CRD's structural schema: applying
//! `default`s (top-down, as kube-apiserver's defaulter), checking
//! `x-kubernetes-list-type` set and map uniqueness, the scale subresource's
//! values, and evaluating `x-kubernetes-validations` rules with `self` and
//! the correlated `oldSelf`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::crd::cel::{self, Outcome};
use crate::crd::{CompiledRule, ScalePaths};
use crate::field_error::{FieldError, Reason};
use crate::path::FieldPath;

fn is_true(s: &Value, key: &str) -> bool {
    s.get(key) == Some(&Value::Bool(true))
}

/// Applies the schema's `default`s to `v` (fields only, never list items or
/// map entries that are absent).
pub fn apply_defaults(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    let missing = match map.get(k) {
                        None => true,
                        Some(Value::Null) => !is_true(ps, "nullable"),
                        Some(_) => false,
                    };
                    if missing && let Some(d) = ps.get("default") {
                        map.insert(k.clone(), d.clone());
                    }
                    if let Some(child) = map.get_mut(k) {
                        apply_defaults(ps, child);
                    }
                }
            }
            if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let known: Vec<String> = schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                for (k, child) in map.iter_mut() {
                    if known.contains(k) {
                        continue;
                    }
                    if child.is_null()
                        && !is_true(ap, "nullable")
                        && let Some(d) = ap.get("default")
                    {
                        *child = d.clone();
                    }
                    apply_defaults(ap, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for item in items.iter_mut() {
                    if item.is_null()
                        && !is_true(is, "nullable")
                        && let Some(d) = is.get("default")
                    {
                        *item = d.clone();
                    }
                    apply_defaults(is, item);
                }
            }
        }
        _ => {}
    }
}

/// The values of a map list's keys for one item, as kube prints them (`{"name":"tcp"}`).
fn map_key(item: &Value, keys: &[String]) -> Value {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    Value::Object(m)
}

/// Duplicate items in `x-kubernetes-list-type: set` and `map` lists.
pub fn list_types(schema: &Value, v: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    list_types_at(schema, v, &FieldPath::root(), &mut out);
    out
}

fn list_types_at(schema: &Value, v: &Value, path: &FieldPath, out: &mut Vec<FieldError>) {
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                if let Some(cs) = props.and_then(|p| p.get(k)).or(additional) {
                    list_types_at(cs, child, &path.key(k.clone()), out);
                }
            }
        }
        Value::Array(items) => {
            match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    let mut seen: Vec<&Value> = Vec::new();
                    let mut reported: Vec<&Value> = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        if seen.contains(&item) {
                            if !reported.contains(&item) {
                                out.push(FieldError::duplicate(
                                    path.index(i),
                                    DuplicateShown(item),
                                ));
                                reported.push(item);
                            }
                        } else {
                            seen.push(item);
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<String> = schema
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|k| k.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    let mut seen: Vec<Value> = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        if !item.is_object() {
                            out.push(FieldError::invalid(
                                path.index(i),
                                DuplicateShown(item),
                                "must be an object for an array of list-type map",
                            ));
                            continue;
                        }
                        let key = map_key(item, &keys);
                        if seen.contains(&key) {
                            out.push(FieldError::duplicate(path.index(i), DuplicateShown(&key)));
                        } else {
                            seen.push(key);
                        }
                    }
                }
                _ => {}
            }
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    list_types_at(is, item, &path.index(i), out);
                }
            }
        }
        _ => {}
    }
}

/// Shows a JSON value as apimachinery's field errors print a bad value:
/// strings quoted, numbers and booleans plain, maps and lists as Go's `%#v`
/// of the decoded `interface{}` (`map[string]interface {}{"sku":"A"}`).
struct DuplicateShown<'a>(&'a Value);

impl std::fmt::Debug for DuplicateShown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Value::String(s) => write!(f, "{s:?}"),
            Value::Null => write!(f, "null"),
            other => write!(f, "{}", go_sharp_v(other)),
        }
    }
}

/// Go's `%#v` of a JSON value decoded into `interface{}`.
fn go_sharp_v(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!(
            "[]interface {{}}{{{}}}",
            items.iter().map(go_sharp_v).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            format!(
                "map[string]interface {{}}{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{k:?}:{}", go_sharp_v(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// The value at a simple JSON path (`.spec.replicas`).
pub fn at_path<'v>(v: &'v Value, json_path: &str) -> Option<&'v Value> {
    json_path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .try_fold(v, |node, k| node.get(k))
}

/// The scale subresource's constraints on the object's replicas fields.
pub fn scale_values(scale: &ScalePaths, v: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    for path in [&scale.spec_replicas, &scale.status_replicas] {
        if let Some(x) = at_path(v, path) {
            match x.as_i64() {
                Some(n) if n < 0 => out.push(FieldError::invalid(
                    FieldPath::fields(path),
                    n,
                    "should be a non-negative integer",
                )),
                Some(n) if n > i64::from(i32::MAX) => out.push(FieldError::invalid(
                    FieldPath::fields(path),
                    n,
                    "should be less than or equal to 2147483647",
                )),
                _ => {}
            }
        }
    }
    out
}

/// Calls `f(pointer, path, index, rule)` for every rule in the schema, with
/// the schema node's JSON pointer and its path as Kubernetes names it.
pub fn each_rule(schema: &Value, f: &mut dyn FnMut(&str, &FieldPath, usize, &Value)) {
    each_rule_at(schema, "", &FieldPath::fields("openAPIV3Schema"), f);
}

fn each_rule_at(
    schema: &Value,
    pointer: &str,
    path: &FieldPath,
    f: &mut dyn FnMut(&str, &FieldPath, usize, &Value),
) {
    for (i, r) in schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        f(pointer, path, i, r);
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            let escaped = k.replace('~', "~0").replace('/', "~1");
            each_rule_at(
                p,
                &format!("{pointer}/properties/{escaped}"),
                &path.key("properties").map_key(k.clone()),
                f,
            );
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(s) = schema.get(key).filter(|s| s.is_object()) {
            each_rule_at(s, &format!("{pointer}/{key}"), &path.key(key), f);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, s) in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            each_rule_at(
                s,
                &format!("{pointer}/{key}/{i}"),
                &path.key(key).index(i),
                f,
            );
        }
    }
}

/// A rule korral could not evaluate (reported as a warning, naming it).
#[derive(Clone, Debug, PartialEq)]
pub struct RuleWarning {
    /// Where the rule applies.
    pub path: FieldPath,
    /// The rule.
    pub rule: String,
    /// Why it could not be evaluated.
    pub reason: String,
}

impl std::fmt::Display for RuleWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: validation rule {:?} was not evaluated: korral's CEL evaluator cannot run it ({})",
            self.path, self.rule, self.reason
        )
    }
}

/// The schema type name Kubernetes 1.33 shows as the value of a failed rule.
fn type_name(schema: &Value) -> &'static str {
    if is_true(schema, "x-kubernetes-int-or-string")
        || is_true(schema, "x-kubernetes-preserve-unknown-fields")
    {
        return "";
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => "object",
        Some("array") => "array",
        Some("string") => "string",
        Some("integer") => "integer",
        Some("number") => "number",
        Some("boolean") => "boolean",
        _ => "",
    }
}

struct RuleWalk<'a> {
    rules: &'a HashMap<String, Vec<CompiledRule>>,
    errors: Vec<FieldError>,
    warnings: Vec<RuleWarning>,
}

/// Evaluates every rule of the schema against `v` (and `old` on updates).
pub fn rules(
    schema: &Value,
    rules: &HashMap<String, Vec<CompiledRule>>,
    v: &Value,
    old: Option<&Value>,
) -> (Vec<FieldError>, Vec<RuleWarning>) {
    if rules.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut walk = RuleWalk {
        rules,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    walk.node(schema, "", v, old, &FieldPath::root());
    (walk.errors, walk.warnings)
}

impl RuleWalk<'_> {
    fn node(
        &mut self,
        schema: &Value,
        pointer: &str,
        v: &Value,
        old: Option<&Value>,
        path: &FieldPath,
    ) {
        if v.is_null() {
            return;
        }
        if let Some(list) = self.rules.get(pointer) {
            for r in list {
                self.evaluate(r, schema, v, old, path);
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for (i, s) in schema
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(list) = self.rules.get(&format!("{pointer}/{key}/{i}")) {
                    for r in list {
                        self.evaluate(r, s, v, old, path);
                    }
                }
            }
        }
        match v {
            Value::Object(map) => {
                let props = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties").filter(|a| a.is_object());
                for (k, child) in map {
                    let old_child = old.and_then(|o| o.get(k));
                    if let Some(ps) = props.and_then(|p| p.get(k)) {
                        let escaped = k.replace('~', "~0").replace('/', "~1");
                        self.node(
                            ps,
                            &format!("{pointer}/properties/{escaped}"),
                            child,
                            old_child,
                            &path.key(k.clone()),
                        );
                    } else if let Some(a) = additional {
                        self.node(
                            a,
                            &format!("{pointer}/additionalProperties"),
                            child,
                            old_child,
                            &path.key(k.clone()),
                        );
                    }
                }
            }
            Value::Array(items) => {
                let Some(is) = schema.get("items") else {
                    return;
                };
                let keys: Option<Vec<String>> =
                    (schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map"))
                        .then(|| {
                            schema
                                .get("x-kubernetes-list-map-keys")
                                .and_then(Value::as_array)
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|k| k.as_str().map(str::to_string))
                                        .collect()
                                })
                                .unwrap_or_default()
                        });
                for (i, item) in items.iter().enumerate() {
                    // only map lists correlate items with the old object's
                    let old_item = keys.as_ref().and_then(|keys| {
                        let key = map_key(item, keys);
                        old.and_then(Value::as_array)
                            .and_then(|o| o.iter().find(|x| map_key(x, keys) == key))
                    });
                    self.node(
                        is,
                        &format!("{pointer}/items"),
                        item,
                        old_item,
                        &path.index(i),
                    );
                }
            }
            _ => {}
        }
    }

    fn evaluate(
        &mut self,
        r: &CompiledRule,
        schema: &Value,
        v: &Value,
        old: Option<&Value>,
        path: &FieldPath,
    ) {
        if r.uses_old_self && old.is_none() && !r.optional_old_self {
            return;
        }
        let outcome = cel::evaluate(&r.program, v, old);
        let at = match r.field_path.as_deref() {
            Some(fp) => fp
                .trim_start_matches('.')
                .split('.')
                .filter(|s| !s.is_empty())
                .fold(path.clone(), |p, seg| p.key(seg.to_string())),
            None => path.clone(),
        };
        let detail = match outcome {
            Outcome::Pass => return,
            Outcome::Fail => r
                .message_expression
                .as_ref()
                .and_then(|m| cel::evaluate_message(m, v, old))
                .or_else(|| r.message.as_ref().map(|m| m.trim().to_string()))
                .unwrap_or_else(|| format!("failed rule: {}", r.rule.trim())),
            Outcome::Error(e) => format!(
                "{e} evaluating rule: {}",
                r.message.as_deref().unwrap_or(r.rule.trim())
            ),
            Outcome::Unsupported(reason) => {
                self.warnings.push(RuleWarning {
                    path: at,
                    rule: r.rule.clone(),
                    reason,
                });
                return;
            }
        };
        let shown = type_name(schema);
        let (reason, message) = match r.reason.as_deref() {
            Some("FieldValueForbidden") => (Reason::Forbidden, format!("Forbidden: {detail}")),
            Some("FieldValueRequired") => (Reason::Required, format!("Required value: {detail}")),
            Some("FieldValueDuplicate") => {
                (Reason::Duplicate, format!("Duplicate value: {shown:?}"))
            }
            _ => (
                Reason::Invalid,
                format!("Invalid value: {shown:?}: {detail}"),
            ),
        };
        self.errors.push(FieldError {
            path: at,
            reason,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_fill_absent_fields_top_down() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "default": {},
            "properties": {"priority": {"type": "string", "default": "normal"}, "n": {"type": "integer", "nullable": true, "default": 1}}}}});
        let mut v = json!({});
        apply_defaults(&schema, &mut v);
        assert_eq!(v, json!({"spec": {"priority": "normal", "n": 1}}));
        let mut v = json!({"spec": {"n": null}});
        apply_defaults(&schema, &mut v);
        assert_eq!(v, json!({"spec": {"n": null, "priority": "normal"}}));
    }

    #[test]
    fn list_maps_and_sets_refuse_duplicates() {
        let schema = json!({"type": "object", "properties": {
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object"}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}});
        let v = json!({"ports": [{"name": "tcp"}, {"name": "tcp"}], "tags": ["a", "b", "a"]});
        let e: Vec<String> = list_types(&schema, &v)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            e,
            vec![
                r#"ports[1]: Duplicate value: map[string]interface {}{"name":"tcp"}"#,
                r#"tags[2]: Duplicate value: "a""#
            ]
        );
    }
}
