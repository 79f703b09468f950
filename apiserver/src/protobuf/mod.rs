//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! decoded into the JSON object the same client would have sent as JSON.
//!
//! Since Kubernetes 1.31 client-go's typed clients (`kubectl create
//! configmap|secret|deployment|service|namespace`, `kubectl auth can-i`, ...)
//! send protobuf with no JSON fallback. A body is the magic `k8s\0`, then a
//! `runtime.Unknown` envelope: 1 typeMeta {1 apiVersion, 2 kind}, 2 raw (the
//! object's message), 3 contentEncoding, 4 contentType.
//!
//! client-go (gogo protobuf) writes every Go value field even when it is zero,
//! so "present on the wire" does not mean "set". The decoder therefore follows
//! Go's JSON encoding of the decoded value: pointer fields are kept whenever
//! present (`replicas: 0`), `omitempty` value fields are left out when zero,
//! inlined structs are merged, and an unset `Time` is left out (Go writes
//! `null`, which korral reads as unset).
//!
//! Read [`decode_request`] first, then [`decode`] and the table in [`descriptors`].

pub mod decode;
pub mod descriptors;
pub mod encode;
pub mod responses;
pub mod special;
pub mod wire;

use serde_json::Value;

use self::decode::{bytes_of, string_of};
use self::wire::Fields;

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Why a protobuf body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error(
        "the body is not a Kubernetes protobuf object: it does not start with the magic bytes \"k8s\\0\""
    )]
    NoMagic,
    /// The bytes do not follow the wire format or the message's types.
    #[error("malformed protobuf{}: {reason}", at(path))]
    Malformed {
        /// The JSON path of the field, empty for the envelope.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A non-zero field korral's table does not describe.
    #[error(
        "protobuf field {number} of {message}{} is not known to korral; send the object as JSON",
        at(path)
    )]
    UnknownField {
        /// The JSON path of the message that holds it.
        path: String,
        /// The protobuf message's full name.
        message: &'static str,
        /// The field number.
        number: u32,
    },
    /// The envelope names a kind korral does not decode from protobuf.
    #[error(
        "protobuf bodies of apiVersion {api_version:?} kind {kind:?} are not supported; send the object as JSON"
    )]
    UnsupportedKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// The envelope says the object is compressed or otherwise encoded.
    #[error("protobuf content encoding {0:?} is not supported")]
    ContentEncoding(String),
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at {path}")
    }
}

impl ProtobufError {
    /// A [`ProtobufError::Malformed`] at the root.
    pub fn malformed(reason: impl Into<String>) -> Self {
        ProtobufError::Malformed {
            path: String::new(),
            reason: reason.into(),
        }
    }

    /// The same error, one field further out: `segment` is prepended to its path.
    pub fn within(mut self, segment: &str) -> Self {
        if let ProtobufError::Malformed { path, .. } | ProtobufError::UnknownField { path, .. } =
            &mut self
        {
            *path = if path.is_empty() {
                segment.to_string()
            } else if path.starts_with('[') {
                format!("{segment}{path}")
            } else {
                format!("{segment}.{path}")
            };
        }
        self
    }
}

/// Whether a `Content-Type` header names Kubernetes protobuf (parameters ignored).
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Decodes a protobuf request body into the object's JSON, with `apiVersion`
/// and `kind` taken from the envelope.
pub fn decode_request(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtobufError::NoMagic)?;
    let unknown = Envelope::read(envelope)?;
    if !unknown.content_encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(unknown.content_encoding));
    }
    let top = descriptors::lookup(&unknown.api_version, &unknown.kind).ok_or_else(|| {
        ProtobufError::UnsupportedKind {
            api_version: unknown.api_version.clone(),
            kind: unknown.kind.clone(),
        }
    })?;
    let mut object = match decode::message(top.message, unknown.raw, 0)? {
        Some(Value::Object(o)) => o,
        _ => return Err(ProtobufError::malformed("the object is not a message")),
    };
    object
        .entry("apiVersion")
        .or_insert_with(|| Value::String(unknown.api_version));
    object
        .entry("kind")
        .or_insert_with(|| Value::String(unknown.kind));
    Ok(Value::Object(object))
}

/// The `runtime.Unknown` envelope.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

impl<'a> Envelope<'a> {
    fn read(buf: &'a [u8]) -> Result<Self, ProtobufError> {
        let mut out = Envelope {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
            content_encoding: String::new(),
        };
        for item in Fields::new(buf) {
            match item? {
                (1, v) => {
                    for meta in Fields::new(bytes_of(v)?) {
                        match meta? {
                            (1, v) => out.api_version = string_of(v)?,
                            (2, v) => out.kind = string_of(v)?,
                            _ => {}
                        }
                    }
                }
                (2, v) => out.raw = bytes_of(v)?,
                (3, v) => out.content_encoding = string_of(v)?,
                // 4 contentType names the raw bytes' type; unknown fields are skipped as Go does.
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_media_type() {
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(is_protobuf(
            "Application/Vnd.Kubernetes.Protobuf ; charset=binary"
        ));
        assert!(!is_protobuf("application/json"));
        assert!(!is_protobuf("application/vnd.kubernetes.protobuf+json"));
    }

    #[test]
    fn envelope_errors_name_the_problem() {
        assert_eq!(decode_request(b"{}"), Err(ProtobufError::NoMagic));
        // typeMeta {apiVersion "apiextensions.k8s.io/v1", kind "CustomResourceDefinition"}:
        // kubectl does not embed apiextensions' descriptors
        let (api_version, kind) = (b"apiextensions.k8s.io/v1", b"CustomResourceDefinition");
        let mut body = b"k8s\0".to_vec();
        body.extend([0x0a, (4 + api_version.len() + kind.len()) as u8]);
        body.extend([0x0a, api_version.len() as u8]);
        body.extend(api_version);
        body.extend([0x12, kind.len() as u8]);
        body.extend(kind);
        let err = decode_request(&body).expect_err("unsupported");
        assert!(
            err.to_string()
                .contains("\"apiextensions.k8s.io/v1\" kind \"CustomResourceDefinition\""),
            "{err}"
        );
        // typeMeta v1 Namespace, contentEncoding "gzip"
        let mut body = b"k8s\0".to_vec();
        body.extend([0x0a, 0x0f, 0x0a, 0x02, b'v', b'1', 0x12, 0x09]);
        body.extend(b"Namespace");
        body.extend([0x1a, 0x04]);
        body.extend(b"gzip");
        assert_eq!(
            decode_request(&body),
            Err(ProtobufError::ContentEncoding("gzip".into()))
        );
    }

    #[test]
    fn error_paths_read_outside_in() {
        let e = ProtobufError::malformed("bad")
            .within("image")
            .within("[1]")
            .within("containers")
            .within("spec");
        assert_eq!(
            e.to_string(),
            "malformed protobuf at spec.containers[1].image: bad"
        );
    }
}
