//! Benchmark of GitOps intake, end to end on this machine: a Git repository
//! of 10,000 manifests (one per file: 100 namespaces, each with ConfigMaps,
//! Deployments and Services), a `korral server` process (no controllers, no
//! intake of its own) and intake in this process. Measures a sync from an
//! empty cluster (fetch, render + validate, apply, status), an unchanged
//! re-sync, and a drift check of every object; next to the physical limits:
//! `git clone` of the same repository and the raw store's write time for the
//! same objects (embedded store, 16 writers), plus creating them through the
//! API without intake. Prints a table with ratios.
//!
//! `cargo bench --bench intake` (`-- --objects N` to change the size).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::store::{LocalOptions, LocalStore, Store};
use futures_util::StreamExt;
use intake::engine::Engine;
use intake::live;
use intake::sync::{SyncOptions, sync};
use reconcilers::runtime::{Client, Patch, WriteParams};
use schemas::korral::GitSource;

const PER_NAMESPACE: usize = 100;

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@korral.invalid",
        ])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The i-th object of namespace `ns` (0: the Namespace itself).
fn manifest(ns: usize, i: usize) -> (String, String) {
    let n = format!("team-{ns:03}");
    if i == 0 {
        return (
            format!("{n}/namespace.yaml"),
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {n}\n"),
        );
    }
    match i % 3 {
        0 => (
            format!("{n}/config-{i:03}.yaml"),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{i:03}\n  namespace: {n}\n  labels: {{app: app-{i:03}}}\ndata:\n  settings.yaml: |\n    level: info\n    replicas: {i}\n"
            ),
        ),
        1 => (
            format!("{n}/app-{i:03}.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i:03}\n  namespace: {n}\n  labels: {{app: app-{i:03}}}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: app-{i:03}}}\n  template:\n    metadata:\n      labels: {{app: app-{i:03}}}\n    spec:\n      containers:\n        - name: web\n          image: registry.example/app-{i:03}:1.0\n          ports: [{{name: http, containerPort: 8080}}]\n          resources:\n            requests: {{cpu: 100m, memory: 64Mi}}\n            limits: {{cpu: \"1\", memory: 128Mi}}\n          readinessProbe:\n            httpGet: {{path: /ready, port: http}}\n"
            ),
        ),
        _ => (
            format!("{n}/svc-{i:03}.yaml"),
            format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i:03}\n  namespace: {n}\nspec:\n  selector: {{app: app-{i:03}}}\n  ports:\n    - {{name: http, port: 80, targetPort: http}}\n"
            ),
        ),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn row(what: &str, d: Duration, objects: usize, clone: Duration, raw: Duration) {
    println!(
        "| {what:<44} | {:>9} | {:>9.0} | {:>8.1}× | {:>8.1}× |",
        secs(d),
        objects as f64 / d.as_secs_f64().max(1e-9),
        d.as_secs_f64() / clone.as_secs_f64().max(1e-9),
        d.as_secs_f64() / raw.as_secs_f64().max(1e-9),
    );
}

