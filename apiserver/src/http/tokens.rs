//! ServiceAccount tokens over HTTP: the TokenRequest subresource
//! (`kubectl create token NAME --duration`), TokenReview, and bearer
//! authentication with a token — valid only while its ServiceAccount (and
//! the pod or Secret it is bound to) exists with the uid it names.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::auth::{Condition, Identity, RbacView, Role, Subject};
use crate::errors::{ApiError, ApiResult};
use crate::http::App;
use crate::http::access::{self, Access};
use crate::http::request;
use crate::http::resources::{Req, json_response};
use crate::objects;
use crate::serviceaccounts::{
    Claims, DEFAULT_EXPIRATION_SECONDS, ISSUER, KubernetesClaim, MIN_EXPIRATION_SECONDS, Ref,
};
use schemas::{FieldError, FieldPath};

fn kind(api_version: &str, kind: &str) -> ApiResult<&'static schemas::KindInfo> {
    schemas::lookup(api_version, kind).map_err(|e| ApiError::internal(e.to_string()))
}

/// The identity a ServiceAccount token authenticates, if it is valid now
/// for `audiences` and what it names still exists.
pub async fn authenticate(
    app: &App,
    token: &str,
    audiences: &[&str],
) -> ApiResult<(Identity, Claims)> {
    let claims = app
        .sa_tokens
        .verify(token, audiences)
        .map_err(|_| ApiError::unauthorized())?;
    let k = &claims.kubernetes;
    let live_uid = |obj: &Value| objects::uid(obj).to_string();
    let sa = app
        .registry
        .get(
            kind("v1", "ServiceAccount")?,
            Some(&k.namespace),
            &k.serviceaccount.name,
        )
        .await
        .map_err(|_| ApiError::unauthorized())?;
    if live_uid(&sa) != k.serviceaccount.uid {
        return Err(ApiError::unauthorized());
    }
    for (what, bound) in [("Pod", &k.pod), ("Secret", &k.secret)] {
        if let Some(r) = bound {
            let obj = app
                .registry
                .get(kind("v1", what)?, Some(&k.namespace), &r.name)
                .await
                .map_err(|_| ApiError::unauthorized())?;
            if live_uid(&obj) != r.uid || objects::is_deleting(&obj) {
                return Err(ApiError::unauthorized());
            }
        }
    }
    let mut subject = Subject::in_groups(claims.groups(), RbacView(app.rbac.snapshot()));
    subject.uid = Some(k.serviceaccount.uid.clone());
    subject.extra.insert(
        "authentication.kubernetes.io/credential-id".into(),
        vec![format!("JTI={}", claims.jti)],
    );
    if let Some(p) = &k.pod {
        subject.extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec![p.name.clone()],
        );
        subject.extra.insert(
            "authentication.kubernetes.io/pod-uid".into(),
            vec![p.uid.clone()],
        );
    }
    let identity = Identity {
        name: claims.username(),
        role: Role::Subject(subject),
    };
    Ok((identity, claims))
}

fn invalid(name: &str, errors: &[FieldError]) -> ApiError {
    ApiError::invalid_of("authentication.k8s.io", "TokenRequest", name, errors)
}

