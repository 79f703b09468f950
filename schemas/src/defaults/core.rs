//! Defaults of the core/v1 kinds other than pods.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, LimitRange, Namespace, NamespaceSpec, NamespaceStatus, Node,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodTemplate,
    ReplicationController, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::defaults::{ApplyDefaults, default_template, no_defaults, set, set_str};

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
        if spec.type_.as_deref() == Some("LoadBalancer") {
            set(&mut spec.allocate_load_balancer_node_ports, true);
            // LoadBalancerIPMode (GA in 1.32): addresses behave as VIPs unless said otherwise
            let ingress = self
                .status
                .iter_mut()
                .filter_map(|s| s.load_balancer.as_mut())
                .filter_map(|lb| lb.ingress.as_mut())
                .flatten();
            for i in ingress.filter(|i| i.ip.as_deref().is_some_and(|ip| !ip.is_empty())) {
                set_str(&mut i.ip_mode, "VIP");
            }
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
        // stringData is write-only: it is merged into data (winning over it) and dropped
        if let Some(string_data) = self.string_data.take() {
            let data = self.data.get_or_insert_with(Default::default);
            for (k, v) in string_data {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
    }

    fn normalize_json(v: &mut Value) {
        // Go's base64 decoder skips line breaks; Kubernetes accepts wrapped values
        if let Some(Value::Object(data)) = v.get_mut("data") {
            for value in data.values_mut() {
                if let Value::String(s) = value
                    && s.contains(['\n', '\r'])
                {
                    s.retain(|c| c != '\n' && c != '\r');
                }
            }
        }
    }
}

impl ApplyDefaults for Namespace {
    fn apply_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(NamespaceSpec::default);
        set(&mut spec.finalizers, vec!["kubernetes".to_string()]);
        let status = self.status.get_or_insert_with(NamespaceStatus::default);
        set_str(&mut status.phase, "Active");
        // SetDefaults_Namespace: the immutable name label namespace selectors rely on
        if let Some(name) = self.metadata.name.clone().filter(|n| !n.is_empty()) {
            self.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert("kubernetes.io/metadata.name".into(), name);
        }
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

impl ApplyDefaults for Node {
    fn apply_defaults(&mut self) {
        // SetDefaults_NodeStatus: allocatable defaults to capacity
        if let Some(status) = self.status.as_mut()
            && status.allocatable.is_none()
        {
            status.allocatable = status.capacity.clone();
        }
    }
}

fn default_claim_spec(spec: &mut PersistentVolumeClaimSpec) {
    set_str(&mut spec.volume_mode, "Filesystem");
}

impl ApplyDefaults for PersistentVolumeClaim {
    fn apply_defaults(&mut self) {
        default_claim_spec(self.spec.get_or_insert_with(Default::default));
        let status = self.status.get_or_insert_with(Default::default);
        set_str(&mut status.phase, "Pending");
    }
}

/// Defaults of a claim template (StatefulSet `volumeClaimTemplates`).
pub(crate) fn default_claim_template(c: &mut PersistentVolumeClaim) {
    c.apply_defaults();
}

impl ApplyDefaults for PersistentVolume {
    fn apply_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        set_str(&mut spec.persistent_volume_reclaim_policy, "Retain");
        set_str(&mut spec.volume_mode, "Filesystem");
        let status = self.status.get_or_insert_with(Default::default);
        set_str(&mut status.phase, "Pending");
    }
}

impl ApplyDefaults for ReplicationController {
    fn apply_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        set(&mut spec.replicas, 1);
        if let Some(t) = spec.template.as_mut() {
            let labels = t
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            if spec.selector.as_ref().is_none_or(|s| s.is_empty()) && !labels.is_empty() {
                spec.selector = Some(labels.clone());
            }
            if self.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) && !labels.is_empty() {
                self.metadata.labels = Some(labels);
            }
            default_template(t);
        }
    }
}

impl ApplyDefaults for PodTemplate {
    fn apply_defaults(&mut self) {
        if let Some(t) = self.template.as_mut() {
            default_template(t);
        }
    }
}

impl ApplyDefaults for LimitRange {
    fn apply_defaults(&mut self) {
        // SetDefaults_LimitRangeItem: for containers, a max is the default
        // limit, and the default limit (else the min) the default request
        for item in self
            .spec
            .iter_mut()
            .flat_map(|s| s.limits.iter_mut())
            .filter(|i| i.type_ == "Container")
        {
            if let Some(max) = item.max.clone() {
                let default = item.default.get_or_insert_with(Default::default);
                for (k, v) in max {
                    default.entry(k).or_insert(v);
                }
            }
            if let Some(default) = item.default.clone() {
                let request = item.default_request.get_or_insert_with(Default::default);
                for (k, v) in default {
                    request.entry(k).or_insert(v);
                }
            }
            if let Some(min) = item.min.clone() {
                let request = item.default_request.get_or_insert_with(Default::default);
                for (k, v) in min {
                    request.entry(k).or_insert(v);
                }
            }
        }
    }
}

no_defaults!(
    ConfigMap,
    Event,
    ServiceAccount,
    ResourceQuota,
    k8s_openapi::api::events::v1::Event,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::decode_typed;
    use serde_json::json;

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
    fn secret_string_data_wins_over_data() {
        let mut v = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"k1": "djE=\n", "k2": ""}, "stringData": {"k2": "v2"}});
        Secret::normalize_json(&mut v);
        let mut s: Secret = decode_typed(&v).expect("decode");
        s.apply_defaults();
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(v["data"], json!({"k1": "djE=", "k2": "djI="}));
        assert!(v.get("stringData").is_none());
        assert_eq!(v["type"], "Opaque");
    }

    #[test]
    fn namespaces_get_their_name_label() {
        let mut n: Namespace = decode_typed(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        )
        .expect("decode");
        n.apply_defaults();
        assert_eq!(
            n.metadata.labels.expect("labels")["kubernetes.io/metadata.name"],
            "shop"
        );
    }
}
