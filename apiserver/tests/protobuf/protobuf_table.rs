//! The message table against the file descriptors compiled into kubectl 1.33:
//! every field of every described message is there, with the same number,
//! type, cardinality and name, read with the decoder's own wire reader.

use std::collections::HashMap;
use std::fs;

use apiserver::protobuf::descriptors::{Message, Rule, TOP_LEVEL, Ty};
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

fn descriptors() -> HashMap<String, Vec<FieldDesc>> {
    let mut out = HashMap::new();
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
    }
    out
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

fn reachable() -> Vec<&'static Message> {
    let mut seen: Vec<&'static Message> = Vec::new();
    let mut todo: Vec<&'static Message> = TOP_LEVEL.iter().map(|t| t.message).collect();
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
    let descs = descriptors();
    assert!(descs.len() > 300, "read {} messages", descs.len());
    let messages = reachable();
    assert!(messages.len() > 200, "the table reaches {}", messages.len());
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
                assert_eq!(f.json, d.name, "{}.{}: JSON name", m.name, d.name);
            }
            if f.rule == Rule::OmitZero {
                assert!(
                    d.value_field,
                    "{}.{}: only Go value fields omit zero",
                    m.name, d.name
                );
            }
        }
    }
}
