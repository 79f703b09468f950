//! Semantic validation of the remaining kinds: ServiceAccounts, LimitRanges,
//! ResourceQuotas, PriorityClasses, RuntimeClasses, CertificateSigningRequests,
//! events.k8s.io Events and CustomResourceDefinitions (the latter in `crd`).

use std::collections::HashSet;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, ServiceAccount};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use crate::field_error::FieldError;
use crate::path::FieldPath;
use crate::quantity::QuantityExt;
use crate::validation::{Errs, NameRule, Validate, check_immutable, names, validate_meta};

fn meta(
    errs: &mut Errs,
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    rule: NameRule,
) {
    validate_meta(errs, m, rule, &FieldPath::fields("metadata"));
}

impl Validate for ServiceAccount {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        meta(&mut errs, &self.metadata, NameRule::Subdomain);
        errs.0
    }
}

const LIMIT_TYPES: &[&str] = &["Pod", "Container", "PersistentVolumeClaim"];

impl Validate for LimitRange {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        // LimitRanges without a name get one on create (a uuid)
        if self.metadata.name.as_deref().is_some_and(|n| !n.is_empty())
            || self
                .metadata
                .generate_name
                .as_deref()
                .is_some_and(|n| !n.is_empty())
        {
            meta(&mut errs, &self.metadata, NameRule::Subdomain);
        }
        let mut seen = HashSet::new();
        for (i, item) in self.spec.iter().flat_map(|s| s.limits.iter()).enumerate() {
            let p = FieldPath::fields("spec.limits").index(i);
            let t = item.type_.as_str();
            if !t.contains('/') && !LIMIT_TYPES.contains(&t) {
                errs.push(FieldError::invalid(
                    p.key("type"),
                    t,
                    "must be a standard limit type or fully qualified",
                ));
            }
            if !seen.insert(t) {
                errs.push(FieldError::duplicate(p.key("type"), t));
            }
            if t == "Pod" {
                for (field, set) in [
                    ("default", item.default.is_some()),
                    ("defaultRequest", item.default_request.is_some()),
                ] {
                    if set {
                        errs.push(FieldError::forbidden(
                            p.key(field),
                            "may not be specified when `type` is 'Pod'",
                        ));
                    }
                }
            }
            if t == "PersistentVolumeClaim" {
                let has = |m: &Option<std::collections::BTreeMap<String, _>>| {
                    m.as_ref().is_some_and(|m| m.contains_key("storage"))
                };
                if !has(&item.min) && !has(&item.max) {
                    errs.push(FieldError::required(
                        p.key("limits"),
                        "either minimum or maximum storage value is required, but neither was provided",
                    ));
                }
            }
            let get =
                |m: &Option<
                    std::collections::BTreeMap<
                        String,
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity,
                    >,
                >,
                 k: &str| { m.as_ref().and_then(|m| m.get(k)).cloned() };
            let mut keys: Vec<&String> =
                [&item.min, &item.max, &item.default, &item.default_request]
                    .into_iter()
                    .flatten()
                    .flat_map(|m| m.keys())
                    .collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let min = get(&item.min, k);
                let max = get(&item.max, k);
                let default = get(&item.default, k);
                let request = get(&item.default_request, k);
                let gt = |a: &Option<_>, b: &Option<_>| match (a, b) {
                    (Some(a), Some(b)) => QuantityExt::nanos(a) > QuantityExt::nanos(b),
                    _ => false,
                };
                let text = |q: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
                    q.as_ref().map(|q| q.0.clone()).unwrap_or_default()
                };
                if gt(&min, &max) {
                    errs.push(FieldError::invalid(
                        p.key("min").map_key(k.clone()),
                        text(&min),
                        format!(
                            "min value {} is greater than max value {}",
                            text(&min),
                            text(&max)
                        ),
                    ));
                }
                if gt(&min, &request) {
                    errs.push(FieldError::invalid(
                        p.key("defaultRequest").map_key(k.clone()),
                        text(&request),
                        format!(
                            "min value {} is greater than default request value {}",
                            text(&min),
                            text(&request)
                        ),
                    ));
                }
                if gt(&request, &max) {
                    errs.push(FieldError::invalid(
                        p.key("defaultRequest").map_key(k.clone()),
                        text(&request),
                        format!(
                            "default request value {} is greater than max value {}",
                            text(&request),
                            text(&max)
                        ),
                    ));
                }
                if gt(&request, &default) {
                    errs.push(FieldError::invalid(
                        p.key("defaultRequest").map_key(k.clone()),
                        text(&request),
                        format!(
                            "default request value {} is greater than default limit value {}",
                            text(&request),
                            text(&default)
                        ),
                    ));
                }
                if gt(&min, &default) {
                    errs.push(FieldError::invalid(
                        p.key("default").map_key(k.clone()),
                        text(&min),
                        format!(
                            "min value {} is greater than default value {}",
                            text(&min),
                            text(&default)
                        ),
                    ));
                }
                if gt(&default, &max) {
                    errs.push(FieldError::invalid(
                        p.key("default").map_key(k.clone()),
                        text(&max),
                        format!(
                            "default value {} is greater than max value {}",
                            text(&default),
                            text(&max)
                        ),
                    ));
                }
            }
        }
        errs.0
    }
}