/// Writes the objects' JSON straight into a fresh embedded store, 16 writers.
async fn raw_store_writes(dir: &Path, objects: &[(String, Vec<u8>)]) -> Duration {
    let store = Arc::new(
        LocalStore::open(LocalOptions::new(dir.join("raw.redb")))
            .await
            .expect("store"),
    );
    let objects = Arc::new(objects.to_vec());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (store, objects) = (store.clone(), objects.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..objects.len()).step_by(16) {
                let (k, v) = &objects[i];
                store.create(k, v.clone()).await.expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    start.elapsed()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args
        .iter()
        .position(|a| a == "--objects")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let namespaces = total.div_ceil(PER_NAMESPACE);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();

    // the repository
    eprintln!("writing {total} manifests into a Git repository…");
    let bare = root.join("app.git");
    let work = root.join("work");
    std::fs::create_dir_all(&bare).expect("mkdir");
    git(&bare, &["init", "-q", "--bare"]);
    git(
        root,
        &["clone", "-q", bare.to_str().expect("utf-8"), "work"],
    );
    git(&work, &["checkout", "-q", "-b", "main"]);
    let mut raw_objects = Vec::with_capacity(total);
    let mut n = 0;
    'outer: for ns in 0..namespaces {
        for i in 0..PER_NAMESPACE {
            if n == total {
                break 'outer;
            }
            let (file, text) = manifest(ns, i);
            let p = work.join(&file);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, &text).expect("write");
            let v: serde_json::Value = serde_saphyr_free_parse(&text);
            let kind = v["kind"].as_str().unwrap_or("").to_ascii_lowercase();
            let key = format!(
                "/registry/{kind}s/{}/{}",
                v["metadata"]["namespace"].as_str().unwrap_or(""),
                v["metadata"]["name"].as_str().unwrap_or("")
            );
            raw_objects.push((key, serde_json::to_vec(&v).expect("json")));
            n += 1;
        }
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "10k manifests"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let url = format!("file://{}", bare.display());

    // the reference points
    let start = Instant::now();
    git(root, &["clone", "-q", "--bare", &url, "clone.git"]);
    let clone = start.elapsed();
    let raw = raw_store_writes(root, &raw_objects).await;

    // the server
    let data = root.join("server");
    let (mut server, client) =
        common::start_server(&data, &root.join("server.log"), &["--intake=false"]).await;
    let source: GitSource = client
        .api::<GitSource>(Some("default"))
        .patch(
            "bench",
            &Patch::Apply(serde_json::json!({
                "apiVersion": "korral.dev/v1alpha1", "kind": "GitSource",
                "metadata": {"name": "bench", "namespace": "default"},
                "spec": {"url": url, "ref": {"branch": "main"}, "interval": "1h", "prune": true},
            })),
            &WriteParams {
                field_manager: Some("bench".into()),
                force: true,
                dry_run: false,
            },
        )
        .await
        .expect("source");
    let engine = Engine::new(client.clone(), root.join("cache"));
    let owner = intake::engine::owner_of(&source);

    // 1. from an empty cluster
    eprintln!("syncing from an empty cluster…");
    let t0 = Instant::now();
    let snap = engine.snapshot(&source, None).await.expect("fetch");
    let fetch1 = t0.elapsed();
    let t1 = Instant::now();
    let desired = engine.render(&source, snap).await.expect("valid");
    let render1 = t1.elapsed();
    let t2 = Instant::now();
    let report = sync(&client, &owner, &desired, &[], &SyncOptions::default())
        .await
        .expect("sync");
    let apply1 = t2.elapsed();
    let t3 = Instant::now();
    let status = intake::status::synced(
        &Default::default(),
        &report,
        source.metadata.generation,
        &[],
    );
    let source = engine.write_status(&source, &status).await.expect("status");
    let status1 = t3.elapsed();
    let first = t0.elapsed();
    assert_eq!(report.applied.len(), total, "every object applied");

    // 2. unchanged
    eprintln!("re-syncing, unchanged…");
    let t0 = Instant::now();
    let snap = engine.snapshot(&source, None).await.expect("fetch");
    let fetch2 = t0.elapsed();
    let t1 = Instant::now();
    let desired = engine.render(&source, snap).await.expect("valid");
    let render2 = t1.elapsed();
    let t2 = Instant::now();
    let inventory = report.inventory.clone();
    let again = sync(
        &client,
        &owner,
        &desired,
        &inventory,
        &SyncOptions::default(),
    )
    .await
    .expect("re-sync");
    let apply2 = t2.elapsed();
    let second = t0.elapsed();
    assert_eq!(again.unchanged, total, "nothing changed");
    assert!(again.applied.is_empty());

    // 3. drift of every object
    eprintln!("checking drift…");
    let t0 = Instant::now();
    let live_objects = live::read(&client, &owner, &desired, &inventory, true)
        .await
        .expect("live");
    let read = t0.elapsed();
    let t1 = Instant::now();
    let drift = intake::drift::detect(&desired, &live_objects, &owner);
    let compare = t1.elapsed();
    let drift_total = t0.elapsed();
    assert!(
        drift.is_clean(),
        "no drift right after a sync: {} drifted",
        drift.count()
    );

    // the same objects created through the API without intake
    eprintln!("creating the same objects through the API (no intake)…");
    let api_ns = "api";
    let plain = intake::render::render(
        &intake::source::Snapshot {
            revision: "x".into(),
            files: desired
                .objects
                .iter()
                .map(|o| {
                    let mut v = o.manifest.object.clone();
                    // one more namespace level, so names do not collide
                    if o.key.kind == "Namespace" {
                        v["metadata"]["name"] = format!("{api_ns}-{}", o.key.name).into();
                    } else if let Some(ns) = o.key.namespace.as_deref() {
                        v["metadata"]["namespace"] = format!("{api_ns}-{ns}").into();
                    }
                    intake::source::SourceFile {
                        path: o.manifest.file.to_string(),
                        data: serde_json::to_vec(&v).expect("json"),
                    }
                })
                .collect(),
        },
        None,
        "default",
    )
    .expect("plain objects");
    let t0 = Instant::now();
    for rank in 0..=3u8 {
        let futures: Vec<_> = plain
            .objects
            .iter()
            .filter(|o| intake::object::apply_rank(&o.key.kind) == rank)
            .map(|o| create(&client, o.key.namespace.clone(), o.object.clone()))
            .collect();
        let results: Vec<_> = futures_util::stream::iter(futures)
            .buffer_unordered(16)
            .collect()
            .await;
        for r in results {
            r.expect("create");
        }
    }
    let api_creates = t0.elapsed();

    let _ = server.kill();
    let _ = server.wait();

    println!();
    println!(
        "korral intake benchmark: {total} manifests in {total} files ({namespaces} namespaces), git over file://, a server process (embedded store), intake in the bench process; 2 cores"
    );
    println!();
    println!(
        "| {:<44} | {:>9} | {:>9} | {:>9} | {:>9} |",
        "what", "time", "objects/s", "÷ clone", "÷ raw"
    );
    println!(
        "|{:-<46}|{:-<11}|{:-<11}|{:-<11}|{:-<11}|",
        "", "", "", "", ""
    );
    row("git clone --bare (file://)", clone, total, clone, raw);
    row(
        "raw store writes (embedded, 16 writers)",
        raw,
        total,
        clone,
        raw,
    );
    row(
        "API creates, no intake (16 in flight)",
        api_creates,
        total,
        clone,
        raw,
    );
    row("sync from an empty cluster", first, total, clone, raw);
    row(
        "  fetch (libgit2 into a bare mirror)",
        fetch1,
        total,
        clone,
        raw,
    );
    row(
        "  render + validate (all cores)",
        render1,
        total,
        clone,
        raw,
    );
    row(
        "  read live, apply (SSA, 16 in flight)",
        apply1,
        total,
        clone,
        raw,
    );
    row("  status (inventory of 10k)", status1, total, clone, raw);
    row("unchanged re-sync", second, total, clone, raw);
    row("  fetch", fetch2, total, clone, raw);
    row("  render + validate", render2, total, clone, raw);
    row(
        "  read live, compare (nothing applied)",
        apply2,
        total,
        clone,
        raw,
    );
    row("drift check", drift_total, total, clone, raw);
    row("  read live (one list per kind)", read, total, clone, raw);
    row("  compare (defaults, managers)", compare, total, clone, raw);
}

