//! core/v1 Event: a record of something that happened to an object, shown by
//! `kubectl describe` and `kubectl get events`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::core::pod::ObjectReference;
use crate::meta::ObjectMeta;
use crate::resource::impl_resource;
use crate::time::{MicroTime, Time};

/// Something that happened to an object.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// `v1`.
    pub api_version: Option<String>,
    /// `Event`.
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The object the event is about.
    #[serde(default)]
    pub involved_object: ObjectReference,
    /// A CamelCase reason, e.g. `FailedScheduling`.
    pub reason: Option<String>,
    /// A human-readable description.
    pub message: Option<String>,
    /// The component that reported it.
    pub source: Option<EventSource>,
    /// When it was first seen.
    pub first_timestamp: Option<Time>,
    /// When it was last seen.
    pub last_timestamp: Option<Time>,
    /// How many times it happened.
    pub count: Option<i32>,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// When it first happened, precisely.
    pub event_time: Option<MicroTime>,
    /// A series of repeats.
    pub series: Option<EventSeries>,
    /// What was done, e.g. `Binding`.
    pub action: Option<String>,
    /// A second object involved.
    pub related: Option<ObjectReference>,
    /// The controller that emitted it.
    pub reporting_component: Option<String>,
    /// Its instance.
    pub reporting_instance: Option<String>,
}
impl_resource!(Event, group: "", version: "v1", plural: "events", namespaced: true);

/// The reporting component.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSource {
    /// The component.
    pub component: Option<String>,
    /// The node it ran on.
    pub host: Option<String>,
}

/// A series of repeated events.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSeries {
    /// Occurrences.
    pub count: Option<i32>,
    /// The last occurrence.
    pub last_observed_time: Option<MicroTime>,
}
