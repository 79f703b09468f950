//! Benchmark of the workload controllers, end to end on this machine: a
//! `korral server` and a separate `korral controllers` process (replicaset,
//! deployment, garbage collector, namespace); 1,000
//! Deployments × 10 replicas are created through the API and the clock runs
//! until all 10,000 pods exist. Prints reconciles/s, the convergence time,
//! the controller process's resident memory, and as the peer the rate at
//! which 16 clients create the same kind of pods straight through the API.
//!
//! `cargo bench --bench controllers` (`-- --deployments N` to change the size).

mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use reconcilers::runtime::{ListParams, WatchEvent, WriteParams};

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
    let (mut server, client) =
        common::start_server(dir.path(), &dir.path().join("server.log"), &[]).await;
    // the workload controllers this measures (no nodes here: a scheduler would only
    // write 10,000 "0/0 nodes are available" conditions and events); idle:
    // leading and serving metrics, nothing to do yet
    let (mut controllers, metrics_port) = common::start_controllers(
        &client,
        dir.path(),
        "replicaset,deployment,garbage-collector,namespace",
        &dir.path().join("controllers.log"),
    )
    .await;
    let rss_idle = common::rss_kib(controllers.id());
    // Pods are counted from a watch opened before the first create: polling
    // lists of 10,000 pods would load the server more than the controllers.
    let pods = client.api::<Pod>(Some("default"));
    let want = count * usize::try_from(replicas).unwrap_or(0);
    let since = pods
        .list(&ListParams {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .expect("list pods")
        .resource_version;
    let stream = pods
        .watch(&ListParams::default(), &since, Duration::from_secs(120))
        .await
        .expect("watch pods");
    let counter = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut seen = 0usize;
        while seen < want {
            match stream.next().await {
                Some(Ok(WatchEvent::Added(_))) => seen += 1,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("pod watch failed after {seen}/{want} pods: {e}"),
                None => panic!("pod watch ended after {seen}/{want} pods"),
            }
        }
    });
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
    let limit = Duration::from_secs(1800).saturating_sub(start.elapsed());
    let peak_rss = common::peak_rss_until("convergence", &controllers, limit, || {
        std::future::ready(counter.is_finished())
    })
    .await;
    counter.await.expect("pod counter");
    let converged = start.elapsed();
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let reconciles = metric(&text, "controller_reconciles_total");
    // The peer in the same run: the same pods created straight through the
    // API by 16 clients with the controllers stopped — the ceiling the
    // controllers' pod creation can reach on this server.
    let _ = controllers.kill();
    let _ = controllers.wait();
    let direct_count = want.min(5000);
    let direct = common::direct_creates(&client, "direct", direct_count).await;
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
    let direct_rate = direct_count as f64 / direct.as_secs_f64();
    println!(
        "{:<52} {:>12}",
        format!("peer: {direct_count} pods created directly, 16 clients"),
        format!("{direct_rate:.0}/s")
    );
    println!(
        "{:<52} {:>12}",
        "controllers' pod creation rate ÷ direct API rate",
        format!(
            "{:.2}x",
            want as f64 / converged.as_secs_f64() / direct_rate
        )
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
    let _ = server.kill();
    let _ = server.wait();
}
