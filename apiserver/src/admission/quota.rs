//! ResourceQuota admission: a create that would take a namespace past a
//! quota's `hard` limits is refused with kube's message (`exceeded quota:
//! q, requested: pods=1, used: pods=2, limited: pods=2`), and a pod that
//! leaves out a tracked compute resource with kube's `failed quota: q: must
//! specify limits.cpu for: app`. Usage is what the namespace holds now
//! (object counts; the requests and limits of its pods that have not
//! finished; PVC storage requests). `usage` also serves the quota
//! controller that writes `status.used`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceQuota;
use schemas::QuantityExt;
use serde_json::Value;

use crate::errors::{ApiError, ApiResult};

/// A namespace's objects, by resource (`pods`, `configmaps`,
/// `deployments.apps`), for usage counts.
pub type Holdings = BTreeMap<String, Vec<Value>>;

/// The resources a quota's `hard` names, and the kinds whose objects count
/// toward them: (plural, group).
pub fn counted_kinds(quota: &ResourceQuota) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |p: &str, g: &str| {
        let k = (p.to_string(), g.to_string());
        if !out.contains(&k) {
            out.push(k);
        }
    };
    for name in quota
        .spec
        .iter()
        .flat_map(|s| s.hard.iter().flatten())
        .map(|(k, _)| k)
    {
        match name.as_str() {
            "pods" | "cpu" | "memory" | "ephemeral-storage" => add("pods", ""),
            n if n.starts_with("requests.") && n != "requests.storage" => add("pods", ""),
            n if n.starts_with("limits.") => add("pods", ""),
            "services" | "services.nodeports" | "services.loadbalancers" => add("services", ""),
            "requests.storage" | "persistentvolumeclaims" => add("persistentvolumeclaims", ""),
            "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => add(name, ""),
            n => {
                if let Some(res) = n.strip_prefix("count/") {
                    match res.split_once('.') {
                        Some((p, g)) => add(p, g),
                        None => add(res, ""),
                    }
                }
            }
        }
    }
    out
}

