//! Admission: the write path of kube-apiserver for every kind, built-in and
//! custom, on create, update and every patch: decode → field validation
//! (unknown fields pruned, refused or warned about per `fieldValidation`) →
//! defaulting → the kind's strategy (server-set metadata, status/spec
//! separation, generation, kind-specific preparation: `strategy.rs`,
//! `pods.rs`) → validation of the defaulted object, and of the update
//! against the defaulted old object.

pub mod claim_resize;
pub mod ingress_class;
pub mod limit_ranger;
pub mod node_restriction;
pub mod pod_security;
mod pods;
pub mod policies;
pub mod priority;
pub mod quota;
pub mod quota_status;
pub mod service_account;
pub mod storage_class;
pub mod storage_protection;
mod strategy;
pub mod webhooks;

use std::sync::{Arc, Mutex};

use serde_json::Value;

use schemas::KindInfo;

use crate::errors::{ApiError, ApiResult};
use crate::objects;

pub use pods::qos_class;
pub use strategy::{
    PROTECTED_NAMESPACES, has_status_subresource, returns_deleted_object, tracks_generation,
};

/// `fieldValidation`: what happens to fields the kind does not know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Refuse the request (kubectl's default).
    Strict,
    /// Drop them and say so in `Warning` headers (the default without the parameter).
    #[default]
    Warn,
    /// Drop them silently.
    Ignore,
}

impl FieldValidation {
    /// Parses the query parameter as kube-apiserver does.
    pub fn parse(v: Option<&str>) -> ApiResult<Self> {
        match v {
            None | Some("") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// The `Warning` headers a request collects, in order, without repeats.
#[derive(Clone, Debug, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    /// Adds a warning (once).
    pub fn add(&self, text: impl Into<String>) {
        let text = text.into();
        let mut list = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !list.contains(&text) {
            list.push(text);
        }
    }

    /// The warnings so far.
    pub fn list(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// What a write asked of admission besides the object.
#[derive(Clone, Debug, Default)]
pub struct Directives {
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// Where warnings go.
    pub warnings: Warnings,
}

/// Removes unknown fields per the request's `fieldValidation`: refused with
/// kube-apiserver's strict decoding error, or warned about, or dropped.
pub fn check_fields(info: &KindInfo, obj: &mut Value, d: &Directives) -> ApiResult<()> {
    let pruned = info.compiled().prune(obj);
    if pruned.is_empty() {
        return Ok(());
    }
    let texts: Vec<String> = pruned
        .iter()
        .map(|p| format!("unknown field {:?}", p.to_string()))
        .collect();
    match d.field_validation {
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
            texts.join(", "),
            kind = info.kind,
            version = info.version,
        ))),
        FieldValidation::Warn => {
            for t in texts {
                d.warnings.add(t);
            }
            Ok(())
        }
        FieldValidation::Ignore => Ok(()),
    }
}

fn defaulted(info: &KindInfo, obj: Value) -> ApiResult<Value> {
    let name = objects::name(&obj).to_string();
    info.apply_defaults(obj)
        .map_err(|e| ApiError::invalid(info, &name, &[e]))
}

fn validated(info: &KindInfo, obj: &Value, old: Option<&Value>, d: &Directives) -> ApiResult<()> {
    let name = objects::name(obj).to_string();
    let mut errors = schemas::validate_object(info, obj);
    if errors.is_empty()
        && let Some(old) = old
    {
        errors = info.validate_update(old, obj);
    }
    if let Some(custom) = info.custom() {
        let (_, warnings) = custom.validate_with_warnings(info, obj, old);
        for w in warnings {
            d.warnings.add(w.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(info, &name, &errors))
    }
}

/// The object as kube-apiserver's decoder hands it to the field manager:
/// unknown fields dropped and defaults applied, before admission and the
/// kind's strategy add what the server generates (a Job's selector, a
/// pod's status); `None` when it does not decode.
pub fn as_decoded(info: &KindInfo, obj: &Value) -> Option<Value> {
    let mut obj = obj.clone();
    strategy::set_type_meta(info, &mut obj).ok()?;
    info.compiled().prune(&mut obj);
    schemas::check::strip_nulls(&mut obj);
    info.apply_defaults(obj).ok()
}

/// Admits a new object: returns what to store.
pub fn admit_create(
    info: &KindInfo,
    mut obj: Value,
    namespace: Option<&str>,
    d: &Directives,
) -> ApiResult<Value> {
    strategy::set_type_meta(info, &mut obj)?;
    check_fields(info, &mut obj, d)?;
    schemas::check::strip_nulls(&mut obj);
    strategy::prepare_create(info, &mut obj, namespace)?;
    let mut obj = defaulted(info, obj)?;
    strategy::after_defaults_create(info, &mut obj);
    validated(info, &obj, None, d)?;
    strategy::warn_on_create(info, &obj, &d.warnings);
    Ok(obj)
}

/// Admits again an object the mutating webhooks changed: unknown fields
/// dropped, defaults applied, and validated (against `old` for an update),
/// as kube decodes a patched object and validates what admission leaves.
pub fn after_webhooks(
    info: &KindInfo,
    mut obj: Value,
    old: Option<&Value>,
    d: &Directives,
) -> ApiResult<Value> {
    strategy::set_type_meta(info, &mut obj)?;
    info.compiled().prune(&mut obj);
    schemas::check::strip_nulls(&mut obj);
    let obj = defaulted(info, obj)?;
    let old = old.map(|o| defaulted(info, o.clone())).transpose()?;
    validated(info, &obj, old.as_ref(), d)?;
    Ok(obj)
}

/// Admits a change of `old` (the stored object) to `new` through the main
/// resource or a subresource: returns what to store.
pub fn admit_update(
    info: &KindInfo,
    old: &Value,
    mut new: Value,
    subresource: Option<&str>,
    d: &Directives,
) -> ApiResult<Value> {
    strategy::set_type_meta(info, &mut new)?;
    check_fields(info, &mut new, d)?;
    schemas::check::strip_nulls(&mut new);
    // the stored object may predate a default; compare like with like
    let old = defaulted(info, old.clone())?;
    strategy::prepare_update(info, &old, &mut new, subresource)?;
    let mut new = defaulted(info, new)?;
    strategy::after_defaults_update(info, &old, &mut new, subresource);
    validated(info, &new, Some(&old), d)?;
    Ok(new)
}
