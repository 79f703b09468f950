//! apps/v1 Deployment and ReplicaSet, and the autoscaling/v1 `Scale` body of
//! their `scale` subresource.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::core::pod::PodTemplateSpec;
use crate::intstr::IntOrString;
use crate::meta::{LabelSelector, ObjectMeta};
use crate::resource::impl_resource;
use crate::time::Time;

/// Declarative updates for pods through ReplicaSets.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    /// `apps/v1`.
    pub api_version: Option<String>,
    /// `Deployment`.
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: Option<DeploymentSpec>,
    /// Observed state.
    pub status: Option<DeploymentStatus>,
}
impl_resource!(Deployment, group: "apps", version: "v1", plural: "deployments", namespaced: true);

/// A deployment's desired state.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    /// Desired pods (default 1).
    pub replicas: Option<i32>,
    /// Which pods belong to it; must match the template's labels; immutable.
    #[serde(default)]
    pub selector: LabelSelector,
    /// The pods to create.
    #[serde(default)]
    pub template: PodTemplateSpec,
    /// How to replace old pods.
    pub strategy: Option<DeploymentStrategy>,
    /// Seconds a new pod must be ready before it counts as available (default 0).
    pub min_ready_seconds: Option<i32>,
    /// Old ReplicaSets kept for rollback (default 10).
    pub revision_history_limit: Option<i32>,
    /// Stop rolling out while true.
    pub paused: Option<bool>,
    /// Seconds without progress before Progressing=False (default 600).
    pub progress_deadline_seconds: Option<i32>,
}

/// `RollingUpdate` (default) or `Recreate`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStrategy {
    /// `RollingUpdate` or `Recreate`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Rolling update parameters.
    pub rolling_update: Option<RollingUpdateDeployment>,
}

/// Rolling update parameters.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdateDeployment {
    /// Pods that may be unavailable during the update (default 25%, rounded down).
    pub max_unavailable: Option<IntOrString>,
    /// Pods over the desired count during the update (default 25%, rounded up).
    pub max_surge: Option<IntOrString>,
}

/// A deployment's observed state.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStatus {
    /// The generation observed.
    pub observed_generation: Option<i64>,
    /// Pods targeted (all ReplicaSets).
    pub replicas: Option<i32>,
    /// Pods of the current template.
    pub updated_replicas: Option<i32>,
    /// Ready pods.
    pub ready_replicas: Option<i32>,
    /// Pods ready for at least minReadySeconds.
    pub available_replicas: Option<i32>,
    /// Pods still missing.
    pub unavailable_replicas: Option<i32>,
    /// Terminating pods.
    pub terminating_replicas: Option<i32>,
    /// Available and Progressing.
    pub conditions: Option<Vec<DeploymentCondition>>,
    /// Collision counter for the template hash.
    pub collision_count: Option<i32>,
}

/// A deployment condition.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentCondition {
    /// `Available`, `Progressing` or `ReplicaFailure`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// When it was last updated.
    pub last_update_time: Option<Time>,
    /// When the status last changed.
    pub last_transition_time: Option<Time>,
    /// A CamelCase reason.
    pub reason: Option<String>,
    /// A human-readable message.
    pub message: Option<String>,
}

/// Keeps a number of identical pods running.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSet {
    /// `apps/v1`.
    pub api_version: Option<String>,
    /// `ReplicaSet`.
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: Option<ReplicaSetSpec>,
    /// Observed state.
    pub status: Option<ReplicaSetStatus>,
}
impl_resource!(ReplicaSet, group: "apps", version: "v1", plural: "replicasets", namespaced: true);

/// A replicaset's desired state.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetSpec {
    /// Desired pods (default 1).
    pub replicas: Option<i32>,
    /// Seconds a new pod must be ready to count as available.
    pub min_ready_seconds: Option<i32>,
    /// Which pods belong to it; must match the template's labels.
    #[serde(default)]
    pub selector: LabelSelector,
    /// The pods to create.
    pub template: Option<PodTemplateSpec>,
}

/// A replicaset's observed state.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetStatus {
    /// Pods it owns.
    #[serde(default)]
    pub replicas: i32,
    /// Pods whose labels match the template's.
    pub fully_labeled_replicas: Option<i32>,
    /// Ready pods.
    pub ready_replicas: Option<i32>,
    /// Pods ready for at least minReadySeconds.
    pub available_replicas: Option<i32>,
    /// Terminating pods.
    pub terminating_replicas: Option<i32>,
    /// The generation observed.
    pub observed_generation: Option<i64>,
    /// ReplicaFailure conditions.
    pub conditions: Option<Vec<ReplicaSetCondition>>,
}

/// A replicaset condition.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetCondition {
    /// `ReplicaFailure`.
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

/// The body of the `scale` subresource (autoscaling/v1).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scale {
    /// `autoscaling/v1`.
    pub api_version: Option<String>,
    /// `Scale`.
    pub kind: Option<String>,
    /// The scaled object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired replicas.
    pub spec: Option<ScaleSpec>,
    /// Observed replicas.
    pub status: Option<ScaleStatus>,
}

/// Desired replicas.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleSpec {
    /// Desired replicas.
    pub replicas: Option<i32>,
}

/// Observed replicas.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleStatus {
    /// Observed replicas.
    #[serde(default)]
    pub replicas: i32,
    /// The label selector in string form.
    pub selector: Option<String>,
}

/// Selector labels written as a map, for `ScaleStatus::selector` and kubectl output.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
