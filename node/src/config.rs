//! The node daemon's settings: identity, data directory, labels and taints,
//! networking (service proxy, service load balancer, routes, cluster DNS), and every timing
//! (heartbeat, status, backoff, sync) so tests can run fast.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;

/// How often things happen. Defaults are Kubernetes' (kubelet's) defaults.
#[derive(Clone, Debug)]
pub struct Timings {
    /// Lease renewal period (kubelet: 10 s).
    pub heartbeat: Duration,
    /// `leaseDurationSeconds` written into the Lease (kubelet: 40 s).
    pub lease_duration: Duration,
    /// How often node conditions are recomputed (kubelet: 10 s).
    pub status_check: Duration,
    /// The Node status is written at least this often even when unchanged (kubelet: 5 min).
    pub status_report: Duration,
    /// Every pod is re-synced this often (volumes refreshed, status checked).
    pub pod_sync: Duration,
    /// First crash-loop back-off delay (kubelet: 10 s); doubles per crash.
    pub backoff_base: Duration,
    /// Longest crash-loop back-off (kubelet: 5 min).
    pub backoff_max: Duration,
    /// A container that ran this long resets its back-off (kubelet: 10 min).
    pub backoff_reset: Duration,
    /// The simulated runtime's delay from start to running.
    pub simulated_start: Duration,
    /// How often container and node usage is sampled (cadvisor's housekeeping: 10 s).
    pub housekeeping: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            heartbeat: Duration::from_secs(10),
            lease_duration: Duration::from_secs(40),
            status_check: Duration::from_secs(10),
            status_report: Duration::from_secs(300),
            pod_sync: Duration::from_secs(10),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            backoff_reset: Duration::from_secs(600),
            simulated_start: Duration::from_millis(500),
            housekeeping: Duration::from_secs(10),
        }
    }
}

/// One node daemon's configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The Node's name (and the `node:NAME` identity it runs as).
    pub name: String,
    /// Pods' volumes, logs and container state live under here.
    pub data_dir: PathBuf,
    /// Extra labels for the Node.
    pub labels: BTreeMap<String, String>,
    /// Taints the Node registers with.
    pub taints: Vec<Taint>,
    /// The node's address (default: the address that routes to the API server).
    pub node_ip: Option<IpAddr>,
    /// Where the logs/exec endpoint listens (`None`: no endpoint, e.g. simulated nodes).
    pub listen: Option<SocketAddr>,
    /// The endpoint simulated nodes of one process share for their resource
    /// figures (used when `listen` is `None`).
    pub shared_stats: Option<crate::server::stats::SharedEndpoint>,
    /// Most pods the node takes (capacity `pods`).
    pub max_pods: i64,
    /// Override the machine's cpu capacity (millicores), e.g. for simulated nodes.
    pub cpu_millis: Option<i64>,
    /// Override the machine's memory capacity (bytes), e.g. for simulated nodes.
    pub memory_bytes: Option<i64>,
    /// Timings.
    pub timings: Timings,
    /// Concurrent pod reconciles.
    pub workers: usize,
    /// The service proxy (`None`: no proxy on this node).
    pub proxy: Option<crate::proxy::ProxyConfig>,
    /// Install routes to the other nodes' pod CIDRs (the pod network across nodes).
    pub pod_routes: bool,
    /// The built-in Ingress controller (`None`: not on this node).
    pub ingress: Option<crate::ingress::IngressConfig>,
    /// The built-in service load balancer (`None`: not on this node).
    pub service_lb: Option<crate::servicelb::ServiceLbConfig>,
    /// The DNS server pods use (`None`: the `kube-system/kube-dns` Service's cluster IP, if there is one).
    pub cluster_dns: Option<Ipv4Addr>,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Image garbage collection (runtimes that keep images).
    pub image_gc: crate::pods::image_gc::Policy,
}

impl NodeConfig {
    /// Defaults for a node named `name` keeping its state in `data_dir`.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            name: name.into(),
            data_dir: data_dir.into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            node_ip: None,
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 10250))),
            shared_stats: None,
            max_pods: 110,
            cpu_millis: None,
            memory_bytes: None,
            timings: Timings::default(),
            workers: 8,
            proxy: None,
            pod_routes: false,
            ingress: None,
            service_lb: None,
            cluster_dns: None,
            cluster_domain: "cluster.local".into(),
            image_gc: Default::default(),
        }
    }
}

/// Parses a taint written `key[=value]:Effect`.
pub fn parse_taint(s: &str) -> Result<Taint, String> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("taint {s:?}: expected key[=value]:Effect"))?;
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        return Err(format!(
            "taint {s:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() {
        return Err(format!("taint {s:?}: the key is empty"));
    }
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

/// Parses a label written `key=value`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("label {s:?}: expected key=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_and_labels_parse() {
        let t = parse_taint("gpu=true:NoSchedule").expect("taint");
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("gpu", Some("true"), "NoSchedule")
        );
        let t = parse_taint("dedicated:NoExecute").expect("taint");
        assert_eq!(t.value, None);
        assert!(parse_taint("x:Sometimes").is_err());
        assert!(parse_taint("novalue").is_err());
        assert_eq!(
            parse_label("zone=a").expect("label"),
            ("zone".into(), "a".into())
        );
        assert!(parse_label("=a").is_err());
    }
}
