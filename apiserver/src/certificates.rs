//! CertificateSigningRequests as kube-apiserver's strategy and admission
//! plugins store them: on create the requester (`spec.username`, `uid`,
//! `groups`, `extra`) is the authenticated caller, whatever the body said —
//! the csrapproving controller decides by it — and a request for the
//! `kube-apiserver-client` signer may not ask for `system:masters`
//! (CertificateSubjectRestriction); updates change only what kube's
//! strategies let them: never the spec; conditions through `approval` (not
//! the certificate), by callers RBAC lets `approve` the request's signer
//! (CertificateApproval); the certificate and other conditions through
//! `status` (not approval), a new certificate only by callers that may
//! `sign` for it (CertificateSigning).

use serde_json::{Value, json};

use crate::auth::{Identity, Role};
use crate::errors::{ApiError, ApiResult};
use schemas::KindInfo;

fn is_csr(info: &KindInfo) -> bool {
    info.is("certificates.k8s.io", "CertificateSigningRequest")
}

/// The signer whose certificates may not carry `system:masters`.
const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// The organisations of the PKCS#10 request in a CSR's `spec.request`
/// (base64 of PEM in JSON); `None` when it does not parse (validation says so).
fn requested_organizations(obj: &Value) -> Option<Vec<String>> {
    use base64::Engine;
    use x509_parser::prelude::FromDer;
    let b64 = obj.pointer("/spec/request")?.as_str()?;
    let pem = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
            .ok()?;
    Some(
        csr.certification_request_info
            .subject
            .iter_organization()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect(),
    )
}

fn forbidden(obj: &Value, why: &str) -> ApiError {
    ApiError::forbidden_message(format!(
        "certificatesigningrequests.certificates.k8s.io {:?} is forbidden: {why}",
        crate::objects::name(obj)
    ))
}

/// Whether RBAC lets the caller `verb` (`approve`, `sign`) the signer
/// `signer` (by its name or `<domain>/*`), as kube's certificate admission
/// plugins ask; nodes and viewers never may.
fn may_use_signer(id: &Identity, verb: &str, signer: &str) -> bool {
    let Role::Subject(subject) = &id.role else {
        return matches!(id.role, Role::Admin | Role::Controller | Role::Intake);
    };
    let wildcard = signer
        .split_once('/')
        .map(|(domain, _)| format!("{domain}/*"));
    [Some(signer.to_string()), wildcard]
        .into_iter()
        .flatten()
        .any(|name| {
            let request = crate::rbac::Request {
                verb,
                group: "certificates.k8s.io",
                resource: "signers",
                name: Some(&name),
                ..Default::default()
            };
            matches!(
                subject.rbac.0.authorize(&subject.user(&id.name), &request),
                crate::rbac::Verdict::Allow(_)
            )
        })
}

