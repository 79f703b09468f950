//! OpenAPI documents, built from the kinds served (so they follow
//! CustomResourceDefinitions): `/openapi/v3` (the list of group-version
//! documents, each with a content hash), `/openapi/v3/apis/<g>/<v>`, and a
//! complete `/openapi/v2`. Schemas are named as Kubernetes names them
//! (`io.k8s.api.apps.v1.Deployment`), carry `x-kubernetes-group-version-kind`
//! and the list and patch metadata kubectl reads; PATCH operations carry the
//! `fieldValidation` parameter (kubectl then lets the server validate).
//! Documents are cached per registry generation.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use schemas::KindInfo;
use schemas::kinds::{Behavior, Kinds};

/// The media type of the protobuf OpenAPI v2 document client-go asks for.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2` as protobuf (gnostic `openapi_v2.Document`): a document
/// without definitions. kubectl uses v2 only as a fallback — for client-side
/// validation of kinds the server does not validate (`kind: List`), and for
/// patch metadata; with no definitions it skips both and relies on the
/// server, which validates and knows every kind's merge keys.
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

/// A document and its content hash.
#[derive(Clone, Debug)]
pub struct Doc {
    /// The JSON body.
    pub body: Arc<Vec<u8>>,
    /// Upper-case hex SHA-512 of the body (the `?hash=` and ETag value).
    pub hash: String,
}

impl Doc {
    fn new(v: &Value) -> Doc {
        let body = crate::status::encode(v);
        let digest = ring::digest::digest(&ring::digest::SHA512, &body);
        let hash = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        Doc {
            body: Arc::new(body),
            hash,
        }
    }
}

/// OpenAPI documents, cached until the served kinds change.
#[derive(Default)]
pub struct OpenApi {
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    generation: u64,
    group_versions: BTreeMap<String, Doc>,
    v2: Option<Doc>,
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

impl OpenApi {
    fn with_cache<T>(&self, kinds: &Kinds, f: impl FnOnce(&mut Cache) -> T) -> T {
        let mut c = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.generation != kinds.generation {
            *c = Cache {
                generation: kinds.generation,
                ..Default::default()
            };
        }
        f(&mut c)
    }

    /// The document of one group/version (`api/v1`, `apis/apps/v1`), if served.
    pub fn group_version(&self, kinds: &Kinds, path: &str) -> Option<Doc> {
        let path = path.trim_matches('/').to_string();
        if let Some(d) = self.with_cache(kinds, |c| c.group_versions.get(&path).cloned()) {
            return Some(d);
        }
        let doc = Doc::new(&group_version_doc(kinds, &path)?);
        self.with_cache(kinds, |c| {
            c.group_versions.insert(path, doc.clone());
        });
        Some(doc)
    }

    /// `/openapi/v3`: where each group/version's document is.
    pub fn root(&self, kinds: &Kinds) -> Value {
        let mut paths = Map::new();
        let mut seen = HashSet::new();
        for k in kinds.all() {
            let path = gv_path(&k.group, &k.version);
            if seen.insert(path.clone())
                && let Some(doc) = self.group_version(kinds, &path)
            {
                paths.insert(
                    path.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash)}),
                );
            }
        }
        json!({"paths": paths})
    }

    /// `/openapi/v2` as JSON: every kind's definitions and paths.
    pub fn v2(&self, kinds: &Kinds) -> Doc {
        if let Some(d) = self.with_cache(kinds, |c| c.v2.clone()) {
            return d;
        }
        let doc = Doc::new(&v2_doc(kinds));
        self.with_cache(kinds, |c| c.v2 = Some(doc.clone()));
        doc
    }
}

/// Rewrites `#/$defs/X` references to `prefix + X` (renamed through
/// `names`), wraps references that have siblings in `allOf` (OpenAPI 3.0
/// ignores siblings of `$ref`), and drops the strictness korral adds for
/// its own validation (`additionalProperties: false`), which Kubernetes'
/// published schemas do not carry.
fn rewrite(v: &mut Value, prefix: &str, names: &BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            if m.get("additionalProperties") == Some(&Value::Bool(false)) {
                m.remove("additionalProperties");
            }
            if let Some(Value::String(r)) = m.get("$ref").cloned()
                && let Some(def) = r.strip_prefix("#/$defs/")
            {
                let target = format!(
                    "{prefix}{}",
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
                rewrite(child, prefix, names);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, prefix, names)),
        _ => {}
    }
}

