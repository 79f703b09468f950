//! The csrapproving controller, after kube-controller-manager's
//! (`sarapprove.go`): a CertificateSigningRequest for a kubelet client
//! certificate (`kubernetes.io/kube-apiserver-client-kubelet`, a subject
//! and usages `ValidateKubeletClientCSR` accepts) is approved — condition
//! `Approved`, reason `AutoApproved` — when its requester may `create`
//! `certificatesigningrequests/selfnodeclient` (a node renewing its own:
//! the requester is the certificate's CN) or `.../nodeclient` (a new node,
//! e.g. with a bootstrap token), asked of the API server with a
//! SubjectAccessReview for the requester the server recorded in the spec.
//! Anything else is left for a person (`kubectl certificate approve`).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use serde_json::{Value, json};

use crate::controllers::Context;
use crate::controllers::certificates::request::{self, KUBELET_CLIENT_SIGNER, Subject};
use crate::runtime::{Action, Cache, ClientError, Controller, ObjectRef, Patch, WriteParams};

const MANAGER: &str = "csrapproving";

/// One kind of request the approver recognises and the permission it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recognized {
    /// The subresource of `certificatesigningrequests` the requester needs `create` on.
    pub subresource: &'static str,
    /// The approval condition's message.
    pub message: &'static str,
}

const SELF_NODE_CLIENT: Recognized = Recognized {
    subresource: "selfnodeclient",
    message: "Auto approving self kubelet client certificate after SubjectAccessReview.",
};
const NODE_CLIENT: Recognized = Recognized {
    subresource: "nodeclient",
    message: "Auto approving kubelet client certificate after SubjectAccessReview.",
};

/// What the approver would ask permission for, in kube's order: a node's
/// renewal of its own certificate first, then any node client certificate.
/// Empty: not a request this controller approves.
pub fn recognize(csr: &CertificateSigningRequest, subject: &Subject) -> Vec<Recognized> {
    if csr.spec.signer_name != KUBELET_CLIENT_SIGNER
        || request::kubelet_client_problem(subject, &request::usages(csr)).is_some()
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    if csr.spec.username.as_deref() == Some(subject.common_name.as_str()) {
        out.push(SELF_NODE_CLIENT);
    }
    out.push(NODE_CLIENT);
    out
}

struct State {
    ctx: Context,
    csrs: Cache<CertificateSigningRequest>,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let informer = ctx.informers.get::<CertificateSigningRequest>();
    let controller = Controller::new("csrapproving", &informer).workers(2);
    let state = Arc::new(State {
        ctx: ctx.clone(),
        csrs: informer.cache(),
    });
    let shutdown = ctx.stopped();
    controller
        .run(
            move |key| reconcile(state.clone(), key),
            ctx.metrics.clone(),
            shutdown,
        )
        .await;
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(csr) = state.csrs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if request::is_issued(&csr)
        || request::has_condition(&csr, "Approved")
        || request::has_condition(&csr, "Denied")
    {
        return Ok(Action::AwaitChange);
    }
    let subject = match request::parse(&csr.spec.request.0) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(csr = %key.name, error = %e, "not approving an unreadable request");
            return Ok(Action::AwaitChange);
        }
    };
    let candidates = recognize(&csr, &subject);
    for r in &candidates {
        if may_create(&state.ctx, &csr, r.subresource).await? {
            approve(&state.ctx, &csr, r.message).await?;
            tracing::info!(csr = %key.name, requester = ?csr.spec.username, subresource = r.subresource, "approved");
            return Ok(Action::AwaitChange);
        }
    }
    if !candidates.is_empty() {
        let tried: Vec<&str> = candidates.iter().map(|r| r.subresource).collect();
        tracing::info!(
            csr = %key.name,
            requester = ?csr.spec.username,
            "recognized the request as {tried:?} but the SubjectAccessReview did not allow it; \
             bind the requester to system:certificates.k8s.io:certificatesigningrequests:nodeclient \
             (or approve it with kubectl certificate approve)"
        );
        // RBAC may change: look again later, as kube's ignorable error requeues
        return Ok(Action::Requeue(Duration::from_secs(60)));
    }
    Ok(Action::AwaitChange)
}

