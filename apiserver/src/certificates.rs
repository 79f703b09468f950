//! CertificateSigningRequests as kube-apiserver's strategy stores them: on
//! create the requester (`spec.username`, `uid`, `groups`, `extra`) is the
//! authenticated caller, whatever the body said — the csrapproving
//! controller decides by it — and an update of the main resource cannot
//! change the spec (approval and status go through their subresources).

use serde_json::{Value, json};

use crate::auth::{Identity, Role};
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

/// Keeps a CSR's spec through an update of the main resource.
pub fn prepare_update(info: &KindInfo, subresource: Option<&str>, old: &Value, new: &mut Value) {
    if !is_csr(info) || subresource.is_some() {
        return;
    }
    if let (Some(spec), Value::Object(root)) = (old.get("spec"), new) {
        root.insert("spec".into(), spec.clone());
    }
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
        prepare_update(info, None, &csr, &mut changed);
        assert_eq!(changed["spec"]["username"], "system:node:a");
    }
}
