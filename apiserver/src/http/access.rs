//! Authorising resource requests, including the conditional rules of node
//! identities (a pod bound to the node, a Secret one of its pods uses), and
//! the SelfSubjectAccessReview / SelfSubjectRulesReview `kubectl auth can-i` calls.

use serde_json::{Value, json};

use crate::auth::{Attributes, Condition, Decision, Identity, Role, authorize};
use crate::errors::{ApiError, ApiResult};
use crate::registry::{ListOptions, Registry};
use crate::selectors::{FieldSelector, Selectors};
use crate::target::Target;

/// A request's access decision: allowed, or allowed once a condition is checked.
pub enum Access {
    /// Nothing more to check.
    Granted,
    /// The handler must check this with the objects involved.
    Conditional(Condition),
}

/// Authorises a request or returns the 403.
pub fn check(id: &Identity, verb: &str, target: &Target) -> ApiResult<Access> {
    let attrs = Attributes {
        verb,
        group: &target.info.group,
        resource: &target.info.plural,
        subresource: target.subresource.as_deref(),
        namespace: target.namespace.as_deref(),
        name: target.name.as_deref(),
    };
    match authorize(id, &attrs) {
        Decision::Allow => Ok(Access::Granted),
        Decision::AllowIf(c) => Ok(Access::Conditional(c)),
        Decision::Deny(why) => Err(forbidden(id, verb, target, &why)),
    }
}

fn forbidden(id: &Identity, verb: &str, target: &Target, why: &str) -> ApiError {
    let resource = match &target.subresource {
        Some(s) => format!("{}/{s}", target.info.plural),
        None => target.info.plural.to_string(),
    };
    ApiError::forbidden(
        &id.name,
        verb,
        &resource,
        &target.info.group,
        target.namespace.as_deref(),
        target.name.as_deref(),
        why,
    )
}

fn bound_to(pod: &Value) -> Option<&str> {
    pod.get("spec")?.get("nodeName")?.as_str()
}

/// Checks a pod-on-node condition against a pod.
pub fn check_pod(
    id: &Identity,
    verb: &str,
    target: &Target,
    pod: &Value,
    node: &str,
) -> ApiResult<()> {
    if bound_to(pod) == Some(node) {
        Ok(())
    } else {
        Err(forbidden(
            id,
            verb,
            target,
            &format!("the pod is not bound to node {node:?}"),
        ))
    }
}

/// Checks that a list or watch selects `spec.nodeName=<node>`.
pub fn check_selects_node(
    id: &Identity,
    verb: &str,
    target: &Target,
    fields: &FieldSelector,
    node: &str,
) -> ApiResult<()> {
    if fields.equals("spec.nodeName") == Some(node) {
        Ok(())
    } else {
        Err(forbidden(
            id,
            verb,
            target,
            &format!("node {node:?} may only {verb} pods with fieldSelector spec.nodeName={node}"),
        ))
    }
}

/// Whether a pod's volumes name the PersistentVolumeClaim `name` (generic
/// ephemeral volumes as the `<pod>-<volume>` claim kube makes for them).
fn pod_uses_claim(pod: &Value, name: &str) -> bool {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|v| {
            v.pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
                == Some(name)
                || (v.get("ephemeral").is_some()
                    && v.get("name")
                        .and_then(Value::as_str)
                        .map(|n| format!("{pod_name}-{n}"))
                        == Some(name.to_string()))
        })
}

/// Whether a pod spec refers to a ConfigMap (`secret = false`) or Secret by name.
fn pod_uses(pod: &Value, name: &str, secret: bool) -> bool {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let eq = |v: Option<&Value>| v.and_then(Value::as_str) == Some(name);
    let volumes = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for v in volumes {
        let direct = if secret {
            eq(v.pointer("/secret/secretName"))
        } else {
            eq(v.pointer("/configMap/name"))
        };
        let projected = v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|s| {
                eq(s.pointer(if secret {
                    "/secret/name"
                } else {
                    "/configMap/name"
                }))
            });
        if direct || projected {
            return true;
        }
    }
    let containers = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| spec.get(*f).and_then(Value::as_array))
        .flatten();
    for c in containers {
        let env = c.get("env").and_then(Value::as_array).into_iter().flatten();
        for e in env {
            let p = if secret {
                "/valueFrom/secretKeyRef/name"
            } else {
                "/valueFrom/configMapKeyRef/name"
            };
            if eq(e.pointer(p)) {
                return true;
            }
        }
        let env_from = c
            .get("envFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for e in env_from {
            if eq(e.pointer(if secret {
                "/secretRef/name"
            } else {
                "/configMapRef/name"
            })) {
                return true;
            }
        }
    }
    secret
        && spec
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|s| eq(s.get("name")))
}

