//! core/v1 Namespace: a scope for names, emptied before it is deleted.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::meta::ObjectMeta;
use crate::resource::impl_resource;
use crate::time::Time;

/// A scope for the names of namespaced objects.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namespace {
    /// `v1`.
    pub api_version: Option<String>,
    /// `Namespace`.
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: Option<NamespaceSpec>,
    /// Observed state.
    pub status: Option<NamespaceStatus>,
}
impl_resource!(Namespace, group: "", version: "v1", plural: "namespaces", namespaced: false);

/// A namespace's desired state.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSpec {
    /// Must be empty before the namespace is removed (`kubernetes`).
    pub finalizers: Option<Vec<String>>,
}

/// A namespace's observed state.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceStatus {
    /// `Active` or `Terminating`.
    pub phase: Option<String>,
    /// Conditions while terminating.
    pub conditions: Option<Vec<NamespaceCondition>>,
}

/// A namespace condition.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceCondition {
    /// The condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// When the status last changed.
    pub last_transition_time: Option<Time>,
    /// A CamelCase reason.
    pub reason: Option<String>,
    /// A human-readable message.
    pub message: Option<String>,
}
