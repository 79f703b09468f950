//! Node daemon benchmark: pod start latency (create → Ready, p50/p99) with
//! the process runtime and with containerd, next to Kubernetes' SLO (p99 ≤
//! 5 s), and how many simulated nodes one `korral node --simulate` process
//! holds with every Lease renewed on time. Run: `cargo bench --bench node`
//! (containerd rows need root, containerd, runc and busybox-static).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/node_support/mod.rs"]
mod node_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use node_support::NodeProc;
use reconcilers::runtime::client::{ListParams, WatchEvent, WriteParams};
use reconcilers::runtime::{Api, Client};
use schemas::{MetaExt, TimeExt};
use support::{Server, korral_bin};

const PODS: usize = 30;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates PODS pods (10/s) on `node` and returns create → Ready latencies in seconds.
async fn start_latency(client: &Client, node: &str, container: serde_json::Value) -> Vec<f64> {
    let api: Api<Pod> = client.api(Some("default"));
    let list = api.list(&ListParams::default()).await.expect("list");
    let mut stream = Box::pin(
        api.watch(
            &ListParams::default(),
            &list.resource_version,
            Duration::from_secs(120),
        )
        .await
        .expect("watch"),
    );
    let mut created: HashMap<String, Instant> = HashMap::new();
    let mut ready: HashMap<String, f64> = HashMap::new();
    let mut next = 0usize;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_secs(180);
    while ready.len() < PODS && Instant::now() < deadline {
        tokio::select! {
            _ = ticker.tick(), if next < PODS => {
                let name = format!("{node}-bench-{next}");
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name}, "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [container]}
                })).expect("pod");
                created.insert(name, Instant::now());
                api.create(&pod, &WriteParams::default()).await.expect("create");
                next += 1;
            }
            ev = stream.next() => match ev {
                Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                    let name = p.metadata.name_str().to_string();
                    if let Some(t0) = created.get(&name) && is_ready(&p) && !ready.contains_key(&name) {
                        ready.insert(name, t0.elapsed().as_secs_f64());
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    let mut v: Vec<f64> = ready.into_values().collect();
    v.sort_by(f64::total_cmp);
    for i in 0..PODS {
        let _ = api
            .delete(&format!("{node}-bench-{i}"), &Default::default())
            .await;
    }
    v
}

fn report(name: &str, v: &[f64]) {
    println!(
        "| pod start, {name:<10} | {:>3}/{PODS} Ready | p50 {:>6.3} s | p99 {:>6.3} s | SLO p99 ≤ 5 s: {} |",
        v.len(),
        percentile(v, 50.0),
        percentile(v, 99.0),
        if v.len() == PODS && percentile(v, 99.0) <= 5.0 {
            "met"
        } else {
            "MISSED"
        }
    );
}

fn node_args(
    kc: &std::path::Path,
    name: &str,
    data: &std::path::Path,
    extra: &[&str],
) -> Vec<String> {
    let mut a: Vec<String> = [
        "--kubeconfig",
        &kc.to_string_lossy(),
        "--name",
        name,
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Runs `korral node --simulate n` and measures Lease renewal gaps over `window`.
async fn simulated(
    s: &Server,
    client: &Client,
    n: usize,
    window: Duration,
) -> (usize, usize, f64, f64) {
    let log = std::fs::File::create(s.dir.path().join(format!("sim-{n}.log"))).expect("log");
    let mut child = std::process::Command::new(korral_bin())
        .arg("node")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["--simulate", &n.to_string(), "--name", &format!("sim{n}")])
        .arg("--data-dir")
        .arg(s.dir.path().join(format!("sim{n}")))
        .stderr(log)
        .spawn()
        .expect("simulate");
    let leases: Api<Lease> = client.api(Some("kube-node-lease"));
    let prefix = format!("sim{n}-");
    let count = |l: &[Lease]| {
        l.iter()
            .filter(|x| x.metadata.name_str().starts_with(&prefix))
            .count()
    };
    let t0 = Instant::now();
    let mut registered = 0;
    while t0.elapsed() < Duration::from_secs(120) {
        registered = count(
            &leases
                .list_all(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default(),
        );
        if registered == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let list = leases
        .list_all(&ListParams::default())
        .await
        .expect("leases");
    let mut last: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for l in &list.items {
        if let Some(t) = l.spec.as_ref().and_then(|s| s.renew_time.as_ref()) {
            last.insert(l.metadata.name_str().to_string(), t.utc());
        }
    }
    let mut stream = Box::pin(
        leases
            .watch(
                &ListParams::default(),
                &list.resource_version,
                Duration::from_secs(60),
            )
            .await
            .expect("watch"),
    );
    let mut gaps: Vec<f64> = Vec::new();
    let end = tokio::time::Instant::now() + window;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            ev = stream.next() => match ev {
                Some(Ok(WatchEvent::Modified(l))) if l.metadata.name_str().starts_with(&prefix) => {
                    if let Some(t) = l.spec.as_ref().and_then(|s| s.renew_time.as_ref())
                        && let Some(prev) = last.insert(l.metadata.name_str().to_string(), t.utc())
                    {
                        gaps.push((t.utc() - prev).num_milliseconds() as f64 / 1000.0);
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    // nodes that never renewed within the window are late too
    let now = chrono::Utc::now();
    let stale = last
        .iter()
        .filter(|(k, t)| k.starts_with(&prefix) && (now - **t).num_seconds() > 12)
        .count();
    let _ = child.kill();
    let _ = child.wait();
    gaps.sort_by(f64::total_cmp);
    let late = gaps.iter().filter(|g| **g > 12.0).count() + stale;
    (
        registered,
        late,
        percentile(&gaps, 50.0),
        percentile(&gaps, 99.0),
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _ = rustls::crypto::ring::default_provider().install_default();
    println!(
        "node daemon benchmark ({PODS} pods created at 10/s per runtime; Kubernetes SLO: pod startup p99 ≤ 5 s)"
    );

    // process runtime
    {
        let s = Server::start();
        let client = Client::from_kubeconfig(Some(&s.kubeconfig), "bench").expect("client");
        let kc = s.kubeconfig_for("node:bench-proc");
        let data = s.dir.path().join("proc-data");
        std::fs::create_dir_all(&data).expect("dir");
        let data = data.canonicalize().expect("canonical");
        let node = NodeProc::start(
            &data,
            &s.dir.path().join("proc.log"),
            &node_args(&kc, "bench-proc", &data, &["--runtime", "process"]),
        );
        node_support::wait_node(&s, &node, "bench-proc");
        let v = rt.block_on(start_latency(&client, "bench-proc", serde_json::json!({"name": "c", "image": "busybox", "command": ["busybox", "sleep", "3600"]})));
        report("process", &v);
        drop(node);
        // the containers outlive the daemon by design: stop them
        if let Ok(rd) = std::fs::read_dir(data.join("containers")) {
            for e in rd.flatten() {
                if let Ok(pid) = std::fs::read_to_string(e.path().join("pid")) {
                    let _ = std::process::Command::new("kill")
                        .args(["-9", "--", &format!("-{}", pid.trim())])
                        .status();
                }
            }
        }
    }

    // containerd runtime
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if root && node_support::containerd::run("containerd", &["--version"]).0 {
        let s = Server::start();
        let client = Client::from_kubeconfig(Some(&s.kubeconfig), "bench").expect("client");
        let name = format!("bench-ctd-{}", std::process::id());
        let dir = s.dir.path().join("ctd");
        std::fs::create_dir_all(&dir).expect("dir");
        let ctd = node_support::containerd::Containerd::start(&dir, &name);
        let tar = dir.join("busybox.tar");
        assert!(
            std::process::Command::new(korral_bin())
                .args(["image", "build-busybox"])
                .arg(&tar)
                .status()
                .expect("build")
                .success()
        );
        assert!(
            std::process::Command::new(korral_bin())
                .args(["image", "import"])
                .arg(&tar)
                .arg("--containerd-address")
                .arg(&ctd.sock)
                .args(["--namespace", &ctd.namespace])
                .status()
                .expect("import")
                .success()
        );
        let kc = s.kubeconfig_for(&format!("node:{name}"));
        let data = dir.join("node-data");
        let sock = ctd.sock.to_string_lossy().into_owned();
        let node = NodeProc::start(
            &data,
            &s.dir.path().join("ctd-node.log"),
            &node_args(
                &kc,
                &name,
                &data,
                &[
                    "--runtime",
                    "containerd",
                    "--proxy-mode",
                    "none",
                    "--containerd-address",
                    &sock,
                    "--containerd-namespace",
                    &ctd.namespace,
                ],
            ),
        );
        node_support::wait_node(&s, &node, &name);
        let v = rt.block_on(start_latency(
            &client,
            &name,
            serde_json::json!({"name": "c", "image": "busybox", "command": ["sleep", "3600"]}),
        ));
        report("containerd", &v);
        drop(node);
        drop(ctd);
    } else {
        println!("| pod start, containerd | skipped: needs root and containerd |");
    }

    // simulated nodes: a /8 pod network holds 65,536 per-node /24s (the default /16 only 256)
    let s = Server::start_with(&["--cluster-cidr", "10.0.0.0/8"]);
    let client = Client::from_kubeconfig(Some(&s.kubeconfig), "bench").expect("client");
    println!(
        "simulated nodes in one process (heartbeat 10 s; late = a renewal gap over 12 s or no renewal in the window):"
    );
    for n in [100usize, 1000, 3000] {
        let (registered, late, p50, p99) =
            rt.block_on(simulated(&s, &client, n, Duration::from_secs(25)));
        println!(
            "| {n:>5} nodes | {registered:>5} registered | renewal gap p50 {p50:>5.2} s, p99 {p99:>5.2} s | late {late} |"
        );
    }
}
