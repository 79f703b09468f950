//! RBAC's escalation prevention, as kube-apiserver's rbac registries apply
//! it: a user may write a Role or ClusterRole only with rules it already
//! holds (or the `escalate` verb on it), and a binding only to a role whose
//! rules it holds (or the `bind` verb on it). The missing rights are
//! listed in Kubernetes' compact form.

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use serde_json::Value;

use super::rules::{Request, allows};
use super::{Snapshot, User, Verdict};
use crate::errors::{ApiError, ApiResult};

/// The atomic pieces of a rule (one verb on one group/resource/name, or one
/// verb on one URL) that none of `owner` allows, as kube's `Covers` finds them.
pub fn missing(owner: &[PolicyRule], wanted: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for rule in wanted {
        for verb in &rule.verbs {
            let urls = rule.non_resource_urls.as_deref().unwrap_or(&[]);
            for url in urls {
                let req = Request {
                    verb,
                    path: Some(url),
                    ..Default::default()
                };
                if !owner.iter().any(|o| allows(o, &req)) {
                    out.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        non_resource_urls: Some(vec![url.clone()]),
                        ..Default::default()
                    });
                }
            }
            let names: Vec<Option<&String>> = match rule.resource_names.as_deref() {
                Some(n) if !n.is_empty() => n.iter().map(Some).collect(),
                _ => vec![None],
            };
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    let (res, sub) = match resource.split_once('/') {
                        Some((r, s)) => (r, Some(s)),
                        None => (resource.as_str(), None),
                    };
                    for name in &names {
                        let req = Request {
                            verb,
                            group,
                            resource: res,
                            subresource: sub,
                            name: name.map(String::as_str),
                            ..Default::default()
                        };
                        if !owner.iter().any(|o| allows(o, &req)) {
                            out.push(PolicyRule {
                                verbs: vec![verb.clone()],
                                api_groups: Some(vec![group.clone()]),
                                resources: Some(vec![resource.clone()]),
                                resource_names: name.map(|n| vec![n.clone()]),
                                non_resource_urls: None,
                            });
                        }
                    }
                }
            }
        }
    }
    compact(out)
}

/// Merges atomic rules that differ only in their verbs (kube's `CompactRules`).
fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    for r in rules {
        match out.iter_mut().find(|o| {
            o.api_groups == r.api_groups
                && o.resources == r.resources
                && o.resource_names == r.resource_names
                && o.non_resource_urls == r.non_resource_urls
        }) {
            Some(o) => {
                for v in r.verbs {
                    if !o.verbs.contains(&v) {
                        o.verbs.push(v);
                    }
                }
            }
            None => out.push(r),
        }
    }
    out
}

fn go_strings(v: &[String]) -> String {
    let quoted: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// A rule as `rbacv1helpers.CompactString` prints it:
/// `{APIGroups:["apps"], Resources:["deployments"], Verbs:["create"]}`.
pub fn compact_string(r: &PolicyRule) -> String {
    let mut parts = Vec::new();
    let mut field = |name: &str, v: &Option<Vec<String>>| {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            let quoted: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
            parts.push(format!("{name}:[{}]", quoted.join(", ")));
        }
    };
    field("APIGroups", &r.api_groups);
    field("Resources", &r.resources);
    field("ResourceNames", &r.resource_names);
    field("NonResourceURLs", &r.non_resource_urls);
    field("Verbs", &Some(r.verbs.clone()));
    format!("{{{}}}", parts.join(", "))
}

/// kube's refusal text for the missing rights of `user` in `groups`.
pub fn refusal(user: &str, groups: &[String], missing: &[PolicyRule]) -> String {
    let mut lines: Vec<String> = missing.iter().map(compact_string).collect();
    lines.sort();
    lines.dedup();
    format!(
        "user {user:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        go_strings(groups),
        lines.join("\n")
    )
}

const RBAC: &str = "rbac.authorization.k8s.io";

