//! Semantic validation of Ingresses, IngressClasses, NetworkPolicies and
//! EndpointSlices, with Kubernetes' messages.

use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    Ingress, IngressBackend, IngressClass, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::field_error::FieldError;
use crate::path::FieldPath;
use crate::validation::{
    Errs, NameRule, Validate, check_immutable, names, validate_meta, validate_selector,
};

const WILDCARD_MESSAGE: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn validate_host(errs: &mut Errs, host: &str, p: FieldPath) {
    if host.parse::<IpAddr>().is_ok() {
        errs.push(FieldError::invalid(
            p,
            host,
            "must be a DNS name, not an IP address",
        ));
    } else if host.contains('*') {
        let ok = host
            .strip_prefix("*.")
            .is_some_and(|rest| names::dns1123_subdomain(rest).is_none());
        if !ok {
            errs.push(FieldError::invalid(p, host, WILDCARD_MESSAGE));
        }
    } else {
        errs.check(p, host, names::dns1123_subdomain(host));
    }
}

fn validate_backend(errs: &mut Errs, b: &IngressBackend, p: &FieldPath) {
    match (&b.service, &b.resource) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            p.clone(),
            "",
            "cannot set both resource and service backends",
        )),
        (None, None) => errs.push(FieldError::invalid(
            p.clone(),
            "",
            "resource or service backend is required",
        )),
        (Some(s), None) => {
            let sp = p.key("service");
            if s.name.is_empty() {
                errs.push(FieldError::required(sp.key("name"), ""));
            } else {
                errs.check(sp.key("name"), &s.name, names::dns1035_label(&s.name));
            }
            match s.port.as_ref().map(|port| (&port.name, port.number)) {
                Some((Some(name), Some(_))) if !name.is_empty() => errs.push(FieldError::invalid(
                    p.clone(),
                    "",
                    "cannot set both port name & port number",
                )),
                Some((Some(name), _)) if !name.is_empty() => {
                    errs.check(sp.key("port").key("name"), name, names::iana_svc_name(name))
                }
                Some((_, Some(n))) => {
                    if let Some(e) = names::port_number(n) {
                        errs.push(FieldError::invalid(sp.key("port").key("number"), n, e));
                    }
                }
                _ => errs.push(FieldError::required(
                    p.clone(),
                    "port name or number is required",
                )),
            }
        }
        (None, Some(r)) => {
            let rp = p.key("resource");
            if let Some(g) = r.api_group.as_deref().filter(|g| !g.is_empty()) {
                errs.check(rp.key("apiGroup"), g, names::dns1123_subdomain(g));
            }
            for (field, v) in [("kind", &r.kind), ("name", &r.name)] {
                if v.is_empty() {
                    errs.push(FieldError::required(rp.key(field), ""));
                } else {
                    errs.check(rp.key(field), v, names::path_segment(v));
                }
            }
        }
    }
}

