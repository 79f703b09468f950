//! The ServiceAccount token controller, after kube-controller-manager's
//! `tokens_controller.go`: a Secret of type
//! `kubernetes.io/service-account-token` annotated with
//! `kubernetes.io/service-account.name` gets `token`, `ca.crt` and
//! `namespace` filled in and the account's uid annotated; a Secret whose
//! account does not exist (or has another uid) is deleted.
//!
//! The token is a TokenRequest bound to the Secret with the longest lifetime
//! the API server issues (2^32 s), so it is valid exactly while the Secret
//! and the account exist — what a legacy token is — though its claims are
//! those of a bound token rather than the legacy
//! `kubernetes/serviceaccount` issuer's (the controllers hold no signing key).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use serde_json::{Value, json};

use crate::controllers::Context;
use crate::runtime::{
    Action, Cache, ClientError, Controller, DeleteParams, ObjectRef, Patch, WriteParams,
};

/// The Secret type this controller fills.
pub const TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming the account.
pub const NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// The annotation with the account's uid.
pub const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";
/// The longest token lifetime the API server issues.
const LIFETIME_SECONDS: i64 = 1 << 32;
const MANAGER: &str = "tokens-controller";

struct State {
    ctx: Context,
    secrets: Cache<Secret>,
    accounts: Cache<ServiceAccount>,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let accounts = ctx.informers.get::<ServiceAccount>();
    // only token Secrets, not every Secret of the cluster
    let secrets = ctx
        .informers
        .selected::<Secret>(&format!("type={TOKEN_TYPE}"));
    let by_account = secrets.cache();
    let controller = Controller::new("serviceaccount-token", &secrets)
        .watches(&accounts, move |sa: &ServiceAccount| {
            let ns = sa.metadata.namespace.as_deref();
            by_account
                .all()
                .iter()
                .filter(|s| s.metadata.namespace.as_deref() == ns)
                .filter(|s| annotation(s, NAME_ANNOTATION) == sa.metadata.name.as_deref())
                .map(|s| ObjectRef::of(s.as_ref()))
                .collect()
        })
        .workers(2);
    let state = Arc::new(State {
        ctx: ctx.clone(),
        secrets: secrets.cache(),
        accounts: accounts.cache(),
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

fn annotation<'a>(s: &'a Secret, key: &str) -> Option<&'a str> {
    s.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// What a token Secret needs.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    /// Nothing.
    Nothing,
    /// Its account is gone (or another of that name): delete it.
    Delete,
    /// Fill in the token and the rest.
    Fill,
}

/// `with_ca`: whether the controllers know the cluster CA (`ca.crt` is
/// expected then).
fn need(secret: &Secret, account: Option<&ServiceAccount>, with_ca: bool) -> Need {
    if secret.metadata.deletion_timestamp.is_some() {
        return Need::Nothing;
    }
    let Some(sa) = account else {
        return Need::Delete;
    };
    if let Some(uid) = annotation(secret, UID_ANNOTATION).filter(|u| !u.is_empty())
        && sa.metadata.uid.as_deref() != Some(uid)
    {
        return Need::Delete;
    }
    let data = secret.data.as_ref();
    let has = |k: &str| data.and_then(|d| d.get(k)).is_some_and(|v| !v.0.is_empty());
    if has("token")
        && (has("ca.crt") || !with_ca)
        && has("namespace")
        && annotation(secret, UID_ANNOTATION).is_some()
    {
        Need::Nothing
    } else {
        Need::Fill
    }
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(secret) = state.secrets.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let ns = key.namespace.clone().unwrap_or_default();
    let Some(name) = annotation(&secret, NAME_ANNOTATION).map(str::to_string) else {
        return Ok(Action::AwaitChange);
    };
    let account = state.accounts.get(&ObjectRef::new(Some(&ns), &name));
    let secrets = state.ctx.client.api::<Secret>(Some(&ns));
    let with_ca = state.ctx.client.ca_pem().is_some();
    match need(&secret, account.as_deref(), with_ca) {
        Need::Nothing => Ok(Action::AwaitChange),
        Need::Delete => {
            // the cache may be behind: ask the API server before deleting
            let live = state
                .ctx
                .client
                .api::<ServiceAccount>(Some(&ns))
                .get_opt(&name)
                .await?;
            if need(&secret, live.as_ref(), with_ca) != Need::Delete {
                return Ok(Action::AwaitChange);
            }
            tracing::info!(namespace = %ns, secret = %key.name, account = %name, "deleting the token Secret of a missing ServiceAccount");
            let params = DeleteParams {
                precondition_uid: secret.metadata.uid.clone(),
                ..Default::default()
            };
            match secrets.delete(&key.name, &params).await {
                Ok(()) => Ok(Action::AwaitChange),
                Err(e) if e.code() == 404 || e.code() == 409 => Ok(Action::AwaitChange),
                Err(e) => Err(e),
            }
        }
        Need::Fill => {
            let Some(sa) = account else {
                return Ok(Action::AwaitChange);
            };
            fill(&state, &ns, &secret, &sa).await
        }
    }
}

async fn fill(
    state: &State,
    ns: &str,
    secret: &Secret,
    sa: &ServiceAccount,
) -> Result<Action, ClientError> {
    let name = sa.metadata.name.clone().unwrap_or_default();
    let secret_name = secret.metadata.name.clone().unwrap_or_default();
    let request = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": LIFETIME_SECONDS,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": secret_name, "uid": secret.metadata.uid},
        },
    });
    let issued = state
        .ctx
        .client
        .api::<ServiceAccount>(Some(ns))
        .create_subresource(&name, "token", &request)
        .await?;
    let Some(token) = issued.pointer("/status/token").and_then(Value::as_str) else {
        return Err(ClientError::Config(format!(
            "the TokenRequest for service account {ns}/{name} came back without a token"
        )));
    };
    let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
    data.insert("token".into(), ByteString(token.as_bytes().to_vec()));
    data.insert("namespace".into(), ByteString(ns.as_bytes().to_vec()));
    if let Some(ca) = state.ctx.client.ca_pem() {
        data.insert("ca.crt".into(), ByteString(ca.as_bytes().to_vec()));
    }
    let patch = json!({
        "metadata": {
            "annotations": {UID_ANNOTATION: sa.metadata.uid},
            // the write fails if the Secret changed meanwhile; the next sync retries
            "resourceVersion": secret.metadata.resource_version,
        },
        "data": data,
    });
    let params = WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    match state
        .ctx
        .client
        .api::<Secret>(Some(ns))
        .patch(&secret_name, &Patch::Merge(patch), &params)
        .await
    {
        Ok(_) => {
            tracing::info!(namespace = %ns, secret = %secret_name, account = %name, "filled a ServiceAccount token Secret");
            Ok(Action::AwaitChange)
        }
        Err(e) if e.code() == 409 || e.code() == 404 => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn secret(uid: Option<&str>, data: &[&str]) -> Secret {
        let mut annotations = BTreeMap::from([(NAME_ANNOTATION.to_string(), "build".to_string())]);
        if let Some(u) = uid {
            annotations.insert(UID_ANNOTATION.into(), u.into());
        }
        Secret {
            metadata: ObjectMeta {
                name: Some("build-token".into()),
                annotations: Some(annotations),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|k| (k.to_string(), ByteString(b"x".to_vec())))
                    .collect(),
            ),
            type_: Some(TOKEN_TYPE.into()),
            ..Default::default()
        }
    }

    fn account(uid: &str) -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                name: Some("build".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn fills_new_secrets_and_deletes_orphans() {
        let full = ["token", "ca.crt", "namespace"];
        let u1 = account("u1");
        assert_eq!(need(&secret(None, &[]), Some(&u1), true), Need::Fill);
        assert_eq!(
            need(&secret(Some("u1"), &["token"]), Some(&u1), true),
            Need::Fill
        );
        assert_eq!(
            need(&secret(Some("u1"), &full), Some(&u1), true),
            Need::Nothing
        );
        // without a known CA, no ca.crt is expected
        let no_ca = ["token", "namespace"];
        assert_eq!(
            need(&secret(Some("u1"), &no_ca), Some(&u1), false),
            Need::Nothing
        );
        assert_eq!(
            need(&secret(Some("u1"), &no_ca), Some(&u1), true),
            Need::Fill
        );
        // the account is gone, or was recreated with another uid
        assert_eq!(need(&secret(Some("u1"), &full), None, true), Need::Delete);
        let u2 = account("u2");
        assert_eq!(
            need(&secret(Some("u1"), &full), Some(&u2), true),
            Need::Delete
        );
    }
}
