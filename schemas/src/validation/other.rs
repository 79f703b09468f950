//! Semantic validation of the remaining kinds: Namespace, Node, Event, Lease,
//! GitSource and DriftReport.

use std::collections::HashSet;

use crate::duration::parse_duration;
use crate::field_error::FieldError;
use crate::korral::{DriftReport, GitSource, Notifier};
use crate::path::FieldPath;
use crate::validation::{Errs, NameRule, Validate, names, validate_meta};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node};

fn meta_path() -> FieldPath {
    FieldPath::fields("metadata")
}

impl Validate for Namespace {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(&mut errs, &self.metadata, NameRule::Label, &meta_path());
        if let Some(phase) = self.status.as_ref().and_then(|s| s.phase.as_deref()) {
            errs.one_of(
                FieldPath::fields("status.phase"),
                Some(phase),
                &["Active", "Terminating"],
            );
        }
        errs.0
    }
}

impl Validate for Node {
    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let cidr = |n: &Node| {
            n.spec
                .as_ref()
                .and_then(|s| s.pod_cidr.clone())
                .filter(|c| !c.is_empty())
        };
        match (cidr(old), cidr(self)) {
            (Some(o), new) if Some(&o) != new.as_ref() => vec![FieldError::forbidden(
                FieldPath::fields("spec.podCIDR"),
                "node updates may not change podCIDR except from \"\" to valid",
            )],
            _ => Vec::new(),
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(&mut errs, &self.metadata, NameRule::Subdomain, &meta_path());
        if let Some(spec) = &self.spec {
            if let Some(c) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
                errs.check(FieldPath::fields("spec.podCIDR"), c, names::cidr(c));
            }
            for (i, c) in spec.pod_cidrs.iter().flatten().enumerate() {
                errs.check(
                    FieldPath::fields("spec.podCIDRs").index(i),
                    c,
                    names::cidr(c),
                );
            }
            let mut seen = HashSet::new();
            for (i, t) in spec.taints.iter().flatten().enumerate() {
                let p = FieldPath::fields("spec.taints").index(i);
                errs.check(p.key("key"), &t.key, names::qualified_name(&t.key));
                if let Some(v) = t.value.as_deref() {
                    errs.check(p.key("value"), v, names::label_value(v));
                }
                errs.one_of(
                    p.key("effect"),
                    Some(t.effect.as_str()),
                    &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                );
                if !seen.insert((t.key.as_str(), t.effect.as_str())) {
                    errs.push(FieldError::duplicate(p, format!("{}:{}", t.key, t.effect)));
                }
            }
        }
        errs.0
    }
}

impl Validate for Event {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(&mut errs, &self.metadata, NameRule::Subdomain, &meta_path());
        errs.one_of(
            FieldPath::fields("type"),
            self.type_.as_deref().filter(|t| !t.is_empty()),
            &["Normal", "Warning"],
        );
        errs.0
    }
}

impl Validate for Lease {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(&mut errs, &self.metadata, NameRule::Subdomain, &meta_path());
        if let Some(spec) = &self.spec {
            errs.at_least(
                FieldPath::fields("spec.leaseDurationSeconds"),
                spec.lease_duration_seconds.map(i64::from),
                1,
            );
            errs.non_negative(
                FieldPath::fields("spec.leaseTransitions"),
                spec.lease_transitions.map(i64::from),
            );
        }
        errs.0
    }
}

