//! Role-based access control as kube-apiserver's RBAC authoriser decides it:
//! a [`Snapshot`] of the cluster's Roles, ClusterRoles and their bindings
//! answers whether a user (name and groups) may make a request, with
//! Kubernetes' allow reasons, and lists a user's rules for
//! `kubectl auth can-i --list`. Aggregated ClusterRoles get the rules of the
//! roles their selectors pick. `bootstrap.rs` holds the default roles,
//! `cache.rs` keeps a snapshot current from the store.

pub mod bootstrap;
pub mod cache;
pub mod escalation;
pub mod rules;

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use schemas::SelectorExt;

pub use cache::RbacCache;
pub use rules::Request;

/// Who is asking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// The user name (`jane`, `system:serviceaccount:ns:name`).
    pub name: String,
    /// The groups, `system:authenticated` included.
    pub groups: Vec<String>,
}

/// The authoriser's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed, with the binding that allows it (`RBAC: allowed by ...`).
    Allow(String),
    /// No rule allows it.
    Deny,
}

/// The RBAC objects of one moment, indexed for authorisation.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    roles: HashMap<(String, String), Vec<PolicyRule>>,
    cluster_bindings: Vec<ClusterRoleBinding>,
    bindings: HashMap<String, Vec<RoleBinding>>,
}

