//! Strategic merge patch as the Kubernetes API server applies it
//! (k8s.io/apimachinery/pkg/util/strategicpatch, with the server's options:
//! parallel lists merged, unmatched nulls ignored): maps merge recursively,
//! `null` deletes, lists with a `patchMergeKey` merge element by element,
//! `patchStrategy: merge` scalar lists union, other lists are replaced; the
//! directives `$patch` (replace/delete/merge), `$retainKeys`,
//! `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`.

use std::collections::HashSet;

use serde_json::{Map, Value};

use schemas::{FieldPath, KindInfo};

use super::error::PatchError;
use super::merge_keys::{PatchStrategy, Type, root_type};
use super::values::{json_equal, type_name};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to a copy of `original` using `kind`'s
/// merge metadata. Kinds whose struct tags Kubernetes would not know
/// (korral.dev) are refused with a 415, as Kubernetes refuses them for
/// custom resources.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    kind: &KindInfo,
) -> Result<Value, PatchError> {
    let (ty, builtin) = root_type(kind);
    if !builtin {
        return Err(PatchError::UnsupportedMediaType(format!(
            "strategic merge patch is not supported for {} {}; use a merge patch",
            kind.api_version, kind.kind
        )));
    }
    let Value::Object(p) = patch else {
        return Err(PatchError::BadRequest(format!(
            "a strategic merge patch must be a JSON object, got {}",
            type_name(patch)
        )));
    };
    let o = original.as_object().cloned().unwrap_or_default();
    merge_map(o, p.clone(), ty, &FieldPath::root()).map(Value::Object)
}

fn bad(path: &FieldPath, msg: impl std::fmt::Display) -> PatchError {
    if path.is_root() {
        PatchError::BadRequest(msg.to_string())
    } else {
        PatchError::BadRequest(format!("{path}: {msg}"))
    }
}

fn is_directive_key(k: &str) -> bool {
    k == PATCH
        || k == RETAIN_KEYS
        || k.starts_with(SET_ELEMENT_ORDER)
        || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// A patch value taken as is: nulls and directives removed.
fn clean(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
                .map(|(k, v)| (k, clean(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(clean_list(items)),
        other => other,
    }
}

/// A patch list taken as is: directive elements (`{$patch: ...}`) dropped.
fn clean_list(items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .filter(|v| v.get(PATCH).is_none())
        .map(clean)
        .collect()
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: Type,
    path: &FieldPath,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.shift_remove(PATCH) {
        match directive.as_str() {
            Some("replace") => {
                return match clean(Value::Object(patch)) {
                    Value::Object(m) => Ok(m),
                    _ => Ok(Map::new()),
                };
            }
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => {
                return Err(bad(
                    path,
                    format!(
                        "unknown $patch directive {directive} in a map (expected replace, delete or merge)"
                    ),
                ));
            }
        }
    }
    if let Some(retain) = patch.shift_remove(RETAIN_KEYS) {
        retain_keys(&mut original, &patch, &retain, path)?;
    }
    let order_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in order_keys {
        let order = patch.shift_remove(&key).unwrap_or(Value::Null);
        let field = &key[SET_ELEMENT_ORDER.len()..];
        set_element_order(&mut original, &mut patch, field, order, ty, path)?;
    }
    let mut deletions = Vec::new();
    for (k, pv) in patch {
        if let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            deletions.push((field.to_string(), pv));
            continue;
        }
        if pv.is_null() {
            original.shift_remove(&k);
            continue;
        }
        let fty = ty.field(&k);
        let fpath = path.key(k.as_str());
        let merged = match (original.get_mut(&k).map(std::mem::take), pv) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                Value::Object(merge_map(o, p, fty, &fpath)?)
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                Value::Array(merge_list(o, p, fty, &fpath)?)
            }
            (_, p) => clean(p),
        };
        original.insert(k, merged);
    }
    for (field, pv) in deletions {
        let Value::Array(remove) = pv else {
            return Err(bad(
                path,
                format!(
                    "{DELETE_FROM_PRIMITIVE_LIST}{field} must be a list, got {}",
                    type_name(&pv)
                ),
            ));
        };
        if let Some(Value::Array(items)) = original.get_mut(&field) {
            delete_from_primitive_list(items, &remove);
        }
    }
    Ok(original)
}