/// The component name of a definition: Kubernetes' own, or korral's types
/// under `dev.korral.<version>`.
fn component_name(def: &str, info: &KindInfo) -> String {
    if def.contains('.') {
        def.to_string()
    } else {
        format!("dev.korral.{}.{def}", info.version)
    }
}

/// Adds a kind's schema and its definitions to `out`; returns its name.
fn add_kind_schemas(info: &KindInfo, prefix: &str, out: &mut Map<String, Value>) -> String {
    let name = info.schema_name();
    let mut root = match &info.behavior {
        Behavior::Builtin(_) => info.compiled().schema().clone(),
        Behavior::Custom(c) => published_custom_schema(info, &c.schema),
    };
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
        let cname = names.get(&def).cloned().unwrap_or(def.clone());
        rewrite(&mut schema, prefix, &names);
        out.entry(cname).or_insert(schema);
    }
    rewrite(&mut root, prefix, &names);
    out.insert(name.clone(), root);
    // the list kind
    out.insert(
        format!("{name}List"),
        json!({
            "description": format!("{} is a list of {}", info.list_kind, info.kind),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"$ref": format!("{prefix}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")},
                "items": {"type": "array", "items": {"$ref": format!("{prefix}{name}")}},
            },
            "x-kubernetes-group-version-kind": [{"group": info.group, "version": info.version, "kind": info.list_kind}],
        }),
    );
    if info.is_builtin() {
        let (ty, _) = crate::patch::merge_keys::root_type(info);
        annotate_lists(out, &name, prefix, ty, &mut HashSet::new());
    }
    name
}

/// A custom kind's schema as kube-apiserver publishes it: the CRD's own
/// (structural) schema with `apiVersion`, `kind` and the ObjectMeta reference.
fn published_custom_schema(info: &KindInfo, schema: &Value) -> Value {
    let mut root = schema.clone();
    if let Some(m) = root.as_object_mut() {
        let props = m
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(p) = props {
            p.insert("apiVersion".into(), json!({"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"}));
            p.insert("kind".into(), json!({"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"}));
            p.insert(
                "metadata".into(),
                json!({"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", "$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}),
            );
        }
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": info.group, "version": info.version, "kind": info.kind}]),
        );
        // the ObjectMeta definitions, from the validation schema
        if let Some(defs) = info.compiled().schema().get("$defs") {
            m.insert("$defs".into(), defs.clone());
        }
    }
    root
}

/// The component a property schema refers to (directly, through `allOf`,
/// or through a list's `items` / a map's `additionalProperties`).
fn referenced(prop: &Value, prefix: &str) -> Option<String> {
    let r = prop
        .get("$ref")
        .or_else(|| prop.pointer("/allOf/0/$ref"))
        .or_else(|| prop.pointer("/items/$ref"))
        .or_else(|| prop.pointer("/items/allOf/0/$ref"))
        .or_else(|| prop.pointer("/additionalProperties/$ref"))?;
    r.as_str()?.strip_prefix(prefix).map(str::to_string)
}

/// Marks list properties with the strategic-merge and apply metadata kubectl
/// reads (`x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`,
/// `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`), from the same
/// table the server patches with.
fn annotate_lists(
    schemas: &mut Map<String, Value>,
    component: &str,
    prefix: &str,
    ty: crate::patch::merge_keys::Type,
    seen: &mut HashSet<String>,
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
        if let Some(child) = referenced(schema, prefix) {
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
        annotate_lists(schemas, &child, prefix, t, seen);
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
            "How the server handles unknown or duplicate fields: Ignore, Warn (the default) or Strict.",
        ),
    ]
}

