//! The downward API: pod fields (`metadata.name`, `status.podIP`, labels,
//! ...) and container resources (`limits.cpu` with a divisor) as strings, for
//! env vars and downwardAPI volume files.

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemas::MetaExt;
use schemas::QuantityExt;

/// What the downward API needs beyond the pod object.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The pod's IP.
    pub pod_ip: Option<String>,
    /// The node's IP.
    pub host_ip: String,
    /// The node's allocatable cpu (millicores), the default for an unset cpu limit.
    pub node_cpu_millis: i64,
    /// The node's allocatable memory (bytes), the default for an unset memory limit.
    pub node_memory_bytes: i64,
}

fn quote_map(m: &std::collections::BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of a pod field.
pub fn field(pod: &Pod, sel: &ObjectFieldSelector, facts: &Facts) -> Result<String, String> {
    let m = &pod.metadata;
    let path = sel.field_path.as_str();
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_prefix("['")?;
        rest.strip_suffix("']").map(str::to_string)
    };
    let spec = pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => m.name_str().to_string(),
        "metadata.namespace" => m.namespace_str().to_string(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => quote_map(m.labels_map()),
        "metadata.annotations" => quote_map(m.annotations_map()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone().unwrap_or_default(),
        _ => {
            if let Some(k) = subscript("metadata.labels") {
                m.labels_map().get(&k).cloned().unwrap_or_default()
            } else if let Some(k) = subscript("metadata.annotations") {
                m.annotations_map().get(&k).cloned().unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldRef fieldPath {path:?}"));
            }
        }
    })
}

/// The value of a container resource, in units of the divisor (rounded up).
pub fn resource(
    pod: &Pod,
    own: &Container,
    sel: &ResourceFieldSelector,
    facts: &Facts,
) -> Result<String, String> {
    let container = match sel.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => own,
        Some(name) => pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == name)
            .ok_or_else(|| format!("resourceFieldRef: no container named {name:?}"))?,
    };
    let (kind, res) = sel
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported resourceFieldRef resource {:?}", sel.resource))?;
    let res_map = container.resources.as_ref().and_then(|r| match kind {
        "limits" => r.limits.as_ref(),
        "requests" => r.requests.as_ref(),
        _ => None,
    });
    let set = res_map.and_then(|m| m.get(res)).map(Quantity::nanos);
    let nanos: i128 = match (set, kind, res) {
        (Some(v), _, _) => v,
        (None, "limits", "cpu") => i128::from(facts.node_cpu_millis) * 1_000_000,
        (None, "limits", "memory") => i128::from(facts.node_memory_bytes) * 1_000_000_000,
        (None, _, _) => 0,
    };
    let divisor = sel
        .divisor
        .as_ref()
        .map(Quantity::nanos)
        .filter(|d| *d > 0)
        .unwrap_or(1_000_000_000);
    let q = nanos / divisor + i128::from(nanos % divisor > 0);
    Ok(q.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}}]}
        }))
        .expect("pod")
    }

    #[test]
    fn fields_and_resources() {
        let p = pod();
        let facts = Facts {
            pod_ip: Some("10.0.0.5".into()),
            host_ip: "192.168.1.2".into(),
            node_cpu_millis: 2000,
            node_memory_bytes: 1 << 30,
        };
        let f = |path: &str| {
            field(
                &p,
                &ObjectFieldSelector {
                    field_path: path.into(),
                    api_version: None,
                },
                &facts,
            )
        };
        assert_eq!(f("metadata.name").as_deref(), Ok("p"));
        assert_eq!(f("status.podIP").as_deref(), Ok("10.0.0.5"));
        assert_eq!(f("metadata.labels['app']").as_deref(), Ok("web"));
        assert_eq!(f("spec.nodeName").as_deref(), Ok("n1"));
        assert!(f("spec.bogus").is_err());
        let c = &p.spec.as_ref().expect("spec").containers[0];
        let r = |res: &str, div: Option<&str>| {
            resource(
                &p,
                c,
                &ResourceFieldSelector {
                    container_name: None,
                    resource: res.into(),
                    divisor: div.map(|d| Quantity(d.to_string())),
                },
                &facts,
            )
        };
        assert_eq!(r("limits.cpu", None).as_deref(), Ok("1"));
        assert_eq!(r("limits.cpu", Some("1m")).as_deref(), Ok("250"));
        assert_eq!(r("limits.memory", Some("1Mi")).as_deref(), Ok("64"));
        assert_eq!(r("requests.cpu", None).as_deref(), Ok("0"));
    }
}
