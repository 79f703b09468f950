//! `status.loadBalancer.ingress` as the service load balancer writes it
//! (pure): each node serving a Service adds its address (`{ip}`, as k3s's
//! ServiceLB does; the API server's defaulting adds `ipMode: VIP` as kube's
//! does) and removes it when it stops serving. The list helper is shared with
//! the Ingress controller's status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};

/// A status's load-balancer ingress entries (a Service's or an Ingress's) as JSON.
pub fn entries<T: serde::Serialize>(list: Option<&Vec<T>>) -> Vec<Value> {
    list.into_iter()
        .flatten()
        .filter_map(|i| serde_json::to_value(i).ok())
        .collect()
}

/// `current` load-balancer ingress entries with `ip` present (or absent),
/// or `None` when they already are so. Entries are kept sorted.
pub fn ingress_with(current: Vec<Value>, ip: &str, present: bool) -> Option<Vec<Value>> {
    let has = |v: &Value| v.get("ip").and_then(Value::as_str) == Some(ip);
    if current.iter().any(has) == present {
        return None;
    }
    let mut entries: BTreeMap<String, Value> = current
        .into_iter()
        .filter(|v| !has(v))
        .map(|v| (v.to_string(), v))
        .collect();
    if present {
        let mine = json!({"ip": ip});
        entries.insert(mine.to_string(), mine);
    }
    Some(entries.into_values().collect())
}

/// The merge patch of a Service's status that makes `ip` present (or
/// absent) in its `status.loadBalancer.ingress`, or `None` when it is so.
pub fn patch(svc: &Service, ip: &str, present: bool) -> Option<Value> {
    let current = entries(
        svc.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref()),
    );
    let list = ingress_with(current, ip, present)?;
    let list = if list.is_empty() {
        Value::Null
    } else {
        Value::Array(list)
    };
    Some(json!({"status": {"loadBalancer": {"ingress": list}}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ingress: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": ingress}},
        }))
        .expect("service")
    }

    #[test]
    fn adds_and_removes_this_nodes_address() {
        let empty = svc(Value::Null);
        assert_eq!(
            patch(&empty, "10.0.0.5", true),
            Some(json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.5"}]}}}))
        );
        assert_eq!(patch(&empty, "10.0.0.5", false), None);
        let two =
            svc(json!([{"ip": "10.0.0.6", "ipMode": "VIP"}, {"ip": "10.0.0.5", "ipMode": "VIP"}]));
        assert_eq!(patch(&two, "10.0.0.5", true), None, "already there");
        assert_eq!(
            patch(&two, "10.0.0.5", false),
            Some(
                json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.6", "ipMode": "VIP"}]}}})
            )
        );
        let one = svc(json!([{"ip": "10.0.0.5"}]));
        assert_eq!(
            patch(&one, "10.0.0.5", false),
            Some(json!({"status": {"loadBalancer": {"ingress": null}}})),
            "the last address leaves an empty status"
        );
    }

    #[test]
    fn other_nodes_entries_are_kept_sorted() {
        let list = ingress_with(
            vec![json!({"ip": "10.0.0.9"}), json!({"hostname": "lb.example"})],
            "10.0.0.1",
            true,
        )
        .expect("changed");
        assert_eq!(
            list,
            vec![
                json!({"hostname": "lb.example"}),
                json!({"ip": "10.0.0.1"}),
                json!({"ip": "10.0.0.9"})
            ]
        );
    }
}
