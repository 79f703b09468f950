//! What the proxy programs, derived from Services and Endpoints: one
//! [`ServicePort`] per service port with a cluster IP, carrying the ready
//! endpoints behind it (not-ready addresses never get rules).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use schemas::MetaExt;

/// A transport protocol iptables matches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses Kubernetes' protocol names (`TCP` when unset).
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The name iptables uses (`tcp`, `udp`, `sctp`).
    pub fn iptables(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One ready endpoint of a service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The pod's (or backend's) IP.
    pub ip: Ipv4Addr,
    /// The port on it.
    pub port: u16,
}

/// One port of one service, as the proxy programs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// The service's namespace.
    pub namespace: String,
    /// The service's name.
    pub name: String,
    /// The port's name ("" for an unnamed port).
    pub port_name: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The cluster IP.
    pub cluster_ip: Ipv4Addr,
    /// The service port.
    pub port: u16,
    /// The node port (NodePort and LoadBalancer services).
    pub node_port: Option<u16>,
    /// Extra IPs the service answers on (`spec.externalIPs`).
    pub external_ips: Vec<Ipv4Addr>,
    /// `sessionAffinity: ClientIP` with this timeout in seconds.
    pub affinity_seconds: Option<u32>,
    /// The ready endpoints, sorted and without duplicates.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `namespace/name:port` (`namespace/name` for an unnamed port), as in kube-proxy's comments.
    pub fn display_name(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }
}

/// An IPv4 network, `a.b.c.d/n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (host bits cleared).
    pub addr: Ipv4Addr,
    /// The prefix length.
    pub bits: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, clearing host bits.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, bits) = s.trim().split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let bits: u8 = bits.parse().ok().filter(|b| *b <= 32)?;
        let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
        Some(Cidr {
            addr: Ipv4Addr::from(u32::from(ip) & mask),
            bits,
        })
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.addr)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        Cidr::parse(s).ok_or_else(|| format!("{s:?} is not an IPv4 CIDR (a.b.c.d/n)"))
    }
}

/// Kubernetes' default ClientIP affinity timeout (3 hours).
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;

fn port_u16(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p > 0)
}

/// The service ports of `services`, with the ready endpoints of the
/// same-named `endpoints`, sorted by namespace, name and port name.
/// Headless services, ExternalName services and ports that cannot be
/// programmed (IPv6, unknown protocols) are left out.
pub fn service_ports(services: &[&Service], endpoints: &[&Endpoints]) -> Vec<ServicePort> {
    let eps: BTreeMap<(&str, &str), &Endpoints> = endpoints
        .iter()
        .map(|e| ((e.metadata.namespace_str(), e.metadata.name_str()), *e))
        .collect();
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(cluster_ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_SECONDS)
        });
        let external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let (ns, name) = (svc.metadata.namespace_str(), svc.metadata.name_str());
        let ep = eps.get(&(ns, name));
        for port in spec.ports.iter().flatten() {
            let (Some(protocol), Some(number)) = (
                Protocol::parse(port.protocol.as_deref()),
                port_u16(port.port),
            ) else {
                continue;
            };
            let port_name = port.name.clone().unwrap_or_default();
            let mut endpoints: Vec<Endpoint> = ep
                .and_then(|e| e.subsets.as_ref())
                .into_iter()
                .flatten()
                .flat_map(|subset| {
                    let target = subset.ports.iter().flatten().find(|p| {
                        p.name.as_deref().unwrap_or("") == port_name
                            && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
                    });
                    let target = target.and_then(|p| port_u16(p.port));
                    subset.addresses.iter().flatten().filter_map(move |a| {
                        Some(Endpoint {
                            ip: a.ip.parse().ok()?,
                            port: target?,
                        })
                    })
                })
                .collect();
            endpoints.sort();
            endpoints.dedup();
            out.push(ServicePort {
                namespace: ns.to_string(),
                name: name.to_string(),
                port_name,
                protocol,
                cluster_ip,
                port: number,
                node_port: port.node_port.and_then(port_u16),
                external_ips: external_ips.clone(),
                affinity_seconds,
                endpoints,
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.namespace, &a.name, &a.port_name, a.protocol).cmp(&(
            &b.namespace,
            &b.name,
            &b.port_name,
            b.protocol,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).expect("test object")
    }

    fn svc(json: &str) -> Service {
        from(json)
    }

    fn eps(json: &str) -> Endpoints {
        from(json)
    }

    #[test]
    fn ready_endpoints_by_port_name_and_protocol() {
        let s = svc(r#"{"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.5", "type": "NodePort", "sessionAffinity": "ClientIP",
                         "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                                   {"name": "dns", "port": 53, "protocol": "UDP"}]}}"#);
        let e = eps(r#"{"metadata": {"name": "web", "namespace": "default"},
                "subsets": [{"addresses": [{"ip": "10.244.1.3"}, {"ip": "10.244.0.2"}],
                             "notReadyAddresses": [{"ip": "10.244.0.9"}],
                             "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]}]}"#);
        let ports = service_ports(&[&s], &[&e]);
        assert_eq!(ports.len(), 2);
        let dns = &ports[0];
        assert_eq!(
            (dns.port_name.as_str(), dns.protocol, dns.port),
            ("dns", Protocol::Udp, 53)
        );
        assert_eq!(
            dns.endpoints.iter().map(|e| e.port).collect::<Vec<_>>(),
            vec![5353, 5353]
        );
        let http = &ports[1];
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.affinity_seconds, Some(DEFAULT_AFFINITY_SECONDS));
        assert_eq!(
            http.endpoints,
            vec![
                Endpoint {
                    ip: Ipv4Addr::new(10, 244, 0, 2),
                    port: 8080
                },
                Endpoint {
                    ip: Ipv4Addr::new(10, 244, 1, 3),
                    port: 8080
                }
            ],
            "sorted, ready only"
        );
        assert_eq!(http.display_name(), "default/web:http");
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let c = Cidr::parse("10.244.7.9/16").expect("cidr");
        assert_eq!(c.to_string(), "10.244.0.0/16");
        assert!(c.contains(Ipv4Addr::new(10, 244, 200, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 245, 0, 1)));
        assert_eq!(
            Cidr::parse("10.0.0.1/32").expect("host").to_string(),
            "10.0.0.1/32"
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none() && Cidr::parse("x/8").is_none());
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("all")
                .contains(Ipv4Addr::new(1, 2, 3, 4))
        );
    }

    #[test]
    fn headless_and_external_name_services_get_nothing() {
        let headless = svc(
            r#"{"metadata": {"name": "h", "namespace": "a"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}"#,
        );
        let ext = svc(
            r#"{"metadata": {"name": "x", "namespace": "a"}, "spec": {"type": "ExternalName", "externalName": "example.org"}}"#,
        );
        let none = svc(
            r#"{"metadata": {"name": "n", "namespace": "a"}, "spec": {"clusterIP": "10.96.0.7", "ports": [{"port": 80}]}}"#,
        );
        let ports = service_ports(&[&headless, &ext, &none], &[]);
        assert_eq!(ports.len(), 1);
        assert!(ports[0].endpoints.is_empty());
        assert_eq!(ports[0].display_name(), "a/n");
    }
}
