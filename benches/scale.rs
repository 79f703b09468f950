//! The scale run: one `korral server` (its controllers in process) and one
//! `korral node --simulate N` on this machine; Deployments bring P pods to
//! Running while a probe client times API calls against Kubernetes' SLOs
//! (mutating calls p99 ≤ 1 s; non-streaming reads p99 ≤ 1 s for single
//! objects, ≤ 5 s for a namespace's list, ≤ 30 s for a cluster-wide list), a
//! Lease watch checks every node's heartbeat, and the server's resident
//! memory is read before and after the pods exist.
//!
//! `cargo bench --bench scale` (5,000 nodes, 50,000 pods; `-- --nodes N
//! --pods P` for another size; P a multiple of 100).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use reconcilers::runtime::client::{ListParams, WatchEvent, WriteParams};
use reconcilers::runtime::{Client, DeleteParams, Patch};
use schemas::{MetaExt, TimeExt};
use support::{Server, korral_bin};

/// Replicas of each Deployment.
const REPLICAS: usize = 100;
/// Deployments per namespace.
const PER_NAMESPACE: usize = 10;
/// The node daemon's heartbeat period; a renewal gap above `LATE` is late.
const LATE: Duration = Duration::from_secs(12);
/// How long the probes go on once every pod runs (the steady state).
const STEADY: Duration = Duration::from_secs(30);
/// The pause between two probe rounds.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// How often progress (nodes Ready, pods Ready) is read and printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// The pause before listing Leases again after a failed list.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// How often a cluster-wide list of pods is timed.
const CLUSTER_LIST_EVERY: Duration = Duration::from_secs(10);

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}
    }))
    .expect("deployment")
}

/// Latencies of the probe's calls, by SLO class.
#[derive(Default)]
struct Probes {
    mutating: Vec<Duration>,
    get: Vec<Duration>,
    namespace_list: Vec<Duration>,
    cluster_list: Vec<Duration>,
    errors: usize,
}