/// strategicpatch's `deleteFromSlice`: removes the values, and — as
/// Kubernetes does — leaves the rest deduplicated and sorted by their text.
fn delete_from_primitive_list(items: &mut Vec<Value>, remove: &[Value]) {
    let mut kept: Vec<Value> = Vec::with_capacity(items.len());
    for x in items.drain(..) {
        if !remove.iter().any(|r| json_equal(r, &x)) && !kept.iter().any(|k| json_equal(k, &x)) {
            kept.push(x);
        }
    }
    kept.sort_by_cached_key(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    *items = kept;
}

fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
    path: &FieldPath,
) -> Result<(), PatchError> {
    let Value::Array(keys) = retain else {
        return Err(bad(
            path,
            format!("{RETAIN_KEYS} must be a list of field names"),
        ));
    };
    let keep: HashSet<&str> = keys
        .iter()
        .map(|k| {
            k.as_str()
                .ok_or_else(|| bad(path, format!("{RETAIN_KEYS} must be a list of field names")))
        })
        .collect::<Result<_, _>>()?;
    if let Some(k) = patch
        .iter()
        .find(|(k, v)| !is_directive_key(k) && !v.is_null() && !keep.contains(k.as_str()))
        .map(|(k, _)| k)
    {
        return Err(PatchError::Unprocessable(format!(
            "{path}: the patch sets {k:?}, which is not in {RETAIN_KEYS}"
        )));
    }
    original.retain(|k, _| keep.contains(k.as_str()));
    Ok(())
}

/// `$setElementOrder/<field>`: merge the field's list, then order it as the
/// directive says, server-only items keeping their places relative to it.
fn set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    field: &str,
    order: Value,
    ty: Type,
    path: &FieldPath,
) -> Result<(), PatchError> {
    let Value::Array(order) = order else {
        return Err(bad(
            path,
            format!("{SET_ELEMENT_ORDER}{field} must be a list"),
        ));
    };
    let fty = ty.field(field);
    let fpath = path.key(field);
    let orig = match original.get(field) {
        Some(Value::Array(items)) => Some(items.clone()),
        _ => None,
    };
    let from_patch = match patch.get(field) {
        Some(Value::Array(_)) => match patch.shift_remove(field) {
            Some(Value::Array(items)) => Some(items),
            _ => None,
        },
        // a null or non-list value is handled as an ordinary field
        _ => None,
    };
    let merged = match (&orig, from_patch) {
        (Some(o), None) => o.clone(),
        (None, Some(p)) => clean_list(p),
        (Some(o), Some(p)) => merge_list(o.clone(), p, fty, &fpath)?,
        (None, None) => return Ok(()),
    };
    let key = fty.list().and_then(|l| l.merge_key).filter(|_| {
        merged
            .first()
            .or(order.first())
            .is_some_and(Value::is_object)
    });
    let (in_order, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| position(&order, item, key).is_some());
    let server_order = orig.unwrap_or_default();
    let out = normalize_element_order(in_order, server_only, &order, &server_order, key);
    original.insert(field.to_string(), Value::Array(out));
    Ok(())
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    ty: Type,
    path: &FieldPath,
) -> Result<Vec<Value>, PatchError> {
    match ty.list() {
        Some(l) if l.strategy == PatchStrategy::Merge => {
            merge_slice(original, patch, l.merge_key, l.elem, path)
        }
        _ => Ok(clean_list(patch)),
    }
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: Option<&str>,
    elem: Type,
    path: &FieldPath,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let first = original.first().or(patch.first()).unwrap_or(&Value::Null);
    if first.is_array() || original.iter().chain(&patch).any(Value::is_array) {
        return Err(PatchError::Unprocessable(format!(
            "{path}: lists of lists are not supported by strategic merge patch"
        )));
    }
    if !first.is_object() {
        // a set of scalars: union, first occurrence wins
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(&patch) {
            if v.is_object() {
                return Err(bad(path, "a list of scalars holds a map"));
            }
            if !merged.iter().any(|m| json_equal(m, v)) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only) = merged
            .into_iter()
            .partition(|item| position(&patch, item, None).is_some());
        return Ok(normalize_element_order(
            in_patch,
            server_only,
            &patch,
            &original,
            None,
        ));
    }
    let Some(key) = merge_key else {
        return Err(bad(path, "cannot merge lists without merge key"));
    };
    let (original, patch) = special_elements(original, patch, key, path)?;
    let merged = merge_by_key(original.clone(), patch.clone(), key, elem, path)?;
    let (in_patch, server_only) = merged
        .into_iter()
        .partition(|item| position(&patch, item, Some(key)).is_some());
    Ok(normalize_element_order(
        in_patch,
        server_only,
        &patch,
        &original,
        Some(key),
    ))
}

