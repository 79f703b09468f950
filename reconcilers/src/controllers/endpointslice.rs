//! The EndpointSlice controller, as Kubernetes' (`endpointslice-controller.k8s.io`):
//! for every Service with a selector, `discovery.k8s.io/v1` EndpointSlices
//! (`<service>-<random>`, owned by the Service) listing the selected pods —
//! terminating ones too, with ready/serving/terminating conditions, node
//! name, zone and a `targetRef` — at most [`MAX_ENDPOINTS_PER_SLICE`] per
//! slice, one set of slices per resolved port set, and an empty placeholder
//! slice while no pod is selected. Existing slices are updated in place
//! (endpoints kept where they are, new ones filling the fullest slice with
//! room), so a change touches few slices.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemas::{MetaExt, TimeExt};

use super::Context;
use super::endpoints::{
    HEADLESS, TRIGGER_TIME, ready, selected_pods, services_selecting, target_port,
};
use super::podutil::controller_ref;
use crate::runtime::{
    Action, Cache, ClientError, Controller, DeleteParams, ObjectRef, WriteParams,
};

/// The label naming a slice's Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages a slice.
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name in [`MANAGED_BY`].
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// `--max-endpoints-per-slice`'s default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The node label holding a node's zone.
pub const ZONE: &str = "topology.kubernetes.io/zone";

/// A slice's ports, as compared: (name, port, protocol, appProtocol), sorted.
pub type PortKey = Vec<(String, i32, String, Option<String>)>;

struct State {
    ctx: Context,
    services: Cache<Service>,
    slices: Cache<EndpointSlice>,
    pods: Cache<Pod>,
    nodes: Cache<Node>,
    /// Per Service, the slices written but not yet seen in the cache: name →
    /// the resourceVersion written (`None`: deleted). Kube's
    /// endpointSliceTracker: a sync on a cache missing its own writes would
    /// create duplicates.
    written: Mutex<HashMap<ObjectRef, HashMap<String, Option<u64>>>>,
}

fn rv(s: &EndpointSlice) -> Option<u64> {
    s.metadata.resource_version.as_deref()?.parse().ok()
}

impl State {
    /// Whether the cache lacks one of our writes for `key` (forgetting those it shows).
    fn stale(&self, key: &ObjectRef) -> bool {
        let Ok(mut m) = self.written.lock() else {
            return false;
        };
        let Some(w) = m.get_mut(key) else {
            return false;
        };
        let ns = key.namespace.as_deref();
        w.retain(|name, written| {
            let cached = self.slices.get(&ObjectRef::new(ns, name));
            match (written, cached) {
                (None, None) => false,
                (None, Some(_)) => true,
                (Some(w), Some(c)) => rv(&c).is_none_or(|c| c < *w),
                (Some(_), None) => true,
            }
        });
        let stale = !w.is_empty();
        if !stale {
            m.remove(key);
        }
        stale
    }

    fn wrote(&self, key: &ObjectRef, name: &str, slice: Option<&EndpointSlice>) {
        if let Ok(mut m) = self.written.lock() {
            m.entry(key.clone())
                .or_default()
                .insert(name.to_string(), slice.and_then(rv));
        }
    }
}

