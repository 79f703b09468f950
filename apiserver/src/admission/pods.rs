//! What kube-apiserver sets on a new pod beyond defaulting: its QoS class
//! and the DefaultTolerationSeconds plugin's tolerations (the Priority
//! plugin, which needs the store, is `priority.rs`).

use serde_json::{Map, Value, json};

/// Kubernetes' DefaultTolerationSeconds admission: pods tolerate `not-ready`
/// and `unreachable` NoExecute taints for 300 s unless they say otherwise.
pub fn add_default_tolerations(root: &mut Map<String, Value>) {
    let Some(Value::Object(spec)) = root.get_mut("spec") else {
        return;
    };
    let tolerations = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(list) = tolerations else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = list.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let exists_all =
                k.is_empty() && t.get("operator").and_then(Value::as_str) == Some("Exists");
            exists_all || (k == key && (effect.is_empty() || effect == "NoExecute"))
        });
        if !tolerated {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}

/// The pod's QoS class from its containers' requests and limits.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| spec.get(*f).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let res = c.get("resources");
        let requests = res
            .and_then(|r| r.get("requests"))
            .and_then(Value::as_object);
        let limits = res.and_then(|r| r.get("limits")).and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(r));
            let request = requests.and_then(|q| q.get(r)).or(limit);
            match (limit, request) {
                (Some(l), Some(q)) if quantity_eq(l, q) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn quantity_eq(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let (a, b) = (text(a), text(b));
    match (
        a.parse::<schemas::quantity::Amount>(),
        b.parse::<schemas::quantity::Amount>(),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "c"}]})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
        assert_eq!(
            qos_class(
                &json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m"}}}]})
            ),
            "Guaranteed"
        );
    }

    #[test]
    fn default_tolerations() {
        let mut pod = json!({"spec": {"containers": []}});
        let m = pod.as_object_mut().expect("object");
        add_default_tolerations(m);
        assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(2));
    }
}
