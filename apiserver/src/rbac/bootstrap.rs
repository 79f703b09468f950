//! The default RBAC objects every cluster starts with (kube-apiserver's
//! bootstrap policy): `cluster-admin` for `system:masters`, the user-facing
//! `admin`/`edit`/`view` ClusterRoles aggregated from the
//! `system:aggregate-to-*` roles, and what every authenticated user may do
//! (`system:basic-user`, `system:discovery`, `system:public-info-viewer`),
//! and kubeadm's TLS-bootstrapping roles and bindings (tokens in
//! [`BOOTSTRAP_TOKEN_GROUP`] may request node client certificates, nodes may
//! renew their own).
//! They are created when missing and carry kube's
//! `kubernetes.io/bootstrapping: rbac-defaults` label.

use serde_json::{Value, json};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(paths: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": paths, "verbs": verbs})
}

fn meta(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut l = serde_json::Map::new();
    l.insert("kubernetes.io/bootstrapping".into(), json!("rbac-defaults"));
    for (k, v) in labels {
        l.insert((*k).into(), json!(v));
    }
    json!({"name": name, "labels": l,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": meta(name, labels), "rules": rules})
}

fn aggregated(name: &str, labels: &[(&str, &str)], selector: &str) -> Value {
    let mut role = cluster_role(name, labels, Vec::new());
    role["aggregationRule"] =
        json!({"clusterRoleSelectors": [{"matchLabels": {selector: "true"}}]});
    role
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": meta(name, &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects})
}

/// The extra group of the bootstrap tokens `korral token create --bootstrap`
/// makes (kubeadm's is `system:bootstrappers:kubeadm:default-node-token`):
/// the default bindings let it join nodes.
pub const BOOTSTRAP_TOKEN_GROUP: &str = "system:bootstrappers:korral:default-node-token";

const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// The default ClusterRoles, aggregated ones with their rules filled in (as
/// the aggregation controller leaves them).
pub fn cluster_roles() -> Vec<Value> {
    let mut roles = vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("admin", &[], TO_ADMIN),
        aggregated("edit", &[(TO_ADMIN, "true")], TO_EDIT),
        aggregated("view", &[(TO_EDIT, "true")], TO_VIEW),
        cluster_role(
            "system:aggregate-to-admin",
            &[(TO_ADMIN, "true")],
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                    &["create"],
                ),
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                    ALL,
                ),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(TO_EDIT, "true")],
            vec![
                rule(
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                    READ,
                ),
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                    WRITE,
                ),
                rule(&[""], &["pods/eviction"], &["create"]),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                    WRITE,
                ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                    WRITE,
                ),
                rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
                rule(&["batch"], &["cronjobs", "jobs"], WRITE),
                rule(&["policy"], &["poddisruptionbudgets"], WRITE),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                    WRITE,
                ),
                rule(&["coordination.k8s.io"], &["leases"], ALL),
            ],
        ),
        // what metrics-server's manifest adds, for the built-in Metrics API:
        // view (so edit and admin) may read it
        cluster_role(
            "system:aggregated-metrics-reader",
            &[(TO_VIEW, "true"), (TO_EDIT, "true"), (TO_ADMIN, "true")],
            vec![rule(&["metrics.k8s.io"], &["pods", "nodes"], READ)],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(TO_VIEW, "true")],
            vec![
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                    READ,
                ),
                rule(
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                    READ,
                ),
                rule(&[""], &["namespaces"], READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                    READ,
                ),
                rule(
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                    READ,
                ),
                rule(
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    READ,
                ),
                rule(
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                    READ,
                ),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                    READ,
                ),
            ],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        // what a joining node does with its bootstrap token (kube binds
        // kubeadm's token group to it): ask for its client certificate
        cluster_role(
            "system:node-bootstrapper",
            &[],
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            )],
        ),
        // what kube-controller-manager's csrapproving controller asks before
        // approving a kubelet client certificate: a new node's (`nodeclient`)
        // or a node renewing its own (`selfnodeclient`)
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[],
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
                &["create"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[],
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
                &["create"],
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
    ];
    // korral's own identities, as ordinary RBAC subjects (their groups come
    // from the token file's role column, see `auth::Role::groups`)
    let everything = || vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])];
    roles.push(cluster_role("system:korral:controller", &[], everything()));
    roles.push(cluster_role("system:korral:intake", &[], everything()));
    let mut readable: Vec<&str> = schemas::builtin_kinds()
        .iter()
        .map(|k| k.plural.as_str())
        .filter(|p| *p != "secrets")
        .collect();
    readable.sort();
    readable.dedup();
    readable.extend(["*/status", "*/scale", "pods/log"]);
    roles.push(cluster_role(
        "korral:viewer",
        &[],
        vec![rule(&["*"], &readable, READ), urls(&["*"], &["get"])],
    ));
    fill_aggregated(&mut roles);
    roles
}

