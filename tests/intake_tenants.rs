//! GitOps intake across sources and tenants, with real Git repositories:
//! `spec.dependsOn` syncs `infra → db → app` in order (each waits, naming
//! the dependency, while the one before is not Ready) and a cycle is
//! refused with the cycle named; a tenant source bound to a ServiceAccount
//! limited to `team-a` fails as a whole when one object targets `team-b`
//! (the dry run runs impersonated: RBAC's refusal names the verb and
//! resource, nothing is written), and applies once the object is gone.

use crate::intake_common;
use crate::support;

use serde_json::Value;

use intake_common::{Repo, SYNC, create_source, wait_applied};
use support::{Server, stderr, stdout, wait_for};

fn git_source(name: &str, namespace: &str, url: &str, path: &str, extra: &str) -> String {
    format!(
        "apiVersion: korral.dev/v1alpha1\nkind: GitSource\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  url: {url}\n  ref: {{branch: main}}\n  path: {path}\n  interval: 1s\n  prune: true\n{extra}"
    )
}

fn config_map(name: &str, namespace: Option<&str>) -> String {
    let ns = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{ns}data:\n  owner: {name}\n"
    )
}

/// A GitSource in `namespace` as JSON (`Null` when missing).
fn source_in(server: &Server, namespace: &str, name: &str) -> Value {
    let o = server.kubectl(&["get", "gitsource", name, "-n", namespace, "-o", "json"]);
    if !o.status.success() {
        return Value::Null;
    }
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

/// The `Ready` condition's (status, reason, message).
fn ready(src: &Value) -> (String, String, String) {
    let c = src
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (s("status"), s("reason"), s("message"))
}

/// Waits until the source's Ready condition has `reason`; returns it.
fn wait_reason(server: &Server, namespace: &str, name: &str, reason: &str) -> Value {
    let mut last = Value::Null;
    wait_for(
        &format!("{namespace}/{name} to report {reason}"),
        SYNC,
        || {
            last = source_in(server, namespace, name);
            ready(&last).1 == reason
        },
    );
    last
}

/// A ConfigMap as JSON, `Null` when missing.
fn config_map_in(server: &Server, namespace: &str, name: &str) -> Value {
    let o = server.kubectl(&["get", "configmap", name, "-n", namespace, "-o", "json"]);
    if !o.status.success() {
        return Value::Null;
    }
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

fn resource_version(v: &Value) -> u64 {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {v}"))
}

#[test]
fn depends_on_syncs_in_order_and_a_cycle_is_refused() {
    let server = Server::start();
    let repo = Repo::new();
    // infra starts broken (an unknown field): db and app must wait
    repo.write(
        "infra/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: infra\ndatta:\n  a: b\n",
    );
    repo.write("db/cm.yaml", &config_map("db", None));
    repo.write("app/cm.yaml", &config_map("app", None));
    repo.write("cyc/cm.yaml", &config_map("cyc", None));
    repo.commit("infra broken");
    let url = repo.url();
    // created dependents first, so without dependsOn they would sync first
    create_source(
        &server,
        &git_source(
            "app",
            "default",
            &url,
            "app",
            "  dependsOn:\n  - name: db\n",
        ),
    );
    create_source(
        &server,
        &git_source(
            "db",
            "default",
            &url,
            "db",
            "  dependsOn:\n  - name: infra\n    namespace: default\n",
        ),
    );
    create_source(&server, &git_source("infra", "default", &url, "infra", ""));

    let infra = wait_reason(&server, "default", "infra", "ValidationFailed");
    assert_eq!(ready(&infra).0, "False");
    // db may first have seen infra missing; then infra failing
    let mut db = Value::Null;
    wait_for("db to wait for the failing infra", SYNC, || {
        db = source_in(&server, "default", "db");
        ready(&db).2
            == "waiting for a dependency: GitSource default/infra is not Ready (ValidationFailed)"
    });
    assert_eq!(ready(&db).0, "False");
    assert_eq!(ready(&db).1, "DependencyNotReady");
    let app = wait_reason(&server, "default", "app", "DependencyNotReady");
    assert!(ready(&app).2.contains("GitSource default/db"), "{app}");
    assert!(config_map_in(&server, "default", "db").is_null());
    assert!(config_map_in(&server, "default", "app").is_null());
    assert!(db.pointer("/status/lastAppliedRevision").is_none(), "{db}");

    // infra fixed: the chain syncs, each after the one it depends on
    repo.write("infra/cm.yaml", &config_map("infra", None));
    let rev = repo.commit("infra fixed");
    let app = wait_applied(&server, "app", &rev);
    let db = wait_applied(&server, "db", &rev);
    wait_applied(&server, "infra", &rev);
    let cm = |n: &str| resource_version(&config_map_in(&server, "default", n));
    let (infra_cm, db_cm, app_cm) = (cm("infra"), cm("db"), cm("app"));
    assert!(
        infra_cm < db_cm && db_cm < app_cm,
        "applied out of order: infra {infra_cm}, db {db_cm}, app {app_cm}"
    );
    assert!(
        ready(&db).0 == "True" && ready(&app).0 == "True",
        "{db}\n{app}"
    );

    // a cycle: refused in status, naming it; nothing fetched or applied
    create_source(
        &server,
        &git_source(
            "left",
            "default",
            &url,
            "cyc",
            "  dependsOn:\n  - name: right\n",
        ),
    );
    create_source(
        &server,
        &git_source(
            "right",
            "default",
            &url,
            "cyc",
            "  dependsOn:\n  - name: left\n",
        ),
    );
    let left = wait_reason(&server, "default", "left", "DependencyCycle");
    assert_eq!(
        ready(&left).2,
        "dependency cycle refused: default/left → default/right → default/left"
    );
    let right = wait_reason(&server, "default", "right", "DependencyCycle");
    assert_eq!(
        ready(&right).2,
        "dependency cycle refused: default/right → default/left → default/right"
    );
    assert!(config_map_in(&server, "default", "cyc").is_null());
    // a source naming itself is refused at admission
    let o = server.kubectl_with(
        &["apply", "-f", "-"],
        &[],
        Some(&git_source(
            "narcissus",
            "default",
            &url,
            "cyc",
            "  dependsOn:\n  - name: narcissus\n",
        )),
    );
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("spec.dependsOn[0].name") && stderr(&o).contains("itself"),
        "{}",
        stderr(&o)
    );
}

const TENANT_RBAC: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
---
apiVersion: v1
kind: Namespace
metadata:
  name: team-b
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: deployer
  namespace: team-a
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: deployer
  namespace: team-a
rules:
- apiGroups: [\"\"]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: deployer
  namespace: team-a
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: deployer
subjects:
- kind: ServiceAccount
  name: deployer
  namespace: team-a
";

#[test]
fn a_tenant_source_fails_whole_when_one_object_is_forbidden() {
    let server = Server::start();
    server.apply(TENANT_RBAC);
    let repo = Repo::new();
    repo.write("tenant/one.yaml", &config_map("one", None));
    repo.write("tenant/two.yaml", &config_map("two", None));
    repo.write("tenant/escape.yaml", &config_map("escape", Some("team-b")));
    let bad = repo.commit("one object in team-b");
    create_source(
        &server,
        &git_source(
            "tenant",
            "team-a",
            &repo.url(),
            "tenant",
            "  serviceAccountName: deployer\n  targetNamespace: team-a\n",
        ),
    );
    let mut src = Value::Null;
    wait_for("the tenant source to fail its revision", SYNC, || {
        src = source_in(&server, "team-a", "tenant");
        ready(&src).0 == "False" && src["status"]["lastError"]["revision"] == bad.as_str()
    });
    let errors = src["status"]["lastError"]["errors"].to_string();
    assert!(
        errors.contains("system:serviceaccount:team-a:deployer")
            && errors.contains("\\\"configmaps\\\"")
            && errors.contains("team-b")
            && errors.contains("patch"),
        "the refusal names the account, verb, resource and namespace: {errors}"
    );
    assert!(
        errors.contains("escape.yaml") && !errors.contains("one.yaml"),
        "only the forbidden object is blamed: {errors}"
    );
    // nothing of that revision was written, in team-a either
    for (ns, name) in [("team-a", "one"), ("team-a", "two"), ("team-b", "escape")] {
        assert!(
            config_map_in(&server, ns, name).is_null(),
            "{ns}/{name} was written"
        );
    }
    assert!(
        src.pointer("/status/lastAppliedRevision").is_none(),
        "{src}"
    );

    // without the escaping object the revision applies, as the account
    repo.remove("tenant/escape.yaml");
    let good = repo.commit("stay in team-a");
    wait_for("the tenant source to apply", SYNC, || {
        src = source_in(&server, "team-a", "tenant");
        ready(&src).0 == "True"
            && src
                .pointer("/status/lastAppliedRevision")
                .and_then(Value::as_str)
                == Some(good.as_str())
    });
    let one = config_map_in(&server, "team-a", "one");
    assert_eq!(one["data"]["owner"], "one", "{one}");
    assert!(config_map_in(&server, "team-b", "escape").is_null());
}
