//! Whether an applied object is healthy, by kstatus's rules
//! (sigs.k8s.io/cli-utils/pkg/kstatus): pure functions over the live JSON.
//!
//! Every object first gets the generic checks — terminating, the
//! controller has not observed the newest generation, a `Reconciling` or
//! `Stalled` condition — then its kind's: Deployments available and
//! updated, StatefulSets and DaemonSets rolled out, ReplicaSets ready, Jobs
//! complete, Pods running and ready (or succeeded), PersistentVolumeClaims
//! bound, LoadBalancer Services with an address, and everything else
//! (custom resources) by its `Ready` condition; an object without any of
//! these is Current. A Deployment's "why" comes from its pods
//! ([`pod_reason`]: container waiting reasons such as `ImagePullBackOff`,
//! `CrashLoopBackOff`, or an unschedulable pod).

use std::collections::BTreeMap;

use serde_json::Value;

/// kstatus's statuses (`Unknown` is not used: an object we cannot read is
/// `NotFound`, one we can is judged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// As declared, and its controllers are done.
    Current,
    /// Still converging.
    InProgress,
    /// Being deleted.
    Terminating,
    /// Not in the cluster.
    NotFound,
    /// Will not converge without a change (e.g. a progress deadline exceeded, a failed Job).
    Failed,
}

impl Status {
    /// kstatus's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Current => "Current",
            Status::InProgress => "InProgress",
            Status::Terminating => "Terminating",
            Status::NotFound => "NotFound",
            Status::Failed => "Failed",
        }
    }
}

/// One object's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// Its status.
    pub status: Status,
    /// Why, in a few words (e.g. `0/3 available`).
    pub message: String,
}

impl Health {
    fn new(status: Status, message: impl Into<String>) -> Health {
        Health {
            status,
            message: message.into(),
        }
    }

    fn current(message: impl Into<String>) -> Health {
        Health::new(Status::Current, message)
    }

    fn in_progress(message: impl Into<String>) -> Health {
        Health::new(Status::InProgress, message)
    }

    /// Whether the object is healthy (Current).
    pub fn is_current(&self) -> bool {
        self.status == Status::Current
    }
}

fn int(o: &Value, pointer: &str, default: i64) -> i64 {
    o.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

fn text<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The condition of `type_` in `status.conditions`.
pub fn condition<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    o.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn condition_is(o: &Value, type_: &str, status: &str) -> bool {
    condition(o, type_).is_some_and(|c| c["status"] == status)
}

/// `reason: message` of a condition (whichever is set).
fn condition_text(c: &Value) -> String {
    let reason = c["reason"].as_str().unwrap_or("");
    let message = c["message"].as_str().unwrap_or("");
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{reason}: {message}"),
        (false, true) => reason.to_string(),
        (true, false) => message.to_string(),
        (true, true) => String::new(),
    }
}

/// kstatus's checks every kind gets first.
fn generic(o: &Value) -> Option<Health> {
    if o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Some(Health::new(Status::Terminating, "being deleted"));
    }
    let generation = int(o, "/metadata/generation", 0);
    if let Some(observed) = o
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        && observed < generation
    {
        return Some(Health::in_progress(format!(
            "generation {generation} not observed yet (observed {observed})"
        )));
    }
    if let Some(c) = condition(o, "Stalled").filter(|c| c["status"] == "True") {
        return Some(Health::new(
            Status::Failed,
            format!("Stalled: {}", condition_text(c)),
        ));
    }
    if let Some(c) = condition(o, "Reconciling").filter(|c| c["status"] == "True") {
        return Some(Health::in_progress(format!(
            "Reconciling: {}",
            condition_text(c)
        )));
    }
    None
}

/// A status without `observedGeneration` has not been written by the
/// controller yet (the kinds below always write it).
fn unobserved(o: &Value) -> Option<Health> {
    o.pointer("/status/observedGeneration")
        .is_none()
        .then(|| Health::in_progress("not observed by its controller yet"))
}

