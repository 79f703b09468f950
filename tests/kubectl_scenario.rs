//! The real `kubectl` against a fresh `korral server`: every everyday command,
//! each step asserting on kubectl's output and exit code.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Server, stderr, stdout, wait_for};

fn copy_demo(to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for f in ["configmap.yaml", "deployment.yaml", "service.yaml"] {
        std::fs::copy(support::root().join("fixtures/demo").join(f), to.join(f))
            .expect("copy demo");
    }
}

#[test]
fn apply_get_describe_and_output_formats() {
    let s = Server::start();
    let demo = s.dir.path().join("demo");
    copy_demo(&demo);
    let demo = demo.to_string_lossy().to_string();

    // create with client-side apply
    let out = s.ok(&["apply", "-f", &demo]);
    assert!(out.contains("configmap/hello-page created"), "{out}");
    assert!(out.contains("deployment.apps/hello created"), "{out}");
    assert!(out.contains("service/hello created"), "{out}");

    // re-apply unchanged: nothing to do
    let out = s.ok(&["apply", "-f", &demo]);
    assert!(out.contains("deployment.apps/hello unchanged"), "{out}");

    // edit the file, apply again: a strategic merge patch
    let dep = std::path::Path::new(&demo).join("deployment.yaml");
    let text = std::fs::read_to_string(&dep)
        .expect("read")
        .replace("replicas: 2", "replicas: 4");
    std::fs::write(&dep, text).expect("write");
    let out = s.ok(&["apply", "-f", &demo]);
    assert!(out.contains("deployment.apps/hello configured"), "{out}");
    assert_eq!(
        s.ok(&["get", "deploy", "hello", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );

    // server-side apply takes over, with conflicts reported then forced
    let o = s.kubectl(&["apply", "--server-side", "-f", &demo]);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    if !o.status.success() {
        assert!(text.contains("conflict"), "{text}");
        let out = s.ok(&["apply", "--server-side", "--force-conflicts", "-f", &demo]);
        assert!(out.contains("serverside-applied"), "{out}");
    }
    let managers = s.ok(&[
        "get",
        "deploy",
        "hello",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.contains("kubectl"), "{managers}");

    // output formats
    let wide = s.ok(&["get", "deploy", "-o", "wide"]);
    assert!(
        wide.contains("CONTAINERS") && wide.contains("busybox:1.36"),
        "{wide}"
    );
    let yaml = s.ok(&["get", "cm", "hello-page", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("index.html"),
        "{yaml}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "svc", "hello", "-o", "json"])).expect("json");
    assert_eq!(json["spec"]["ports"][0]["targetPort"], "http");
    assert!(
        json["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.")),
        "{json}"
    );
    assert_eq!(
        s.ok(&["get", "deploy", "-o", "name"]).trim(),
        "deployment.apps/hello"
    );
    let labelled = s.ok(&[
        "get",
        "all",
        "-l",
        "app.kubernetes.io/name=hello",
        "-o",
        "name",
    ]);
    assert!(
        labelled.contains("service/hello") && labelled.contains("deployment.apps/hello"),
        "{labelled}"
    );
    let by_field = s.ok(&[
        "get",
        "ns",
        "--field-selector",
        "metadata.name=kube-system",
        "-o",
        "name",
    ]);
    assert_eq!(by_field.trim(), "namespace/kube-system");
    let all_ns = s.ok(&["get", "svc", "-A"]);
    assert!(
        all_ns.contains("NAMESPACE") && all_ns.contains("kubernetes") && all_ns.contains("hello"),
        "{all_ns}"
    );

    // describe
    let d = s.ok(&["describe", "deploy", "hello"]);
    assert!(
        d.contains("Replicas:")
            && d.contains("RollingUpdateStrategy:  25% max unavailable, 25% max surge"),
        "{d}"
    );

    // discovery and schema
    let res = s.ok(&["api-resources"]);
    for row in ["deployments", "deploy", "gitsources", "leases"] {
        assert!(res.contains(row), "{row} missing in:\n{res}");
    }
    let explain = s.ok(&["explain", "deployment.spec.strategy"]);
    assert!(
        explain.contains("rollingUpdate") && explain.contains("KIND:       Deployment"),
        "{explain}"
    );
}

#[test]
fn label_annotate_scale_patch_edit_diff_delete() {
    let s = Server::start();
    s.ok(&["apply", "-f", "fixtures/demo"]);

    let out = s.ok(&["label", "deploy", "hello", "tier=web"]);
    assert!(out.contains("deployment.apps/hello labeled"), "{out}");
    let out = s.ok(&["annotate", "deploy", "hello", "owner=team-a"]);
    assert!(out.contains("annotated"), "{out}");
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "hello",
            "-o",
            "jsonpath={.metadata.labels.tier}/{.metadata.annotations.owner}"
        ]),
        "web/team-a"
    );

    let out = s.ok(&["scale", "deploy", "hello", "--replicas=5"]);
    assert!(out.contains("scaled"), "{out}");
    assert_eq!(
        s.ok(&["get", "deploy", "hello", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );

    // the three patch types
    s.ok(&[
        "patch",
        "deploy",
        "hello",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"busybox:1.37"}]}}}}"#,
    ]);
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "hello",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "busybox:1.37"
    );
    let cmd = s.ok(&[
        "get",
        "deploy",
        "hello",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].command[0]}",
    ]);
    assert_eq!(
        cmd, "busybox",
        "a strategic merge keeps the container's other fields"
    );
    s.ok(&[
        "patch",
        "deploy",
        "hello",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"minReadySeconds":3}}"#,
    ]);
    s.ok(&[
        "patch",
        "deploy",
        "hello",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
    ]);
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "hello",
            "-o",
            "jsonpath={.spec.minReadySeconds}/{.spec.replicas}"
        ]),
        "3/2"
    );
    let bad = s.kubectl(&[
        "patch",
        "deploy",
        "hello",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":"many"}}"#,
    ]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("spec.replicas"), "{}", stderr(&bad));

    // edit with an editor script
    let editor = s.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/minReadySeconds: 3/minReadySeconds: 7/' \"$1\"\n",
    )
    .expect("editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let o = s.kubectl_with(
        &["edit", "deploy", "hello"],
        &[("EDITOR", editor.to_str().expect("path"))],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("deployment.apps/hello edited"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "hello",
            "-o",
            "jsonpath={.spec.minReadySeconds}"
        ]),
        "7"
    );

    // diff: no change exits 0, a change exits 1
    let cm = s.dir.path().join("cm.yaml");
    std::fs::write(
        &cm,
        std::fs::read_to_string(support::root().join("fixtures/demo/configmap.yaml"))
            .expect("read"),
    )
    .expect("write");
    let o = s.kubectl(&["diff", "-f", cm.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    std::fs::write(
        &cm,
        std::fs::read_to_string(&cm)
            .expect("read")
            .replace("hello from korral", "hello again"),
    )
    .expect("write");
    let o = s.kubectl(&["diff", "-f", cm.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("hello again"), "{}", stdout(&o));

    // delete with orphaning: the garbage collector (running in the server)
    // releases dependents and removes the orphan finalizer, then it is gone
    let out = s.ok(&[
        "delete",
        "cm",
        "hello-page",
        "--cascade=orphan",
        "--wait=false",
    ]);
    assert!(out.contains("configmap \"hello-page\" deleted"), "{out}");
    wait_for(
        "the orphan-deleted configmap to go",
        Duration::from_secs(30),
        || s.kubectl(&["get", "cm", "hello-page"]).status.code() == Some(1),
    );
    let out = s.ok(&["delete", "-f", "fixtures/demo/service.yaml"]);
    assert!(out.contains("service \"hello\" deleted"), "{out}");
    let o = s.kubectl(&["get", "svc", "hello"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("services \"hello\" not found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn watch_prints_changes_made_by_another_client() {
    let s = Server::start();
    let mut watcher = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args([
            "get",
            "cm",
            "-w",
            "--output-watch-events",
            "--request-timeout=60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let out = watcher.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines: Vec<String> = Vec::new();
    let collect = |lines: &mut Vec<String>| {
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
    };
    // the watch is open once the server counts it
    wait_for("the watch to open", Duration::from_secs(20), || {
        let m = s.kubectl(&["get", "--raw", "/metrics"]);
        stdout(&m)
            .lines()
            .any(|l| l.starts_with("apiserver_longrunning_watches ") && !l.ends_with(" 0"))
    });
    s.ok(&["create", "configmap", "watched", "--from-literal=a=1"]);
    s.ok(&[
        "patch",
        "cm",
        "watched",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    s.ok(&["delete", "cm", "watched"]);
    wait_for(
        "ADDED, MODIFIED and DELETED of the configmap",
        Duration::from_secs(20),
        || {
            collect(&mut lines);
            let events: Vec<&str> = lines
                .iter()
                .filter(|l| l.contains("watched"))
                .map(|l| l.split_whitespace().next().unwrap_or(""))
                .collect();
            events == ["ADDED", "MODIFIED", "DELETED"]
        },
    );
    let _ = watcher.kill();
    let _ = watcher.wait();
}

#[test]
fn auth_can_i_answers_per_identity() {
    let s = Server::start();
    assert_eq!(
        s.ok(&["auth", "can-i", "create", "deployments"]).trim(),
        "yes"
    );
    let viewer = s.kubeconfig_for("viewer");
    let o = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&viewer)
        .args(["auth", "can-i", "create", "deployments"])
        .output()
        .expect("kubectl");
    assert_eq!(stdout(&o).trim(), "no", "{}", stderr(&o));
    let o = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&viewer)
        .args(["auth", "can-i", "list", "pods"])
        .output()
        .expect("kubectl");
    assert_eq!(stdout(&o).trim(), "yes", "{}", stderr(&o));
}

#[test]
fn every_installed_kubectl_version_works() {
    let s = Server::start();
    let real = std::fs::canonicalize(which_kubectl()).expect("kubectl on PATH");
    let dir = real.parent().expect("kubectl's directory").to_path_buf();
    let mut versions: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .expect("read kubectl's directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kubectl.1."))
        })
        .collect();
    versions.sort();
    assert!(
        versions.len() >= 3,
        "expected versioned kubectl copies beside {}: {versions:?}",
        real.display()
    );
    for k in versions {
        let run = |args: &[&str]| {
            Command::new(&k)
                .arg("--kubeconfig")
                .arg(&s.kubeconfig)
                .args(args)
                .current_dir(support::root())
                .output()
                .expect("kubectl")
        };
        let o = run(&["get", "ns", "-o", "name"]);
        assert!(
            stdout(&o).contains("namespace/kube-system"),
            "{}: {}{}",
            k.display(),
            stdout(&o),
            stderr(&o)
        );
        let o = run(&["apply", "-f", "fixtures/demo", "--dry-run=server"]);
        assert!(
            o.status.success()
                && stdout(&o).contains("deployment.apps/hello created (server dry run)"),
            "{}: {}{}",
            k.display(),
            stdout(&o),
            stderr(&o)
        );
    }
}

fn which_kubectl() -> std::path::PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kubectl"))
        .find(|p| p.exists())
        .expect("kubectl on PATH")
}
