//! GitOps intake waits for health (issue 19): against a real server with
//! its controllers and the fake kubelet (pods Ready, except images with
//! "bad"; "bad-unpullable" ones report `ImagePullBackOff`), a source whose
//! Deployment never starts is Progressing, then HealthCheckFailed naming
//! `Deployment/web` and the reason, `korral sync --wait` exits 1 and
//! `korral sources` shows it Degraded; the fixed commit makes it Ready,
//! Healthy, and `sync --wait` exits 0. Sync waves: a wave-1 object is not
//! applied while wave 0's Deployment is unhealthy, and is applied after
//! wave 0's pods are ready (resource versions prove the order). Hooks: a
//! failing PreSync Job fails the sync and nothing else is applied; the
//! next revision's Job replaces it and, complete, lets the sync through.

use crate::intake_common;
use crate::support;

use serde_json::Value;

use intake_common::{Repo, SYNC, condition, create_source, get, korral, source, wait_applied};
use support::fake_kubelet::FakeKubelet;
use support::{Server, stderr, stdout, wait_for};

const BAD_IMAGE: &str = "registry.invalid/bad-unpullable:1";

fn deployment(name: &str, image: &str, wave: Option<i64>) -> String {
    let annotations = wave
        .map(|w| format!("  annotations:\n    korral.dev/sync-wave: \"{w}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n{annotations}spec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: c\n        image: {image}\n"
    )
}

fn source_yaml(name: &str, url: &str, timeout: &str) -> String {
    format!(
        "apiVersion: korral.dev/v1alpha1\nkind: GitSource\nmetadata:\n  name: {name}\nspec:\n  url: {url}\n  ref: {{branch: main}}\n  interval: 1s\n  timeout: {timeout}\n  prune: true\n"
    )
}

/// The `type` condition's field `field` (`reason`, `message`).
fn condition_field(src: &Value, type_: &str, field: &str) -> String {
    src.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .and_then(|c| c[field].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Waits until the source reports `revision` failed its health check;
/// returns it and the `Ready` message.
fn wait_health_check_failed(server: &Server, name: &str, revision: &str) -> (Value, String) {
    let mut s = Value::Null;
    wait_for(&format!("{name} to fail its health check"), SYNC, || {
        s = source(server, name);
        s["status"]["lastFetchedRevision"] == revision
            && condition(&s, "Ready").as_deref() == Some("False")
    });
    assert_eq!(
        condition_field(&s, "Ready", "reason"),
        "HealthCheckFailed",
        "{s:#}"
    );
    let message = condition_field(&s, "Ready", "message");
    (s, message)
}

/// The HEALTH column of `korral sources` for `name`, and the exit code.
fn health_column(server: &Server, name: &str) -> (String, Option<i32>) {
    let o = korral(server, &["sources"]);
    let text = stdout(&o);
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let at = header
        .iter()
        .position(|h| *h == "HEALTH")
        .unwrap_or_else(|| panic!("no HEALTH column:\n{text}"));
    let row = lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|r| r.get(1) == Some(&name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{text}"));
    (row[at].to_string(), o.status.code())
}

#[test]
fn an_unhealthy_deployment_stalls_the_source_until_a_fix_makes_it_ready() {
    let server = Server::start();
    let _kubelet = FakeKubelet::start(&server.kubeconfig);
    let repo = Repo::new();
    repo.write("web.yaml", &deployment("web", BAD_IMAGE, None));
    repo.write(
        "config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  a: b\n",
    );
    let c1 = repo.commit("an image that never starts");
    create_source(&server, &source_yaml("app", &repo.url(), "6s"));

    // applied, then Progressing while the pods cannot pull
    let mut s = Value::Null;
    wait_for("the source to wait for Deployment/web", SYNC, || {
        s = source(&server, "app");
        condition(&s, "Ready").as_deref() == Some("Unknown")
            && condition_field(&s, "Ready", "message")
                .contains("Deployment/web: 0/2 available: ImagePullBackOff")
    });
    assert_eq!(s["status"]["lastAppliedRevision"], c1.as_str(), "{s:#}");
    assert_eq!(condition_field(&s, "Ready", "reason"), "Progressing");
    assert_eq!(condition(&s, "Healthy").as_deref(), Some("Unknown"));
    assert!(
        !get(&server, "configmap", "web-config").is_null(),
        "the rest is applied"
    );

    // the timeout passes: HealthCheckFailed, Stalled, naming the Deployment and why
    let (s, message) = wait_health_check_failed(&server, "app", &c1);
    assert_eq!(condition(&s, "Stalled").as_deref(), Some("True"));
    assert_eq!(condition(&s, "Healthy").as_deref(), Some("False"));
    assert!(
        message.contains("Deployment/web: 0/2 available: ImagePullBackOff"),
        "{message}"
    );
    assert!(!message.contains("ConfigMap"), "{message}");
    assert_eq!(health_column(&server, "app"), ("Degraded".into(), Some(1)));

    // sync --wait syncs again and waits out the timeout: still not healthy, exit 1
    let o = korral(&server, &["sync", "app", "--wait", "--timeout", "60s"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("Deployment/web: 0/2 available: ImagePullBackOff"),
        "{}",
        stdout(&o)
    );
    // without --wait the sync itself succeeded (it applied everything)
    let o = korral(&server, &["sync", "app"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    // the fix: Ready and Healthy, and sync --wait says so
    repo.write("web.yaml", &deployment("web", "busybox:1.36", None));
    let c2 = repo.commit("an image that starts");
    let o = korral(&server, &["sync", "app", "--wait", "--timeout", "60s"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let s = wait_applied(&server, "app", &c2);
    assert_eq!(condition(&s, "Healthy").as_deref(), Some("True"), "{s:#}");
    assert_eq!(condition(&s, "Stalled").as_deref(), Some("False"));
    let d = get(&server, "deployment", "web");
    assert_eq!(d["status"]["availableReplicas"], 2, "{d:#}");
    assert_eq!(health_column(&server, "app"), ("Healthy".into(), Some(0)));
}

/// The resource versions of the ready pods labelled `app=NAME`.
fn ready_pod_versions(server: &Server, name: &str) -> Vec<u64> {
    let o = server.kubectl(&["get", "pods", "-l", &format!("app={name}"), "-o", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .filter_map(|p| p["metadata"]["resourceVersion"].as_str()?.parse().ok())
        .collect()
}

#[test]
fn a_later_wave_waits_for_the_earlier_wave_to_be_healthy() {
    let server = Server::start();
    let _kubelet = FakeKubelet::start(&server.kubeconfig);
    let repo = Repo::new();
    repo.write("first.yaml", &deployment("first", BAD_IMAGE, Some(0)));
    // Argo CD's annotation orders waves too
    repo.write(
        "second.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: second\n  annotations:\n    argocd.argoproj.io/sync-wave: \"1\"\ndata:\n  a: b\n",
    );
    let c1 = repo.commit("wave 0 never becomes healthy");
    create_source(&server, &source_yaml("waves", &repo.url(), "4s"));

    // wave 0 fails its health check: wave 1 is never applied
    let (s, message) = wait_health_check_failed(&server, "waves", &c1);
    assert!(message.contains("sync wave 0"), "{message}");
    assert!(
        message.contains("Deployment/first: 0/2 available: ImagePullBackOff"),
        "{message}"
    );
    assert!(s["status"]["lastAppliedRevision"].is_null(), "{s:#}");
    assert!(!get(&server, "deployment", "first").is_null());
    assert!(get(&server, "configmap", "second").is_null());

    // fixed: wave 1 applied, after wave 0's pods were ready
    repo.write("first.yaml", &deployment("first", "busybox:1.36", Some(0)));
    let c2 = repo.commit("wave 0 starts");
    let s = wait_applied(&server, "waves", &c2);
    assert_eq!(condition(&s, "Healthy").as_deref(), Some("True"), "{s:#}");
    let second = get(&server, "configmap", "second");
    let second_version: u64 = second["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("the ConfigMap's resourceVersion");
    let pods = ready_pod_versions(&server, "first");
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(
        pods.iter().all(|p| *p < second_version),
        "wave 1 (ConfigMap at {second_version}) was written before wave 0's pods were ready ({pods:?})"
    );
}

fn hook_job(exit_code: i32) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    korral.dev/hook: PreSync\nspec:\n  backoffLimit: 0\n  template:\n    metadata:\n      annotations:\n        fake-kubelet.korral.dev/exit-code: \"{exit_code}\"\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: busybox:1.36\n"
    )
}

#[test]
fn a_failing_presync_hook_blocks_the_sync() {
    let server = Server::start();
    let _kubelet = FakeKubelet::start(&server.kubeconfig);
    let repo = Repo::new();
    repo.write("hook.yaml", &hook_job(1));
    repo.write(
        "app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: b\n",
    );
    let c1 = repo.commit("a migration that fails");
    create_source(&server, &source_yaml("hooked", &repo.url(), "30s"));

    // the hook Job runs and fails: nothing else is applied
    let (_, message) = wait_health_check_failed(&server, "hooked", &c1);
    assert!(
        message.contains("PreSync hook") && message.contains("Job/migrate"),
        "{message}"
    );
    assert!(get(&server, "configmap", "app").is_null());
    let job = get(&server, "job", "migrate");
    assert_eq!(
        job["metadata"]["annotations"]["korral.dev/hook-revision"],
        c1.as_str()
    );
    assert_eq!(job["status"]["failed"], 1, "{job:#}");

    // a migration that succeeds: a new Job for the new revision, then the rest
    repo.write("hook.yaml", &hook_job(0));
    let c2 = repo.commit("a migration that works");
    let s = wait_applied(&server, "hooked", &c2);
    assert!(!get(&server, "configmap", "app").is_null());
    let job = get(&server, "job", "migrate");
    assert_eq!(
        job["metadata"]["annotations"]["korral.dev/hook-revision"],
        c2.as_str()
    );
    assert_eq!(job["status"]["succeeded"], 1, "{job:#}");
    let inventory = s["status"]["inventory"].as_array().expect("inventory");
    assert_eq!(
        inventory.len(),
        1,
        "hooks are not inventoried: {inventory:?}"
    );
    assert_eq!(inventory[0]["kind"], "ConfigMap");
}
