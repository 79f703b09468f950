//! Operations on objects guided by their list metadata, as
//! sigs.k8s.io/structured-merge-diff performs them for server-side apply:
//! comparing two versions (added, modified, removed fields), merging an
//! applied configuration into the live object, and removing fields.

use serde_json::{Map, Value};

use super::fieldset::{FieldSet, PathElement};
use super::merge_keys::{ListKind, ListType, Type};
use super::values::json_equal;

/// What changed between two versions of an object.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Fields present only in the new version.
    pub added: FieldSet,
    /// Fields whose value changed.
    pub modified: FieldSet,
    /// Fields present only in the old version.
    pub removed: FieldSet,
}

impl Comparison {
    /// Added or modified fields.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }

    /// Keeps only the fields `keep` accepts.
    pub fn filter(self, keep: impl Fn(&FieldSet) -> FieldSet) -> Comparison {
        Comparison {
            added: keep(&self.added),
            modified: keep(&self.modified),
            removed: keep(&self.removed),
        }
    }
}

/// The granular (non-atomic) list type of a value of type `ty`, if any.
fn granular_list(ty: Type) -> Option<&'static ListType> {
    ty.list().filter(|l| l.kind != ListKind::Atomic)
}

/// The items of a granular list by path element; the first of duplicates wins.
fn index_items<'v>(list: &ListType, items: &'v [Value]) -> Vec<(PathElement, &'v Value)> {
    let mut out: Vec<(PathElement, &Value)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let pe = PathElement::for_item(list, i, item);
        if !out.iter().any(|(p, _)| *p == pe) {
            out.push((pe, item));
        }
    }
    out
}

fn find<'v>(items: &[(PathElement, &'v Value)], pe: &PathElement) -> Option<&'v Value> {
    items.iter().find(|(p, _)| p == pe).map(|(_, v)| *v)
}

/// Compares two versions of an object (structured-merge-diff's `Compare`).
pub fn compare(old: &Value, new: &Value, ty: Type) -> Comparison {
    let mut out = Comparison::default();
    compare_at(Some(old), Some(new), ty, &mut Vec::new(), &mut out);
    out
}

fn compare_at(
    l: Option<&Value>,
    r: Option<&Value>,
    ty: Type,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) {
    if l.is_none() && r.is_none() {
        return;
    }
    let is_obj = |v: Option<&Value>| v.is_none_or(Value::is_object);
    let is_arr = |v: Option<&Value>| v.is_none_or(Value::is_array);
    if !ty.is_atomic() && is_obj(l) && is_obj(r) {
        let lm = l.and_then(Value::as_object);
        let rm = r.and_then(Value::as_object);
        if lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty) {
            leaf(l, r, path, out);
            return;
        }
        let empty = Map::new();
        let (lm, rm) = (lm.unwrap_or(&empty), rm.unwrap_or(&empty));
        let keys = lm.keys().chain(rm.keys().filter(|k| !lm.contains_key(*k)));
        for k in keys {
            path.push(PathElement::Field(k.clone()));
            compare_at(lm.get(k), rm.get(k), ty.field(k), path, out);
            path.pop();
        }
        if !ty.always_present() {
            self_presence(l, r, path, out);
        }
    } else if let Some(list) = granular_list(ty).filter(|_| is_arr(l) && is_arr(r)) {
        let li = index_items(list, l.and_then(Value::as_array).map_or(&[], Vec::as_slice));
        let ri = index_items(list, r.and_then(Value::as_array).map_or(&[], Vec::as_slice));
        for (pe, lv) in &li {
            path.push(pe.clone());
            compare_at(Some(lv), find(&ri, pe), list.elem, path, out);
            path.pop();
        }
        for (pe, rv) in ri.iter().filter(|(pe, _)| find(&li, pe).is_none()) {
            path.push(pe.clone());
            compare_at(None, Some(rv), list.elem, path, out);
            path.pop();
        }
        self_presence(l, r, path, out);
    } else {
        leaf(l, r, path, out);
    }
}

fn leaf(l: Option<&Value>, r: Option<&Value>, path: &[PathElement], out: &mut Comparison) {
    match (l, r) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        (Some(a), Some(b)) if !json_equal(a, b) => out.modified.insert(path),
        _ => {}
    }
}

/// A map or list that appears or disappears is itself added or removed.
fn self_presence(l: Option<&Value>, r: Option<&Value>, path: &[PathElement], out: &mut Comparison) {
    match (l, r) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        _ => {}
    }
}

