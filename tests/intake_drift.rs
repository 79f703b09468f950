//! Drift against a real server: a freshly synced demo shows none (defaults,
//! status and server-set fields are not drift); `kubectl scale` and
//! `kubectl edit` on owned objects make `korral drift` exit 1 naming the
//! field and the manager; the DriftReport and the `korral_drift_objects`
//! metric follow; Secret values never show; with selfHeal the changes are
//! reverted, including fields others added.

use crate::intake_common;
use crate::support;

use serde_json::Value;

use intake_common::{SYNC, get, korral, source};
use support::{Server, stderr, stdout, wait_for};

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: hunter2-initial\n";

fn setup(server: &Server) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for f in ["configmap.yaml", "deployment.yaml", "service.yaml"] {
        std::fs::copy(
            support::root().join("fixtures/demo").join(f),
            dir.path().join(f),
        )
        .expect("copy");
    }
    std::fs::write(dir.path().join("secret.yaml"), SECRET).expect("write");
    let path = dir.path().to_str().expect("utf-8").to_string();
    let o = korral(
        server,
        &["sync", "demo", "--path", &path, "--interval", "1h"],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    dir
}

fn drift(server: &Server) -> (Option<i32>, String) {
    let o = korral(server, &["drift", "demo"]);
    (o.status.code(), format!("{}{}", stdout(&o), stderr(&o)))
}

fn metric(server: &Server) -> Option<i64> {
    let token = server.token("viewer");
    let (code, body) = server.curl("GET", "/metrics", Some(&token), "text/plain", None);
    if code != 200 {
        return None;
    }
    body.lines()
        .find(|l| l.starts_with("korral_drift_objects{source=\"default/demo\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn drift_names_fields_and_managers_and_self_heal_reverts() {
    let server = Server::start();
    let _dir = setup(&server);

    // no false positives right after a sync
    let (code, out) = drift(&server);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("no drift: 4 objects"), "{out}");
    wait_for("the drift metric at 0", SYNC, || metric(&server) == Some(0));

    // kubectl scale
    assert!(
        server
            .kubectl(&["scale", "deployment", "hello", "--replicas=5"])
            .status
            .success()
    );
    let (code, out) = drift(&server);
    assert_eq!(code, Some(1), "{out}");
    let line = out.lines().next().unwrap_or("");
    assert!(
        line.starts_with("~ Deployment/hello spec.replicas: 2 → 5 (by kubectl")
            && line.ends_with("ago)"),
        "{out}"
    );

    // kubectl edit: a changed image and an added env var
    let o = server.kubectl_with(
        &["edit", "deployment", "hello"],
        &[(
            "KUBE_EDITOR",
            "sed -i -e 's/image: busybox:1.36/image: busybox:1.37/' -e 's/^        env:$/        env:\\n        - name: DEBUG\\n          value: \"1\"/'",
        )],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        get(&server, "deployment", "hello")["spec"]["template"]["spec"]["containers"][0]["env"][0]
            ["name"],
        "DEBUG"
    );
    let (code, out) = drift(&server);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("spec.template.spec.containers[name=web].image: busybox:1.36 → busybox:1.37 (by kubectl-edit,"),
        "{out}"
    );
    assert!(
        out.contains(
            "spec.template.spec.containers[name=web].env[name=DEBUG]: (absent) → {\"name\":\"DEBUG\",\"value\":\"1\"} (by kubectl-edit,"
        ),
        "{out}"
    );

    // a Secret changed by hand: reported, never shown
    let o = server.kubectl(&[
        "patch",
        "secret",
        "creds",
        "--type",
        "merge",
        "-p",
        r#"{"stringData":{"password":"hunter2-changed"}}"#,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (code, out) = drift(&server);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("~ Secret/creds"), "{out}");
    assert!(out.contains("<masked>"), "{out}");
    let o = korral(&server, &["drift", "demo", "-o", "json"]);
    let json_out = stdout(&o);
    for secret in ["hunter2", "aHVudGVyMi", "initial", "changed"] {
        assert!(
            !out.contains(secret) && !json_out.contains(secret),
            "{secret} leaked:\n{out}\n{json_out}"
        );
    }
    let v: Value = serde_json::from_str(&json_out).expect("json");
    assert_eq!(v["modified"].as_array().map(Vec::len), Some(2), "{v:#}");

    // the report object and the metric follow
    let report = get(&server, "driftreport", "demo");
    assert_eq!(report["status"]["drifted"], true);
    assert!(!report.to_string().contains("hunter2"));
    wait_for("the drift metric at 2", SYNC, || metric(&server) == Some(2));

    // an added label on an owned object
    assert!(
        server
            .kubectl(&["label", "configmap", "hello-page", "team=blue"])
            .status
            .success()
    );
    let (_, out) = drift(&server);
    assert!(
        out.contains(
            "~ ConfigMap/hello-page metadata.labels.team: (absent) → blue (by kubectl-label,"
        ),
        "{out}"
    );

    // selfHeal reverts everything
    let o = server.kubectl(&[
        "patch",
        "gitsource",
        "demo",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"selfHeal":true}}"#,
    ]);
    assert!(o.status.success());
    wait_for("the drift to be healed", SYNC, || {
        drift(&server).0 == Some(0)
    });
    let d = get(&server, "deployment", "hello");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );
    let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env.as_array().map(Vec::len), Some(1), "{d:#}");
    assert_eq!(env[0]["name"], "POD_IP");
    assert!(get(&server, "configmap", "hello-page")["metadata"]["labels"]["team"].is_null());
    wait_for("the drift metric at 0 again", SYNC, || {
        metric(&server) == Some(0)
    });

    // and keeps doing it, at once, without waiting for the interval (1h)
    assert!(
        server
            .kubectl(&["scale", "deployment", "hello", "--replicas=7"])
            .status
            .success()
    );
    wait_for("the scale to be reverted", SYNC, || {
        get(&server, "deployment", "hello")["spec"]["replicas"] == 2
    });
    let o = server.kubectl(&["get", "events", "-o", "json"]);
    let events: Value = serde_json::from_slice(&o.stdout).expect("events");
    assert!(
        events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["reason"] == "SelfHealed"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("spec.replicas"))),
        "a SelfHealed event names the field"
    );
    let s = source(&server, "demo");
    assert_eq!(s["status"]["inventory"].as_array().map(Vec::len), Some(4));
}