const QUOTA_RESOURCES: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];
const QUOTA_SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

impl Validate for ResourceQuota {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        meta(&mut errs, &self.metadata, NameRule::Subdomain);
        let Some(spec) = &self.spec else {
            return errs.0;
        };
        let hp = FieldPath::fields("spec.hard");
        for (k, q) in spec.hard.iter().flatten() {
            let standard = QUOTA_RESOURCES.contains(&k.as_str())
                || k.starts_with("requests.hugepages-")
                || k.starts_with("count/")
                || k.contains('/');
            if !standard {
                errs.push(FieldError::invalid(
                    hp.map_key(k.clone()),
                    k,
                    "must be a standard resource for quota",
                ));
            }
            if q.nanos() < 0 {
                errs.push(FieldError::invalid(
                    hp.map_key(k.clone()),
                    q.0.as_str(),
                    "must be greater than or equal to 0",
                ));
            }
            let integer = !matches!(
                k.as_str(),
                "cpu"
                    | "memory"
                    | "ephemeral-storage"
                    | "requests.cpu"
                    | "requests.memory"
                    | "requests.storage"
                    | "requests.ephemeral-storage"
                    | "limits.cpu"
                    | "limits.memory"
                    | "limits.ephemeral-storage"
            ) && !k.contains("hugepages-")
                && !k.ends_with(".storage");
            if integer && q.nanos() % 1_000_000_000 != 0 {
                errs.push(FieldError::invalid(
                    hp.map_key(k.clone()),
                    q.0.as_str(),
                    "must be an integer",
                ));
            }
        }
        let scopes = spec.scopes.as_deref().unwrap_or_default();
        for s in scopes {
            if !QUOTA_SCOPES.contains(&s.as_str()) {
                errs.push(FieldError::invalid(
                    FieldPath::fields("spec.scopes"),
                    format!("{scopes:?}"),
                    "unsupported scope",
                ));
            }
        }
        let has = |s: &str| scopes.iter().any(|x| x == s);
        if (has("BestEffort") && has("NotBestEffort"))
            || (has("Terminating") && has("NotTerminating"))
        {
            errs.push(FieldError::invalid(
                FieldPath::fields("spec.scopes"),
                format!("{scopes:?}"),
                "conflicting scopes",
            ));
        }
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        let scopes = |q: &ResourceQuota| {
            let mut s = q
                .spec
                .as_ref()
                .and_then(|s| s.scopes.clone())
                .unwrap_or_default();
            s.sort();
            s
        };
        check_immutable(
            &mut errs,
            FieldPath::fields("spec.scopes"),
            &scopes(self),
            &scopes(old),
        );
        errs.0
    }
}

const SYSTEM_CLASSES: &[(&str, i32)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

impl Validate for PriorityClass {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        meta(&mut errs, &self.metadata, NameRule::Subdomain);
        let name = self.metadata.name.as_deref().unwrap_or("");
        if name.starts_with("system-") {
            let problem = match SYSTEM_CLASSES.iter().find(|(n, _)| *n == name) {
                None => Some(format!("{name} is not a known system priority class")),
                Some((_, v)) if *v != self.value => {
                    Some(format!("value of {name} PriorityClass must be {v}"))
                }
                Some(_) if self.global_default == Some(true) => Some(format!(
                    "globalDefault of {name} PriorityClass must be false"
                )),
                Some(_) => None,
            };
            if let Some(p) = problem {
                errs.push(FieldError::forbidden(
                    FieldPath::fields("metadata.name"),
                    format!("priority class names with 'system-' prefix are reserved for system use only. error: {p}"),
                ));
            }
        } else if self.value > 1_000_000_000 {
            errs.push(FieldError::forbidden(
                FieldPath::fields("value"),
                "maximum allowed value of a user defined priority is 1000000000",
            ));
        }
        match self.preemption_policy.as_deref() {
            Some("") => errs.push(FieldError::required(
                FieldPath::fields("preemptionPolicy"),
                "",
            )),
            p => errs.one_of(
                FieldPath::fields("preemptionPolicy"),
                p,
                &["PreemptLowerPriority", "Never"],
            ),
        }
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        if self.value != old.value {
            errs.push(FieldError::forbidden(
                FieldPath::fields("value"),
                "may not be changed in an update.",
            ));
        }
        check_immutable(
            &mut errs,
            FieldPath::fields("preemptionPolicy"),
            &self.preemption_policy,
            &old.preemption_policy,
        );
        errs.0
    }
}

