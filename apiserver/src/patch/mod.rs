//! Patching objects as the Kubernetes API server does, as pure functions on
//! JSON values: JSON patch (RFC 6902), JSON merge patch (RFC 7386),
//! strategic merge patch, and server-side apply with `managedFields`.
//!
//! How the HTTP layer uses it:
//! - PATCH: [`PatchType::from_content_type`] (415 if unknown); for JSON,
//!   merge and strategic patches [`patch_object`] on the stored object, then
//!   defaults and validation, then [`update_managed_fields`] (old, new,
//!   `fieldManager`) before storing; for apply patches [`decode_apply_body`]
//!   then [`apply()`] (live object or `None` to create, `force` from the
//!   query), then defaults and validation. Defaults are applied after the
//!   patch so that an applier never owns them, and before
//!   `update_managed_fields` so that an updater does, as in Kubernetes.
//! - POST/PUT (and `/status`, `/scale` writes): [`update_managed_fields`]
//!   with the subresource, after defaulting.
//! - Errors carry their HTTP status: [`PatchError::code`]/[`PatchError::reason`]/
//!   [`PatchError::to_status`], and [`ApplyError::to_status`] (409 with one
//!   `FieldManagerConflict` cause per field).

pub mod apply;
pub mod error;
pub mod fieldset;
pub mod json_patch;
pub mod managed;
pub mod merge_keys;
pub mod merge_patch;
mod schema_types;
pub mod strategic;
mod typed;
mod values;

use serde_json::Value;

use schemas::KindInfo;

pub use apply::{ApplyError, Conflict, apply, conflict_status, decode_apply_body};
pub use error::PatchError;
pub use managed::{update_managed_fields, update_managed_fields_of};

/// The patch formats the API server accepts, by their media types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`: RFC 6902 operations.
    Json,
    /// `application/merge-patch+json`: RFC 7386.
    Merge,
    /// `application/strategic-merge-patch+json`: Kubernetes' strategic merge patch.
    Strategic,
    /// `application/apply-patch+yaml`: server-side apply (YAML or JSON body).
    Apply,
}

impl PatchType {
    /// The patch type of a Content-Type header value (parameters such as
    /// `; charset=utf-8` are ignored), or a 415 error naming the ones accepted.
    pub fn from_content_type(content_type: &str) -> Result<PatchType, PatchError> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" => Ok(PatchType::Apply),
            _ => Err(PatchError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                Self::ALL
                    .iter()
                    .map(|t| t.media_type())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Every patch type, in the order Kubernetes lists them.
    pub const ALL: [PatchType; 4] = [
        PatchType::Json,
        PatchType::Merge,
        PatchType::Strategic,
        PatchType::Apply,
    ];

    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Applies a JSON, merge or strategic merge patch body to `original`.
/// Apply patches need a field manager and go through [`apply::apply`]; given
/// one here, this returns a 400 saying so.
pub fn patch_object(
    patch_type: PatchType,
    original: &Value,
    body: &[u8],
    kind: &KindInfo,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => json_patch::apply_json_patch(original, &json_patch::parse(body)?),
        PatchType::Merge => merge_patch::merge_patch(original, &parse_json_body(body, patch_type)?),
        PatchType::Strategic => {
            strategic::strategic_merge_patch(original, &parse_json_body(body, patch_type)?, kind)
        }
        PatchType::Apply => Err(PatchError::BadRequest(
            "apply patches are handled by server-side apply, which needs a fieldManager".into(),
        )),
    }
}

/// Parses a merge or strategic merge patch body, which must be a JSON
/// object; anything else gets kube-apiserver's decode error (the merge
/// patch handler prefixes "error decoding patch: ", the strategic one not).
pub fn parse_json_body(body: &[u8], patch_type: PatchType) -> Result<Value, PatchError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::BadRequest(format!("the patch is not valid JSON: {e}")))?;
    if !v.is_object() {
        let prefix = if patch_type == PatchType::Strategic {
            ""
        } else {
            "error decoding patch: "
        };
        return Err(PatchError::BadRequest(format!(
            "{prefix}json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            values::go_json_type(&v)
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_map_to_patch_types() {
        let cases = [
            ("application/json-patch+json", PatchType::Json),
            (
                "application/merge-patch+json; charset=utf-8",
                PatchType::Merge,
            ),
            (
                "Application/Strategic-Merge-Patch+JSON",
                PatchType::Strategic,
            ),
            ("application/apply-patch+yaml", PatchType::Apply),
        ];
        for (ct, want) in cases {
            assert_eq!(PatchType::from_content_type(ct), Ok(want), "{ct}");
            assert_eq!(PatchType::from_content_type(want.media_type()), Ok(want));
        }
        let e = PatchType::from_content_type("application/json").expect_err("415");
        assert_eq!(e.code(), 415);
        assert!(
            e.to_string().contains("application/apply-patch+yaml"),
            "{e}"
        );
    }

    #[test]
    fn bodies_must_be_json_objects() {
        let cm = schemas::lookup("v1", "ConfigMap").expect("cm");
        let orig = serde_json::json!({"data": {"a": "1"}});
        let e = patch_object(PatchType::Merge, &orig, b"[1]", cm).expect_err("array");
        assert_eq!(e.code(), 400);
        let e = patch_object(PatchType::Strategic, &orig, b"{", cm).expect_err("bad json");
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        let v = patch_object(PatchType::Merge, &orig, br#"{"data":{"b":"2"}}"#, cm).expect("ok");
        assert_eq!(v["data"], serde_json::json!({"a": "1", "b": "2"}));
    }
}