/// Asks the API server whether the request's requester may `create`
/// `certificatesigningrequests/SUBRESOURCE` (a SubjectAccessReview).
async fn may_create(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    subresource: &str,
) -> Result<bool, ClientError> {
    let mut spec = json!({
        "user": csr.spec.username,
        "groups": csr.spec.groups,
        "resourceAttributes": {
            "group": "certificates.k8s.io",
            "resource": "certificatesigningrequests",
            "verb": "create",
            "subresource": subresource,
        },
    });
    if let Some(uid) = &csr.spec.uid {
        spec["uid"] = json!(uid);
    }
    if let Some(extra) = &csr.spec.extra {
        spec["extra"] = json!(extra);
    }
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});
    let answer = ctx
        .client
        .post_raw(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &review,
        )
        .await?;
    Ok(answer
        .pointer("/status/allowed")
        .and_then(Value::as_bool)
        .unwrap_or(false))
}

/// Adds the `Approved` condition through the `approval` subresource, at the
/// version read (a conflict retries from a fresh cache).
async fn approve(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    message: &str,
) -> Result<(), ClientError> {
    let name = csr.metadata.name.as_deref().unwrap_or_default();
    let mut conditions: Vec<Value> = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    conditions.push(json!({
        "type": "Approved",
        "status": "True",
        "reason": "AutoApproved",
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }));
    let patch = json!({
        "metadata": {"resourceVersion": csr.metadata.resource_version},
        "status": {"conditions": conditions},
    });
    let wp = WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    ctx.client
        .api::<CertificateSigningRequest>(None)
        .patch_subresource(name, "approval", &Patch::Merge(patch), &wp)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;

    fn csr(username: &str, signer: &str, usages: &[&str]) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                username: Some(username.into()),
                signer_name: signer.into(),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                request: ByteString(Vec::new()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn node(cn: &str) -> Subject {
        Subject {
            common_name: cn.into(),
            organizations: vec!["system:nodes".into()],
            alt_names: 0,
        }
    }

    const CLIENT: &[&str] = &["digital signature", "client auth"];

    #[test]
    fn a_bootstrapper_asks_for_nodeclient_only() {
        let r = recognize(
            &csr("system:bootstrap:abcdef", KUBELET_CLIENT_SIGNER, CLIENT),
            &node("system:node:a"),
        );
        assert_eq!(r, vec![NODE_CLIENT]);
    }

    #[test]
    fn a_node_renewing_its_own_asks_for_selfnodeclient_first() {
        let r = recognize(
            &csr("system:node:a", KUBELET_CLIENT_SIGNER, CLIENT),
            &node("system:node:a"),
        );
        assert_eq!(r, vec![SELF_NODE_CLIENT, NODE_CLIENT]);
        // another node's name is not a self renewal
        let other = recognize(
            &csr("system:node:b", KUBELET_CLIENT_SIGNER, CLIENT),
            &node("system:node:a"),
        );
        assert_eq!(other, vec![NODE_CLIENT]);
    }

    #[test]
    fn other_signers_subjects_and_usages_are_not_recognised() {
        let user = "system:bootstrap:abcdef";
        assert!(
            recognize(
                &csr(user, "kubernetes.io/kube-apiserver-client", CLIENT),
                &node("system:node:a")
            )
            .is_empty()
        );
        assert!(
            recognize(
                &csr(
                    user,
                    KUBELET_CLIENT_SIGNER,
                    &["digital signature", "server auth"]
                ),
                &node("system:node:a")
            )
            .is_empty()
        );
        let masters = Subject {
            organizations: vec!["system:masters".into()],
            ..node("system:node:a")
        };
        assert!(recognize(&csr(user, KUBELET_CLIENT_SIGNER, CLIENT), &masters).is_empty());
        assert!(recognize(&csr(user, KUBELET_CLIENT_SIGNER, CLIENT), &node("admin")).is_empty());
    }
}
