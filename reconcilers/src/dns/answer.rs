//! Answering one DNS query from the cluster's Services and Endpoints, as
//! CoreDNS's kubernetes plugin does (pure: no I/O):
//!
//! - `<svc>.<ns>.svc.<domain>` A: the cluster IP, or the ready addresses of
//!   a headless service; CNAME for an ExternalName service;
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV for named ports (one per
//!   ready endpoint of a headless service), with the targets' A records as
//!   additionals;
//! - `<hostname>.<svc>.<ns>.svc.<domain>` A for a headless service's endpoint
//!   (its `hostname`, or its IP with dashes);
//! - `<a-b-c-d>.<ns>.pod.<domain>` A (the plugin's `pods insecure`);
//! - NXDOMAIN (with the zone's SOA) for other names in the domain, NODATA
//!   for other types of names that exist; names outside the domain are
//!   forwarded when an upstream is set, else REFUSED.

use std::net::Ipv4Addr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use k8s_openapi::api::core::v1::{Endpoints, Service};

/// Where the answers come from (the informer caches, or a map in tests).
pub trait Directory: Send + Sync {
    /// The Service `ns/name`.
    fn service(&self, ns: &str, name: &str) -> Option<Arc<Service>>;
    /// The Endpoints `ns/name`.
    fn endpoints(&self, ns: &str, name: &str) -> Option<Arc<Endpoints>>;
}

/// How to answer.
#[derive(Clone, Debug)]
pub struct AnswerConfig {
    /// The cluster domain, without a trailing dot (`cluster.local`).
    pub domain: String,
    /// TTL of every record (CoreDNS's kubernetes plugin: 5 s).
    pub ttl: u32,
    /// Whether names outside the domain are forwarded (else REFUSED).
    pub forward: bool,
}

/// What to do with a query.
#[derive(Debug)]
pub enum Outcome {
    /// Send this reply.
    Reply(Box<Message>),
    /// Send the query to the upstream server as it is.
    Forward,
}

/// A record before it becomes a hickory record.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rr {
    A(String, Ipv4Addr),
    Srv(String, u16, u16, String),
    Cname(String, String),
}

/// The result of a lookup in the cluster zone.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    code: ResponseCode,
    answers: Vec<Rr>,
    additionals: Vec<Rr>,
}

impl Found {
    fn nx() -> Found {
        Found {
            code: ResponseCode::NXDomain,
            answers: vec![],
            additionals: vec![],
        }
    }

    fn records(answers: Vec<Rr>) -> Found {
        Found {
            code: ResponseCode::NoError,
            answers,
            additionals: vec![],
        }
    }
}