/// `POST .../serviceaccounts/NAME/token`: a TokenRequest answered with a
/// signed token (`status.token`, `status.expirationTimestamp`).
pub async fn token_request(req: &Req, body: bytes::Bytes) -> ApiResult<Response> {
    let access = access::check(&req.id, "create", &req.target)?;
    let ns = req.target.namespace.as_deref().unwrap_or("default");
    let name = req.target.name.as_deref().unwrap_or("");
    let mut tr = if body.is_empty() {
        json!({})
    } else {
        request::decode_object(&body, &request::content_type(&req.headers))?
    };
    let spec = tr.get("spec").cloned().unwrap_or(json!({}));
    let seconds = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    let path = FieldPath::fields("spec.expirationSeconds");
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            name,
            &[FieldError::invalid(
                path,
                seconds,
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    if seconds > 1 << 32 {
        return Err(invalid(
            name,
            &[FieldError::invalid(
                path,
                seconds,
                "may not specify a duration larger than 2^32 seconds",
            )],
        ));
    }
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![ISSUER.to_string()]);
    let sa = req
        .app
        .registry
        .get(kind("v1", "ServiceAccount")?, Some(ns), name)
        .await?;
    let mut claim = KubernetesClaim {
        namespace: ns.to_string(),
        serviceaccount: Ref {
            name: name.to_string(),
            uid: objects::uid(&sa).to_string(),
        },
        ..Default::default()
    };
    if let Some(bound) = spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        let bound_kind = bound.get("kind").and_then(Value::as_str).unwrap_or("");
        let bound_name = bound.get("name").and_then(Value::as_str).unwrap_or("");
        let info = match bound_kind {
            "Pod" | "Secret" => kind("v1", bound_kind)?,
            other => {
                return Err(invalid(
                    name,
                    &[FieldError::not_supported(
                        FieldPath::fields("spec.boundObjectRef.kind"),
                        other,
                        &["Pod", "Secret"],
                    )],
                ));
            }
        };
        let obj = req.app.registry.get(info, Some(ns), bound_name).await?;
        if let Access::Conditional(Condition::TokenForPodOn(node)) = &access {
            node_may_request(req, node, bound_kind, &obj, name)?;
        }
        let uid = objects::uid(&obj).to_string();
        if let Some(want) = bound
            .get("uid")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            && want != uid
        {
            return Err(ApiError::conflict_because(
                info,
                bound_name,
                &format!(
                    "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        let r = Some(Ref {
            name: bound_name.to_string(),
            uid,
        });
        if bound_kind == "Pod" {
            claim.pod = r;
        } else {
            claim.secret = r;
        }
    }
    if let (Access::Conditional(Condition::TokenForPodOn(node)), None) = (&access, &claim.pod) {
        return Err(node_refused(req, node, "it must be bound to a pod"));
    }
    let now = chrono::Utc::now();
    let claims = Claims {
        aud: audiences.clone(),
        exp: now.timestamp() + seconds,
        iat: now.timestamp(),
        iss: ISSUER.to_string(),
        jti: uuid::Uuid::new_v4().to_string(),
        nbf: now.timestamp(),
        sub: crate::serviceaccounts::username(ns, name),
        kubernetes: claim,
    };
    let token = req
        .app
        .sa_tokens
        .sign(&claims)
        .map_err(ApiError::internal)?;
    let expires = chrono::DateTime::from_timestamp(claims.exp, 0)
        .unwrap_or(now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    tr["apiVersion"] = json!("authentication.k8s.io/v1");
    tr["kind"] = json!("TokenRequest");
    tr["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
    tr["spec"]["audiences"] = json!(audiences);
    tr["spec"]["expirationSeconds"] = json!(seconds);
    if tr["spec"].get("boundObjectRef").is_none() {
        tr["spec"]["boundObjectRef"] = Value::Null;
    }
    tr["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(json_response(StatusCode::CREATED, &tr))
}

/// NodeRestriction for a node's TokenRequest: bound to a pod on that node
/// that runs as this ServiceAccount.
fn node_may_request(
    req: &Req,
    node: &str,
    bound_kind: &str,
    pod: &Value,
    service_account: &str,
) -> ApiResult<()> {
    if bound_kind != "Pod" {
        return Err(node_refused(req, node, "it must be bound to a pod"));
    }
    if pod.pointer("/spec/nodeName").and_then(Value::as_str) != Some(node) {
        return Err(node_refused(
            req,
            node,
            &format!("the pod {:?} is not bound to this node", objects::name(pod)),
        ));
    }
    let runs_as = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default");
    if runs_as != service_account {
        return Err(node_refused(
            req,
            node,
            &format!(
                "the pod {:?} runs as service account {runs_as:?}",
                objects::name(pod)
            ),
        ));
    }
    Ok(())
}

fn node_refused(req: &Req, node: &str, why: &str) -> ApiError {
    ApiError::forbidden(
        &req.id.name,
        "create",
        "serviceaccounts/token",
        "",
        req.target.namespace.as_deref(),
        req.target.name.as_deref(),
        &format!("node {node:?} may only request tokens for its own pods: {why}"),
    )
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`: whether a token is
/// valid, and whom it authenticates (korral's own token-file tokens too).
pub async fn token_review(app: &Arc<App>, id: &Identity, body: &Value) -> ApiResult<Value> {
    let attrs = crate::auth::Attributes {
        verb: "create",
        group: "authentication.k8s.io",
        resource: "tokenreviews",
        ..Default::default()
    };
    if let crate::auth::Decision::Deny(why) = crate::auth::authorize(id, &attrs) {
        return Err(ApiError::forbidden(
            &id.name,
            "create",
            "tokenreviews",
            "authentication.k8s.io",
            None,
            None,
            &why,
        ));
    }
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("");
    let asked: Vec<&str> = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let audiences = if asked.is_empty() {
        vec![ISSUER]
    } else {
        asked
    };
    let status = if let Some(user) = app
        .tokens
        .authenticate(token)
        .map(|u| crate::auth::for_requests(u, app.rbac.snapshot()))
    {
        json!({"authenticated": true, "user": {"username": user.name, "groups": access::groups_of(&user)}, "audiences": [ISSUER]})
    } else if crate::bootstrap_tokens::parse(token).is_some() {
        match crate::bootstrap_tokens::authenticate(&app.registry, token).await {
            Ok((name, groups)) => {
                json!({"authenticated": true, "user": {"username": name, "groups": groups}, "audiences": [ISSUER]})
            }
            Err(_) => json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}),
        }
    } else {
        match authenticate(app, token, &audiences).await {
            Ok((user, claims)) => {
                let audiences: Vec<&str> = audiences
                    .iter()
                    .copied()
                    .filter(|a| claims.aud.iter().any(|c| c == a))
                    .collect();
                json!({"authenticated": true, "user": access::user_info(&user), "audiences": audiences})
            }
            Err(_) => json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}),
        }
    };
    let mut out = body.clone();
    out["apiVersion"] = json!("authentication.k8s.io/v1");
    out["kind"] = json!("TokenReview");
    if out.get("metadata").is_none() {
        out["metadata"] = json!({"creationTimestamp": null});
    }
    out["status"] = status;
    Ok(out)
}
