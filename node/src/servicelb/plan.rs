//! Which host ports the service load balancer serves (pure): NodePorts of
//! every Service, and the `port` of LoadBalancer Services that are ours
//! (no `spec.loadBalancerClass`, or korral's), each with the Service's
//! ready endpoints.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use schemas::MetaExt;

use crate::proxy::model::{self, Protocol};

/// The `spec.loadBalancerClass` korral's service load balancer answers to
/// (Services without a class are ours too, as with k3s's ServiceLB).
pub const CLASS: &str = "korral.dev/service-lb";

/// What to serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanConfig {
    /// Serve NodePorts (off when the iptables proxy does it).
    pub node_ports: bool,
    /// Serve LoadBalancer Services' ports.
    pub load_balancers: bool,
}

/// Why a host port is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A Service's `nodePort`.
    NodePort,
    /// A LoadBalancer Service's `port`.
    LoadBalancer,
}

/// One host port and where its traffic goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Portal {
    /// The transport.
    pub protocol: Protocol,
    /// The host port.
    pub port: u16,
    /// Why it is served.
    pub kind: Kind,
    /// `namespace/name` of the Service.
    pub service: String,
    /// `namespace/name:port` for logs.
    pub display: String,
    /// The ready endpoints, sorted.
    pub endpoints: Vec<SocketAddr>,
}

/// Everything to serve now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Host ports by protocol and number.
    pub portals: BTreeMap<(Protocol, u16), Portal>,
    /// LoadBalancer Services that are ours (`namespace/name`), with the
    /// host ports each needs: their status names this node once all are served.
    pub load_balancers: BTreeMap<String, Vec<(Protocol, u16)>>,
    /// Services whose status is ours to keep (no class, or korral's) but
    /// which are not LoadBalancers (now): this node's address leaves it.
    pub not_load_balancers: Vec<String>,
    /// Ports two Services want: the older Service keeps it.
    pub warnings: Vec<String>,
}

/// Whether a Service's load balancer is korral's to provide (by class).
pub fn is_ours(svc: &Service) -> bool {
    match svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_deref())
    {
        None => true,
        Some(c) => c == CLASS,
    }
}

/// Whether a Service is of type LoadBalancer.
pub fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

fn key(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace_str(),
        svc.metadata.name_str()
    )
}

