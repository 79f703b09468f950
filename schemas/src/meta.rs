//! meta/v1: object metadata, owner references, label selectors, list metadata,
//! conditions and the `Status` object every API error is returned as.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::time::Time;

/// Metadata every persisted object has.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Unique within a namespace (DNS subdomain for most kinds).
    pub name: Option<String>,
    /// A prefix the server completes with a random suffix when `name` is empty.
    pub generate_name: Option<String>,
    /// The namespace of a namespaced object; empty for cluster-scoped ones.
    pub namespace: Option<String>,
    /// Deprecated; accepted and ignored.
    pub self_link: Option<String>,
    /// Set by the server at creation, unique in time and space.
    pub uid: Option<String>,
    /// The store revision of the last change; opaque to clients.
    pub resource_version: Option<String>,
    /// Bumped by the server on every change of the desired state (spec).
    pub generation: Option<i64>,
    /// Set by the server at creation.
    pub creation_timestamp: Option<Time>,
    /// Set by the server when deletion is requested and finalizers remain.
    pub deletion_timestamp: Option<Time>,
    /// Seconds the object is given to terminate gracefully.
    pub deletion_grace_period_seconds: Option<i64>,
    /// Key/value pairs used to select objects.
    pub labels: Option<BTreeMap<String, String>>,
    /// Non-identifying key/value pairs.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Objects this one depends on; it is garbage collected when they are gone.
    pub owner_references: Option<Vec<OwnerReference>>,
    /// Names that must be removed before the object is deleted from storage.
    pub finalizers: Option<Vec<String>>,
    /// Which field manager set which fields (server-side apply).
    pub managed_fields: Option<Vec<ManagedFieldsEntry>>,
}

impl ObjectMeta {
    /// The name, or "" when unset.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// The namespace, or "" when unset.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    /// The labels, empty when unset.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.labels.as_ref().unwrap_or(&EMPTY)
    }

    /// The annotations, empty when unset.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.annotations.as_ref().unwrap_or(&EMPTY)
    }
}

/// A reference from a dependent to its owner.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerReference {
    /// The owner's apiVersion.
    pub api_version: String,
    /// The owner's kind.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's uid.
    pub uid: String,
    /// Whether the owner is the managing controller; at most one reference may say so.
    pub controller: Option<bool>,
    /// Whether foreground deletion of the owner waits for this dependent.
    pub block_owner_deletion: Option<bool>,
}

/// One field manager's record of the fields it set.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedFieldsEntry {
    /// The manager's name (`kubectl`, `korral-intake`, ...).
    pub manager: Option<String>,
    /// `Apply` or `Update`.
    pub operation: Option<String>,
    /// The apiVersion the fields are expressed in.
    pub api_version: Option<String>,
    /// When the manager last changed the object.
    pub time: Option<Time>,
    /// Always `FieldsV1`.
    pub fields_type: Option<String>,
    /// The set of fields, in the `f:`/`k:`/`v:` encoding.
    #[serde(rename = "fieldsV1")]
    pub fields_v1: Option<Value>,
    /// The subresource the change was made through (`status`, `scale`), if any.
    pub subresource: Option<String>,
}

/// A label query: all of `matchLabels` and all of `matchExpressions` must hold.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Set-based requirements.
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// One set-based selector requirement.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In`/`NotIn`; must be empty for `Exists`/`DoesNotExist`.
    pub values: Option<Vec<String>>,
}

impl LabelSelector {
    /// Whether the selector is empty (an empty selector matches everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && self.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    }

    /// Whether `labels` satisfy this selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let labels_ok = self
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        labels_ok
            && self.match_expressions.iter().flatten().all(|r| {
                let values = r.values.as_deref().unwrap_or_default();
                match r.operator.as_str() {
                    "In" => labels.get(&r.key).is_some_and(|v| values.contains(v)),
                    "NotIn" => labels.get(&r.key).is_none_or(|v| !values.contains(v)),
                    "Exists" => labels.contains_key(&r.key),
                    "DoesNotExist" => !labels.contains_key(&r.key),
                    _ => false,
                }
            })
    }
}

/// Metadata of a list response.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListMeta {
    /// The store revision the list was read at.
    pub resource_version: Option<String>,
    /// Token for the next page, when `limit` cut the list.
    #[serde(rename = "continue")]
    pub continue_: Option<String>,
    /// How many items remain after this page, when known.
    pub remaining_item_count: Option<i64>,
    /// Deprecated; accepted and ignored.
    pub self_link: Option<String>,
}

/// A standard condition (meta/v1 `Condition`), used by korral's own kinds.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// The condition type in CamelCase, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The generation the condition was computed for.
    pub observed_generation: Option<i64>,
    /// When the status last changed.
    pub last_transition_time: Option<Time>,
    /// A CamelCase reason for the last transition.
    pub reason: Option<String>,
    /// A human-readable message.
    pub message: Option<String>,
}

/// The object every API error (and some successes) is returned as.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Status {
    /// `v1`.
    pub api_version: Option<String>,
    /// `Status`.
    pub kind: Option<String>,
    /// List metadata (usually empty).
    pub metadata: Option<ListMeta>,
    /// `Success` or `Failure`.
    pub status: Option<String>,
    /// A human-readable description.
    pub message: Option<String>,
    /// A machine-readable reason: NotFound, AlreadyExists, Conflict, Invalid, Gone, ...
    pub reason: Option<String>,
    /// More about the object concerned and the causes.
    pub details: Option<StatusDetails>,
    /// The HTTP status code.
    pub code: Option<i32>,
}

/// The object an error is about and the individual causes.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusDetails {
    /// The object's name.
    pub name: Option<String>,
    /// The object's group.
    pub group: Option<String>,
    /// The object's kind (the resource's plural for some errors, as Kubernetes does).
    pub kind: Option<String>,
    /// The object's uid.
    pub uid: Option<String>,
    /// Every cause, e.g. one per invalid field.
    pub causes: Option<Vec<StatusCause>>,
    /// When the client should retry, in seconds.
    pub retry_after_seconds: Option<i32>,
}

/// One cause of an error, e.g. an invalid field.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusCause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: Option<String>,
    /// A human-readable description.
    pub message: Option<String>,
    /// The field path, e.g. `spec.containers[0].image`.
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_matches_labels_and_expressions() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        }))
        .expect("selector");
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "c")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "a"), ("canary", "1")])));
        assert!(!sel.matches(&labels(&[("tier", "a")])));
        assert!(LabelSelector::default().matches(&labels(&[])));
    }

    #[test]
    fn unset_fields_are_omitted_and_unknown_fields_rejected() {
        let m = ObjectMeta {
            name: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&m).expect("ser"), r#"{"name":"x"}"#);
        assert!(serde_json::from_str::<ObjectMeta>(r#"{"nmae":"x"}"#).is_err());
        // kubectl sends `creationTimestamp: null` in generated objects
        assert!(serde_json::from_str::<ObjectMeta>(r#"{"creationTimestamp":null}"#).is_ok());
    }
}
