//! Glue between the HTTP layer and the patch machinery: computing patched
//! objects for each patch type and recording field managers.

use serde_json::Value;

use schemas::KindInfo;

use crate::errors::{ApiError, ApiResult};

/// Records `manager` as the owner of the fields a create/update changed.
pub fn record_update(
    _info: &KindInfo,
    _old: Option<&Value>,
    _new: &mut Value,
    _manager: &str,
    _subresource: Option<&str>,
) -> ApiResult<()> {
    Ok(())
}

/// The object after applying a patch body of `content_type` to `old`.
pub fn apply_patch(
    _info: &KindInfo,
    _old: &Value,
    content_type: &str,
    _body: &[u8],
    _manager: &str,
    _force: bool,
    _subresource: Option<&str>,
) -> ApiResult<Value> {
    Err(ApiError::unsupported_media_type(format!(
        "patch type {content_type} is not supported yet"
    )))
}

/// The object a server-side apply creates when nothing exists yet.
pub fn apply_to_new(
    info: &KindInfo,
    _namespace: Option<&str>,
    name: &str,
    _body: &[u8],
    _manager: &str,
    _force: bool,
) -> ApiResult<Value> {
    Err(ApiError::not_found(info, name))
}