fn operation(
    info: &KindInfo,
    action: &str,
    op_id: &str,
    body_types: &[&str],
    response: &str,
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
    let reference = json!({"$ref": response});
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

fn add_paths(info: &KindInfo, component: &str, prefix: &str, paths: &mut Map<String, Value>) {
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
    let (_, strategic) = crate::patch::merge_keys::root_type(info);
    if strategic {
        patch_types.insert(2, "application/strategic-merge-patch+json");
    }
    let k = &info.kind;
    let one = format!("{prefix}{component}");
    let list = format!("{prefix}{component}List");
    paths.insert(
        collection,
        json!({
            "get": operation(info, "list", &format!("list{k}"), &[], &list),
            "post": operation(info, "post", &format!("create{k}"), &["application/json", "application/yaml"], &one),
            "delete": operation(info, "deletecollection", &format!("deleteCollection{k}"), &[], &one),
        }),
    );
    paths.insert(
        item.clone(),
        json!({
            "get": operation(info, "get", &format!("read{k}"), &[], &one),
            "put": operation(info, "put", &format!("replace{k}"), &["application/json", "application/yaml"], &one),
            "patch": operation(info, "patch", &format!("patch{k}"), &patch_types, &one),
            "delete": operation(info, "delete", &format!("delete{k}"), &[], &one),
        }),
    );
    if info.has_status_subresource() {
        paths.insert(
            format!("{item}/status"),
            json!({
                "get": operation(info, "get", &format!("read{k}Status"), &[], &one),
                "put": operation(info, "put", &format!("replace{k}Status"), &["application/json"], &one),
                "patch": operation(info, "patch", &format!("patch{k}Status"), &patch_types, &one),
            }),
        );
    }
    if info.has_subresource("scale") {
        let scale = format!("{prefix}io.k8s.api.autoscaling.v1.Scale");
        paths.insert(
            format!("{item}/scale"),
            json!({
                "get": operation(info, "get", &format!("read{k}Scale"), &[], &scale),
                "put": operation(info, "put", &format!("replace{k}Scale"), &["application/json"], &scale),
                "patch": operation(info, "patch", &format!("patch{k}Scale"), &patch_types, &scale),
            }),
        );
    }
}

/// The Scale schema the scale subresources answer with.
fn add_scale_schema(prefix: &str, out: &mut Map<String, Value>) {
    out.entry("io.k8s.api.autoscaling.v1.Scale").or_insert_with(|| json!({
        "description": "Scale represents a scaling request for a resource.",
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": format!("{prefix}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")},
            "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "format": "int32", "description": "replicas is the desired number of instances for the scaled object."}}},
            "status": {"type": "object", "required": ["replicas"], "properties": {
                "replicas": {"type": "integer", "format": "int32", "description": "replicas is the actual number of observed instances of the scaled object."},
                "selector": {"type": "string", "description": "selector is the label query over pods that should match the replicas count."}}},
        },
        "x-kubernetes-group-version-kind": [{"group": "autoscaling", "version": "v1", "kind": "Scale"}],
    }));
}

fn list_meta_schema() -> Value {
    json!({
        "description": "ListMeta describes metadata that synthetic resources must have, including lists and various status objects.",
        "type": "object",
        "properties": {
            "continue": {"type": "string"},
            "remainingItemCount": {"type": "integer", "format": "int64"},
            "resourceVersion": {"type": "string"},
            "selfLink": {"type": "string"},
        },
    })
}

