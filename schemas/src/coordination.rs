//! coordination.k8s.io/v1 Lease: node heartbeats and leader election.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::meta::ObjectMeta;
use crate::resource::impl_resource;
use crate::time::MicroTime;

/// A lease held by one identity at a time.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lease {
    /// `coordination.k8s.io/v1`.
    pub api_version: Option<String>,
    /// `Lease`.
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The lease.
    pub spec: Option<LeaseSpec>,
}
impl_resource!(Lease, group: "coordination.k8s.io", version: "v1", plural: "leases", namespaced: true);

/// Who holds the lease and until when.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaseSpec {
    /// The holder.
    pub holder_identity: Option<String>,
    /// Seconds a holder must renew within.
    pub lease_duration_seconds: Option<i32>,
    /// When the current holder acquired it.
    pub acquire_time: Option<MicroTime>,
    /// When the holder last renewed it.
    pub renew_time: Option<MicroTime>,
    /// How many times it changed hands.
    pub lease_transitions: Option<i32>,
    /// The strategy for picking a leader (coordinated election).
    pub strategy: Option<String>,
    /// A proposed next holder.
    pub preferred_holder: Option<String>,
}