/// Checks that a PersistentVolume is a local-path volume of `node`
/// (annotated with the node by the `korral.dev/local-path` provisioner).
pub fn check_volume_on_node(
    id: &Identity,
    verb: &str,
    target: &Target,
    pv: &Value,
    node: &str,
) -> ApiResult<()> {
    let ann = |k: &str| {
        pv.pointer(&format!("/metadata/annotations/{}", k.replace('/', "~1")))
            .and_then(Value::as_str)
    };
    if ann("pv.kubernetes.io/provisioned-by") == Some("korral.dev/local-path")
        && ann("korral.dev/local-path-node") == Some(node)
    {
        Ok(())
    } else {
        Err(forbidden(
            id,
            verb,
            target,
            &format!("node {node:?} may only {verb} the local-path volumes on it"),
        ))
    }
}

/// Checks that a ConfigMap/Secret is used by a pod bound to `node`; for a
/// list or watch, that it selects one such object by name.
pub async fn check_used_by_node(
    registry: &Registry,
    id: &Identity,
    verb: &str,
    target: &Target,
    name: Option<&str>,
    node: &str,
) -> ApiResult<()> {
    let Some(name) = name else {
        return Err(forbidden(
            id,
            verb,
            target,
            "a node may only read the ConfigMaps and Secrets its pods use, by name (fieldSelector metadata.name=NAME)",
        ));
    };
    let pods_info = schemas::lookup("v1", "Pod").map_err(|e| ApiError::internal(e.to_string()))?;
    let fields = FieldSelector::parse(&format!("spec.nodeName={node}"), pods_info)?;
    let page = registry
        .list(
            pods_info,
            target.namespace.as_deref(),
            &ListOptions {
                selectors: Selectors {
                    fields,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    let secret = target.info.kind == "Secret";
    let used = |p: &Value| {
        if target.info.kind == "PersistentVolumeClaim" {
            pod_uses_claim(p, name)
        } else {
            pod_uses(p, name, secret)
        }
    };
    if page.items.iter().any(used) {
        Ok(())
    } else {
        Err(forbidden(
            id,
            verb,
            target,
            &format!("no pod bound to node {node:?} uses it"),
        ))
    }
}

/// The groups an identity belongs to, as Kubernetes would name them.
pub fn groups_of(id: &Identity) -> Vec<String> {
    let fixed: &[&str] = match &id.role {
        Role::Admin => &["system:masters", "system:authenticated"],
        Role::Node(_) => &["system:nodes", "system:authenticated"],
        Role::Viewer | Role::Controller | Role::Intake => &["system:authenticated"],
        Role::Subject(s) => return s.groups.clone(),
    };
    fixed.iter().map(|g| g.to_string()).collect()
}

/// The caller as kube's UserInfo (username, uid, groups, extra), as
/// SelfSubjectReview and TokenReview answer it.
pub fn user_info(id: &Identity) -> Value {
    let mut info = json!({"username": id.name, "groups": groups_of(id)});
    if let Role::Subject(s) = &id.role {
        if let Some(uid) = &s.uid {
            info["uid"] = json!(uid);
        }
        if !s.extra.is_empty() {
            info["extra"] = json!(s.extra);
        }
    }
    info
}

/// Answers a SelfSubjectAccessReview (`kubectl auth can-i VERB RESOURCE`).
pub fn access_review(id: &Identity, body: &Value) -> ApiResult<Value> {
    let attrs = body.pointer("/spec/resourceAttributes").ok_or_else(|| {
        ApiError::bad_request(
            "spec.resourceAttributes is required (non-resource URLs are always allowed)",
        )
    })?;
    let get = |f: &str| attrs.get(f).and_then(Value::as_str).unwrap_or("");
    let verb = get("verb");
    let resource = get("resource");
    let a = Attributes {
        verb,
        group: get("group"),
        resource,
        subresource: Some(get("subresource")).filter(|s| !s.is_empty()),
        namespace: Some(get("namespace")).filter(|s| !s.is_empty()),
        name: Some(get("name")).filter(|s| !s.is_empty()),
    };
    let (allowed, reason) = if let Role::Subject(subject) = &id.role {
        // RBAC answers wildcards itself, with kube's allow reason
        match subject
            .rbac
            .0
            .authorize(&subject.user(&id.name), &a.rbac_request())
        {
            crate::rbac::Verdict::Allow(why) => (true, why),
            crate::rbac::Verdict::Deny => (false, String::new()),
        }
    } else if verb == "*" || resource == "*" {
        (
            matches!(id.role, Role::Admin | Role::Controller | Role::Intake),
            String::new(),
        )
    } else {
        match authorize(id, &a) {
            Decision::Allow => (true, String::new()),
            Decision::AllowIf(c) => (true, format!("allowed when {c:?}")),
            Decision::Deny(why) => (false, why),
        }
    };
    let mut out = body.clone();
    out["apiVersion"] = json!("authorization.k8s.io/v1");
    out["kind"] = json!("SelfSubjectAccessReview");
    out["status"] = json!({"allowed": allowed, "reason": reason});
    Ok(out)
}

/// Answers a SubjectAccessReview (or, with `namespace`, a
/// LocalSubjectAccessReview): may `spec.user` in `spec.groups` make the
/// request in `spec.resourceAttributes` (or `nonResourceAttributes`)?
/// Decided by RBAC, `system:masters` first, as kube-apiserver's chain does.
pub fn subject_access_review(
    id: &Identity,
    rbac: &crate::rbac::Snapshot,
    body: &Value,
    namespace: Option<&str>,
) -> ApiResult<Value> {
    let (resource, kind) = match namespace {
        Some(_) => ("localsubjectaccessreviews", "LocalSubjectAccessReview"),
        None => ("subjectaccessreviews", "SubjectAccessReview"),
    };
    let attrs = Attributes {
        verb: "create",
        group: "authorization.k8s.io",
        resource,
        namespace,
        ..Default::default()
    };
    if let Decision::Deny(why) = authorize(id, &attrs) {
        return Err(ApiError::forbidden(
            &id.name,
            "create",
            resource,
            "authorization.k8s.io",
            namespace,
            None,
            &why,
        ));
    }
    let spec = body.get("spec").cloned().unwrap_or_default();
    let text = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let user = crate::rbac::User {
        name: text(&spec, "user"),
        groups: spec
            .get("groups")
            .and_then(Value::as_array)
            .map(|g| {
                g.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    };
    let invalid = |field: &str, value: &str, detail: &str| {
        ApiError::invalid_of(
            "authorization.k8s.io",
            kind,
            "",
            &[schemas::FieldError::invalid(
                schemas::FieldPath::fields(field),
                value,
                detail,
            )],
        )
    };
    if user.name.is_empty() && user.groups.is_empty() {
        return Err(invalid(
            "spec.user",
            "",
            "at least one of user or group must be specified",
        ));
    }
    let resource_attrs = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let url_attrs = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    let verdict = match (resource_attrs, url_attrs) {
        (Some(r), None) => {
            let ns = namespace
                .map(str::to_string)
                .unwrap_or_else(|| text(r, "namespace"));
            let (verb, group, res, sub, name) = (
                text(r, "verb"),
                text(r, "group"),
                text(r, "resource"),
                text(r, "subresource"),
                text(r, "name"),
            );
            rbac.authorize(
                &user,
                &crate::rbac::Request {
                    verb: &verb,
                    group: &group,
                    resource: &res,
                    subresource: Some(sub.as_str()).filter(|s| !s.is_empty()),
                    name: Some(name.as_str()).filter(|s| !s.is_empty()),
                    namespace: Some(ns.as_str()).filter(|s| !s.is_empty()),
                    path: None,
                },
            )
        }
        (None, Some(u)) => {
            let (verb, path) = (text(u, "verb"), text(u, "path"));
            rbac.authorize(
                &user,
                &crate::rbac::Request {
                    verb: &verb,
                    path: Some(&path),
                    ..Default::default()
                },
            )
        }
        _ => {
            return Err(invalid(
                "spec.resourceAttributes",
                "",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    let mut out = body.clone();
    out["apiVersion"] = json!("authorization.k8s.io/v1");
    out["kind"] = json!(kind);
    out["status"] = match verdict {
        crate::rbac::Verdict::Allow(why) if why.is_empty() => json!({"allowed": true}),
        crate::rbac::Verdict::Allow(why) => json!({"allowed": true, "reason": why}),
        crate::rbac::Verdict::Deny => json!({"allowed": false}),
    };
    Ok(out)
}

/// Answers a SelfSubjectRulesReview (`kubectl auth can-i --list`).
pub fn rules_review(id: &Identity, body: &Value) -> Value {
    let rules = match &id.role {
        Role::Admin | Role::Controller | Role::Intake => {
            vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})]
        }
        Role::Viewer => {
            let resources: Vec<&str> = schemas::builtin_kinds()
                .iter()
                .map(|k| k.plural.as_str())
                .filter(|p| *p != "secrets")
                .collect();
            vec![
                json!({"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": resources}),
            ]
        }
        Role::Subject(subject) => {
            let ns = body.pointer("/spec/namespace").and_then(Value::as_str);
            let rules = subject
                .rbac
                .0
                .rules_for(&subject.user(&id.name), ns.filter(|n| !n.is_empty()));
            let (urls, resources): (Vec<_>, Vec<_>) = rules
                .into_iter()
                .partition(|r| r.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty()));
            let to_json = |r| serde_json::to_value(r).unwrap_or_default();
            let mut out = body.clone();
            out["apiVersion"] = json!("authorization.k8s.io/v1");
            out["kind"] = json!("SelfSubjectRulesReview");
            out["status"] = json!({
                "resourceRules": resources.into_iter().map(to_json).collect::<Vec<_>>(),
                "nonResourceRules": urls.into_iter().map(to_json).collect::<Vec<_>>(),
                "incomplete": false,
            });
            return out;
        }
        Role::Node(_) => vec![
            json!({"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["nodes", "services", "endpoints", "namespaces"]}),
            json!({"verbs": ["create", "update", "patch"], "apiGroups": [""], "resources": ["nodes", "nodes/status", "events"]}),
            json!({"verbs": ["get", "create", "update", "patch"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}),
        ],
    };
    let mut out = body.clone();
    out["apiVersion"] = json!("authorization.k8s.io/v1");
    out["kind"] = json!("SelfSubjectRulesReview");
    out["status"] = json!({"resourceRules": rules, "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["*"]}], "incomplete": false});
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_references_are_found_everywhere_they_can_be() {
        let pod = json!({"spec": {
            "volumes": [{"name": "a", "secret": {"secretName": "vol-secret"}}, {"name": "b", "projected": {"sources": [{"configMap": {"name": "proj-cm"}}]}}],
            "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}],
                            "envFrom": [{"configMapRef": {"name": "envfrom-cm"}}]}],
            "imagePullSecrets": [{"name": "pull"}]}});
        for (name, secret) in [
            ("vol-secret", true),
            ("proj-cm", false),
            ("env-secret", true),
            ("envfrom-cm", false),
            ("pull", true),
        ] {
            assert!(pod_uses(&pod, name, secret), "{name}");
        }
        assert!(!pod_uses(&pod, "vol-secret", false));
        assert!(!pod_uses(&pod, "other", true));
    }

    #[test]
    fn access_reviews_answer_per_role() {
        let viewer = Identity {
            name: "v".into(),
            role: Role::Viewer,
        };
        let body = json!({"spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}});
        assert_eq!(
            access_review(&viewer, &body).expect("review")["status"]["allowed"],
            false
        );
        let body = json!({"spec": {"resourceAttributes": {"verb": "list", "resource": "pods"}}});
        assert_eq!(
            access_review(&viewer, &body).expect("review")["status"]["allowed"],
            true
        );
    }
}