fn ready_addresses(ep: Option<&Endpoints>) -> Vec<(Ipv4Addr, Option<String>)> {
    let mut out: Vec<(Ipv4Addr, Option<String>)> = ep
        .and_then(|e| e.subsets.as_ref())
        .into_iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter_map(|a| Some((a.ip.parse().ok()?, a.hostname.clone())))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Looks `labels` (the name without the domain, most specific first) up.
fn lookup(labels: &[&str], qtype: RecordType, dir: &dyn Directory, domain: &str) -> Found {
    match labels {
        // <a-b-c-d>.<ns>.pod
        [ip, _ns, "pod"] => match ip.replace('-', ".").parse::<Ipv4Addr>() {
            Ok(addr) => {
                let name = labels.join(".") + "." + domain;
                Found::records(want(qtype, RecordType::A, vec![Rr::A(name, addr)]))
            }
            Err(_) => Found::nx(),
        },
        // _port._proto.<svc>.<ns>.svc
        [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
            srv(&port[1..], &proto[1..], svc, ns, qtype, dir, domain)
        }
        // <svc>.<ns>.svc
        [svc, ns, "svc"] => {
            let Some(service) = dir.service(ns, svc) else {
                return Found::nx();
            };
            let name = format!("{svc}.{ns}.svc.{domain}");
            let spec = service.spec.clone().unwrap_or_default();
            if spec.type_.as_deref() == Some("ExternalName") {
                let target = spec.external_name.unwrap_or_default();
                let target = target.trim_end_matches('.').to_string();
                return Found::records(vec![Rr::Cname(name, target)]);
            }
            let records = if is_headless(&service) {
                ready_addresses(dir.endpoints(ns, svc).as_deref())
                    .into_iter()
                    .map(|(ip, _)| Rr::A(name.clone(), ip))
                    .collect()
            } else {
                spec.cluster_ip
                    .and_then(|ip| ip.parse().ok())
                    .map(|ip| vec![Rr::A(name, ip)])
                    .unwrap_or_default()
            };
            Found::records(want(qtype, RecordType::A, records))
        }
        // <endpoint>.<svc>.<ns>.svc
        [host, svc, ns, "svc"] => {
            let Some(service) = dir.service(ns, svc).filter(|s| is_headless(s)) else {
                return Found::nx();
            };
            let name = format!("{host}.{svc}.{ns}.svc.{domain}");
            let hits: Vec<Rr> = ready_addresses(dir.endpoints(ns, svc).as_deref())
                .into_iter()
                .filter(|(ip, h)| h.as_deref() == Some(*host) || dashed(*ip) == *host)
                .map(|(ip, _)| Rr::A(name.clone(), ip))
                .collect();
            drop(service);
            if hits.is_empty() {
                return Found::nx();
            }
            Found::records(want(qtype, RecordType::A, hits))
        }
        // the zone itself and the svc/pod subzones exist, empty
        [] | ["svc"] | ["pod"] | [_, "svc"] | [_, "pod"] => Found::records(vec![]),
        _ => Found::nx(),
    }
}

/// Keeps the records when the query asks for their type (or ANY).
fn want(qtype: RecordType, have: RecordType, records: Vec<Rr>) -> Vec<Rr> {
    if qtype == have || qtype == RecordType::ANY {
        records
    } else {
        vec![]
    }
}

fn srv(
    port: &str,
    proto: &str,
    svc: &str,
    ns: &str,
    qtype: RecordType,
    dir: &dyn Directory,
    domain: &str,
) -> Found {
    let Some(service) = dir.service(ns, svc) else {
        return Found::nx();
    };
    let spec = service.spec.clone().unwrap_or_default();
    let Some(sp) = spec.ports.iter().flatten().find(|p| {
        p.name.as_deref() == Some(port)
            && p.protocol
                .as_deref()
                .unwrap_or("TCP")
                .eq_ignore_ascii_case(proto)
    }) else {
        return Found::nx();
    };
    let name = format!("_{port}._{proto}.{svc}.{ns}.svc.{domain}");
    let svc_name = format!("{svc}.{ns}.svc.{domain}");
    let mut answers = Vec::new();
    let mut additionals = Vec::new();
    if is_headless(&service) {
        let ep = dir.endpoints(ns, svc);
        let ep_port = ep
            .as_ref()
            .and_then(|e| e.subsets.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|s| s.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(port))
            .and_then(|p| u16::try_from(p.port).ok());
        let addrs = ready_addresses(ep.as_deref());
        let weight = u16::try_from((100 / addrs.len().max(1)).max(1)).unwrap_or(1);
        for (ip, host) in addrs {
            let target = format!("{}.{svc_name}", host.unwrap_or_else(|| dashed(ip)));
            if let Some(p) = ep_port {
                answers.push(Rr::Srv(name.clone(), weight, p, target.clone()));
                additionals.push(Rr::A(target, ip));
            }
        }
    } else if let (Some(ip), Ok(p)) = (
        spec.cluster_ip
            .as_deref()
            .and_then(|i| i.parse::<Ipv4Addr>().ok()),
        u16::try_from(sp.port),
    ) {
        answers.push(Rr::Srv(name, 100, p, svc_name.clone()));
        additionals.push(Rr::A(svc_name, ip));
    }
    if qtype != RecordType::SRV && qtype != RecordType::ANY {
        return Found::records(vec![]);
    }
    Found {
        code: ResponseCode::NoError,
        answers,
        additionals,
    }
}

fn name(s: &str) -> Option<Name> {
    Name::from_ascii(format!("{s}.")).ok()
}

fn record(rr: &Rr, ttl: u32) -> Option<Record> {
    Some(match rr {
        Rr::A(n, ip) => Record::from_rdata(name(n)?, ttl, RData::A(A(*ip))),
        Rr::Srv(n, weight, port, target) => Record::from_rdata(
            name(n)?,
            ttl,
            RData::SRV(SRV::new(0, *weight, *port, name(target)?)),
        ),
        Rr::Cname(n, target) => {
            Record::from_rdata(name(n)?, ttl, RData::CNAME(CNAME(name(target)?)))
        }
    })
}

fn soa(domain: &str, ttl: u32) -> Option<Record> {
    let data = SOA::new(
        name(&format!("ns.dns.{domain}"))?,
        name(&format!("hostmaster.{domain}"))?,
        // CoreDNS uses a timestamp; a constant is as good for a zone nobody transfers
        1,
        7200,
        1800,
        86400,
        ttl,
    );
    Some(Record::from_rdata(name(domain)?, ttl, RData::SOA(data)))
}

/// Answers `request`.
pub fn answer(request: &Message, dir: &dyn Directory, config: &AnswerConfig) -> Outcome {
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        reply.set_edns(edns);
    }
    let query = match (request.metadata.op_code, request.queries.as_slice()) {
        (OpCode::Query, [q]) => q.clone(),
        (OpCode::Query, _) => {
            reply.metadata.response_code = ResponseCode::FormErr;
            return Outcome::Reply(Box::new(reply));
        }
        _ => {
            reply.metadata.response_code = ResponseCode::NotImp;
            return Outcome::Reply(Box::new(reply));
        }
    };
    reply.add_query(query.clone());
    let qname = query.name().to_lowercase().to_ascii();
    let qname = qname.trim_end_matches('.');
    let domain = config.domain.as_str();
    let rest = if qname == domain {
        Some("")
    } else {
        qname.strip_suffix(domain).and_then(|r| r.strip_suffix('.'))
    };
    let Some(rest) = rest else {
        if config.forward {
            return Outcome::Forward;
        }
        reply.metadata.response_code = ResponseCode::Refused;
        return Outcome::Reply(Box::new(reply));
    };
    reply.metadata.authoritative = true;
    let labels: Vec<&str> = if rest.is_empty() {
        vec![]
    } else {
        rest.split('.').collect()
    };
    let qtype = query.query_type();
    let found = if labels.is_empty() && qtype == RecordType::SOA {
        Found::records(vec![])
    } else {
        lookup(&labels, qtype, dir, domain)
    };
    reply.metadata.response_code = found.code;
    if labels.is_empty() && qtype == RecordType::SOA {
        reply.add_answers(soa(domain, config.ttl));
    }
    reply.add_answers(found.answers.iter().filter_map(|r| record(r, config.ttl)));
    reply.add_additionals(
        found
            .additionals
            .iter()
            .filter_map(|r| record(r, config.ttl)),
    );
    if reply.answers.is_empty() {
        reply.add_authorities(soa(domain, config.ttl));
    }
    Outcome::Reply(Box::new(reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Map {
        services: HashMap<(String, String), Arc<Service>>,
        endpoints: HashMap<(String, String), Arc<Endpoints>>,
    }

    impl Directory for Map {
        fn service(&self, ns: &str, name: &str) -> Option<Arc<Service>> {
            self.services.get(&(ns.into(), name.into())).cloned()
        }
        fn endpoints(&self, ns: &str, name: &str) -> Option<Arc<Endpoints>> {
            self.endpoints.get(&(ns.into(), name.into())).cloned()
        }
    }

    fn dir() -> Map {
        let mut m = Map::default();
        let svc = |json: serde_json::Value| -> Arc<Service> {
            Arc::new(serde_json::from_value(json).expect("service"))
        };
        m.services.insert(
            ("default".into(), "web".into()),
            svc(
                serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}),
            ),
        );
        m.services.insert(
            ("db".into(), "pg".into()),
            svc(
                serde_json::json!({"metadata": {"name": "pg", "namespace": "db"},
                "spec": {"clusterIP": "None", "ports": [{"name": "sql", "port": 5432}]}}),
            ),
        );
        m.services.insert(
            ("default".into(), "ext".into()),
            svc(
                serde_json::json!({"metadata": {"name": "ext", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "example.org"}}),
            ),
        );
        m.endpoints.insert(
            ("db".into(), "pg".into()),
            Arc::new(
                serde_json::from_value(serde_json::json!({"metadata": {"name": "pg", "namespace": "db"},
                    "subsets": [{"addresses": [{"ip": "10.244.1.5", "hostname": "pg-0"}, {"ip": "10.244.0.7"}],
                                 "notReadyAddresses": [{"ip": "10.244.0.9"}],
                                 "ports": [{"name": "sql", "port": 5432}]}]}))
                .expect("endpoints"),
            ),
        );
        m
    }

    fn config(forward: bool) -> AnswerConfig {
        AnswerConfig {
            domain: "cluster.local".into(),
            ttl: 5,
            forward,
        }
    }

    fn ask(n: &str, t: RecordType) -> Message {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(n).expect("name"), t));
        m.metadata.recursion_desired = true;
        m
    }

    fn reply(n: &str, t: RecordType) -> Message {
        // through the wire format, as a client sees it
        let bytes = ask(n, t).to_vec().expect("encode");
        let req = Message::from_vec(&bytes).expect("decode");
        match answer(&req, &dir(), &config(false)) {
            Outcome::Reply(m) => Message::from_vec(&m.to_vec().expect("encode")).expect("decode"),
            Outcome::Forward => panic!("forwarded"),
        }
    }

    fn texts(records: &[Record]) -> Vec<String> {
        records.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn a_service_resolves_to_its_cluster_ip() {
        let r = reply("web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.metadata.authoritative);
        assert_eq!(
            texts(&r.answers),
            vec!["web.default.svc.cluster.local. 5 IN A 10.96.0.20"]
        );
        let upper = reply("WEB.Default.svc.cluster.local.", RecordType::A);
        assert_eq!(upper.answers.len(), 1, "names are case-insensitive");
    }

    #[test]
    fn a_headless_service_resolves_to_its_ready_pods() {
        let r = reply("pg.db.svc.cluster.local.", RecordType::A);
        assert_eq!(
            texts(&r.answers),
            vec![
                "pg.db.svc.cluster.local. 5 IN A 10.244.0.7",
                "pg.db.svc.cluster.local. 5 IN A 10.244.1.5"
            ]
        );
        let host = reply("pg-0.pg.db.svc.cluster.local.", RecordType::A);
        assert_eq!(
            texts(&host.answers),
            vec!["pg-0.pg.db.svc.cluster.local. 5 IN A 10.244.1.5"]
        );
        let dashed = reply("10-244-0-7.pg.db.svc.cluster.local.", RecordType::A);
        assert_eq!(dashed.answers.len(), 1);
        let not_ready = reply("10-244-0-9.pg.db.svc.cluster.local.", RecordType::A);
        assert_eq!(not_ready.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn srv_records_for_named_ports() {
        let r = reply("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(
            texts(&r.answers),
            vec![
                "_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."
            ]
        );
        assert_eq!(
            texts(&r.additionals),
            vec!["web.default.svc.cluster.local. 5 IN A 10.96.0.20"]
        );
        let h = reply("_sql._tcp.pg.db.svc.cluster.local.", RecordType::SRV);
        assert_eq!(
            texts(&h.answers),
            vec![
                "_sql._tcp.pg.db.svc.cluster.local. 5 IN SRV 0 50 5432 10-244-0-7.pg.db.svc.cluster.local.",
                "_sql._tcp.pg.db.svc.cluster.local. 5 IN SRV 0 50 5432 pg-0.pg.db.svc.cluster.local."
            ]
        );
        let udp = reply("_http._udp.web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(udp.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn missing_names_are_nxdomain_with_the_soa_and_other_types_nodata() {
        let r = reply("nope.default.svc.cluster.local.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities.len(), 1);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        // the search path's first tries are NXDOMAIN, as they must be
        let searched = reply(
            "web.default.svc.cluster.local.default.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(searched.metadata.response_code, ResponseCode::NXDomain);
        let aaaa = reply("web.default.svc.cluster.local.", RecordType::AAAA);
        assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
        assert!(aaaa.answers.is_empty());
        let soa = reply("cluster.local.", RecordType::SOA);
        assert_eq!(soa.answers.len(), 1);
    }

    #[test]
    fn external_names_pods_and_outside_names() {
        let ext = reply("ext.default.svc.cluster.local.", RecordType::A);
        assert_eq!(
            texts(&ext.answers),
            vec!["ext.default.svc.cluster.local. 5 IN CNAME example.org."]
        );
        let pod = reply("10-244-1-5.db.pod.cluster.local.", RecordType::A);
        assert_eq!(
            texts(&pod.answers),
            vec!["10-244-1-5.db.pod.cluster.local. 5 IN A 10.244.1.5"]
        );
        let outside = reply("example.org.", RecordType::A);
        assert_eq!(outside.metadata.response_code, ResponseCode::Refused);
        let fwd = answer(&ask("example.org.", RecordType::A), &dir(), &config(true));
        assert!(matches!(fwd, Outcome::Forward));
    }

    #[test]
    fn a_statefulset_pods_hostname_resolves_through_its_headless_service() {
        use crate::controllers::{endpoints, statefulset};
        let set: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u"},
            "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "nginx"}},
                "template": {"metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"name": "web", "containerPort": 80}]}]}}}
        }))
        .expect("statefulset");
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "nginx", "namespace": "default"},
            "spec": {"clusterIP": "None", "selector": {"app": "nginx"}, "ports": [{"name": "web", "port": 80}]}
        }))
        .expect("service");
        // the controller's pod, as the kubelet reports it running and ready
        let mut pod = statefulset::pods::new_pod(&set, 0, "web-1");
        pod.status = serde_json::from_value(
            serde_json::json!({"phase": "Running", "podIP": "10.244.0.9",
            "conditions": [{"type": "Ready", "status": "True"}]}),
        )
        .ok();
        let (subsets, _) = endpoints::subsets(&svc, &[Arc::new(pod)]);
        let mut m = Map::default();
        m.services
            .insert(("default".into(), "nginx".into()), Arc::new(svc));
        m.endpoints.insert(
            ("default".into(), "nginx".into()),
            Arc::new(Endpoints {
                subsets: Some(subsets),
                ..Default::default()
            }),
        );
        let bytes = ask("web-0.nginx.default.svc.cluster.local.", RecordType::A)
            .to_vec()
            .expect("encode");
        let req = Message::from_vec(&bytes).expect("decode");
        let Outcome::Reply(r) = answer(&req, &m, &config(false)) else {
            panic!("forwarded");
        };
        assert_eq!(
            texts(&r.answers),
            vec!["web-0.nginx.default.svc.cluster.local. 5 IN A 10.244.0.9"]
        );
    }
}
