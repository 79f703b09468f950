//! The built-in service load balancer (like k3s's ServiceLB/klipper-lb, in
//! the node daemon): LoadBalancer Services that are ours (no
//! `spec.loadBalancerClass`, or [`plan::CLASS`]) answer on their `port` on
//! the node's address and 127.0.0.1, and get the node's address in
//! `status.loadBalancer.ingress`; without the iptables proxy (process
//! runtime, `korral up`) NodePorts answer there too. A userspace TCP and UDP
//! proxy relays to the Service's ready endpoints, following changes.
//!
//! [`plan`] decides which host ports to serve (pure), [`backends`] balances
//! over one port's endpoints, [`tcp`] and [`udp`] relay, [`status`] writes
//! the address into the status (pure). The loop here keeps the listeners
//! and statuses in step after every change to Services or Endpoints.

pub mod backends;
pub mod plan;
pub mod status;
pub mod tcp;
pub mod udp;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use reconcilers::runtime::{Client, Patch, WriteParams};

use crate::ingress::watch_all;
use crate::proxy::model::Protocol;
use backends::Backends;
use plan::{Plan, PlanConfig};

/// How the service load balancer runs.
#[derive(Clone, Debug)]
pub struct ServiceLbConfig {
    /// Serve NodePorts in userspace (when no iptables proxy does).
    pub node_ports: bool,
    /// Serve LoadBalancer Services' ports and write their status.
    pub load_balancers: bool,
    /// The addresses served (empty: the node's address and 127.0.0.1).
    pub listen: Vec<IpAddr>,
    /// The identity it runs as (default: the node's, which may not write
    /// Services' status).
    pub kubeconfig: Option<PathBuf>,
    /// The address written into Services' status (default: the node's address).
    pub address: Option<String>,
}

impl Default for ServiceLbConfig {
    fn default() -> Self {
        ServiceLbConfig {
            node_ports: true,
            load_balancers: true,
            listen: Vec::new(),
            kubeconfig: None,
            address: None,
        }
    }
}

/// The addresses to bind for node address `node`: `listen`, or `node` and 127.0.0.1.
pub fn listen_addresses(listen: &[IpAddr], node: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = if listen.is_empty() {
        node.parse::<IpAddr>()
            .into_iter()
            .chain([IpAddr::V4(Ipv4Addr::LOCALHOST)])
            .collect()
    } else {
        listen.to_vec()
    };
    out.sort();
    out.dedup();
    // 0.0.0.0 covers every other address
    if out.iter().any(IpAddr::is_unspecified) {
        out.retain(IpAddr::is_unspecified);
    }
    out
}

/// Starts the loop serving the host ports; `address` is the node's address.
pub fn start(
    client: Client,
    config: ServiceLbConfig,
    address: String,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(run(client, config, address))]
}

