//! Resource arithmetic as kube-scheduler does it: a pod's requests (the sum
//! of its containers, at least its largest init container with the sidecars
//! started before it, plus overhead; pod-level requests win), the "non-zero"
//! requests used for scoring (100m CPU / 200 MiB for containers that request
//! nothing), and a node's allocatable.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemas::QuantityExt;

/// CPU a container that requests none counts as when scoring (millicores).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory a container that requests none counts as when scoring (bytes).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Pod slots (only meaningful for allocatable).
    pub pods: i64,
    /// Extended resources (`example.com/gpu`, `hugepages-2Mi`, ...) in units.
    pub scalar: BTreeMap<String, i64>,
}

/// Whether a resource name is an extended/scalar one the scheduler counts.
pub fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/"))
}

impl Resources {
    /// Adds a resource list.
    pub fn add_list(&mut self, list: &BTreeMap<String, Quantity>) {
        for (name, q) in list {
            match name.as_str() {
                "cpu" => self.milli_cpu += q.millis(),
                "memory" => self.memory += q.value(),
                "ephemeral-storage" => self.ephemeral_storage += q.value(),
                "pods" => self.pods += q.value(),
                n if is_scalar(n) => *self.scalar.entry(n.to_string()).or_insert(0) += q.value(),
                _ => {}
            }
        }
    }

    /// A resource list as amounts.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut r = Resources::default();
        r.add_list(list);
        r
    }

    /// Adds another amount.
    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.pods += o.pods;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_insert(0) += v;
        }
    }

    /// Subtracts another amount.
    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.pods -= o.pods;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_insert(0) -= v;
        }
    }

    /// Raises each resource to at least `o`'s.
    pub fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }

    /// Whether nothing is requested.
    pub fn is_empty(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

fn container_requests(c: &Container) -> Resources {
    c.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .map(Resources::from_list)
        .unwrap_or_default()
}

fn container_non_zero(c: &Container) -> Resources {
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let cpu = requests
        .and_then(|r| r.get("cpu"))
        .map_or(DEFAULT_MILLI_CPU_REQUEST, Quantity::millis);
    let memory = requests
        .and_then(|r| r.get("memory"))
        .map_or(DEFAULT_MEMORY_REQUEST, Quantity::value);
    Resources {
        milli_cpu: cpu,
        memory,
        ..Default::default()
    }
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Aggregates per-container amounts the way the kubelet admits a pod:
/// containers and sidecars run together; each regular init container runs
/// alone with the sidecars started before it.
fn aggregate(spec: &PodSpec, per: impl Fn(&Container) -> Resources) -> Resources {
    let mut sum = Resources::default();
    for c in &spec.containers {
        sum.add(&per(c));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = per(c);
        if is_sidecar(c) {
            sidecars.add(&r);
            init_peak.max_with(&sidecars);
        } else {
            let mut alone = r;
            alone.add(&sidecars);
            init_peak.max_with(&alone);
        }
    }
    sum.add(&sidecars);
    sum.max_with(&init_peak);
    sum
}

/// What the pod asks of a node (for fitting).
pub fn pod_requests(spec: &PodSpec) -> Resources {
    let mut r = aggregate(spec, container_requests);
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        for (name, q) in pod_level {
            match name.as_str() {
                "cpu" => r.milli_cpu = q.millis(),
                "memory" => r.memory = q.value(),
                _ => {}
            }
        }
    }
    if let Some(overhead) = &spec.overhead {
        r.add_list(overhead);
    }
    r
}

/// The requests used for scoring: containers that request no CPU or memory
/// count as 100m / 200 MiB.
pub fn pod_non_zero_requests(spec: &PodSpec) -> Resources {
    let mut r = aggregate(spec, container_non_zero);
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        if let Some(q) = pod_level.get("cpu") {
            r.milli_cpu = q.millis();
        }
        if let Some(q) = pod_level.get("memory") {
            r.memory = q.value();
        }
    }
    if let Some(overhead) = &spec.overhead {
        r.add_list(overhead);
    }
    Resources {
        milli_cpu: r.milli_cpu,
        memory: r.memory,
        ..Default::default()
    }
}

/// What a node offers pods: its allocatable, else its capacity.
pub fn node_allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    status
        .and_then(|s| s.allocatable.as_ref().filter(|a| !a.is_empty()))
        .or_else(|| status.and_then(|s| s.capacity.as_ref()))
        .map(Resources::from_list)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).expect("spec")
    }

    #[test]
    fn requests_sum_containers_and_take_the_largest_init_container() {
        let s = spec(json!({
            "initContainers": [
                {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                {"name": "i2", "resources": {"requests": {"cpu": "2", "memory": "3G"}}}
            ],
            "containers": [
                {"name": "c1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                {"name": "c2", "resources": {"requests": {"cpu": "1", "memory": "1G", "example.com/gpu": "1"}}}
            ],
            "overhead": {"cpu": "100m"}
        }));
        let r = pod_requests(&s);
        assert_eq!(r.milli_cpu, 3100);
        assert_eq!(r.memory, 3_000_000_000);
        assert_eq!(r.scalar.get("example.com/gpu"), Some(&1));
    }

    #[test]
    fn sidecars_run_alongside_containers() {
        let s = spec(json!({
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "setup", "resources": {"requests": {"cpu": "3"}}}
            ],
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]
        }));
        // setup runs with the sidecar: 3.5; afterwards c + sidecar: 1.5
        assert_eq!(pod_requests(&s).milli_cpu, 3500);
    }

    #[test]
    fn non_zero_requests_default_cpu_and_memory() {
        let s = spec(json!({"containers": [
            {"name": "a"},
            {"name": "b", "resources": {"requests": {"cpu": "250m"}}}
        ]}));
        let r = pod_non_zero_requests(&s);
        assert_eq!(r.milli_cpu, 350);
        assert_eq!(r.memory, 2 * DEFAULT_MEMORY_REQUEST);
        assert!(pod_requests(&s).memory == 0);
    }

    #[test]
    fn pod_level_requests_win() {
        let s = spec(json!({
            "resources": {"requests": {"cpu": "2"}},
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]
        }));
        let r = pod_requests(&s);
        assert_eq!(r.milli_cpu, 2000);
        assert_eq!(r.memory, 1 << 30);
    }

    #[test]
    fn allocatable_falls_back_to_capacity() {
        let n: Node = serde_json::from_value(
            json!({"status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}),
        )
        .expect("node");
        let a = node_allocatable(&n);
        assert_eq!((a.milli_cpu, a.memory, a.pods), (4000, 8 << 30, 110));
    }
}
