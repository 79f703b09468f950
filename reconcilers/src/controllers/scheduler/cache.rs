//! The scheduler's cache: every node with the pods on it (bound, and
//! *assumed* — placed by this scheduler but not yet seen bound), their summed
//! requests and host ports, image spread, namespace labels and service
//! selectors. It is owned by the scheduling loop, so a scheduling cycle
//! reads it without locks, and a pod is assumed on its node before the next
//! cycle starts: consecutive decisions never overcommit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};
use schemas::MetaExt;

use crate::runtime::ObjectRef;

use super::pod_info::{HostPort, PodInfo, normalized_image};
use super::resources::{Resources, node_allocatable};

static NO_LABELS: std::sync::LazyLock<BTreeMap<String, String>> =
    std::sync::LazyLock::new(BTreeMap::new);

/// One node and what is placed on it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node.
    pub node: Arc<Node>,
    /// Its name.
    pub name: String,
    /// What it offers pods.
    pub allocatable: Resources,
    /// Its taints.
    pub taints: Vec<Taint>,
    /// Cordoned.
    pub unschedulable: bool,
    /// The pods on it (bound and assumed).
    pub pods: Vec<Arc<PodInfo>>,
    /// Sum of their requests.
    pub requested: Resources,
    /// Sum of their non-zero requests (for scoring).
    pub non_zero_requested: Resources,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// Pods on it with any pod affinity or anti-affinity.
    pub pods_with_affinity: usize,
    /// Pods on it with required anti-affinity.
    pub pods_with_required_anti_affinity: usize,
    /// Images present (normalised name → size in bytes).
    pub images: HashMap<String, i64>,
}

fn node_images(node: &Node) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for img in node
        .status
        .as_ref()
        .and_then(|s| s.images.as_ref())
        .into_iter()
        .flatten()
    {
        for name in img.names.iter().flatten() {
            out.insert(normalized_image(name), img.size_bytes.unwrap_or(0));
        }
    }
    out
}

impl NodeInfo {
    /// A node with nothing on it.
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let spec = node.spec.as_ref();
        NodeInfo {
            name: node.metadata.name_str().to_string(),
            allocatable: node_allocatable(&node),
            taints: spec.and_then(|s| s.taints.clone()).unwrap_or_default(),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            images: node_images(&node),
            node,
            pods: Vec::new(),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            used_ports: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
        }
    }

    /// The node's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.node.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
    }

    /// The value of the node label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().get(key).map(String::as_str)
    }

    fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.requested.add(&p.requests);
        self.non_zero_requested.add(&p.non_zero);
        self.used_ports.extend(p.host_ports.iter().cloned());
        if p.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !p.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(p);
    }

    fn remove_pod(&mut self, key: &ObjectRef) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| &p.key == key)?;
        let p = self.pods.swap_remove(i);
        self.requested.sub(&p.requests);
        self.non_zero_requested.sub(&p.non_zero);
        for hp in &p.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if p.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !p.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        Some(p)
    }

    fn set_node(&mut self, node: Arc<Node>) {
        let fresh = NodeInfo::new(node);
        self.allocatable = fresh.allocatable;
        self.taints = fresh.taints;
        self.unschedulable = fresh.unschedulable;
        self.images = fresh.images;
        self.name = fresh.name;
        self.node = fresh.node;
    }
}

/// Where a pod is placed.
#[derive(Clone, Debug)]
struct Placement {
    node: String,
    assumed: bool,
}

/// The cluster as the scheduler sees it.
#[derive(Default)]
pub struct ClusterCache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Nodes that pods are bound to but that do not exist (yet).
    ghosts: HashMap<String, NodeInfo>,
    placements: HashMap<ObjectRef, Placement>,
    image_nodes: HashMap<String, usize>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    services: HashMap<ObjectRef, BTreeMap<String, String>>,
}