impl Validate for RuntimeClass {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        meta(&mut errs, &self.metadata, NameRule::Subdomain);
        errs.check(
            FieldPath::fields("handler"),
            &self.handler,
            names::dns1123_label(&self.handler),
        );
        if let Some(o) = &self.overhead {
            crate::validation::pod::validate_resources(
                &mut errs,
                o.pod_fixed.as_ref(),
                None,
                &FieldPath::fields("overhead.podFixed"),
            );
        }
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        check_immutable(
            &mut errs,
            FieldPath::fields("handler"),
            &self.handler,
            &old.handler,
        );
        errs.0
    }
}

const KNOWN_USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

impl Validate for CertificateSigningRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        meta(&mut errs, &self.metadata, NameRule::Subdomain);
        let sp = FieldPath::fields("spec");
        let request = String::from_utf8_lossy(&self.spec.request.0);
        if !request.contains("-----BEGIN CERTIFICATE REQUEST-----") {
            errs.push(FieldError::invalid(
                sp.key("request"),
                "<request>",
                "PEM block type must be CERTIFICATE REQUEST",
            ));
        }
        let signer = self.spec.signer_name.as_str();
        if signer.is_empty() {
            errs.push(FieldError::required(sp.key("signerName"), ""));
        } else {
            let ok = signer.split_once('/').is_some_and(|(domain, path)| {
                names::dns1123_subdomain(domain).is_none()
                    && !path.is_empty()
                    && !path.contains('/')
            });
            if !ok {
                errs.push(FieldError::invalid(
                    sp.key("signerName"),
                    signer,
                    "must be a fully qualified domain and path of the form 'example.com/signer-name'",
                ));
            }
        }
        let usages = self.spec.usages.as_deref().unwrap_or_default();
        if usages.is_empty() {
            errs.push(FieldError::required(
                sp.key("usages"),
                "usages must be provided",
            ));
        }
        let mut seen = HashSet::new();
        for (i, u) in usages.iter().enumerate() {
            if !KNOWN_USAGES.contains(&u.as_str()) {
                errs.push(FieldError::not_supported(
                    sp.key("usages").index(i),
                    u,
                    KNOWN_USAGES,
                ));
            }
            if !seen.insert(u) {
                errs.push(FieldError::duplicate(sp.key("usages").index(i), u));
            }
        }
        if let Some(e) = self.spec.expiration_seconds.filter(|e| *e < 600) {
            errs.push(FieldError::invalid(
                sp.key("expirationSeconds"),
                e,
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
        errs.0
    }
}

impl Validate for k8s_openapi::api::events::v1::Event {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        meta(&mut errs, &self.metadata, NameRule::Subdomain);
        if self.event_time.is_none() {
            errs.push(FieldError::required(FieldPath::fields("eventTime"), ""));
        }
        for (field, v) in [
            ("reportingController", &self.reporting_controller),
            ("reportingInstance", &self.reporting_instance),
            ("action", &self.action),
            ("reason", &self.reason),
        ] {
            if v.as_deref().is_none_or(str::is_empty) {
                errs.push(FieldError::required(FieldPath::fields(field), ""));
            }
        }
        errs.one_of(
            FieldPath::fields("type"),
            self.type_.as_deref(),
            &["Normal", "Warning"],
        );
        if self.note.as_deref().is_some_and(|n| n.len() > 1024) {
            errs.push(FieldError::too_long(FieldPath::fields("note"), 1024));
        }
        errs.0
    }
}

impl Validate for CustomResourceDefinition {
    fn validate(&self) -> Vec<FieldError> {
        crate::crd::validate_definition(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        crate::crd::validate_definition_update(self, old)
    }
}