/// The plan for `services` and their `endpoints` (older Services first
/// when two want one port, as the first pod with a hostPort wins in k3s).
pub fn build(services: &[Arc<Service>], endpoints: &[Arc<Endpoints>], config: PlanConfig) -> Plan {
    let mut services: Vec<&Service> = services.iter().map(AsRef::as_ref).collect();
    services.sort_by(|a, b| {
        let created = |s: &Service| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (created(a), key(a)).cmp(&(created(b), key(b)))
    });
    let eps: Vec<&Endpoints> = endpoints.iter().map(AsRef::as_ref).collect();
    let mut plan = Plan::default();
    for svc in services {
        let lb = is_load_balancer(svc);
        if is_ours(svc) && !lb {
            plan.not_load_balancers.push(key(svc));
        }
        let serve_lb = lb && config.load_balancers && is_ours(svc);
        let mut lb_ports = Vec::new();
        for sp in model::service_ports(&[svc], &eps) {
            if sp.protocol == Protocol::Sctp {
                continue;
            }
            let endpoints: Vec<SocketAddr> = sp
                .endpoints
                .iter()
                .map(|e| SocketAddr::from((e.ip, e.port)))
                .collect();
            let mut wanted = Vec::new();
            if config.node_ports
                && let Some(np) = sp.node_port
            {
                wanted.push((np, Kind::NodePort));
            }
            if serve_lb {
                wanted.push((sp.port, Kind::LoadBalancer));
                lb_ports.push((sp.protocol, sp.port));
            }
            for (port, kind) in wanted {
                let portal = Portal {
                    protocol: sp.protocol,
                    port,
                    kind,
                    service: key(svc),
                    display: format!("{}:{}", key(svc), sp.port),
                    endpoints: endpoints.clone(),
                };
                match plan.portals.get(&(sp.protocol, port)) {
                    Some(held) => plan.warnings.push(format!(
                        "{} port {port}/{} is taken by {}",
                        portal.display,
                        sp.protocol.iptables(),
                        held.display
                    )),
                    None => {
                        plan.portals.insert((sp.protocol, port), portal);
                    }
                }
            }
        }
        if serve_lb {
            plan.load_balancers.insert(key(svc), lb_ports);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(json).expect("service"))
    }

    fn eps(json: serde_json::Value) -> Arc<Endpoints> {
        Arc::new(serde_json::from_value(json).expect("endpoints"))
    }

    const ALL: PlanConfig = PlanConfig {
        node_ports: true,
        load_balancers: true,
    };

    fn web() -> (Arc<Service>, Arc<Endpoints>) {
        (
            svc(serde_json::json!({
                "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.9",
                         "ports": [{"name": "http", "port": 8000, "nodePort": 30080},
                                   {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]}})),
            eps(serde_json::json!({
                "metadata": {"name": "web", "namespace": "default"},
                "subsets": [{"addresses": [{"ip": "127.0.1.2"}, {"ip": "127.0.1.1"}],
                             "notReadyAddresses": [{"ip": "127.0.1.3"}],
                             "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]}]})),
        )
    }

    #[test]
    fn node_ports_and_load_balancer_ports_with_ready_endpoints() {
        let (s, e) = web();
        let plan = build(&[s], &[e], ALL);
        let keys: Vec<_> = plan.portals.keys().copied().collect();
        assert_eq!(
            keys,
            vec![
                (Protocol::Tcp, 8000),
                (Protocol::Tcp, 30080),
                (Protocol::Udp, 53),
                (Protocol::Udp, 30053)
            ]
        );
        let http = &plan.portals[&(Protocol::Tcp, 8000)];
        assert_eq!(http.kind, Kind::LoadBalancer);
        assert_eq!(
            http.endpoints,
            vec![
                "127.0.1.1:8080".parse().expect("addr"),
                "127.0.1.2:8080".parse().expect("addr")
            ],
            "ready addresses only"
        );
        assert_eq!(plan.portals[&(Protocol::Tcp, 30080)].kind, Kind::NodePort);
        assert_eq!(
            plan.load_balancers["default/web"],
            vec![(Protocol::Udp, 53), (Protocol::Tcp, 8000)],
            "in port name order"
        );
    }

    #[test]
    fn classes_and_modes() {
        let (s, e) = web();
        let mut other: Service = (*s).clone();
        other.spec.as_mut().expect("spec").load_balancer_class = Some("example.com/lb".into());
        let plan = build(&[Arc::new(other.clone())], std::slice::from_ref(&e), ALL);
        assert!(plan.load_balancers.is_empty(), "another class's Service");
        assert_eq!(
            plan.portals.len(),
            2,
            "its node ports are still served (kube-proxy's job)"
        );
        other.spec.as_mut().expect("spec").load_balancer_class = Some(CLASS.into());
        assert_eq!(
            build(&[Arc::new(other)], std::slice::from_ref(&e), ALL)
                .load_balancers
                .len(),
            1
        );
        let lb_only = PlanConfig {
            node_ports: false,
            load_balancers: true,
        };
        let plan = build(std::slice::from_ref(&s), std::slice::from_ref(&e), lb_only);
        assert!(plan.portals.values().all(|p| p.kind == Kind::LoadBalancer));
        // without allocated node ports (allocateLoadBalancerNodePorts: false) only the port
        let mut no_np: Service = (*s).clone();
        for p in no_np
            .spec
            .as_mut()
            .expect("spec")
            .ports
            .iter_mut()
            .flatten()
        {
            p.node_port = None;
        }
        let plan = build(&[Arc::new(no_np)], &[e], ALL);
        assert_eq!(plan.portals.len(), 2);
    }

    #[test]
    fn older_service_keeps_a_contested_port_and_non_lb_services_are_listed() {
        let (s, e) = web();
        let younger = svc(serde_json::json!({
            "metadata": {"name": "copy", "namespace": "default", "creationTimestamp": "2026-02-01T00:00:00Z"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "ports": [{"port": 8000}]}}));
        let plain = svc(serde_json::json!({
            "metadata": {"name": "plain", "namespace": "default"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.11", "ports": [{"port": 80}]}}));
        let plan = build(&[younger, plain, s], &[e], ALL);
        assert_eq!(plan.portals[&(Protocol::Tcp, 8000)].service, "default/web");
        assert_eq!(
            plan.warnings,
            vec!["default/copy:8000 port 8000/tcp is taken by default/web:8000"]
        );
        assert_eq!(plan.not_load_balancers, vec!["default/plain"]);
    }
}
