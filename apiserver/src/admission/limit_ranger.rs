//! The LimitRanger admission plugin: a new pod's containers get the
//! default requests and limits of their namespace's LimitRanges (noted in
//! the `kubernetes.io/limit-ranger` annotation, as kube writes it), and a
//! pod outside a range's min, max or limit/request ratio — per container
//! or summed per pod — is refused with kube's messages.

use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemas::QuantityExt;
use serde_json::{Value, json};

use crate::errors::{ApiError, ApiResult};

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

fn items<'a>(ranges: &'a [LimitRange], kind: &'a str) -> impl Iterator<Item = &'a LimitRangeItem> {
    ranges
        .iter()
        .flat_map(|r| r.spec.iter().flat_map(|s| s.limits.iter()))
        .filter(move |i| i.type_ == kind)
}

fn quantity(v: Option<&Value>) -> Option<Quantity> {
    v.and_then(Value::as_str)
        .map(|s| Quantity(s.to_string()))
        .or_else(|| v.and_then(Value::as_f64).map(|n| Quantity(n.to_string())))
}

/// Sets default requests and limits on a new pod's containers; returns the
/// annotation text, if anything was set.
fn set_defaults(ranges: &[LimitRange], pod: &mut Value) -> Option<String> {
    let mut requests = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    for item in items(ranges, "Container") {
        for (k, v) in item.default_request.iter().flatten() {
            requests.insert(k.clone(), json!(v.0));
        }
        for (k, v) in item.default.iter().flatten() {
            limits.insert(k.clone(), json!(v.0));
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return None;
    }
    let mut notes = Vec::new();
    for (field, what) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        let Some(list) = pod
            .pointer_mut(&format!("/spec/{field}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in list {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let resources = c
                .as_object_mut()
                .map(|o| o.entry("resources").or_insert_with(|| json!({})));
            let Some(Value::Object(res)) = resources else {
                continue;
            };
            let mut fill = |key: &str, defaults: &serde_json::Map<String, Value>| {
                let slot = res.entry(key).or_insert_with(|| json!({}));
                let mut set: Vec<String> = Vec::new();
                if let Value::Object(slot) = slot {
                    for (k, v) in defaults {
                        if !slot.contains_key(k) {
                            slot.insert(k.clone(), v.clone());
                            set.push(k.clone());
                        }
                    }
                }
                set.sort();
                set
            };
            let set_requests = fill("requests", &requests);
            let set_limits = fill("limits", &limits);
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {what} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
            }
            res.retain(|_, v| v.as_object().is_none_or(|o| !o.is_empty()));
        }
    }
    (!notes.is_empty()).then(|| format!("LimitRanger plugin set: {}", notes.join("; ")))
}

/// The min/max/ratio checks of one container or one pod's sums.
fn check(
    item: &LimitRangeItem,
    kind: &str,
    requests: &serde_json::Map<String, Value>,
    limits: &serde_json::Map<String, Value>,
    errors: &mut Vec<String>,
) {
    for (r, min) in item.min.iter().flatten() {
        match quantity(requests.get(r)) {
            None => errors.push(format!(
                "minimum {r} usage per {kind} is {}.  No request is specified",
                min.0
            )),
            Some(q) if q.nanos() < min.nanos() => errors.push(format!(
                "minimum {r} usage per {kind} is {}, but request is {}",
                min.0, q.0
            )),
            Some(_) => {}
        }
    }
    for (r, max) in item.max.iter().flatten() {
        match quantity(limits.get(r)) {
            None => errors.push(format!(
                "maximum {r} usage per {kind} is {}.  No limit is specified",
                max.0
            )),
            Some(q) if q.nanos() > max.nanos() => errors.push(format!(
                "maximum {r} usage per {kind} is {}, but limit is {}",
                max.0, q.0
            )),
            Some(_) => {}
        }
    }
    for (r, ratio) in item.max_limit_request_ratio.iter().flatten() {
        let (req, lim) = (quantity(requests.get(r)), quantity(limits.get(r)));
        match (req, lim) {
            (_, None) => errors.push(format!(
                "{r} max limit to request ratio per {kind} is {}, but no limit is specified",
                ratio.0
            )),
            (None, _) => errors.push(format!(
                "{r} max limit to request ratio per {kind} is {}, but no request is specified or request is 0",
                ratio.0
            )),
            (Some(req), Some(lim)) if req.nanos() == 0 => {
                let _ = lim;
                errors.push(format!(
                    "{r} max limit to request ratio per {kind} is {}, but no request is specified or request is 0",
                    ratio.0
                ));
            }
            (Some(req), Some(lim)) => {
                let actual = lim.nanos() as f64 / req.nanos() as f64;
                if actual > ratio.nanos() as f64 / 1e9 {
                    errors.push(format!(
                        "{r} max limit to request ratio per {kind} is {}, but provided ratio is {actual:.6}",
                        ratio.0
                    ));
                }
            }
        }
    }
}