/// Whether a pod belongs in its Services' slices (kube's
/// `ShouldPodBeInEndpoints` with terminating pods included).
fn in_slices(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let has_ip = status
        .and_then(|s| s.pod_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty());
    has_ip
        && !matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// The endpoint a pod makes for a Service (kube's `podToEndpoint`).
fn endpoint(pod: &Pod, svc: &Service, zone: Option<String>) -> Endpoint {
    let serving = ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    let spec = pod.spec.as_ref();
    let hostname = spec
        .and_then(|s| s.hostname.clone())
        .filter(|_| spec.and_then(|s| s.subdomain.as_deref()) == Some(svc.metadata.name_str()));
    Endpoint {
        addresses: pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .into_iter()
            .collect(),
        conditions: Some(EndpointConditions {
            ready: Some(publish || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname,
        node_name: spec.and_then(|s| s.node_name.clone()),
        zone,
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The identity of an endpoint within a Service's slices.
fn endpoint_key(e: &Endpoint) -> (Option<String>, Vec<String>) {
    (
        e.target_ref.as_ref().and_then(|r| r.uid.clone()),
        e.addresses.clone(),
    )
}

/// A pod's ports for a Service, or `None` when it serves none of them.
fn ports_of(svc: &Service, pod: &Pod) -> Option<PortKey> {
    let spec = svc.spec.clone().unwrap_or_default();
    let svc_ports = spec.ports.unwrap_or_default();
    if svc_ports.is_empty() && spec.cluster_ip.as_deref() == Some("None") {
        return Some(Vec::new());
    }
    let mut out: PortKey = svc_ports
        .iter()
        .filter_map(|sp| {
            let n = target_port(sp, pod)?;
            Some((
                sp.name.clone().unwrap_or_default(),
                n,
                sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                sp.app_protocol.clone(),
            ))
        })
        .collect();
    out.sort();
    (!out.is_empty()).then_some(out)
}

fn port_key(s: &EndpointSlice) -> PortKey {
    let mut out: PortKey = s
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    out.sort();
    out
}

fn endpoint_ports(key: &PortKey) -> Option<Vec<EndpointPort>> {
    Some(
        key.iter()
            .map(|(name, port, protocol, app)| EndpointPort {
                name: Some(name.clone()),
                port: Some(*port),
                protocol: Some(protocol.clone()),
                app_protocol: app.clone(),
            })
            .collect(),
    )
}

/// The desired endpoints of a Service, by port set, each sorted by address.
pub fn desired(
    svc: &Service,
    pods: &[Arc<Pod>],
    zone_of: impl Fn(&str) -> Option<String>,
) -> BTreeMap<PortKey, Vec<Endpoint>> {
    let mut out: BTreeMap<PortKey, Vec<Endpoint>> = BTreeMap::new();
    for pod in pods.iter().filter(|p| in_slices(p)) {
        let Some(ports) = ports_of(svc, pod) else {
            continue;
        };
        let zone = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(&zone_of);
        out.entry(ports).or_default().push(endpoint(pod, svc, zone));
    }
    for eps in out.values_mut() {
        eps.sort_by_key(endpoint_key);
    }
    out
}

/// The labels a Service's slices carry (kube's `setEndpointSliceLabels`).
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = svc
        .metadata
        .labels_map()
        .iter()
        .filter(|(k, _)| ![SERVICE_NAME, MANAGED_BY, HEADLESS].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let ip = svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    if ip.is_none_or(|ip| ip.is_empty() || ip == "None") {
        l.insert(HEADLESS.into(), String::new());
    }
    l.insert(SERVICE_NAME.into(), svc.metadata.name_str().to_string());
    l.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
    l
}

/// What a sync changes: slices to update (name known) or create, and names to delete.
#[derive(Default, Debug)]
pub struct Plan {
    /// Existing slices with new content.
    pub update: Vec<EndpointSlice>,
    /// New slices (no name yet).
    pub create: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<String>,
}

/// Plans the slices of a Service from the existing ones (kube's reconciler:
/// endpoints stay in their slice while wanted, slices left empty go, new
/// endpoints fill the slice closest to full, then new slices; with no
/// endpoint at all one placeholder slice remains).
pub fn plan(
    svc: &Service,
    existing: &[Arc<EndpointSlice>],
    mut want: BTreeMap<PortKey, Vec<Endpoint>>,
    max: usize,
) -> Plan {
    let mut plan = Plan::default();
    let labels = slice_labels(svc);
    let fresh = |ports: &PortKey, endpoints: Vec<Endpoint>| EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.metadata.name_str())),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![controller_ref(svc)]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ports: (!ports.is_empty()).then(|| endpoint_ports(ports)).flatten(),
    };
    if want.is_empty() {
        // the placeholder: one slice without endpoints or ports
        let mut kept = false;
        for s in existing {
            if !kept && s.endpoints.is_empty() && s.ports.is_none() {
                kept = true;
                if s.metadata.labels_map() != &labels {
                    let mut s = (**s).clone();
                    s.metadata.labels = Some(labels.clone());
                    plan.update.push(s);
                }
            } else {
                plan.delete.push(s.metadata.name_str().to_string());
            }
        }
        if !kept {
            plan.create.push(fresh(&Vec::new(), Vec::new()));
        }
        return plan;
    }
    let mut by_ports: BTreeMap<PortKey, Vec<EndpointSlice>> = BTreeMap::new();
    for s in existing {
        if want.contains_key(&port_key(s)) && !s.endpoints.is_empty() {
            by_ports.entry(port_key(s)).or_default().push((**s).clone());
        } else {
            plan.delete.push(s.metadata.name_str().to_string());
        }
    }
    for (ports, endpoints) in &mut want {
        let mut wanted: HashMap<_, Endpoint> =
            endpoints.drain(..).map(|e| (endpoint_key(&e), e)).collect();
        let mut slices = by_ports.remove(ports).unwrap_or_default();
        let mut changed: HashSet<usize> = HashSet::new();
        // 1. endpoints stay where they are, updated; the unwanted go
        for (i, s) in slices.iter_mut().enumerate() {
            let kept: Vec<Endpoint> = s
                .endpoints
                .iter()
                .filter_map(|e| wanted.remove(&endpoint_key(e)))
                .collect();
            if kept != s.endpoints || s.metadata.labels_map() != &labels {
                s.endpoints = kept;
                s.metadata.labels = Some(labels.clone());
                changed.insert(i);
            }
        }
        // 2. the new ones fill the slices closest to full, then new slices
        let mut rest: Vec<Endpoint> = wanted.into_values().collect();
        rest.sort_by_key(endpoint_key);
        let mut rest = rest.into_iter().peekable();
        while rest.peek().is_some() {
            let target = slices
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.endpoints.is_empty() && s.endpoints.len() < max)
                .max_by_key(|(_, s)| s.endpoints.len())
                .map(|(i, _)| i);
            let Some(i) = target else { break };
            let room = max - slices[i].endpoints.len();
            slices[i].endpoints.extend(rest.by_ref().take(room));
            changed.insert(i);
        }
        let rest: Vec<Endpoint> = rest.collect();
        for chunk in rest.chunks(max) {
            plan.create.push(fresh(ports, chunk.to_vec()));
        }
        for (i, mut s) in slices.into_iter().enumerate() {
            if s.endpoints.is_empty() {
                plan.delete.push(s.metadata.name_str().to_string());
            } else if changed.contains(&i) {
                s.endpoints.sort_by_key(endpoint_key);
                plan.update.push(s);
            }
        }
    }
    plan
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let ns = key.namespace.clone().unwrap_or_default();
    // a deleted Service's slices go with it (the garbage collector)
    let Some(svc) = state.services.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let Some(selector) = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
    else {
        // services without a selector get no slices from this controller
        return Ok(Action::AwaitChange);
    };
    if state.stale(&key) {
        return Ok(Action::Requeue(Duration::from_millis(100)));
    }
    let svc_uid = svc.metadata.uid.clone().unwrap_or_default();
    let mut existing = Vec::new();
    let mut foreign = Vec::new();
    for s in state.slices.with_label(SERVICE_NAME, &key.name) {
        let m = &s.metadata;
        if m.namespace_str() != ns
            || m.labels_map().get(MANAGED_BY).map(String::as_str) != Some(CONTROLLER_NAME)
        {
            continue;
        }
        // slices of an earlier Service of the same name go
        if m.owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Service" && o.uid == svc_uid)
        {
            existing.push(s);
        } else {
            foreign.push(m.name_str().to_string());
        }
    }
    let pods = selected_pods(&state.pods, &ns, selector);
    let nodes = state.nodes.clone();
    let want = desired(&svc, &pods, |node| {
        nodes
            .get(&ObjectRef::new(None, node))
            .and_then(|n| n.metadata.labels_map().get(ZONE).cloned())
    });
    let mut plan = plan(&svc, &existing, want, MAX_ENDPOINTS_PER_SLICE);
    plan.delete.extend(foreign);
    let api = state.ctx.client.api::<EndpointSlice>(Some(&ns));
    let wp = WriteParams::default();
    let now = schemas::time::now().text();
    let stamp = |s: &mut EndpointSlice| {
        s.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(TRIGGER_TIME.into(), now.clone());
    };
    for name in &plan.delete {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(()) => state.wrote(&key, name, None),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    for mut s in plan.update {
        stamp(&mut s);
        let name = s.metadata.name_str().to_string();
        match api.replace(&name, &s, &wp).await {
            Ok(done) => state.wrote(&key, &name, Some(&done)),
            // the cache was behind: its event brings this Service back
            Err(e) if e.is_conflict() || e.is_not_found() => {
                return Ok(Action::Requeue(Duration::from_millis(100)));
            }
            Err(e) => return Err(e),
        }
    }
    for mut s in plan.create {
        stamp(&mut s);
        let done = api.create(&s, &wp).await?;
        state.wrote(&key, done.metadata.name_str(), Some(&done));
    }
    Ok(Action::AwaitChange)
}

/// Runs the EndpointSlice controller until `ctx` shuts down.
pub async fn run(ctx: Context) {
    let services = ctx.informers.get::<Service>();
    let slices = ctx.informers.get::<EndpointSlice>();
    let pods = ctx.informers.pods();
    let svc_cache = services.cache();
    let controller = Controller::new("endpointslice", &services)
        .watches(&slices, |s: &EndpointSlice| {
            s.metadata
                .labels_map()
                .get(SERVICE_NAME)
                .map(|n| ObjectRef::new(s.metadata.namespace.as_deref(), n))
                .into_iter()
                .collect()
        })
        .watches(&pods, move |p: &Pod| services_selecting(&svc_cache, p))
        .workers(2);
    let state = Arc::new(State {
        services: services.cache(),
        slices: slices.cache(),
        pods: pods.cache(),
        nodes: ctx.informers.get::<Node>().cache(),
        ctx: ctx.clone(),
        written: Mutex::new(HashMap::new()),
    });
    let metrics = ctx.metrics.clone();
    let stopped = ctx.stopped();
    controller
        .run(move |key| reconcile(state.clone(), key), metrics, stopped)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn svc(spec: Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "d", "uid": "s1",
            "labels": {"team": "a"}}, "spec": spec}),
        )
        .expect("service")
    }

    fn pod(i: usize, ready: bool, extra: Value) -> Arc<Pod> {
        let mut v = json!({"metadata": {"name": format!("p{i}"), "namespace": "d", "uid": format!("u{i}")},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": format!("10.1.{}.{}", i / 250, i % 250),
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            for (k, val) in e {
                m.insert(k, val);
            }
        }
        Arc::new(serde_json::from_value(v).expect("pod"))
    }

    fn zone(_: &str) -> Option<String> {
        Some("z1".into())
    }

    fn named(mut s: EndpointSlice, name: &str) -> Arc<EndpointSlice> {
        s.metadata.name = Some(name.into());
        Arc::new(s)
    }

    #[test]
    fn conditions_ports_and_labels_follow_kube() {
        let s = svc(json!({"selector": {"app": "web"}, "clusterIP": "10.96.0.9",
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "appProtocol": "http"}]}));
        let terminating = pod(
            3,
            true,
            json!({"metadata": {"name": "p3", "namespace": "d", "uid": "u3",
                "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        let done = pod(
            4,
            true,
            json!({"status": {"phase": "Succeeded", "podIP": "10.1.0.4"}}),
        );
        let pods = vec![
            pod(1, true, json!({})),
            pod(2, false, json!({})),
            terminating,
            done,
        ];
        let want = desired(&s, &pods, zone);
        let p = plan(&s, &[], want, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!((p.update.len(), p.delete.len(), p.create.len()), (0, 0, 1));
        let slice = &p.create[0];
        assert_eq!(slice.address_type, "IPv4");
        assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
        let l = slice.metadata.labels_map();
        assert_eq!(l.get(SERVICE_NAME).map(String::as_str), Some("web"));
        assert_eq!(l.get(MANAGED_BY).map(String::as_str), Some(CONTROLLER_NAME));
        assert_eq!(l.get("team").map(String::as_str), Some("a"));
        assert!(!l.contains_key(HEADLESS));
        let owner = &slice.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Service", "s1"));
        let port = &slice.ports.as_ref().expect("ports")[0];
        assert_eq!(
            (
                port.name.as_deref(),
                port.port,
                port.app_protocol.as_deref()
            ),
            (Some("http"), Some(8080), Some("http"))
        );
        let conds: Vec<(String, bool, bool, bool)> = slice
            .endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap_or_default();
                (
                    e.addresses[0].clone(),
                    c.ready == Some(true),
                    c.serving == Some(true),
                    c.terminating == Some(true),
                )
            })
            .collect();
        assert_eq!(
            conds,
            vec![
                ("10.1.0.1".into(), true, true, false),
                ("10.1.0.2".into(), false, false, false),
                ("10.1.0.3".into(), false, true, true),
            ]
        );
        let e = &slice.endpoints[0];
        assert_eq!(
            (e.node_name.as_deref(), e.zone.as_deref()),
            (Some("n1"), Some("z1"))
        );
        let r = e.target_ref.as_ref().expect("targetRef");
        assert_eq!(
            (r.kind.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (Some("Pod"), Some("p1"), Some("u1"))
        );
    }

    #[test]
    fn at_most_a_hundred_per_slice_and_changes_stay_in_place() {
        let s = svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let pods: Vec<Arc<Pod>> = (0..250).map(|i| pod(i, true, json!({}))).collect();
        let first = plan(&s, &[], desired(&s, &pods, zone), MAX_ENDPOINTS_PER_SLICE);
        let sizes: Vec<usize> = first.create.iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let existing: Vec<Arc<EndpointSlice>> = first
            .create
            .into_iter()
            .enumerate()
            .map(|(i, s)| named(s, &format!("web-{i}")))
            .collect();
        // unchanged pods: nothing to write
        let same = plan(
            &s,
            &existing,
            desired(&s, &pods, zone),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert!(same.update.is_empty() && same.create.is_empty() && same.delete.is_empty());
        // one pod gone from the first slice, one new: the new one fills the
        // fullest slice with room (the first), the others are untouched
        let mut changed: Vec<Arc<Pod>> = pods[1..].to_vec();
        changed.push(pod(300, true, json!({})));
        let p = plan(
            &s,
            &existing,
            desired(&s, &changed, zone),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].metadata.name.as_deref(), Some("web-0"));
        assert_eq!(p.update[0].endpoints.len(), 100);
        // no pods: one placeholder slice remains, without ports
        let p = plan(
            &s,
            &existing,
            desired(&s, &[], zone),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!((p.create.len(), p.delete.len()), (1, 3));
        assert!(p.create[0].endpoints.is_empty() && p.create[0].ports.is_none());
    }

    #[test]
    fn headless_and_publish_not_ready() {
        let s = svc(json!({"selector": {"app": "web"}, "clusterIP": "None",
            "publishNotReadyAddresses": true}));
        let sub = pod(
            1,
            false,
            json!({"spec": {"nodeName": "n1", "hostname": "h", "subdomain": "web",
                "containers": [{"name": "c"}]}}),
        );
        let want = desired(&s, &[sub], |_| None);
        let eps = want.get(&Vec::new()).expect("no ports");
        let c = eps[0].conditions.clone().unwrap_or_default();
        assert_eq!((c.ready, c.serving), (Some(true), Some(false)));
        assert_eq!(eps[0].hostname.as_deref(), Some("h"));
        assert_eq!(eps[0].zone, None);
        assert_eq!(slice_labels(&s).get(HEADLESS).map(String::as_str), Some(""));
    }
}