/// Parses one small YAML manifest the way korral does (via the schemas decoder).
fn serde_saphyr_free_parse(text: &str) -> serde_json::Value {
    schemas::decode_file("x.yaml", text)
        .manifests
        .into_iter()
        .next()
        .map(|m| m.object)
        .expect("a manifest")
}

/// POSTs one object through the typed API of its kind.
async fn create(
    client: &Client,
    ns: Option<String>,
    v: serde_json::Value,
) -> Result<(), reconcilers::runtime::ClientError> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
    let p = WriteParams::default();
    let ns = ns.as_deref();
    let bad = |e: serde_json::Error| reconcilers::runtime::ClientError::Decode(e.to_string());
    match v["kind"].as_str().unwrap_or("") {
        "Namespace" => client
            .api::<Namespace>(None)
            .create(&serde_json::from_value(v).map_err(bad)?, &p)
            .await
            .map(drop),
        "ConfigMap" => client
            .api::<ConfigMap>(ns)
            .create(&serde_json::from_value(v).map_err(bad)?, &p)
            .await
            .map(drop),
        "Deployment" => client
            .api::<Deployment>(ns)
            .create(&serde_json::from_value(v).map_err(bad)?, &p)
            .await
            .map(drop),
        _ => client
            .api::<Service>(ns)
            .create(&serde_json::from_value(v).map_err(bad)?, &p)
            .await
            .map(drop),
    }
}
