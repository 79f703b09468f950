//! CustomResourceDefinitions' `additionalPrinterColumns`: kubectl's JSONPath
//! subset (`.a.b`, `[0]`, `[*]`, `[?(@.type=="Ready")]`, `['key.with.dots']`)
//! evaluated against the object, and each column's value typed as
//! kube-apiserver's CRD table convertor types it. Hand-written because the
//! JSONPath crates implement RFC 9535, whose filter syntax differs from
//! client-go's.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use serde_json::{Value, json};

use crate::tables::{Column, D_AGE, age_of, col, name_col};

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    Field(String),
    Index(i64),
    All,
    Filter {
        path: Vec<String>,
        op: String,
        value: String,
    },
}

fn parse(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name == "*" {
                    steps.push(Step::All);
                } else if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let start = i + 1;
                let mut depth = 1;
                i += 1;
                while i < chars.len() && depth > 0 {
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                let inner: String = chars[start..i.saturating_sub(1)].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(n) = inner.parse::<i64>() {
                    steps.push(Step::Index(n));
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
                    steps.push(parse_filter(f));
                } else {
                    let key = inner.trim_matches(|c| c == '\'' || c == '"');
                    steps.push(Step::Field(key.to_string()));
                }
            }
            _ => {
                // a path without the leading dot
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Field(chars[start..i].iter().collect()));
            }
        }
    }
    steps
}

fn parse_filter(f: &str) -> Step {
    for op in ["==", "!=", "<=", ">=", "<", ">"] {
        if let Some((lhs, rhs)) = f.split_once(op) {
            let path = lhs
                .trim()
                .trim_start_matches('@')
                .split('.')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let value = rhs
                .trim()
                .trim_matches(|c| c == '\'' || c == '"')
                .to_string();
            return Step::Filter {
                path,
                op: op.to_string(),
                value,
            };
        }
    }
    let path = f
        .trim()
        .trim_start_matches('@')
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Step::Filter {
        path,
        op: String::new(),
        value: String::new(),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<no value>".into(),
        other => other.to_string(),
    }
}

fn filter_matches(item: &Value, path: &[String], op: &str, value: &str) -> bool {
    let mut n = item;
    for p in path {
        match n.get(p) {
            Some(x) => n = x,
            None => return false,
        }
    }
    if op.is_empty() {
        return true;
    }
    let actual = text_of(n);
    match op {
        "==" => actual == value,
        "!=" => actual != value,
        _ => {
            let (a, b) = (actual.parse::<f64>(), value.parse::<f64>());
            match (a, b) {
                (Ok(a), Ok(b)) => match op {
                    "<" => a < b,
                    ">" => a > b,
                    "<=" => a <= b,
                    ">=" => a >= b,
                    _ => false,
                },
                _ => false,
            }
        }
    }
}

/// Every value the path selects.
fn find<'v>(obj: &'v Value, steps: &[Step]) -> Vec<&'v Value> {
    let mut current = vec![obj];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(f) => {
                    if let Some(x) = v.get(f) {
                        next.push(x);
                    }
                }
                Step::Index(n) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                        if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                            next.push(x);
                        }
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter { path, op, value } => {
                    if let Some(a) = v.as_array() {
                        next.extend(a.iter().filter(|x| filter_matches(x, path, op, value)));
                    }
                }
            }
        }
        current = next;
    }
    current
}

/// The columns of a custom kind: Name, then the CRD's (or Age by default).
pub fn custom_columns(defs: &[CustomResourceColumnDefinition]) -> Vec<(Column, Vec<Step>)> {
    let mut out = vec![(name_col(), Vec::new())];
    if defs.is_empty() {
        out.push((
            col("Age", "date", 0, D_AGE),
            parse(".metadata.creationTimestamp"),
        ));
        return out;
    }
    for d in defs {
        let ty: &'static str = match d.type_.as_str() {
            "integer" => "integer",
            "number" => "number",
            "boolean" => "boolean",
            "date" => "date",
            _ => "string",
        };
        let format: &'static str = match d.format.as_deref().unwrap_or("") {
            "int32" => "int32",
            "int64" => "int64",
            "float" => "float",
            "double" => "double",
            "byte" => "byte",
            "date" => "date",
            "date-time" => "date-time",
            "password" => "password",
            _ => "",
        };
        let description = d
            .description
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                format!(
                    "Custom resource definition column (in JSONPath format): {}",
                    d.json_path
                )
            });
        out.push((
            Column {
                name: d.name.clone(),
                ty,
                format,
                priority: d.priority.unwrap_or(0),
                description,
            },
            parse(&d.json_path),
        ));
    }
    // the Name column is added by the caller
    out.remove(0);
    out.insert(0, (name_col(), Vec::new()));
    out
}

/// One cell: the first value the path selects, typed as the column says.
pub fn cell(obj: &Value, steps: &[Step], ty: &str) -> Value {
    if steps.is_empty() {
        return Value::Null;
    }
    let Some(v) = find(obj, steps).into_iter().next() else {
        return Value::Null;
    };
    match ty {
        "string" => json!(text_of(v)),
        "integer" => match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f.trunc() as i64))
                .map_or(Value::Null, |i| json!(i)),
            _ => Value::Null,
        },
        "number" => match v {
            Value::Number(n) => n.as_f64().map_or(Value::Null, |f| json!(f)),
            _ => Value::Null,
        },
        "boolean" => match v {
            Value::Bool(b) => json!(b),
            _ => Value::Null,
        },
        "date" => match v {
            Value::String(t) if t.is_empty() || t == "null" => json!("<unknown>"),
            Value::String(t) => {
                if chrono::DateTime::parse_from_rfc3339(t).is_ok() {
                    json!(age_of(Some(t)))
                } else {
                    json!("<invalid>")
                }
            }
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_select_fields_items_and_filters() {
        let obj = json!({"spec": {"replicas": 3, "customer": "acme"},
            "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(cell(&obj, &parse(".spec.replicas"), "integer"), json!(3));
        assert_eq!(
            cell(&obj, &parse(".spec.customer"), "string"),
            json!("acme")
        );
        assert_eq!(
            cell(
                &obj,
                &parse(".status.conditions[?(@.type==\"Ready\")].status"),
                "string"
            ),
            json!("True")
        );
        assert_eq!(
            cell(&obj, &parse(".status.conditions[0].type"), "string"),
            json!("Synced")
        );
        assert_eq!(cell(&obj, &parse(".spec.missing"), "string"), Value::Null);
        assert_eq!(cell(&obj, &parse(".spec.customer"), "integer"), Value::Null);
    }
}
