//! core/v1 scheduling constraints: node and pod affinity, tolerations,
//! taints and topology spread constraints.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::meta::LabelSelector;
use crate::time::Time;

/// Node affinity, pod affinity and pod anti-affinity.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Affinity {
    /// Constraints on the node's labels.
    pub node_affinity: Option<NodeAffinity>,
    /// Co-locate with pods matching a selector.
    pub pod_affinity: Option<PodAffinity>,
    /// Keep away from pods matching a selector.
    pub pod_anti_affinity: Option<PodAffinity>,
}

/// Required and preferred node constraints.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAffinity {
    /// Must hold for the pod to be scheduled.
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
    /// Scored: nodes matching more weight are preferred.
    pub preferred_during_scheduling_ignored_during_execution: Option<Vec<PreferredSchedulingTerm>>,
}

/// Terms ORed together.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelector {
    /// At least one term must match.
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// Requirements ANDed together.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelectorTerm {
    /// Requirements on node labels.
    pub match_expressions: Option<Vec<NodeSelectorRequirement>>,
    /// Requirements on node fields (`metadata.name`).
    pub match_fields: Option<Vec<NodeSelectorRequirement>>,
}

/// One requirement: `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelectorRequirement {
    /// The label key (or field name).
    pub key: String,
    /// The operator.
    pub operator: String,
    /// The values; one integer for `Gt`/`Lt`, none for `Exists`/`DoesNotExist`.
    pub values: Option<Vec<String>>,
}

/// A weighted preference.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferredSchedulingTerm {
    /// 1–100.
    pub weight: i32,
    /// The term.
    pub preference: NodeSelectorTerm,
}

/// Pod affinity or anti-affinity.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodAffinity {
    /// Must hold.
    pub required_during_scheduling_ignored_during_execution: Option<Vec<PodAffinityTerm>>,
    /// Scored.
    pub preferred_during_scheduling_ignored_during_execution: Option<Vec<WeightedPodAffinityTerm>>,
}

/// Pods matching `labelSelector` in `namespaces`, within the same `topologyKey` domain.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodAffinityTerm {
    /// Which pods.
    pub label_selector: Option<LabelSelector>,
    /// Which namespaces; the pod's own when empty.
    pub namespaces: Option<Vec<String>>,
    /// The node label that defines a domain (e.g. `kubernetes.io/hostname`).
    pub topology_key: String,
    /// Namespaces by label.
    pub namespace_selector: Option<LabelSelector>,
    /// Label keys whose values are taken from the incoming pod and ANDed in.
    pub match_label_keys: Option<Vec<String>>,
    /// Label keys whose values are taken from the incoming pod and excluded.
    pub mismatch_label_keys: Option<Vec<String>>,
}

/// A weighted pod affinity term.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedPodAffinityTerm {
    /// 1–100.
    pub weight: i32,
    /// The term.
    pub pod_affinity_term: PodAffinityTerm,
}

/// Lets a pod be scheduled onto (or stay on) a node with a matching taint.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    /// The taint key; empty with `Exists` matches all taints.
    pub key: Option<String>,
    /// `Equal` (default) or `Exists`.
    pub operator: Option<String>,
    /// The taint value for `Equal`.
    pub value: Option<String>,
    /// The effect to tolerate; empty means all.
    pub effect: Option<String>,
    /// For `NoExecute`: how long the pod stays after the taint appears.
    pub toleration_seconds: Option<i64>,
}

impl Toleration {
    /// Whether this toleration tolerates `taint` (as Kubernetes' `ToleratesTaint`).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if let Some(effect) = self.effect.as_deref().filter(|e| !e.is_empty())
            && effect != taint.effect
        {
            return false;
        }
        let key = self.key.as_deref().unwrap_or("");
        if !key.is_empty() && key != taint.key {
            return false;
        }
        match self.operator.as_deref().unwrap_or("Equal") {
            "Exists" => true,
            "" | "Equal" => {
                self.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
            }
            _ => false,
        }
    }
}

/// A node taint: repels pods that do not tolerate it.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
    /// When a `NoExecute` taint was added.
    pub time_added: Option<Time>,
}

/// How pods matching a selector are spread over topology domains.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologySpreadConstraint {
    /// The largest allowed difference between domains.
    pub max_skew: i32,
    /// The node label that defines a domain.
    pub topology_key: String,
    /// `DoNotSchedule` or `ScheduleAnyway`.
    pub when_unsatisfiable: String,
    /// Which pods count.
    pub label_selector: Option<LabelSelector>,
    /// Minimum number of eligible domains.
    pub min_domains: Option<i32>,
    /// `Honor` or `Ignore` node affinity when counting domains.
    pub node_affinity_policy: Option<String>,
    /// `Honor` or `Ignore` node taints when counting domains.
    pub node_taints_policy: Option<String>,
    /// Label keys whose values are taken from the incoming pod.
    pub match_label_keys: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn toleration_matching_follows_kubernetes() {
        let t = taint("dedicated", "gpu", "NoSchedule");
        let equal = Toleration {
            key: Some("dedicated".into()),
            value: Some("gpu".into()),
            ..Default::default()
        };
        assert!(equal.tolerates(&t));
        let wrong_value = Toleration {
            key: Some("dedicated".into()),
            value: Some("cpu".into()),
            ..Default::default()
        };
        assert!(!wrong_value.tolerates(&t));
        let exists_all = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert!(exists_all.tolerates(&t));
        let wrong_effect = Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        };
        assert!(!wrong_effect.tolerates(&t));
    }
}
