//! GitOps intake from real Git repositories (a bare repository and a working
//! clone made with the git CLI, fetched over file://) against a real server
//! with two simulated nodes (`korral node --simulate`): the demo app applied,
//! scheduled and running, an image change
//! rolled out, a deleted file pruned, an invalid commit applying nothing
//! (status names file, line and field; the cluster stays at the previous
//! commit), the fix recovering; prune off leaving objects (reported as
//! extra); the push webhook; `korral sync` and `korral sources`.

use crate::intake_common;
use crate::support;

use std::process::Command;

use serde_json::Value;

use intake_common::{
    Repo, SYNC, condition, create_source, get, korral, ready_pod_images, source, wait_applied,
};
use support::simulated_nodes::SimulatedNodes;
use support::{Server, stdout, wait_for};

fn source_yaml(name: &str, url: &str, path: &str, interval: &str, prune: bool) -> String {
    format!(
        "apiVersion: korral.dev/v1alpha1\nkind: GitSource\nmetadata:\n  name: {name}\nspec:\n  url: {url}\n  ref: {{branch: main}}\n  path: {path}\n  interval: {interval}\n  prune: {prune}\n"
    )
}

#[test]
fn commits_roll_out_prune_and_an_invalid_commit_applies_nothing() {
    let server = Server::start();
    let _nodes = SimulatedNodes::start(&server, "sim", 2);
    let repo = Repo::new();
    repo.add_demo("deploy");
    repo.write("README.md", "not a manifest\n");
    let c1 = repo.commit("the demo app");
    create_source(
        &server,
        &source_yaml("demo", &repo.url(), "deploy", "1s", true),
    );

    // 1: applied, and the pods run
    let s = wait_applied(&server, "demo", &c1);
    assert_eq!(s["status"]["lastFetchedRevision"], c1.as_str());
    assert_eq!(s["status"]["inventory"].as_array().map(Vec::len), Some(3));
    wait_for("two demo pods running", SYNC, || {
        ready_pod_images(&server).len() == 2
    });
    let cm = get(&server, "configmap", "hello-page");
    assert_eq!(
        cm["metadata"]["labels"]["korral.dev/source"],
        "default.demo"
    );
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"korral-intake"), "{managers:?}");

    // 2: a new image rolls out
    let d = repo
        .read("deploy/deployment.yaml")
        .replace("busybox:1.36", "busybox:1.37");
    repo.write("deploy/deployment.yaml", &d);
    let c2 = repo.commit("new image");
    wait_applied(&server, "demo", &c2);
    wait_for("the rollout to busybox:1.37", SYNC, || {
        let images = ready_pod_images(&server);
        images.len() == 2 && images.iter().all(|i| i == "busybox:1.37")
    });

    // 3: the Service's file is deleted: pruned
    assert!(!get(&server, "service", "hello").is_null());
    repo.remove("deploy/service.yaml");
    let c3 = repo.commit("no service");
    let s = wait_applied(&server, "demo", &c3);
    assert_eq!(s["status"]["pruned"], 1);
    wait_for("the Service to be pruned", SYNC, || {
        get(&server, "service", "hello").is_null()
    });
    assert_eq!(s["status"]["inventory"].as_array().map(Vec::len), Some(2));

    // 4: an invalid commit (with a valid new object beside it): nothing applied
    let bad = repo
        .read("deploy/deployment.yaml")
        .replace("replicas: 2", "replicas: 3")
        .replace("containerPort: 8080", "containerPort: 99999");
    repo.write("deploy/deployment.yaml", &bad);
    repo.write(
        "deploy/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: b\n",
    );
    let c4 = repo.commit("broken port");
    let mut s = Value::Null;
    wait_for("the invalid commit to be reported", SYNC, || {
        s = source(&server, "demo");
        s["status"]["lastFetchedRevision"] == c4.as_str()
            && condition(&s, "Ready").as_deref() == Some("False")
    });
    assert_eq!(s["status"]["lastAppliedRevision"], c3.as_str(), "{s:#}");
    assert_eq!(condition(&s, "Stalled").as_deref(), Some("True"));
    let errors = s["status"]["lastError"]["errors"]
        .as_array()
        .expect("errors");
    assert_eq!(s["status"]["lastError"]["revision"], c4.as_str());
    let line = bad
        .lines()
        .position(|l| l.contains("99999"))
        .expect("the bad line")
        + 1;
    let e = &errors[0];
    assert_eq!(e["file"], "deploy/deployment.yaml", "{errors:#?}");
    assert_eq!(e["line"], line as i64, "{errors:#?}");
    assert_eq!(e["document"], 0);
    assert_eq!(
        e["path"], "spec.template.spec.containers[0].ports[0].containerPort",
        "{errors:#?}"
    );
    let message = s["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or("");
    assert!(
        message.contains(&format!("deploy/deployment.yaml:{line}")),
        "{message}"
    );
    assert!(
        get(&server, "configmap", "extra").is_null(),
        "nothing of the bad commit is applied"
    );
    assert_eq!(get(&server, "deployment", "hello")["spec"]["replicas"], 2);
    let o = korral(&server, &["sync", "demo"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(&format!("deploy/deployment.yaml:{line}:")),
        "{}",
        stdout(&o)
    );

    // 5: the fix recovers
    repo.write("deploy/deployment.yaml", &bad.replace("99999", "8080"));
    let c5 = repo.commit("fix the port");
    let s = wait_applied(&server, "demo", &c5);
    assert!(s["status"]["lastError"].is_null(), "{s:#}");
    assert_eq!(condition(&s, "Stalled").as_deref(), Some("False"));
    assert_eq!(get(&server, "configmap", "extra")["data"]["a"], "b");
    wait_for("three replicas", SYNC, || {
        get(&server, "deployment", "hello")["spec"]["replicas"] == 3
    });

    // the command line agrees
    let o = korral(&server, &["sync", "demo"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("0 applied, 3 unchanged"),
        "{}",
        stdout(&o)
    );
    let o = korral(&server, &["sources", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["sources"][0]["lastAppliedRevision"], c5.as_str());
    assert_eq!(v["sources"][0]["ready"], "True");
    let o = korral(&server, &["drift", "demo"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a fresh sync shows no drift:\n{}",
        stdout(&o)
    );
}

#[test]
fn without_prune_objects_stay_and_show_as_extra_and_pushes_sync_at_once() {
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_with(&["--intake-webhook-listen", &listen]);
    // the demo pods become ready: the source is Ready only when its objects are healthy
    let _kubelet = support::fake_kubelet::FakeKubelet::start(&server.kubeconfig);
    let repo = Repo::new();
    repo.add_demo(".");
    let c1 = repo.commit("demo");
    // an hour between polls: only the webhook makes later commits show up quickly
    create_source(
        &server,
        &source_yaml("demo", &repo.url(), "\"\"", "1h", false),
    );
    wait_applied(&server, "demo", &c1);

    repo.remove("service.yaml");
    let c2 = repo.commit("no service");
    let payload = format!(
        r#"{{"ref":"refs/heads/main","repository":{{"clone_url":"{}","html_url":"{}"}}}}"#,
        repo.url(),
        repo.url()
    );
    let o = Command::new("curl")
        .args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["--data-binary", &payload])
        .arg(format!("http://{listen}/hooks/git"))
        .output()
        .expect("curl");
    let text = stdout(&o);
    assert!(text.ends_with("202"), "{text}");
    assert!(text.contains("default/demo"), "{text}");
    let s = wait_applied(&server, "demo", &c2);
    assert_eq!(s["status"]["pruned"], 0);
    assert!(
        !get(&server, "service", "hello").is_null(),
        "prune is off: the Service stays"
    );

    let o = korral(&server, &["drift", "demo"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("- Service/hello: owned by this source but no longer declared"),
        "{}",
        stdout(&o)
    );
    let o = korral(&server, &["drift", "demo", "-o", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["extra"][0]["kind"], "Service");
    assert_eq!(v["drifted"], true);

    // turning prune on removes it
    let o = server.kubectl(&[
        "patch",
        "gitsource",
        "demo",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"prune":true}}"#,
    ]);
    assert!(o.status.success());
    wait_for("the Service to be pruned", SYNC, || {
        get(&server, "service", "hello").is_null()
    });
    let o = korral(&server, &["drift", "demo"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}
