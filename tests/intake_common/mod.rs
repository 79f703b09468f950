//! Helpers for the intake end-to-end tests: real Git repositories made with
//! the git CLI (a bare repository and a working clone pushing to it), the
//! `korral` intake commands, and waiting on a GitSource's status.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Server, korral_bin, root, stderr, stdout, wait_for};

/// How long a sync may take in these tests.
pub const SYNC: Duration = Duration::from_secs(30);

/// Runs git in `dir` and returns stdout; panics with git's output on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=korral-test",
            "-c",
            "user.email=test@korral.invalid",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(
        o.status.success(),
        "git {} failed:\n{}{}",
        args.join(" "),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o).trim().to_string()
}

/// A bare repository and a working clone that pushes to it.
pub struct Repo {
    /// Holds both.
    pub dir: tempfile::TempDir,
    /// The bare repository (what sources fetch).
    pub bare: PathBuf,
    /// The working clone.
    pub work: PathBuf,
}

impl Repo {
    /// An empty repository with branch `main`.
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().expect("temp dir");
        let bare = dir.path().join("app.git");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&bare).expect("mkdir");
        git(&bare, &["init", "-q", "--bare"]);
        git(
            dir.path(),
            &["clone", "-q", bare.to_str().expect("utf-8"), "work"],
        );
        git(&work, &["checkout", "-q", "-b", "main"]);
        Repo { dir, bare, work }
    }

    /// `file://` URL of the bare repository.
    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Writes a file in the working clone.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.work.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    /// Copies the demo app's manifests into `sub` of the working clone.
    pub fn add_demo(&self, sub: &str) {
        for f in ["configmap.yaml", "deployment.yaml", "service.yaml"] {
            let text =
                std::fs::read_to_string(root().join("fixtures/demo").join(f)).expect("fixture");
            self.write(&format!("{sub}/{f}"), &text);
        }
    }

    /// Reads a file of the working clone.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.work.join(rel)).expect("read")
    }

    /// Removes a file from the working clone.
    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.work.join(rel)).expect("remove");
    }

    /// Commits everything, pushes, and returns the commit SHA.
    pub fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// Runs `korral ARGS` against the server.
pub fn korral(server: &Server, args: &[&str]) -> Output {
    Command::new(korral_bin())
        .args(args)
        .env("KUBECONFIG", &server.kubeconfig)
        .env("KORRAL_CACHE_DIR", server.dir.path().join("cli-cache"))
        .current_dir(root())
        .output()
        .expect("run korral")
}

/// A GitSource as JSON (`Null` when missing).
pub fn source(server: &Server, name: &str) -> Value {
    let o = server.kubectl(&["get", "gitsource", name, "-o", "json"]);
    if !o.status.success() {
        return Value::Null;
    }
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

/// The status of the source's `type` condition.
pub fn condition(src: &Value, type_: &str) -> Option<String> {
    src.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

/// Waits until the source has applied `revision` and is Ready.
pub fn wait_applied(server: &Server, name: &str, revision: &str) -> Value {
    let mut last = Value::Null;
    wait_for(&format!("{name} to apply {revision}"), SYNC, || {
        last = source(server, name);
        last.pointer("/status/lastAppliedRevision")
            .and_then(Value::as_str)
            == Some(revision)
            && condition(&last, "Ready").as_deref() == Some("True")
    });
    last
}

/// Waits until the source reports `revision` failed (Ready False, the
/// revision in `lastError`).
pub fn wait_failed(server: &Server, name: &str, revision: &str) -> Value {
    let mut last = Value::Null;
    wait_for(&format!("{name} to report {revision} failed"), SYNC, || {
        last = source(server, name);
        condition(&last, "Ready").as_deref() == Some("False")
            && last["status"]["lastError"]["revision"] == revision
    });
    last
}

/// Creates a GitSource with kubectl.
pub fn create_source(server: &Server, yaml: &str) {
    let o = server.kubectl_with(&["apply", "-f", "-"], &[], Some(yaml));
    assert!(
        o.status.success(),
        "kubectl apply: {}{}",
        stdout(&o),
        stderr(&o)
    );
}

/// `kubectl get KIND NAME -o json` (with managedFields), `Null` when missing.
pub fn get(server: &Server, kind: &str, name: &str) -> Value {
    let o = server.kubectl(&["get", kind, name, "-o", "json", "--show-managed-fields"]);
    if !o.status.success() {
        return Value::Null;
    }
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

/// Pods of the demo app that are Running and ready, with their images.
pub fn ready_pod_images(server: &Server) -> Vec<String> {
    let o = server.kubectl(&[
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=hello",
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| p["status"]["phase"] == "Running")
        .filter(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        })
        .filter_map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}
