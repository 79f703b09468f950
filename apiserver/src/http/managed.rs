//! Glue between the HTTP layer and the patch machinery (`crate::patch`):
//! computing patched objects for each patch type, server-side apply, and
//! recording field managers on every write.

use serde_json::Value;

use schemas::KindInfo;

use crate::errors::{ApiError, ApiResult};
use crate::objects;
use crate::patch::{self, ApplyError, PatchError, PatchType};

fn from_patch_error(e: PatchError) -> ApiError {
    if let PatchError::Unprocessable(why) = &e {
        // the answer leaves the reason out, as kube-apiserver's does
        tracing::info!(reason = %why, "a patch could not be applied");
    }
    let status = e.to_status();
    ApiError {
        code: e.code(),
        reason: e.reason(),
        message: status.message.unwrap_or_default(),
        details: status.details.map(Box::new),
    }
}

fn from_apply_error(e: ApplyError) -> ApiError {
    let status = e.to_status();
    ApiError {
        code: e.code(),
        reason: e.reason(),
        message: status.message.unwrap_or_default(),
        details: status.details.map(Box::new),
    }
}

/// Records `manager` as the owner of the fields a create/update changed
/// (runs after defaulting, so updaters own the defaults they caused).
pub fn record_update(
    info: &KindInfo,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
) -> ApiResult<()> {
    let sub = subresource.filter(|s| *s != "finalize");
    *new = patch::update_managed_fields_of(
        old,
        std::mem::take(new),
        manager,
        sub,
        info,
        &info.api_version,
        schemas::time::now(),
    );
    Ok(())
}

/// Records `manager` as the owner of what its create request set: the
/// fields of `decoded` (see [`crate::admission::as_decoded`]), not those the
/// server generated, as kube-apiserver's field manager does.
pub fn record_create(
    info: &KindInfo,
    decoded: Option<&Value>,
    new: &mut Value,
    manager: &str,
) -> ApiResult<()> {
    let Some(decoded) = decoded else {
        return record_update(info, None, new, manager, None);
    };
    let tracked = patch::update_managed_fields(
        None,
        decoded,
        manager,
        None,
        info,
        &info.api_version,
        schemas::time::now(),
    );
    match tracked.pointer("/metadata/managedFields") {
        Some(fields) => {
            objects::meta_mut(new).insert("managedFields".into(), fields.clone());
        }
        None => {
            objects::meta_mut(new).remove("managedFields");
        }
    }
    Ok(())
}

/// The object after applying a patch body of `content_type` to `old`.
pub fn apply_patch(
    info: &KindInfo,
    old: &Value,
    content_type: &str,
    body: &[u8],
    manager: &str,
    force: bool,
    subresource: Option<&str>,
) -> ApiResult<Value> {
    let ty = PatchType::from_content_type(content_type).map_err(from_patch_error)?;
    if subresource == Some("scale") {
        // a Scale has no lists: strategic and merge patches agree
        return match ty {
            PatchType::Json => {
                patch::patch_object(PatchType::Json, old, body, info).map_err(from_patch_error)
            }
            PatchType::Merge | PatchType::Strategic => {
                let p = patch::parse_json_body(body, ty).map_err(from_patch_error)?;
                patch::merge_patch::merge_patch(old, &p).map_err(from_patch_error)
            }
            PatchType::Apply => Err(ApiError::unsupported_media_type(
                "server-side apply of the scale subresource is not supported; use a merge patch",
            )),
        };
    }
    match ty {
        PatchType::Apply => {
            let config = patch::decode_apply_body(body).map_err(from_patch_error)?;
            check_apply_identity(&config, objects::name(old))?;
            patch::apply(
                Some(old),
                &config,
                manager,
                force,
                info,
                &info.api_version,
                schemas::time::now(),
            )
            .map_err(from_apply_error)
        }
        other => patch::patch_object(other, old, body, info).map_err(from_patch_error),
    }
}

fn check_apply_identity(config: &Value, url_name: &str) -> ApiResult<()> {
    let name = objects::name(config);
    if !name.is_empty() && name != url_name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({url_name})"
        )));
    }
    Ok(())
}

/// The object a server-side apply creates when nothing exists yet.
pub fn apply_to_new(
    info: &KindInfo,
    namespace: Option<&str>,
    name: &str,
    body: &[u8],
    manager: &str,
    force: bool,
) -> ApiResult<Value> {
    let config = patch::decode_apply_body(body).map_err(from_patch_error)?;
    check_apply_identity(&config, name)?;
    let mut obj = patch::apply(
        None,
        &config,
        manager,
        force,
        info,
        &info.api_version,
        schemas::time::now(),
    )
    .map_err(from_apply_error)?;
    let meta = objects::meta_mut(&mut obj);
    meta.insert("name".into(), Value::String(name.to_string()));
    if let Some(ns) = namespace.filter(|_| info.namespaced) {
        meta.insert("namespace".into(), Value::String(ns.to_string()));
    }
    Ok(obj)
}