fn deployment(o: &Value) -> Health {
    if let Some(h) = unobserved(o) {
        return h;
    }
    if let Some(c) = condition(o, "Progressing")
        && c["reason"] == "ProgressDeadlineExceeded"
    {
        return Health::new(Status::Failed, "progress deadline exceeded");
    }
    let spec = int(o, "/spec/replicas", 1);
    let replicas = int(o, "/status/replicas", 0);
    let updated = int(o, "/status/updatedReplicas", 0);
    let ready = int(o, "/status/readyReplicas", 0);
    let available = int(o, "/status/availableReplicas", 0);
    if spec > replicas {
        return Health::in_progress(format!("{available}/{spec} available, {replicas} created"));
    }
    if spec > updated {
        return Health::in_progress(format!("{updated}/{spec} updated"));
    }
    if replicas > spec {
        return Health::in_progress(format!("{} old pods terminating", replicas - spec));
    }
    if updated > available || spec > available {
        return Health::in_progress(format!("{available}/{spec} available"));
    }
    if spec > ready {
        return Health::in_progress(format!("{ready}/{spec} ready"));
    }
    if spec > 0 && !condition_is(o, "Available", "True") {
        return Health::in_progress("not Available yet");
    }
    Health::current(format!("{available}/{spec} available"))
}

fn statefulset(o: &Value) -> Health {
    if let Some(h) = unobserved(o) {
        return h;
    }
    if text(o, "/spec/updateStrategy/type") == "OnDelete" {
        return Health::current("updateStrategy OnDelete");
    }
    let spec = int(o, "/spec/replicas", 1);
    let replicas = int(o, "/status/replicas", 0);
    let ready = int(o, "/status/readyReplicas", 0);
    let updated = int(o, "/status/updatedReplicas", 0);
    let partition = int(o, "/spec/updateStrategy/rollingUpdate/partition", 0);
    if spec > ready {
        return Health::in_progress(format!("{ready}/{spec} ready"));
    }
    if replicas > spec {
        return Health::in_progress(format!("{} pods terminating", replicas - spec));
    }
    if partition > 0 {
        let expected = (spec - partition).max(0);
        if updated < expected {
            return Health::in_progress(format!(
                "{updated}/{expected} updated (partition {partition})"
            ));
        }
        return Health::current(format!(
            "{updated}/{expected} updated (partition {partition})"
        ));
    }
    if spec > updated {
        return Health::in_progress(format!("{updated}/{spec} updated"));
    }
    let current = text(o, "/status/currentRevision");
    let update = text(o, "/status/updateRevision");
    if !update.is_empty() && current != update {
        return Health::in_progress(format!("waiting for revision {update}"));
    }
    Health::current(format!("{ready}/{spec} ready"))
}

fn daemonset(o: &Value) -> Health {
    if let Some(h) = unobserved(o) {
        return h;
    }
    let desired = int(o, "/status/desiredNumberScheduled", -1);
    if desired < 0 {
        return Health::in_progress("not scheduled yet");
    }
    let scheduled = int(o, "/status/currentNumberScheduled", 0);
    let updated = int(o, "/status/updatedNumberScheduled", 0);
    let available = int(o, "/status/numberAvailable", 0);
    let ready = int(o, "/status/numberReady", 0);
    if desired > scheduled {
        return Health::in_progress(format!("{scheduled}/{desired} scheduled"));
    }
    if desired > updated {
        return Health::in_progress(format!("{updated}/{desired} updated"));
    }
    if desired > available {
        return Health::in_progress(format!("{available}/{desired} available"));
    }
    if desired > ready {
        return Health::in_progress(format!("{ready}/{desired} ready"));
    }
    Health::current(format!("{available}/{desired} available"))
}

fn replicaset(o: &Value) -> Health {
    if let Some(h) = unobserved(o) {
        return h;
    }
    let spec = int(o, "/spec/replicas", 1);
    let replicas = int(o, "/status/replicas", 0);
    let ready = int(o, "/status/readyReplicas", 0);
    let available = int(o, "/status/availableReplicas", 0);
    if spec > available || spec > ready {
        return Health::in_progress(format!("{available}/{spec} available"));
    }
    if replicas > spec {
        return Health::in_progress(format!("{} pods terminating", replicas - spec));
    }
    Health::current(format!("{available}/{spec} available"))
}

fn job(o: &Value) -> Health {
    let succeeded = int(o, "/status/succeeded", 0);
    let failed = int(o, "/status/failed", 0);
    let active = int(o, "/status/active", 0);
    let completions = int(o, "/spec/completions", 1);
    if let Some(c) = condition(o, "Failed").filter(|c| c["status"] == "True") {
        return Health::new(
            Status::Failed,
            format!("failed ({failed} failed pods): {}", condition_text(c)),
        );
    }
    if condition_is(o, "Complete", "True") {
        return Health::current(format!("complete: {succeeded}/{completions} succeeded"));
    }
    if o.pointer("/status/startTime").is_none() {
        return Health::in_progress("not started yet");
    }
    Health::in_progress(format!(
        "running: {succeeded}/{completions} succeeded, {active} active, {failed} failed"
    ))
}

