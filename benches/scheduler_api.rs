//! Benchmark of the scheduler end to end through the API, on this machine:
//! a `korral server` and a separate `korral controllers --controllers
//! scheduler` process; simulated nodes (Node objects only, no containers)
//! from scheduler_perf's `node-default.yaml`; 1,000 pods placed first, then
//! 10,000 pods from its `pod-default.yaml` created through the API as fast as
//! 16 clients can, while a watch records when each is bound. Prints pods
//! bound per second and the p50/p99 of creation → bound, for 100, 1,000 and
//! 5,000 nodes.
//!
//! `cargo bench --bench scheduler_api` (`-- --quick`: 1,000 pods;
//! `-- --nodes N` for one size).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reconcilers::runtime::client::WatchEvent;
use reconcilers::runtime::{Client, ListParams, WriteParams};
use schemas::core::{Node, Pod};
use serde_json::json;

const CLIENTS: usize = 16;

fn spawn(args: &[&str], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_korral"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("spawn korral")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn node(i: usize, cpu: &str, memory: &str) -> Node {
    let name = format!("scheduler-perf-{i}");
    let capacity = json!({"pods": "110", "cpu": cpu, "memory": memory});
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"capacity": capacity, "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True"}], "phase": "Running"}
    }))
    .expect("node")
}

fn pod(prefix: &str, i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{prefix}-{i}")},
        "spec": {"containers": [{
            "name": "pause", "image": "k8s.gcr.io/pause:3.7", "ports": [{"containerPort": 80}],
            "resources": {"limits": {"cpu": "100m", "memory": "500Mi"},
                          "requests": {"cpu": "100m", "memory": "500Mi"}}}]}
    }))
    .expect("pod")
}

async fn create_all<K: schemas::Resource>(
    api: reconcilers::runtime::Api<K>,
    objects: Vec<K>,
    created: Option<Arc<Mutex<HashMap<String, Instant>>>>,
) {
    let objects = Arc::new(objects);
    let mut tasks = Vec::new();
    for w in 0..CLIENTS {
        let (api, objects, created) = (api.clone(), objects.clone(), created.clone());
        tasks.push(tokio::spawn(async move {
            for o in objects.iter().skip(w).step_by(CLIENTS) {
                let name = o.metadata().name().to_string();
                let sent = Instant::now();
                api.create(o, &WriteParams::default())
                    .await
                    .expect("create");
                if let Some(c) = &created
                    && let Ok(mut m) = c.lock()
                {
                    m.insert(name, sent);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("create task");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

struct Row {
    nodes: usize,
    bound: usize,
    window: Duration,
    p50: Duration,
    p99: Duration,
    create_rate: f64,
}

async fn run(nodes: usize, init: usize, measured: usize) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut server = spawn(
        &[
            "server",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--controllers",
            "none",
            "--data-dir",
            &dir.path().to_string_lossy(),
        ],
        &dir.path().join("server.log"),
    );
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = loop {
        if let Ok(c) = Client::from_kubeconfig(Some(&kubeconfig), "bench")
            && c.get_raw("/version").await.is_ok()
        {
            break c;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (cpu, memory) = if nodes * 40 < init + measured {
        ("16", "128Gi")
    } else {
        ("4", "32Gi")
    };
    create_all(
        client.api::<Node>(None),
        (0..nodes).map(|i| node(i, cpu, memory)).collect(),
        None,
    )
    .await;
    let mut scheduler = spawn(
        &[
            "controllers",
            "--controllers",
            "scheduler",
            "--kubeconfig",
            &dir.path().join("controller.kubeconfig").to_string_lossy(),
            "--metrics-addr",
            &format!("127.0.0.1:{}", free_port()),
        ],
        &dir.path().join("scheduler.log"),
    );
    let pods = client.api::<Pod>(Some("default"));
    // the watch starts before any pod exists, so it sees every binding
    let rv = pods
        .list(&ListParams::default())
        .await
        .expect("list")
        .resource_version;
    let mut stream = Box::pin(
        pods.watch(&ListParams::default(), &rv, Duration::from_secs(600))
            .await
            .expect("watch"),
    );
    create_all(
        pods.clone(),
        (0..init).map(|i| pod("init", i)).collect(),
        None,
    )
    .await;
    let created = Arc::new(Mutex::new(HashMap::with_capacity(measured)));
    let mut bound_at: HashMap<String, Instant> = HashMap::with_capacity(measured);
    let mut init_bound = 0;
    let start = Instant::now();
    let creating = tokio::spawn(create_all(
        pods.clone(),
        (0..measured).map(|i| pod("measured", i)).collect(),
        Some(created.clone()),
    ));
    let limit = Instant::now() + Duration::from_secs(1800);
    while bound_at.len() < measured || init_bound < init {
        let ev = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("a watch event within 60 s")
            .expect("the watch ended")
            .expect("watch event");
        if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev {
            let bound = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty());
            let name = p.metadata.name().to_string();
            if bound && name.starts_with("measured-") {
                bound_at.entry(name).or_insert_with(Instant::now);
            } else if bound && name.starts_with("init-") {
                init_bound += 1;
            }
        }
        assert!(Instant::now() < limit, "not all pods were bound");
    }
    let done = Instant::now();
    creating.await.expect("creates");
    let created = created.lock().map(|m| m.clone()).unwrap_or_default();
    let create_done = created.values().max().copied().unwrap_or(start);
    let mut latencies: Vec<Duration> = bound_at
        .iter()
        .filter_map(|(n, b)| created.get(n).map(|c| b.saturating_duration_since(*c)))
        .collect();
    latencies.sort();
    let _ = scheduler.kill();
    let _ = server.kill();
    let _ = scheduler.wait();
    let _ = server.wait();
    Row {
        nodes,
        bound: bound_at.len(),
        window: done.duration_since(start),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        create_rate: measured as f64 / create_done.duration_since(start).as_secs_f64(),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let measured = if quick { 1_000 } else { 10_000 };
    let sizes: Vec<usize> = match args
        .iter()
        .position(|a| a == "--nodes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
    {
        Some(n) => vec![n],
        None => vec![100, 1000, 5000],
    };
    println!(
        "korral scheduler through the API: server + scheduler processes, simulated nodes, 1,000 init pods, \
         {measured} measured pods created by {CLIENTS} clients; this machine's cores shared by all three\n"
    );
    println!("| nodes | pods bound | pods/s (first create → last bound) | pods created/s | create → bound p50 | create → bound p99 |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let r = run(n, 1_000, measured).await;
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} ms | {:.0} ms |",
            r.nodes,
            r.bound,
            r.bound as f64 / r.window.as_secs_f64(),
            r.create_rate,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
        );
    }
}