/// Handles `{$patch: delete, <key>: v}` and `{$patch: replace}` list elements;
/// returns the original and the patch without them.
fn special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    path: &FieldPath,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = &v else {
            return Err(bad(path, format!("a list of maps holds {}", type_name(&v))));
        };
        match m.get(PATCH) {
            None => rest.push(v),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let Some(kv) = m.get(key) else {
                        return Err(bad(
                            path,
                            format!("map: {v} does not contain declared merge key: {key}"),
                        ));
                    };
                    original.retain(|o| !o.get(key).is_some_and(|ov| json_equal(ov, kv)));
                }
                Some("replace") => replace = true,
                Some("merge") => {}
                _ => {
                    return Err(bad(
                        path,
                        format!(
                            "unknown $patch directive {d} in a list (expected replace, delete or merge)"
                        ),
                    ));
                }
            },
        }
    }
    if replace {
        Ok((clean_list(rest), Vec::new()))
    } else {
        Ok((original, rest))
    }
}

fn merge_by_key(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    elem: Type,
    path: &FieldPath,
) -> Result<Vec<Value>, PatchError> {
    for v in patch {
        let Value::Object(m) = v else {
            return Err(bad(path, format!("a list of maps holds {}", type_name(&v))));
        };
        let Some(kv) = m.get(key).cloned() else {
            return Err(bad(
                path,
                format!(
                    "map: {} does not contain declared merge key: {key}",
                    Value::Object(m)
                ),
            ));
        };
        let found = original
            .iter()
            .position(|o| o.get(key).is_some_and(|ov| json_equal(ov, &kv)));
        match found {
            Some(i) => {
                let merged = match std::mem::take(&mut original[i]) {
                    Value::Object(o) => Value::Object(merge_map(o, m, elem, &path.index(i))?),
                    _ => clean(Value::Object(m)),
                };
                original[i] = merged;
            }
            None => original.push(clean(Value::Object(m))),
        }
    }
    Ok(original)
}

/// Where `item` is in `list`: by merge key for maps, by value for scalars.
fn position(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    match key {
        Some(k) => {
            let kv = item.get(k)?;
            list.iter()
                .position(|x| x.get(k).is_some_and(|xv| json_equal(xv, kv)))
        }
        None => list.iter().position(|x| json_equal(x, item)),
    }
}

