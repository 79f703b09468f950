//! JSON patch (RFC 6902) with RFC 6901 pointers: add, remove, replace, move,
//! copy and test, applied all or nothing. Malformed patches are 400s;
//! operations that do not fit the object are 422s naming the operation's
//! index and path, as Kubernetes answers them.

use serde_json::Value;

use super::error::PatchError;
use super::values::{json_equal, type_name};

/// Kubernetes refuses JSON patches with more operations than this (413).
pub const MAX_OPERATIONS: usize = 10_000;

/// A JSON patch operation kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Insert into a list or set a map entry.
    Add,
    /// Remove an existing value.
    Remove,
    /// Replace an existing value.
    Replace,
    /// Remove from `from`, add at `path`.
    Move,
    /// Copy from `from` to `path`.
    Copy,
    /// Fail the whole patch unless the value at `path` equals `value`.
    Test,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
            Op::Replace => "replace",
            Op::Move => "move",
            Op::Copy => "copy",
            Op::Test => "test",
        }
    }
}

/// One parsed operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// What to do.
    pub op: Op,
    /// The target, as written.
    pub path: String,
    /// The source of `move` and `copy`, as written.
    pub from: Option<String>,
    /// The value of `add`, `replace` and `test`.
    pub value: Option<Value>,
}

/// Splits an RFC 6901 pointer into unescaped reference tokens.
pub fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "JSON pointer {pointer:?} must be empty or start with '/'"
        ));
    };
    rest.split('/')
        .map(|raw| {
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => {
                            return Err(format!(
                                "JSON pointer {pointer:?} has a '~' not followed by '0' or '1'"
                            ));
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// Parses a JSON patch body: a JSON list of operations.
pub fn parse(body: &[u8]) -> Result<Vec<Operation>, PatchError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::BadRequest(format!("the JSON patch is not valid JSON: {e}")))?;
    let Value::Array(items) = v else {
        // kube-apiserver decodes into its []jsonPatchOp and says so
        return Err(PatchError::BadRequest(format!(
            "error decoding patch: json: cannot unmarshal {} into Go value of type []handlers.jsonPatchOp",
            super::values::go_json_type(&v)
        )));
    };
    if items.len() > MAX_OPERATIONS {
        return Err(PatchError::TooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| parse_operation(i, item).map_err(PatchError::BadRequest))
        .collect()
}

fn parse_operation(i: usize, item: Value) -> Result<Operation, String> {
    let Value::Object(mut m) = item else {
        return Err(format!(
            "json patch operation {i}: must be an object with \"op\" and \"path\", got {}",
            type_name(&item)
        ));
    };
    let string =
        |m: &serde_json::Map<String, Value>, key: &str| -> Result<Option<String>, String> {
            match m.get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!(
                    "json patch operation {i}: \"{key}\" must be a string, got {}",
                    type_name(other)
                )),
            }
        };
    let op = match string(&m, "op")?.as_deref() {
        Some("add") => Op::Add,
        Some("remove") => Op::Remove,
        Some("replace") => Op::Replace,
        Some("move") => Op::Move,
        Some("copy") => Op::Copy,
        Some("test") => Op::Test,
        Some(other) => {
            return Err(format!(
                "json patch operation {i}: unknown op {other:?} (expected add, remove, replace, move, copy or test)"
            ));
        }
        None => return Err(format!("json patch operation {i}: missing \"op\"")),
    };
    let name = op.name();
    let path = string(&m, "path")?
        .ok_or_else(|| format!("json patch operation {i} ({name}): missing \"path\""))?;
    parse_pointer(&path).map_err(|e| format!("json patch operation {i} ({name}): {e}"))?;
    let from = string(&m, "from")?;
    if matches!(op, Op::Move | Op::Copy) {
        let f = from
            .as_deref()
            .ok_or_else(|| format!("json patch operation {i} ({name} {path}): missing \"from\""))?;
        parse_pointer(f).map_err(|e| format!("json patch operation {i} ({name}): {e}"))?;
    }
    let value = m.remove("value");
    if matches!(op, Op::Add | Op::Replace | Op::Test) && value.is_none() {
        return Err(format!(
            "json patch operation {i} ({name} {path}): missing \"value\""
        ));
    }
    Ok(Operation {
        op,
        path,
        from,
        value,
    })
}

