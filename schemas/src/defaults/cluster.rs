//! Defaults of the networking, discovery, RBAC, storage, scheduling, node,
//! admission, certificates, coordination, apiextensions and korral kinds.

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, MutatingWebhookConfiguration, RuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, NetworkPolicy};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass, VolumeAttachment};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::defaults::{ApplyDefaults, no_defaults, set, set_str};
use crate::korral::{DriftReport, GitRef, GitSource, Notifier};

impl ApplyDefaults for NetworkPolicy {
    fn apply_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        let ports = spec
            .ingress
            .iter_mut()
            .flatten()
            .flat_map(|r| r.ports.iter_mut().flatten())
            .chain(
                spec.egress
                    .iter_mut()
                    .flatten()
                    .flat_map(|r| r.ports.iter_mut().flatten()),
            );
        for p in ports {
            set_str(&mut p.protocol, "TCP");
        }
        if spec.policy_types.as_ref().is_none_or(Vec::is_empty) {
            let mut types = vec!["Ingress".to_string()];
            if spec.egress.is_some() {
                types.push("Egress".to_string());
            }
            spec.policy_types = Some(types);
        }
    }
}

impl ApplyDefaults for EndpointSlice {
    fn apply_defaults(&mut self) {
        for p in self.ports.iter_mut().flatten() {
            set(&mut p.name, String::new());
            set_str(&mut p.protocol, "TCP");
        }
    }
}

/// Users and groups get the RBAC API group; a ServiceAccount's is "",
/// which Go's `omitempty` leaves out of the JSON.
fn default_subjects(subjects: Option<&mut Vec<Subject>>) {
    for s in subjects.into_iter().flatten() {
        if s.api_group.is_none() && matches!(s.kind.as_str(), "User" | "Group") {
            s.api_group = Some("rbac.authorization.k8s.io".into());
        }
    }
}

impl ApplyDefaults for RoleBinding {
    fn apply_defaults(&mut self) {
        default_subjects(self.subjects.as_mut());
    }
}

impl ApplyDefaults for ClusterRoleBinding {
    fn apply_defaults(&mut self) {
        default_subjects(self.subjects.as_mut());
    }
}

impl ApplyDefaults for StorageClass {
    fn apply_defaults(&mut self) {
        set_str(&mut self.reclaim_policy, "Delete");
        set_str(&mut self.volume_binding_mode, "Immediate");
    }
}

impl ApplyDefaults for CSIDriver {
    fn apply_defaults(&mut self) {
        let s = &mut self.spec;
        set(&mut s.attach_required, true);
        set(&mut s.pod_info_on_mount, false);
        set(&mut s.storage_capacity, false);
        set_str(&mut s.fs_group_policy, "ReadWriteOnceWithFSType");
        set(&mut s.requires_republish, false);
        set(&mut s.se_linux_mount, false);
        set(
            &mut s.volume_lifecycle_modes,
            vec!["Persistent".to_string()],
        );
    }
}

impl ApplyDefaults for PriorityClass {
    fn apply_defaults(&mut self) {
        set_str(&mut self.preemption_policy, "PreemptLowerPriority");
    }
}

fn default_rules(rules: Option<&mut Vec<RuleWithOperations>>) {
    for r in rules.into_iter().flatten() {
        set_str(&mut r.scope, "*");
    }
}

fn default_client_config(c: &mut WebhookClientConfig) {
    if let Some(s) = c.service.as_mut() {
        set(&mut s.port, 443);
    }
}

fn default_selector(s: &mut Option<LabelSelector>) {
    set(s, LabelSelector::default());
}

impl ApplyDefaults for ValidatingWebhookConfiguration {
    fn apply_defaults(&mut self) {
        for w in self.webhooks.iter_mut().flatten() {
            set_str(&mut w.failure_policy, "Fail");
            set_str(&mut w.match_policy, "Equivalent");
            default_selector(&mut w.namespace_selector);
            default_selector(&mut w.object_selector);
            set(&mut w.timeout_seconds, 10);
            default_rules(w.rules.as_mut());
            default_client_config(&mut w.client_config);
        }
    }
}

impl ApplyDefaults for MutatingWebhookConfiguration {
    fn apply_defaults(&mut self) {
        for w in self.webhooks.iter_mut().flatten() {
            set_str(&mut w.failure_policy, "Fail");
            set_str(&mut w.match_policy, "Equivalent");
            default_selector(&mut w.namespace_selector);
            default_selector(&mut w.object_selector);
            set(&mut w.timeout_seconds, 10);
            set_str(&mut w.reinvocation_policy, "Never");
            default_rules(w.rules.as_mut());
            default_client_config(&mut w.client_config);
        }
    }
}

fn default_match_resources(m: &mut MatchResources) {
    set_str(&mut m.match_policy, "Equivalent");
    default_selector(&mut m.namespace_selector);
    default_selector(&mut m.object_selector);
    for r in m
        .resource_rules
        .iter_mut()
        .flatten()
        .chain(m.exclude_resource_rules.iter_mut().flatten())
    {
        set_str(&mut r.scope, "*");
    }
}

impl ApplyDefaults for ValidatingAdmissionPolicy {
    fn apply_defaults(&mut self) {
        if let Some(s) = self.spec.as_mut() {
            set_str(&mut s.failure_policy, "Fail");
            if let Some(m) = s.match_constraints.as_mut() {
                default_match_resources(m);
            }
        }
    }
}

impl ApplyDefaults for ValidatingAdmissionPolicyBinding {
    fn apply_defaults(&mut self) {
        if let Some(m) = self.spec.as_mut().and_then(|s| s.match_resources.as_mut()) {
            default_match_resources(m);
        }
    }
}

impl ApplyDefaults for CustomResourceDefinition {
    fn apply_defaults(&mut self) {
        let s = &mut self.spec;
        set_str(&mut s.names.singular, &s.names.kind.to_ascii_lowercase());
        set_str(&mut s.names.list_kind, &format!("{}List", s.names.kind));
        let conversion = s.conversion.get_or_insert_with(Default::default);
        if conversion.strategy.is_empty() {
            conversion.strategy = "None".into();
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

no_defaults!(
    Ingress,
    IngressClass,
    Role,
    ClusterRole,
    VolumeAttachment,
    RuntimeClass,
    CertificateSigningRequest,
    Lease,
    DriftReport,
    Notifier,
);
