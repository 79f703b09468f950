//! A pod as the scheduler sees it: the object plus what every cycle needs,
//! computed once (requests, host ports, parsed affinity terms, images), as
//! kube-scheduler's `PodInfo`.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, PodSpec, WeightedPodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use schemas::MetaExt;
use schemas::SelectorExt;

use crate::runtime::ObjectRef;

use super::cache::ClusterCache;
use super::resources::{Resources, pod_non_zero_requests, pod_requests};

/// The scheduler's name pods ask for.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

static EMPTY_SPEC: LazyLock<PodSpec> = LazyLock::new(PodSpec::default);
static EMPTY_LABELS: LazyLock<BTreeMap<String, String>> = LazyLock::new(BTreeMap::new);

/// A host port a pod binds on its node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host IP (`0.0.0.0` when unset).
    pub ip: String,
    /// `TCP` (default), `UDP` or `SCTP`.
    pub protocol: String,
    /// The port.
    pub port: i32,
}

impl HostPort {
    /// Whether binding `self` conflicts with an existing binding `other`.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A pod (anti-)affinity term, resolved against the pod that carries it.
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// Namespaces the term selects pods in.
    pub namespaces: Vec<String>,
    /// Namespaces by label (`Some(empty)` selects every namespace).
    pub namespace_selector: Option<LabelSelector>,
    /// Which pods; `None` selects none.
    pub selector: Option<LabelSelector>,
    /// The node label that defines the domain.
    pub topology_key: String,
}

/// An affinity term with its weight (preferred terms).
#[derive(Clone, Debug)]
pub struct WeightedTerm {
    /// The term.
    pub term: AffinityTerm,
    /// 1–100.
    pub weight: i64,
}

impl AffinityTerm {
    fn new(owner: &Pod, t: &PodAffinityTerm) -> AffinityTerm {
        let own_ns = owner.metadata.namespace_str().to_string();
        let namespaces = match (&t.namespaces, &t.namespace_selector) {
            (Some(ns), _) if !ns.is_empty() => ns.clone(),
            (_, Some(_)) => Vec::new(),
            _ => vec![own_ns],
        };
        let labels = owner.metadata.labels_map();
        let selector = t.label_selector.clone().map(|mut s| {
            let extra = t
                .match_label_keys
                .iter()
                .flatten()
                .filter_map(|k| {
                    labels.get(k).map(|v| LabelSelectorRequirement {
                        key: k.clone(),
                        operator: "In".into(),
                        values: Some(vec![v.clone()]),
                    })
                })
                .chain(t.mismatch_label_keys.iter().flatten().filter_map(|k| {
                    labels.get(k).map(|v| LabelSelectorRequirement {
                        key: k.clone(),
                        operator: "NotIn".into(),
                        values: Some(vec![v.clone()]),
                    })
                }))
                .collect::<Vec<_>>();
            if !extra.is_empty() {
                s.match_expressions
                    .get_or_insert_with(Vec::new)
                    .extend(extra);
            }
            s
        });
        AffinityTerm {
            namespaces,
            namespace_selector: t.namespace_selector.clone(),
            selector,
            topology_key: t.topology_key.clone(),
        }
    }

    /// Whether `pod` is one of the pods this term selects.
    pub fn matches(&self, pod: &PodInfo, cache: &ClusterCache) -> bool {
        let ns = pod.namespace();
        let in_namespace = self.namespaces.iter().any(|n| n == ns)
            || self.namespace_selector.as_ref().is_some_and(|sel| {
                sel.is_empty() || cache.namespace_labels(ns).is_some_and(|l| sel.matches(l))
            });
        in_namespace
            && self
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(pod.labels()))
    }
}

/// A pod with everything the scheduler precomputes about it.
#[derive(Clone, Debug)]
pub struct PodInfo {
    /// The pod.
    pub pod: Arc<Pod>,
    /// namespace/name.
    pub key: ObjectRef,
    /// Requests, for fitting.
    pub requests: Resources,
    /// Requests with defaults for containers that set none, for scoring.
    pub non_zero: Resources,
    /// Host ports it binds.
    pub host_ports: Vec<HostPort>,
    /// Required pod affinity.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod affinity.
    pub preferred_affinity: Vec<WeightedTerm>,
    /// Preferred pod anti-affinity.
    pub preferred_anti_affinity: Vec<WeightedTerm>,
    /// Images of its containers and init containers, normalised.
    pub images: Vec<String>,
    /// Its priority (0 when unset).
    pub priority: i32,
}

