//! Conversions between the versions a built-in kind is served at, as
//! kube-apiserver converts through its internal version: core/v1 Event ↔
//! events.k8s.io/v1 Event (one storage, renamed fields) and
//! autoscaling/v1 ↔ autoscaling/v2 HorizontalPodAutoscaler (v1 keeps what it
//! cannot express in `autoscaling.alpha.kubernetes.io/*` annotations).

use serde_json::{Map, Value, json};

/// core/v1 field ↔ events.k8s.io/v1 field.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Converts an Event between `v1` and `events.k8s.io/v1`.
pub fn event(v: Value, from: &str, to: &str) -> Result<Value, String> {
    let Value::Object(mut m) = v else {
        return Err("an Event must be an object".into());
    };
    let to_events = match (from, to) {
        ("v1", "events.k8s.io/v1") => true,
        ("events.k8s.io/v1", "v1") => false,
        _ => return Err(format!("no conversion of Event from {from} to {to}")),
    };
    let mut out = Map::new();
    for (k, val) in std::mem::take(&mut m) {
        let renamed = EVENT_FIELDS
            .iter()
            .find_map(|(core, events)| {
                if to_events && k == *core {
                    Some(*events)
                } else if !to_events && k == *events {
                    Some(*core)
                } else {
                    None
                }
            })
            .map_or(k, str::to_string);
        out.insert(renamed, val);
    }
    out.insert("apiVersion".into(), Value::String(to.to_string()));
    if to_events && !out.contains_key("eventTime") {
        // events.k8s.io requires eventTime; kube fills it from the old timestamps
        let fallback = out
            .get("deprecatedFirstTimestamp")
            .or_else(|| out.get("deprecatedLastTimestamp"))
            .and_then(Value::as_str)
            .map(|t| t.replace('Z', ".000000Z"));
        if let Some(t) = fallback {
            out.insert("eventTime".into(), Value::String(t));
        }
    }
    Ok(Value::Object(out))
}

const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

fn is_cpu_utilization(metric: &Value) -> bool {
    metric["type"] == "Resource"
        && metric["resource"]["name"] == "cpu"
        && metric["resource"]["target"]["type"] == "Utilization"
}

fn annotations(v: &mut Value) -> &mut Map<String, Value> {
    let meta = v
        .as_object_mut()
        .map(|m| m.entry("metadata").or_insert_with(|| json!({})));
    match meta {
        Some(Value::Object(m)) => {
            let a = m.entry("annotations").or_insert_with(|| json!({}));
            if !a.is_object() {
                *a = json!({});
            }
            match a {
                Value::Object(a) => a,
                _ => unreachable!("just made an object"),
            }
        }
        _ => unreachable!("objects have metadata"),
    }
}

fn take_annotation(v: &mut Value, key: &str) -> Option<Value> {
    let a = annotations(v);
    let raw = a.remove(key)?;
    raw.as_str().and_then(|s| serde_json::from_str(s).ok())
}

fn drop_empty_annotations(v: &mut Value) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut)
        && meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        meta.remove("annotations");
    }
}

/// Converts a HorizontalPodAutoscaler between `autoscaling/v1` and `autoscaling/v2`.
pub fn hpa(v: Value, from: &str, to: &str) -> Result<Value, String> {
    match (from, to) {
        ("autoscaling/v2", "autoscaling/v1") => Ok(hpa_to_v1(v)),
        ("autoscaling/v1", "autoscaling/v2") => Ok(hpa_to_v2(v)),
        _ => Err(format!(
            "no conversion of HorizontalPodAutoscaler from {from} to {to}"
        )),
    }
}

