//! Semantic validation of ConfigMaps and Secrets: key names, base64 data,
//! total size, typed Secrets' required keys.

use std::collections::BTreeMap;

use base64::Engine;

use crate::core::{ConfigMap, Secret};
use crate::field_error::FieldError;
use crate::path::FieldPath;
use crate::validation::{Errs, NameRule, Validate, names, validate_meta};

/// The most data a ConfigMap or Secret may hold.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

fn validate_keys(errs: &mut Errs, map: Option<&BTreeMap<String, String>>, field: &str) -> usize {
    let mut total = 0;
    for (k, v) in map.into_iter().flatten() {
        errs.check(FieldPath::fields(field), k, names::config_map_key(k));
        total += k.len() + v.len();
    }
    total
}

fn validate_base64(errs: &mut Errs, map: Option<&BTreeMap<String, String>>, field: &str) {
    for (k, v) in map.into_iter().flatten() {
        if base64::engine::general_purpose::STANDARD.decode(v).is_err() {
            errs.push(FieldError::invalid(
                FieldPath::fields(field).key(k.clone()),
                "<value>",
                "must be base64-encoded (use stringData for plain text)",
            ));
        }
    }
}

impl Validate for ConfigMap {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let mut total = validate_keys(&mut errs, self.data.as_ref(), "data");
        total += validate_keys(&mut errs, self.binary_data.as_ref(), "binaryData");
        validate_base64(&mut errs, self.binary_data.as_ref(), "binaryData");
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
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let mut total = validate_keys(&mut errs, self.data.as_ref(), "data");
        total += validate_keys(&mut errs, self.string_data.as_ref(), "stringData");
        validate_base64(&mut errs, self.data.as_ref(), "data");
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
