//! What the certificate controllers read from a CertificateSigningRequest:
//! the PKCS#10 request's subject and names (x509-parser), the approval
//! conditions, and kube's rules for a kubelet client certificate
//! (`ValidateKubeletClientCSR`), which the approver and the signer share.

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

/// The kubelet client signer's name.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The generic API server client signer's name.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The organisation (group) of node client certificates.
pub const NODES_GROUP: &str = "system:nodes";
/// The prefix of node user names.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// The parts of a PKCS#10 request the rules look at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// The subject's common name.
    pub common_name: String,
    /// The subject's organisations, in order.
    pub organizations: Vec<String>,
    /// How many subject alternative names (DNS, email, IP, URI, …) it asks for.
    pub alt_names: usize,
}

/// Parses `spec.request` (a PEM `CERTIFICATE REQUEST`) and checks its signature.
pub fn parse(pem: &[u8]) -> Result<Subject, String> {
    use x509_parser::prelude::FromDer;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| format!("spec.request is not PEM: {e}"))?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err(format!(
            "spec.request holds a {} PEM block, not a CERTIFICATE REQUEST",
            block.label
        ));
    }
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
            .map_err(|e| format!("spec.request is not a PKCS#10 request: {e}"))?;
    let info = &csr.certification_request_info;
    let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        a.as_str().map(str::to_string).unwrap_or_default()
    };
    let mut alt_names = 0;
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
            alt_names += san.general_names.len();
        }
    }
    Ok(Subject {
        common_name: info
            .subject
            .iter_common_name()
            .next()
            .map(text)
            .unwrap_or_default(),
        organizations: info.subject.iter_organization().map(text).collect(),
        alt_names,
    })
}

/// kube's `ValidateKubeletClientCSR`: why the request is not a kubelet
/// client certificate, or `None` when it is one (organisation exactly
/// `system:nodes`, no alternative names, CN `system:node:…`, usages
/// `digital signature` + `client auth`, optionally `key encipherment`).
pub fn kubelet_client_problem(subject: &Subject, usages: &[String]) -> Option<String> {
    if subject.organizations != [NODES_GROUP] {
        return Some(format!(
            "subject organization is not {NODES_GROUP}: {:?}",
            subject.organizations
        ));
    }
    if subject.alt_names > 0 {
        return Some("alternative names are not allowed".into());
    }
    if !subject.common_name.starts_with(NODE_USER_PREFIX) {
        return Some(format!(
            "subject common name does not begin with {NODE_USER_PREFIX}: {:?}",
            subject.common_name
        ));
    }
    let mut have: Vec<&str> = usages.iter().map(String::as_str).collect();
    have.sort_unstable();
    have.dedup();
    let allowed: [&[&str]; 2] = [
        &["client auth", "digital signature"],
        &["client auth", "digital signature", "key encipherment"],
    ];
    if !allowed.contains(&have.as_slice()) {
        return Some(format!(
            "usages did not match [digital signature client auth] or [digital signature key encipherment client auth]: {usages:?}"
        ));
    }
    None
}

/// The request's usages.
pub fn usages(csr: &CertificateSigningRequest) -> Vec<String> {
    csr.spec.usages.clone().unwrap_or_default()
}

/// Whether a condition of this type is `True`.
pub fn has_condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// Whether the request has its certificate already.
pub fn is_issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cn: &str, orgs: &[&str], sans: &[&str]) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            dn.push(rcgen::DnType::OrganizationName, *o);
        }
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().expect("key");
        params
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem")
            .into_bytes()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_kubelet_request_parses_and_passes() {
        let s = parse(&request("system:node:a", &["system:nodes"], &[])).expect("parse");
        assert_eq!(s.common_name, "system:node:a");
        assert_eq!(s.organizations, ["system:nodes"]);
        assert_eq!(
            kubelet_client_problem(&s, &strings(&["digital signature", "client auth"])),
            None
        );
        assert_eq!(
            kubelet_client_problem(
                &s,
                &strings(&["key encipherment", "digital signature", "client auth"])
            ),
            None
        );
    }

    #[test]
    fn wrong_subjects_names_and_usages_are_refused() {
        let usages = strings(&["digital signature", "client auth"]);
        let masters = parse(&request("system:node:a", &["system:masters"], &[])).expect("parse");
        assert!(
            kubelet_client_problem(&masters, &usages).is_some_and(|p| p.contains("organization"))
        );
        let two = parse(&request(
            "system:node:a",
            &["system:nodes", "system:masters"],
            &[],
        ))
        .expect("parse");
        assert!(kubelet_client_problem(&two, &usages).is_some());
        let named =
            parse(&request("system:node:a", &["system:nodes"], &["a.example"])).expect("parse");
        assert!(kubelet_client_problem(&named, &usages).is_some_and(|p| p.contains("alternative")));
        let user = parse(&request("jane", &["system:nodes"], &[])).expect("parse");
        assert!(kubelet_client_problem(&user, &usages).is_some_and(|p| p.contains("common name")));
        let ok = parse(&request("system:node:a", &["system:nodes"], &[])).expect("parse");
        assert!(
            kubelet_client_problem(&ok, &strings(&["digital signature", "server auth"]))
                .is_some_and(|p| p.contains("usages"))
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"not pem").is_err());
        assert!(parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
    }
}
