//! The message table against the file descriptors compiled into kubectl 1.33:
//! every field of every described message is there, with the same number,
//! type, cardinality and name, read with the decoder's own wire reader; every
//! package of a served kind is covered, and every kind discovery advertises
//! that the descriptors describe is decodable.

use std::collections::HashMap;
use std::fs;

use apiserver::protobuf::descriptors::{Message, Rule, Ty, kinds, lookup, meta_v1, top_level};
use apiserver::protobuf::wire::{Fields, Value};

use crate::fixtures;

/// FieldDescriptorProto, the parts the table mirrors.
#[derive(Debug, Default)]
struct FieldDesc {
    name: String,
    number: u32,
    repeated: bool,
    ty: u64,
    type_name: String,
    /// gogoproto.nullable = false: a Go value field, not a pointer.
    value_field: bool,
}

fn bytes(v: Value<'_>) -> &[u8] {
    match v {
        Value::Len(b) => b,
        other => panic!("expected bytes, found {other:?}"),
    }
}

fn text(v: Value<'_>) -> String {
    String::from_utf8(bytes(v).to_vec()).expect("utf-8")
}

fn int(v: Value<'_>) -> u64 {
    match v {
        Value::Varint(n) => n,
        other => panic!("expected a varint, found {other:?}"),
    }
}

fn field_desc(buf: &[u8]) -> FieldDesc {
    let mut f = FieldDesc::default();
    for item in Fields::new(buf) {
        match item.expect("descriptor") {
            (1, v) => f.name = text(v),
            (3, v) => f.number = int(v) as u32,
            (4, v) => f.repeated = int(v) == 3,
            (5, v) => f.ty = int(v),
            (6, v) => f.type_name = text(v).trim_start_matches('.').to_string(),
            (8, v) => {
                for opt in Fields::new(bytes(v)) {
                    if let (65001, n) = opt.expect("options") {
                        f.value_field = int(n) == 0;
                    }
                }
            }
            _ => {}
        }
    }
    f
}

/// DescriptorProto, recursively into nested (map entry) types.
fn message_desc(buf: &[u8], prefix: &str, out: &mut HashMap<String, Vec<FieldDesc>>) {
    let mut name = String::new();
    for item in Fields::new(buf) {
        if let (1, v) = item.expect("descriptor") {
            name = text(v);
        }
    }
    let full = format!("{prefix}.{name}");
    let mut fields = Vec::new();
    for item in Fields::new(buf) {
        match item.expect("descriptor") {
            (2, v) => fields.push(field_desc(bytes(v))),
            (3, v) => message_desc(bytes(v), &full, out),
            _ => {}
        }
    }
    out.insert(full, fields);
}

/// Every message of the committed descriptor files, and the packages they declare.
fn descriptors() -> (HashMap<String, Vec<FieldDesc>>, Vec<String>) {
    let mut out = HashMap::new();
    let mut packages = Vec::new();
    for entry in fs::read_dir(fixtures().join("descriptors")).expect("descriptor dir") {
        let buf = fs::read(entry.expect("entry").path()).expect("descriptor file");
        let mut package = String::new();
        for item in Fields::new(&buf) {
            if let (2, v) = item.expect("file descriptor") {
                package = text(v);
            }
        }
        for item in Fields::new(&buf) {
            if let (4, v) = item.expect("file descriptor") {
                message_desc(bytes(v), &package, &mut out);
            }
        }
        packages.push(package);
    }
    packages.sort();
    (out, packages)
}

/// FieldDescriptorProto.Type numbers.
fn proto_type(ty: Ty) -> (u64, Option<&'static str>) {
    match ty {
        Ty::Double => (1, None),
        Ty::Float => (2, None),
        Ty::Int64 => (3, None),
        Ty::UInt64 => (4, None),
        Ty::Int32 => (5, None),
        Ty::Bool => (8, None),
        Ty::String => (9, None),
        Ty::Message(m) | Ty::Map(m) => (11, Some(m.name)),
        Ty::Bytes => (12, None),
        Ty::UInt32 => (13, None),
    }
}

/// Every message reachable from the generated catalogue of kinds,
/// DeleteOptions, and the hand-written messages of responses.
fn reachable() -> Vec<&'static Message> {
    let mut seen: Vec<&'static Message> = Vec::new();
    let mut todo: Vec<&'static Message> = kinds::KINDS.iter().map(|k| k.message).collect();
    todo.push(&meta_v1::DELETE_OPTIONS);
    todo.extend(apiserver::protobuf::responses::messages());
    while let Some(m) = todo.pop() {
        if seen.iter().any(|s| std::ptr::eq(*s, m)) {
            continue;
        }
        seen.push(m);
        for f in m.fields {
            if let Ty::Message(n) | Ty::Map(n) = f.ty {
                todo.push(n);
            }
        }
    }
    seen
}

