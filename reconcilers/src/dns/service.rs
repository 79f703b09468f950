//! The `kube-system/kube-dns` Service (no selector, as kubeadm names it)
//! and its Endpoints, which name the DNS server's own address: pods ask
//! the Service's cluster IP on port 53 and the service proxy forwards to
//! wherever the server listens.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Endpoints, Service};

use crate::runtime::{Client, WriteParams};

/// The namespace and name of the DNS Service.
pub const NAMESPACE: &str = "kube-system";
/// The DNS Service's name.
pub const NAME: &str = "kube-dns";

fn service(cluster_ip: Option<Ipv4Addr>) -> Result<Service, String> {
    let mut spec = serde_json::json!({"ports": [
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]});
    if let Some(ip) = cluster_ip {
        spec["clusterIP"] = serde_json::json!(ip.to_string());
    }
    serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "app.kubernetes.io/managed-by": "korral"}},
        "spec": spec}))
    .map_err(|e| e.to_string())
}

fn endpoints(ip: Ipv4Addr, port: u16) -> Result<Endpoints, String> {
    serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"k8s-app": "kube-dns"}},
        "subsets": [{"addresses": [{"ip": ip.to_string()}],
                     "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                               {"name": "dns-tcp", "port": port, "protocol": "TCP"}]}]}))
    .map_err(|e| e.to_string())
}

/// Creates the Service if it is missing (with `cluster_ip` when that is
/// free, else an allocated one); returns its cluster IP.
pub async fn ensure_service(
    client: &Client,
    cluster_ip: Option<Ipv4Addr>,
) -> Result<String, String> {
    let api = client.api::<Service>(Some(NAMESPACE));
    let current = match api.get_opt(NAME).await.map_err(|e| e.to_string())? {
        Some(s) => s,
        None => match api
            .create(&service(cluster_ip)?, &WriteParams::default())
            .await
        {
            Ok(s) => s,
            // the address is taken (or invalid): let the API server pick one
            Err(e) if e.code() == 422 && cluster_ip.is_some() => {
                tracing::warn!(error = %e, "the DNS service's usual cluster IP is unavailable; allocating another");
                api.create(&service(None)?, &WriteParams::default())
                    .await
                    .map_err(|e| e.to_string())?
            }
            Err(e) if e.is_already_exists() => api.get(NAME).await.map_err(|e| e.to_string())?,
            Err(e) => return Err(e.to_string()),
        },
    };
    Ok(current.spec.and_then(|s| s.cluster_ip).unwrap_or_default())
}

/// Points the Service's Endpoints at `ip:port` (the DNS server).
pub async fn publish(client: &Client, ip: Ipv4Addr, port: u16) -> Result<(), String> {
    let api = client.api::<Endpoints>(Some(NAMESPACE));
    let mut want = endpoints(ip, port)?;
    match api.get_opt(NAME).await.map_err(|e| e.to_string())? {
        Some(old) if old.subsets == want.subsets => Ok(()),
        Some(old) => {
            want.metadata.resource_version = old.metadata.resource_version;
            api.replace(NAME, &want, &WriteParams::default())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        None => api
            .create(&want, &WriteParams::default())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_objects_are_valid_kubernetes_shapes() {
        let s = service(Some(Ipv4Addr::new(10, 96, 0, 10))).expect("service");
        let spec = s.spec.expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        assert!(
            spec.selector.is_none(),
            "the endpoints are written by the DNS server"
        );
        let e = endpoints(Ipv4Addr::new(10, 250, 0, 1), 40053).expect("endpoints");
        let ports = e.subsets.expect("subsets")[0].ports.clone().expect("ports");
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().all(|p| p.port == 40053));
    }
}