/// Merges an applied configuration into the live object (structured-merge-
/// diff's `Merge`): maps merge key by key, keyed and set lists item by item
/// (the configuration's order for shared items, live-only items kept in
/// place), atomic values are replaced.
pub fn merge(live: &Value, config: &Value, ty: Type) -> Value {
    match (live, config) {
        (Value::Object(lm), Value::Object(cm)) if !ty.is_atomic() => {
            let mut out = lm.clone();
            for (k, cv) in cm {
                let merged = match lm.get(k) {
                    Some(lv) => merge(lv, cv, ty.field(k)),
                    None => cv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(la), Value::Array(ca)) => match granular_list(ty) {
            Some(list) => Value::Array(merge_items(list, la, ca)),
            None => config.clone(),
        },
        _ => config.clone(),
    }
}

/// structured-merge-diff's list merge: walks both lists, emitting live-only
/// items where they are, shared items in the configuration's order, merged.
fn merge_items(list: &ListType, live: &[Value], config: &[Value]) -> Vec<Value> {
    let lhs = index_items(list, live);
    let rhs = index_items(list, config);
    let in_rhs = |pe: &PathElement| rhs.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
    let in_lhs = |pe: &PathElement| lhs.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
    let mut shared = rhs
        .iter()
        .filter(|(pe, _)| in_lhs(pe).is_some())
        .map(|(pe, _)| pe.clone())
        .collect::<Vec<_>>()
        .into_iter();
    let mut next_shared = shared.next();
    let mut done: Vec<PathElement> = Vec::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let item = |pe: &PathElement, r: &Value| match in_lhs(pe) {
        Some(l) => merge(l, r, list.elem),
        None => r.clone(),
    };
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            let pe = &lhs[li].0;
            if *pe == rhs[ri].0 {
                done.push(pe.clone());
                out.push(item(pe, rhs[ri].1));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if in_rhs(pe).is_some() && next_shared.as_ref().is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let pe = &lhs[li].0;
            if in_rhs(pe).is_none() {
                out.push(lhs[li].1.clone());
                li += 1;
                continue;
            }
            if done.contains(pe) {
                li += 1;
                continue;
            }
        }
        if ri < rhs.len() {
            let (pe, r) = &rhs[ri];
            done.push(pe.clone());
            out.push(item(pe, r));
            ri += 1;
            if next_shared.as_ref() == Some(pe) {
                next_shared = shared.next();
            }
        } else {
            // only shared live items already merged remain
            li += 1;
        }
    }
    out
}

/// Removes from `value` every field, map entry or list item whose path
/// `remove` accepts (the whole subtree goes); descends into the rest.
pub fn remove_where(
    value: &mut Value,
    ty: Type,
    path: &mut Vec<PathElement>,
    remove: &dyn Fn(&[PathElement]) -> bool,
) {
    match value {
        Value::Object(m) if !ty.is_atomic() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                path.push(PathElement::Field(k.clone()));
                if remove(path) {
                    m.shift_remove(&k);
                } else if let Some(v) = m.get_mut(&k) {
                    remove_where(v, ty.field(&k), path, remove);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            let Some(list) = granular_list(ty) else {
                return;
            };
            let mut kept = Vec::with_capacity(items.len());
            for (i, mut item) in std::mem::take(items).into_iter().enumerate() {
                path.push(PathElement::for_item(list, i, &item));
                if !remove(path) {
                    remove_where(&mut item, list.elem, path, remove);
                    kept.push(item);
                }
                path.pop();
            }
            *items = kept;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::merge_keys::root_type;
    use serde_json::json;

    fn pod() -> Type {
        root_type(schemas::lookup("v1", "Pod").expect("kind")).0
    }

    fn enc(set: &FieldSet) -> Value {
        set.to_fields_v1()
    }

    #[test]
    fn compare_reports_added_modified_removed() {
        let old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "1"}]}});
        let new = json!({"metadata": {"name": "p", "labels": {"x": "y"}}, "spec": {"containers": [{"name": "a", "image": "2"}, {"name": "b", "image": "1"}]}});
        let c = compare(&old, &new, pod());
        assert_eq!(
            enc(&c.added),
            json!({"f:metadata": {"f:labels": {".": {}, "f:x": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"b\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
        assert_eq!(
            enc(&c.modified),
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {"f:image": {}}}}})
        );
        assert!(c.removed.is_empty());
        let back = compare(&new, &old, pod());
        assert_eq!(enc(&back.removed), enc(&c.added));
    }

    #[test]
    fn merge_keeps_live_only_items_and_uses_config_order() {
        let live = json!({"spec": {"containers": [{"name": "a", "image": "1", "tty": true}, {"name": "x"}, {"name": "b"}], "tolerations": [{"key": "t"}]}});
        let config = json!({"spec": {"containers": [{"name": "b", "image": "2"}, {"name": "a", "image": "3"}], "tolerations": []}});
        let out = merge(&live, &config, pod());
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "x"}, {"name": "b", "image": "2"}, {"name": "a", "image": "3", "tty": true}], "tolerations": []}})
        );
    }

    #[test]
    fn remove_where_drops_subtrees() {
        let mut v =
            json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}], "x": 1}});
        let target = PathElement::decode("k:{\"name\":\"a\"}").expect("pe");
        remove_where(&mut v, pod(), &mut Vec::new(), &|p| {
            p.last() == Some(&target) || p.last() == Some(&PathElement::field("x"))
        });
        assert_eq!(v, json!({"spec": {"containers": [{"name": "b"}]}}));
    }
}
