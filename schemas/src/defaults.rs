//! Defaulting, as the Kubernetes API server applies it on write
//! (`SetDefaults_*` in k8s.io/kubernetes/pkg/apis/*/v1/defaults.go).

use crate::apps::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use crate::coordination::Lease;
use crate::core::{
    ConfigMap, Container, Endpoints, Event, Namespace, NamespaceSpec, NamespaceStatus, Node, Pod,
    PodSpec, PodTemplateSpec, Probe, Secret, Service,
};
use crate::intstr::IntOrString;
use crate::korral::{DriftReport, GitRef, GitSource};

/// Fills in the fields the API server defaults.
pub trait ApplyDefaults {
    /// Applies the defaults in place.
    fn apply_defaults(&mut self);
}

fn set<T>(field: &mut Option<T>, value: T) {
    if field.is_none() {
        *field = Some(value);
    }
}

fn set_str(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

/// The pull policy Kubernetes picks: `Always` for `:latest` or no tag, else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_probe(p: &mut Probe) {
    set(&mut p.timeout_seconds, 1);
    set(&mut p.period_seconds, 10);
    set(&mut p.success_threshold, 1);
    set(&mut p.failure_threshold, 3);
    if let Some(h) = p.http_get.as_mut() {
        set_str(&mut h.scheme, "HTTP");
        set_str(&mut h.path, "/");
    }
}

fn default_container(c: &mut Container) {
    if let Some(image) = c.image.as_deref() {
        let policy = default_pull_policy(image);
        set_str(&mut c.image_pull_policy, policy);
    }
    set_str(&mut c.termination_message_path, "/dev/termination-log");
    set_str(&mut c.termination_message_policy, "File");
    for p in c.ports.iter_mut().flatten() {
        set_str(&mut p.protocol, "TCP");
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            set_str(&mut f.api_version, "v1");
        }
    }
    for p in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(p);
    }
    // Requests default to limits where only limits are given.
    if let Some(r) = c.resources.as_mut()
        && let Some(limits) = r.limits.clone()
    {
        let requests = r.requests.get_or_insert_with(Default::default);
        for (name, q) in limits {
            requests.entry(name).or_insert(q);
        }
    }
}

/// Defaults of a pod spec (also applied to workload templates).
pub fn default_pod_spec(s: &mut PodSpec) {
    set_str(&mut s.restart_policy, "Always");
    set(&mut s.termination_grace_period_seconds, 30);
    set_str(&mut s.dns_policy, "ClusterFirst");
    set_str(&mut s.scheduler_name, "default-scheduler");
    set(&mut s.security_context, Default::default());
    set(&mut s.enable_service_links, true);
    if s.service_account.is_some() && s.service_account_name.is_none() {
        s.service_account_name = s.service_account.clone();
    }
    for c in s
        .init_containers
        .iter_mut()
        .flatten()
        .chain(s.containers.iter_mut())
    {
        default_container(c);
    }
    for v in s.volumes.iter_mut().flatten() {
        if let Some(cm) = v.config_map.as_mut() {
            set(&mut cm.default_mode, 0o644);
        }
        if let Some(sec) = v.secret.as_mut() {
            set(&mut sec.default_mode, 0o644);
        }
        if let Some(p) = v.projected.as_mut() {
            set(&mut p.default_mode, 0o644);
        }
        if let Some(d) = v.downward_api.as_mut() {
            set(&mut d.default_mode, 0o644);
        }
        if let Some(h) = v.host_path.as_mut() {
            set(&mut h.type_, String::new());
        }
    }
}

fn default_template(t: &mut PodTemplateSpec) {
    default_pod_spec(t.spec.get_or_insert_with(Default::default));
}

impl ApplyDefaults for Pod {
    fn apply_defaults(&mut self) {
        default_pod_spec(self.spec.get_or_insert_with(Default::default));
    }
}

