//! GitOps intake across sources and tenants, with real Git repositories:
//! `spec.dependsOn` syncs `infra → db → app` in order (each waits, naming
//! the dependency, while the one before is not Ready) and a cycle is
//! refused with the cycle named; a tenant source bound to a ServiceAccount
//! limited to `team-a` fails as a whole when one object targets `team-b`
//! (the dry run runs impersonated: RBAC's refusal names the verb and
//! resource, nothing is written), and applies once the object is gone; a
//! `generic-hmac` Notifier's receiver (a small HTTP server here) gets the
//! failure — retried after its first 503 — and the recovery, each with a
//! valid `X-Signature`, and both are Events on the source.

use crate::intake_common;
use crate::support;

use serde_json::Value;

use intake_common::{Repo, SYNC, create_source, korral, wait_applied};
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
    // `korral sync` on a waiting source is answered with the wait (not left until its timeout)
    let o = korral(&server, &["sync", "db", "--timeout", "60s"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("default/db: sync failed (DependencyNotReady): waiting for a dependency"),
        "{out}"
    );
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

/// One request the test's receiver got: its headers (lowercase names) and body.
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A notification receiver on 127.0.0.1: answers 503 to the first request
/// (so the sender must retry) and 200 after; every request is sent on the
/// channel.
fn receiver() -> (u16, std::sync::mpsc::Receiver<Received>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_lowercase(), v.trim().to_string()));
                }
            }
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let status = if n == 0 {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            if tx.send(Received { headers, body }).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

fn next(rx: &std::sync::mpsc::Receiver<Received>, what: &str) -> Received {
    rx.recv_timeout(SYNC)
        .unwrap_or_else(|_| panic!("no notification: {what}"))
}

fn verify_signature(key: &[u8], r: &Received) {
    let sig = r.header("x-signature").expect("an X-Signature header");
    let hex = sig.strip_prefix("sha256=").expect("sha256=<hex>");
    let tag: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    assert!(
        ring::hmac::verify(&key, &r.body, &tag).is_ok(),
        "the signature {sig} does not match the body"
    );
}

#[test]
fn a_notifier_gets_the_failure_and_the_recovery_signed_and_events_are_recorded() {
    let server = Server::start();
    let (port, rx) = receiver();
    server.apply(&format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: hook-key
stringData:
  token: s3cret-key
---
apiVersion: korral.dev/v1alpha1
kind: Notifier
metadata:
  name: ops
spec:
  type: generic-hmac
  address: http://127.0.0.1:{port}/hook
  secretRef: {{name: hook-key}}
  eventSources: [{{name: web}}]
"
    ));
    let repo = Repo::new();
    repo.write(
        "deploy/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndatta: {}\n",
    );
    let bad = repo.commit("broken");
    create_source(
        &server,
        &git_source("web", "default", &repo.url(), "deploy", ""),
    );

    // the failure: refused once with 503, then delivered again, signed
    let first = next(&rx, "the failure");
    let again = next(&rx, "the failure, retried");
    assert_eq!(first.body, again.body, "the retry resends the same event");
    verify_signature(b"s3cret-key", &again);
    let ev = again.json();
    assert_eq!(ev["severity"], "error", "{ev}");
    assert_eq!(ev["reason"], "SyncFailed", "{ev}");
    assert_eq!(ev["involvedObject"]["kind"], "GitSource");
    assert_eq!(ev["involvedObject"]["name"], "web");
    assert_eq!(ev["metadata"]["revision"], bad.as_str());
    assert!(
        ev["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cm.yaml"),
        "{ev}"
    );

    // the recovery
    repo.write("deploy/cm.yaml", &config_map("web", None));
    let good = repo.commit("fixed");
    let ok = next(&rx, "the recovery");
    verify_signature(b"s3cret-key", &ok);
    let ev = ok.json();
    assert_eq!(
        (ev["severity"].as_str(), ev["reason"].as_str()),
        (Some("info"), Some("Synced")),
        "{ev}"
    );
    assert_eq!(ev["metadata"]["revision"], good.as_str());
    wait_applied(&server, "web", &good);

    // the same as Events on the source
    let events = server.get_json(&[
        "events",
        "--field-selector",
        "involvedObject.name=web,involvedObject.kind=GitSource",
    ]);
    let reasons: Vec<(String, String)> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_string(),
                e["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for want in [("Warning", "SyncFailed"), ("Normal", "Synced")] {
        assert!(
            reasons
                .iter()
                .any(|(t, r)| (t.as_str(), r.as_str()) == want),
            "no {want:?} Event among {reasons:?}"
        );
    }
}