impl Validate for GitSource {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(&mut errs, &self.metadata, NameRule::Subdomain, &meta_path());
        let sp = FieldPath::fields("spec");
        let Some(spec) = &self.spec else {
            errs.push(FieldError::required(
                sp,
                "a source needs a spec with a url or a path",
            ));
            return errs.0;
        };
        let url = spec.url.as_deref().filter(|u| !u.is_empty());
        if url.is_none() && spec.path.as_deref().is_none_or(str::is_empty) {
            errs.push(FieldError::required(
                sp.key("url"),
                "a Git URL, or `path` alone for a folder source",
            ));
        }
        if let Some(r) = &spec.ref_ {
            let rp = sp.key("ref");
            let set: Vec<&str> = [
                ("branch", &r.branch),
                ("tag", &r.tag),
                ("commit", &r.commit),
            ]
            .into_iter()
            .filter(|(_, v)| v.as_deref().is_some_and(|v| !v.is_empty()))
            .map(|(k, _)| k)
            .collect();
            match set.len() {
                0 => errs.push(FieldError::required(
                    rp.clone(),
                    "one of `branch`, `tag` or `commit`",
                )),
                1 => {}
                _ => errs.push(FieldError::forbidden(
                    rp.clone(),
                    format!(
                        "only one of `branch`, `tag` or `commit` may be set, found: {}",
                        set.join(", ")
                    ),
                )),
            }
            if let Some(c) = r.commit.as_deref().filter(|c| !c.is_empty())
                && !(c.len() >= 7 && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                errs.push(FieldError::invalid(
                    rp.key("commit"),
                    c,
                    "must be a hexadecimal commit SHA (7 to 40 characters)",
                ));
            }
            if url.is_none() {
                errs.push(FieldError::forbidden(
                    rp,
                    "a folder source (no `url`) has no ref",
                ));
            }
        }
        if let Some(i) = spec.interval.as_deref() {
            match parse_duration(i) {
                Ok(d) if d.as_secs_f64() < 1.0 => errs.push(FieldError::invalid(
                    sp.key("interval"),
                    i,
                    "must be at least 1s",
                )),
                Ok(_) => {}
                Err(e) => errs.push(FieldError::invalid(sp.key("interval"), i, e)),
            }
        }
        if let Some(t) = spec.timeout.as_deref()
            && let Err(e) = parse_duration(t)
        {
            errs.push(FieldError::invalid(sp.key("timeout"), t, e));
        }
        if let Some(ns) = spec.target_namespace.as_deref().filter(|n| !n.is_empty()) {
            errs.check(sp.key("targetNamespace"), ns, names::dns1123_label(ns));
        }
        if let Some(tool) = spec.kustomize.as_ref().and_then(|k| k.tool.as_deref())
            && !matches!(tool, "" | "auto" | "kustomize" | "kubectl")
        {
            errs.push(FieldError::not_supported(
                sp.key("kustomize").key("tool"),
                tool,
                &["auto", "kustomize", "kubectl"],
            ));
        }
        if let Some(pb) = &spec.post_build {
            let pp = sp.key("postBuild");
            for k in pb.substitute.iter().flat_map(|m| m.keys()) {
                if !is_variable_name(k) {
                    errs.push(FieldError::invalid(
                        pp.key("substitute").key(k.clone()),
                        k,
                        "a variable name is letters, digits and '_', not starting with a digit",
                    ));
                }
            }
            for (i, r) in pb.substitute_from.iter().flatten().enumerate() {
                let rp = pp.key("substituteFrom").index(i);
                if !matches!(r.kind.as_str(), "ConfigMap" | "Secret") {
                    errs.push(FieldError::not_supported(
                        rp.key("kind"),
                        &r.kind,
                        &["ConfigMap", "Secret"],
                    ));
                }
                if r.name.is_empty() {
                    errs.push(FieldError::required(rp.key("name"), "the object's name"));
                }
            }
        }
        if let Some(sa) = spec
            .service_account_name
            .as_deref()
            .filter(|n| !n.is_empty())
        {
            errs.check(
                sp.key("serviceAccountName"),
                sa,
                names::dns1123_subdomain(sa),
            );
        }
        let own_ns = self.metadata.namespace.as_deref().unwrap_or("default");
        for (i, d) in spec.depends_on.iter().flatten().enumerate() {
            let dp = sp.key("dependsOn").index(i);
            if d.name.is_empty() {
                errs.push(FieldError::required(dp.key("name"), "the GitSource's name"));
            } else if Some(d.name.as_str()) == self.metadata.name.as_deref()
                && d.namespace.as_deref().unwrap_or(own_ns) == own_ns
            {
                errs.push(FieldError::invalid(
                    dp.key("name"),
                    &d.name,
                    "a source cannot depend on itself",
                ));
            }
        }
        if let Some(p) = spec.path.as_deref()
            && url.is_some()
            && (p.starts_with('/') || p.split('/').any(|x| x == ".."))
        {
            errs.push(FieldError::invalid(
                sp.key("path"),
                p,
                "must be a path inside the repository (relative, without '..')",
            ));
        }
        errs.0
    }
}

impl Validate for DriftReport {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(&mut errs, &self.metadata, NameRule::Subdomain, &meta_path());
        match &self.spec {
            Some(s) if !s.source.is_empty() => {}
            _ => errs.push(FieldError::required(
                FieldPath::fields("spec.source"),
                "the GitSource this report compares",
            )),
        }
        errs.0
    }
}

impl Validate for Notifier {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(&mut errs, &self.metadata, NameRule::Subdomain, &meta_path());
        let sp = FieldPath::fields("spec");
        let Some(spec) = &self.spec else {
            errs.push(FieldError::required(sp, "a notifier needs a spec.type"));
            return errs.0;
        };
        if !matches!(spec.type_.as_str(), "generic" | "generic-hmac" | "slack") {
            errs.push(FieldError::not_supported(
                sp.key("type"),
                &spec.type_,
                &["generic", "generic-hmac", "slack"],
            ));
        }
        if let Some(a) = spec.address.as_deref().filter(|a| !a.is_empty())
            && !(a.starts_with("http://") || a.starts_with("https://"))
        {
            errs.push(FieldError::invalid(
                sp.key("address"),
                a,
                "must be an http:// or https:// URL",
            ));
        }
        if spec.address.as_deref().is_none_or(str::is_empty) && spec.secret_ref.is_none() {
            errs.push(FieldError::required(
                sp.key("address"),
                "an address, or a secretRef whose Secret holds one",
            ));
        }
        if spec.type_ == "generic-hmac" && spec.secret_ref.is_none() {
            errs.push(FieldError::required(
                sp.key("secretRef"),
                "generic-hmac signs with the Secret's `token`",
            ));
        }
        if let Some(s) = spec.event_severity.as_deref()
            && !matches!(s, "info" | "error")
        {
            errs.push(FieldError::not_supported(
                sp.key("eventSeverity"),
                s,
                &["info", "error"],
            ));
        }
        errs.0
    }
}

/// Whether `name` is a post-build variable name (as Flux:
/// `^[_[:alpha:]][_[:alpha:][:digit:]]*$`).
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}
