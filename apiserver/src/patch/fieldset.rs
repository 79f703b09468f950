//! Sets of field paths as server-side apply records them in `managedFields`
//! (sigs.k8s.io/structured-merge-diff's `fieldpath.Set`): path elements
//! `f:<field>`, `k:{"key":value}` (list item by its list-map keys),
//! `v:<json>` (set item), `i:<index>`; the `FieldsV1` JSON encoding with `.`
//! for a node that is itself a member; set algebra; the set of fields of an
//! object; and conflict paths printed as Kubernetes prints them.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::merge_keys::{ListKind, ListType, Type};

/// One step of a field path. The variant order is structured-merge-diff's
/// ordering (fields, keys, values, indices).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A struct field or map key: `f:name`.
    Field(String),
    /// A list-map item by its keys: `k:{"name":"web"}`, canonical JSON
    /// with the keys sorted.
    Key(String),
    /// A set item by value: `v:"finalizer"`, canonical JSON.
    Value(String),
    /// A list item by position: `i:0`.
    Index(usize),
}

/// JSON with object keys sorted, compact: how structured-merge-diff writes
/// keys and values into `k:` and `v:` elements.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

impl PathElement {
    /// The field `name`.
    pub fn field(name: impl Into<String>) -> Self {
        PathElement::Field(name.into())
    }

