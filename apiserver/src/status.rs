//! The meta/v1 `Status` object as kube-apiserver writes it: fields in its Go
//! types' order (`kind`, `apiVersion`, `metadata`, `status`, `message`,
//! `reason`, `details`, `code`), empty ones left out, so clients that compare
//! the text see the same bytes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A `Status` (errors, and the result of a completed delete).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// `Status`.
    pub kind: String,
    /// `v1`.
    pub api_version: String,
    /// Always `{}`.
    pub metadata: Value,
    /// `Success` or `Failure`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The machine-readable reason (`NotFound`, `Invalid`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The object concerned and the causes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// The HTTP code (left out of a delete's success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
}

/// `Status.details`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// The object's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its API group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Its resource (or kind, for Invalid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// One entry per field error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causes: Option<Vec<StatusCause>>,
    /// When to retry (throttling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<i32>,
}

/// One cause of an error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The message without the field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The field path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Status {
    /// A `Failure` with a code, reason and message.
    pub fn failure(
        code: u16,
        reason: &str,
        message: String,
        details: Option<StatusDetails>,
    ) -> Self {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: Value::Object(Default::default()),
            status: Some("Failure".into()),
            message: Some(message),
            reason: (!reason.is_empty()).then(|| reason.to_string()),
            details,
            code: Some(i32::from(code)),
        }
    }

    /// The `Success` a delete that removed the object answers with (no code).
    pub fn success(details: StatusDetails) -> Self {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: Value::Object(Default::default()),
            status: Some("Success".into()),
            details: Some(details),
            ..Default::default()
        }
    }

    /// The JSON bytes kube-apiserver writes: compact, with a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }
}

/// Any response body as kube-apiserver's JSON encoder writes it: compact,
/// `<`, `>` and `&` escaped as Go's `encoding/json` does, and a newline.
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut raw = serde_json::to_vec(v).unwrap_or_default();
    // most bodies have nothing to escape: no second copy for them
    if !raw.iter().any(|b| matches!(b, b'<' | b'>' | b'&')) {
        raw.push(b'\n');
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + 8);
    for b in raw {
        match b {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            other => out.push(other),
        }
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_escape_html_characters_as_go_does_and_end_with_a_newline() {
        let escaped = encode(&serde_json::json!({"a": "<b>&c"}));
        assert_eq!(escaped, b"{\"a\":\"\\u003cb\\u003e\\u0026c\"}\n");
        let plain = encode(&serde_json::json!({"a": "b"}));
        assert_eq!(plain, b"{\"a\":\"b\"}\n");
    }

    #[test]
    fn bytes_follow_kube_apiservers_field_order() {
        let s = Status::failure(
            404,
            "NotFound",
            "pods \"x\" not found".into(),
            Some(StatusDetails {
                name: Some("x".into()),
                group: Some(String::new()),
                kind: Some("pods".into()),
                ..Default::default()
            }),
        );
        assert_eq!(
            String::from_utf8(s.to_bytes()).expect("utf-8"),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods \\\"x\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"x\",\"group\":\"\",\"kind\":\"pods\"},\"code\":404}\n"
        );
    }
}