impl ClusterCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The nodes, in a stable order.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// How many nodes have `image`.
    pub fn image_spread(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    /// A namespace's labels.
    pub fn namespace_labels(&self, ns: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(ns)
    }

    /// Selectors of the services in `ns`.
    pub fn service_selectors<'a>(
        &'a self,
        ns: &'a str,
    ) -> impl Iterator<Item = &'a BTreeMap<String, String>> + 'a {
        self.services
            .iter()
            .filter(move |(k, _)| k.namespace.as_deref() == Some(ns))
            .map(|(_, v)| v)
    }

    /// Records a namespace's labels.
    pub fn set_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) {
        self.namespaces.insert(name.to_string(), labels);
    }

    /// Forgets a namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Records a service's selector (services without one are ignored).
    pub fn set_service(&mut self, key: ObjectRef, selector: Option<BTreeMap<String, String>>) {
        match selector.filter(|s| !s.is_empty()) {
            Some(s) => {
                self.services.insert(key, s);
            }
            None => {
                self.services.remove(&key);
            }
        }
    }

    /// Forgets a service.
    pub fn remove_service(&mut self, key: &ObjectRef) {
        self.services.remove(key);
    }

    fn count_images(&mut self, images: &HashMap<String, i64>, delta: isize) {
        for name in images.keys() {
            let e = self.image_nodes.entry(name.clone()).or_insert(0);
            *e = e.saturating_add_signed(delta);
            if *e == 0 {
                self.image_nodes.remove(name);
            }
        }
    }

    /// Adds or updates a node.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name_str().to_string();
        if let Some(i) = self.index.get(&name).copied() {
            let old_images = std::mem::take(&mut self.nodes[i].images);
            self.count_images(&old_images, -1);
            self.nodes[i].set_node(node);
            let new_images = self.nodes[i].images.clone();
            self.count_images(&new_images, 1);
            return;
        }
        let info = match self.ghosts.remove(&name) {
            Some(mut ghost) => {
                ghost.set_node(node);
                ghost
            }
            None => NodeInfo::new(node),
        };
        let images = info.images.clone();
        self.count_images(&images, 1);
        self.index.insert(name, self.nodes.len());
        self.nodes.push(info);
    }

    /// Removes a node; pods still bound to it are kept until they go.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let info = self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            let moved = self.nodes[i].name.clone();
            self.index.insert(moved, i);
        }
        self.count_images(&info.images, -1);
        if !info.pods.is_empty() {
            self.ghosts.insert(info.name.clone(), info);
        }
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        if let Some(i) = self.index.get(name) {
            return &mut self.nodes[*i];
        }
        self.ghosts.entry(name.to_string()).or_insert_with(|| {
            let mut n = Node::default();
            n.metadata.name = Some(name.to_string());
            NodeInfo::new(Arc::new(n))
        })
    }

    fn unplace(&mut self, key: &ObjectRef) -> Option<Placement> {
        let placement = self.placements.remove(key)?;
        if let Some(i) = self.index.get(&placement.node) {
            self.nodes[*i].remove_pod(key);
        } else if let Some(g) = self.ghosts.get_mut(&placement.node) {
            g.remove_pod(key);
            if g.pods.is_empty() {
                self.ghosts.remove(&placement.node);
            }
        }
        Some(placement)
    }

    fn place(&mut self, pod: Arc<PodInfo>, node: &str, assumed: bool) {
        self.placements.insert(
            pod.key.clone(),
            Placement {
                node: node.to_string(),
                assumed,
            },
        );
        self.node_mut(node).add_pod(pod);
    }

    /// Adds or updates a pod bound to `node` (confirming it if it was assumed).
    pub fn set_bound_pod(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.unplace(&pod.key);
        self.place(pod, node, false);
    }

    /// Removes a pod (bound or assumed); returns whether it was in the cache.
    pub fn remove_pod(&mut self, key: &ObjectRef) -> bool {
        self.unplace(key).is_some()
    }

    /// Places a pod on `node` before it is bound.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.unplace(&pod.key);
        self.place(pod, node, true);
    }

    /// Takes back an assumed pod (its binding failed).
    pub fn forget(&mut self, key: &ObjectRef) {
        if self.placements.get(key).is_some_and(|p| p.assumed) {
            self.unplace(key);
        }
    }

    /// Whether a pod is assumed (placed, not yet seen bound).
    pub fn is_assumed(&self, key: &ObjectRef) -> bool {
        self.placements.get(key).is_some_and(|p| p.assumed)
    }

    /// The node a pod is placed on.
    pub fn placement(&self, key: &ObjectRef) -> Option<&str> {
        self.placements.get(key).map(|p| p.node.as_str())
    }

    /// How many pods are placed.
    pub fn pod_count(&self) -> usize {
        self.placements.len()
    }

    /// Keys of all placed pods.
    pub fn placed_pods(&self) -> HashSet<ObjectRef> {
        self.placements.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, images: &[&str]) -> Arc<Node> {
        let imgs: Vec<_> = images
            .iter()
            .map(|i| json!({"names": [i], "sizeBytes": 100}))
            .collect();
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"}, "images": imgs}}))
            .expect("node"),
        )
    }

    fn pod(name: &str, cpu: &str, port: Option<i32>) -> Arc<PodInfo> {
        let ports = port.map(|p| json!([{"containerPort": 80, "hostPort": p}]));
        Arc::new(PodInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d"},
                "spec": {"containers": [{"name": "c", "ports": ports, "resources": {"requests": {"cpu": cpu}}}]}}))
            .expect("pod"),
        )))
    }

    #[test]
    fn assumed_pods_count_until_forgotten_or_confirmed() {
        let mut c = ClusterCache::new();
        c.set_node(node("n1", &["nginx"]));
        c.set_node(node("n2", &["nginx:latest", "redis"]));
        assert_eq!(c.image_spread("nginx:latest"), 2);
        assert_eq!(c.image_spread("redis:latest"), 1);
        let p = pod("a", "500m", Some(8080));
        c.assume(p.clone(), "n1");
        assert!(c.is_assumed(&p.key));
        let n1 = c.node("n1").expect("n1");
        assert_eq!(n1.requested.milli_cpu, 500);
        assert_eq!(n1.used_ports.len(), 1);
        c.forget(&p.key);
        assert_eq!(c.node("n1").expect("n1").requested.milli_cpu, 0);
        assert!(c.node("n1").expect("n1").used_ports.is_empty());
        // assume, then the informer shows it bound: confirmed, counted once
        c.assume(p.clone(), "n1");
        c.set_bound_pod(p.clone(), "n1");
        assert!(!c.is_assumed(&p.key));
        assert_eq!(c.node("n1").expect("n1").pods.len(), 1);
        c.forget(&p.key); // no effect on a bound pod
        assert_eq!(c.node("n1").expect("n1").pods.len(), 1);
        assert!(c.remove_pod(&p.key));
        assert_eq!(c.pod_count(), 0);
    }

    #[test]
    fn pods_on_unknown_nodes_wait_for_the_node() {
        let mut c = ClusterCache::new();
        c.set_bound_pod(pod("a", "1", None), "later");
        assert!(c.node("later").is_none());
        c.set_node(node("later", &[]));
        assert_eq!(c.node("later").expect("node").requested.milli_cpu, 1000);
        c.set_node(node("other", &[]));
        c.remove_node("later");
        assert_eq!(c.nodes().len(), 1);
        assert_eq!(c.node("other").expect("other").name, "other");
        c.set_node(node("later", &["x"]));
        assert_eq!(c.node("later").expect("node").pods.len(), 1);
        c.remove_node("later");
        c.remove_node("other");
        assert_eq!(c.image_spread("x:latest"), 0);
    }
}