/// An image name with `:latest` added when it names no tag or digest.
pub fn normalized_image(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

impl PodInfo {
    /// Precomputes what the scheduler needs about `pod`.
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let key = ObjectRef::of(pod.as_ref());
        let spec = pod.spec.as_ref().unwrap_or(&EMPTY_SPEC);
        let host_ports = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                p.host_port.filter(|h| *h > 0).map(|port| HostPort {
                    ip: p
                        .host_ip
                        .clone()
                        .filter(|i| !i.is_empty())
                        .unwrap_or_else(|| "0.0.0.0".into()),
                    protocol: p
                        .protocol
                        .clone()
                        .filter(|i| !i.is_empty())
                        .unwrap_or_else(|| "TCP".into()),
                    port,
                })
            })
            .collect();
        let affinity = spec.affinity.as_ref();
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(&pod, t))
                .collect()
        };
        let preferred = |terms: Option<&Vec<WeightedPodAffinityTerm>>| -> Vec<WeightedTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|w| WeightedTerm {
                    term: AffinityTerm::new(&pod, &w.pod_affinity_term),
                    weight: i64::from(w.weight),
                })
                .collect()
        };
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        PodInfo {
            key,
            requests: pod_requests(spec),
            non_zero: pod_non_zero_requests(spec),
            host_ports,
            required_affinity: required(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: required(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: preferred(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            images: spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .filter_map(|c| c.image.as_deref())
                .map(normalized_image)
                .collect(),
            priority: spec.priority.unwrap_or(0),
            pod,
        }
    }

    /// The spec (empty when missing).
    pub fn spec(&self) -> &PodSpec {
        self.pod.spec.as_ref().unwrap_or(&EMPTY_SPEC)
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace_str()
    }

    /// The name.
    pub fn name(&self) -> &str {
        self.pod.metadata.name_str()
    }

    /// The labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.pod.metadata.labels.as_ref().unwrap_or(&EMPTY_LABELS)
    }

    /// The uid.
    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or("")
    }

    /// Whether it has any pod affinity or anti-affinity term.
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// Whether it is being deleted.
    pub fn terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }

    /// The uid of its controlling owner, if any.
    pub fn controller_uid(&self) -> Option<&str> {
        self.pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.as_str())
    }
}

/// Whether the default scheduler is responsible for `pod`.
pub fn ours(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .is_none_or(|n| n.is_empty() || n == DEFAULT_SCHEDULER)
}

/// The node a pod is bound to, if any.
pub fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Whether a pod has finished (Succeeded or Failed): it holds no resources.
pub fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether scheduling gates hold the pod back.
pub fn gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(v: serde_json::Value) -> PodInfo {
        PodInfo::new(Arc::new(serde_json::from_value(v).expect("pod")))
    }

    #[test]
    fn host_ports_default_ip_and_protocol() {
        let p = info(
            json!({"metadata": {"name": "a", "namespace": "d"}, "spec": {"containers": [
                {"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]}
            ]}}),
        );
        assert_eq!(
            p.host_ports,
            vec![HostPort {
                ip: "0.0.0.0".into(),
                protocol: "TCP".into(),
                port: 8080
            }]
        );
        let a = HostPort {
            ip: "10.0.0.1".into(),
            protocol: "TCP".into(),
            port: 8080,
        };
        assert!(p.host_ports[0].conflicts(&a));
        let b = HostPort {
            ip: "10.0.0.2".into(),
            ..a.clone()
        };
        assert!(!a.conflicts(&b));
        let udp = HostPort {
            protocol: "UDP".into(),
            ..a.clone()
        };
        assert!(!a.conflicts(&udp));
    }

    #[test]
    fn affinity_terms_default_to_the_pods_namespace_and_take_match_label_keys() {
        let p = info(
            json!({"metadata": {"name": "a", "namespace": "web", "labels": {"app": "x", "rev": "2"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], "affinity": {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname",
                     "matchLabelKeys": ["rev"]}
                ]}}}}),
        );
        assert_eq!(p.images, vec!["nginx:latest".to_string()]);
        let t = &p.required_anti_affinity[0];
        assert_eq!(t.namespaces, vec!["web".to_string()]);
        let none = ClusterCache::new();
        let same = info(
            json!({"metadata": {"name": "b", "namespace": "web", "labels": {"app": "x", "rev": "2"}}}),
        );
        let other_rev = info(
            json!({"metadata": {"name": "c", "namespace": "web", "labels": {"app": "x", "rev": "1"}}}),
        );
        let other_ns = info(
            json!({"metadata": {"name": "d", "namespace": "db", "labels": {"app": "x", "rev": "2"}}}),
        );
        assert!(t.matches(&same, &none));
        assert!(!t.matches(&other_rev, &none));
        assert!(!t.matches(&other_ns, &none));
    }

    #[test]
    fn responsibility_and_state() {
        let p: Pod =
            serde_json::from_value(json!({"spec": {"schedulerName": "other", "containers": []}}))
                .expect("pod");
        assert!(!ours(&p));
        let p: Pod = serde_json::from_value(
            json!({"spec": {"containers": []}, "status": {"phase": "Failed"}}),
        )
        .expect("pod");
        assert!(ours(&p) && terminal(&p) && bound_node(&p).is_none());
        assert_eq!(normalized_image("reg:5000/a/b"), "reg:5000/a/b:latest");
        assert_eq!(normalized_image("a/b:1"), "a/b:1");
    }
}
