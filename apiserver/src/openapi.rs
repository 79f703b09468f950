//! OpenAPI v3 documents (`/openapi/v3`, `/openapi/v3/api/v1`, ...), generated
//! from the kinds' JSON Schemas, in the shape kubectl reads: component
//! schemas named like Kubernetes' (`io.k8s.api.apps.v1.Deployment`) with
//! `x-kubernetes-group-version-kind`, and paths whose PATCH operations carry
//! that extension and the `fieldValidation` parameter (kubectl then lets the
//! server validate, strictly) and list the patch types accepted.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use schemas::KindInfo;

/// The media type of the protobuf OpenAPI v2 document client-go asks for.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2` as protobuf (gnostic `openapi_v2.Document`): a document
/// without definitions. kubectl uses v2 only as a fallback — for client-side
/// validation of kinds the server does not validate (`kind: List`), and for
/// patch metadata; with no definitions it skips both and relies on the
/// server, which validates strictly and knows every kind's merge keys.
pub fn v2_protobuf() -> Vec<u8> {
    fn field(num: u8, bytes: &[u8], out: &mut Vec<u8>) {
        out.push((num << 3) | 2);
        out.push(u8::try_from(bytes.len()).unwrap_or(0));
        out.extend_from_slice(bytes);
    }
    let version = format!(
        "v{}.{}.0",
        crate::discovery::KUBE_MAJOR,
        crate::discovery::KUBE_MINOR
    );
    let mut info = Vec::new();
    field(1, b"Kubernetes", &mut info);
    field(2, version.as_bytes(), &mut info);
    let mut doc = Vec::new();
    field(1, b"2.0", &mut doc);
    field(2, &info, &mut doc);
    doc
}

/// `/openapi/v2` as JSON (same content as [`v2_protobuf`]).
pub fn v2_json() -> Value {
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::discovery::KUBE_MAJOR, crate::discovery::KUBE_MINOR)}, "paths": {}, "definitions": {}})
}

/// `/openapi/v3`: where each group/version's document is.
pub fn root() -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, &str, &str)> = Vec::new();
    for k in schemas::served() {
        let path = gv_path(k.group, k.version);
        if !gvs.iter().any(|(p, _, _)| *p == path) {
            gvs.push((path, k.group, k.version));
        }
    }
    for (path, group, version) in gvs {
        let hash = doc_hash(group, version);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn doc_hash(group: &str, version: &str) -> String {
    // stable for a given build: the document only changes with the code
    let text = group_version_doc(&gv_path(group, version))
        .map(|d| d.to_string())
        .unwrap_or_default();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

/// The component-schema name Kubernetes uses for a type of a kind's schema.
fn component_name(def: &str, info: &KindInfo) -> String {
    match def {
        "ObjectMeta"
        | "OwnerReference"
        | "ManagedFieldsEntry"
        | "LabelSelector"
        | "LabelSelectorRequirement"
        | "ListMeta"
        | "Condition"
        | "Time"
        | "MicroTime"
        | "Status"
        | "StatusDetails"
        | "StatusCause" => {
            format!("io.k8s.apimachinery.pkg.apis.meta.v1.{def}")
        }
        "Quantity" => "io.k8s.apimachinery.pkg.api.resource.Quantity".into(),
        "IntOrString" => "io.k8s.apimachinery.pkg.util.intstr.IntOrString".into(),
        _ => format!("{}.{def}", kind_namespace(info)),
    }
}

fn kind_namespace(info: &KindInfo) -> String {
    match info.group {
        "" => format!("io.k8s.api.core.{}", info.version),
        "korral.dev" => format!("dev.korral.{}", info.version),
        g => format!(
            "io.k8s.api.{}.{}",
            g.split('.').next().unwrap_or(g),
            info.version
        ),
    }
}

/// Rewrites `#/$defs/X` references to components, wraps references that have
/// siblings in `allOf` (OpenAPI 3.0 ignores siblings of `$ref`), and marks
/// int-or-string values the way Kubernetes does.
fn rewrite(v: &mut Value, names: &BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref").cloned()
                && let Some(def) = r.strip_prefix("#/$defs/")
            {
                let target = format!(
                    "#/components/schemas/{}",
                    names.get(def).cloned().unwrap_or_else(|| def.to_string())
                );
                m.remove("$ref");
                if m.is_empty() {
                    m.insert("$ref".into(), Value::String(target));
                } else {
                    m.remove("default");
                    m.insert("allOf".into(), json!([{"$ref": target}]));
                }
            }
            for child in m.values_mut() {
                rewrite(child, names);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, names)),
        _ => {}
    }
}

fn int_or_string(description: &str, format: &str) -> Value {
    json!({"description": description, "type": "string", "format": format, "x-kubernetes-int-or-string": true})
}

