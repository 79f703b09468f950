//! core/v1 Service and Endpoints: a stable virtual IP over the ready pods a
//! selector picks, and the addresses behind it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::core::pod::ObjectReference;
use crate::intstr::IntOrString;
use crate::meta::{Condition, ObjectMeta};
use crate::resource::impl_resource;

/// A stable virtual IP and DNS name over a set of pods.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    /// `v1`.
    pub api_version: Option<String>,
    /// `Service`.
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: Option<ServiceSpec>,
    /// Observed state.
    pub status: Option<ServiceStatus>,
}
impl_resource!(Service, group: "", version: "v1", plural: "services", namespaced: true);

/// A service's desired state.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// The ports the service exposes.
    pub ports: Option<Vec<ServicePort>>,
    /// Pods with these labels back the service; no selector means Endpoints are managed by hand.
    pub selector: Option<BTreeMap<String, String>>,
    /// The virtual IP; allocated when empty, `None` for a headless service.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    /// The virtual IPs.
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Option<Vec<String>>,
    /// `ClusterIP` (default), `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Extra IPs the service answers on.
    #[serde(rename = "externalIPs")]
    pub external_ips: Option<Vec<String>>,
    /// `None` (default) or `ClientIP`.
    pub session_affinity: Option<String>,
    /// Requested load balancer IP (deprecated).
    #[serde(rename = "loadBalancerIP")]
    pub load_balancer_ip: Option<String>,
    /// Allowed client ranges for a load balancer.
    pub load_balancer_source_ranges: Option<Vec<String>>,
    /// The DNS name an `ExternalName` service aliases.
    pub external_name: Option<String>,
    /// `Cluster` (default) or `Local`.
    pub external_traffic_policy: Option<String>,
    /// Health check node port for `Local` policy.
    pub health_check_node_port: Option<i32>,
    /// Publish not-ready addresses too.
    pub publish_not_ready_addresses: Option<bool>,
    /// Session affinity options.
    pub session_affinity_config: Option<SessionAffinityConfig>,
    /// IP families.
    pub ip_families: Option<Vec<String>>,
    /// `SingleStack`, `PreferDualStack` or `RequireDualStack`.
    pub ip_family_policy: Option<String>,
    /// Whether a load balancer allocates node ports.
    pub allocate_load_balancer_node_ports: Option<bool>,
    /// The load balancer implementation.
    pub load_balancer_class: Option<String>,
    /// `Cluster` (default) or `Local`.
    pub internal_traffic_policy: Option<String>,
    /// Traffic distribution preference.
    pub traffic_distribution: Option<String>,
}

/// One port of a service.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// Required when there are several ports (DNS label).
    pub name: Option<String>,
    /// `TCP` (default), `UDP` or `SCTP`.
    pub protocol: Option<String>,
    /// Application protocol hint.
    pub app_protocol: Option<String>,
    /// The service's port.
    pub port: i32,
    /// The pods' port, by number or container port name (default: `port`).
    pub target_port: Option<IntOrString>,
    /// The port on every node for `NodePort`/`LoadBalancer` (30000–32767).
    pub node_port: Option<i32>,
}

/// ClientIP affinity options.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionAffinityConfig {
    /// ClientIP options.
    #[serde(rename = "clientIP")]
    pub client_ip: Option<ClientIpConfig>,
}

/// ClientIP options.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientIpConfig {
    /// Sticky time (default 10800).
    pub timeout_seconds: Option<i32>,
}

/// A service's observed state.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceStatus {
    /// Load balancer status.
    pub load_balancer: Option<LoadBalancerStatus>,
    /// Conditions.
    pub conditions: Option<Vec<Condition>>,
}

/// Load balancer ingress points.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerStatus {
    /// Ingress points.
    pub ingress: Option<Vec<serde_json::Value>>,
}

/// The addresses behind a service.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoints {
    /// `v1`.
    pub api_version: Option<String>,
    /// `Endpoints`.
    pub kind: Option<String>,
    /// Standard object metadata (same name as the service).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Groups of addresses sharing ports.
    pub subsets: Option<Vec<EndpointSubset>>,
}
impl_resource!(Endpoints, group: "", version: "v1", plural: "endpoints", namespaced: true);

/// Addresses that share a set of ports.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSubset {
    /// Ready addresses.
    pub addresses: Option<Vec<EndpointAddress>>,
    /// Addresses not ready yet.
    pub not_ready_addresses: Option<Vec<EndpointAddress>>,
    /// The ports.
    pub ports: Option<Vec<EndpointPort>>,
}

/// One address.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointAddress {
    /// The IP.
    pub ip: String,
    /// The hostname.
    pub hostname: Option<String>,
    /// The node it is on.
    pub node_name: Option<String>,
    /// The pod it belongs to.
    pub target_ref: Option<ObjectReference>,
}

/// One port.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointPort {
    /// The service port's name.
    pub name: Option<String>,
    /// The port number.
    pub port: i32,
    /// The protocol.
    pub protocol: Option<String>,
    /// Application protocol hint.
    pub app_protocol: Option<String>,
}
