//! A pod's `/etc/resolv.conf`, by the kubelet's rules: `dnsPolicy`
//! ClusterFirst (the default) points at the cluster DNS with the search
//! path `<ns>.svc.<domain> svc.<domain> <domain>` and `options ndots:5`;
//! Default copies the node's; None uses only `dnsConfig`, which is merged
//! into the others too. Host-network pods use the node's unless their
//! policy is ClusterFirstWithHostNet.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;
use schemas::MetaExt;

/// The cluster DNS a node points pods at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDns {
    /// The DNS service's address (the `kube-dns` Service's cluster IP).
    pub nameserver: Ipv4Addr,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
}

/// Kubernetes keeps at most 3 name servers (glibc's limit) …
const MAX_NAMESERVERS: usize = 3;
/// … and at most 32 search domains.
const MAX_SEARCHES: usize = 32;

#[derive(Default)]
struct Resolv {
    nameservers: Vec<String>,
    searches: Vec<String>,
    options: Vec<(String, Option<String>)>,
}

fn parse(text: &str) -> Resolv {
    let mut r = Resolv::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => r.nameservers.extend(f.next().map(str::to_string)),
            Some("search" | "domain") => r.searches = f.map(str::to_string).collect(),
            Some("options") => {
                for o in f {
                    set_option(&mut r.options, o);
                }
            }
            _ => {}
        }
    }
    r
}

fn set_option(options: &mut Vec<(String, Option<String>)>, o: &str) {
    let (name, value) = match o.split_once(':') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (o.to_string(), None),
    };
    match options.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => options.push((name, value)),
    }
}

/// The resolv.conf of `pod` on a node whose own resolv.conf is `host`;
/// `None` when the node's file is used as it is.
pub fn resolv_conf(pod: &Pod, cluster: Option<&ClusterDns>, host: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network.unwrap_or(false);
    let use_cluster = match policy {
        "ClusterFirst" => !host_network,
        "ClusterFirstWithHostNet" => true,
        _ => false,
    };
    let mut r = match cluster.filter(|_| use_cluster) {
        _ if policy == "None" => Resolv::default(),
        Some(c) => {
            let ns = pod.metadata.namespace_str();
            let d = &c.domain;
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            searches.extend(parse(host).searches);
            Resolv {
                nameservers: vec![c.nameserver.to_string()],
                searches,
                options: vec![("ndots".into(), Some("5".into()))],
            }
        }
        None if spec.dns_config.is_none() => return None,
        None => parse(host),
    };
    if let Some(cfg) = &spec.dns_config {
        r.nameservers
            .extend(cfg.nameservers.iter().flatten().cloned());
        r.searches.extend(cfg.searches.iter().flatten().cloned());
        for o in cfg.options.iter().flatten() {
            let Some(name) = o.name.as_deref() else {
                continue;
            };
            match &o.value {
                Some(v) => set_option(&mut r.options, &format!("{name}:{v}")),
                None => set_option(&mut r.options, name),
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    r.searches.retain(|s| seen.insert(s.clone()));
    r.nameservers.truncate(MAX_NAMESERVERS);
    r.searches.truncate(MAX_SEARCHES);
    let mut out = String::new();
    for n in &r.nameservers {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !r.searches.is_empty() {
        out.push_str(&format!("search {}\n", r.searches.join(" ")));
    }
    if !r.options.is_empty() {
        let opts: Vec<String> = r
            .options
            .iter()
            .map(|(n, v)| match v {
                Some(v) => format!("{n}:{v}"),
                None => n.clone(),
            })
            .collect();
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    Some(out)
}

/// The Service whose cluster IP is the cluster DNS address (as kubeadm's).
pub const DNS_SERVICE: (&str, &str) = ("kube-system", "kube-dns");

/// The cluster DNS for pods: `fixed` when given, else the cluster IP of the
/// `kube-system/kube-dns` Service; `None` (pods get the node's resolv.conf)
/// when there is neither.
pub async fn discover(
    client: &reconcilers::runtime::Client,
    fixed: Option<Ipv4Addr>,
    domain: &str,
) -> Option<ClusterDns> {
    let nameserver = match fixed {
        Some(ip) => ip,
        None => {
            let api = client.api::<k8s_openapi::api::core::v1::Service>(Some(DNS_SERVICE.0));
            match api.get_opt(DNS_SERVICE.1).await {
                Ok(svc) => svc
                    .and_then(|s| s.spec)
                    .and_then(|s| s.cluster_ip)
                    .and_then(|ip| ip.parse().ok())?,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the kube-dns Service: pods get the node's resolv.conf");
                    return None;
                }
            }
        }
    };
    tracing::info!(%nameserver, domain, "pods resolve names with the cluster DNS");
    Some(ClusterDns {
        nameserver,
        domain: domain.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(extra: serde_json::Value) -> Pod {
        let mut v = serde_json::json!({"metadata": {"name": "p", "namespace": "shop"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        if let Some(m) = extra.as_object() {
            for (k, val) in m {
                v["spec"][k] = val.clone();
            }
        }
        serde_json::from_value(v).expect("pod")
    }

    fn dns() -> ClusterDns {
        ClusterDns {
            nameserver: Ipv4Addr::new(10, 96, 0, 10),
            domain: "cluster.local".into(),
        }
    }

    const HOST: &str = "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n";

    #[test]
    fn cluster_first_points_at_the_cluster_dns_with_kubernetes_search_path() {
        assert_eq!(
            resolv_conf(&pod(serde_json::json!({})), Some(&dns()), HOST).as_deref(),
            Some(
                "nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n"
            )
        );
    }

    #[test]
    fn default_policy_host_network_and_unknown_cluster_dns_use_the_node_file() {
        let default = pod(serde_json::json!({"dnsPolicy": "Default"}));
        assert_eq!(resolv_conf(&default, Some(&dns()), HOST), None);
        let host_net = pod(serde_json::json!({"hostNetwork": true}));
        assert_eq!(resolv_conf(&host_net, Some(&dns()), HOST), None);
        assert_eq!(resolv_conf(&pod(serde_json::json!({})), None, HOST), None);
        let with_host_net =
            pod(serde_json::json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert!(
            resolv_conf(&with_host_net, Some(&dns()), HOST)
                .is_some_and(|r| r.starts_with("nameserver 10.96.0.10\n"))
        );
    }

    #[test]
    fn dns_config_merges_and_none_uses_only_it() {
        let cfg = serde_json::json!({"nameservers": ["1.1.1.1"], "searches": ["svc.cluster.local", "x.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]});
        let merged = pod(serde_json::json!({"dnsConfig": cfg.clone()}));
        assert_eq!(
            resolv_conf(&merged, Some(&dns()), "").as_deref(),
            Some(
                "nameserver 10.96.0.10\nnameserver 1.1.1.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local x.example\noptions ndots:2 rotate\n"
            )
        );
        let none = pod(serde_json::json!({"dnsPolicy": "None", "dnsConfig": cfg}));
        assert_eq!(
            resolv_conf(&none, Some(&dns()), HOST).as_deref(),
            Some(
                "nameserver 1.1.1.1\nsearch svc.cluster.local x.example\noptions ndots:2 rotate\n"
            )
        );
    }
}
