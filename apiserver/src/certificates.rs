//! CertificateSigningRequests as kube-apiserver's strategy stores them: on
//! create the requester (`spec.username`, `uid`, `groups`, `extra`) is the
//! authenticated caller, whatever the body said — the csrapproving
//! controller decides by it — and updates change only what kube's
//! strategies let them: never the spec; conditions through `approval` (not
//! the certificate); the certificate and other conditions through `status`
//! (not approval).

use serde_json::{Value, json};

use crate::auth::{Identity, Role};
use crate::errors::{ApiError, ApiResult};
use schemas::KindInfo;

fn is_csr(info: &KindInfo) -> bool {
    info.is("certificates.k8s.io", "CertificateSigningRequest")
}

/// Records the caller as the requester of a CSR being created.
pub fn prepare_create(info: &KindInfo, id: &Identity, obj: &mut Value) {
    if !is_csr(info) {
        return;
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
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
}

/// What an update may change, as kube's three CSR strategies allow: the main
/// resource and the subresources never change the spec; `approval` changes
/// only the conditions (the certificate stays); `status` cannot add or drop
/// `Approved`/`Denied` conditions. Approved and Denied together are refused.
pub fn prepare_update(
    info: &KindInfo,
    subresource: Option<&str>,
    old: &Value,
    new: &mut Value,
) -> ApiResult<()> {
    if !is_csr(info) {
        return Ok(());
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
        prepare_create(info, &id, &mut csr);
        assert_eq!(csr["spec"]["username"], "system:node:a");
        assert_eq!(
            csr["spec"]["groups"],
            json!(["system:nodes", "system:authenticated"])
        );
        assert!(csr["spec"].get("uid").is_none());
        let mut changed = json!({"spec": {"username": "admin"}});
        prepare_update(info, None, &csr, &mut changed).expect("update");
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
        prepare_update(info, Some("status"), &old, &mut by_status).expect("status");
        assert_eq!(by_status["status"]["certificate"], "Q0VSVA==");
        assert_eq!(by_status["status"]["conditions"], json!([approved]));
        // approval cannot write a certificate
        let mut by_approval = json!({"spec": {}, "status": {"certificate": "Q0VSVA==",
            "conditions": [approved]}});
        prepare_update(info, Some("approval"), &old, &mut by_approval).expect("approval");
        assert!(by_approval["status"].get("certificate").is_none());
        // approved and denied at once: 422
        let mut both = json!({"spec": {}, "status": {"conditions": [approved,
            {"type": "Denied", "status": "True"}]}});
        let e = prepare_update(info, Some("approval"), &old, &mut both).expect_err("both");
        assert_eq!(e.code, 422);
    }
}