/// One served host port: its listeners' tasks and backends.
struct Running {
    service: String,
    backends: Backends,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds `port` on every address and starts relaying.
async fn open(
    addrs: &[IpAddr],
    protocol: Protocol,
    port: u16,
    portal: &plan::Portal,
) -> Result<Running, String> {
    let backends = Backends::new(portal.endpoints.clone());
    let mut running = Running {
        service: portal.service.clone(),
        backends: backends.clone(),
        tasks: Vec::new(),
    };
    for ip in addrs {
        let at = SocketAddr::new(*ip, port);
        let (b, d) = (backends.clone(), portal.display.clone());
        let task = match protocol {
            Protocol::Tcp => {
                let l = tokio::net::TcpListener::bind(at)
                    .await
                    .map_err(|e| format!("{at}/tcp: {e}"))?;
                tokio::spawn(tcp::serve(l, b, d))
            }
            Protocol::Udp => {
                let s = tokio::net::UdpSocket::bind(at)
                    .await
                    .map_err(|e| format!("{at}/udp: {e}"))?;
                tokio::spawn(udp::serve(s, b, d))
            }
            Protocol::Sctp => return Err(format!("{at}: SCTP is not served")),
        };
        running.tasks.push(task);
    }
    Ok(running)
}

async fn run(client: Client, config: ServiceLbConfig, node_address: String) {
    let addrs = listen_addresses(&config.listen, &node_address);
    let address = config.address.clone().unwrap_or(node_address);
    let plan_config = PlanConfig {
        node_ports: config.node_ports,
        load_balancers: config.load_balancers,
    };
    let services = watch_all::<Service>(&client, None);
    let endpoints = watch_all::<Endpoints>(&client, None);
    let (mut s_rx, mut e_rx) = (services.subscribe(), endpoints.subscribe());
    services.cache().wait_synced().await;
    endpoints.cache().wait_synced().await;
    tracing::info!(addresses = ?addrs, node_ports = config.node_ports, "service load balancer running");
    let wp = WriteParams {
        field_manager: Some("korral-service-lb".into()),
        ..Default::default()
    };
    let mut running: BTreeMap<(Protocol, u16), Running> = BTreeMap::new();
    let mut warned = BTreeSet::new();
    loop {
        let all = services.cache().all();
        let plan = plan::build(&all, &endpoints.cache().all(), plan_config);
        let mut now = BTreeSet::new();
        now.extend(plan.warnings.iter().cloned());
        // listeners no longer wanted (or now another Service's) close
        running.retain(|k, r| plan.portals.get(k).is_some_and(|p| p.service == r.service));
        for (key, portal) in &plan.portals {
            match running.get(key) {
                Some(r) => r.backends.set(portal.endpoints.clone()),
                None => match open(&addrs, key.0, key.1, portal).await {
                    Ok(r) => {
                        tracing::info!(service = %portal.display, port = key.1, protocol = key.0.iptables(), endpoints = portal.endpoints.len(), "service lb: serving");
                        running.insert(*key, r);
                    }
                    Err(e) => {
                        now.insert(format!("{}: cannot listen on {e}", portal.display));
                    }
                },
            }
        }
        now.extend(write_statuses(&client, &wp, &all, &plan, &running, &address).await);
        // each problem is logged once, when it appears
        for w in now.difference(&warned) {
            tracing::warn!("service lb: {w}");
        }
        warned = now;
        // a periodic pass retries ports that were taken and failed status writes
        tokio::select! {
            _ = s_rx.recv() => {}
            _ = e_rx.recv() => {}
            _ = tokio::time::sleep(crate::proxy::RETRY_PASS) => {}
        }
        crate::proxy::drain(&mut s_rx);
        crate::proxy::drain(&mut e_rx);
    }
}

/// Which of `plan`'s load balancers this node serves whole (every port its own and open).
fn served(plan: &Plan, running: &BTreeMap<(Protocol, u16), Running>) -> BTreeSet<String> {
    plan.load_balancers
        .iter()
        .filter(|(svc, ports)| {
            !ports.is_empty()
                && ports
                    .iter()
                    .all(|k| running.get(k).is_some_and(|r| &r.service == *svc))
        })
        .map(|(svc, _)| svc.clone())
        .collect()
}

/// Adds the node's address to the status of the load balancers it serves
/// and removes it from the other Services whose status is ours; returns
/// the writes that failed.
async fn write_statuses(
    client: &Client,
    wp: &WriteParams,
    all: &[std::sync::Arc<Service>],
    plan: &Plan,
    running: &BTreeMap<(Protocol, u16), Running>,
    address: &str,
) -> Vec<String> {
    let served = served(plan, running);
    let mut failed = Vec::new();
    for svc in all {
        let (ns, name) = (
            svc.metadata.namespace.as_deref().unwrap_or_default(),
            svc.metadata.name.as_deref().unwrap_or_default(),
        );
        let key = format!("{ns}/{name}");
        let present = served.contains(&key);
        let ours = present
            || plan.load_balancers.contains_key(&key)
            || plan.not_load_balancers.contains(&key);
        if !ours {
            continue;
        }
        let Some(patch) = status::patch(svc, address, present) else {
            continue;
        };
        if let Err(e) = client
            .api::<Service>(Some(ns))
            .patch_status(name, &Patch::Merge(patch), wp)
            .await
        {
            failed.push(format!("{key}: cannot write the status: {e}"));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_default_to_node_and_loopback() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let node: IpAddr = "10.0.0.4".parse().expect("ip");
        assert_eq!(listen_addresses(&[], "10.0.0.4"), vec![node, lo]);
        assert_eq!(listen_addresses(&[], "127.0.0.1"), vec![lo]);
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert_eq!(listen_addresses(&[lo, any], "10.0.0.4"), vec![any]);
    }
}