/// Writes each aggregated role's rules from the roles its selector picks
/// (the selectors here are single `matchLabels`, so this needs no more).
fn fill_aggregated(roles: &mut [Value]) {
    // aggregated roles pick aggregated roles (edit is in admin): repeat
    // until nothing changes, as the aggregation controller converges
    for _ in 0..8 {
        let before: Vec<Value> = roles.to_vec();
        fill_once(roles);
        if roles == before.as_slice() {
            break;
        }
    }
}

fn fill_once(roles: &mut [Value]) {
    let snapshot: Vec<Value> = roles.to_vec();
    for role in roles.iter_mut() {
        let Some(sel) = role
            .pointer("/aggregationRule/clusterRoleSelectors/0/matchLabels")
            .and_then(Value::as_object)
            .cloned()
        else {
            continue;
        };
        let mut rules: Vec<Value> = Vec::new();
        let mut picked: Vec<&Value> = snapshot
            .iter()
            .filter(|r| {
                sel.iter().all(|(k, v)| {
                    r.pointer("/metadata/labels")
                        .and_then(|l| l.get(k))
                        .is_some_and(|x| x == v)
                })
            })
            .collect();
        picked.sort_by_key(|r| r["metadata"]["name"].as_str().unwrap_or("").to_string());
        for r in picked {
            for rule in r["rules"].as_array().into_iter().flatten() {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
        role["rules"] = Value::Array(rules);
    }
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", &["system:masters"]),
        binding(
            "system:basic-user",
            "system:basic-user",
            &["system:authenticated"],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            &["system:authenticated"],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
        // TLS bootstrapping, as kubeadm binds it (under korral's names and
        // group, so kubeadm's own bindings can still be made by hand): tokens
        // of `korral token create --bootstrap` may ask for node client
        // certificates, approved automatically, and nodes' renewals of their
        // own certificates are approved too
        binding(
            "korral:kubelet-bootstrap",
            "system:node-bootstrapper",
            &[BOOTSTRAP_TOKEN_GROUP],
        ),
        binding(
            "korral:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[BOOTSTRAP_TOKEN_GROUP],
        ),
        binding(
            "korral:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &["system:nodes"],
        ),
        binding(
            "system:korral:controller",
            "system:korral:controller",
            &[crate::auth::CONTROLLERS_GROUP],
        ),
        binding(
            "system:korral:intake",
            "system:korral:intake",
            &[crate::auth::INTAKE_GROUP],
        ),
        binding(
            "korral:viewer",
            "korral:viewer",
            &[crate::auth::VIEWERS_GROUP],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::{Request, Snapshot, User, Verdict};

    fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).expect("rbac object")
    }

    fn defaults() -> Snapshot {
        Snapshot::new(
            cluster_roles().into_iter().map(from).collect(),
            Vec::new(),
            cluster_role_bindings().into_iter().map(from).collect(),
            Vec::new(),
        )
    }

    #[test]
    fn korral_bootstrap_tokens_may_ask_for_node_certificates_and_nodes_renew_theirs() {
        let s = defaults();
        let csr = |subresource| Request {
            verb: "create",
            group: "certificates.k8s.io",
            resource: "certificatesigningrequests",
            subresource,
            ..Default::default()
        };
        let joiner = User {
            name: "system:bootstrap:abcdef".into(),
            groups: vec![
                "system:bootstrappers".into(),
                BOOTSTRAP_TOKEN_GROUP.into(),
                "system:authenticated".into(),
            ],
        };
        for sub in [None, Some("nodeclient")] {
            assert!(
                matches!(s.authorize(&joiner, &csr(sub)), Verdict::Allow(_)),
                "{sub:?}"
            );
        }
        assert_eq!(
            s.authorize(&joiner, &csr(Some("selfnodeclient"))),
            Verdict::Deny
        );
        // a token outside korral's group (kubeadm's, say) is not bound by default
        let other = User {
            groups: vec!["system:bootstrappers".into(), "system:authenticated".into()],
            ..joiner
        };
        assert_eq!(s.authorize(&other, &csr(None)), Verdict::Deny);
        let node = User {
            name: "system:node:a".into(),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
        };
        assert!(matches!(
            s.authorize(&node, &csr(Some("selfnodeclient"))),
            Verdict::Allow(_)
        ));
        assert_eq!(s.authorize(&node, &csr(Some("nodeclient"))), Verdict::Deny);
    }

    #[test]
    fn the_default_roles_nest_view_in_edit_in_admin() {
        let roles = cluster_roles();
        let rules = |name: &str| {
            roles
                .iter()
                .find(|r| r["metadata"]["name"] == name)
                .and_then(|r| r["rules"].as_array())
                .map_or(0, Vec::len)
        };
        assert!(rules("view") > 0);
        assert!(rules("edit") > rules("view"));
        assert!(rules("admin") > rules("edit"));
    }

    #[test]
    fn view_reads_the_metrics_api_as_with_metrics_server() {
        let mut s = defaults();
        s.cluster_bindings.push(from(serde_json::json!({
            "metadata": {"name": "jane-view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"}]})));
        let jane = User {
            name: "jane".into(),
            groups: vec!["system:authenticated".into()],
        };
        for (resource, verb) in [("pods", "list"), ("pods", "get"), ("nodes", "list")] {
            let r = Request {
                verb,
                group: "metrics.k8s.io",
                resource,
                ..Default::default()
            };
            assert!(
                matches!(s.authorize(&jane, &r), Verdict::Allow(_)),
                "{verb} {resource}"
            );
        }
    }

    #[test]
    fn every_authenticated_user_may_ask_what_it_may_do_and_nothing_more() {
        let s = defaults();
        let jane = User {
            name: "jane".into(),
            groups: vec!["system:authenticated".into()],
        };
        let review = Request {
            verb: "create",
            group: "authorization.k8s.io",
            resource: "selfsubjectaccessreviews",
            ..Default::default()
        };
        assert!(matches!(s.authorize(&jane, &review), Verdict::Allow(_)));
        let pods = Request {
            verb: "list",
            resource: "pods",
            namespace: Some("default"),
            ..Default::default()
        };
        assert_eq!(s.authorize(&jane, &pods), Verdict::Deny);
        let admin = User {
            name: "root".into(),
            groups: vec!["system:masters".into()],
        };
        // system:masters is allowed before RBAC is asked (no reason), as kube's
        // privileged-group authoriser does
        assert_eq!(s.authorize(&admin, &pods), Verdict::Allow(String::new()));
        let ops = User {
            name: "ops".into(),
            groups: vec!["system:authenticated".into()],
        };
        let mut with_admin = defaults();
        with_admin.cluster_bindings.push(from(serde_json::json!({
            "metadata": {"name": "ops-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "ops"}]})));
        assert_eq!(
            with_admin.authorize(&ops, &pods),
            Verdict::Allow(
                "RBAC: allowed by ClusterRoleBinding \"ops-admin\" of ClusterRole \"cluster-admin\" to User \"ops\"".into()
            )
        );
    }
}