/// Times calls of every SLO class until `stop` turns true: each round
/// creates, patches, reads and deletes a ConfigMap and lists one
/// namespace's pods; a cluster-wide list of pods every [`CLUSTER_LIST_EVERY`].
async fn probe(
    client: Client,
    namespaces: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Probes {
    let cms = client.api::<ConfigMap>(Some("scale-probe"));
    let mut out = Probes::default();
    let mut last_cluster_list = Instant::now();
    let mut round = 0usize;
    while !*stop.borrow() {
        round += 1;
        let name = format!("probe-{round}");
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}, "data": {"round": round.to_string()}
        }))
        .expect("configmap");
        let t = Instant::now();
        match cms.create(&cm, &WriteParams::default()).await {
            Ok(_) => out.mutating.push(t.elapsed()),
            Err(_) => out.errors += 1,
        }
        let t = Instant::now();
        let patch = Patch::Merge(serde_json::json!({"data": {"patched": "yes"}}));
        match cms.patch(&name, &patch, &WriteParams::default()).await {
            Ok(_) => out.mutating.push(t.elapsed()),
            Err(_) => out.errors += 1,
        }
        let t = Instant::now();
        match cms.get(&name).await {
            Ok(_) => out.get.push(t.elapsed()),
            Err(_) => out.errors += 1,
        }
        let pods = client.api::<Pod>(Some(&format!("scale-{}", round % namespaces)));
        let t = Instant::now();
        match pods.list(&ListParams::default()).await {
            Ok(_) => out.namespace_list.push(t.elapsed()),
            Err(_) => out.errors += 1,
        }
        let t = Instant::now();
        match cms.delete(&name, &DeleteParams::default()).await {
            Ok(_) => out.mutating.push(t.elapsed()),
            Err(_) => out.errors += 1,
        }
        if last_cluster_list.elapsed() >= CLUSTER_LIST_EVERY {
            last_cluster_list = Instant::now();
            let all = client.api::<Pod>(None);
            let t = Instant::now();
            match all.list(&ListParams::default()).await {
                Ok(_) => out.cluster_list.push(t.elapsed()),
                Err(_) => out.errors += 1,
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    out
}

/// Renewal gaps of the nodes' Leases, watched until `stop` turns true, and
/// how many leases were not renewed within [`LATE`] at the end.
async fn heartbeats(
    client: Client,
    prefix: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (Vec<Duration>, usize) {
    let leases = client.api::<Lease>(Some("kube-node-lease"));
    let mut last: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
    let mut gaps = Vec::new();
    let mut rv = String::new();
    while !*stop.borrow() {
        if rv.is_empty() {
            let Ok(list) = leases.list(&ListParams::default()).await else {
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            };
            for l in &list.items {
                if let Some(t) = l.spec.as_ref().and_then(|s| s.renew_time.as_ref()) {
                    last.insert(l.metadata.name_str().to_string(), t.utc());
                }
            }
            rv = list.resource_version;
        }
        let Ok(stream) = leases
            .watch(&ListParams::default(), &rv, Duration::from_secs(60))
            .await
        else {
            rv.clear();
            continue;
        };
        let mut stream = Box::pin(stream);
        loop {
            let ev = tokio::select! {
                ev = stream.next() => ev,
                // the run is over (or its sender gone)
                _ = stop.changed() => break,
            };
            match ev {
                Some(Ok(WatchEvent::Added(l) | WatchEvent::Modified(l))) => {
                    if let Some(v) = &l.metadata.resource_version {
                        rv = v.clone();
                    }
                    let name = l.metadata.name_str().to_string();
                    if let Some(t) = l.spec.as_ref().and_then(|s| s.renew_time.as_ref())
                        && let Some(prev) = last.insert(name.clone(), t.utc())
                        && name.starts_with(&prefix)
                        && t.utc() > prev
                    {
                        gaps.push((t.utc() - prev).to_std().unwrap_or_default());
                    }
                }
                Some(Ok(WatchEvent::Bookmark(v))) => rv = v,
                Some(Ok(_)) => {}
                // an error (e.g. the revision is compacted): list again
                Some(Err(_)) => {
                    rv.clear();
                    break;
                }
                None => break,
            }
        }
    }
    let now = chrono::Utc::now();
    let stale = last
        .iter()
        .filter(|(k, t)| k.starts_with(&prefix) && (now - **t).to_std().unwrap_or_default() > LATE)
        .count();
    gaps.sort();
    (gaps, stale)
}

/// Creates the namespaces and Deployments with 16 clients.
async fn create_workloads(client: &Client, namespaces: usize) {
    let ns_api = client.api::<Namespace>(None);
    for n in 0..namespaces {
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": format!("scale-{n}")}}))
                .expect("namespace");
        ns_api
            .create(&ns, &WriteParams::default())
            .await
            .expect("create namespace");
    }
    let mut tasks = Vec::new();
    for w in 0..16 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..namespaces * PER_NAMESPACE).step_by(16) {
                let api = client.api::<Deployment>(Some(&format!("scale-{}", i / PER_NAMESPACE)));
                api.create(
                    &deployment(&format!("app-{}", i % PER_NAMESPACE)),
                    &WriteParams::default(),
                )
                .await
                .expect("create deployment");
            }
        }));
    }
    for t in tasks {
        t.await.expect("creates");
    }
}

/// Ready replicas over every Deployment.
async fn ready_pods(client: &Client) -> usize {
    client
        .api::<Deployment>(None)
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter_map(|d| d.status.as_ref()?.ready_replicas)
                .map(|r| r as usize)
                .sum()
        })
        .unwrap_or(0)
}