fn validate_http_path(errs: &mut Errs, path: Option<&str>, path_type: &str, p: &FieldPath) {
    let path = path.unwrap_or("");
    match path_type {
        "Exact" | "Prefix" => {
            if !path.starts_with('/') {
                errs.push(FieldError::invalid(
                    p.key("path"),
                    path,
                    "must be an absolute path",
                ));
            }
            for bad in ["//", "/./", "/../", "%2f", "%2F"] {
                if path.contains(bad) {
                    errs.push(FieldError::invalid(
                        p.key("path"),
                        path,
                        format!("must not contain '{bad}'"),
                    ));
                }
            }
            for bad in ["/..", "/."] {
                if path.ends_with(bad) {
                    errs.push(FieldError::invalid(
                        p.key("path"),
                        path,
                        format!("cannot end with '{bad}'"),
                    ));
                }
            }
        }
        "ImplementationSpecific" => {
            if !path.is_empty() && !path.starts_with('/') {
                errs.push(FieldError::invalid(
                    p.key("path"),
                    path,
                    "must be an absolute path",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            p.key("pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
}

impl Validate for Ingress {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let sp = FieldPath::fields("spec");
        let Some(spec) = &self.spec else {
            errs.push(FieldError::invalid(
                sp,
                "null",
                "either `defaultBackend` or `rules` must be specified",
            ));
            return errs.0;
        };
        if let (Some(class), Some(annotation)) = (
            spec.ingress_class_name.as_deref(),
            self.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/ingress.class")),
        ) && class != annotation
        {
            errs.push(FieldError::invalid(
                FieldPath::fields("annotations").key("kubernetes.io/ingress.class"),
                annotation,
                "must match `ingressClassName` when both are specified",
            ));
        }
        let rules = spec.rules.as_deref().unwrap_or_default();
        if rules.is_empty() && spec.default_backend.is_none() {
            errs.push(FieldError::invalid(
                sp.clone(),
                "null",
                "either `defaultBackend` or `rules` must be specified",
            ));
        }
        if let Some(c) = spec.ingress_class_name.as_deref() {
            errs.check(sp.key("ingressClassName"), c, names::dns1123_subdomain(c));
        }
        if let Some(b) = &spec.default_backend {
            validate_backend(&mut errs, b, &sp.key("defaultBackend"));
        }
        for (i, rule) in rules.iter().enumerate() {
            let rp = sp.key("rules").index(i);
            if let Some(h) = rule.host.as_deref().filter(|h| !h.is_empty()) {
                validate_host(&mut errs, h, rp.key("host"));
            }
            if let Some(http) = &rule.http {
                let hp = rp.key("http").key("paths");
                if http.paths.is_empty() {
                    errs.push(FieldError::required(hp.clone(), ""));
                }
                for (j, path) in http.paths.iter().enumerate() {
                    let pp = hp.index(j);
                    if path.path_type.is_empty() {
                        errs.push(FieldError::required(
                            pp.key("pathType"),
                            "pathType must be specified",
                        ));
                        continue;
                    }
                    validate_http_path(&mut errs, path.path.as_deref(), &path.path_type, &pp);
                    validate_backend(&mut errs, &path.backend, &pp.key("backend"));
                }
            }
        }
        for (i, tls) in spec.tls.iter().flatten().enumerate() {
            let tp = sp.key("tls").index(i);
            for (j, h) in tls.hosts.iter().flatten().enumerate() {
                validate_host(&mut errs, h, tp.key("hosts").index(j));
            }
            if let Some(s) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
                errs.check(tp.key("secretName"), s, names::dns1123_subdomain(s));
            }
        }
        errs.0
    }
}

impl Validate for IngressClass {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let sp = FieldPath::fields("spec");
        let spec = self.spec.clone().unwrap_or_default();
        match spec.controller.as_deref() {
            None | Some("") => errs.push(FieldError::required(sp.key("controller"), "")),
            Some(c) if c.len() > 250 => errs.push(FieldError::too_long(sp.key("controller"), 250)),
            Some(c) => {
                let ok = c.split_once('/').is_some_and(|(domain, path)| {
                    names::dns1123_subdomain(domain).is_none() && !path.is_empty()
                });
                if !ok {
                    errs.push(FieldError::invalid(
                        sp.key("controller"),
                        c,
                        "must be a domain-prefixed path (such as \"acme.io/foo\")",
                    ));
                }
            }
        }
        if let Some(p) = &spec.parameters {
            let pp = sp.key("parameters");
            if let Some(g) = p.api_group.as_deref().filter(|g| !g.is_empty()) {
                errs.check(pp.key("apiGroup"), g, names::dns1123_subdomain(g));
            }
            for (field, v) in [("kind", &p.kind), ("name", &p.name)] {
                if v.is_empty() {
                    errs.push(FieldError::required(pp.key(field), ""));
                } else {
                    errs.check(pp.key(field), v, names::path_segment(v));
                }
            }
            match (p.scope.as_deref(), p.namespace.as_deref()) {
                (Some("Namespace"), None) => errs.push(FieldError::required(
                    pp.key("namespace"),
                    "`parameters.scope` is set to 'Namespace'",
                )),
                (Some("Cluster"), Some(_)) => errs.push(FieldError::forbidden(
                    pp.key("namespace"),
                    "`parameters.scope` is set to 'Cluster'",
                )),
                (Some("Namespace" | "Cluster") | None, ns) => {
                    if let Some(ns) = ns {
                        errs.check(pp.key("namespace"), ns, names::dns1123_label(ns));
                    }
                }
                (Some(other), _) => errs.push(FieldError::not_supported(
                    pp.key("scope"),
                    other,
                    &["Cluster", "Namespace"],
                )),
            }
        }
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        check_immutable(
            &mut errs,
            FieldPath::fields("spec.controller"),
            &self.spec.as_ref().and_then(|s| s.controller.clone()),
            &old.spec.as_ref().and_then(|s| s.controller.clone()),
        );
        errs.0
    }
}

fn validate_np_port(errs: &mut Errs, port: &NetworkPolicyPort, p: &FieldPath) {
    errs.one_of(
        p.key("protocol"),
        port.protocol.as_deref(),
        &["TCP", "UDP", "SCTP"],
    );
    match (&port.port, port.end_port) {
        (Some(IntOrString::Int(n)), end) => {
            if let Some(e) = names::port_number(*n) {
                errs.push(FieldError::invalid(p.key("port"), n, e));
            }
            if let Some(end) = end {
                if end < *n {
                    errs.push(FieldError::invalid(
                        p.key("endPort"),
                        end,
                        "must be greater than or equal to `port`",
                    ));
                }
                if let Some(e) = names::port_number(end) {
                    errs.push(FieldError::invalid(p.key("endPort"), end, e));
                }
            }
        }
        (Some(IntOrString::String(name)), end) => {
            errs.check(p.key("port"), name, names::iana_svc_name(name));
            if let Some(end) = end {
                errs.push(FieldError::invalid(
                    p.key("endPort"),
                    end,
                    "may not be specified when `port` is non-numeric",
                ));
            }
        }
        (None, Some(end)) => errs.push(FieldError::invalid(
            p.key("endPort"),
            end,
            "may not be specified when `port` is not specified",
        )),
        (None, None) => {}
    }
}

fn cidr_contains(outer: &str, inner: &str) -> Option<bool> {
    let parse = |c: &str| -> Option<(IpAddr, u8)> {
        let (ip, bits) = c.split_once('/')?;
        Some((ip.parse().ok()?, bits.parse().ok()?))
    };
    let (oip, obits) = parse(outer)?;
    let (iip, ibits) = parse(inner)?;
    if ibits <= obits {
        return Some(false);
    }
    let masked = |ip: IpAddr, bits: u8| -> Option<u128> {
        match ip {
            IpAddr::V4(v) => {
                let n = u128::from(u32::from(v));
                Some(if bits == 0 {
                    0
                } else {
                    n >> (32 - u32::from(bits.min(32)))
                })
            }
            IpAddr::V6(v) => {
                let n = u128::from(v);
                Some(if bits == 0 {
                    0
                } else {
                    n >> (128 - u32::from(bits.min(128)))
                })
            }
        }
    };
    match (oip, iip) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
            Some(masked(oip, obits)? == masked(iip, obits)?)
        }
        _ => Some(false),
    }
}

fn validate_peer(errs: &mut Errs, peer: &NetworkPolicyPeer, p: &FieldPath) {
    let count = [
        peer.pod_selector.is_some(),
        peer.namespace_selector.is_some(),
        peer.ip_block.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if count == 0 {
        errs.push(FieldError::required(p.clone(), "must specify a peer"));
    } else if peer.ip_block.is_some() && count > 1 {
        errs.push(FieldError::forbidden(
            p.clone(),
            "may not specify both ipBlock and another peer",
        ));
    }
    if let Some(s) = &peer.pod_selector {
        validate_selector(errs, s, &p.key("podSelector"));
    }
    if let Some(s) = &peer.namespace_selector {
        validate_selector(errs, s, &p.key("namespaceSelector"));
    }
    if let Some(b) = &peer.ip_block {
        let bp = p.key("ipBlock");
        if b.cidr.is_empty() {
            errs.push(FieldError::required(bp.key("cidr"), ""));
        } else if names::cidr(&b.cidr).is_some() {
            errs.push(FieldError::invalid(
                bp.key("cidr"),
                &b.cidr,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ));
        }
        for (k, e) in b.except.iter().flatten().enumerate() {
            let ep = bp.key("except").index(k);
            if names::cidr(e).is_some() {
                errs.push(FieldError::invalid(
                    ep,
                    e,
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                ));
            } else if cidr_contains(&b.cidr, e) == Some(false) {
                errs.push(FieldError::invalid(
                    ep,
                    e,
                    "must be a strict subset of `cidr`",
                ));
            }
        }
    }
}

impl Validate for NetworkPolicy {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let sp = FieldPath::fields("spec");
        let Some(spec) = &self.spec else {
            return errs.0;
        };
        if let Some(s) = &spec.pod_selector {
            validate_selector(&mut errs, s, &sp.key("podSelector"));
        }
        for (i, rule) in spec.ingress.iter().flatten().enumerate() {
            let rp = sp.key("ingress").index(i);
            for (j, port) in rule.ports.iter().flatten().enumerate() {
                validate_np_port(&mut errs, port, &rp.key("ports").index(j));
            }
            for (j, peer) in rule.from.iter().flatten().enumerate() {
                validate_peer(&mut errs, peer, &rp.key("from").index(j));
            }
        }
        for (i, rule) in spec.egress.iter().flatten().enumerate() {
            let rp = sp.key("egress").index(i);
            for (j, port) in rule.ports.iter().flatten().enumerate() {
                validate_np_port(&mut errs, port, &rp.key("ports").index(j));
            }
            for (j, peer) in rule.to.iter().flatten().enumerate() {
                validate_peer(&mut errs, peer, &rp.key("to").index(j));
            }
        }
        let types = spec.policy_types.as_deref().unwrap_or_default();
        if types.len() > 2 {
            errs.push(FieldError::invalid(
                sp.key("policyTypes"),
                format!("{types:?}"),
                "may not specify more than two policyTypes",
            ));
        } else {
            for (i, t) in types.iter().enumerate() {
                errs.one_of(
                    sp.key("policyTypes").index(i),
                    Some(t),
                    &["Ingress", "Egress"],
                );
            }
        }
        errs.0
    }
}

impl Validate for EndpointSlice {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let at = self.address_type.as_str();
        errs.one_of(
            FieldPath::fields("addressType"),
            Some(at),
            &["IPv4", "IPv6", "FQDN"],
        );
        if self.endpoints.len() > 1000 {
            errs.push(FieldError {
                path: FieldPath::fields("endpoints"),
                reason: crate::field_error::Reason::TooMany,
                message: format!(
                    "Too many: {}: must have at most 1000 items",
                    self.endpoints.len()
                ),
            });
        }
        for (i, ep) in self.endpoints.iter().enumerate() {
            let p = FieldPath::fields("endpoints").index(i);
            if ep.addresses.is_empty() {
                errs.push(FieldError::required(
                    p.key("addresses"),
                    "must contain at least 1 address",
                ));
            }
            for (j, a) in ep.addresses.iter().enumerate() {
                let ap = p.key("addresses").index(j);
                match at {
                    "IPv4" if a.parse::<std::net::Ipv4Addr>().is_err() => {
                        errs.push(FieldError::invalid(ap, a, "must be a valid IPv4 address"))
                    }
                    "IPv6" if a.parse::<std::net::Ipv6Addr>().is_err() => {
                        errs.push(FieldError::invalid(ap, a, "must be a valid IPv6 address"))
                    }
                    "FQDN" => errs.check(ap, a, names::dns1123_subdomain(a)),
                    _ => {}
                }
            }
            if let Some(h) = ep.hostname.as_deref() {
                errs.check(p.key("hostname"), h, names::dns1123_label(h));
            }
            if let Some(n) = ep.node_name.as_deref() {
                errs.check(p.key("nodeName"), n, names::dns1123_subdomain(n));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, port) in self.ports.iter().flatten().enumerate() {
            let p = FieldPath::fields("ports").index(i);
            let name = port.name.as_deref().unwrap_or("");
            if !name.is_empty() {
                errs.check(p.key("name"), name, names::dns1123_label(name));
            }
            if !seen.insert(name.to_string()) {
                errs.push(FieldError::duplicate(p.key("name"), name));
            }
            errs.one_of(
                p.key("protocol"),
                port.protocol.as_deref(),
                &["SCTP", "TCP", "UDP"],
            );
        }
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        check_immutable(
            &mut errs,
            FieldPath::fields("addressType"),
            &self.address_type,
            &old.address_type,
        );
        errs.0
    }
}