/// Records the caller as the requester of a CSR being created and refuses a
/// `kube-apiserver-client` request for `system:masters`.
pub fn prepare_create(info: &KindInfo, id: &Identity, obj: &mut Value) -> ApiResult<()> {
    if !is_csr(info) {
        return Ok(());
    }
    if obj.pointer("/spec/signerName").and_then(Value::as_str) == Some(CLIENT_SIGNER)
        && requested_organizations(obj)
            .is_some_and(|orgs| orgs.iter().any(|o| o == "system:masters"))
    {
        return Err(forbidden(
            obj,
            "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed",
        ));
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    spec.insert("username".into(), json!(id.name));
    spec.insert("groups".into(), json!(crate::http::access::groups_of(id)));
    spec.remove("uid");
    spec.remove("extra");
    if let Role::Subject(s) = &id.role {
        if let Some(uid) = &s.uid {
            spec.insert("uid".into(), json!(uid));
        }
        if !s.extra.is_empty() {
            spec.insert("extra".into(), json!(s.extra));
        }
    }
    Ok(())
}

/// What an update may change, as kube's three CSR strategies allow: the main
/// resource and the subresources never change the spec; `approval` changes
/// only the conditions (the certificate stays); `status` cannot add or drop
/// `Approved`/`Denied` conditions. Approved and Denied together are refused.
pub fn prepare_update(
    info: &KindInfo,
    subresource: Option<&str>,
    id: &Identity,
    old: &Value,
    new: &mut Value,
) -> ApiResult<()> {
    if !is_csr(info) {
        return Ok(());
    }
    let signer = old
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if subresource == Some("approval") && !may_use_signer(id, "approve", &signer) {
        return Err(forbidden(
            old,
            &format!("user not permitted to approve requests with signerName {signer:?}"),
        ));
    }
    if subresource == Some("status")
        && new.pointer("/status/certificate") != old.pointer("/status/certificate")
        && new
            .pointer("/status/certificate")
            .and_then(Value::as_str)
            .is_some_and(|c| !c.is_empty())
        && !may_use_signer(id, "sign", &signer)
    {
        return Err(forbidden(
            old,
            &format!("user not permitted to sign requests with signerName {signer:?}"),
        ));
    }
    let Value::Object(root) = new else {
        return Ok(());
    };
    if let Some(spec) = old.get("spec") {
        root.insert("spec".into(), spec.clone());
    }
    let approval = |c: &&Value| {
        matches!(
            c.get("type").and_then(Value::as_str),
            Some("Approved" | "Denied")
        )
    };
    let old_conditions: Vec<Value> = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match subresource {
        Some("approval") => {
            let status = root.entry("status").or_insert_with(|| json!({}));
            if let Value::Object(status) = status {
                match old.pointer("/status/certificate") {
                    Some(cert) => status.insert("certificate".into(), cert.clone()),
                    None => status.remove("certificate"),
                };
            }
        }
        Some("status") => {
            let status = root.entry("status").or_insert_with(|| json!({}));
            if let Value::Object(status) = status {
                let mut conditions: Vec<Value> = status
                    .get("conditions")
                    .and_then(Value::as_array)
                    .map(|cs| cs.iter().filter(|c| !approval(c)).cloned().collect())
                    .unwrap_or_default();
                conditions.extend(old_conditions.iter().filter(approval).cloned());
                status.insert("conditions".into(), Value::Array(conditions));
            }
        }
        _ => {}
    }
    let true_of = |t: &str| {
        root.get("status")
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some(t)
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            })
    };
    if true_of("Approved") && true_of("Denied") {
        let name = crate::objects::name(old).to_string();
        return Err(ApiError::invalid(
            info,
            &name,
            &[schemas::FieldError::invalid(
                schemas::FieldPath::fields("status.conditions"),
                "Approved",
                "Approved and Denied conditions are mutually exclusive",
            )],
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Identity {
        Identity {
            name: "root".into(),
            role: Role::Admin,
        }
    }

    fn subject(name: &str, snapshot: crate::rbac::Snapshot) -> Identity {
        Identity {
            name: name.into(),
            role: Role::Subject(crate::auth::Subject::in_groups(
                vec!["system:authenticated".into()],
                crate::auth::RbacView(std::sync::Arc::new(snapshot)),
            )),
        }
    }

    #[test]
    fn approving_and_signing_need_the_signers_permission() {
        let info =
            schemas::lookup("certificates.k8s.io/v1", "CertificateSigningRequest").expect("kind");
        let old = json!({"metadata": {"name": "r"}, "spec": {"signerName": "example.com/s"}});
        let rbac = |rules: Value| {
            let role =
                serde_json::from_value(json!({"metadata": {"name": "approver"}, "rules": rules}))
                    .expect("role");
            let binding = serde_json::from_value(json!({"metadata": {"name": "approver"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "approver"},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"}]}))
            .expect("binding");
            crate::rbac::Snapshot::new(vec![role], Vec::new(), vec![binding], Vec::new())
        };
        let nobody = subject("jane", rbac(json!([])));
        let e = prepare_update(info, Some("approval"), &nobody, &old, &mut old.clone())
            .expect_err("no approve");
        assert_eq!(e.code, 403);
        assert!(
            e.message.contains(
                "user not permitted to approve requests with signerName \"example.com/s\""
            ),
            "{}",
            e.message
        );
        let domain = subject(
            "jane",
            rbac(json!([{"apiGroups": ["certificates.k8s.io"],
            "resources": ["signers"], "resourceNames": ["example.com/*"], "verbs": ["approve"]}])),
        );
        prepare_update(info, Some("approval"), &domain, &old, &mut old.clone()).expect("approve");
        let mut signed = old.clone();
        signed["status"] = json!({"certificate": "Q0VSVA=="});
        let e =
            prepare_update(info, Some("status"), &domain, &old, &mut signed).expect_err("no sign");
        assert!(e.message.contains("not permitted to sign"), "{}", e.message);
        let node = Identity {
            name: "system:node:a".into(),
            role: Role::Node("a".into()),
        };
        assert!(prepare_update(info, Some("approval"), &node, &old, &mut old.clone()).is_err());
    }

    #[test]
    fn the_requester_is_the_caller_not_the_body() {
        let info =
            schemas::lookup("certificates.k8s.io/v1", "CertificateSigningRequest").expect("kind");
        let id = Identity {
            name: "system:node:a".into(),
            role: Role::Node("a".into()),
        };
        let mut csr =
            json!({"spec": {"username": "admin", "groups": ["system:masters"], "uid": "x"}});
        prepare_create(info, &id, &mut csr).expect("create");
        assert_eq!(csr["spec"]["username"], "system:node:a");
        assert_eq!(
            csr["spec"]["groups"],
            json!(["system:nodes", "system:authenticated"])
        );
        assert!(csr["spec"].get("uid").is_none());
        let mut changed = json!({"spec": {"username": "admin"}});
        prepare_update(info, None, &admin(), &csr, &mut changed).expect("update");
        assert_eq!(changed["spec"]["username"], "system:node:a");
    }

    #[test]
    fn approval_changes_conditions_and_status_changes_the_rest() {
        let info =
            schemas::lookup("certificates.k8s.io/v1", "CertificateSigningRequest").expect("kind");
        let approved = json!({"type": "Approved", "status": "True"});
        let old = json!({"spec": {"username": "u"}, "status": {"conditions": [approved]}});
        // status cannot drop the approval, nor add a denial
        let mut by_status = json!({"spec": {}, "status": {"certificate": "Q0VSVA==",
            "conditions": [{"type": "Denied", "status": "True"}]}});
        prepare_update(info, Some("status"), &admin(), &old, &mut by_status).expect("status");
        assert_eq!(by_status["status"]["certificate"], "Q0VSVA==");
        assert_eq!(by_status["status"]["conditions"], json!([approved]));
        // approval cannot write a certificate
        let mut by_approval = json!({"spec": {}, "status": {"certificate": "Q0VSVA==",
            "conditions": [approved]}});
        prepare_update(info, Some("approval"), &admin(), &old, &mut by_approval).expect("approval");
        assert!(by_approval["status"].get("certificate").is_none());
        // approved and denied at once: 422
        let mut both = json!({"spec": {}, "status": {"conditions": [approved,
            {"type": "Denied", "status": "True"}]}});
        let e =
            prepare_update(info, Some("approval"), &admin(), &old, &mut both).expect_err("both");
        assert_eq!(e.code, 422);
    }
}