fn key(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn pod_counts(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// A pod's requests or limits of one resource: the sum over its containers,
/// at least the largest init container's (the scheduler's effective view).
fn pod_amount(pod: &Value, what: &str, resource: &str) -> i128 {
    let of = |c: &Value| -> i128 {
        c.pointer(&format!("/resources/{what}/{resource}"))
            .and_then(Value::as_str)
            .map(|q| k8s_openapi::apimachinery::pkg::api::resource::Quantity(q.to_string()).nanos())
            .unwrap_or(0)
    };
    let list = |f: &str| {
        pod.pointer(&format!("/spec/{f}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let sum: i128 = list("containers").iter().map(of).sum();
    let init = list("initContainers").iter().map(of).max().unwrap_or(0);
    sum.max(init)
}

/// How much of `resource` `objects` use, in nanos (counts: units).
fn used_by(resource: &str, holdings: &Holdings) -> i128 {
    const UNIT: i128 = 1_000_000_000;
    let objects = |k: &str| holdings.get(k).map(Vec::as_slice).unwrap_or(&[]);
    let pods = || objects("pods").iter().filter(|p| pod_counts(p));
    match resource {
        "pods" | "count/pods" => pods().count() as i128 * UNIT,
        "cpu" | "requests.cpu" => pods().map(|p| pod_amount(p, "requests", "cpu")).sum(),
        "memory" | "requests.memory" => pods().map(|p| pod_amount(p, "requests", "memory")).sum(),
        "ephemeral-storage" | "requests.ephemeral-storage" => pods()
            .map(|p| pod_amount(p, "requests", "ephemeral-storage"))
            .sum(),
        "limits.cpu" | "limits.memory" | "limits.ephemeral-storage" => {
            let r = resource.trim_start_matches("limits.");
            pods().map(|p| pod_amount(p, "limits", r)).sum()
        }
        "services.nodeports" | "services.loadbalancers" => {
            let want = if resource == "services.nodeports" {
                "NodePort"
            } else {
                "LoadBalancer"
            };
            objects("services")
                .iter()
                .filter(|s| s.pointer("/spec/type").and_then(Value::as_str) == Some(want))
                .count() as i128
                * UNIT
        }
        "requests.storage" => objects("persistentvolumeclaims")
            .iter()
            .filter_map(|c| c.pointer("/spec/resources/requests/storage"))
            .filter_map(Value::as_str)
            .map(|q| k8s_openapi::apimachinery::pkg::api::resource::Quantity(q.to_string()).nanos())
            .sum(),
        n => {
            let res = n.strip_prefix("count/").unwrap_or(n);
            objects(res).len() as i128 * UNIT
        }
    }
}

/// A quantity's text for an amount of `resource` (as kube prints them:
/// whole units, millicores, binary suffixes for bytes).
pub fn format(resource: &str, nanos: i128) -> String {
    const UNIT: i128 = 1_000_000_000;
    let bytes = resource.contains("memory") || resource.contains("storage");
    if nanos % UNIT != 0 {
        return format!("{}m", nanos / 1_000_000);
    }
    let n = nanos / UNIT;
    if bytes && n != 0 {
        for (suffix, size) in [
            ("Ti", 1i128 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if n % size == 0 {
                return format!("{}{suffix}", n / size);
            }
        }
    }
    n.to_string()
}

/// What a quota's resources are used at now: (resource, used text).
pub fn usage(quota: &ResourceQuota, holdings: &Holdings) -> BTreeMap<String, String> {
    quota
        .spec
        .iter()
        .flat_map(|s| s.hard.iter().flatten())
        .map(|(k, _)| (k.clone(), format(k, used_by(k, holdings))))
        .collect()
}

/// Admits the creation of `object` (of `plural`.`group`) against every quota.
pub fn admit(
    quotas: &[ResourceQuota],
    holdings: &Holdings,
    plural: &str,
    group: &str,
    object: &Value,
) -> ApiResult<()> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let forbidden = |text: String| {
        let mut e = ApiError::forbidden_message(format!(
            "{} {name:?} is forbidden: {text}",
            key(plural, group)
        ));
        e.details = Some(Box::new(crate::status::StatusDetails {
            name: Some(name.to_string()).filter(|n| !n.is_empty()),
            group: Some(group.to_string()).filter(|g| !g.is_empty()),
            kind: Some(plural.to_string()),
            ..Default::default()
        }));
        e
    };
    let mut with_new = holdings.clone();
    with_new
        .entry(key(plural, group))
        .or_default()
        .push(object.clone());
    for quota in quotas {
        let qname = quota.metadata.name.as_deref().unwrap_or("");
        let hard = quota.spec.iter().flat_map(|s| s.hard.iter().flatten());
        // a pod must state every compute resource the quota tracks
        if plural == "pods" && group.is_empty() {
            let mut missing: Vec<String> = Vec::new();
            for (resource, _) in hard.clone() {
                let (what, r) = match resource.as_str() {
                    "cpu" | "memory" => ("requests", resource.as_str()),
                    n => match n.split_once('.') {
                        Some((w @ ("requests" | "limits"), r)) if r != "storage" => (w, r),
                        _ => continue,
                    },
                };
                let lacking: Vec<String> = object
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|c| c.pointer(&format!("/resources/{what}/{r}")).is_none())
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect();
                if !lacking.is_empty() {
                    missing.push(format!("{resource} for: {}", lacking.join(",")));
                }
            }
            if !missing.is_empty() {
                missing.sort();
                return Err(forbidden(format!(
                    "failed quota: {qname}: must specify {}",
                    missing.join("; ")
                )));
            }
        }
        // (resource, [requested, used, limited])
        let mut over: Vec<(String, [i128; 3])> = Vec::new();
        for (resource, limit) in hard {
            let before = used_by(resource, holdings);
            let after = used_by(resource, &with_new);
            let requested = after - before;
            if requested > 0 && after > limit.nanos() {
                over.push((resource.clone(), [requested, before, limit.nanos()]));
            }
        }
        if !over.is_empty() {
            over.sort();
            let list = |i: usize| {
                over.iter()
                    .map(|(r, amounts)| format!("{r}={}", format(r, amounts[i])))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(forbidden(format!(
                "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                list(0),
                list(1),
                list(2)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn quota(hard: Value) -> ResourceQuota {
        serde_json::from_value(json!({"metadata": {"name": "q"}, "spec": {"hard": hard}}))
            .expect("quota")
    }

    fn pod(name: &str, cpu: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "app",
            "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}}]}})
    }

    #[test]
    fn counts_and_compute_are_limited_with_kubes_messages() {
        let q = quota(json!({"pods": "2", "limits.cpu": "1"}));
        let mut held = Holdings::new();
        held.insert("pods".into(), vec![pod("a", "500m"), pod("b", "250m")]);
        let e = admit(
            std::slice::from_ref(&q),
            &held,
            "pods",
            "",
            &pod("c", "100m"),
        )
        .expect_err("over");
        assert_eq!(
            e.message,
            "pods \"c\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
        );
        held.insert("pods".into(), vec![pod("a", "500m")]);
        let e = admit(
            std::slice::from_ref(&q),
            &held,
            "pods",
            "",
            &pod("c", "600m"),
        )
        .expect_err("over");
        assert_eq!(
            e.message,
            "pods \"c\" is forbidden: exceeded quota: q, requested: limits.cpu=600m, used: limits.cpu=500m, limited: limits.cpu=1"
        );
        assert!(
            admit(
                std::slice::from_ref(&q),
                &held,
                "pods",
                "",
                &pod("c", "500m")
            )
            .is_ok()
        );
        let bare = json!({"metadata": {"name": "d"}, "spec": {"containers": [{"name": "app"}]}});
        let e = admit(std::slice::from_ref(&q), &held, "pods", "", &bare).expect_err("unstated");
        assert_eq!(
            e.message,
            "pods \"d\" is forbidden: failed quota: q: must specify limits.cpu for: app"
        );
        // finished pods do not count
        let mut done = pod("z", "900m");
        done["status"] = json!({"phase": "Succeeded"});
        held.insert("pods".into(), vec![done]);
        assert_eq!(usage(&q, &held).get("pods").map(String::as_str), Some("0"));
    }
}
