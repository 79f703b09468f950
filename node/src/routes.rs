//! The pod network across nodes: a route to every other node's pod CIDR
//! via that node's InternalIP (read from the Node objects), so pods on
//! different nodes reach each other without NAT — flannel's host-gw mode.
//! Routes carry their own protocol number, so the daemon finds (and
//! removes) exactly the routes it made.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use reconcilers::runtime::watcher::Config as WatchConfig;
use reconcilers::runtime::{Client, Informer};
use schemas::MetaExt;

use crate::proxy::model::Cidr;

/// The route protocol korral's routes are tagged with (`ip route … proto 75`).
pub const ROUTE_PROTO: &str = "75";

/// The routes wanted on node `me`: each other node's pod CIDR via its InternalIP.
pub fn desired(nodes: &[&Node], me: &str) -> BTreeMap<String, Ipv4Addr> {
    let mut out = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.metadata.name_str() != me) {
        let cidr = n
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(Cidr::parse);
        let ip = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .and_then(|a| a.address.parse::<Ipv4Addr>().ok());
        if let (Some(cidr), Some(ip)) = (cidr, ip) {
            out.insert(cidr.to_string(), ip);
        }
    }
    out
}

/// Parses `ip -4 route show proto 75`: destination → gateway.
pub fn parse_routes(text: &str) -> BTreeMap<String, Ipv4Addr> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let dest = f.next()?.to_string();
            let mut via = None;
            while let Some(w) = f.next() {
                if w == "via" {
                    via = f.next().and_then(|v| v.parse().ok());
                }
            }
            Some((dest, via?))
        })
        .collect()
}

async fn ip(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("ip {}: {e} (install iproute2)", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Makes the node's korral routes equal `want`.
pub async fn apply(want: &BTreeMap<String, Ipv4Addr>) -> Result<(), String> {
    let have = parse_routes(&ip(&["-4", "route", "show", "proto", ROUTE_PROTO]).await?);
    for (dest, via) in want {
        if have.get(dest) != Some(via) {
            let via = via.to_string();
            ip(&["route", "replace", dest, "via", &via, "proto", ROUTE_PROTO]).await?;
            tracing::info!(%dest, %via, "route to a node's pod CIDR");
        }
    }
    for dest in have.keys().filter(|d| !want.contains_key(*d)) {
        ip(&["route", "del", dest, "proto", ROUTE_PROTO]).await?;
        tracing::info!(%dest, "removed the route to a pod CIDR no node has now");
    }
    Ok(())
}

/// Removes every korral route (`korral node --cleanup`).
pub async fn cleanup() -> Result<(), String> {
    ip(&["-4", "route", "flush", "proto", ROUTE_PROTO])
        .await
        .map(|_| ())
}

/// Keeps the routes in step with the Node objects until the task is dropped.
pub async fn run(client: Client, me: String, resync: Duration) {
    let nodes = Informer::start(client.api::<Node>(None), WatchConfig::default(), Vec::new());
    let mut changes = nodes.subscribe();
    nodes.cache().wait_synced().await;
    loop {
        let all = nodes.cache().all();
        let refs: Vec<&Node> = all.iter().map(AsRef::as_ref).collect();
        if let Err(e) = apply(&desired(&refs, &me)).await {
            tracing::warn!(error = %e, "cannot install the routes to other nodes' pods");
        }
        tokio::select! {
            _ = changes.recv() => {}
            _ = tokio::time::sleep(resync) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        let mut v = serde_json::json!({"metadata": {"name": name}, "spec": {}, "status": {}});
        if let Some(c) = cidr {
            v["spec"]["podCIDR"] = c.into();
        }
        if let Some(ip) = ip {
            v["status"]["addresses"] = serde_json::json!([{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]);
        }
        serde_json::from_value(v).expect("node")
    }

    #[test]
    fn other_nodes_with_a_cidr_and_an_address_get_routes() {
        let nodes = [
            node("a", Some("10.244.0.0/24"), Some("10.250.0.2")),
            node("b", Some("10.244.1.0/24"), Some("10.250.0.3")),
            node("c", None, Some("10.250.0.4")),
            node("d", Some("10.244.3.0/24"), None),
        ];
        let refs: Vec<&Node> = nodes.iter().collect();
        let want = desired(&refs, "a");
        assert_eq!(want.len(), 1);
        assert_eq!(want["10.244.1.0/24"], Ipv4Addr::new(10, 250, 0, 3));
    }

    #[test]
    fn route_listings_parse() {
        let text = "10.244.1.0/24 via 10.250.0.3 dev eth0 \n10.244.2.0/24 via 10.250.0.4 dev eth0 onlink \nbroken\n";
        let r = parse_routes(text);
        assert_eq!(r.len(), 2);
        assert_eq!(r["10.244.2.0/24"], Ipv4Addr::new(10, 250, 0, 4));
    }
}
