//! Defaulting, as the Kubernetes API server applies it on write
//! (`SetDefaults_*` in k8s.io/kubernetes/pkg/apis/*/v1/defaults.go), on the
//! k8s-openapi types: one module per area (`pod.rs` for pod specs wherever
//! they appear, `core.rs`, `workloads.rs`, `cluster.rs` for the rest).

mod cluster;
mod core;
mod pod;
mod workloads;

use serde_json::Value;

pub use pod::{default_pod_spec, default_pull_policy, default_template};

/// Fills in the fields the API server defaults.
pub trait ApplyDefaults {
    /// Applies the defaults in place.
    fn apply_defaults(&mut self) {}

    /// Rewrites the JSON before it is decoded into the type, for what
    /// Kubernetes' own decoding tolerates (line-wrapped base64).
    fn normalize_json(_v: &mut Value) {}
}

pub(crate) fn set<T>(field: &mut Option<T>, value: T) {
    if field.is_none() {
        *field = Some(value);
    }
}

pub(crate) fn set_str(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

/// Kinds Kubernetes does not default.
macro_rules! no_defaults {
    ($($ty:ty),* $(,)?) => {
        $(impl $crate::defaults::ApplyDefaults for $ty {})*
    };
}
pub(crate) use no_defaults;
