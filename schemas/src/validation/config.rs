//! Semantic validation of ConfigMaps and Secrets: key names, base64 data,
//! total size, typed Secrets' required keys.

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::Value;

use crate::field_error::FieldError;
use crate::path::FieldPath;
use crate::validation::{Errs, NameRule, Validate, names, validate_meta};

/// The most data a ConfigMap or Secret may hold.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Checks keys; returns the bytes the entries hold.
fn validate_keys<'a>(
    errs: &mut Errs,
    entries: impl Iterator<Item = (&'a String, usize)>,
    field: &str,
) -> usize {
    let mut total = 0;
    for (k, len) in entries {
        errs.check(FieldPath::fields(field), k, names::config_map_key(k));
        total += k.len() + len;
    }
    total
}

/// Base64 values of `data`/`binaryData`, checked on the JSON (the typed
/// decoding would fail without naming the key).
fn validate_base64_json(v: &Value, field: &str) -> Vec<FieldError> {
    let mut errs = Errs::default();
    for (k, v) in v
        .get(field)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let Some(text) = v.as_str() else { continue };
        let compact: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        if base64::engine::general_purpose::STANDARD
            .decode(compact)
            .is_err()
        {
            errs.push(FieldError::invalid(
                FieldPath::fields(field).key(k.clone()),
                "<value>",
                "must be base64-encoded (use stringData for plain text)",
            ));
        }
    }
    errs.0
}

/// Kubernetes' rule for ConfigMaps and Secrets marked `immutable: true`:
/// their data and the mark itself may not change.
fn check_immutable_data(errs: &mut Errs, old_immutable: Option<bool>, changed: &[(&str, bool)]) {
    if old_immutable != Some(true) {
        return;
    }
    for (field, differs) in changed {
        if *differs {
            errs.push(FieldError::forbidden(
                FieldPath::fields(field),
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

impl Validate for ConfigMap {
    fn check_json(v: &Value) -> Vec<FieldError> {
        validate_base64_json(v, "binaryData")
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        check_immutable_data(
            &mut errs,
            old.immutable,
            &[
                ("immutable", old.immutable != self.immutable),
                ("data", old.data != self.data),
                ("binaryData", old.binary_data != self.binary_data),
            ],
        );
        errs.0
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let mut total = validate_keys(
            &mut errs,
            self.data.iter().flatten().map(|(k, v)| (k, v.len())),
            "data",
        );
        total += validate_keys(
            &mut errs,
            self.binary_data
                .iter()
                .flatten()
                .map(|(k, v)| (k, v.0.len())),
            "binaryData",
        );
        if let (Some(d), Some(b)) = (&self.data, &self.binary_data) {
            for k in d.keys().filter(|k| b.contains_key(*k)) {
                errs.push(FieldError::invalid(
                    FieldPath::fields("data").key(k.clone()),
                    k,
                    "duplicate of key present in binaryData",
                ));
            }
        }
        if total > MAX_DATA_BYTES {
            errs.push(FieldError::too_long(FieldPath::root(), MAX_DATA_BYTES));
        }
        errs.0
    }
}

impl Validate for Secret {
    fn check_json(v: &Value) -> Vec<FieldError> {
        validate_base64_json(v, "data")
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        check_immutable_data(
            &mut errs,
            old.immutable,
            &[
                ("immutable", old.immutable != self.immutable),
                ("data", old.data != self.data),
            ],
        );
        let ty = |s: &Secret| s.type_.clone().unwrap_or_else(|| "Opaque".into());
        if ty(old) != ty(self) {
            errs.push(crate::validation::immutable(
                FieldPath::fields("type"),
                &Value::String(ty(self)),
            ));
        }
        errs.0
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let mut total = validate_keys(
            &mut errs,
            self.data.iter().flatten().map(|(k, v)| (k, v.0.len())),
            "data",
        );
        total += validate_keys(
            &mut errs,
            self.string_data.iter().flatten().map(|(k, v)| (k, v.len())),
            "stringData",
        );
        if total > MAX_DATA_BYTES {
            errs.push(FieldError::too_long(
                FieldPath::fields("data"),
                MAX_DATA_BYTES,
            ));
        }
        let has = |k: &str| {
            self.data.as_ref().is_some_and(|d| d.contains_key(k))
                || self.string_data.as_ref().is_some_and(|d| d.contains_key(k))
        };
        let required: &[&str] = match self.type_.as_deref() {
            Some("kubernetes.io/tls") => &["tls.crt", "tls.key"],
            Some("kubernetes.io/dockerconfigjson") => &[".dockerconfigjson"],
            Some("kubernetes.io/dockercfg") => &[".dockercfg"],
            Some("kubernetes.io/ssh-auth") => &["ssh-privatekey"],
            _ => &[],
        };
        for k in required {
            if !has(k) {
                errs.push(FieldError::required(
                    FieldPath::fields("data").key(k.to_string()),
                    format!(
                        "a {} secret needs key {k:?}",
                        self.type_.as_deref().unwrap_or("")
                    ),
                ));
            }
        }
        if self.type_.as_deref() == Some("kubernetes.io/basic-auth")
            && !has("username")
            && !has("password")
        {
            errs.push(FieldError::required(
                FieldPath::fields("data"),
                "a kubernetes.io/basic-auth secret needs \"username\" or \"password\"",
            ));
        }
        errs.0
    }
}