fn pod(o: &Value) -> Health {
    match text(o, "/status/phase") {
        "Succeeded" => Health::current("completed"),
        "Failed" => Health::new(
            Status::Failed,
            format!("failed: {}", text(o, "/status/reason")),
        ),
        "Running" if condition_is(o, "Ready", "True") => Health::current("running and ready"),
        phase => {
            let why = pod_reason(std::slice::from_ref(o));
            if why.as_deref() == Some("CrashLoopBackOff") {
                return Health::new(Status::Failed, "CrashLoopBackOff");
            }
            let phase = if phase.is_empty() { "Pending" } else { phase };
            Health::in_progress(match why {
                Some(w) => format!("{phase}, not ready: {w}"),
                None => format!("{phase}, not ready"),
            })
        }
    }
}

fn claim(o: &Value) -> Health {
    match text(o, "/status/phase") {
        "Bound" => Health::current("bound"),
        "" => Health::in_progress("not bound yet"),
        phase => Health::in_progress(format!("{phase}, not bound")),
    }
}

fn service(o: &Value) -> Health {
    if text(o, "/spec/type") != "LoadBalancer" {
        return Health::current("ready");
    }
    let has_address = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|i| !i.is_empty());
    if has_address {
        Health::current("load balancer address assigned")
    } else {
        Health::in_progress("waiting for a load balancer address")
    }
}

/// Custom resources and other kinds: their `Ready` condition, if any.
fn by_ready_condition(o: &Value) -> Health {
    match condition(o, "Ready") {
        Some(c) if c["status"] == "True" => Health::current("Ready"),
        Some(c) if c["status"] == "False" => {
            Health::in_progress(format!("not Ready: {}", condition_text(c)))
        }
        Some(c) => Health::in_progress(format!("Ready unknown: {}", condition_text(c))),
        None => Health::current("no health rules; exists"),
    }
}

/// The health of a live object (its `apiVersion` and `kind` say which rules apply).
pub fn assess(o: &Value) -> Health {
    if let Some(h) = generic(o) {
        return h;
    }
    let api_version = text(o, "/apiVersion");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, text(o, "/kind")) {
        ("apps", "Deployment") => deployment(o),
        ("apps", "StatefulSet") => statefulset(o),
        ("apps", "DaemonSet") => daemonset(o),
        ("apps", "ReplicaSet") => replicaset(o),
        ("batch", "Job") => job(o),
        ("", "Pod") => pod(o),
        ("", "PersistentVolumeClaim") => claim(o),
        ("", "Service") => service(o),
        _ => by_ready_condition(o),
    }
}

/// Kinds without a status: existing is being healthy (kstatus judges them
/// Current), so health checks need not read them.
pub fn without_status(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        (
            "",
            "ConfigMap" | "Secret" | "ServiceAccount" | "Endpoints" | "LimitRange"
        ) | (
            "rbac.authorization.k8s.io",
            "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding"
        ) | ("scheduling.k8s.io", "PriorityClass")
            | ("storage.k8s.io", "StorageClass")
            | ("networking.k8s.io", "IngressClass")
    )
}

/// Whether the health of objects of this kind depends on their pods (whose
/// reasons explain it).
pub fn has_pods(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
    )
}

/// Waiting reasons that say nothing beyond "starting".
const ROUTINE: &[&str] = &["ContainerCreating", "PodInitializing"];

/// Why pods are not ready: the most frequent container waiting reason (or
/// terminated reason of a restarting container) among pods that are not
/// ready, or `Unschedulable: …` for a pod that cannot be placed; routine
/// reasons (`ContainerCreating`) only when there is nothing else.
pub fn pod_reason(pods: &[Value]) -> Option<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for p in pods {
        if p.pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
            || condition_is(p, "Ready", "True")
        {
            continue;
        }
        let statuses = ["/status/initContainerStatuses", "/status/containerStatuses"];
        let mut found = false;
        for s in statuses
            .iter()
            .filter_map(|s| p.pointer(s).and_then(Value::as_array))
            .flatten()
        {
            let reason = s
                .pointer("/state/waiting/reason")
                .or_else(|| s.pointer("/state/terminated/reason"))
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty() && *r != "Completed");
            if let Some(r) = reason {
                *counts.entry(r.to_string()).or_default() += 1;
                found = true;
            }
        }
        // containers with a state were placed: a stale scheduling condition says less
        if !found && let Some(c) = condition(p, "PodScheduled").filter(|c| c["status"] == "False") {
            *counts.entry(condition_text(c)).or_default() += 1;
        }
    }
    let weight = |r: &str| (!ROUTINE.contains(&r), counts.get(r).copied().unwrap_or(0));
    counts
        .keys()
        .max_by_key(|r| weight(r))
        .map(|r| r.to_string())
}