#[test]
fn protobuf_table_matches_kubectls_descriptors() {
    let (descs, _) = descriptors();
    assert!(descs.len() > 500, "read {} messages", descs.len());
    let messages = reachable();
    assert!(messages.len() > 450, "the table reaches {}", messages.len());
    for m in messages {
        let desc = descs
            .get(m.name)
            .unwrap_or_else(|| panic!("{} is not in kubectl's descriptors", m.name));
        assert_eq!(
            m.fields.len(),
            desc.len(),
            "{}: every field is described",
            m.name
        );
        for d in desc {
            let f = m
                .field(d.number)
                .unwrap_or_else(|| panic!("{} lacks field {} {}", m.name, d.number, d.name));
            let (ty, type_name) = proto_type(f.ty);
            assert_eq!(ty, d.ty, "{}.{}: type", m.name, d.name);
            if let Some(n) = type_name {
                assert_eq!(n, d.type_name, "{}.{}: message type", m.name, d.name);
            }
            let is_map = matches!(f.ty, Ty::Map(_));
            assert_eq!(
                d.repeated,
                is_map || f.rule == Rule::Repeated,
                "{}.{}: repeated",
                m.name,
                d.name
            );
            if f.rule != Rule::Inline {
                // The JSON name is Go's json tag; gogo's field name differs
                // from it in case only (aPIGroup, uID, Webhooks).
                assert!(
                    f.json.eq_ignore_ascii_case(&d.name),
                    "{}.{}: JSON name {}",
                    m.name,
                    d.name,
                    f.json
                );
            }
            if f.rule == Rule::OmitZero {
                assert!(
                    d.value_field || matches!(f.ty, Ty::Bytes),
                    "{}.{}: only Go value fields and byte slices omit zero",
                    m.name,
                    d.name
                );
            }
        }
    }
}

/// A message's package: the segments before the first capitalised one
/// (`k8s.io.api.core.v1` for `k8s.io.api.core.v1.PodSpec.NodeSelectorEntry`).
fn package_of(message: &str) -> &str {
    let end = message
        .match_indices('.')
        .find(|(i, _)| message[i + 1..].starts_with(|c: char| c.is_ascii_uppercase()))
        .map_or(message.len(), |(i, _)| i);
    &message[..end]
}

#[test]
fn protobuf_table_covers_every_package_of_a_served_kind() {
    let (descs, packages) = descriptors();
    // Each committed descriptor file is a package the table draws on ...
    let messages = reachable();
    for p in &packages {
        assert!(
            messages.iter().any(|m| package_of(m.name) == p),
            "{p} has a descriptor file but no message in the table"
        );
    }
    // ... and each package the table draws on has its descriptor file.
    for m in &messages {
        assert!(
            packages.iter().any(|p| p == package_of(m.name)),
            "{} has no descriptor file",
            m.name
        );
        assert!(descs.contains_key(m.name), "{}", m.name);
    }
    for api in [
        "core",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking",
        "discovery",
        "rbac",
        "storage",
        "scheduling",
        "node",
        "admissionregistration",
        "certificates",
        "events",
        "coordination",
        "authorization",
        "authentication",
    ] {
        let prefix = format!("k8s.io.api.{api}.v");
        assert!(
            packages.iter().any(|p| p.starts_with(&prefix)),
            "{api}: {packages:?}"
        );
    }
    assert!(packages.iter().any(|p| p == "k8s.io.api.autoscaling.v2"));
    // Every kind of the catalogue is a message of its own package.
    for k in kinds::KINDS {
        assert!(
            k.message.name.ends_with(&format!(".{}", k.kind)),
            "{} {} is {}",
            k.api_version,
            k.kind,
            k.message.name
        );
    }
}

#[test]
fn protobuf_decodes_every_kind_discovery_advertises_that_kubectl_describes() {
    let kinds_served = schemas::kinds::Registry::builtin().snapshot();
    let groups = apiserver::discovery::group_list(&kinds_served);
    let mut group_versions = vec![(String::new(), "v1".to_string())];
    for g in groups["groups"].as_array().expect("groups") {
        for v in g["versions"].as_array().expect("versions") {
            group_versions.push((
                g["name"].as_str().expect("name").to_string(),
                v["version"].as_str().expect("version").to_string(),
            ));
        }
    }
    let mut checked = 0;
    for (group, version) in &group_versions {
        let api_version = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        // the Metrics API is served as JSON only, get and list (metrics-server's
        // verbs): it has no protobuf messages and nothing to delete
        if api_version == schemas::resource_metrics::API_VERSION {
            continue;
        }
        // DeleteOptions in every served group version
        assert_eq!(
            lookup(&api_version, "DeleteOptions").map(|t| t.message.name),
            Some("k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
            "{api_version}"
        );
        let list = apiserver::discovery::resource_list(&kinds_served, group, version)
            .unwrap_or_else(|| panic!("{api_version} is listed but has no resource list"));
        for r in list["resources"].as_array().expect("resources") {
            let kind = r["kind"].as_str().expect("kind");
            // a subresource names its body's group and version when they differ
            let api_version = match (r["group"].as_str(), r["version"].as_str()) {
                (Some(""), Some(v)) => v.to_string(),
                (Some(g), Some(v)) => format!("{g}/{v}"),
                _ => api_version.clone(),
            };
            let described = kinds::KINDS
                .iter()
                .any(|k| k.api_version == api_version && k.kind == kind);
            if described {
                assert!(
                    lookup(&api_version, kind).is_some(),
                    "{api_version} {kind} ({}) is advertised and described but not decodable",
                    r["name"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 60, "{checked} resources checked");
    assert!(top_level().len() > 70, "{}", top_level().len());
}