    /// The `FieldsV1` key: `f:name`, `k:{...}`, `v:...`, `i:3`.
    pub fn encode(&self) -> String {
        match self {
            PathElement::Field(n) => format!("f:{n}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key.
    pub fn decode(s: &str) -> Result<Self, String> {
        let (prefix, rest) = s
            .split_at_checked(2)
            .ok_or_else(|| format!("invalid fieldsV1 key {s:?}"))?;
        match prefix {
            "f:" => Ok(PathElement::Field(rest.to_string())),
            "k:" => match serde_json::from_str::<Value>(rest) {
                Ok(v @ Value::Object(_)) => Ok(PathElement::Key(canonical_json(&v))),
                _ => Err(format!(
                    "invalid fieldsV1 key {s:?}: k: needs a JSON object"
                )),
            },
            "v:" => serde_json::from_str::<Value>(rest)
                .map(|v| PathElement::Value(canonical_json(&v)))
                .map_err(|e| format!("invalid fieldsV1 key {s:?}: {e}")),
            "i:" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|_| format!("invalid fieldsV1 key {s:?}: i: needs an index")),
            _ => Err(format!(
                "invalid fieldsV1 key {s:?}: expected an f:, k:, v: or i: prefix"
            )),
        }
    }

    /// The element identifying item `index` of a list of type `list`.
    pub fn for_item(list: &ListType, index: usize, item: &Value) -> PathElement {
        match list.kind {
            ListKind::Set => PathElement::Value(canonical_json(item)),
            ListKind::Map(keys) => {
                let Value::Object(m) = item else {
                    return PathElement::Index(index);
                };
                let mut fields: Vec<(&str, Value)> = keys
                    .iter()
                    .filter_map(|k| match m.get(*k) {
                        Some(v) => Some((*k, v.clone())),
                        // the schema default of the one defaulted key field
                        None if *k == "protocol" => Some((*k, Value::String("TCP".into()))),
                        None => None,
                    })
                    .collect();
                if fields.is_empty() {
                    return PathElement::Index(index);
                }
                fields.sort_by(|a, b| a.0.cmp(b.0));
                let obj: Map<String, Value> = fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                PathElement::Key(canonical_json(&Value::Object(obj)))
            }
            ListKind::Atomic => PathElement::Index(index),
        }
    }
}

impl fmt::Display for PathElement {
    /// As structured-merge-diff prints paths in conflicts: `.name`,
    /// `[name="web"]`, `[containerPort=80,protocol="TCP"]`, `[="a"]`, `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(n) => write!(f, ".{n}"),
            PathElement::Key(k) => {
                let parts: Vec<String> = match serde_json::from_str::<Value>(k) {
                    Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    _ => vec![k.clone()],
                };
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={v}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path as Kubernetes prints it in apply conflicts:
/// `.spec.template.spec.containers[name="web"].image`.
pub fn render_path(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of field paths, stored as a tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    nodes: BTreeMap<PathElement, Node>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Node {
    member: bool,
    children: FieldSet,
}

impl Node {
    fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the set has no paths.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds a path (the empty path, the object itself, is never a member).
    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let node = self.nodes.entry(first.clone()).or_default();
        if rest.is_empty() {
            node.member = true;
        } else {
            node.children.insert(rest);
        }
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        let Some((first, rest)) = path.split_first() else {
            return false;
        };
        self.nodes.get(first).is_some_and(|n| {
            if rest.is_empty() {
                n.member
            } else {
                n.children.contains(rest)
            }
        })
    }

    /// The paths below `element`, relative to it.
    pub fn child(&self, element: &PathElement) -> Option<&FieldSet> {
        self.nodes.get(element).map(|n| &n.children)
    }

    /// Every member path, in order.
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for (pe, node) in &self.nodes {
            prefix.push(pe.clone());
            if node.member {
                out.push(prefix.clone());
            }
            node.children.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        for (pe, node) in &other.nodes {
            let mine = out.nodes.entry(pe.clone()).or_default();
            mine.member |= node.member;
            mine.children = mine.children.union(&node.children);
        }
        out
    }

    /// Paths in this set and not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        self.combine(other, |a, b| a && !b)
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        self.combine(other, |a, b| a && b)
    }

    fn combine(&self, other: &FieldSet, keep: fn(bool, bool) -> bool) -> FieldSet {
        let mut out = FieldSet::new();
        for (pe, node) in &self.nodes {
            let theirs = other.nodes.get(pe);
            let empty = FieldSet::new();
            let n = Node {
                member: keep(node.member, theirs.is_some_and(|t| t.member)),
                children: node
                    .children
                    .combine(theirs.map_or(&empty, |t| &t.children), keep),
            };
            if !n.is_empty() {
                out.nodes.insert(pe.clone(), n);
            }
        }
        out
    }

    /// This set without the members of `prefixes` and everything below them
    /// (structured-merge-diff's `RecursiveDifference`).
    pub fn without_prefixes(&self, prefixes: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for (pe, node) in &self.nodes {
            let n = match prefixes.nodes.get(pe) {
                Some(p) if p.member => continue,
                Some(p) => Node {
                    member: node.member,
                    children: node.children.without_prefixes(&p.children),
                },
                None => node.clone(),
            };
            if !n.is_empty() {
                out.nodes.insert(pe.clone(), n);
            }
        }
        out
    }

    /// The `fieldsV1` JSON object.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        for (pe, node) in &self.nodes {
            let mut inner = match node.children.to_fields_v1() {
                Value::Object(c) => c,
                _ => Map::new(),
            };
            if node.member && !inner.is_empty() {
                let mut with_dot = Map::new();
                with_dot.insert(".".into(), Value::Object(Map::new()));
                with_dot.extend(inner);
                inner = with_dot;
            }
            m.insert(pe.encode(), Value::Object(inner));
        }
        Value::Object(m)
    }

    /// Reads a `fieldsV1` JSON object.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        let Value::Object(m) = v else {
            return Err("fieldsV1 must be a JSON object".into());
        };
        let mut out = FieldSet::new();
        for (k, child) in m {
            if k == "." {
                continue;
            }
            let pe = PathElement::decode(k)?;
            let Value::Object(cm) = child else {
                return Err(format!("fieldsV1 entry {k:?} must be an object"));
            };
            let node = Node {
                member: cm.is_empty() || cm.contains_key("."),
                children: FieldSet::from_fields_v1(child)?,
            };
            out.nodes.insert(pe, node);
        }
        Ok(out)
    }

    /// The fields set in `value` (structured-merge-diff's `ToFieldSet`):
    /// scalars, atomic values, every item of a keyed or set list, every
    /// entry of a map, and empty or null struct fields.
    pub fn from_value(value: &Value, ty: Type) -> FieldSet {
        let mut out = FieldSet::new();
        walk(value, ty, &mut Vec::new(), &mut out);
        out
    }

    /// This set plus every struct field above a member (structured-merge-
    /// diff's `EnsureNamedFieldsAreMembers`): removing the struct field then
    /// removes its leftovers too. Map entries are not named fields.
    pub fn with_named_fields(&self, ty: Type) -> FieldSet {
        let mut out = FieldSet::new();
        for (pe, node) in &self.nodes {
            let child_ty = match pe {
                PathElement::Field(name) => ty.field(name),
                _ => ty.elem(),
            };
            let named = matches!(pe, PathElement::Field(_)) && !ty.is_map();
            let children = node.children.with_named_fields(child_ty);
            out.nodes.insert(
                pe.clone(),
                Node {
                    member: node.member || (named && !children.is_empty()),
                    children,
                },
            );
        }
        out
    }
}

