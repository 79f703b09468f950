//! core/v1 Pod: spec, status, template, and the `binding` and `eviction`
//! subresource bodies.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::core::container::Container;
use crate::core::scheduling::{Affinity, Toleration, TopologySpreadConstraint};
use crate::core::volume::Volume;
use crate::meta::ObjectMeta;
use crate::quantity::Quantity;
use crate::resource::impl_resource;
use crate::time::Time;

/// A group of containers scheduled together onto one node.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pod {
    /// `v1`.
    pub api_version: Option<String>,
    /// `Pod`.
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: Option<PodSpec>,
    /// Observed state, written by the node.
    pub status: Option<PodStatus>,
}
impl_resource!(Pod, group: "", version: "v1", plural: "pods", namespaced: true);

/// The pod template of a workload.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplateSpec {
    /// Metadata of the pods created from it.
    pub metadata: Option<ObjectMeta>,
    /// Spec of the pods created from it.
    pub spec: Option<PodSpec>,
}

/// What a pod should run and where.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSpec {
    /// The pod's volumes.
    pub volumes: Option<Vec<Volume>>,
    /// Run to completion, in order, before the containers start.
    pub init_containers: Option<Vec<Container>>,
    /// The containers; at least one.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// Debugging containers (accepted, not run).
    pub ephemeral_containers: Option<Vec<serde_json::Value>>,
    /// `Always` (default), `OnFailure` or `Never`.
    pub restart_policy: Option<String>,
    /// Seconds between SIGTERM and SIGKILL (default 30).
    pub termination_grace_period_seconds: Option<i64>,
    /// Seconds the pod may run before it is failed.
    pub active_deadline_seconds: Option<i64>,
    /// `ClusterFirst` (default), `ClusterFirstWithHostNet`, `Default` or `None`.
    pub dns_policy: Option<String>,
    /// Node labels the node must have.
    pub node_selector: Option<BTreeMap<String, String>>,
    /// The service account to run as (default `default`).
    pub service_account_name: Option<String>,
    /// Deprecated alias of `serviceAccountName`.
    pub service_account: Option<String>,
    /// Whether to mount the service account token.
    pub automount_service_account_token: Option<bool>,
    /// The node the pod is bound to; set by the scheduler.
    pub node_name: Option<String>,
    /// Use the node's network namespace.
    pub host_network: Option<bool>,
    /// Use the node's PID namespace.
    #[serde(rename = "hostPID")]
    pub host_pid: Option<bool>,
    /// Use the node's IPC namespace.
    #[serde(rename = "hostIPC")]
    pub host_ipc: Option<bool>,
    /// Share one PID namespace between the pod's containers.
    pub share_process_namespace: Option<bool>,
    /// Pod-level security options.
    pub security_context: Option<PodSecurityContext>,
    /// Secrets for pulling images.
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// The pod's hostname (default: its name).
    pub hostname: Option<String>,
    /// Makes the FQDN `<hostname>.<subdomain>.<ns>.svc.<domain>`.
    pub subdomain: Option<String>,
    /// Scheduling constraints.
    pub affinity: Option<Affinity>,
    /// Which scheduler (default `default-scheduler`).
    pub scheduler_name: Option<String>,
    /// Taints the pod tolerates.
    pub tolerations: Option<Vec<Toleration>>,
    /// Extra /etc/hosts entries.
    pub host_aliases: Option<Vec<HostAlias>>,
    /// Priority class name.
    pub priority_class_name: Option<String>,
    /// Resolved priority.
    pub priority: Option<i32>,
    /// DNS resolver options.
    pub dns_config: Option<PodDnsConfig>,
    /// Extra conditions that must be true for readiness.
    pub readiness_gates: Option<Vec<PodReadinessGate>>,
    /// Runtime class name.
    pub runtime_class_name: Option<String>,
    /// Whether service environment variables are injected (default true).
    pub enable_service_links: Option<bool>,
    /// `PreemptLowerPriority` or `Never`.
    pub preemption_policy: Option<String>,
    /// Resources of the pod sandbox itself.
    pub overhead: Option<BTreeMap<String, Quantity>>,
    /// How matching pods spread across domains.
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// Use the FQDN as hostname.
    #[serde(rename = "setHostnameAsFQDN")]
    pub set_hostname_as_fqdn: Option<bool>,
    /// The OS the pod runs on.
    pub os: Option<PodOs>,
    /// Use the host's user namespace.
    pub host_users: Option<bool>,
    /// Gates that hold the pod from scheduling while present.
    pub scheduling_gates: Option<Vec<PodSchedulingGate>>,
    /// Dynamic resource claims (accepted, not supported).
    pub resource_claims: Option<Vec<serde_json::Value>>,
    /// Pod-level requests and limits.
    pub resources: Option<crate::core::container::ResourceRequirements>,
}

