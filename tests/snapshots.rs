//! `korral snapshot` end to end (issue 21): a snapshot taken from a running
//! server — embedded store and real etcd — restored into a new data
//! directory brings back the same objects (same uids) and not those written
//! after it; corrupt files and non-empty directories are refused; scheduled
//! snapshots keep only `--snapshot-retention`, `korral snapshot prune`
//! keeps the newest of a name prefix; only system:masters may take them. Also `korral token list|delete` for bootstrap tokens.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::etcd;
use crate::support::{ChildGuard, Server, free_port, korral_bin, stderr, stdout, wait_for};

const OBJECTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: snap}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: snap}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: snap}
data: {color: blue}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: more, namespace: snap}
data: {size: large}
---
apiVersion: v1
kind: Secret
metadata: {name: password, namespace: snap}
stringData: {password: hunter2}
"#;

/// The objects the tests compare, as `kubectl get` arguments.
const KEPT: &[&[&str]] = &[
    &["namespace", "snap"],
    &["deployment", "web", "-n", "snap"],
    &["configmap", "settings", "-n", "snap"],
    &["configmap", "more", "-n", "snap"],
    &["secret", "password", "-n", "snap"],
];

fn korral(args: &[&str]) -> Output {
    Command::new(korral_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run korral")
}

fn korral_ok(args: &[&str]) -> String {
    let o = korral(args);
    assert!(
        o.status.success(),
        "korral {} failed ({:?}):\n{}{}",
        args.join(" "),
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn kc(s: &Server) -> String {
    s.kubeconfig.display().to_string()
}

fn uids(s: &Server) -> Vec<String> {
    KEPT.iter()
        .map(|args| {
            let v = s.get_json(args);
            let uid = v["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(!uid.is_empty(), "{args:?} has no uid: {v}");
            uid
        })
        .collect()
}

fn secret_value(s: &Server) -> String {
    s.ok(&[
        "get",
        "secret",
        "password",
        "-n",
        "snap",
        "-o",
        "jsonpath={.data.password}",
    ])
}

/// Saves a snapshot through the CLI, downloads it to `download`, returns what the server said.
fn save(s: &Server, name: &str, download: &Path) -> Value {
    let out = korral_ok(&[
        "snapshot",
        "save",
        name,
        "--kubeconfig",
        &kc(s),
        "--download",
        &download.display().to_string(),
        "-o",
        "json",
    ]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("save -o json: {e}: {out}"))
}

fn absent(s: &Server, args: &[&str]) -> bool {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let o = s.kubectl(&all);
    !o.status.success() && stderr(&o).contains("NotFound")
}

#[test]
fn an_embedded_snapshot_restores_the_cluster_of_its_moment() {
    let s = Server::start_with(&["--snapshot-schedule-cron", "off"]);
    s.apply(OBJECTS);
    let before = uids(&s);
    let password = secret_value(&s);
    let work = tempfile::tempdir().expect("temp dir");
    let file = work.path().join("first.snap");

    let info = save(&s, "first", &file);
    assert_eq!(info["name"], "first");
    assert_eq!(info["store"], "embedded");
    let revision = info["revision"].as_i64().expect("a revision");
    assert!(revision > 1, "{info}");
    // the server keeps it in its data directory; the download is the same file
    let kept = s.dir.path().join("snapshots/first");
    assert_eq!(
        std::fs::read(&kept).expect("the server's copy"),
        std::fs::read(&file).expect("the download")
    );
    // compressed (as k3s's --etcd-snapshot-compress): smaller, restores the same revision
    let packed_file = work.path().join("packed.snap.gz");
    let out = korral_ok(&[
        "snapshot",
        "save",
        "packed",
        "--compress",
        "--kubeconfig",
        &kc(&s),
        "--download",
        &packed_file.display().to_string(),
        "-o",
        "json",
    ]);
    let packed: Value = serde_json::from_str(&out).expect("save -o json");
    assert_eq!(packed["compressed"], true);
    assert!(
        packed["size"].as_u64() < info["size"].as_u64().map(|s| s / 4),
        "{packed} vs {info}"
    );
    let out = korral_ok(&[
        "snapshot",
        "restore",
        &packed_file.display().to_string(),
        "--data-dir",
        &work.path().join("from-packed").display().to_string(),
    ]);
    assert!(out.contains(&format!("at revision {revision}")), "{out}");
    // a second save under the same name is refused
    let o = korral(&["snapshot", "save", "first", "--kubeconfig", &kc(&s)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));

    // written after the snapshot: must not come back
    s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later, namespace: snap}\n");

    // ls: a kubectl-style table and JSON
    let table = korral_ok(&["snapshot", "ls", "--kubeconfig", &kc(&s)]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SIZE", "CREATED", "REVISION", "STORE"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("first "))
        .unwrap_or_else(|| panic!("no row for first: {table}"));
    assert!(row.contains(&revision.to_string()), "{row}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("packed ") && l.ends_with("embedded/gzip")),
        "{table}"
    );
    let listed: Value = serde_json::from_str(&korral_ok(&[
        "snapshot",
        "ls",
        "--kubeconfig",
        &kc(&s),
        "-o",
        "json",
    ]))
    .expect("ls -o json");
    let first = listed["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == "first"))
        .unwrap_or_else(|| panic!("first in {listed}"));
    assert_eq!(first["revision"], revision);
    let yaml = korral_ok(&["snapshot", "ls", "--kubeconfig", &kc(&s), "-o", "yaml"]);
    assert!(yaml.contains("name: first"), "{yaml}");

    // only system:masters may take or read snapshots
    let viewer = s.kubeconfig_for("viewer");
    let o = korral(&[
        "snapshot",
        "ls",
        "--kubeconfig",
        &viewer.display().to_string(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("403") && stderr(&o).contains("system:masters"),
        "{}",
        stderr(&o)
    );

    // a truncated copy is refused, naming the file, and writes nothing
    let bytes = std::fs::read(&file).expect("read");
    let cut = work.path().join("cut.snap");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).expect("write");
    let target = work.path().join("from-cut");
    let o = korral(&[
        "snapshot",
        "restore",
        &cut.display().to_string(),
        "--data-dir",
        &target.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cut.snap") && stderr(&o).contains("truncated"),
        "{}",
        stderr(&o)
    );
    assert!(!target.exists(), "nothing half-written");
    // one flipped byte: the checksum says so
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    let bad = work.path().join("flipped.snap");
    std::fs::write(&bad, &flipped).expect("write");
    let o = korral(&[
        "snapshot",
        "restore",
        &bad.display().to_string(),
        "--data-dir",
        &target.display().to_string(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("flipped.snap") && stderr(&o).contains("checksum mismatch"),
        "{}",
        stderr(&o)
    );
    assert!(!target.exists(), "nothing half-written");
    // a data directory in use is refused
    let o = korral(&[
        "snapshot",
        "restore",
        &file.display().to_string(),
        "--data-dir",
        &s.dir.path().display().to_string(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));

    // restore into a new directory, keeping the cluster's CA and tokens
    let restored = tempfile::tempdir().expect("temp dir");
    let out = korral_ok(&[
        "snapshot",
        "restore",
        &file.display().to_string(),
        "--data-dir",
        &restored.path().display().to_string(),
        "--pki-from",
        &s.dir.path().display().to_string(),
    ]);
    assert!(out.contains(&format!("at revision {revision}")), "{out}");
    let ca = std::fs::read(s.dir.path().join("pki/ca.crt")).expect("old CA");
    drop(s);

    let s2 = Server::start_in(
        restored,
        "127.0.0.1:0",
        &["--snapshot-schedule-cron", "off"],
    );
    assert_eq!(uids(&s2), before, "the same objects, by uid");
    assert_eq!(secret_value(&s2), password);
    assert!(
        absent(&s2, &["configmap", "later", "-n", "snap"]),
        "written after the snapshot, so not restored"
    );
    assert_eq!(
        std::fs::read(s2.dir.path().join("pki/ca.crt")).expect("new CA"),
        ca,
        "--pki-from kept the cluster's CA"
    );
    // the restored cluster takes writes
    s2.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after-restore, namespace: snap}\n");
    // the snapshot's own record is not part of the restored cluster
    let listed = korral_ok(&["snapshot", "ls", "--kubeconfig", &kc(&s2)]);
    assert_eq!(listed.lines().count(), 1, "only the header: {listed}");
}

/// etcd on a restored member data directory, on free loopback ports.
fn start_restored_etcd(data: &Path, name: &str, peer: &str, client: &str) -> ChildGuard {
    let log = std::fs::File::create(data.with_extension("log")).expect("etcd log");
    let child = Command::new(std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".into()))
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--name={name}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-cluster={name}={peer}"))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg("--log-level=warn")
        .arg("--logger=zap")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start etcd (Debian's etcd-server)");
    let guard = ChildGuard(child);
    wait_for(
        "the restored etcd to answer",
        Duration::from_secs(30),
        || {
            Command::new("etcdctl")
                .args(["--endpoints", client, "endpoint", "health"])
                .env("ETCDCTL_API", "3")
                .output()
                .is_ok_and(|o| o.status.success())
        },
    );
    guard
}

#[test]
fn an_etcd_snapshot_restores_into_a_new_etcd_member() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut source = rt
        .block_on(etcd::EtcdProcess::start())
        .unwrap_or_else(|e| panic!("etcd could not start: {e}"));
    let s = Server::start_with(&[
        "--etcd-servers",
        &source.endpoint(),
        "--snapshot-schedule-cron",
        "off",
    ]);
    s.apply(OBJECTS);
    let before = uids(&s);
    let work = tempfile::tempdir().expect("temp dir");
    let file = work.path().join("etcd.snap");
    let info = save(&s, "from-etcd", &file);
    assert_eq!(info["store"], "etcd");
    assert!(info["revision"].as_i64().is_some_and(|r| r > 1), "{info}");
    // it is etcd's own snapshot: etcdctl reads it
    let status = Command::new("etcdctl")
        .args([
            "snapshot",
            "status",
            &file.display().to_string(),
            "-w",
            "json",
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl");
    assert!(status.status.success(), "{}", stderr(&status));
    let status: Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert!(
        status["totalKey"].as_u64().is_some_and(|k| k > 5),
        "{status}"
    );
    // the revision korral reports was read before the snapshot began: it holds at least that
    assert!(
        status["revision"].as_i64() >= info["revision"].as_i64(),
        "{status} vs {info}"
    );
    let packed_file = work.path().join("etcd.snap.gz");
    korral_ok(&[
        "snapshot",
        "save",
        "--compress",
        "--kubeconfig",
        &kc(&s),
        "--download",
        &packed_file.display().to_string(),
    ]);
    s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later, namespace: snap}\n");
    drop(s);
    source.kill();
    // a compressed etcd snapshot restores through etcdctl as well
    let out = korral_ok(&[
        "snapshot",
        "restore",
        &packed_file.display().to_string(),
        "--data-dir",
        &work.path().join("from-packed").display().to_string(),
    ]);
    assert!(
        work.path().join("from-packed/etcd/member").is_dir(),
        "{out}"
    );

    let restored = tempfile::tempdir().expect("temp dir");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let client = format!("http://127.0.0.1:{}", free_port());
    let out = korral_ok(&[
        "snapshot",
        "restore",
        &file.display().to_string(),
        "--data-dir",
        &restored.path().display().to_string(),
        "--etcd-name",
        "restored",
        "--etcd-peer-url",
        &peer,
    ]);
    let member = restored.path().join("etcd");
    assert!(member.join("member").is_dir(), "{out}");
    assert!(
        out.contains(&format!("at revision {}", status["revision"])),
        "the revision etcd's snapshot status gives: {out}"
    );
    assert!(out.contains("--name restored"), "{out}");
    let _etcd = start_restored_etcd(&member, "restored", &peer, &client);
    let s2 = Server::start_in(
        restored,
        "127.0.0.1:0",
        &["--etcd-servers", &client, "--snapshot-schedule-cron", "off"],
    );
    assert_eq!(uids(&s2), before, "the same objects, by uid");
    assert!(
        absent(&s2, &["configmap", "later", "-n", "snap"]),
        "written after the snapshot, so not restored"
    );
    s2.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after-restore, namespace: snap}\n");
}

fn scheduled(s: &Server) -> Vec<String> {
    let o = korral(&["snapshot", "ls", "--kubeconfig", &kc(s), "-o", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["name"].as_str())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn scheduled_snapshots_keep_only_the_retention() {
    let s = Server::start_with(&[
        "--snapshot-schedule-cron",
        "@every 1s",
        "--snapshot-retention",
        "2",
    ]);
    korral_ok(&["snapshot", "save", "keep-me", "--kubeconfig", &kc(&s)]);
    let mut seen = std::collections::BTreeSet::new();
    wait_for(
        "three scheduled snapshots taken and the oldest pruned",
        Duration::from_secs(60),
        || {
            let names = scheduled(&s);
            seen.extend(
                names
                    .iter()
                    .filter(|n| n.starts_with("scheduled-"))
                    .cloned(),
            );
            let now: Vec<&String> = names
                .iter()
                .filter(|n| n.starts_with("scheduled-"))
                .collect();
            seen.len() >= 3 && now.len() == 2 && s.log().contains("pruned old snapshots")
        },
    );
    let names = scheduled(&s);
    assert!(
        names.iter().any(|n| n == "keep-me"),
        "on-demand snapshots are never pruned: {names:?}"
    );
    // the oldest scheduled ones are gone, file and record
    let oldest = seen.iter().next().expect("one seen");
    assert!(!names.contains(oldest), "{oldest} pruned: {names:?}");
    let dir = s.dir.path().join("snapshots");
    assert!(!dir.join(oldest).exists());
    assert!(!dir.join(format!("{oldest}.json")).exists());

    // by hand: all but the newest of those named manual-…
    for name in ["manual-a", "manual-b", "manual-c"] {
        korral_ok(&["snapshot", "save", name, "--kubeconfig", &kc(&s)]);
    }
    let out = korral_ok(&[
        "snapshot",
        "prune",
        "--retention",
        "1",
        "--prefix",
        "manual-",
        "--kubeconfig",
        &kc(&s),
    ]);
    assert!(
        out.contains("deleted snapshot manual-a") && out.contains("deleted snapshot manual-b"),
        "{out}"
    );
    let names = scheduled(&s);
    assert!(names.iter().any(|n| n == "manual-c"), "{names:?}");
    assert!(names.iter().any(|n| n == "keep-me"), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "manual-a" || n == "manual-b"),
        "{names:?}"
    );
}

/// Runs `korral node` joining with `token`, expected to fail: its output.
fn join_failing(s: &Server, token: &str, data: &Path) -> Output {
    let child = Command::new(korral_bin())
        .args([
            "node", "--server", &s.url, "--token", token, "--name", "refused",
        ])
        .args(["--runtime", "process", "--listen", "127.0.0.1:0"])
        .args([
            "--ingress-http-listen",
            "off",
            "--ingress-https-listen",
            "off",
        ])
        .args(["--service-lb", "off", "--data-dir"])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("korral node");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("korral node output"),
        Err(_) => {
            // SAFETY: kill(2) on our own child, not reaped yet (no answer came)
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("korral node with a deleted token still running after 60 s");
        }
    }
}

#[test]
fn bootstrap_tokens_are_listed_and_a_deleted_one_no_longer_joins() {
    let s = Server::start_with(&["--snapshot-schedule-cron", "off"]);
    let o = korral(&[
        "token",
        "create",
        "--bootstrap",
        "--data-dir",
        &s.dir.path().display().to_string(),
        "--description",
        "for the snapshot test",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let join = stdout(&o).trim().to_string();
    let bootstrap = join.split_once("::").expect("K10 form").1.to_string();
    let id = bootstrap.split('.').next().expect("id").to_string();

    let table = korral_ok(&["token", "list", "--kubeconfig", &kc(&s)]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "TOKEN ID",
            "TTL",
            "EXPIRES",
            "USAGES",
            "DESCRIPTION",
            "EXTRA GROUPS"
        ],
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("no row for {id}: {table}"));
    for want in [
        "23h",
        "authentication,signing",
        "for the snapshot test",
        "system:bootstrappers:",
    ] {
        assert!(row.contains(want), "{want} in {row}");
    }
    assert!(
        !table.contains(bootstrap.split('.').nth(1).expect("secret")),
        "the secret half is not shown"
    );
    let listed: Value = serde_json::from_str(&korral_ok(&[
        "token",
        "list",
        "--kubeconfig",
        &kc(&s),
        "-o",
        "json",
    ]))
    .expect("json");
    assert_eq!(listed["items"][0]["tokenID"], id.as_str());
    let yaml = korral_ok(&["token", "list", "--kubeconfig", &kc(&s), "-o", "yaml"]);
    assert!(yaml.contains(&format!("tokenID: {id}")), "{yaml}");

    // the token authenticates until it is deleted
    let csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    let (code, body) = s.curl("GET", csrs, Some(&bootstrap), "application/json", None);
    assert_eq!(code, 200, "{body}");
    let deleted = korral_ok(&["token", "delete", &join, "--kubeconfig", &kc(&s)]);
    assert!(deleted.contains(&id), "{deleted}");
    let (code, body) = s.curl("GET", csrs, Some(&bootstrap), "application/json", None);
    assert_eq!(code, 401, "{body}");
    let table = korral_ok(&["token", "list", "--kubeconfig", &kc(&s)]);
    assert!(!table.contains(&id), "{table}");
    // a join with it is refused and creates nothing
    let data = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let o = join_failing(&s, &join, data.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(60));
    let nodes = s.get_json(&["nodes"]);
    assert_eq!(nodes["items"].as_array().map(Vec::len), Some(0), "{nodes}");
    // deleting it again says it is not there
    let o = korral(&["token", "delete", &id, "--kubeconfig", &kc(&s)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
}
