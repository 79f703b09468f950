//! Folder sources against a real server: an editor's save-via-rename is
//! picked up within a couple of seconds (the poll interval is an hour);
//! `korral diff` shows what a sync would change before it happens; an empty
//! folder is refused rather than pruning everything.

use crate::intake_common;
use crate::support;

use std::time::{Duration, Instant};

use intake_common::{SYNC, condition, create_source, get, korral, source};
use support::{Server, root, stdout, wait_for};

fn copy_demo(dir: &std::path::Path) {
    for f in ["configmap.yaml", "deployment.yaml", "service.yaml"] {
        std::fs::copy(root().join("fixtures/demo").join(f), dir.join(f)).expect("copy");
    }
}

#[test]
fn a_folder_source_follows_saves_and_diff_previews_changes() {
    let server = Server::start();
    // the demo pods become ready: the source is Ready only when its objects are healthy
    let _kubelet = support::fake_kubelet::FakeKubelet::start(&server.kubeconfig);
    let dir = tempfile::tempdir().expect("temp dir");
    copy_demo(dir.path());
    let path = dir.path().to_str().expect("utf-8");
    create_source(
        &server,
        &format!(
            "apiVersion: korral.dev/v1alpha1\nkind: GitSource\nmetadata:\n  name: site\nspec:\n  path: {path}\n  interval: 1h\n  prune: true\n"
        ),
    );
    wait_for("the folder to be synced", SYNC, || {
        condition(&source(&server, "site"), "Ready").as_deref() == Some("True")
    });
    let first = source(&server, "site")["status"]["lastAppliedRevision"]
        .as_str()
        .expect("revision")
        .to_string();
    assert!(first.starts_with("sha256:"), "{first}");

    // diff before saving: the same folder changes nothing; an edited copy shows the field
    let o = korral(&server, &["diff", path, "--source", "site"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let preview = tempfile::tempdir().expect("temp dir");
    copy_demo(preview.path());
    let cm = std::fs::read_to_string(preview.path().join("configmap.yaml"))
        .expect("read")
        .replace("hello from korral", "hello again");
    std::fs::write(preview.path().join("configmap.yaml"), &cm).expect("write");
    std::fs::remove_file(preview.path().join("service.yaml")).expect("remove");
    let o = korral(
        &server,
        &[
            "diff",
            preview.path().to_str().expect("utf-8"),
            "--source",
            "site",
        ],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("~ ConfigMap default/hello-page:"), "{out}");
    assert!(out.contains("data[index.html]:"), "{out}");
    assert!(
        out.contains("- Service default/hello: would be pruned"),
        "{out}"
    );
    assert!(out.contains("1 unchanged"), "{out}");
    let o = korral(
        &server,
        &[
            "diff",
            preview.path().to_str().expect("utf-8"),
            "--source",
            "site",
            "-o",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["changes"][0]["action"], "update");
    assert!(
        get(&server, "configmap", "hello-page")["data"]["index.html"]
            .as_str()
            .is_some_and(|t| t.contains("hello from korral")),
        "diff changes nothing"
    );

    // an editor's save: write a temporary file, rename it over the original
    let tmp = dir.path().join(".configmap.yaml.swp");
    std::fs::write(&tmp, &cm).expect("write");
    let saved = Instant::now();
    std::fs::rename(&tmp, dir.path().join("configmap.yaml")).expect("rename");
    wait_for(
        "the saved page to be applied",
        Duration::from_secs(5),
        || {
            get(&server, "configmap", "hello-page")["data"]["index.html"]
                .as_str()
                .is_some_and(|t| t.contains("hello again"))
        },
    );
    let took = saved.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_ne!(
        source(&server, "site")["status"]["lastAppliedRevision"],
        first.as_str()
    );

    // an invalid save: nothing applied, the error located
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n",
    )
    .expect("write");
    wait_for("the invalid file to be reported", SYNC, || {
        let s = source(&server, "site");
        s["status"]["lastError"]["errors"][0]["file"] == "bad.yaml"
            && s["status"]["lastError"]["errors"][0]["line"] == 4
            && s["status"]["lastError"]["errors"][0]["path"] == "metadata.name"
    });
    std::fs::remove_file(dir.path().join("bad.yaml")).expect("remove");
    wait_for("recovery", SYNC, || {
        condition(&source(&server, "site"), "Ready").as_deref() == Some("True")
    });

    // emptied: refused, nothing pruned
    for f in ["configmap.yaml", "deployment.yaml", "service.yaml"] {
        std::fs::remove_file(dir.path().join(f)).expect("remove");
    }
    wait_for("the empty folder to be refused", SYNC, || {
        condition(&source(&server, "site"), "Ready").as_deref() == Some("False")
    });
    let s = source(&server, "site");
    assert!(
        s["status"]["lastError"]["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no manifest files")),
        "{s:#}"
    );
    assert!(
        !get(&server, "deployment", "hello").is_null(),
        "nothing pruned"
    );
}
