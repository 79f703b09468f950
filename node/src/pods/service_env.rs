//! The Service environment variables the kubelet gives every container
//! (`pkg/kubelet/envvars`): `NAME_SERVICE_HOST`, `NAME_SERVICE_PORT[_PORTNAME]`
//! and the Docker-links style `NAME_PORT[_N_PROTO[_PROTO|_PORT|_ADDR]]` for
//! each Service of the pod's namespace with a cluster IP (unless
//! `enableServiceLinks: false`), and always for `default/kubernetes` — the
//! variables in-cluster clients find the API server by.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use reconcilers::runtime::ListParams;

use crate::pods::sources::Sources;

/// The variables for `pod`. `api_endpoint` replaces the `kubernetes`
/// Service's address and port where its cluster IP does not answer.
pub async fn for_pod(
    sources: &Sources<'_>,
    pod: &Pod,
    api_endpoint: Option<&(String, u16)>,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut services: BTreeMap<String, Service> = BTreeMap::new();
    if links {
        let list = sources
            .client()
            .api::<Service>(Some(ns))
            .list_all(&ListParams::default())
            .await
            .map_err(|e| format!("the services of namespace {ns}: {e}"))?;
        for s in list.items {
            if let Some(name) = s.metadata.name.clone() {
                services.insert(name, s);
            }
        }
    }
    if !services.contains_key("kubernetes") {
        let master = sources
            .client()
            .api::<Service>(Some("default"))
            .get_opt("kubernetes")
            .await
            .map_err(|e| format!("the service default/kubernetes: {e}"))?;
        if let Some(s) = master {
            services.insert("kubernetes".into(), s);
        }
    }
    let mut vars = Vec::new();
    for (name, svc) in &services {
        let endpoint = api_endpoint.filter(|_| name == "kubernetes");
        vars.extend(service_vars(name, svc, endpoint));
    }
    Ok(vars)
}

fn env_name(s: &str) -> String {
    s.to_uppercase().replace('-', "_")
}

/// The variables of one Service (none without a cluster IP).
fn service_vars(
    name: &str,
    svc: &Service,
    endpoint: Option<&(String, u16)>,
) -> Vec<(String, String)> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let ip = match (endpoint, spec.cluster_ip.as_deref()) {
        (Some((host, _)), _) => host.clone(),
        (None, Some(ip)) if !ip.is_empty() && ip != "None" => ip.to_string(),
        _ => return Vec::new(),
    };
    let ports: Vec<(Option<String>, i32, String)> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let port = endpoint.map_or(p.port, |(_, port)| i32::from(*port));
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            (p.name.clone().filter(|n| !n.is_empty()), port, proto)
        })
        .collect();
    let Some((_, first_port, first_proto)) = ports.first() else {
        return Vec::new();
    };
    let prefix = env_name(name);
    let addr = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.clone()
    };
    let mut out = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.clone()),
        (format!("{prefix}_SERVICE_PORT"), first_port.to_string()),
    ];
    for (port_name, port, _) in &ports {
        if let Some(n) = port_name {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", env_name(n)),
                port.to_string(),
            ));
        }
    }
    out.push((
        format!("{prefix}_PORT"),
        format!("{}://{addr}:{first_port}", first_proto.to_lowercase()),
    ));
    for (_, port, proto) in &ports {
        let p = format!("{prefix}_PORT_{port}_{}", proto.to_uppercase());
        out.push((
            p.clone(),
            format!("{}://{addr}:{port}", proto.to_lowercase()),
        ));
        out.push((format!("{p}_PROTO"), proto.to_lowercase()));
        out.push((format!("{p}_PORT"), port.to_string()));
        out.push((format!("{p}_ADDR"), ip.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn the_kubelets_variables_for_a_service() {
        let s = svc(serde_json::json!({
            "metadata": {"name": "my-db"},
            "spec": {"clusterIP": "10.96.0.12", "ports": [
                {"name": "pg", "port": 5432, "protocol": "TCP"},
                {"name": "metrics-http", "port": 9187},
            ]},
        }));
        let vars: BTreeMap<String, String> = service_vars("my-db", &s, None).into_iter().collect();
        assert_eq!(vars["MY_DB_SERVICE_HOST"], "10.96.0.12");
        assert_eq!(vars["MY_DB_SERVICE_PORT"], "5432");
        assert_eq!(vars["MY_DB_SERVICE_PORT_PG"], "5432");
        assert_eq!(vars["MY_DB_SERVICE_PORT_METRICS_HTTP"], "9187");
        assert_eq!(vars["MY_DB_PORT"], "tcp://10.96.0.12:5432");
        assert_eq!(vars["MY_DB_PORT_9187_TCP"], "tcp://10.96.0.12:9187");
        assert_eq!(vars["MY_DB_PORT_9187_TCP_PROTO"], "tcp");
        assert_eq!(vars["MY_DB_PORT_9187_TCP_PORT"], "9187");
        assert_eq!(vars["MY_DB_PORT_9187_TCP_ADDR"], "10.96.0.12");
        assert_eq!(vars.len(), 13);
    }

    #[test]
    fn headless_services_have_none_and_the_endpoint_replaces_the_address() {
        let headless = svc(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]},
        }));
        assert!(service_vars("web", &headless, None).is_empty());
        let k = svc(serde_json::json!({
            "metadata": {"name": "kubernetes"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]},
        }));
        let ep = ("127.0.0.1".to_string(), 6443);
        let vars: BTreeMap<String, String> = service_vars("kubernetes", &k, Some(&ep))
            .into_iter()
            .collect();
        assert_eq!(vars["KUBERNETES_SERVICE_HOST"], "127.0.0.1");
        assert_eq!(vars["KUBERNETES_SERVICE_PORT"], "6443");
        assert_eq!(vars["KUBERNETES_SERVICE_PORT_HTTPS"], "6443");
        assert_eq!(vars["KUBERNETES_PORT_6443_TCP"], "tcp://127.0.0.1:6443");
    }
}