/// A summed amount as a quantity's text (whole units, else millis).
fn sum_text(nanos: i128) -> String {
    if nanos % 1_000_000_000 == 0 {
        (nanos / 1_000_000_000).to_string()
    } else {
        format!("{}m", nanos / 1_000_000)
    }
}

fn resources(c: &Value, key: &str) -> serde_json::Map<String, Value> {
    c.pointer(&format!("/resources/{key}"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// LimitRanger on a new pod: defaults, then the checks (403 naming the pod).
pub fn admit_pod(ranges: &[LimitRange], pod: &mut Value) -> ApiResult<()> {
    if ranges.is_empty() {
        return Ok(());
    }
    if let Some(note) = set_defaults(ranges, pod)
        && let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut)
    {
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Value::Object(a) = annotations {
            a.insert(ANNOTATION.into(), json!(note));
        }
    }
    let containers: Vec<Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .cloned()
        .collect();
    let mut errors = Vec::new();
    for item in items(ranges, "Container") {
        for c in &containers {
            check(
                item,
                "Container",
                &resources(c, "requests"),
                &resources(c, "limits"),
                &mut errors,
            );
        }
    }
    for item in items(ranges, "Pod") {
        let sum = |key: &str| {
            let mut total: std::collections::BTreeMap<String, i128> = Default::default();
            for c in pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for (k, v) in resources(c, key) {
                    if let Some(q) = quantity(Some(&v)) {
                        *total.entry(k).or_default() += q.nanos();
                    }
                }
            }
            total
                .into_iter()
                .map(|(k, n)| (k, json!(sum_text(n))))
                .collect::<serde_json::Map<String, Value>>()
        };
        check(item, "Pod", &sum("requests"), &sum("limits"), &mut errors);
    }
    if errors.is_empty() {
        return Ok(());
    }
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let joined = if errors.len() == 1 {
        errors.remove(0)
    } else {
        format!("[{}]", errors.join(", "))
    };
    let mut e = ApiError::forbidden_message(format!("pods {name:?} is forbidden: {joined}"));
    e.details = Some(Box::new(crate::status::StatusDetails {
        name: Some(name.to_string()).filter(|n| !n.is_empty()),
        kind: Some("pods".into()),
        ..Default::default()
    }));
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: Value) -> Vec<LimitRange> {
        vec![
            serde_json::from_value(json!({"metadata": {"name": "lr"}, "spec": {"limits": [v]}}))
                .expect("range"),
        ]
    }

    #[test]
    fn defaults_fill_what_containers_leave_out_and_are_noted() {
        let ranges = range(
            json!({"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}),
        );
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "app", "resources": {"limits": {"memory": "1Gi"}}}]}});
        admit_pod(&ranges, &mut pod).expect("admitted");
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["limits"],
            json!({"memory": "1Gi", "cpu": "500m"})
        );
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["requests"],
            json!({"cpu": "100m", "memory": "128Mi"})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container app; cpu limit for container app"
        );
    }

    #[test]
    fn out_of_range_pods_are_refused_with_kubes_messages() {
        let ranges =
            range(json!({"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}}));
        let mut pod = json!({"metadata": {"name": "big"}, "spec": {"containers": [
            {"name": "app", "resources": {"limits": {"cpu": "2"}, "requests": {"memory": "32Mi"}}}]}});
        let e = admit_pod(&ranges, &mut pod).expect_err("refused");
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"big\" is forbidden: [minimum memory usage per Container is 64Mi, but request is 32Mi, maximum cpu usage per Container is 1, but limit is 2]"
        );
    }
}