fn add_kind_schemas(info: &KindInfo, schemas: &mut Map<String, Value>) -> String {
    let mut root = info.json_schema();
    let defs = root
        .as_object_mut()
        .and_then(|m| m.remove("$defs"))
        .unwrap_or_else(|| json!({}));
    if let Some(m) = root.as_object_mut() {
        m.remove("$schema");
    }
    let names: BTreeMap<String, String> = defs
        .as_object()
        .map(|d| {
            d.keys()
                .map(|k| (k.clone(), component_name(k, info)))
                .collect()
        })
        .unwrap_or_default();
    for (def, mut schema) in defs.as_object().cloned().unwrap_or_default() {
        let name = names.get(&def).cloned().unwrap_or(def.clone());
        let schema = match def.as_str() {
            "Quantity" => int_or_string(
                "Quantity is a fixed-point representation of a number, e.g. 250m, 1.5, 64Mi, 1G.",
                "quantity",
            ),
            "IntOrString" => {
                int_or_string("IntOrString holds an integer or a string.", "int-or-string")
            }
            _ => {
                rewrite(&mut schema, &names);
                schema
            }
        };
        schemas.entry(name).or_insert(schema);
    }
    rewrite(&mut root, &names);
    let name = format!("{}.{}", kind_namespace(info), info.kind);
    schemas.insert(name.clone(), root);
    let (ty, _) = crate::patch::merge_keys::root_type(info);
    annotate_lists(schemas, &name, ty, &mut std::collections::HashSet::new());
    name
}

/// The component a property schema refers to (directly, through `allOf`,
/// or through a list's `items` / a map's `additionalProperties`).
fn referenced(prop: &Value) -> Option<String> {
    let r = prop
        .get("$ref")
        .or_else(|| prop.pointer("/allOf/0/$ref"))
        .or_else(|| prop.pointer("/items/$ref"))
        .or_else(|| prop.pointer("/items/allOf/0/$ref"))
        .or_else(|| prop.pointer("/additionalProperties/$ref"))?;
    r.as_str()?
        .strip_prefix("#/components/schemas/")
        .map(str::to_string)
}

/// Marks list properties with the strategic-merge and apply metadata kubectl
/// reads (`x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`,
/// `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`), from the same
/// table the server patches with.
fn annotate_lists(
    schemas: &mut Map<String, Value>,
    component: &str,
    ty: crate::patch::merge_keys::Type,
    seen: &mut std::collections::HashSet<String>,
) {
    use crate::patch::merge_keys::{ListKind, PatchStrategy, Type};
    if matches!(ty, Type::Any) || !seen.insert(component.to_string()) {
        return;
    }
    let Some(props) = schemas
        .get(component)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    let mut children = Vec::new();
    let mut updates = Vec::new();
    for (field, schema) in &props {
        let t = ty.field(field);
        if let Some(list) = t.list() {
            let mut ext = Map::new();
            if list.strategy == PatchStrategy::Merge {
                ext.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
            }
            if let Some(k) = list.merge_key {
                ext.insert("x-kubernetes-patch-merge-key".into(), json!(k));
            }
            match list.kind {
                ListKind::Atomic => {
                    ext.insert("x-kubernetes-list-type".into(), json!("atomic"));
                }
                ListKind::Set => {
                    ext.insert("x-kubernetes-list-type".into(), json!("set"));
                }
                ListKind::Map(keys) => {
                    ext.insert("x-kubernetes-list-type".into(), json!("map"));
                    ext.insert("x-kubernetes-list-map-keys".into(), json!(keys));
                }
            }
            updates.push((field.clone(), ext));
        }
        if let Some(child) = referenced(schema) {
            let child_ty = match t {
                Type::List(l) => l.elem,
                Type::Map(_) => t.field("*"),
                other => other,
            };
            children.push((child, child_ty));
        }
    }
    if let Some(Value::Object(p)) = schemas
        .get_mut(component)
        .and_then(|s| s.get_mut("properties"))
    {
        for (field, ext) in updates {
            if let Some(Value::Object(f)) = p.get_mut(&field) {
                f.extend(ext);
            }
        }
    }
    for (child, t) in children {
        annotate_lists(schemas, &child, t, seen);
    }
}

fn param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        param(
            "dryRun",
            "When present, indicates that modifications should not be persisted: All.",
        ),
        param("fieldManager", "The name of the actor making the change."),
        param(
            "fieldValidation",
            "How the server handles unknown or duplicate fields: Ignore, Warn or Strict (korral always validates strictly).",
        ),
    ]
}

