//! Semantic validation of Services and Endpoints: types, ports, node ports,
//! cluster IPs, external names.

use std::collections::HashSet;

use crate::field_error::FieldError;
use crate::path::FieldPath;
use crate::validation::{Errs, NameRule, Validate, names, validate_labels, validate_meta};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The default NodePort range.
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;

impl Validate for Service {
    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let ip = |s: &Service| {
            s.spec
                .as_ref()
                .and_then(|s| s.cluster_ip.clone())
                .filter(|c| !c.is_empty())
        };
        let to_external =
            self.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
        match (ip(old), ip(self)) {
            (Some(o), Some(n)) if o != n && !to_external => vec![FieldError {
                path: FieldPath::fields("spec.clusterIPs").index(0),
                reason: crate::field_error::Reason::Invalid,
                message: format!("Invalid value: []string{{{n:?}}}: may not change once set"),
            }],
            _ => Vec::new(),
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Label1035,
            &FieldPath::fields("metadata"),
        );
        let sp = FieldPath::fields("spec");
        let Some(spec) = &self.spec else {
            errs.push(FieldError::required(sp, "a service needs a spec"));
            return errs.0;
        };
        let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
        errs.one_of(
            sp.key("type"),
            Some(ty),
            &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
        );
        errs.one_of(
            sp.key("sessionAffinity"),
            spec.session_affinity.as_deref(),
            &["None", "ClientIP"],
        );
        errs.one_of(
            sp.key("externalTrafficPolicy"),
            spec.external_traffic_policy.as_deref(),
            &["Cluster", "Local"],
        );
        errs.one_of(
            sp.key("internalTrafficPolicy"),
            spec.internal_traffic_policy.as_deref(),
            &["Cluster", "Local"],
        );
        let headless = spec.cluster_ip.as_deref() == Some("None");
        match spec.cluster_ip.as_deref() {
            None | Some("") | Some("None") => {}
            Some(ip) => errs.check(sp.key("clusterIP"), ip, names::ip_address(ip)),
        }
        if headless && ty != "ClusterIP" {
            errs.push(FieldError::invalid(
                sp.key("clusterIP"),
                "None",
                format!("may not be set to 'None' for {ty} services"),
            ));
        }
        if ty == "ExternalName" {
            match spec.external_name.as_deref() {
                None | Some("") => errs.push(FieldError::required(
                    sp.key("externalName"),
                    "the DNS name this service aliases",
                )),
                Some(n) => errs.check(
                    sp.key("externalName"),
                    n,
                    names::dns1123_subdomain(n.trim_end_matches('.')),
                ),
            }
        }
        if let Some(sel) = &spec.selector {
            validate_labels(&mut errs, sel, &sp.key("selector"));
        }
        let ports = spec.ports.as_deref().unwrap_or_default();
        if ports.is_empty() && ty != "ExternalName" && !headless {
            errs.push(FieldError::required(
                sp.key("ports"),
                "a service needs at least one port (or clusterIP: None)",
            ));
        }
        let mut names_seen = HashSet::new();
        let mut ports_seen = HashSet::new();
        for (i, p) in ports.iter().enumerate() {
            let pp = sp.key("ports").index(i);
            match p.name.as_deref().filter(|n| !n.is_empty()) {
                None if ports.len() > 1 => errs.push(FieldError::required(
                    pp.key("name"),
                    "a name is required when a service has more than one port",
                )),
                None => {}
                Some(n) => {
                    errs.check(pp.key("name"), n, names::dns1123_label(n));
                    if !names_seen.insert(n) {
                        errs.push(FieldError::duplicate(pp.key("name"), n));
                    }
                }
            }
            if let Some(e) = names::port_number(p.port) {
                errs.push(FieldError::invalid(pp.key("port"), p.port, e));
            }
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            errs.one_of(pp.key("protocol"), Some(proto), &["TCP", "UDP", "SCTP"]);
            if !ports_seen.insert((p.port, proto)) {
                errs.push(FieldError::duplicate(
                    pp.clone(),
                    format!("{}/{proto}", p.port),
                ));
            }
            match &p.target_port {
                Some(IntOrString::Int(0)) | None => {}
                Some(IntOrString::Int(n)) => {
                    if let Some(e) = names::port_number(*n) {
                        errs.push(FieldError::invalid(pp.key("targetPort"), n, e));
                    }
                }
                Some(IntOrString::String(s)) => {
                    errs.check(pp.key("targetPort"), s, names::iana_svc_name(s))
                }
            }
            if let Some(np) = p.node_port.filter(|n| *n != 0) {
                if !matches!(ty, "NodePort" | "LoadBalancer") {
                    errs.push(FieldError::forbidden(
                        pp.key("nodePort"),
                        format!("may not be used when `type` is '{ty}'"),
                    ));
                } else if !NODE_PORT_RANGE.contains(&np) {
                    errs.push(FieldError::invalid(pp.key("nodePort"), np, "provided port is not in the valid range. The range of valid ports is 30000-32767"));
                }
            }
        }
        errs.0
    }
}

impl Validate for Endpoints {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        for (i, s) in self.subsets.iter().flatten().enumerate() {
            let sp = FieldPath::fields("subsets").index(i);
            for (field, list) in [
                ("addresses", &s.addresses),
                ("notReadyAddresses", &s.not_ready_addresses),
            ] {
                for (j, a) in list.iter().flatten().enumerate() {
                    errs.check(
                        sp.key(field).index(j).key("ip"),
                        &a.ip,
                        names::ip_address(&a.ip),
                    );
                }
            }
            for (j, p) in s.ports.iter().flatten().enumerate() {
                if let Some(e) = names::port_number(p.port) {
                    errs.push(FieldError::invalid(
                        sp.key("ports").index(j).key("port"),
                        p.port,
                        e,
                    ));
                }
            }
        }
        errs.0
    }
}
