//! core/v1 Node: spec (pod CIDR, taints, unschedulable) and status
//! (capacity, conditions, addresses, node info).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::core::scheduling::Taint;
use crate::meta::ObjectMeta;
use crate::quantity::Quantity;
use crate::resource::impl_resource;
use crate::time::Time;

/// A machine that runs pods.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// `v1`.
    pub api_version: Option<String>,
    /// `Node`.
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: Option<NodeSpec>,
    /// Observed state, written by the node daemon.
    pub status: Option<NodeStatus>,
}
impl_resource!(Node, group: "", version: "v1", plural: "nodes", namespaced: false);

/// A node's desired state.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// The pod IP range assigned to the node.
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    /// The pod IP ranges assigned to the node.
    #[serde(rename = "podCIDRs")]
    pub pod_cidrs: Option<Vec<String>>,
    /// The provider's ID of the machine.
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    /// No new pods are scheduled while true (cordon).
    pub unschedulable: Option<bool>,
    /// Taints that repel pods.
    pub taints: Option<Vec<Taint>>,
    /// Deprecated external ID.
    #[serde(rename = "externalID")]
    pub external_id: Option<String>,
    /// Deprecated dynamic config source (accepted).
    pub config_source: Option<serde_json::Value>,
}

/// A node's observed state.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeStatus {
    /// Total resources of the node.
    pub capacity: Option<BTreeMap<String, Quantity>>,
    /// Resources available to pods.
    pub allocatable: Option<BTreeMap<String, Quantity>>,
    /// Deprecated phase.
    pub phase: Option<String>,
    /// Ready, MemoryPressure, DiskPressure, PIDPressure, NetworkUnavailable.
    pub conditions: Option<Vec<NodeCondition>>,
    /// How to reach the node.
    pub addresses: Option<Vec<NodeAddress>>,
    /// Ports of the node's daemons.
    pub daemon_endpoints: Option<NodeDaemonEndpoints>,
    /// Versions and IDs.
    pub node_info: Option<NodeSystemInfo>,
    /// Images present on the node.
    pub images: Option<Vec<ContainerImage>>,
    /// Attached volumes in use (accepted).
    pub volumes_in_use: Option<Vec<String>>,
    /// Attached volumes (accepted).
    pub volumes_attached: Option<Vec<serde_json::Value>>,
    /// Config status (accepted).
    pub config: Option<serde_json::Value>,
    /// Runtime handlers (accepted).
    pub runtime_handlers: Option<Vec<serde_json::Value>>,
    /// Node features (accepted).
    pub features: Option<serde_json::Value>,
}

/// A node condition.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeCondition {
    /// The condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// When the node last reported it.
    pub last_heartbeat_time: Option<Time>,
    /// When the status last changed.
    pub last_transition_time: Option<Time>,
    /// A CamelCase reason.
    pub reason: Option<String>,
    /// A human-readable message.
    pub message: Option<String>,
}

/// An address of the node.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAddress {
    /// `Hostname`, `InternalIP`, `ExternalIP`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// The address.
    pub address: String,
}

/// Ports of the node's daemons.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeDaemonEndpoints {
    /// The node daemon's endpoint (logs, exec).
    pub kubelet_endpoint: Option<DaemonEndpoint>,
}

/// A port.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DaemonEndpoint {
    /// The port number.
    pub port: i32,
}

/// Versions and IDs of the node.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSystemInfo {
    /// Machine ID.
    #[serde(rename = "machineID")]
    pub machine_id: String,
    /// System UUID.
    #[serde(rename = "systemUUID")]
    pub system_uuid: String,
    /// Boot ID.
    #[serde(rename = "bootID")]
    pub boot_id: String,
    /// Kernel version.
    pub kernel_version: String,
    /// OS image.
    pub os_image: String,
    /// Container runtime version, e.g. `containerd://1.6.20`.
    pub container_runtime_version: String,
    /// Node daemon version.
    pub kubelet_version: String,
    /// Proxy version.
    pub kube_proxy_version: String,
    /// `linux`.
    pub operating_system: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// Swap (accepted).
    pub swap: Option<serde_json::Value>,
}

/// An image on the node.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerImage {
    /// Names of the image.
    pub names: Option<Vec<String>>,
    /// Size in bytes.
    pub size_bytes: Option<i64>,
}