fn operation(
    info: &KindInfo,
    action: &str,
    op_id: &str,
    body_types: &[&str],
    component: &str,
) -> Value {
    let mut params = match action {
        "post" | "put" | "patch" => write_params(),
        "list" | "watch" => vec![
            param(
                "labelSelector",
                "A selector to restrict the list by labels.",
            ),
            param(
                "fieldSelector",
                "A selector to restrict the list by fields.",
            ),
            param("limit", "The maximum number of items to return."),
            param("continue", "The continue token of a previous page."),
            param(
                "resourceVersion",
                "The resource version to list or watch from.",
            ),
            param("watch", "Watch for changes."),
        ],
        _ => Vec::new(),
    };
    if action == "patch" {
        params.push(param(
            "force",
            "Force server-side apply to take ownership of conflicting fields.",
        ));
    }
    let reference = json!({"$ref": format!("#/components/schemas/{component}")});
    let mut op = json!({
        "operationId": op_id,
        "description": format!("{action} {}", info.kind),
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference.clone()}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind},
    });
    if !body_types.is_empty() {
        let content: Map<String, Value> = body_types
            .iter()
            .map(|t| {
                let schema = if *t == "application/json" {
                    reference.clone()
                } else {
                    json!({"type": "object"})
                };
                (t.to_string(), json!({"schema": schema}))
            })
            .collect();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

fn add_paths(info: &KindInfo, component: &str, paths: &mut Map<String, Value>) {
    let base = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    let collection = if info.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", info.plural)
    } else {
        format!("{base}/{}", info.plural)
    };
    let item = format!("{collection}/{{name}}");
    let mut patch_types = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    if info.group != "korral.dev" {
        patch_types.insert(2, "application/strategic-merge-patch+json");
    }
    let k = info.kind;
    paths.insert(
        collection,
        json!({
            "get": operation(info, "list", &format!("list{k}"), &[], component),
            "post": operation(info, "post", &format!("create{k}"), &["application/json", "application/yaml"], component),
            "delete": operation(info, "deletecollection", &format!("deleteCollection{k}"), &[], component),
        }),
    );
    paths.insert(
        item.clone(),
        json!({
            "get": operation(info, "get", &format!("read{k}"), &[], component),
            "put": operation(info, "put", &format!("replace{k}"), &["application/json", "application/yaml"], component),
            "patch": operation(info, "patch", &format!("patch{k}"), &patch_types, component),
            "delete": operation(info, "delete", &format!("delete{k}"), &[], component),
        }),
    );
    if info.subresources.contains(&"status") {
        paths.insert(
            format!("{item}/status"),
            json!({
                "get": operation(info, "get", &format!("read{k}Status"), &[], component),
                "put": operation(info, "put", &format!("replace{k}Status"), &["application/json"], component),
                "patch": operation(info, "patch", &format!("patch{k}Status"), &patch_types, component),
            }),
        );
    }
}

/// The document of one group/version (`api/v1`, `apis/apps/v1`), if served.
pub fn group_version_doc(path: &str) -> Option<Value> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version) = match segs.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let kinds: Vec<&KindInfo> = schemas::served()
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut schemas = Map::new();
    let mut paths = Map::new();
    for info in kinds {
        let component = add_kind_schemas(info, &mut schemas);
        add_paths(info, &component, &mut paths);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::discovery::KUBE_MAJOR, crate::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_listed_and_resolve() {
        let r = root();
        let p = r["paths"].as_object().expect("paths");
        assert!(p.contains_key("api/v1"));
        assert!(p.contains_key("apis/apps/v1"));
        assert!(p.contains_key("apis/korral.dev/v1alpha1"));
        let doc = group_version_doc("apis/apps/v1").expect("apps doc");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let d = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            d["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        // every reference resolves to a component
        let text = doc.to_string();
        for part in text.split("#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or("");
            assert!(schemas.contains_key(name), "dangling reference {name}");
        }
        assert!(!text.contains("$defs"));
        assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert_eq!(
            schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["x-kubernetes-int-or-string"],
            true
        );
    }

    #[test]
    fn patch_operations_advertise_field_validation_and_patch_types() {
        let doc = group_version_doc("apis/apps/v1").expect("apps doc");
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            op["parameters"]
                .as_array()
                .expect("params")
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(
            op["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_some()
        );
        let korral = group_version_doc("apis/korral.dev/v1alpha1").expect("korral doc");
        let op = &korral["paths"]["/apis/korral.dev/v1alpha1/namespaces/{namespace}/gitsources/{name}"]
            ["patch"];
        assert!(
            op["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_none()
        );
        assert!(group_version_doc("apis/nope/v1").is_none());
    }

    #[test]
    fn lists_carry_their_merge_keys() {
        let doc = group_version_doc("api/v1").expect("core doc");
        let s = &doc["components"]["schemas"];
        let containers = &s["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        let ports = &s["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "port");
        let env = &s["io.k8s.api.core.v1.Container"]["properties"]["env"];
        assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
    }
}
