//! Chain names: `KORRAL-SVC-` / `KORRAL-SEP-` plus 16 base32 characters of
//! a SHA-256 of the service port (and endpoint), as kube-proxy names its
//! chains — stable across restarts and within iptables' 28-character limit.

use crate::proxy::model::{Endpoint, ServicePort};

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn hash16(input: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
    let bytes = digest.as_ref();
    // 16 base32 characters = 80 bits = the first 10 bytes
    let mut out = String::with_capacity(16);
    let mut buffer: u64 = 0;
    let mut bits = 0;
    for b in bytes.iter().take(10) {
        buffer = (buffer << 8) | u64::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            // masked to 5 bits: always a valid index
            let i = usize::try_from((buffer >> bits) & 31).unwrap_or(0);
            out.push(char::from(BASE32[i]));
        }
    }
    out
}

fn port_key(sp: &ServicePort) -> String {
    format!(
        "{}/{}:{}/{}",
        sp.namespace,
        sp.name,
        sp.port_name,
        sp.protocol.iptables()
    )
}

/// The chain that load-balances a service port over its endpoints.
pub fn service_chain(sp: &ServicePort) -> String {
    format!("KORRAL-SVC-{}", hash16(&port_key(sp)))
}

/// The chain that DNATs to one endpoint of a service port.
pub fn endpoint_chain(sp: &ServicePort, ep: &Endpoint) -> String {
    format!(
        "KORRAL-SEP-{}",
        hash16(&format!("{}/{}:{}", port_key(sp), ep.ip, ep.port))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::model::Protocol;
    use std::net::Ipv4Addr;

    #[test]
    fn names_are_stable_distinct_and_short_enough() {
        let sp = ServicePort {
            namespace: "default".into(),
            name: "web".into(),
            port_name: "http".into(),
            protocol: Protocol::Tcp,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 1),
            port: 80,
            node_port: None,
            external_ips: vec![],
            affinity_seconds: None,
            endpoints: vec![],
        };
        let svc = service_chain(&sp);
        assert_eq!(svc, service_chain(&sp.clone()));
        assert!(svc.len() <= 28, "{svc}");
        assert!(svc[11..].chars().all(|c| BASE32.contains(&(c as u8))));
        let mut udp = sp.clone();
        udp.protocol = Protocol::Udp;
        assert_ne!(svc, service_chain(&udp));
        let a = Endpoint {
            ip: Ipv4Addr::new(10, 244, 0, 2),
            port: 80,
        };
        let b = Endpoint {
            ip: Ipv4Addr::new(10, 244, 0, 3),
            port: 80,
        };
        assert_ne!(endpoint_chain(&sp, &a), endpoint_chain(&sp, &b));
        assert_eq!(endpoint_chain(&sp, &a).len(), 27);
        // the cluster IP is not part of the name: a changed IP rewrites rules, not chains
        let mut moved = sp.clone();
        moved.cluster_ip = Ipv4Addr::new(10, 96, 0, 2);
        assert_eq!(svc, service_chain(&moved));
    }
}