/// Refuses a write of a Role, ClusterRole or binding (`obj`, of `kind`) by
/// `user` that would grant rights the user does not hold, unless the user
/// may `escalate` the role or `bind` the referenced one.
pub fn check_write(
    snapshot: &Snapshot,
    user: &User,
    kind: &str,
    namespace: Option<&str>,
    obj: &Value,
) -> ApiResult<()> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (plural, wanted) = match kind {
        "Role" | "ClusterRole" => {
            let plural = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            let may_escalate = Request {
                verb: "escalate",
                group: RBAC,
                resource: plural,
                name: Some(name),
                namespace,
                ..Default::default()
            };
            if matches!(snapshot.authorize(user, &may_escalate), Verdict::Allow(_)) {
                return Ok(());
            }
            let rules: Vec<PolicyRule> = obj
                .get("rules")
                .cloned()
                .and_then(|r| serde_json::from_value(r).ok())
                .unwrap_or_default();
            (plural, rules)
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let plural = if kind == "RoleBinding" {
                "rolebindings"
            } else {
                "clusterrolebindings"
            };
            let Some(role_ref) = obj
                .get("roleRef")
                .cloned()
                .and_then(|r| serde_json::from_value::<RoleRef>(r).ok())
            else {
                return Ok(());
            };
            let may_bind = Request {
                verb: "bind",
                group: RBAC,
                resource: if role_ref.kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                },
                name: Some(&role_ref.name),
                namespace,
                ..Default::default()
            };
            if matches!(snapshot.authorize(user, &may_bind), Verdict::Allow(_)) {
                return Ok(());
            }
            (plural, snapshot.role_rules(&role_ref, namespace).to_vec())
        }
        _ => return Ok(()),
    };
    let held = snapshot.rules_for(user, namespace);
    let gaps = missing(&held, &wanted);
    if gaps.is_empty() {
        return Ok(());
    }
    let mut e = ApiError::forbidden_message(format!(
        "{plural}.{RBAC} {name:?} is forbidden: {}",
        refusal(&user.name, &user.groups, &gaps)
    ));
    e.details = Some(Box::new(crate::status::StatusDetails {
        name: Some(name.to_string()).filter(|n| !n.is_empty()),
        group: Some(RBAC.to_string()),
        kind: Some(plural.to_string()),
        ..Default::default()
    }));
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        PolicyRule {
            api_groups: Some(s(groups)),
            resources: Some(s(resources)),
            verbs: s(verbs),
            ..Default::default()
        }
    }

    #[test]
    fn only_rights_held_may_be_granted() {
        let owner = vec![rule(
            &["apps"],
            &["deployments", "deployments/scale"],
            &["get", "create"],
        )];
        assert!(missing(&owner, &[rule(&["apps"], &["deployments"], &["get"])]).is_empty());
        let m = missing(
            &owner,
            &[rule(
                &["apps"],
                &["deployments", "statefulsets"],
                &["get", "delete"],
            )],
        );
        let mut text: Vec<String> = m.iter().map(compact_string).collect();
        text.sort();
        assert_eq!(
            text,
            [
                "{APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"delete\"]}",
                "{APIGroups:[\"apps\"], Resources:[\"statefulsets\"], Verbs:[\"get\", \"delete\"]}",
            ]
        );
        // a wildcard is only covered by a wildcard
        assert_eq!(
            missing(&owner, &[rule(&["apps"], &["*"], &["get"])]).len(),
            1
        );
        let admin = vec![rule(&["*"], &["*"], &["*"])];
        assert!(missing(&admin, &[rule(&["*"], &["*"], &["*"])]).is_empty());
        assert_eq!(
            refusal("jane", &["dev".into(), "system:authenticated".into()], &m)
                .lines()
                .next(),
            Some(
                "user \"jane\" (groups=[\"dev\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:"
            )
        );
    }
}