/// The server's request and watch counters (`/metrics`, through kubectl):
/// `verb resource` → requests, `watch <source> <resource>` → watches
/// started, `terminated <resource>` → watchers the cache closed.
fn counters(s: &Server) -> HashMap<String, f64> {
    let out = s.kubectl(&["get", "--raw", "/metrics"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = HashMap::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let label = |name: &str| {
            let start = series
                .find(&format!("{name}=\""))
                .map(|i| i + name.len() + 2)?;
            let len = series[start..].find('"')?;
            Some(series[start..start + len].to_string())
        };
        let key = if series.starts_with("apiserver_request_total{") {
            format!(
                "{} {}",
                label("verb").unwrap_or_default(),
                label("resource").unwrap_or_default()
            )
        } else if series.starts_with("korral_watch_starts_total{") {
            format!(
                "watch {} {}",
                label("source").unwrap_or_default(),
                label("resource").unwrap_or_default()
            )
        } else if series.starts_with("apiserver_terminated_watchers_total{") {
            format!("terminated {}", label("resource").unwrap_or_default())
        } else {
            continue;
        };
        *counts.entry(key).or_insert(0.0) += value;
    }
    counts
}

/// The largest increases from `before` to `after`, largest first.
fn busiest(
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
    n: usize,
) -> Vec<(String, f64)> {
    let mut deltas: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect();
    deltas.sort_by(|a, b| b.1.total_cmp(&a.1));
    deltas.truncate(n);
    deltas
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn slo_row(what: &str, v: &[Duration], slo: Duration) {
    let mut v = v.to_vec();
    v.sort();
    let p99 = percentile(&v, 0.99);
    println!(
        "| {what} | {} | {} | {} | ≤ {} s | {:.3} | {} |",
        v.len(),
        ms(percentile(&v, 0.5)),
        ms(p99),
        slo.as_secs(),
        p99.as_secs_f64() / slo.as_secs_f64(),
        if p99 <= slo { "met" } else { "NOT met" }
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let nodes = arg(&args, "--nodes", 5_000);
    let pods = arg(&args, "--pods", 50_000).max(REPLICAS);
    let namespaces = pods.div_ceil(REPLICAS * PER_NAMESPACE);
    let deployments = pods / REPLICAS;
    let pods = deployments * REPLICAS;
    eprintln!("scale run: {nodes} simulated nodes, {pods} pods in {deployments} Deployments");

    // a /8 pod network holds 65,536 per-node /24s
    let s = Server::start_with(&["--cluster-cidr", "10.0.0.0/8"]);
    let server_pid = s.pid();
    let client = Client::from_kubeconfig(Some(&s.kubeconfig), "bench").expect("client");
    let rss_empty = rss_kib(server_pid);

    let log = std::fs::File::create(s.dir.path().join("nodes.log")).expect("log");
    let mut node = std::process::Command::new(korral_bin())
        .arg("node")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["--simulate", &nodes.to_string(), "--name", "scale"])
        .arg("--data-dir")
        .arg(s.dir.path().join("nodes"))
        .stderr(log)
        .spawn()
        .expect("korral node --simulate");

    let started = Instant::now();
    let node_api = client.api::<Node>(None);
    loop {
        let ready = node_api
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter(|n| {
                        n.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count()
            })
            .unwrap_or(0);
        eprintln!(
            "  {ready}/{nodes} nodes Ready after {:.0} s",
            started.elapsed().as_secs_f64()
        );
        if ready >= nodes {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the nodes did not turn Ready within 15 min"
        );
        tokio::time::sleep(PROGRESS_EVERY).await;
    }
    let nodes_ready_after = started.elapsed();
    let rss_nodes = rss_kib(server_pid);

    let ns_api = client.api::<Namespace>(None);
    let probe_ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "scale-probe"}}))
            .expect("ns");
    ns_api
        .create(&probe_ns, &WriteParams::default())
        .await
        .expect("probe namespace");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // the probe and the heartbeat watch use connections of their own
    let probe_client = Client::from_kubeconfig(Some(&s.kubeconfig), "bench").expect("client");
    let probing = tokio::spawn(probe(probe_client, namespaces, stopped.clone()));
    let lease_client = Client::from_kubeconfig(Some(&s.kubeconfig), "bench").expect("client");
    let watching = tokio::spawn(heartbeats(lease_client, "scale-".into(), stopped));

    let t0 = Instant::now();
    let counted_from = counters(&s);
    create_workloads(&client, namespaces).await;
    let created_after = t0.elapsed();
    let mut peak = 0u64;
    let (mut last_counts, mut last_at) = (counted_from.clone(), Instant::now());
    loop {
        let ready = ready_pods(&client).await;
        let rss = rss_kib(server_pid);
        peak = peak.max(rss);
        let counts = counters(&s);
        let secs = last_at.elapsed().as_secs_f64().max(0.001);
        let rates: Vec<String> = busiest(&last_counts, &counts, 4)
            .into_iter()
            .map(|(k, d)| format!("{k} {:.0}/s", d / secs))
            .collect();
        (last_counts, last_at) = (counts, Instant::now());
        eprintln!(
            "  {ready}/{pods} pods ready after {:.0} s (server RSS {} MiB; {})",
            t0.elapsed().as_secs_f64(),
            rss / 1024,
            rates.join(", ")
        );
        if ready >= pods {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3600),
            "the pods did not run within an hour"
        );
        tokio::time::sleep(PROGRESS_EVERY).await;
    }
    let running_after = t0.elapsed();
    let rss_pods = rss_kib(server_pid);
    eprintln!("  steady state for {} s", STEADY.as_secs());
    tokio::time::sleep(STEADY).await;
    let counted_to = counters(&s);
    let counted_secs = t0.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let probes = probing.await.expect("probe");
    let (gaps, stale) = watching.await.expect("heartbeats");
    let rss_end = rss_kib(server_pid);
    let node_rss = rss_kib(node.id());
    let _ = node.kill();
    let _ = node.wait();
    let peak = peak.max(rss_end);

    println!(
        "korral scale run on this machine ({} cores): one korral server (controllers in process) and one \
         korral node --simulate {nodes}; {deployments} Deployments × {REPLICAS} replicas in {namespaces} namespaces\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "| API calls during the run (Kubernetes SLO) | calls | p50 | p99 | SLO p99 | p99 / SLO | |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    slo_row(
        "mutating (create, patch, delete a ConfigMap)",
        &probes.mutating,
        Duration::from_secs(1),
    );
    slo_row("single-object get", &probes.get, Duration::from_secs(1));
    slo_row(
        "list a namespace's pods (1,000)",
        &probes.namespace_list,
        Duration::from_secs(5),
    );
    slo_row(
        &format!("list all pods (cluster-wide, up to {pods})"),
        &probes.cluster_list,
        Duration::from_secs(30),
    );
    println!("\nprobe errors: {}\n", probes.errors);
    let late = gaps.iter().filter(|g| **g > LATE).count() + stale;
    println!(
        "| heartbeats | renewals | gap p50 | gap p99 | gap max | late (> {} s or none at the end) |",
        LATE.as_secs()
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| {nodes} node Leases (period 10 s) | {} | {:.1} s | {:.1} s | {:.1} s | {late} |",
        gaps.len(),
        percentile(&gaps, 0.5).as_secs_f64(),
        percentile(&gaps, 0.99).as_secs_f64(),
        gaps.last().copied().unwrap_or_default().as_secs_f64(),
    );
    println!("\n| progress | time | rate |\n|---|---:|---:|");
    println!(
        "| {nodes} nodes Ready | {:.1} s | {:.0} nodes/s |",
        nodes_ready_after.as_secs_f64(),
        nodes as f64 / nodes_ready_after.as_secs_f64()
    );
    println!(
        "| {deployments} Deployments created | {:.1} s | |",
        created_after.as_secs_f64()
    );
    println!(
        "| {pods} pods Running and Ready | {:.1} s | {:.0} pods/s |",
        running_after.as_secs_f64(),
        pods as f64 / running_after.as_secs_f64()
    );
    println!(
        "\n| busiest requests and watch starts, from the Deployments' creation to the end ({counted_secs:.0} s) | count | per second |\n|---|---:|---:|"
    );
    for (what, count) in busiest(&counted_from, &counted_to, 16) {
        println!("| {what} | {count:.0} | {:.1} |", count / counted_secs);
    }
    let mib = |k: u64| k as f64 / 1024.0;
    println!("\n| memory (resident) | MiB | per object |\n|---|---:|---:|");
    println!("| server, empty | {:.0} | |", mib(rss_empty));
    println!(
        "| server, {nodes} nodes | {:.0} | {:.1} KiB per node |",
        mib(rss_nodes),
        rss_nodes.saturating_sub(rss_empty) as f64 / nodes as f64
    );
    println!(
        "| server, {pods} pods running | {:.0} | {:.1} KiB per pod |",
        mib(rss_pods),
        rss_pods.saturating_sub(rss_nodes) as f64 / pods as f64
    );
    println!(
        "| server, end of steady state (peak) | {:.0} ({:.0}) | |",
        mib(rss_end),
        mib(peak)
    );
    println!(
        "| korral node --simulate {nodes} | {:.0} | {:.1} KiB per node |",
        mib(node_rss),
        node_rss as f64 / nodes as f64
    );
}
