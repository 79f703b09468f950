//! RBAC through the real kubectl: a user with a client certificate the
//! cluster CA signed (made with openssl, CN the user, O the groups) is
//! forbidden with kube-apiserver's text until a RoleBinding or
//! ClusterRoleBinding grants it a role; bindings to users and groups, in a
//! namespace or cluster-wide, the aggregated default roles (view ⊂ edit ⊂
//! admin), `kubectl auth can-i` (and `--list`), and revocation; and
//! ServiceAccount tokens (`kubectl create token`, bound to a pod or not),
//! TokenReview, and tokens dying with what they name; bootstrap tokens.

use crate::cluster;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cluster::{Cluster, text};

/// A kubeconfig for `user` in `groups`, with a certificate signed by the cluster CA.
fn user_kubeconfig(c: &Cluster, user: &str, groups: &[&str]) -> PathBuf {
    let pki = c.dir.path().join("data/pki");
    let dir = c.dir.path().join(format!("user-{user}"));
    std::fs::create_dir_all(&dir).expect("user dir");
    let key = dir.join("user.key");
    let csr = dir.join("user.csr");
    let crt = dir.join("user.crt");
    let subject: String = std::iter::once(format!("/CN={user}"))
        .chain(groups.iter().map(|g| format!("/O={g}")))
        .collect();
    // a v3 client certificate (rustls refuses v1 ones, openssl's default
    // without extensions)
    let ext = dir.join("client.ext");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )
    .expect("extensions file");
    run("openssl", &["genrsa", "-out", path(&key), "2048"]);
    run(
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            path(&key),
            "-subj",
            &subject,
            "-out",
            path(&csr),
        ],
    );
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            path(&csr),
            "-CA",
            path(&pki.join("ca.crt")),
            "-CAkey",
            path(&pki.join("ca.key")),
            "-CAcreateserial",
            "-extfile",
            path(&ext),
            "-days",
            "1",
            "-out",
            path(&crt),
        ],
    );
    write_kubeconfig(
        c,
        &dir.join("kubeconfig.yaml"),
        user,
        &[
            "--client-certificate",
            path(&crt),
            "--client-key",
            path(&key),
            "--embed-certs",
        ],
    )
}