/// Pod-level security options.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSecurityContext {
    /// Run containers as this UID.
    pub run_as_user: Option<i64>,
    /// Run containers as this GID.
    pub run_as_group: Option<i64>,
    /// Refuse to start containers as root.
    pub run_as_non_root: Option<bool>,
    /// Extra groups.
    pub supplemental_groups: Option<Vec<i64>>,
    /// `Merge` or `Strict`.
    pub supplemental_groups_policy: Option<String>,
    /// Group owning volumes.
    pub fs_group: Option<i64>,
    /// `OnRootMismatch` or `Always`.
    pub fs_group_change_policy: Option<String>,
    /// Namespaced sysctls.
    pub sysctls: Option<Vec<Sysctl>>,
    /// SELinux options.
    pub se_linux_options: Option<crate::core::container::SeLinuxOptions>,
    /// SELinux change policy.
    pub se_linux_change_policy: Option<String>,
    /// Seccomp profile.
    pub seccomp_profile: Option<crate::core::container::SeccompProfile>,
    /// AppArmor profile.
    pub app_armor_profile: Option<crate::core::container::AppArmorProfile>,
    /// Windows options (accepted, ignored).
    pub windows_options: Option<serde_json::Value>,
}

/// A sysctl.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sysctl {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// A reference by name in the same namespace.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    /// The name.
    pub name: Option<String>,
}

/// An /etc/hosts entry.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostAlias {
    /// The IP.
    pub ip: String,
    /// Hostnames for it.
    pub hostnames: Option<Vec<String>>,
}

/// DNS resolver options.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDnsConfig {
    /// Name server IPs.
    pub nameservers: Option<Vec<String>>,
    /// Search domains.
    pub searches: Option<Vec<String>>,
    /// resolv.conf options.
    pub options: Option<Vec<PodDnsConfigOption>>,
}

/// A resolv.conf option.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDnsConfigOption {
    /// Name, e.g. `ndots`.
    pub name: Option<String>,
    /// Value.
    pub value: Option<String>,
}

/// An extra readiness condition.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodReadinessGate {
    /// The condition type.
    pub condition_type: String,
}

/// The pod's operating system.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodOs {
    /// `linux` or `windows`.
    pub name: String,
}

/// A scheduling gate.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSchedulingGate {
    /// The gate's name.
    pub name: String,
}

/// What the node observed of the pod.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    pub phase: Option<String>,
    /// PodScheduled, Initialized, ContainersReady, Ready, ...
    pub conditions: Option<Vec<PodCondition>>,
    /// Why the pod is in its phase.
    pub message: Option<String>,
    /// A CamelCase reason, e.g. `Evicted`.
    pub reason: Option<String>,
    /// The node the scheduler nominated during preemption.
    pub nominated_node_name: Option<String>,
    /// The node's IP.
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
    /// The node's IPs.
    #[serde(rename = "hostIPs")]
    pub host_ips: Option<Vec<PodIp>>,
    /// The pod's IP.
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    /// The pod's IPs.
    #[serde(rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIp>>,
    /// When the node acknowledged the pod.
    pub start_time: Option<Time>,
    /// Init container statuses.
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
    /// Container statuses.
    pub container_statuses: Option<Vec<ContainerStatus>>,
    /// Ephemeral container statuses.
    pub ephemeral_container_statuses: Option<Vec<ContainerStatus>>,
    /// `Guaranteed`, `Burstable` or `BestEffort`.
    #[serde(rename = "qosClass")]
    pub qos_class: Option<String>,
    /// Status of an in-place resize.
    pub resize: Option<String>,
    /// Resource claim statuses (accepted).
    pub resource_claim_statuses: Option<Vec<serde_json::Value>>,
    /// The generation the status was written for.
    pub observed_generation: Option<i64>,
}

/// One IP of a pod or host.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodIp {
    /// The address.
    pub ip: String,
}

