//! Protobuf response bodies, for clients whose `Accept` prefers
//! `application/vnd.kubernetes.protobuf`: an object or a list in the
//! `k8s\0` + `runtime.Unknown` envelope, a Status, and the frames of a
//! `;stream=watch` response (a 4-byte big-endian length, then a
//! `meta/v1 WatchEvent` whose object is an enveloped object).
//!
//! The meta/v1 messages of responses (ListMeta, Status, WatchEvent) are not
//! in the generated table, which holds what requests carry; they are written
//! here and checked against kubectl's descriptors with the rest
//! (`apiserver/tests/protobuf/protobuf_table.rs`).

use serde_json::Value;

use super::descriptors::{Message, Rule, Shape, Ty, f, lookup, runtime};
use super::encode::{self, len_field};
use super::{MAGIC, ProtobufError};

/// `k8s.io.apimachinery.pkg.apis.meta.v1.ListMeta`.
pub static LIST_META: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.ListMeta",
    shape: Shape::Struct,
    fields: &[
        f(1, "selfLink", Ty::String, Rule::OmitZero),
        f(2, "resourceVersion", Ty::String, Rule::OmitZero),
        f(3, "continue", Ty::String, Rule::OmitZero),
        f(4, "remainingItemCount", Ty::Int64, Rule::Keep),
    ],
};

/// `k8s.io.apimachinery.pkg.apis.meta.v1.StatusCause`.
pub static STATUS_CAUSE: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.StatusCause",
    shape: Shape::Struct,
    fields: &[
        f(1, "reason", Ty::String, Rule::OmitZero),
        f(2, "message", Ty::String, Rule::OmitZero),
        f(3, "field", Ty::String, Rule::OmitZero),
    ],
};

/// `k8s.io.apimachinery.pkg.apis.meta.v1.StatusDetails`.
pub static STATUS_DETAILS: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.StatusDetails",
    shape: Shape::Struct,
    fields: &[
        f(1, "name", Ty::String, Rule::OmitZero),
        f(2, "group", Ty::String, Rule::OmitZero),
        f(3, "kind", Ty::String, Rule::OmitZero),
        f(4, "causes", Ty::Message(&STATUS_CAUSE), Rule::Repeated),
        f(5, "retryAfterSeconds", Ty::Int32, Rule::OmitZero),
        f(6, "uid", Ty::String, Rule::OmitZero),
    ],
};

/// `k8s.io.apimachinery.pkg.apis.meta.v1.Status`.
pub static STATUS: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.Status",
    shape: Shape::Struct,
    fields: &[
        f(1, "metadata", Ty::Message(&LIST_META), Rule::Keep),
        f(2, "status", Ty::String, Rule::OmitZero),
        f(3, "message", Ty::String, Rule::OmitZero),
        f(4, "reason", Ty::String, Rule::OmitZero),
        f(5, "details", Ty::Message(&STATUS_DETAILS), Rule::Keep),
        f(6, "code", Ty::Int32, Rule::OmitZero),
    ],
};

/// `k8s.io.apimachinery.pkg.apis.meta.v1.WatchEvent`.
pub static WATCH_EVENT: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.WatchEvent",
    shape: Shape::Struct,
    fields: &[
        f(1, "type", Ty::String, Rule::Keep),
        f(
            2,
            "object",
            Ty::Message(&runtime::RAW_EXTENSION),
            Rule::Keep,
        ),
    ],
};

/// The content type of protobuf watch streams.
pub const WATCH_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";

/// Whether objects of this apiVersion and kind can be written as protobuf
/// (built-in kinds; custom resources are JSON only, as in Kubernetes).
pub fn supports(api_version: &str, kind: &str) -> bool {
    lookup(api_version, kind).is_some()
}

/// `k8s\0` + `runtime.Unknown{typeMeta, raw, contentEncoding, contentType}`.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = Vec::new();
    len_field(1, api_version.as_bytes(), &mut type_meta);
    len_field(2, kind.as_bytes(), &mut type_meta);
    let mut out = MAGIC.to_vec();
    len_field(1, &type_meta, &mut out);
    len_field(2, raw, &mut out);
    len_field(3, b"", &mut out);
    len_field(4, b"", &mut out);
    out
}

fn message_of(api_version: &str, kind: &str) -> Result<&'static Message, ProtobufError> {
    lookup(api_version, kind)
        .map(|k| k.message)
        .ok_or_else(|| ProtobufError::UnsupportedKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })
}

fn type_of(obj: &Value) -> (&str, &str) {
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    (s("apiVersion"), s("kind"))
}

/// An object (its apiVersion and kind name the message).
pub fn object(obj: &Value) -> Result<Vec<u8>, ProtobufError> {
    let (api_version, kind) = type_of(obj);
    let raw = encode::message(message_of(api_version, kind)?, obj)?;
    Ok(envelope(api_version, kind, &raw))
}

/// A list of `item_kind` objects: `1 metadata ListMeta, 2 items`.
pub fn list(
    api_version: &str,
    item_kind: &str,
    list_kind: &str,
    meta: &Value,
    items: &[Value],
) -> Result<Vec<u8>, ProtobufError> {
    let item = message_of(api_version, item_kind)?;
    let mut raw = Vec::new();
    len_field(1, &encode::message(&LIST_META, meta)?, &mut raw);
    for (i, obj) in items.iter().enumerate() {
        let bytes = encode::message(item, obj).map_err(|e| e.within(&format!("items[{i}]")))?;
        len_field(2, &bytes, &mut raw);
    }
    Ok(envelope(api_version, list_kind, &raw))
}

/// A `Status` (errors and the `Success` answers of deletes).
pub fn status(status: &Value) -> Result<Vec<u8>, ProtobufError> {
    let raw = encode::message(&STATUS, status)?;
    Ok(envelope("v1", "Status", &raw))
}

/// One frame of a protobuf watch stream; `object` is already enveloped.
pub fn watch_frame(event_type: &str, object: &[u8]) -> Vec<u8> {
    let mut raw_extension = Vec::new();
    len_field(1, object, &mut raw_extension);
    let mut event = Vec::new();
    len_field(1, event_type.as_bytes(), &mut event);
    len_field(2, &raw_extension, &mut event);
    let mut out = (event.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&event);
    out
}

/// A watch event's object, enveloped: a Status for ERROR events.
pub fn watch_object(event_type: &str, obj: &Value) -> Result<Vec<u8>, ProtobufError> {
    if event_type == "ERROR" {
        status(obj)
    } else {
        object(obj)
    }
}

/// The messages declared here, for the table check.
pub fn messages() -> [&'static Message; 5] {
    [
        &LIST_META,
        &STATUS,
        &STATUS_DETAILS,
        &STATUS_CAUSE,
        &WATCH_EVENT,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_round_trips_through_the_decoder() {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "default", "resourceVersion": "5",
                "creationTimestamp": "2026-01-02T03:04:05Z", "labels": {"b": "2", "a": "1"}},
            "data": {"k": "v"},
        });
        let bytes = object(&cm).expect("encode");
        assert!(bytes.starts_with(b"k8s\0"));
        assert_eq!(super::super::decode_request(&bytes).expect("decode"), cm);
    }

    #[test]
    fn watch_frames_are_length_prefixed() {
        let frame = watch_frame("ADDED", b"xyz");
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4);
    }

    #[test]
    fn custom_kinds_are_not_protobuf() {
        assert!(supports("v1", "Pod"));
        assert!(!supports("shop.example.com/v1", "Order"));
        assert!(object(&json!({"apiVersion": "shop.example.com/v1", "kind": "Order"})).is_err());
    }
}