/// A kubeconfig at `kc` for the cluster with `user`'s credentials
/// (`kubectl config set-credentials` flags).
fn write_kubeconfig(c: &Cluster, kc: &Path, user: &str, credentials: &[&str]) -> PathBuf {
    let ca = c.dir.path().join("data/pki/ca.crt");
    let server = c.ok(&[
        "config",
        "view",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let mut set_credentials = vec!["config", "set-credentials", user];
    set_credentials.extend_from_slice(credentials);
    for args in [
        vec![
            "config",
            "set-cluster",
            "korral",
            "--server",
            &server,
            "--certificate-authority",
            path(&ca),
            "--embed-certs",
        ],
        set_credentials,
        vec![
            "config",
            "set-context",
            "korral",
            "--cluster",
            "korral",
            "--user",
            user,
        ],
        vec!["config", "use-context", "korral"],
    ] {
        let mut all = vec!["--kubeconfig", path(kc)];
        all.extend_from_slice(&args);
        run("kubectl", &all);
    }
    kc.to_path_buf()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn run(cmd: &str, args: &[&str]) {
    let o = Command::new(cmd).args(args).output().expect(cmd);
    assert!(o.status.success(), "{cmd} {args:?}: {}", text(&o.stderr));
}

/// kubectl as the user: (success, stdout, stderr).
fn as_user(c: &Cluster, kc: &Path, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["--kubeconfig", path(kc)];
    all.extend_from_slice(args);
    let o = c.kubectl_in(&all, None);
    (o.status.success(), text(&o.stdout), text(&o.stderr))
}

fn can_i(c: &Cluster, kc: &Path, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    as_user(c, kc, &all).1.trim().to_string()
}

#[test]
fn bindings_grant_roles_to_users_and_groups_and_revoking_takes_them_back() {
    let c = Cluster::start();
    let jane = user_kubeconfig(&c, "jane", &["dev"]);
    let wait = Duration::from_secs(10);

    // authenticated, but granted nothing yet
    let (ok, _, err) = as_user(&c, &jane, &["get", "pods"]);
    assert!(!ok);
    assert!(
        err.contains(
            "Error from server (Forbidden): pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{err}"
    );
    assert_eq!(can_i(&c, &jane, &["list", "pods"]), "no");
    assert_eq!(
        as_user(
            &c,
            &jane,
            &["auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}"]
        )
        .1,
        r#"["dev","system:authenticated"]"#
    );

    // view in one namespace
    c.ok(&[
        "create",
        "rolebinding",
        "jane-view",
        "--clusterrole=view",
        "--user=jane",
        "-n",
        "default",
    ]);
    c.wait_for("jane may list pods in default", wait, || {
        as_user(&c, &jane, &["get", "pods"]).0
    });
    assert_eq!(
        can_i(&c, &jane, &["list", "pods", "-n", "kube-system"]),
        "no"
    );
    assert_eq!(can_i(&c, &jane, &["create", "deployments"]), "no");
    assert_eq!(
        can_i(&c, &jane, &["get", "secrets"]),
        "no",
        "view does not read Secrets"
    );
    let (_, list, _) = as_user(&c, &jane, &["auth", "can-i", "--list", "-n", "default"]);
    assert!(list.contains("deployments.apps"), "{list}");

    // edit for the whole group, everywhere
    c.ok(&[
        "create",
        "clusterrolebinding",
        "dev-edit",
        "--clusterrole=edit",
        "--group=dev",
    ]);
    c.wait_for("the dev group may create deployments", wait, || {
        can_i(&c, &jane, &["create", "deployments", "-n", "kube-public"]) == "yes"
    });
    let (ok, out, err) = as_user(
        &c,
        &jane,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "-n",
            "kube-public",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deployment.apps/web created");
    // edit may not hand out roles
    let (ok, _, err) = as_user(
        &c,
        &jane,
        &[
            "create",
            "rolebinding",
            "mine",
            "--clusterrole=admin",
            "--user=jane",
            "-n",
            "default",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("rolebindings.rbac.authorization.k8s.io is forbidden"),
        "{err}"
    );
    // the aggregated defaults: admin holds edit, edit holds view
    let rules = |role: &str| c.ok(&["get", "clusterrole", role, "-o", "jsonpath={.rules}"]);
    assert!(rules("view").contains("\"pods\""));
    assert!(rules("admin").contains("rolebindings"));

    // revoking takes effect
    c.ok(&["delete", "clusterrolebinding", "dev-edit"]);
    c.wait_for("the grant to go", wait, || {
        can_i(&c, &jane, &["create", "deployments", "-n", "kube-public"]) == "no"
    });
    assert!(
        as_user(&c, &jane, &["get", "pods"]).0,
        "the RoleBinding still grants view"
    );
}

#[test]
fn roles_with_resource_names_and_service_account_subjects() {
    let c = Cluster::start();
    let ops = user_kubeconfig(&c, "ops", &[]);
    let wait = Duration::from_secs(10);
    c.ok(&["create", "configmap", "settings", "--from-literal=a=1"]);
    c.ok(&["create", "configmap", "other", "--from-literal=a=1"]);
    c.ok(&[
        "create",
        "role",
        "settings-editor",
        "--verb=get,update,patch",
        "--resource=configmaps",
        "--resource-name=settings",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "ops-settings",
        "--role=settings-editor",
        "--user=ops",
    ]);
    c.wait_for("ops may read settings", wait, || {
        as_user(&c, &ops, &["get", "configmap", "settings"]).0
    });
    let (ok, _, err) = as_user(&c, &ops, &["get", "configmap", "other"]);
    assert!(!ok);
    assert!(
        err.contains("configmaps \"other\" is forbidden: User \"ops\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\""),
        "{err}"
    );
    // a list is not a named request
    assert!(!as_user(&c, &ops, &["get", "configmaps"]).0);
    let (ok, _, err) = as_user(
        &c,
        &ops,
        &[
            "patch",
            "configmap",
            "settings",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ],
    );
    assert!(ok, "{err}");

    // a binding to a ServiceAccount subject, as SubjectAccessReview-style can-i sees it
    c.ok(&[
        "create",
        "rolebinding",
        "ci-view",
        "--clusterrole=view",
        "--serviceaccount=default:ci",
    ]);
    let binding = c.ok(&[
        "get",
        "rolebinding",
        "ci-view",
        "-o",
        "jsonpath={.subjects[0].kind}/{.subjects[0].name}",
    ]);
    assert_eq!(binding, "ServiceAccount/ci");
}

/// A kubeconfig that authenticates with a bearer token.
fn token_kubeconfig(c: &Cluster, name: &str, token: &str) -> PathBuf {
    let kc = c.dir.path().join(format!("{name}.kubeconfig"));
    write_kubeconfig(c, &kc, name, &["--token", token])
}

#[test]
fn service_account_tokens_authenticate_until_what_they_name_is_gone() {
    let c = Cluster::start();
    let wait = Duration::from_secs(10);
    c.ok(&["create", "serviceaccount", "ci"]);
    let token = c.ok(&["create", "token", "ci", "--duration=1h"]);
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let ci = token_kubeconfig(&c, "ci", &token);

    let who = as_user(
        &c,
        &ci,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ],
    )
    .1;
    assert_eq!(
        who,
        r#"system:serviceaccount:default:ci ["system:serviceaccounts","system:serviceaccounts:default","system:authenticated"]"#
    );
    let (ok, _, err) = as_user(&c, &ci, &["get", "configmaps"]);
    assert!(!ok);
    assert!(
        err.contains("configmaps is forbidden: User \"system:serviceaccount:default:ci\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""),
        "{err}"
    );
    c.ok(&[
        "create",
        "rolebinding",
        "ci-view",
        "--clusterrole=view",
        "--serviceaccount=default:ci",
    ]);
    c.wait_for("the ServiceAccount may list configmaps", wait, || {
        as_user(&c, &ci, &["get", "configmaps"]).0
    });

    // TokenReview says whom a token authenticates
    let review = format!(
        r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{token}"}}}}"#
    );
    let o = c.kubectl_in(
        &[
            "create",
            "-f",
            "-",
            "-o",
            "jsonpath={.status.authenticated} {.status.user.username}",
        ],
        Some(&review),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "true system:serviceaccount:default:ci");
    let forged = format!("{}x", &token[..token.len() - 1]);
    let review = review.replace(&token, &forged);
    let o = c.kubectl_in(
        &[
            "create",
            "-f",
            "-",
            "-o",
            "jsonpath={.status.authenticated}|{.status.error}",
        ],
        Some(&review),
    );
    assert_eq!(
        text(&o.stdout),
        "|[invalid bearer token, token lookup failed]"
    );

    // TokenRequest validation
    let (ok, _, err) = {
        let o = c.kubectl_in(&["create", "token", "ci", "--duration=5m"], None);
        (o.status.success(), text(&o.stdout), text(&o.stderr))
    };
    assert!(!ok);
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );

    // a token bound to a pod dies with the pod
    c.ok(&[
        "run",
        "worker",
        "--image=busybox:1.36.1",
        "--restart=Never",
        "--",
        "sleep",
        "3600",
    ]);
    let bound = c.ok(&[
        "create",
        "token",
        "ci",
        "--bound-object-kind=Pod",
        "--bound-object-name=worker",
    ]);
    let pod_kc = token_kubeconfig(&c, "ci-pod", &bound);
    assert!(as_user(&c, &pod_kc, &["get", "configmaps"]).0);
    c.ok(&["delete", "pod", "worker", "--grace-period=0", "--force"]);
    let (ok, _, err) = as_user(&c, &pod_kc, &["get", "configmaps"]);
    assert!(!ok);
    assert!(err.contains("Unauthorized"), "{err}");

    // and every token of a ServiceAccount dies with it
    c.ok(&["delete", "serviceaccount", "ci"]);
    let (ok, _, err) = as_user(&c, &ci, &["get", "configmaps"]);
    assert!(!ok);
    assert!(
        err.contains("You must be logged in to the server (Unauthorized)"),
        "{err}"
    );
}

#[test]
fn admins_of_a_namespace_may_not_grant_more_than_they_hold() {
    let c = Cluster::start();
    let wait = Duration::from_secs(10);
    let lead = user_kubeconfig(&c, "lead", &[]);
    c.ok(&["create", "namespace", "team"]);
    c.ok(&[
        "create",
        "rolebinding",
        "lead-admin",
        "--clusterrole=admin",
        "--user=lead",
        "-n",
        "team",
    ]);
    c.wait_for("lead to be admin of team", wait, || {
        can_i(&c, &lead, &["create", "rolebindings", "-n", "team"]) == "yes"
    });
    // what admin holds may be handed on
    let (ok, _, err) = as_user(
        &c,
        &lead,
        &[
            "create",
            "rolebinding",
            "dev-edit",
            "--clusterrole=edit",
            "--user=dev",
            "-n",
            "team",
        ],
    );
    assert!(ok, "{err}");
    // cluster-admin is more than admin of one namespace
    let (ok, _, err) = as_user(
        &c,
        &lead,
        &[
            "create",
            "rolebinding",
            "dev-root",
            "--clusterrole=cluster-admin",
            "--user=dev",
            "-n",
            "team",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("rolebindings.rbac.authorization.k8s.io \"dev-root\" is forbidden: user \"lead\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:"),
        "{err}"
    );
    assert!(
        err.contains("{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"),
        "{err}"
    );
    // nor may a Role hold rules its writer lacks
    let (ok, _, err) = as_user(
        &c,
        &lead,
        &[
            "create",
            "role",
            "nodes",
            "--verb=get",
            "--resource=nodes",
            "-n",
            "team",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"),
        "{err}"
    );
    let (ok, _, err) = as_user(
        &c,
        &lead,
        &[
            "create",
            "role",
            "pods",
            "--verb=get,list",
            "--resource=pods",
            "-n",
            "team",
        ],
    );
    assert!(ok, "{err}");
}

#[test]
fn impersonation_and_subject_access_reviews() {
    let c = Cluster::start();
    let wait = Duration::from_secs(10);
    let jane = user_kubeconfig(&c, "jane", &[]);
    c.ok(&[
        "create",
        "rolebinding",
        "bob-view",
        "--clusterrole=view",
        "--user=bob",
    ]);
    // the admin may impersonate anyone; what bob may do decides
    c.wait_for("bob to get view", wait, || {
        c.kubectl_in(&["auth", "can-i", "list", "pods", "--as=bob"], None)
            .stdout
            == b"yes\n"
    });
    let o = c.kubectl_in(&["auth", "can-i", "create", "pods", "--as=bob"], None);
    assert_eq!(text(&o.stdout).trim(), "no");
    let o = c.kubectl_in(&["get", "secrets", "--as=bob"], None);
    assert!(
        text(&o.stderr)
            .contains("secrets is forbidden: User \"bob\" cannot list resource \"secrets\""),
        "{}",
        text(&o.stderr)
    );
    let o = c.kubectl_in(
        &["get", "secrets", "--as=bob", "--as-group=system:masters"],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    // jane may not impersonate until she may
    let (ok, _, err) = as_user(&c, &jane, &["get", "pods", "--as=bob"]);
    assert!(!ok);
    assert!(
        err.contains("users \"bob\" is forbidden: User \"jane\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"),
        "{err}"
    );
    c.ok(&[
        "create",
        "clusterrole",
        "impersonate-bob",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=bob",
    ]);
    c.ok(&[
        "create",
        "clusterrolebinding",
        "jane-as-bob",
        "--clusterrole=impersonate-bob",
        "--user=jane",
    ]);
    c.wait_for("jane to act as bob", wait, || {
        as_user(&c, &jane, &["get", "pods", "--as=bob"]).0
    });
    // a uid needs its own grant (uids in authentication.k8s.io)
    let (ok, _, err) = as_user(&c, &jane, &["get", "pods", "--as=bob", "--as-uid=1234"]);
    assert!(!ok);
    assert!(
        err.contains("uids.authentication.k8s.io \"1234\" is forbidden: User \"jane\" cannot impersonate resource \"uids\" in API group \"authentication.k8s.io\" at the cluster scope"),
        "{err}"
    );
    // the admin may name a uid and extras; the server answers as that user
    let who = c.curl(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        &[
            "Content-Type: application/json",
            "Impersonate-User: bob",
            "Impersonate-Group: dev",
            "Impersonate-Uid: 1234",
            "Impersonate-Extra-Scopes: read",
            "Impersonate-Extra-Scopes: write",
            "Impersonate-Extra-example.com%2fteam: blue",
        ],
        Some(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#),
    );
    assert_eq!(who.code, 201, "{}", text(&who.body));
    assert_eq!(
        who.json()["status"]["userInfo"],
        serde_json::json!({
            "username": "bob",
            "uid": "1234",
            "groups": ["dev", "system:authenticated"],
            "extra": {"scopes": ["read", "write"], "example.com/team": ["blue"]}
        })
    );

    // SubjectAccessReview: what may bob do?
    let review = |attrs: &str| {
        let body = format!(
            r#"{{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{{"user":"bob",{attrs}}}}}"#
        );
        let o = c.kubectl_in(
            &[
                "create",
                "-f",
                "-",
                "-o",
                "jsonpath={.status.allowed} {.status.reason}",
            ],
            Some(&body),
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    assert_eq!(
        review(r#""resourceAttributes":{"namespace":"default","verb":"list","resource":"pods"}"#),
        "true RBAC: allowed by RoleBinding \"default/bob-view\" of ClusterRole \"view\" to User \"bob\""
    );
    assert_eq!(
        review(r#""resourceAttributes":{"namespace":"default","verb":"delete","resource":"pods"}"#),
        "false "
    );
    // jane may not ask about others
    let body = r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"bob","resourceAttributes":{"verb":"get","resource":"pods"}}}"#;
    let (ok, _, err) = {
        let mut all = vec!["--kubeconfig", path(&jane), "create", "-f", "-"];
        all.truncate(5);
        let o = c.kubectl_in(&all, Some(body));
        (o.status.success(), text(&o.stdout), text(&o.stderr))
    };
    assert!(!ok);
    assert!(
        err.contains("cannot create resource \"subjectaccessreviews\""),
        "{err}"
    );
}

/// Whether a kubectl command as an identity was allowed (it succeeded) or
/// forbidden (kube's 403); any other failure fails the test.
fn outcome(c: &Cluster, kc: &Path, args: &[&str]) -> bool {
    let (ok, out, err) = as_user(c, kc, args);
    if ok {
        return true;
    }
    assert!(
        err.contains("(Forbidden)") || err.contains("is forbidden"),
        "{args:?} failed otherwise: {out}{err}"
    );
    false
}

#[test]
fn identities_by_verbs_by_resources_agree_with_the_rbac_objects() {
    let c = Cluster::start();
    let wait = Duration::from_secs(10);
    c.ok(&["create", "namespace", "team"]);
    c.ok(&["create", "configmap", "victim", "-n", "team"]);
    // token-file identities: korral's viewer role and a node
    let tokens = c.dir.path().join("data/tokens.csv");
    let mut file = std::fs::read_to_string(&tokens).expect("tokens.csv");
    file.push_str(
        "tok-viewer-0123456789,viewer,viewer\ntok-node-a-0123456789,system:node:a,node:a\n",
    );
    std::fs::write(&tokens, file).expect("tokens.csv");
    let admin = c.kubeconfig.clone();
    let viewer = token_kubeconfig(&c, "viewer", "tok-viewer-0123456789");
    let node = token_kubeconfig(&c, "node-a", "tok-node-a-0123456789");
    // certificate users and a ServiceAccount, with what the objects grant
    let jane = user_kubeconfig(&c, "jane", &["dev"]);
    let qa = user_kubeconfig(&c, "quinn", &["qa"]);
    c.ok(&["create", "serviceaccount", "ci", "-n", "team"]);
    let ci = token_kubeconfig(&c, "ci", &c.ok(&["create", "token", "ci", "-n", "team"]));
    c.ok(&[
        "create",
        "rolebinding",
        "jane-edit",
        "--clusterrole=edit",
        "--user=jane",
        "-n",
        "team",
    ]);
    c.ok(&[
        "create",
        "clusterrolebinding",
        "qa-view",
        "--clusterrole=view",
        "--group=qa",
    ]);
    c.ok(&[
        "create",
        "role",
        "deployer",
        "--verb=get,list,create,update,delete",
        "--resource=deployments.apps",
        "-n",
        "team",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "ci-deployer",
        "--role=deployer",
        "--serviceaccount=team:ci",
        "-n",
        "team",
    ]);
    c.wait_for("the bindings to be in force", wait, || {
        can_i(&c, &ci, &["create", "deployments.apps", "-n", "team"]) == "yes"
    });

    // (can-i arguments, the same request made for real)
    let checks: [(&[&str], &[&str]); 7] = [
        (
            &["list", "pods", "-n", "team"],
            &["get", "pods", "-n", "team"],
        ),
        (
            &["create", "deployments.apps", "-n", "team"],
            &[
                "create",
                "deployment",
                "probe",
                "--image=nginx:1.27",
                "-n",
                "team",
                "--dry-run=server",
            ],
        ),
        (
            &["delete", "configmaps", "-n", "team"],
            &[
                "delete",
                "configmap",
                "victim",
                "-n",
                "team",
                "--dry-run=server",
            ],
        ),
        (
            &["list", "secrets", "-n", "team"],
            &["get", "secrets", "-n", "team"],
        ),
        (
            &[
                "create",
                "rolebindings.rbac.authorization.k8s.io",
                "-n",
                "team",
            ],
            &[
                "create",
                "rolebinding",
                "probe",
                "--clusterrole=view",
                "--user=x",
                "-n",
                "team",
                "--dry-run=server",
            ],
        ),
        (&["list", "nodes"], &["get", "nodes"]),
        (
            &["create", "deployments.apps", "-n", "default"],
            &[
                "create",
                "deployment",
                "probe",
                "--image=nginx:1.27",
                "--dry-run=server",
            ],
        ),
    ];
    // expected, in the order of `checks`, from the objects above: admin is
    // system:masters; viewer reads all but Secrets; jane edits team; quinn
    // views everywhere; ci manages team's Deployments; node a reads nodes
    let expected: [(&str, &Path, [Option<bool>; 7]); 6] = [
        ("admin", &admin, [Some(true); 7]),
        (
            "viewer",
            &viewer,
            [
                Some(true),
                Some(false),
                Some(false),
                Some(false),
                Some(false),
                Some(true),
                Some(false),
            ],
        ),
        (
            "jane",
            &jane,
            [
                Some(true),
                Some(true),
                Some(true),
                Some(true),
                Some(false),
                Some(false),
                Some(false),
            ],
        ),
        (
            "quinn",
            &qa,
            [
                Some(true),
                Some(false),
                Some(false),
                Some(false),
                Some(false),
                Some(false),
                Some(false),
            ],
        ),
        (
            "ci",
            &ci,
            [
                Some(false),
                Some(true),
                Some(false),
                Some(false),
                Some(false),
                Some(false),
                Some(false),
            ],
        ),
        // the node authoriser's conditional answers (pods, secrets) are left out
        (
            "node a",
            &node,
            [
                None,
                Some(false),
                Some(false),
                None,
                Some(false),
                Some(true),
                Some(false),
            ],
        ),
    ];
    let mut mismatches = Vec::new();
    for (who, kc, want) in expected {
        for ((can_i_args, real), want) in checks.iter().zip(want) {
            let Some(want) = want else { continue };
            let said = can_i(&c, kc, can_i_args) == "yes";
            let did = outcome(&c, kc, real);
            if said != want || did != want {
                mismatches.push(format!(
                    "{who} {can_i_args:?}: expected {want}, can-i said {said}, the request {}",
                    if did { "was allowed" } else { "was forbidden" }
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// A bootstrap token Secret as `kubeadm token create` writes it.
fn bootstrap_secret(c: &Cluster, id: &str, secret: &str, expiration: &str) {
    c.ok(&[
        "-n",
        "kube-system",
        "create",
        "secret",
        "generic",
        &format!("bootstrap-token-{id}"),
        "--type=bootstrap.kubernetes.io/token",
        &format!("--from-literal=token-id={id}"),
        &format!("--from-literal=token-secret={secret}"),
        "--from-literal=usage-bootstrap-authentication=true",
        "--from-literal=auth-extra-groups=system:bootstrappers:kubeadm:default-node-token",
        &format!("--from-literal=expiration={expiration}"),
    ]);
}

#[test]
fn bootstrap_tokens_authenticate_while_their_secret_is_valid() {
    let c = Cluster::start();
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let earlier = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    bootstrap_secret(&c, "abcdef", "0123456789abcdef", &later);
    bootstrap_secret(&c, "zyxwvu", "0123456789abcdef", &earlier);

    let joiner = token_kubeconfig(&c, "joiner", "abcdef.0123456789abcdef");
    let (ok, who, err) = as_user(&c, &joiner, &["auth", "whoami", "-o", "json"]);
    assert!(ok, "{err}");
    let who: serde_json::Value = serde_json::from_str(&who).expect("SelfSubjectReview");
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:bootstrap:abcdef"
    );
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        serde_json::json!([
            "system:bootstrappers",
            "system:bootstrappers:kubeadm:default-node-token",
            "system:authenticated"
        ])
    );
    // an ordinary RBAC subject: nothing until bound, then what kubeadm binds
    assert_eq!(
        can_i(&c, &joiner, &["create", "certificatesigningrequests"]),
        "no"
    );
    c.ok(&[
        "create",
        "clusterrolebinding",
        "kubeadm:kubelet-bootstrap",
        "--clusterrole=system:node-bootstrapper",
        "--group=system:bootstrappers:kubeadm:default-node-token",
    ]);
    c.wait_for("the binding to apply", Duration::from_secs(10), || {
        can_i(&c, &joiner, &["create", "certificatesigningrequests"]) == "yes"
    });
    assert_eq!(can_i(&c, &joiner, &["list", "secrets", "-A"]), "no");

    // a wrong secret, an expired token, a deleted Secret: 401
    for (name, token) in [
        ("wrong", "abcdef.ffffffffffffffff"),
        ("expired", "zyxwvu.0123456789abcdef"),
    ] {
        let kc = token_kubeconfig(&c, name, token);
        let (ok, _, err) = as_user(&c, &kc, &["get", "--raw", "/api"]);
        assert!(!ok);
        assert!(err.contains("Unauthorized"), "{name}: {err}");
    }
    c.ok(&[
        "-n",
        "kube-system",
        "delete",
        "secret",
        "bootstrap-token-abcdef",
    ]);
    let (ok, _, err) = as_user(&c, &joiner, &["auth", "whoami"]);
    assert!(!ok);
    assert!(err.contains("Unauthorized"), "{err}");
}
