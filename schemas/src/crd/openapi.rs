//! A CRD version's structural schema (OpenAPI v3 with Kubernetes'
//! extensions) as the draft 2020-12 JSON Schema korral validates every kind
//! with: `nullable` → a `null` type, `x-kubernetes-int-or-string` → integer
//! or string, unknown fields refused unless `x-kubernetes-preserve-unknown-fields`,
//! embedded resources and the root given `apiVersion`, `kind` and the
//! ObjectMeta schema. The extensions stay in place for the walks that read
//! them (pruning, defaults, list types, CEL).

use serde_json::{Map, Value, json};

use crate::kinds::KindInfo;

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The ObjectMeta schema and the definitions it refers to, generated once.
fn object_meta_defs() -> &'static Map<String, Value> {
    static DEFS: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    DEFS.get_or_init(|| {
        let settings = schemars::generate::SchemaSettings::draft2020_12();
        let mut generator = settings.into_generator();
        let _ =
            generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
        let mut defs = Map::new();
        for (k, v) in generator.take_definitions(true) {
            defs.insert(k, v);
        }
        let mut wrapped = Value::Object(defs);
        crate::schema::make_strict(&mut wrapped);
        match wrapped {
            Value::Object(mut m) => {
                crate::schema::fix_defs(&mut m);
                m
            }
            _ => Map::new(),
        }
    })
}

fn is_true(s: &Map<String, Value>, key: &str) -> bool {
    s.get(key) == Some(&Value::Bool(true))
}

/// Converts one schema node.
fn convert(node: &Value, embedded_root: bool) -> Value {
    let Some(s) = node.as_object() else {
        return node.clone();
    };
    let mut out = Map::new();
    for (k, v) in s {
        match k.as_str() {
            "properties" => {
                let props: Map<String, Value> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, p)| (name.clone(), convert(p, false)))
                    .collect();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "not" => {
                out.insert(k.clone(), convert(v, false));
            }
            "additionalProperties" if v.is_object() => {
                out.insert(k.clone(), convert(v, false));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let list: Vec<Value> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| convert(x, false))
                    .collect();
                out.insert(k.clone(), Value::Array(list));
            }
            // OpenAPI 3.0's boolean exclusive bounds are 2020-12's numeric ones
            "exclusiveMinimum" | "exclusiveMaximum" => {}
            "nullable" | "type" => {}
            "format" => {
                if let Some(f) = v.as_str() {
                    let normalized = f.replace('-', "");
                    let known = matches!(
                        normalized.as_str(),
                        "datetime"
                            | "date"
                            | "email"
                            | "hostname"
                            | "ipv4"
                            | "ipv6"
                            | "uri"
                            | "uuid"
                    );
                    if known {
                        let name = if normalized == "datetime" {
                            "date-time".to_string()
                        } else {
                            f.to_string()
                        };
                        out.insert("format".into(), Value::String(name));
                    } else if matches!(
                        normalized.as_str(),
                        "duration" | "quantity" | "cidr" | "mac" | "byte"
                    ) {
                        out.insert("format".into(), Value::String(format!("k8s-{normalized}")));
                    }
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if is_true(s, "exclusiveMinimum")
        && let Some(m) = s.get("minimum")
    {
        out.remove("minimum");
        out.insert("exclusiveMinimum".into(), m.clone());
    }
    if is_true(s, "exclusiveMaximum")
        && let Some(m) = s.get("maximum")
    {
        out.remove("maximum");
        out.insert("exclusiveMaximum".into(), m.clone());
    }
    let nullable = is_true(s, "nullable");
    if is_true(s, "x-kubernetes-int-or-string") {
        let mut alts = vec![json!({"type": "integer"}), json!({"type": "string"})];
        if nullable {
            alts.push(json!({"type": "null"}));
        }
        out.insert("anyOf".into(), Value::Array(alts));
    } else if let Some(t) = s.get("type").and_then(Value::as_str) {
        let t = Value::String(t.to_string());
        out.insert("type".into(), if nullable { json!([t, "null"]) } else { t });
    }
    let embedded = is_true(s, "x-kubernetes-embedded-resource") || embedded_root;
    if embedded {
        let props = out
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(p) = props.as_object_mut() {
            p.entry("apiVersion")
                .or_insert_with(|| json!({"type": "string"}));
            p.entry("kind").or_insert_with(|| json!({"type": "string"}));
            let meta = p.remove("metadata");
            let mut meta_schema = json!({"$ref": format!("#/$defs/{OBJECT_META}")});
            if let Some(Value::Object(m)) = meta {
                // a CRD may only narrow name and generateName
                let mut extra = m;
                extra.remove("type");
                if !extra.is_empty() {
                    meta_schema = json!({"allOf": [meta_schema, Value::Object(extra)]});
                }
            }
            p.insert("metadata".into(), meta_schema);
        }
    }
    let preserve = is_true(s, "x-kubernetes-preserve-unknown-fields");
    if out.contains_key("properties") && !out.contains_key("additionalProperties") && !preserve {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// The root JSON Schema of a custom kind.
pub fn to_json_schema_root(schema: &Value, info: &KindInfo) -> Value {
    let mut root = convert(schema, true);
    if let Some(m) = root.as_object_mut() {
        if let Some(props) = m.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert(
                "apiVersion".into(),
                json!({"type": "string", "enum": [info.api_version]}),
            );
            props.insert(
                "kind".into(),
                json!({"type": "string", "enum": [info.kind]}),
            );
        }
        m.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        m.insert("$defs".into(), Value::Object(object_meta_defs().clone()));
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": info.group, "version": info.version, "kind": info.kind}]),
        );
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_become_json_schema() {
        let s = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "port": {"x-kubernetes-int-or-string": true},
                "note": {"type": "string", "nullable": true},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "n": {"type": "integer", "minimum": 0, "exclusiveMinimum": true}
            }}
        }});
        let out = convert(&s, true);
        let spec = &out["properties"]["spec"];
        assert_eq!(spec["additionalProperties"], false);
        assert_eq!(spec["properties"]["port"]["anyOf"][1]["type"], "string");
        assert_eq!(
            spec["properties"]["note"]["type"],
            json!(["string", "null"])
        );
        assert!(
            spec["properties"]["free"]
                .get("additionalProperties")
                .is_none()
        );
        assert_eq!(spec["properties"]["n"]["exclusiveMinimum"], 0);
        assert!(out["properties"]["metadata"]["$ref"].is_string());
    }
}