/// The label selector of a workload as a query (`a=b,c in (d,e)`); `None`
/// when it has none (or an operator no query can express).
pub fn selector_query(o: &Value) -> Option<String> {
    let selector = o.pointer("/spec/selector")?;
    let mut parts: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    for e in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str()?;
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str()? {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// An object that is not healthy, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unhealthy {
    /// `Kind/name` (with ` -n NAMESPACE` outside the source's namespace).
    pub object: String,
    /// Its health.
    pub health: Health,
    /// Why its pods are not ready, if it has pods.
    pub why: Option<String>,
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.health.message)?;
        if let Some(w) = &self.why {
            write!(f, ": {w}")?;
        }
        Ok(())
    }
}

/// At most this many objects are named in a message (the rest are counted).
pub const MAX_NAMED: usize = 5;

/// `Deployment/web: 0/3 available: ImagePullBackOff; Job/migrate: …`.
pub fn summary(unhealthy: &[Unhealthy]) -> String {
    let mut s: Vec<String> = unhealthy
        .iter()
        .take(MAX_NAMED)
        .map(ToString::to_string)
        .collect();
    if unhealthy.len() > MAX_NAMED {
        s.push(format!("and {} more", unhealthy.len() - MAX_NAMED));
    }
    s.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(spec: i64, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": spec, "selector": {"matchLabels": {"app": "web"}}},
            "status": status})
    }

    #[test]
    fn deployments_are_current_when_every_replica_is_updated_and_available() {
        let ok = deploy(
            3,
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                "availableReplicas": 3, "conditions": [{"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}),
        );
        assert_eq!(assess(&ok).status, Status::Current);
        let none_available = deploy(
            3,
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 0,
                "availableReplicas": 0, "conditions": [{"type": "Available", "status": "False"}]}),
        );
        assert_eq!(
            assess(&none_available),
            Health::in_progress("0/3 available")
        );
        let rolling = deploy(
            3,
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(assess(&rolling).message, "1/3 updated");
        let surplus = deploy(
            3,
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(assess(&surplus).message, "1 old pods terminating");
        let stale = deploy(3, json!({"observedGeneration": 1, "replicas": 3}));
        assert_eq!(assess(&stale).status, Status::InProgress);
        assert!(assess(&stale).message.contains("generation 2"));
        assert_eq!(assess(&deploy(3, json!({}))).status, Status::InProgress);
        let deadline = deploy(
            3,
            json!({"observedGeneration": 2, "replicas": 3, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert_eq!(assess(&deadline).status, Status::Failed);
        let zero = deploy(0, json!({"observedGeneration": 2}));
        assert_eq!(assess(&zero).status, Status::Current);
    }

    #[test]
    fn statefulsets_and_daemonsets_are_current_when_rolled_out() {
        let sts = |status: Value| {
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"generation": 1},
                "spec": {"replicas": 2}, "status": status})
        };
        let done = sts(
            json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
            "currentRevision": "r2", "updateRevision": "r2"}),
        );
        assert!(assess(&done).is_current());
        let old_revision = sts(
            json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
            "currentRevision": "r1", "updateRevision": "r2"}),
        );
        assert_eq!(assess(&old_revision).message, "waiting for revision r2");
        let not_ready = sts(json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 1}));
        assert_eq!(assess(&not_ready).message, "1/2 ready");

        let ds = |status: Value| json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"generation": 1}, "status": status});
        let done = ds(
            json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
            "updatedNumberScheduled": 2, "numberAvailable": 2, "numberReady": 2}),
        );
        assert!(assess(&done).is_current());
        let unavailable = ds(
            json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
            "updatedNumberScheduled": 2, "numberAvailable": 1, "numberReady": 1}),
        );
        assert_eq!(assess(&unavailable).message, "1/2 available");
        assert_eq!(
            assess(&ds(json!({"observedGeneration": 1}))).status,
            Status::InProgress
        );
    }

    #[test]
    fn jobs_are_current_when_complete_and_failed_when_failed() {
        let job = |status: Value| json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {}, "status": status});
        assert!(
            assess(&job(
                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
            ))
            .is_current()
        );
        let failed = assess(&job(json!({"failed": 2, "startTime": "x", "conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]})));
        assert_eq!(failed.status, Status::Failed);
        assert!(
            failed.message.contains("BackoffLimitExceeded"),
            "{failed:?}"
        );
        assert_eq!(assess(&job(json!({}))).message, "not started yet");
        assert_eq!(
            assess(&job(json!({"startTime": "x", "active": 1}))).status,
            Status::InProgress
        );
    }

    #[test]
    fn claims_services_and_pods() {
        let pvc = |phase: &str| json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": phase}});
        assert!(assess(&pvc("Bound")).is_current());
        assert_eq!(assess(&pvc("Pending")).status, Status::InProgress);
        let svc = |t: &str, status: Value| json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": t}, "status": status});
        assert!(assess(&svc("ClusterIP", json!({}))).is_current());
        assert_eq!(
            assess(&svc("LoadBalancer", json!({"loadBalancer": {}}))).status,
            Status::InProgress
        );
        assert!(
            assess(&svc(
                "LoadBalancer",
                json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}})
            ))
            .is_current()
        );
        let crash = json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running",
            "containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(assess(&crash).status, Status::Failed);
        let done = json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Succeeded"}});
        assert!(assess(&done).is_current());
    }

    #[test]
    fn custom_resources_follow_their_conditions() {
        let cr = |conditions: Value| {
            json!({"apiVersion": "shop.example.com/v1", "kind": "Order", "metadata": {"generation": 3},
                "status": {"observedGeneration": 3, "conditions": conditions}})
        };
        assert!(assess(&cr(json!([{"type": "Ready", "status": "True"}]))).is_current());
        let waiting = assess(&cr(
            json!([{"type": "Ready", "status": "False", "reason": "Waiting", "message": "no stock"}]),
        ));
        assert_eq!(waiting, Health::in_progress("not Ready: Waiting: no stock"));
        assert_eq!(
            assess(&cr(
                json!([{"type": "Stalled", "status": "True", "reason": "Broken"}])
            ))
            .status,
            Status::Failed
        );
        assert_eq!(
            assess(&cr(json!([{"type": "Reconciling", "status": "True"}]))).status,
            Status::InProgress
        );
        assert!(assess(&cr(json!([]))).is_current());
        let terminating = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(assess(&terminating).status, Status::Terminating);
    }

    #[test]
    fn kinds_without_status_need_no_reading() {
        assert!(without_status("", "ConfigMap"));
        assert!(without_status("rbac.authorization.k8s.io", "RoleBinding"));
        assert!(!without_status("apps", "Deployment"));
        assert!(!without_status("shop.example.com", "ConfigMap"));
        assert!(!without_status("", "PersistentVolumeClaim"));
    }

    #[test]
    fn pod_reasons_prefer_the_telling_reason() {
        let waiting = |reason: &str| {
            json!({"status": {"phase": "Pending", "containerStatuses": [
                {"name": "c", "state": {"waiting": {"reason": reason}}}]}})
        };
        let pods = vec![
            waiting("ImagePullBackOff"),
            waiting("ContainerCreating"),
            waiting("ContainerCreating"),
            json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
        ];
        assert_eq!(pod_reason(&pods).as_deref(), Some("ImagePullBackOff"));
        assert_eq!(
            pod_reason(&[waiting("ContainerCreating")]).as_deref(),
            Some("ContainerCreating")
        );
        let unschedulable = json!({"status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes are available"}]}});
        assert_eq!(
            pod_reason(&[unschedulable]).as_deref(),
            Some("Unschedulable: 0/2 nodes are available")
        );
        assert_eq!(pod_reason(&[]), None);
    }

    #[test]
    fn selectors_become_queries_and_summaries_name_objects() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "canary", "operator": "DoesNotExist"}]}}});
        assert_eq!(
            selector_query(&d).as_deref(),
            Some("app=web,tier in (a,b),!canary")
        );
        assert_eq!(selector_query(&json!({"spec": {}})), None);
        let u = Unhealthy {
            object: "Deployment/web".into(),
            health: Health::in_progress("0/3 available"),
            why: Some("ImagePullBackOff".into()),
        };
        assert_eq!(
            summary(std::slice::from_ref(&u)),
            "Deployment/web: 0/3 available: ImagePullBackOff"
        );
        let many = vec![u; MAX_NAMED + 2];
        assert!(summary(&many).ends_with("and 2 more"));
    }
}