fn hpa_to_v1(mut v: Value) -> Value {
    let spec = v.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = v.get("status").cloned();
    let metrics: Vec<Value> = spec["metrics"].as_array().cloned().unwrap_or_default();
    let mut v1_spec = json!({
        "scaleTargetRef": spec["scaleTargetRef"],
        "maxReplicas": spec["maxReplicas"],
    });
    if let Some(min) = spec.get("minReplicas") {
        v1_spec["minReplicas"] = min.clone();
    }
    let (cpu, other): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(is_cpu_utilization);
    if let Some(c) = cpu.first() {
        v1_spec["targetCPUUtilizationPercentage"] =
            c["resource"]["target"]["averageUtilization"].clone();
    }
    if !other.is_empty() {
        annotations(&mut v).insert(
            METRICS_ANNOTATION.into(),
            Value::String(Value::Array(other).to_string()),
        );
    }
    if let Some(b) = spec.get("behavior") {
        annotations(&mut v).insert(BEHAVIOR_ANNOTATION.into(), Value::String(b.to_string()));
    }
    if let Some(st) = status {
        let mut v1_status = Map::new();
        for f in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            if let Some(x) = st.get(f) {
                v1_status.insert(f.into(), x.clone());
            }
        }
        let current: Vec<Value> = st["currentMetrics"].as_array().cloned().unwrap_or_default();
        let (cpu, other): (Vec<Value>, Vec<Value>) = current
            .into_iter()
            .partition(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu");
        if let Some(u) = cpu
            .first()
            .and_then(|c| c["resource"]["current"].get("averageUtilization"))
        {
            v1_status.insert("currentCPUUtilizationPercentage".into(), u.clone());
        }
        if !other.is_empty() {
            annotations(&mut v).insert(
                CURRENT_METRICS_ANNOTATION.into(),
                Value::String(Value::Array(other).to_string()),
            );
        }
        if let Some(c) = st
            .get("conditions")
            .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
        {
            annotations(&mut v).insert(CONDITIONS_ANNOTATION.into(), Value::String(c.to_string()));
        }
        v["status"] = Value::Object(v1_status);
    }
    v["spec"] = v1_spec;
    v["apiVersion"] = json!("autoscaling/v1");
    drop_empty_annotations(&mut v);
    v
}

fn hpa_to_v2(mut v: Value) -> Value {
    let spec = v.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut v2_spec = json!({
        "scaleTargetRef": spec["scaleTargetRef"],
        "maxReplicas": spec["maxReplicas"],
    });
    if let Some(min) = spec.get("minReplicas") {
        v2_spec["minReplicas"] = min.clone();
    }
    let mut metrics = Vec::new();
    if let Some(t) = spec.get("targetCPUUtilizationPercentage") {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": t}}}));
    }
    if let Some(Value::Array(other)) = take_annotation(&mut v, METRICS_ANNOTATION) {
        metrics.extend(other);
    }
    if !metrics.is_empty() {
        v2_spec["metrics"] = Value::Array(metrics);
    }
    if let Some(b) = take_annotation(&mut v, BEHAVIOR_ANNOTATION) {
        v2_spec["behavior"] = b;
    }
    let current_other = take_annotation(&mut v, CURRENT_METRICS_ANNOTATION);
    let conditions = take_annotation(&mut v, CONDITIONS_ANNOTATION);
    if let Some(st) = v.get("status").cloned() {
        let mut v2_status = Map::new();
        for f in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            if let Some(x) = st.get(f) {
                v2_status.insert(f.into(), x.clone());
            }
        }
        let mut current = Vec::new();
        if let Some(u) = st.get("currentCPUUtilizationPercentage") {
            current.push(json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}));
        }
        if let Some(Value::Array(other)) = current_other {
            current.extend(other);
        }
        if !current.is_empty() {
            v2_status.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(c) = conditions {
            v2_status.insert("conditions".into(), c);
        }
        v["status"] = Value::Object(v2_status);
    }
    v["spec"] = v2_spec;
    v["apiVersion"] = json!("autoscaling/v2");
    drop_empty_annotations(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_rename_their_fields_both_ways() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi", "count": 2,
            "firstTimestamp": "2024-01-01T00:00:00Z", "reason": "Started"});
        let ev = event(core.clone(), "v1", "events.k8s.io/v1").expect("to events");
        assert_eq!(ev["regarding"]["name"], "p");
        assert_eq!(ev["note"], "hi");
        assert_eq!(ev["deprecatedCount"], 2);
        assert_eq!(ev["eventTime"], "2024-01-01T00:00:00.000000Z");
        let back = event(ev, "events.k8s.io/v1", "v1").expect("to core");
        assert_eq!(back["involvedObject"], core["involvedObject"]);
        assert_eq!(back["message"], "hi");
    }

    #[test]
    fn hpa_round_trips_through_v1_without_losing_metrics() {
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 10,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}}
            ]}});
        let v1 = hpa(v2.clone(), "autoscaling/v2", "autoscaling/v1").expect("to v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
        assert!(v1["metadata"]["annotations"][METRICS_ANNOTATION].is_string());
        let back = hpa(v1, "autoscaling/v1", "autoscaling/v2").expect("to v2");
        assert_eq!(back["spec"], v2["spec"]);
        assert!(back["metadata"].get("annotations").is_none());
    }
}
