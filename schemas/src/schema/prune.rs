//! Pruning: removing the fields a kind's schema does not know, as
//! kube-apiserver's decoder drops them (and reports them for
//! `fieldValidation=Warn|Strict`). Objects marked
//! `x-kubernetes-preserve-unknown-fields` keep everything below them;
//! embedded resources keep `apiVersion`, `kind` and `metadata`.

use serde_json::Value;

use crate::path::FieldPath;
use crate::schema::resolve;

/// Removes unknown fields from `object`, returning their paths in document order.
pub fn prune_unknown(root: &Value, object: &mut Value) -> Vec<FieldPath> {
    let mut out = Vec::new();
    walk(root, root, object, &FieldPath::root(), &mut out);
    out
}

fn walk(
    root: &Value,
    schema: &Value,
    value: &mut Value,
    path: &FieldPath,
    out: &mut Vec<FieldPath>,
) {
    let s = resolve(root, schema);
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && s.get("properties").is_none()
    {
        return;
    }
    // alternatives (int-or-string, nullable wrappers): prune by the object-shaped one
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(subs)) = s.get(key) {
            for sub in subs {
                let r = resolve(root, sub);
                if r.get("properties").is_some()
                    || r.get("items").is_some()
                    || r.get("$ref").is_some()
                {
                    walk(root, sub, value, path, out);
                }
            }
        }
    }
    match value {
        Value::Object(map) => {
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties");
            let preserve =
                s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            let embedded = s.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
            if props.is_none() && additional.is_none() {
                return;
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let child_path = path.key(k.clone());
                let child_schema = props.and_then(|p| p.get(&k));
                match (child_schema, additional) {
                    (Some(cs), _) => {
                        if let Some(child) = map.get_mut(&k) {
                            walk(root, cs, child, &child_path, out);
                        }
                    }
                    (None, Some(a @ Value::Object(_))) => {
                        if let Some(child) = map.get_mut(&k) {
                            walk(root, a, child, &child_path, out);
                        }
                    }
                    (None, Some(Value::Bool(true))) => {}
                    _ if preserve => {}
                    _ if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") => {}
                    _ => {
                        map.remove(&k);
                        out.push(child_path);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(root, item_schema, item, &path.index(i), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prunes_through_refs_maps_and_lists_but_not_preserved_objects() {
        let schema = json!({
            "$defs": {"Item": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}},
            "type": "object",
            "properties": {
                "list": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
                "map": {"type": "object", "additionalProperties": {"$ref": "#/$defs/Item"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            },
            "additionalProperties": false
        });
        let mut v = json!({"list": [{"a": "x", "b": 1}], "map": {"k": {"c": 2}}, "free": {"anything": 1}, "top": 0});
        let pruned: Vec<String> = prune_unknown(&schema, &mut v)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(pruned, vec!["list[0].b", "map.k.c", "top"]);
        assert_eq!(
            v,
            json!({"list": [{"a": "x"}], "map": {"k": {}}, "free": {"anything": 1}})
        );
    }
}