/// The document of one group/version (`api/v1`, `apis/apps/v1`), if served.
pub fn group_version_doc(kinds: &Kinds, path: &str) -> Option<Value> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version) = match segs.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let served: Vec<&std::sync::Arc<KindInfo>> = kinds.in_group_version(group, version).collect();
    if served.is_empty() {
        return None;
    }
    const PREFIX: &str = "#/components/schemas/";
    let mut schemas = Map::new();
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta".into(),
        list_meta_schema(),
    );
    let mut paths = Map::new();
    for info in served {
        let component = add_kind_schemas(info, PREFIX, &mut schemas);
        if info.has_subresource("scale") {
            add_scale_schema(PREFIX, &mut schemas);
        }
        add_paths(info, &component, PREFIX, &mut paths);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::discovery::KUBE_MAJOR, crate::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `/openapi/v2`: Swagger 2.0 with every kind's definitions and paths.
fn v2_doc(kinds: &Kinds) -> Value {
    const PREFIX: &str = "#/definitions/";
    let mut definitions = Map::new();
    definitions.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta".into(),
        list_meta_schema(),
    );
    let mut paths = Map::new();
    for info in kinds.all() {
        let component = add_kind_schemas(info, PREFIX, &mut definitions);
        if info.has_subresource("scale") {
            add_scale_schema(PREFIX, &mut definitions);
        }
        let mut v3_paths = Map::new();
        add_paths(info, &component, PREFIX, &mut v3_paths);
        for (p, ops) in v3_paths {
            // Swagger 2.0: parameters carry their type, bodies are parameters
            let mut ops2 = Map::new();
            for (method, op) in ops.as_object().into_iter().flatten() {
                let mut op = op.clone();
                if let Some(Value::Array(params)) = op.get_mut("parameters") {
                    for p in params.iter_mut() {
                        if let Some(m) = p.as_object_mut() {
                            m.remove("schema");
                            m.insert("type".into(), json!("string"));
                            m.insert("uniqueItems".into(), json!(true));
                        }
                    }
                }
                if let Some(m) = op.as_object_mut() {
                    let response = m
                        .get("responses")
                        .and_then(|r| r.pointer("/200/content/application~1json/schema"))
                        .cloned()
                        .unwrap_or_else(|| json!({}));
                    m.insert(
                        "responses".into(),
                        json!({"200": {"description": "OK", "schema": response}}),
                    );
                    if let Some(body) = m.remove("requestBody") {
                        let consumes: Vec<Value> = body
                            .get("content")
                            .and_then(Value::as_object)
                            .map(|c| c.keys().map(|k| Value::String(k.clone())).collect())
                            .unwrap_or_default();
                        m.insert("consumes".into(), Value::Array(consumes));
                        if let Some(Value::Array(params)) = m.get_mut("parameters") {
                            params.insert(0, json!({"name": "body", "in": "body", "required": true, "schema": {"type": "object"}}));
                        }
                    }
                    m.insert(
                        "produces".into(),
                        json!(["application/json", "application/yaml"]),
                    );
                }
                ops2.insert(method.clone(), op);
            }
            paths.insert(p, Value::Object(ops2));
        }
    }
    let mut doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::discovery::KUBE_MAJOR, crate::discovery::KUBE_MINOR)},
        "paths": paths,
        "definitions": definitions,
    });
    // OpenAPI 2.0 has neither nullable types nor anyOf: keep one type
    v2_compatible(&mut doc);
    doc
}

fn v2_compatible(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(types)) = m.get("type").cloned() {
                let first = types.into_iter().find(|t| t != "null");
                match first {
                    Some(t) => m.insert("type".into(), t),
                    None => m.remove("type"),
                };
            }
            if m.contains_key("anyOf")
                && m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
            {
                m.remove("anyOf");
                m.insert("type".into(), json!("string"));
                m.insert("format".into(), json!("int-or-string"));
            }
            for child in m.values_mut() {
                v2_compatible(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(v2_compatible),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> Arc<Kinds> {
        schemas::Registry::builtin().snapshot()
    }

    fn doc(path: &str) -> Value {
        let d = OpenApi::default()
            .group_version(&kinds(), path)
            .expect("served");
        serde_json::from_slice(&d.body).expect("json")
    }

    #[test]
    fn documents_are_listed_and_resolve() {
        let api = OpenApi::default();
        let r = api.root(&kinds());
        let p = r["paths"].as_object().expect("paths");
        for gv in [
            "api/v1",
            "apis/apps/v1",
            "apis/batch/v1",
            "apis/autoscaling/v1",
            "apis/korral.dev/v1alpha1",
        ] {
            assert!(p.contains_key(gv), "{gv}");
        }
        let apps = doc("apis/apps/v1");
        let schemas = apps["components"]["schemas"].as_object().expect("schemas");
        let d = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            d["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let text = apps.to_string();
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
        assert!(api.group_version(&kinds(), "apis/nope/v1").is_none());
    }

    #[test]
    fn patch_operations_advertise_field_validation_and_lists_their_merge_keys() {
        let apps = doc("apis/apps/v1");
        let op =
            &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "StatefulSet");
        assert!(
            op["parameters"]
                .as_array()
                .expect("params")
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let core = doc("api/v1");
        let s = &core["components"]["schemas"];
        let containers = &s["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    }

    #[test]
    fn v2_has_every_definition() {
        let d = OpenApi::default().v2(&kinds());
        let v: Value = serde_json::from_slice(&d.body).expect("json");
        let defs = v["definitions"].as_object().expect("definitions");
        for name in [
            "io.k8s.api.core.v1.Pod",
            "io.k8s.api.batch.v1.CronJob",
            "io.k8s.api.rbac.v1.ClusterRole",
        ] {
            assert!(defs.contains_key(name), "{name}");
        }
        assert!(!v.to_string().contains("#/components/"));
    }
}
