//! The endpoints controller, as Kubernetes': for every Service with a
//! selector, an Endpoints object of the same name listing the selected
//! pods' IPs — ready ones under `addresses`, others under
//! `notReadyAddresses` (all ready with `publishNotReadyAddresses`) — with
//! node name and a `targetRef`, and the service's ports resolved by number
//! or by container port name. Services without a selector (such as
//! `kubernetes`) keep hand-written Endpoints untouched.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemas::MetaExt;
use schemas::TimeExt;

use super::Context;
use crate::runtime::{
    Action, Cache, ClientError, Controller, DeleteParams, ObjectRef, WriteParams,
};

/// Set on Endpoints this controller writes (as Kubernetes does).
pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Set when addresses were cut at [`MAX_ADDRESSES`].
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Endpoints hold at most this many addresses.
pub const MAX_ADDRESSES: usize = 1000;
/// Label of the Endpoints of a headless service.
pub const HEADLESS: &str = "service.kubernetes.io/headless";

/// Whether the pod's Ready condition is True.
pub(crate) fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// Whether a pod belongs in a service's Endpoints at all.
fn in_endpoints(pod: &Pod) -> bool {
    let has_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    has_ip
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The port a service port reaches on `pod`, by number or by container port name.
pub(crate) fn target_port(
    port: &k8s_openapi::api::core::v1::ServicePort,
    pod: &Pod,
) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) if *n == 0 => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

fn address(pod: &Pod, svc: &Service) -> EndpointAddress {
    let spec = pod.spec.as_ref();
    let hostname = spec
        .and_then(|s| s.hostname.clone())
        .filter(|_| spec.and_then(|s| s.subdomain.as_deref()) == Some(svc.metadata.name_str()));
    EndpointAddress {
        ip: pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default(),
        hostname,
        node_name: spec.and_then(|s| s.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
    }
}

/// A pod's resolved ports: (name, number, protocol), sorted.
type PortSet = Vec<(String, i32, String)>;

/// The subsets of a service over `pods` (already selected), packed as
/// Kubernetes packs them: addresses with the same ports share a subset;
/// everything sorted, so unchanged input gives identical output. The flag
/// says whether addresses were cut at [`MAX_ADDRESSES`].
pub fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> (Vec<EndpointSubset>, bool) {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_all = spec.publish_not_ready_addresses == Some(true);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let svc_ports = spec.ports.unwrap_or_default();
    let mut groups: BTreeMap<PortSet, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for pod in pods.iter().filter(|p| in_endpoints(p)) {
        let mut ports: PortSet = Vec::new();
        for sp in &svc_ports {
            if let Some(n) = target_port(sp, pod) {
                ports.push((
                    sp.name.clone().unwrap_or_default(),
                    n,
                    sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ));
            }
        }
        // a pod serving none of the service's ports is left out (unless the
        // headless service has no ports at all)
        if ports.is_empty() && !(svc_ports.is_empty() && headless) {
            continue;
        }
        ports.sort();
        let g = groups.entry(ports).or_default();
        if publish_all || ready(pod) {
            g.0.push(address(pod, svc));
        } else {
            g.1.push(address(pod, svc));
        }
    }
    let app_protocols: BTreeMap<String, Option<String>> = svc_ports
        .iter()
        .map(|p| (p.name.clone().unwrap_or_default(), p.app_protocol.clone()))
        .collect();
    let mut total = 0usize;
    let mut truncated = false;
    let mut out = Vec::new();
    for (ports, (mut ready, mut not_ready)) in groups {
        let key = |a: &EndpointAddress| {
            (
                a.ip.clone(),
                a.target_ref.as_ref().and_then(|r| r.uid.clone()),
            )
        };
        ready.sort_by_key(key);
        not_ready.sort_by_key(key);
        let room = MAX_ADDRESSES.saturating_sub(total);
        if ready.len() + not_ready.len() > room {
            truncated = true;
            ready.truncate(room);
            not_ready.truncate(room - ready.len());
        }
        total += ready.len() + not_ready.len();
        if ready.is_empty() && not_ready.is_empty() {
            continue;
        }
        out.push(EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| {
                ports
                    .into_iter()
                    .map(|(name, port, protocol)| EndpointPort {
                        app_protocol: app_protocols.get(&name).cloned().flatten(),
                        name: (!name.is_empty()).then_some(name),
                        port,
                        protocol: Some(protocol),
                    })
                    .collect()
            }),
        });
    }
    (out, truncated)
}

