//! The Priority admission plugin: a new pod's `priorityClassName` (or the
//! cluster's global default class) becomes its `priority` and
//! `preemptionPolicy`; a class that does not exist, or a priority that
//! disagrees with the class, is refused.

use serde_json::Value;

use crate::errors::{ApiError, ApiResult};
use crate::registry::{ListOptions, Registry};

/// The built-in classes every cluster has: `(name, value, description)`.
pub const SYSTEM_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// A resolved class: its name (empty without one), value and policy.
struct Class {
    name: String,
    value: i64,
    policy: Option<String>,
}

fn class_of(pc: &Value) -> Class {
    Class {
        name: crate::objects::name(pc).to_string(),
        value: pc.get("value").and_then(Value::as_i64).unwrap_or(0),
        policy: pc
            .get("preemptionPolicy")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// Resolves the class of new pod `pod` and sets its priority fields.
pub async fn admit_pod(registry: &Registry, pod: &mut Value) -> ApiResult<()> {
    let pod_name = crate::objects::name(pod).to_string();
    let forbidden =
        |why: String| ApiError::forbidden_message(format!("pods {pod_name:?} is forbidden: {why}"));
    let info = registry
        .kinds()
        .lookup("scheduling.k8s.io/v1", "PriorityClass")
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let requested = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let class = match &requested {
        Some(name) => match registry.get_cached(&info, None, name).await {
            Ok(pc) => class_of(&pc),
            Err(e) if e.code == 404 => {
                return Err(forbidden(format!(
                    "no PriorityClass with name {name} was found"
                )));
            }
            Err(e) => return Err(e),
        },
        None => {
            // the global default with the highest value, else 0
            let page = registry.list(&info, None, &ListOptions::cached()).await?;
            page.items
                .iter()
                .filter(|pc| pc.get("globalDefault") == Some(&Value::Bool(true)))
                .map(class_of)
                .max_by_key(|c| c.value)
                .unwrap_or(Class {
                    name: String::new(),
                    value: 0,
                    policy: Some("PreemptLowerPriority".into()),
                })
        }
    };
    let Some(Value::Object(spec)) = pod.get_mut("spec") else {
        return Ok(());
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != class.value
    {
        return Err(forbidden(format!(
            "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
            class.value
        )));
    }
    if requested.is_none() && !class.name.is_empty() {
        spec.insert(
            "priorityClassName".into(),
            Value::String(class.name.clone()),
        );
    }
    spec.insert("priority".into(), Value::from(class.value));
    if let Some(policy) = class.policy {
        if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
            && given != policy
        {
            return Err(forbidden(format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
            )));
        }
        spec.insert("preemptionPolicy".into(), Value::String(policy));
    }
    Ok(())
}
