//! The kubelet's Summary API (`GET /stats/summary`, k8s.io/kubelet
//! `stats/v1alpha1`), the subset korral's node daemons serve and the API
//! server's Metrics API reads: node and per-container CPU and memory with
//! their timestamps. Field names are the kubelet's.

use serde::{Deserialize, Serialize};

/// A Node annotation naming the path of its summary on its endpoint (default
/// `/stats/summary`): simulated nodes share one endpoint and are told apart
/// by path, as kwok's nodes are by metrics-server's
/// `metrics.k8s.io/resource-metrics-path`.
pub const STATS_PATH_ANNOTATION: &str = "korral.dev/stats-summary-path";

/// The whole summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The node's own usage.
    pub node: NodeStats,
    /// Every pod the node runs (with at least one container measured).
    #[serde(default)]
    pub pods: Vec<PodStats>,
}

/// What a node, a pod and a container report alike.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// When it started, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// A node's usage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// The Node's name.
    pub node_name: String,
    /// Start time (of the node daemon), CPU and memory.
    #[serde(flatten)]
    pub usage: Usage,
}

/// Identifies a pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodReference {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID.
    pub uid: String,
}

/// A pod's usage: its containers' and their sum.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    /// Which pod.
    pub pod_ref: PodReference,
    /// Start time, and the containers' CPU and memory summed.
    #[serde(flatten)]
    pub usage: Usage,
    /// Each running container.
    #[serde(default)]
    pub containers: Vec<ContainerStats>,
}

/// One container's usage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// The container's name in the pod spec.
    pub name: String,
    /// Start time, CPU and memory.
    #[serde(flatten)]
    pub usage: Usage,
}

/// CPU usage: the rate over the last sampling interval and the total.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    /// When the newer sample was taken, RFC 3339.
    pub time: String,
    /// Cores used (in billionths) between the last two samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    /// CPU time used since the start, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
    /// korral's addition (kubelet readers ignore it): the interval between
    /// the two samples `usageNanoCores` was computed from, a Go duration —
    /// the Metrics API's `window`.
    #[serde(
        rename = "korral.dev/window",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<String>,
}

/// Memory usage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    /// When the sample was taken, RFC 3339.
    pub time: String,
    /// Memory available (node: MemAvailable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    /// Total memory in use (page cache included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    /// The working set: usage minus inactive file pages — what the Metrics API reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    /// Anonymous and swap cache memory (resident set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
}
