//! The Metrics API (`metrics.k8s.io/v1beta1`, as metrics-server serves it):
//! `NodeMetrics` (cluster-scoped, resource `nodes`) and `PodMetrics`
//! (namespaced, resource `pods`), the usage of a node or of each container
//! of a pod over a `window`. Typed so a controller (the HPA) can read them
//! through `reconcilers`' `Api<PodMetrics>` like any other kind; the API
//! server writes them in Go's field order itself.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// The group of the Metrics API.
pub const GROUP: &str = "metrics.k8s.io";
/// Its only version.
pub const VERSION: &str = "v1beta1";
/// `metrics.k8s.io/v1beta1`.
pub const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// A node's usage (`usage.cpu`, `usage.memory`: the working set).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMetrics {
    /// The node's name and labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// When the usage was measured (the end of the window), RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// The interval the usage was computed over (a Go duration: `10.002s`).
    #[serde(default)]
    pub window: String,
    /// `cpu` and `memory`.
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

/// One container's usage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerMetrics {
    /// The container's name in the pod spec.
    pub name: String,
    /// `cpu` and `memory`.
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

/// A pod's usage, per container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetrics {
    /// The pod's name, namespace and labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// When the usage was measured (the end of the window), RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// The interval the usage was computed over (a Go duration).
    #[serde(default)]
    pub window: String,
    /// Each running container's usage.
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

/// `k8s_openapi`'s traits for a Metrics API kind, so `Api<K>` serves it.
macro_rules! metrics_kind {
    ($ty:ty, $kind:literal, $list:literal, $plural:literal, $scope:ty) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = API_VERSION;
            const GROUP: &'static str = GROUP;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = VERSION;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = $scope;
        }

        impl k8s_openapi::ListableResource for $ty {
            const LIST_KIND: &'static str = $list;
        }

        impl k8s_openapi::Metadata for $ty {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

metrics_kind!(
    NodeMetrics,
    "NodeMetrics",
    "NodeMetricsList",
    "nodes",
    k8s_openapi::ClusterResourceScope
);
metrics_kind!(
    PodMetrics,
    "PodMetrics",
    "PodMetricsList",
    "pods",
    k8s_openapi::NamespaceResourceScope
);

/// CPU in nanocores as Go's `resource.NewScaledQuantity(n, resource.Nano)`
/// prints it: `250m`, `1234567n`, `2`, `0`.
pub fn cpu_quantity(nano_cores: u64) -> Quantity {
    const SUFFIXES: [&str; 7] = ["n", "u", "m", "", "k", "M", "G"];
    if nano_cores == 0 {
        return Quantity("0".into());
    }
    let (mut n, mut i) = (nano_cores, 0);
    while n.is_multiple_of(1000) && i + 1 < SUFFIXES.len() {
        n /= 1000;
        i += 1;
    }
    Quantity(format!("{n}{}", SUFFIXES[i]))
}

/// Bytes as Go's `resource.NewQuantity(n, resource.BinarySI)` prints them:
/// `64Mi`, `12345Ki`, `1000001`; below 1024 in decimal form (`1k`, `512`).
pub fn memory_quantity(bytes: u64) -> Quantity {
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if bytes < 1024 {
        let text = match bytes {
            0 => "0".to_string(),
            b if b.is_multiple_of(1000) => format!("{}k", b / 1000),
            b => b.to_string(),
        };
        return Quantity(text);
    }
    let (mut n, mut i) = (bytes, 0);
    while n.is_multiple_of(1024) && i + 1 < SUFFIXES.len() {
        n /= 1024;
        i += 1;
    }
    Quantity(format!("{n}{}", SUFFIXES[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_print_as_go_does() {
        assert_eq!(cpu_quantity(0).0, "0");
        assert_eq!(cpu_quantity(250_000_000).0, "250m");
        assert_eq!(cpu_quantity(2_000_000_000).0, "2");
        assert_eq!(cpu_quantity(1_234_567).0, "1234567n");
        assert_eq!(cpu_quantity(5_000).0, "5u");
        assert_eq!(memory_quantity(64 << 20).0, "64Mi");
        assert_eq!(memory_quantity(12345 * 1024).0, "12345Ki");
        assert_eq!(memory_quantity(1_000_001).0, "1000001");
        assert_eq!(memory_quantity(1000).0, "1k");
        assert_eq!(memory_quantity(0).0, "0");
    }

    #[test]
    fn pod_metrics_read_from_metrics_server_json() {
        let v = serde_json::json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
            "timestamp": "2026-12-07T10:00:00Z", "window": "10.5s",
            "containers": [{"name": "web", "usage": {"cpu": "250m", "memory": "64Mi"}}]});
        let m: PodMetrics = serde_json::from_value(v).expect("decodes");
        assert_eq!(m.containers[0].usage["cpu"].0, "250m");
        assert_eq!(m.window, "10.5s");
    }
}