fn walk(value: &Value, ty: Type, path: &mut Vec<PathElement>, out: &mut FieldSet) {
    match value {
        Value::Object(m) if !ty.is_atomic() => {
            for (k, v) in m {
                path.push(PathElement::Field(k.clone()));
                walk(v, ty.field(k), path, out);
                let empty = v.is_null() || v.as_object().is_some_and(Map::is_empty);
                if empty || ty.is_map() {
                    out.insert(path);
                }
                path.pop();
            }
        }
        Value::Array(items) if ty.list().is_some_and(|l| l.kind != ListKind::Atomic) => {
            let Some(list) = ty.list() else { return };
            for (i, item) in items.iter().enumerate() {
                path.push(PathElement::for_item(list, i, item));
                walk(item, list.elem, path, out);
                out.insert(path);
                path.pop();
            }
        }
        _ => out.insert(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::merge_keys::root_type;
    use serde_json::json;

    fn deployment() -> Type {
        root_type(schemas::lookup("apps/v1", "Deployment").expect("kind")).0
    }

    fn path(elems: &[&str]) -> Vec<PathElement> {
        elems
            .iter()
            .map(|e| PathElement::decode(e).expect("element"))
            .collect()
    }

    #[test]
    fn fields_of_a_deployment_as_kubernetes_records_them() {
        let obj = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["x"]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web", "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "env": [{"name": "A", "value": "1"}]
                    }]}
                }
            }
        });
        let set = FieldSet::from_value(&obj, deployment());
        let want = json!({
            "f:apiVersion": {},
            "f:kind": {},
            "f:metadata": {"f:finalizers": {"v:\"x\"": {}}, "f:labels": {"f:app": {}}, "f:name": {}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                        ".": {},
                        "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                    }}}
                }
            }
        });
        assert_eq!(set.to_fields_v1(), want);
        assert_eq!(FieldSet::from_fields_v1(&want).expect("decodes"), set);
        assert!(set.contains(&path(&[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"web\"}"
        ])));
        assert!(!set.contains(&path(&["f:spec", "f:template"])));
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::new();
        a.insert(&path(&["f:spec", "f:replicas"]));
        a.insert(&path(&["f:spec", "f:paused"]));
        a.insert(&path(&["f:status"]));
        let mut b = FieldSet::new();
        b.insert(&path(&["f:spec", "f:replicas"]));
        b.insert(&path(&["f:metadata", "f:labels", "f:a"]));
        assert_eq!(a.union(&b).paths().len(), 4);
        assert_eq!(
            a.intersection(&b).paths(),
            vec![path(&["f:spec", "f:replicas"])]
        );
        assert_eq!(
            a.difference(&b).paths(),
            vec![path(&["f:spec", "f:paused"]), path(&["f:status"])]
        );
        let mut status = FieldSet::new();
        status.insert(&path(&["f:status"]));
        status.insert(&path(&["f:spec", "f:paused"]));
        let mut nested = a.clone();
        nested.insert(&path(&["f:status", "f:replicas"]));
        assert_eq!(
            nested.without_prefixes(&status).paths(),
            vec![path(&["f:spec", "f:replicas"])]
        );
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn named_fields_become_members_but_map_entries_do_not() {
        let mut s = FieldSet::new();
        s.insert(&path(&["f:metadata", "f:labels", "f:app"]));
        s.insert(&path(&["f:spec", "f:strategy", "f:type"]));
        let named = s.with_named_fields(deployment());
        assert!(named.contains(&path(&["f:spec"])));
        assert!(named.contains(&path(&["f:spec", "f:strategy"])));
        assert!(named.contains(&path(&["f:metadata", "f:labels"])));
        assert!(!named.contains(&path(&["f:metadata", "f:labels", "f:other"])));
    }

    #[test]
    fn paths_print_like_kubernetes_conflicts() {
        let p = path(&[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"web\"}",
            "f:image",
        ]);
        assert_eq!(
            render_path(&p),
            ".spec.template.spec.containers[name=\"web\"].image"
        );
        let p = path(&["f:spec", "f:ports", "k:{\"protocol\":\"TCP\",\"port\":80}"]);
        assert_eq!(render_path(&p), ".spec.ports[port=80,protocol=\"TCP\"]");
        assert_eq!(
            render_path(&path(&["f:metadata", "f:finalizers", "v:\"a\""])),
            ".metadata.finalizers[=\"a\"]"
        );
        assert_eq!(render_path(&path(&["f:x", "i:3"])), ".x[3]");
    }

    #[test]
    fn malformed_fields_v1_is_an_error() {
        for bad in [
            json!([]),
            json!({"x:y": {}}),
            json!({"k:[1]": {}}),
            json!({"f:a": 1}),
            json!({"i:z": {}}),
        ] {
            assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
        }
    }
}