impl Snapshot {
    /// Indexes the objects; aggregated ClusterRoles take the rules of every
    /// ClusterRole their `aggregationRule` selects (as the clusterrole
    /// aggregation controller writes them).
    pub fn new(
        cluster_roles: Vec<ClusterRole>,
        roles: Vec<Role>,
        cluster_bindings: Vec<ClusterRoleBinding>,
        bindings: Vec<RoleBinding>,
    ) -> Self {
        // aggregated roles may pick aggregated roles: recompute until the
        // effective rules stop changing (a few rounds for real policies)
        let mut cluster_roles = cluster_roles;
        for _ in 0..8 {
            let mut changed = false;
            for i in 0..cluster_roles.len() {
                let Some(agg) = cluster_roles[i].aggregation_rule.clone() else {
                    continue;
                };
                let rules = aggregate(&cluster_roles[i], &agg, &cluster_roles);
                if cluster_roles[i].rules.as_ref() != Some(&rules) {
                    cluster_roles[i].rules = Some(rules);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let by_name: HashMap<String, Vec<PolicyRule>> = cluster_roles
            .into_iter()
            .map(|cr| {
                (
                    cr.metadata.name.unwrap_or_default(),
                    cr.rules.unwrap_or_default(),
                )
            })
            .collect();
        let roles = roles
            .into_iter()
            .map(|r| {
                let key = (
                    r.metadata.namespace.clone().unwrap_or_default(),
                    r.metadata.name.clone().unwrap_or_default(),
                );
                (key, r.rules.unwrap_or_default())
            })
            .collect();
        let mut by_ns: HashMap<String, Vec<RoleBinding>> = HashMap::new();
        for b in bindings {
            by_ns
                .entry(b.metadata.namespace.clone().unwrap_or_default())
                .or_default()
                .push(b);
        }
        Snapshot {
            cluster_roles: by_name,
            roles,
            cluster_bindings,
            bindings: by_ns,
        }
    }

    /// The rules a role reference names (a Role in `namespace`, or a ClusterRole).
    pub fn role_rules(&self, role_ref: &RoleRef, namespace: Option<&str>) -> &[PolicyRule] {
        let found = match (role_ref.kind.as_str(), namespace) {
            ("ClusterRole", _) => self.cluster_roles.get(&role_ref.name),
            ("Role", Some(ns)) => self.roles.get(&(ns.to_string(), role_ref.name.clone())),
            _ => None,
        };
        found.map_or(&[], Vec::as_slice)
    }

    /// Every (binding description, rules) that applies to `user` in
    /// `namespace` (cluster-wide bindings always; a namespace's own too).
    fn grants<'a>(
        &'a self,
        user: &'a User,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (String, &'a [PolicyRule])> + 'a {
        let cluster = self.cluster_bindings.iter().filter_map(move |b| {
            let subject = b
                .subjects
                .iter()
                .flatten()
                .find(|s| applies_to(user, s, None))?;
            Some((
                format!(
                    "ClusterRoleBinding {:?} of ClusterRole {:?} to {}",
                    b.metadata.name.as_deref().unwrap_or(""),
                    b.role_ref.name,
                    describe(subject)
                ),
                self.role_rules(&b.role_ref, None),
            ))
        });
        let local = namespace
            .and_then(|ns| self.bindings.get(ns).map(|bs| (ns, bs)))
            .into_iter()
            .flat_map(move |(ns, bs)| {
                bs.iter().filter_map(move |b| {
                    let subject = b
                        .subjects
                        .iter()
                        .flatten()
                        .find(|s| applies_to(user, s, Some(ns)))?;
                    Some((
                        format!(
                            "RoleBinding {:?} of {} {:?} to {}",
                            format!("{}/{}", ns, b.metadata.name.as_deref().unwrap_or("")),
                            b.role_ref.kind,
                            b.role_ref.name,
                            describe(subject)
                        ),
                        self.role_rules(&b.role_ref, Some(ns)),
                    ))
                })
            });
        cluster.chain(local)
    }

    /// Whether `user` may make `req`.
    pub fn authorize(&self, user: &User, req: &Request<'_>) -> Verdict {
        // kube-apiserver's privileged-group authoriser comes before RBAC
        if user.groups.iter().any(|g| g == "system:masters") {
            return Verdict::Allow(String::new());
        }
        for (via, rules) in self.grants(user, req.namespace) {
            if rules.iter().any(|r| rules::allows(r, req)) {
                return Verdict::Allow(format!("RBAC: allowed by {via}"));
            }
        }
        Verdict::Deny
    }

    /// The rules `user` has in `namespace` (cluster-wide ones included), for
    /// SelfSubjectRulesReview.
    pub fn rules_for(&self, user: &User, namespace: Option<&str>) -> Vec<PolicyRule> {
        let mut out: Vec<PolicyRule> = Vec::new();
        for (_, rules) in self.grants(user, namespace) {
            for r in rules {
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
        out
    }
}

/// The rules an aggregated ClusterRole collects, in the order of the roles'
/// names (as the aggregation controller sorts them), without repeats.
fn aggregate(
    role: &ClusterRole,
    rule: &k8s_openapi::api::rbac::v1::AggregationRule,
    all: &[ClusterRole],
) -> Vec<PolicyRule> {
    let mut picked: Vec<&ClusterRole> = all
        .iter()
        .filter(|cr| cr.metadata.name != role.metadata.name)
        .filter(|cr| {
            let labels: BTreeMap<String, String> = cr.metadata.labels.clone().unwrap_or_default();
            rule.cluster_role_selectors
                .iter()
                .flatten()
                .any(|sel| !sel.is_empty() && sel.matches(&labels))
        })
        .collect();
    picked.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out: Vec<PolicyRule> = Vec::new();
    for cr in picked {
        for r in cr.rules.iter().flatten() {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
    }
    out
}

/// Whether a binding's subject names this user (kube's `appliesToUser`):
/// a ServiceAccount subject without a namespace means the binding's.
fn applies_to(user: &User, s: &Subject, binding_namespace: Option<&str>) -> bool {
    match s.kind.as_str() {
        "User" => user.name == s.name,
        "Group" => user.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = s.namespace.as_deref().or(binding_namespace).unwrap_or("");
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", s.name)
        }
        _ => false,
    }
}

fn describe(s: &Subject) -> String {
    match s.kind.as_str() {
        "ServiceAccount" => format!(
            "ServiceAccount {:?}",
            format!("{}/{}", s.namespace.as_deref().unwrap_or(""), s.name)
        ),
        kind => format!("{kind} {:?}", s.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("rbac object")
    }

    fn snapshot() -> Snapshot {
        let cluster_roles = vec![
            from(json!({"metadata": {"name": "pod-reader"}, "rules": [
                {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}]})),
            from(
                json!({"metadata": {"name": "cm-writer", "labels": {"aggregate-to-mine": "true"}}, "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "update"]}]}),
            ),
            from(
                json!({"metadata": {"name": "mine"}, "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"aggregate-to-mine": "true"}}]}}),
            ),
        ];
        let roles = vec![from(
            json!({"metadata": {"name": "deployer", "namespace": "team-a"}, "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}]}),
        )];
        let crbs = vec![from(json!({"metadata": {"name": "readers"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"},
            "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "qa"}]}))];
        let rbs = vec![
            from(
                json!({"metadata": {"name": "deploy", "namespace": "team-a"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
                "subjects": [{"kind": "ServiceAccount", "name": "ci"}]}),
            ),
            from(json!({"metadata": {"name": "mine", "namespace": "team-a"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mine"},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"}]})),
        ];
        Snapshot::new(cluster_roles, roles, crbs, rbs)
    }

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn ask<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        ns: Option<&'a str>,
    ) -> Request<'a> {
        Request {
            verb,
            group,
            resource,
            namespace: ns,
            ..Default::default()
        }
    }

    #[test]
    fn bindings_grant_their_roles_to_their_subjects_only() {
        let s = snapshot();
        let qa = user("bob", &["qa", "system:authenticated"]);
        assert_eq!(
            s.authorize(&qa, &ask("list", "", "pods", Some("any"))),
            Verdict::Allow(
                "RBAC: allowed by ClusterRoleBinding \"readers\" of ClusterRole \"pod-reader\" to Group \"qa\""
                    .into()
            )
        );
        assert_eq!(
            s.authorize(&qa, &ask("delete", "", "pods", Some("any"))),
            Verdict::Deny
        );
        let ci = user(
            "system:serviceaccount:team-a:ci",
            &["system:serviceaccounts"],
        );
        assert!(matches!(
            s.authorize(&ci, &ask("patch", "apps", "deployments", Some("team-a"))),
            Verdict::Allow(_)
        ));
        // a RoleBinding grants in its namespace only
        assert_eq!(
            s.authorize(&ci, &ask("patch", "apps", "deployments", Some("team-b"))),
            Verdict::Deny
        );
        assert_eq!(
            s.authorize(&ci, &ask("list", "apps", "deployments", None)),
            Verdict::Deny
        );
        // the same name in another namespace is another ServiceAccount
        let other = user("system:serviceaccount:team-b:ci", &[]);
        assert_eq!(
            s.authorize(&other, &ask("patch", "apps", "deployments", Some("team-a"))),
            Verdict::Deny
        );
    }

    #[test]
    fn aggregated_cluster_roles_collect_the_selected_rules() {
        let s = snapshot();
        let jane = user("jane", &["system:authenticated"]);
        assert!(matches!(
            s.authorize(&jane, &ask("create", "", "configmaps", Some("team-a"))),
            Verdict::Allow(_)
        ));
        assert_eq!(
            s.authorize(&jane, &ask("delete", "", "configmaps", Some("team-a"))),
            Verdict::Deny
        );
        assert_eq!(s.rules_for(&jane, Some("team-a")).len(), 1);
        assert!(s.rules_for(&jane, Some("team-b")).is_empty());
    }
}