/// Applies the operations in order to a copy of `doc`; the first failure
/// fails the whole patch and `doc` is untouched.
pub fn apply_json_patch(doc: &Value, ops: &[Operation]) -> Result<Value, PatchError> {
    let mut out = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        apply_one(&mut out, op).map_err(|e| {
            let from = op
                .from
                .as_deref()
                .map(|f| format!(" from {f}"))
                .unwrap_or_default();
            PatchError::Unprocessable(format!(
                "json patch operation {i} ({}{from} {}): {e}",
                op.op.name(),
                display_path(&op.path)
            ))
        })?;
    }
    Ok(out)
}

fn display_path(p: &str) -> &str {
    if p.is_empty() { "<root>" } else { p }
}

fn apply_one(doc: &mut Value, op: &Operation) -> Result<(), String> {
    let path = parse_pointer(&op.path)?;
    let value = || op.value.clone().unwrap_or(Value::Null);
    match op.op {
        Op::Add => add(doc, &path, value()),
        Op::Remove => remove(doc, &path).map(drop),
        Op::Replace => {
            let target = get_mut(doc, &path)?;
            *target = value();
            Ok(())
        }
        Op::Move => {
            let from = parse_pointer(op.from.as_deref().unwrap_or_default())?;
            if from == path {
                return get_mut(doc, &path).map(drop);
            }
            if path.len() > from.len() && path.starts_with(&from) {
                return Err("cannot move a value into one of its own children".into());
            }
            let v = remove(doc, &from)?;
            add(doc, &path, v)
        }
        Op::Copy => {
            let from = parse_pointer(op.from.as_deref().unwrap_or_default())?;
            let v = get_mut(doc, &from)?.clone();
            add(doc, &path, v)
        }
        Op::Test => {
            let actual = get_mut(doc, &path)?;
            let want = value();
            if json_equal(actual, &want) {
                Ok(())
            } else {
                Err(format!(
                    "test failed: the value is {}, not {}",
                    short(actual),
                    short(&want)
                ))
            }
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

/// An array index token: digits without leading zeros.
fn index(token: &str) -> Option<usize> {
    if token.is_empty()
        || !token.bytes().all(|b| b.is_ascii_digit())
        || (token.len() > 1 && token.starts_with('0'))
    {
        return None;
    }
    token.parse().ok()
}

fn get_mut<'v>(doc: &'v mut Value, path: &[String]) -> Result<&'v mut Value, String> {
    let mut node = doc;
    for (depth, token) in path.iter().enumerate() {
        let here = || pointer_of(&path[..=depth]);
        node = match node {
            Value::Object(m) => m
                .get_mut(token)
                .ok_or_else(|| format!("path {} does not exist", here()))?,
            Value::Array(items) => {
                let len = items.len();
                let i = index(token).ok_or_else(|| {
                    format!("{} is not a list index (the value there is a list)", here())
                })?;
                items
                    .get_mut(i)
                    .ok_or_else(|| format!("index {i} is out of range for a list of {len}"))?
            }
            other => {
                return Err(format!(
                    "path {} does not exist: the value above it is {}",
                    here(),
                    type_name(other)
                ));
            }
        };
    }
    Ok(node)
}

fn pointer_of(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent_path)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent_path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
                return Ok(());
            }
            let len = items.len();
            let i = index(last).ok_or_else(|| format!("{last:?} is not a list index"))?;
            if i > len {
                return Err(format!(
                    "index {i} is out of range for a list of {len} (use \"-\" to append)"
                ));
            }
            items.insert(i, value);
            Ok(())
        }
        other => Err(format!(
            "cannot add to {}: the value there is {}",
            display_path(&pointer_of(parent_path)),
            type_name(other)
        )),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, String> {
    let Some((last, parent_path)) = path.split_last() else {
        return Err("cannot remove the whole object".into());
    };
    match get_mut(doc, parent_path)? {
        Value::Object(m) => m
            .shift_remove(last)
            .ok_or_else(|| format!("path {} does not exist", pointer_of(path))),
        Value::Array(items) => {
            let len = items.len();
            let i = index(last).ok_or_else(|| format!("{last:?} is not a list index"))?;
            if i >= len {
                return Err(format!("index {i} is out of range for a list of {len}"));
            }
            Ok(items.remove(i))
        }
        other => Err(format!(
            "path {} does not exist: the value above it is {}",
            pointer_of(path),
            type_name(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(doc: Value, patch: Value) -> Result<Value, PatchError> {
        let ops = parse(patch.to_string().as_bytes())?;
        apply_json_patch(&doc, &ops)
    }

    #[test]
    fn rfc6902_operations() {
        let doc = json!({"a": {"b": [1, 2]}, "c": "x", "k~/": 1});
        let cases = [
            (
                json!([{"op": "add", "path": "/a/b/1", "value": 9}]),
                json!({"a": {"b": [1, 9, 2]}, "c": "x", "k~/": 1}),
            ),
            (
                json!([{"op": "add", "path": "/a/b/-", "value": 3}]),
                json!({"a": {"b": [1, 2, 3]}, "c": "x", "k~/": 1}),
            ),
            (
                json!([{"op": "add", "path": "/d", "value": null}]),
                json!({"a": {"b": [1, 2]}, "c": "x", "k~/": 1, "d": null}),
            ),
            (
                json!([{"op": "remove", "path": "/a/b/0"}]),
                json!({"a": {"b": [2]}, "c": "x", "k~/": 1}),
            ),
            (
                json!([{"op": "remove", "path": "/k~0~1"}]),
                json!({"a": {"b": [1, 2]}, "c": "x"}),
            ),
            (
                json!([{"op": "replace", "path": "/c", "value": {"y": 1}}]),
                json!({"a": {"b": [1, 2]}, "c": {"y": 1}, "k~/": 1}),
            ),
            (
                json!([{"op": "move", "from": "/c", "path": "/a/c"}]),
                json!({"a": {"b": [1, 2], "c": "x"}, "k~/": 1}),
            ),
            (
                json!([{"op": "copy", "from": "/a/b", "path": "/e"}]),
                json!({"a": {"b": [1, 2]}, "c": "x", "k~/": 1, "e": [1, 2]}),
            ),
            (
                json!([{"op": "test", "path": "/a/b/1", "value": 2.0}, {"op": "remove", "path": "/a"}]),
                json!({"c": "x", "k~/": 1}),
            ),
            (
                json!([{"op": "replace", "path": "", "value": [1]}]),
                json!([1]),
            ),
        ];
        for (patch, want) in cases {
            assert_eq!(
                run(doc.clone(), patch.clone()).expect("applies"),
                want,
                "{patch}"
            );
        }
    }

    #[test]
    fn failures_name_the_operation_and_path_and_change_nothing() {
        let doc = json!({"spec": {"replicas": 1, "list": [1]}});
        let cases = [
            (
                json!([{"op": "remove", "path": "/spec/missing"}]),
                "operation 0 (remove /spec/missing)",
            ),
            (
                json!([{"op": "add", "path": "/spec/replicas", "value": 2}, {"op": "test", "path": "/spec/replicas", "value": 3}]),
                "operation 1 (test /spec/replicas): test failed",
            ),
            (
                json!([{"op": "add", "path": "/spec/list/5", "value": 2}]),
                "out of range",
            ),
            (
                json!([{"op": "add", "path": "/spec/list/01", "value": 2}]),
                "not a list index",
            ),
            (
                json!([{"op": "replace", "path": "/spec/list/-", "value": 2}]),
                "not a list index",
            ),
            (
                json!([{"op": "add", "path": "/nope/x", "value": 2}]),
                "path /nope does not exist",
            ),
            (
                json!([{"op": "move", "from": "/spec", "path": "/spec/x"}]),
                "own children",
            ),
            (json!([{"op": "remove", "path": ""}]), "whole object"),
        ];
        for (patch, want) in cases {
            let e = run(doc.clone(), patch.clone()).expect_err("must fail");
            assert_eq!(e.code(), 422, "{patch}");
            assert!(e.to_string().contains(want), "{patch}: {e}");
        }
    }

    #[test]
    fn malformed_patches_are_bad_requests() {
        let cases = [
            (
                json!({"op": "add"}),
                "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
            ),
            (json!([{"path": "/a"}]), "operation 0: missing \"op\""),
            (json!([{"op": "jump", "path": "/a"}]), "unknown op"),
            (json!([{"op": "add", "path": "/a"}]), "missing \"value\""),
            (json!([{"op": "move", "path": "/a"}]), "missing \"from\""),
            (
                json!([{"op": "remove", "path": "a"}]),
                "must be empty or start with '/'",
            ),
            (
                json!([{"op": "remove", "path": "/a~2"}]),
                "'~' not followed",
            ),
            (json!([{"op": "remove", "path": 3}]), "must be a string"),
        ];
        for (patch, want) in cases {
            let e = parse(patch.to_string().as_bytes()).expect_err("malformed");
            assert_eq!(e.code(), 400, "{patch}");
            assert!(e.to_string().contains(want), "{patch}: {e}");
        }
        let many = Value::Array(vec![
            json!({"op": "test", "path": "", "value": 1});
            MAX_OPERATIONS + 1
        ]);
        assert_eq!(
            parse(many.to_string().as_bytes())
                .expect_err("too many")
                .code(),
            413
        );
    }
}