/// A pod condition.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodCondition {
    /// The condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The generation the condition was computed for.
    pub observed_generation: Option<i64>,
    /// When it was last probed.
    pub last_probe_time: Option<Time>,
    /// When the status last changed.
    pub last_transition_time: Option<Time>,
    /// A CamelCase reason.
    pub reason: Option<String>,
    /// A human-readable message.
    pub message: Option<String>,
}

/// The status of one container.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerStatus {
    /// The container's name.
    pub name: String,
    /// The current state.
    pub state: Option<ContainerState>,
    /// The state before the last restart.
    pub last_state: Option<ContainerState>,
    /// Whether the readiness probe passes.
    pub ready: bool,
    /// How many times the container restarted.
    pub restart_count: i32,
    /// The image it runs.
    pub image: String,
    /// The image's ID.
    #[serde(rename = "imageID")]
    pub image_id: String,
    /// `<runtime>://<id>`.
    #[serde(rename = "containerID")]
    pub container_id: Option<String>,
    /// Whether the container has started (startup probe passed).
    pub started: Option<bool>,
    /// Resources allocated.
    pub allocated_resources: Option<BTreeMap<String, Quantity>>,
    /// Resources applied.
    pub resources: Option<crate::core::container::ResourceRequirements>,
    /// Volume mount statuses (accepted).
    pub volume_mounts: Option<Vec<serde_json::Value>>,
    /// The user the container runs as (accepted).
    pub user: Option<serde_json::Value>,
    /// Allocated resource statuses (accepted).
    pub allocated_resources_status: Option<Vec<serde_json::Value>>,
    /// The effective stop signal.
    pub stop_signal: Option<String>,
}

/// Exactly one of waiting, running, terminated.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerState {
    /// Not yet running.
    pub waiting: Option<ContainerStateWaiting>,
    /// Running.
    pub running: Option<ContainerStateRunning>,
    /// Exited.
    pub terminated: Option<ContainerStateTerminated>,
}

/// A waiting container.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerStateWaiting {
    /// E.g. `ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`.
    pub reason: Option<String>,
    /// Details.
    pub message: Option<String>,
}

/// A running container.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerStateRunning {
    /// When it started.
    pub started_at: Option<Time>,
}

/// An exited container.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerStateTerminated {
    /// The exit code.
    pub exit_code: i32,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// E.g. `Completed`, `Error`, `OOMKilled`.
    pub reason: Option<String>,
    /// Details.
    pub message: Option<String>,
    /// When it started.
    pub started_at: Option<Time>,
    /// When it exited.
    pub finished_at: Option<Time>,
    /// `<runtime>://<id>`.
    #[serde(rename = "containerID")]
    pub container_id: Option<String>,
}

/// The body of `pods/binding`: binds a pod to a node.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Binding {
    /// `v1`.
    pub api_version: Option<String>,
    /// `Binding`.
    pub kind: Option<String>,
    /// The pod's name and namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The node.
    pub target: ObjectReference,
}

/// A reference to any object.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectReference {
    /// Its apiVersion.
    pub api_version: Option<String>,
    /// Its kind.
    pub kind: Option<String>,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// Its uid.
    pub uid: Option<String>,
    /// The resourceVersion it was seen at.
    pub resource_version: Option<String>,
    /// A field within it, e.g. `spec.containers{web}`.
    pub field_path: Option<String>,
}

/// The body of `pods/eviction` (policy/v1 Eviction).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Eviction {
    /// `policy/v1`.
    pub api_version: Option<String>,
    /// `Eviction`.
    pub kind: Option<String>,
    /// The pod's name and namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// How to delete.
    pub delete_options: Option<DeleteOptions>,
}

/// Options of a delete request.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteOptions {
    /// `v1`.
    pub api_version: Option<String>,
    /// `DeleteOptions`.
    pub kind: Option<String>,
    /// Seconds before the object is deleted; 0 deletes at once.
    pub grace_period_seconds: Option<i64>,
    /// Must match for the delete to proceed.
    pub preconditions: Option<Preconditions>,
    /// Deprecated: use `propagationPolicy`.
    pub orphan_dependents: Option<bool>,
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation_policy: Option<String>,
    /// `["All"]` to not persist.
    pub dry_run: Option<Vec<String>>,
    /// Ignore failures of unsafe deletes of corrupt objects.
    pub ignore_store_read_error_with_cluster_breaking_potential: Option<bool>,
}

/// Delete preconditions.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preconditions {
    /// The uid the object must have.
    pub uid: Option<String>,
    /// The resourceVersion the object must have.
    pub resource_version: Option<String>,
}
