//! Server-side apply metadata of custom resources, read from their
//! CustomResourceDefinition schema as kube-apiserver does:
//! `x-kubernetes-list-type` (`atomic`, the default, `set`, `map` with
//! `x-kubernetes-list-map-keys`) and `x-kubernetes-map-type`, at any depth.
//!
//! The patch machinery's types are `'static`; a schema's types are built
//! once and kept for the life of the process, shared by every kind with the
//! same schema (definitions change rarely; the cache is bounded by the
//! number of distinct schemas ever served).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use super::merge_keys::{ListKind, ListType, MapType, PatchStrategy, Struct, Type};

/// The type of a custom resource with `schema` (its `openAPIV3Schema` as JSON Schema).
pub fn custom_root(schema: &Value) -> Type {
    static CACHE: OnceLock<Mutex<HashMap<String, Type>>> = OnceLock::new();
    let key = schema.to_string();
    let cache = CACHE.get_or_init(Mutex::default);
    let mut map = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(t) = map.get(&key) {
        return *t;
    }
    let t = build(schema, schema, 0);
    let root = match t {
        Type::Struct(s) => {
            // metadata is ObjectMeta: keep its own list and map rules
            let mut fields: Vec<(&'static str, Type)> = s
                .fields
                .iter()
                .filter(|(n, _)| *n != "metadata")
                .copied()
                .collect();
            fields.push(("metadata", super::merge_keys::root_type_of_meta()));
            Type::Struct(leak(Struct {
                fields: leak_slice(fields),
                atomic: false,
                always_present: true,
            }))
        }
        other => other,
    };
    map.insert(key, root);
    root
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

fn leak_slice<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

fn leak_str(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// Follows a local `$ref`.
fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    match s
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(p) => root.pointer(p).unwrap_or(s),
        None => s,
    }
}

/// The type of the values `s` describes; `Any` where nothing needs describing.
fn build(root: &Value, s: &Value, depth: usize) -> Type {
    if depth > 64 {
        return Type::Any;
    }
    let s = resolve(root, s);
    let atomic_map = s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic");
    if let Some(items) = s.get("items") {
        let elem = build(root, items, depth + 1);
        let kind = match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListKind::Set,
            Some("map") => {
                let keys: Vec<&'static str> = s
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(leak_str)
                    .collect();
                ListKind::Map(leak_slice(keys))
            }
            _ => ListKind::Atomic,
        };
        if matches!(kind, ListKind::Atomic) && matches!(elem, Type::Any) {
            return Type::Any;
        }
        return Type::List(leak(ListType {
            elem,
            strategy: PatchStrategy::Replace,
            merge_key: None,
            kind,
        }));
    }
    if let Some(Value::Object(props)) = s.get("properties") {
        let fields: Vec<(&'static str, Type)> = props
            .iter()
            .map(|(name, p)| (name, build(root, p, depth + 1)))
            .filter(|(_, t)| !matches!(t, Type::Any))
            .map(|(name, t)| (leak_str(name), t))
            .collect();
        if fields.is_empty() && !atomic_map {
            return Type::Any;
        }
        return Type::Struct(leak(Struct {
            fields: leak_slice(fields),
            atomic: atomic_map,
            always_present: false,
        }));
    }
    if let Some(ap @ Value::Object(_)) = s.get("additionalProperties") {
        let values = build(root, ap, depth + 1);
        if matches!(values, Type::Any) && !atomic_map {
            return Type::Any;
        }
        return Type::Map(leak(MapType {
            values,
            atomic: atomic_map,
        }));
    }
    if atomic_map {
        return Type::Struct(leak(Struct {
            fields: &[],
            atomic: true,
            always_present: false,
        }));
    }
    Type::Any
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_and_map_types_come_from_the_schema() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "lineItems": {"type": "array", "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["sku"],
                    "items": {"type": "object", "properties": {"sku": {"type": "string"}}}},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "args": {"type": "array", "items": {"type": "string"}},
                "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                    "additionalProperties": {"type": "string"}}
            }}
        }});
        let root = custom_root(&schema);
        let spec = root.field("spec");
        assert!(matches!(
            spec.field("lineItems").list().map(|l| l.kind),
            Some(ListKind::Map(["sku"]))
        ));
        assert!(matches!(
            spec.field("tags").list().map(|l| l.kind),
            Some(ListKind::Set)
        ));
        assert!(
            matches!(spec.field("args"), Type::Any),
            "lists are atomic by default"
        );
        assert!(spec.field("selector").is_atomic());
        assert!(matches!(root.field("metadata"), Type::Struct(_)));
        // the same schema again is the same type
        assert!(
            matches!(custom_root(&schema), Type::Struct(a) if matches!(root, Type::Struct(b) if std::ptr::eq(a, b)))
        );
    }
}