/// The labels Endpoints get: the service's, plus the headless marker.
fn labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l = svc.metadata.labels_map().clone();
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        l.insert(HEADLESS.into(), String::new());
    } else {
        l.remove(HEADLESS);
    }
    l
}

async fn reconcile(ctx: Context, key: ObjectRef) -> Result<Action, ClientError> {
    let ns = key.namespace.clone().unwrap_or_default();
    let services = ctx.informers.get::<Service>().cache();
    let endpoints = ctx.informers.get::<Endpoints>().cache();
    let api = ctx.client.api::<Endpoints>(Some(&ns));
    let current = endpoints.get(&key);
    let Some(svc) = services.get(&key) else {
        // the service is gone: remove what this controller wrote for it
        if let Some(ep) = current
            && ep.metadata.annotations_map().contains_key(TRIGGER_TIME)
        {
            match api.delete(&key.name, &DeleteParams::default()).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(Action::AwaitChange);
    };
    let Some(selector) = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
    else {
        return Ok(Action::AwaitChange);
    };
    let pods = selected_pods(&ctx.informers.pods().cache(), &ns, selector);
    let (subsets, truncated) = subsets(&svc, &pods);
    let labels = labels(&svc);
    let want_subsets = (!subsets.is_empty()).then_some(subsets);
    if let Some(ep) = &current {
        let over = ep.metadata.annotations_map().contains_key(OVER_CAPACITY);
        if ep.subsets == want_subsets && ep.metadata.labels_map() == &labels && over == truncated {
            return Ok(Action::AwaitChange);
        }
    }
    let mut annotations = current
        .as_ref()
        .map(|e| e.metadata.annotations_map().clone())
        .unwrap_or_default();
    annotations.insert(TRIGGER_TIME.into(), schemas::time::now().text());
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    let mut ep = Endpoints {
        metadata: ObjectMeta {
            name: Some(key.name.clone()),
            namespace: Some(ns.clone()),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        subsets: want_subsets,
    };
    let result = match &current {
        Some(cur) => {
            ep.metadata.resource_version = cur.metadata.resource_version.clone();
            api.replace(&key.name, &ep, &WriteParams::default()).await
        }
        None => api.create(&ep, &WriteParams::default()).await,
    };
    match result {
        Ok(_) => Ok(Action::AwaitChange),
        // the cache was behind; the watch event brings us back here
        Err(e) if e.is_conflict() || e.is_already_exists() => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}

/// The pods of `ns` a Service's selector picks.
pub(crate) fn selected_pods(
    pods: &Cache<Pod>,
    ns: &str,
    selector: &BTreeMap<String, String>,
) -> Vec<Arc<Pod>> {
    pods.in_namespace(ns)
        .into_iter()
        .filter(|p| {
            let l = p.metadata.labels_map();
            selector.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .collect()
}

/// The Services of the pod's namespace whose (non-empty) selector picks it.
pub(crate) fn services_selecting(services: &Cache<Service>, p: &Pod) -> Vec<ObjectRef> {
    let labels = p.metadata.labels_map();
    services
        .in_namespace(p.metadata.namespace_str())
        .into_iter()
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|sel| {
                    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
                })
        })
        .map(|s| ObjectRef::of(s.as_ref()))
        .collect()
}

/// Runs the endpoints controller until `ctx` shuts down.
pub async fn run(ctx: Context) {
    let services = ctx.informers.get::<Service>();
    let endpoints = ctx.informers.get::<Endpoints>();
    let pods = ctx.informers.pods();
    let svc_cache = services.cache();
    let controller = Controller::new("endpoints", &services)
        .watches(&endpoints, |e: &Endpoints| vec![ObjectRef::of(e)])
        .watches(&pods, move |p: &Pod| services_selecting(&svc_cache, p))
        .workers(2);
    let metrics = ctx.metrics.clone();
    let stopped = ctx.stopped();
    controller
        .run(move |key| reconcile(ctx.clone(), key), metrics, stopped)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn svc(spec: Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "d", "labels": {"team": "a"}}, "spec": spec}))
            .expect("service")
    }

    fn pod(name: &str, ip: &str, ready: bool, extra: Value) -> Arc<Pod> {
        let mut v = json!({"metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}")},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            for (k, val) in e {
                m.insert(k, val);
            }
        }
        Arc::new(serde_json::from_value(v).expect("pod"))
    }

    #[test]
    fn ready_and_not_ready_addresses_with_named_ports() {
        let s = svc(json!({"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9090, "targetPort": 9091, "appProtocol": "http"}
        ]}));
        let pods = vec![
            pod("b", "10.0.0.2", true, json!({})),
            pod("a", "10.0.0.1", false, json!({})),
            pod("c", "10.0.0.3", true, json!({})),
            pod("noip", "", true, json!({})),
        ];
        let (subsets, truncated) = subsets(&s, &pods);
        assert!(!truncated);
        assert_eq!(subsets.len(), 1);
        let sub = &subsets[0];
        let ips: Vec<&str> = sub
            .addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(ips, vec!["10.0.0.2", "10.0.0.3"]);
        let not: Vec<&str> = sub
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(not, vec!["10.0.0.1"]);
        let a = &sub.addresses.as_ref().expect("addresses")[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        let r = a.target_ref.as_ref().expect("targetRef");
        assert_eq!(
            (r.kind.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (Some("Pod"), Some("b"), Some("uid-b"))
        );
        let ports: Vec<(Option<&str>, i32)> = sub
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref(), p.port))
            .collect();
        assert_eq!(ports, vec![(Some("http"), 8080), (Some("metrics"), 9091)]);
        assert_eq!(
            sub.ports.as_ref().expect("ports")[1]
                .app_protocol
                .as_deref(),
            Some("http")
        );
    }

    #[test]
    fn publish_not_ready_and_pods_without_the_named_port() {
        let s = svc(
            json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true,
            "ports": [{"port": 80, "targetPort": "http"}]}),
        );
        let other = pod(
            "x",
            "10.0.0.9",
            true,
            json!({"spec": {"containers": [{"name": "c", "ports": [{"name": "web", "containerPort": 81}]}]}}),
        );
        let pods = vec![pod("a", "10.0.0.1", false, json!({})), other];
        let (subsets, _) = subsets(&s, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].addresses.as_ref().map(Vec::len), Some(1));
        assert!(subsets[0].not_ready_addresses.is_none());
        // terminating and finished pods are left out
        let gone = pod(
            "t",
            "10.0.0.5",
            true,
            json!({"metadata": {"name": "t", "namespace": "d", "deletionTimestamp": "2024-01-01T00:00:00Z"}}),
        );
        let done = pod(
            "f",
            "10.0.0.6",
            true,
            json!({"status": {"phase": "Succeeded", "podIP": "10.0.0.6"}}),
        );
        assert!(subsets_of(&s, vec![gone, done]).is_empty());
    }

    fn subsets_of(s: &Service, pods: Vec<Arc<Pod>>) -> Vec<EndpointSubset> {
        subsets(s, &pods).0
    }

    #[test]
    fn different_port_sets_make_different_subsets_and_headless_labels() {
        let s = svc(json!({"selector": {"app": "web"}, "clusterIP": "None",
            "ports": [{"port": 80, "targetPort": "http"}]}));
        let v2 = pod(
            "v2",
            "10.0.0.2",
            true,
            json!({"spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 9000}]}]}}),
        );
        let subsets = subsets_of(&s, vec![pod("v1", "10.0.0.1", true, json!({})), v2]);
        assert_eq!(subsets.len(), 2);
        assert_eq!(labels(&s).get(HEADLESS).map(String::as_str), Some(""));
        assert_eq!(labels(&s).get("team").map(String::as_str), Some("a"));
        // a headless service without ports lists addresses without ports
        let bare = svc(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let subsets = subsets_of(&bare, vec![pod("v1", "10.0.0.1", true, json!({}))]);
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].ports.is_none());
    }

    #[test]
    fn addresses_are_capped() {
        let s = svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let pods: Vec<Arc<Pod>> = (0..(MAX_ADDRESSES + 5))
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.1.{}.{}", i / 250, i % 250),
                    true,
                    json!({}),
                )
            })
            .collect();
        let (subsets, truncated) = subsets(&s, &pods);
        assert!(truncated);
        assert_eq!(
            subsets[0].addresses.as_ref().map(Vec::len),
            Some(MAX_ADDRESSES)
        );
    }
}
