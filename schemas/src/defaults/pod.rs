//! Defaults of pods and pod specs (also applied to every workload's pod
//! template): containers, probes, ports, volumes.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec, Probe, Volume};

use crate::defaults::{ApplyDefaults, set, set_str};

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
    if let Some(g) = p.grpc.as_mut() {
        set(&mut g.service, String::new());
    }
}

fn default_container(c: &mut Container, host_network: bool) {
    if let Some(image) = c.image.as_deref() {
        let policy = default_pull_policy(image);
        set_str(&mut c.image_pull_policy, policy);
    }
    set_str(&mut c.termination_message_path, "/dev/termination-log");
    set_str(&mut c.termination_message_policy, "File");
    for p in c.ports.iter_mut().flatten() {
        set_str(&mut p.protocol, "TCP");
        if host_network && p.host_port.is_none_or(|h| h == 0) {
            p.host_port = Some(p.container_port);
        }
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
    if let Some(l) = c.lifecycle.as_mut() {
        for h in [l.post_start.as_mut(), l.pre_stop.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(g) = h.http_get.as_mut() {
                set_str(&mut g.scheme, "HTTP");
                set_str(&mut g.path, "/");
            }
        }
    }
}

fn default_volume(v: &mut Volume) {
    if crate::object::volume_sources(v).is_empty() {
        v.empty_dir = Some(Default::default());
    }
    if let Some(cm) = v.config_map.as_mut() {
        set(&mut cm.default_mode, 0o644);
    }
    if let Some(sec) = v.secret.as_mut() {
        set(&mut sec.default_mode, 0o644);
    }
    if let Some(p) = v.projected.as_mut() {
        set(&mut p.default_mode, 0o644);
        for s in p.sources.iter_mut().flatten() {
            if let Some(t) = s.service_account_token.as_mut() {
                set(&mut t.expiration_seconds, 3600);
            }
        }
    }
    if let Some(d) = v.downward_api.as_mut() {
        set(&mut d.default_mode, 0o644);
        for i in d.items.iter_mut().flatten() {
            if let Some(f) = i.field_ref.as_mut() {
                set_str(&mut f.api_version, "v1");
            }
        }
    }
    if let Some(h) = v.host_path.as_mut() {
        set(&mut h.type_, String::new());
    }
    if let Some(i) = v.iscsi.as_mut() {
        set_str(&mut i.iscsi_interface, "default");
    }
    if let Some(r) = v.rbd.as_mut() {
        set_str(&mut r.pool, "rbd");
        set_str(&mut r.user, "admin");
        set_str(&mut r.keyring, "/etc/ceph/keyring");
    }
    if let Some(a) = v.azure_disk.as_mut() {
        set_str(&mut a.caching_mode, "ReadWrite");
        set_str(&mut a.kind, "Shared");
        set_str(&mut a.fs_type, "ext4");
        set(&mut a.read_only, false);
    }
    if let Some(s) = v.scale_io.as_mut() {
        set_str(&mut s.storage_mode, "ThinProvisioned");
        set_str(&mut s.fs_type, "xfs");
    }
    if let Some(e) = v
        .ephemeral
        .as_mut()
        .and_then(|e| e.volume_claim_template.as_mut())
    {
        set_str(&mut e.spec.volume_mode, "Filesystem");
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
    let host_network = s.host_network == Some(true);
    for c in s
        .init_containers
        .iter_mut()
        .flatten()
        .chain(s.containers.iter_mut())
    {
        default_container(c, host_network);
    }
    for c in s.ephemeral_containers.iter_mut().flatten() {
        set_str(&mut c.termination_message_path, "/dev/termination-log");
        set_str(&mut c.termination_message_policy, "File");
        if let Some(image) = c.image.as_deref() {
            let policy = default_pull_policy(image);
            set_str(&mut c.image_pull_policy, policy);
        }
    }
    for v in s.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

/// Defaults of a workload's pod template.
pub fn default_template(t: &mut PodTemplateSpec) {
    default_pod_spec(t.spec.get_or_insert_with(Default::default));
}

impl ApplyDefaults for Pod {
    fn apply_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        default_pod_spec(spec);
        // SetDefaults_Pod: requests default to limits where only limits are given
        for c in spec
            .init_containers
            .iter_mut()
            .flatten()
            .chain(spec.containers.iter_mut())
        {
            if let Some(r) = c.resources.as_mut()
                && let Some(limits) = r.limits.clone()
            {
                let requests = r.requests.get_or_insert_with(Default::default);
                for (name, q) in limits {
                    requests.entry(name).or_insert(q);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::decode_typed;
    use serde_json::json;

    #[test]
    fn pod_defaults_match_kubernetes() {
        let mut p: Pod = decode_typed(&json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
                "resources": {"limits": {"cpu": "1"}}, "readinessProbe": {"httpGet": {"port": 80}}}],
                "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "cfg"}}]}
        }))
        .expect("decode");
        p.apply_defaults();
        let v = serde_json::to_value(&p).expect("json");
        let spec = &v["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["containers"][0]["resources"]["requests"]["cpu"], "1");
        assert_eq!(
            spec["containers"][0]["readinessProbe"]["httpGet"]["path"],
            "/"
        );
        assert_eq!(spec["containers"][0]["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
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
