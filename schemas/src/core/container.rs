//! core/v1 containers: image, command, env, ports, resources, mounts, probes,
//! lifecycle hooks and security context.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::intstr::IntOrString;
use crate::quantity::Quantity;

/// A container in a pod.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    /// Unique within the pod (DNS label).
    pub name: String,
    /// The image reference.
    pub image: Option<String>,
    /// The entrypoint; replaces the image's ENTRYPOINT.
    pub command: Option<Vec<String>>,
    /// Arguments; replace the image's CMD.
    pub args: Option<Vec<String>>,
    /// The working directory.
    pub working_dir: Option<String>,
    /// Ports the container exposes (informational, and used by hostPort and named targetPorts).
    pub ports: Option<Vec<ContainerPort>>,
    /// Sources of environment variables taken whole.
    pub env_from: Option<Vec<EnvFromSource>>,
    /// Environment variables.
    pub env: Option<Vec<EnvVar>>,
    /// Requests and limits.
    pub resources: Option<ResourceRequirements>,
    /// How resources may be resized in place.
    pub resize_policy: Option<Vec<ContainerResizePolicy>>,
    /// `Always` makes an init container a sidecar.
    pub restart_policy: Option<String>,
    /// Volumes mounted into the container.
    pub volume_mounts: Option<Vec<VolumeMount>>,
    /// Block devices (accepted, not supported by korral's runtimes).
    pub volume_devices: Option<Vec<VolumeDevice>>,
    /// Restarts the container when it fails.
    pub liveness_probe: Option<Probe>,
    /// Removes the pod from service endpoints while it fails.
    pub readiness_probe: Option<Probe>,
    /// Holds off the other probes until it succeeds.
    pub startup_probe: Option<Probe>,
    /// Hooks run after start and before stop.
    pub lifecycle: Option<Lifecycle>,
    /// Where the termination message is read from.
    pub termination_message_path: Option<String>,
    /// `File` or `FallbackToLogsOnError`.
    pub termination_message_policy: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`.
    pub image_pull_policy: Option<String>,
    /// Security options.
    pub security_context: Option<SecurityContext>,
    /// Keep stdin open.
    pub stdin: Option<bool>,
    /// Close stdin after the first attach.
    pub stdin_once: Option<bool>,
    /// Allocate a TTY.
    pub tty: Option<bool>,
}

/// A port a container listens on.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerPort {
    /// An IANA_SVC_NAME, unique within the pod; services may refer to it.
    pub name: Option<String>,
    /// Port on the node, if any.
    pub host_port: Option<i32>,
    /// Port in the pod's network namespace.
    pub container_port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: Option<String>,
    /// The host IP to bind the host port to.
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
}

/// An environment variable.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// The variable name.
    pub name: String,
    /// A literal value; `$(VAR)` references are expanded.
    pub value: Option<String>,
    /// A value taken from elsewhere.
    pub value_from: Option<EnvVarSource>,
}

/// Where an environment variable's value comes from.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVarSource {
    /// A field of the pod (downward API).
    pub field_ref: Option<ObjectFieldSelector>,
    /// A resource of a container (downward API).
    pub resource_field_ref: Option<ResourceFieldSelector>,
    /// A key of a ConfigMap.
    pub config_map_key_ref: Option<KeySelector>,
    /// A key of a Secret.
    pub secret_key_ref: Option<KeySelector>,
}

/// A field of the pod, e.g. `metadata.name`, `status.podIP`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectFieldSelector {
    /// The version of the schema the path is written in.
    pub api_version: Option<String>,
    /// The path of the field.
    pub field_path: String,
}

/// A container's resource, e.g. `limits.cpu`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceFieldSelector {
    /// The container; defaults to the one the variable is in.
    pub container_name: Option<String>,
    /// `limits.cpu`, `requests.memory`, ...
    pub resource: String,
    /// The unit to express the value in.
    pub divisor: Option<Quantity>,
}

/// A key in a ConfigMap or Secret.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeySelector {
    /// The ConfigMap or Secret name.
    pub name: Option<String>,
    /// The key.
    pub key: String,
    /// Whether a missing object or key is allowed.
    pub optional: Option<bool>,
}

/// A ConfigMap or Secret whose keys all become environment variables.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvFromSource {
    /// Prepended to every key.
    pub prefix: Option<String>,
    /// The ConfigMap.
    pub config_map_ref: Option<LocalObjectRef>,
    /// The Secret.
    pub secret_ref: Option<LocalObjectRef>,
}

/// A reference by name to an object in the same namespace.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectRef {
    /// The object's name.
    pub name: Option<String>,
    /// Whether the object may be missing.
    pub optional: Option<bool>,
}

/// Compute resources: what the scheduler reserves (requests) and the runtime caps (limits).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRequirements {
    /// Maximum amounts.
    pub limits: Option<BTreeMap<String, Quantity>>,
    /// Minimum amounts reserved; default to the limits when unset.
    pub requests: Option<BTreeMap<String, Quantity>>,
    /// Dynamic resource claims (accepted, not supported).
    pub claims: Option<Vec<ResourceClaim>>,
}

/// A reference to a pod resource claim.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceClaim {
    /// The claim's name in `spec.resourceClaims`.
    pub name: String,
    /// A request within the claim.
    pub request: Option<String>,
}

/// How one resource may be resized.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerResizePolicy {
    /// `cpu` or `memory`.
    pub resource_name: String,
    /// `NotRequired` or `RestartContainer`.
    pub restart_policy: String,
}

/// A volume mounted into a container.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    /// The volume's name in `spec.volumes`.
    pub name: String,
    /// Mount read-only.
    pub read_only: Option<bool>,
    /// Recursive read-only mounts.
    pub recursive_read_only: Option<String>,
    /// Where in the container.
    pub mount_path: String,
    /// A path within the volume to mount instead of its root.
    pub sub_path: Option<String>,
    /// Mount propagation mode.
    pub mount_propagation: Option<String>,
    /// Like `subPath` with `$(VAR)` expansion.
    pub sub_path_expr: Option<String>,
}

/// A raw block device mapped into a container.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeDevice {
    /// The volume's name.
    pub name: String,
    /// The device path in the container.
    pub device_path: String,
}

/// A health check.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    /// Run a command; exit 0 is success.
    pub exec: Option<ExecAction>,
    /// An HTTP GET; 200–399 is success.
    pub http_get: Option<HttpGetAction>,
    /// A TCP connect.
    pub tcp_socket: Option<TcpSocketAction>,
    /// A gRPC health check (accepted, not supported).
    pub grpc: Option<GrpcAction>,
    /// Seconds after start before the first probe.
    pub initial_delay_seconds: Option<i32>,
    /// Seconds before a probe times out (default 1).
    pub timeout_seconds: Option<i32>,
    /// Seconds between probes (default 10).
    pub period_seconds: Option<i32>,
    /// Consecutive successes to count as healthy (default 1).
    pub success_threshold: Option<i32>,
    /// Consecutive failures to count as unhealthy (default 3).
    pub failure_threshold: Option<i32>,
    /// Overrides the pod's grace period when a liveness failure kills the container.
    pub termination_grace_period_seconds: Option<i64>,
}

/// A command to run in the container.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecAction {
    /// The command and its arguments; not run in a shell.
    pub command: Option<Vec<String>>,
}

/// An HTTP GET request.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGetAction {
    /// The path.
    pub path: Option<String>,
    /// Port number or name.
    pub port: IntOrString,
    /// Host; defaults to the pod IP.
    pub host: Option<String>,
    /// `HTTP` or `HTTPS`.
    pub scheme: Option<String>,
    /// Extra headers.
    pub http_headers: Option<Vec<HttpHeader>>,
}

/// An HTTP header.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// A TCP connection attempt.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSocketAction {
    /// Port number or name.
    pub port: IntOrString,
    /// Host; defaults to the pod IP.
    pub host: Option<String>,
}

/// A gRPC health check.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcAction {
    /// The port.
    pub port: i32,
    /// The service name.
    pub service: Option<String>,
}

/// Hooks run around the container's life.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lifecycle {
    /// Run right after the container starts.
    pub post_start: Option<LifecycleHandler>,
    /// Run before the container is stopped.
    pub pre_stop: Option<LifecycleHandler>,
    /// The signal to stop the container with.
    pub stop_signal: Option<String>,
}

/// One lifecycle hook.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LifecycleHandler {
    /// Run a command.
    pub exec: Option<ExecAction>,
    /// An HTTP GET.
    pub http_get: Option<HttpGetAction>,
    /// Deprecated TCP hook.
    pub tcp_socket: Option<TcpSocketAction>,
    /// Sleep.
    pub sleep: Option<SleepAction>,
}

/// Sleep for a while.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SleepAction {
    /// Seconds to sleep.
    pub seconds: i64,
}

/// Container security options.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    /// Run as this UID.
    pub run_as_user: Option<i64>,
    /// Run as this GID.
    pub run_as_group: Option<i64>,
    /// Refuse to start as root.
    pub run_as_non_root: Option<bool>,
    /// Read-only root filesystem.
    pub read_only_root_filesystem: Option<bool>,
    /// Privileged mode.
    pub privileged: Option<bool>,
    /// Whether a process may gain more privileges than its parent.
    pub allow_privilege_escalation: Option<bool>,
    /// Capabilities to add and drop.
    pub capabilities: Option<Capabilities>,
    /// SELinux options.
    pub se_linux_options: Option<SeLinuxOptions>,
    /// Seccomp profile.
    pub seccomp_profile: Option<SeccompProfile>,
    /// AppArmor profile.
    pub app_armor_profile: Option<AppArmorProfile>,
    /// `Default` or `Unmasked` /proc.
    pub proc_mount: Option<String>,
    /// Windows options (accepted, ignored).
    pub windows_options: Option<serde_json::Value>,
}

/// Linux capabilities.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    /// Added capabilities.
    pub add: Option<Vec<String>>,
    /// Dropped capabilities.
    pub drop: Option<Vec<String>>,
}

/// SELinux labels.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeLinuxOptions {
    /// User label.
    pub user: Option<String>,
    /// Role label.
    pub role: Option<String>,
    /// Type label.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Level label.
    pub level: Option<String>,
}

/// A seccomp profile.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeccompProfile {
    /// `RuntimeDefault`, `Unconfined` or `Localhost`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The profile path for `Localhost`.
    pub localhost_profile: Option<String>,
}

/// An AppArmor profile.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppArmorProfile {
    /// `RuntimeDefault`, `Unconfined` or `Localhost`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The profile name for `Localhost`.
    pub localhost_profile: Option<String>,
}
