//! Benchmark of the workload controllers, end to end on this machine: a
//! `korral server` and a separate `korral controllers` process; 1,000
//! Deployments × 10 replicas are created through the API and the clock runs
//! until all 10,000 pods exist. Prints reconciles/s, the convergence time,
//! and the controller process's resident memory.
//!
//! `cargo bench --bench controllers` (`-- --deployments N` to change the size).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reconcilers::runtime::{Client, ListParams, WriteParams};
use schemas::apps::Deployment;
use schemas::core::Pod;

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

fn spawn(args: &[&str], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_korral"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("spawn korral")
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn deployment(i: usize, replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("app-{i:04}")},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": format!("app-{i:04}")}},
                 "template": {"metadata": {"labels": {"app": format!("app-{i:04}")}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}
    }))
    .expect("deployment")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = args
        .iter()
        .position(|a| a == "--deployments")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let replicas = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
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
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let mut controllers = spawn(
        &[
            "controllers",
            "--kubeconfig",
            &dir.path().join("controller.kubeconfig").to_string_lossy(),
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
        ],
        &dir.path().join("controllers.log"),
    );
    let rss_idle = {
        tokio::time::sleep(Duration::from_secs(2)).await;
        rss_kib(controllers.id())
    };
    eprintln!("creating {count} deployments × {replicas} replicas…");
    let start = Instant::now();
    let api = client.api::<Deployment>(Some("default"));
    let mut tasks = Vec::new();
    for w in 0..16 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..count).step_by(16) {
                api.create(&deployment(i, replicas), &WriteParams::default())
                    .await
                    .expect("create deployment");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let created = start.elapsed();
    let pods = client.api::<Pod>(Some("default"));
    let want = count * usize::try_from(replicas).unwrap_or(0);
    let mut peak_rss = 0;
    loop {
        peak_rss = peak_rss.max(rss_kib(controllers.id()));
        let n = pods
            .list_all(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        if n >= want {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "did not converge: {n}/{want} pods"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let converged = start.elapsed();
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let reconciles = metric(&text, "controller_reconciles_total");
    println!(
        "korral controllers benchmark: {count} Deployments × {replicas} replicas ({want} pods), 2 processes on this machine"
    );
    println!(
        "{:<52} {:>12}",
        "deployments created through the API",
        format!("{:.1} s", created.as_secs_f64())
    );
    println!(
        "{:<52} {:>12}",
        "time from the first create to all pods created",
        format!("{:.1} s", converged.as_secs_f64())
    );
    println!(
        "{:<52} {:>12}",
        "pods created per second",
        format!("{:.0}", want as f64 / converged.as_secs_f64())
    );
    println!(
        "{:<52} {:>12}",
        "reconciles (all controllers)",
        format!("{reconciles:.0}")
    );
    println!(
        "{:<52} {:>12}",
        "reconciles per second",
        format!("{:.0}", reconciles / converged.as_secs_f64())
    );
    println!(
        "{:<52} {:>12}",
        "controller process RSS, idle",
        format!("{} MiB", rss_idle / 1024)
    );
    println!(
        "{:<52} {:>12}",
        "controller process RSS, peak while converging",
        format!("{} MiB", peak_rss / 1024)
    );
    let _ = controllers.kill();
    let _ = server.kill();
    let _ = controllers.wait();
    let _ = server.wait();
}