fn default_deployment_spec(s: &mut DeploymentSpec) {
    set(&mut s.replicas, 1);
    set(&mut s.revision_history_limit, 10);
    set(&mut s.progress_deadline_seconds, 600);
    let strategy = s.strategy.get_or_insert_with(DeploymentStrategy::default);
    set_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        set(&mut ru.max_unavailable, IntOrString::String("25%".into()));
        set(&mut ru.max_surge, IntOrString::String("25%".into()));
    }
    default_template(&mut s.template);
}

impl ApplyDefaults for Deployment {
    fn apply_defaults(&mut self) {
        default_deployment_spec(self.spec.get_or_insert_with(Default::default));
    }
}

impl ApplyDefaults for ReplicaSet {
    fn apply_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        set(&mut spec.replicas, 1);
        if let Some(t) = spec.template.as_mut() {
            default_template(t);
        }
    }
}

impl ApplyDefaults for Service {
    fn apply_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        set_str(&mut spec.type_, "ClusterIP");
        set_str(&mut spec.session_affinity, "None");
        if spec.type_.as_deref() != Some("ExternalName") {
            set_str(&mut spec.internal_traffic_policy, "Cluster");
        }
        if matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")) {
            set_str(&mut spec.external_traffic_policy, "Cluster");
        }
        if spec.session_affinity.as_deref() == Some("ClientIP") {
            let cfg = spec
                .session_affinity_config
                .get_or_insert_with(Default::default);
            let client = cfg.client_ip.get_or_insert_with(Default::default);
            set(&mut client.timeout_seconds, 10800);
        }
        for p in spec.ports.iter_mut().flatten() {
            set_str(&mut p.protocol, "TCP");
            if p.target_port.is_none() || p.target_port == Some(IntOrString::Int(0)) {
                p.target_port = Some(IntOrString::Int(p.port));
            }
        }
    }
}

impl ApplyDefaults for Secret {
    fn apply_defaults(&mut self) {
        set_str(&mut self.type_, "Opaque");
    }
}

impl ApplyDefaults for Namespace {
    fn apply_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(NamespaceSpec::default);
        set(&mut spec.finalizers, vec!["kubernetes".to_string()]);
        let status = self.status.get_or_insert_with(NamespaceStatus::default);
        set_str(&mut status.phase, "Active");
    }
}

impl ApplyDefaults for Endpoints {
    fn apply_defaults(&mut self) {
        for s in self.subsets.iter_mut().flatten() {
            for p in s.ports.iter_mut().flatten() {
                set_str(&mut p.protocol, "TCP");
            }
        }
    }
}

impl ApplyDefaults for GitSource {
    fn apply_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        set_str(&mut spec.interval, "60s");
        set(&mut spec.prune, false);
        set(&mut spec.self_heal, false);
        set(&mut spec.suspend, false);
        if spec.url.is_some() {
            set(
                &mut spec.ref_,
                GitRef {
                    branch: Some("main".into()),
                    ..Default::default()
                },
            );
        }
    }
}

macro_rules! no_defaults {
    ($($ty:ty),*) => {
        $(impl ApplyDefaults for $ty {
            fn apply_defaults(&mut self) {}
        })*
    };
}

no_defaults!(ConfigMap, Node, Event, Lease, DriftReport);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::decode_typed;
    use serde_json::json;

    #[test]
    fn deployment_defaults_match_kubernetes() {
        let mut d: Deployment = decode_typed(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                                           "ports": [{"containerPort": 80}],
                                           "resources": {"limits": {"cpu": "1"}}}]}}}
        }))
        .expect("decode");
        d.apply_defaults();
        let v = serde_json::to_value(&d).expect("json");
        assert_eq!(v["spec"]["replicas"], 1);
        assert_eq!(v["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(v["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(v["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(v["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            v["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            "25%"
        );
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["containers"][0]["resources"]["requests"]["cpu"], "1");
    }

    #[test]
    fn service_target_port_defaults_to_port() {
        let mut s: Service = decode_typed(&json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}, {"port": 443, "targetPort": "https"}]}
        }))
        .expect("decode");
        s.apply_defaults();
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(v["spec"]["type"], "ClusterIP");
        assert_eq!(v["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(v["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(v["spec"]["ports"][1]["targetPort"], "https");
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(default_pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }
}
