//! core/v1 ConfigMap and Secret: configuration data for pods.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::meta::ObjectMeta;
use crate::resource::impl_resource;

/// Non-confidential key/value configuration.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMap {
    /// `v1`.
    pub api_version: Option<String>,
    /// `ConfigMap`.
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// UTF-8 values.
    pub data: Option<BTreeMap<String, String>>,
    /// Base64-encoded binary values.
    pub binary_data: Option<BTreeMap<String, String>>,
    /// When true, data cannot change.
    pub immutable: Option<bool>,
}
impl_resource!(ConfigMap, group: "", version: "v1", plural: "configmaps", namespaced: true);

/// Confidential key/value data.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    /// `v1`.
    pub api_version: Option<String>,
    /// `Secret`.
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Base64-encoded values.
    pub data: Option<BTreeMap<String, String>>,
    /// Plain values, merged into `data` on write and never returned.
    pub string_data: Option<BTreeMap<String, String>>,
    /// `Opaque` (default), `kubernetes.io/tls`, `kubernetes.io/dockerconfigjson`, ...
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// When true, data cannot change.
    pub immutable: Option<bool>,
}
impl_resource!(Secret, group: "", version: "v1", plural: "secrets", namespaced: true);