/// Orders the merged list: patch items by the patch's (or
/// `$setElementOrder`'s) order, server-only items by the live order, then
/// interleaved so that both relative orders hold (strategicpatch's
/// `normalizeElementOrder` and `mergeSortedSlice`).
fn normalize_element_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    patch_items.sort_by_key(|v| position(patch_order, v, key).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| position(server_order, v, key).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                match (
                    position(server_order, l, key),
                    position(server_order, r, key),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(api_version: &str, kind: &str) -> &'static KindInfo {
        schemas::lookup(api_version, kind).expect("served kind")
    }

    fn smp(kind_: (&str, &str), original: Value, patch: Value) -> Result<Value, PatchError> {
        strategic_merge_patch(&original, &patch, kind(kind_.0, kind_.1))
    }

    /// (description, kind, original, patch, expected)
    type Case = (
        &'static str,
        (&'static str, &'static str),
        Value,
        Value,
        Value,
    );

    const DEPLOY: (&str, &str) = ("apps/v1", "Deployment");
    const POD: (&str, &str) = ("v1", "Pod");

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn containers_merge_by_name() {
        let orig = pod(json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]));
        let out = smp(POD, orig, json!({"spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}]}}))
            .expect("patch");
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}])
        );
    }

    #[test]
    fn table_of_kubernetes_behaviours() {
        // Note Kubernetes' ordering: items only in the patch that the live
        // list cannot place come before the live-only items.
        let cases: Vec<Case> = vec![
            (
                "delete a container with $patch: delete",
                POD,
                pod(json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}])),
                json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
                pod(json!([{"name": "b", "image": "b"}])),
            ),
            (
                "null deletes a field, nested maps merge",
                DEPLOY,
                json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}}),
                json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"paused": true}}),
                json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"replicas": 1, "paused": true}}),
            ),
            (
                "null for an absent field is ignored",
                DEPLOY,
                json!({"spec": {"replicas": 1}}),
                json!({"spec": {"missing": null}}),
                json!({"spec": {"replicas": 1}}),
            ),
            (
                "lists without a merge key are replaced (tolerations, args)",
                POD,
                json!({"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c", "args": ["x", "y"]}]}}),
                json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["z"]}]}}),
                json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["z"]}]}}),
            ),
            (
                "finalizers union; $deleteFromPrimitiveList removes and sorts the rest",
                POD,
                json!({"metadata": {"finalizers": ["z", "b", "a"]}}),
                json!({"metadata": {"finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"]}}),
                json!({"metadata": {"finalizers": ["a", "c", "z"]}}),
            ),
            (
                "env merges by name, ports by containerPort, volumeMounts by mountPath",
                POD,
                pod(
                    json!([{"name": "c", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "name": "http"}],
                            "volumeMounts": [{"mountPath": "/a", "name": "va"}]}]),
                ),
                json!({"spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "3"}],
                            "ports": [{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}],
                            "volumeMounts": [{"mountPath": "/b", "name": "vb"}]}]}}),
                pod(
                    json!([{"name": "c", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}],
                            "ports": [{"containerPort": 443}, {"containerPort": 80, "name": "http", "protocol": "TCP"}],
                            "volumeMounts": [{"mountPath": "/b", "name": "vb"}, {"mountPath": "/a", "name": "va"}]}]),
                ),
            ),
            (
                "$patch: replace on a list replaces it",
                POD,
                pod(json!([{"name": "a"}, {"name": "b"}])),
                json!({"spec": {"containers": [{"name": "x"}, {"$patch": "replace"}]}}),
                pod(json!([{"name": "x"}])),
            ),
            (
                "$patch: replace on a map replaces it",
                DEPLOY,
                json!({"metadata": {"labels": {"a": "1"}}}),
                json!({"metadata": {"labels": {"b": "2", "$patch": "replace"}}}),
                json!({"metadata": {"labels": {"b": "2"}}}),
            ),
            (
                "$patch: delete on a map empties it",
                DEPLOY,
                json!({"metadata": {"labels": {"a": "1"}, "name": "d"}}),
                json!({"metadata": {"labels": {"$patch": "delete"}}}),
                json!({"metadata": {"labels": {}, "name": "d"}}),
            ),
            (
                "$retainKeys clears the strategy's other fields",
                DEPLOY,
                json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
                json!({"spec": {"strategy": {"type": "Recreate"}}}),
            ),
            (
                "service ports merge by port; conditions by type",
                ("v1", "Service"),
                json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}, "status": {"conditions": [{"type": "A", "status": "True"}]}}),
                json!({"spec": {"ports": [{"port": 80, "name": "http"}]}, "status": {"conditions": [{"type": "B", "status": "False"}]}}),
                json!({"spec": {"ports": [{"port": 80, "targetPort": 8080, "name": "http"}]}, "status": {"conditions": [{"type": "B", "status": "False"}, {"type": "A", "status": "True"}]}}),
            ),
            (
                "ownerReferences merge by uid",
                ("v1", "ConfigMap"),
                json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}]}}),
            ),
            (
                "a new list keeps its items but loses directives",
                POD,
                json!({"spec": {}}),
                json!({"spec": {"containers": [{"name": "a", "image": null}, {"name": "b", "$patch": "delete"}]}}),
                json!({"spec": {"containers": [{"name": "a"}]}}),
            ),
            (
                "node podCIDRs union; addresses merge by type",
                ("v1", "Node"),
                json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}, "status": {"addresses": [{"type": "InternalIP", "address": "1"}]}}),
                json!({"spec": {"podCIDRs": ["fd00::/64"]}, "status": {"addresses": [{"type": "Hostname", "address": "h"}]}}),
                json!({"spec": {"podCIDRs": ["fd00::/64", "10.0.0.0/24"]}, "status": {"addresses": [{"type": "Hostname", "address": "h"}, {"type": "InternalIP", "address": "1"}]}}),
            ),
        ];
        for (name, k, orig, patch, want) in cases {
            assert_eq!(smp(k, orig, patch).expect(name), want, "{name}");
        }
    }

    #[test]
    fn kubectl_client_side_apply_with_set_element_order() {
        // What `kubectl apply` sends after the user reorders containers,
        // changes one image and removes a container it applied before.
        let orig = pod(json!([
            {"name": "a", "image": "a:1"},
            {"name": "b", "image": "b:1"},
            {"name": "sidecar", "image": "s:1"},
            {"name": "c", "image": "c:1"}
        ]));
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "a:2"}, {"$patch": "delete", "name": "b"}]
        }});
        let out = smp(POD, orig, patch).expect("patch");
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .expect("list")
            .iter()
            .map(|c| c["name"].as_str().expect("name"))
            .collect();
        // `sidecar` was not in the patch: it keeps its place relative to `c`.
        assert_eq!(names, ["sidecar", "c", "a"]);
        assert_eq!(out["spec"]["containers"][2]["image"], "a:2");
    }

    #[test]
    fn set_element_order_for_primitive_lists() {
        let orig = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
        let patch = json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a", "d"], "finalizers": ["d"]}});
        let out = smp(POD, orig, patch).expect("patch");
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "b", "a", "d"]));
    }

    #[test]
    fn errors() {
        let orig = pod(json!([{"name": "a"}]));
        let e = smp(
            POD,
            orig.clone(),
            json!({"spec": {"containers": [{"image": "x"}]}}),
        )
        .expect_err("no key");
        assert!(
            e.to_string()
                .contains("does not contain declared merge key: name"),
            "{e}"
        );
        assert_eq!(e.code(), 400);
        let e =
            smp(POD, orig.clone(), json!({"spec": {"$patch": "explode"}})).expect_err("directive");
        assert!(
            e.to_string().starts_with("spec: unknown $patch directive"),
            "{e}"
        );
        let e = smp(
            DEPLOY,
            json!({"spec": {"strategy": {}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        )
        .expect_err("retainKeys mismatch");
        assert_eq!(e.code(), 422);
        let e = smp(
            ("korral.dev/v1alpha1", "GitSource"),
            json!({}),
            json!({"spec": {}}),
        )
        .expect_err("415");
        assert_eq!(e.code(), 415);
        assert_eq!(
            e.to_string(),
            "strategic merge patch is not supported for korral.dev/v1alpha1 GitSource; use a merge patch"
        );
    }
}
