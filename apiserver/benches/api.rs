//! Benchmark of the API server, in one run on this machine: creates/s through
//! the HTTPS API next to writes/s straight into the same store (the physical
//! limit), list latency at 10,000 and 100,000 pods, watch fan-out latency to
//! 100 watchers, and resident memory per stored pod.
//!
//! `cargo bench -p apiserver --bench api` (`-- --quick` for a smaller run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::registry::{Registry, WriteOptions};
use apiserver::server::{ServerConfig, start};
use apiserver::store::{LocalOptions, LocalStore, Store};
use futures_util::StreamExt;
use serde_json::{Value, json};

const CONCURRENCY: usize = 16;

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench", "shard": name.len().to_string()}},
        "spec": {"containers": [{"name": "web", "image": "registry.example.com/web:1.0", "ports": [{"containerPort": 8080}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}})
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
                    * 1024
            })
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn client(ca_pem: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("the CA parses");
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("an HTTPS client")
}

async fn raw_store_writes(n: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(
        LocalStore::open(LocalOptions::new(dir.path().join("raw.redb")))
            .await
            .expect("store"),
    );
    let value = serde_json::to_vec(&pod("p-000000")).expect("json");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let store = store.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(CONCURRENCY) {
                store
                    .create(&format!("pods/default/p-{i:06}"), value.clone())
                    .await
                    .expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (creates, big) = if quick {
        (1_000, 20_000)
    } else {
        (5_000, 100_000)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse().expect("addr");
    let server = start(config).await.expect("server starts");
    let ca = std::fs::read_to_string(dir.path().join("pki/ca.crt")).expect("ca");
    // the admin's token (its kubeconfig carries a client certificate instead)
    let token = server
        .app
        .tokens
        .token_for_role(&apiserver::auth::Role::Admin)
        .expect("the admin's token");
    let http = client(&ca);
    let base = server.url.clone();
    let mut rows: Vec<(String, String)> = Vec::new();

    // the ServiceAccount admission plugin needs the namespace's default
    // account, which the controllers (not running here) would create
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
    let r = http
        .post(format!("{base}/api/v1/namespaces/default/serviceaccounts"))
        .bearer_auth(&token)
        .json(&sa)
        .send()
        .await
        .expect("request");
    assert!(
        r.status().is_success() || r.status().as_u16() == 409,
        "the default ServiceAccount: {}",
        r.status()
    );

    // creates through the API vs the store alone
    let rss_before = rss_bytes();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..creates).step_by(CONCURRENCY) {
                let r = http
                    .post(format!("{base}/api/v1/namespaces/default/pods"))
                    .bearer_auth(&token)
                    .json(&pod(&format!("api-{i:06}")))
                    .send()
                    .await
                    .expect("request");
                let status = r.status().as_u16();
                assert_eq!(status, 201, "{}", r.text().await.unwrap_or_default());
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let api_rate = creates as f64 / start.elapsed().as_secs_f64();
    let raw_rate = raw_store_writes(creates).await;
    rows.push((
        "pod creates/s through HTTPS API (16 clients)".into(),
        format!("{api_rate:.0}"),
    ));
    rows.push((
        "writes/s straight to the embedded store (16 tasks)".into(),
        format!("{raw_rate:.0}"),
    ));
    rows.push((
        "API / store ratio".into(),
        format!("{:.2}", api_rate / raw_rate),
    ));

    // fill to 10,000 then `big` pods through the registry (no HTTP), measure lists through the API
    let registry: Registry = server.app.registry.clone();
    let pods_info = schemas::lookup("v1", "Pod").expect("pods");
    let mut have = creates;
    for target in [10_000usize, big] {
        let fill_start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..CONCURRENCY {
            let registry = registry.clone();
            tasks.push(tokio::spawn(async move {
                for i in (have + w..target).step_by(CONCURRENCY) {
                    registry
                        .create(
                            pods_info,
                            Some("default"),
                            pod(&format!("fill-{i:06}")),
                            &WriteOptions::default(),
                            |_| Ok(()),
                        )
                        .await
                        .expect("create");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        eprintln!(
            "filled to {target} pods in {:.1}s",
            fill_start.elapsed().as_secs_f64()
        );
        have = target;
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let r = http
                .get(format!("{base}/api/v1/namespaces/default/pods"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("list");
            let v: Value = r.json().await.expect("json");
            assert_eq!(v["items"].as_array().map_or(0, Vec::len), target);
            times.push(t.elapsed());
        }
        times.sort();
        rows.push((
            format!("list {target} pods, one request (median of 3)"),
            format!("{:.0} ms", times[1].as_secs_f64() * 1000.0),
        ));
        let t = Instant::now();
        let mut cont: Option<String> = None;
        let mut seen = 0;
        loop {
            let mut url = format!("{base}/api/v1/namespaces/default/pods?limit=500");
            if let Some(c) = &cont {
                url.push_str(&format!("&continue={c}"));
            }
            let v: Value = http
                .get(url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("page")
                .json()
                .await
                .expect("json");
            seen += v["items"].as_array().map_or(0, Vec::len);
            cont = v["metadata"]["continue"].as_str().map(str::to_string);
            if cont.is_none() {
                break;
            }
        }
        assert_eq!(seen, target);
        rows.push((
            format!("list {target} pods in pages of 500"),
            format!("{:.0} ms", t.elapsed().as_secs_f64() * 1000.0),
        ));
        if target == big {
            let per_pod = rss_bytes().saturating_sub(rss_before) as f64 / target as f64;
            rows.push((
                "resident memory per stored pod (server + store, in-process)".into(),
                format!("{per_pod:.0} B"),
            ));
        }
    }

    // watch fan-out: 100 watchers, time from write to each delivery
    let watchers = 100;
    let events = if quick { 10 } else { 30 };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-watch"}});
    http.post(format!("{base}/api/v1/namespaces"))
        .bearer_auth(&token)
        .json(&ns)
        .send()
        .await
        .expect("ns");
    let list: Value = http
        .get(format!("{base}/api/v1/namespaces/bench-watch/configmaps"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    for _ in 0..watchers {
        let (http, base, token, tx, rv) = (
            http.clone(),
            base.clone(),
            token.clone(),
            tx.clone(),
            rv.clone(),
        );
        tokio::spawn(async move {
            let r = http
                .get(format!(
                    "{base}/api/v1/namespaces/bench-watch/configmaps?watch=1&resourceVersion={rv}"
                ))
                .bearer_auth(&token)
                .send()
                .await
                .expect("watch");
            let mut stream = r.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&line)
                        && let Some(name) = v["object"]["metadata"]["name"].as_str()
                    {
                        let _ = tx.send((name.to_string(), Instant::now()));
                    }
                }
            }
        });
    }
    // wait until every watcher is connected: the open-watch gauge counts them
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .app
        .metrics
        .render()
        .contains(&format!("apiserver_longrunning_watches {watchers}"))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::new();
    for e in 0..events {
        let name = format!("w-{e}");
        let sent = Instant::now();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}});
        http.post(format!("{base}/api/v1/namespaces/bench-watch/configmaps"))
            .bearer_auth(&token)
            .json(&cm)
            .send()
            .await
            .expect("create");
        let mut got = 0;
        while got < watchers {
            let Ok(Some((n, at))) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await
            else {
                panic!("watchers did not all see {name}");
            };
            if n == name {
                latencies.push(at - sent);
                got += 1;
            }
        }
    }
    latencies.sort();
    rows.push((
        format!("watch fan-out to {watchers} watchers, p50 (write → delivery)"),
        format!(
            "{:.1} ms",
            percentile(&latencies, 0.5).as_secs_f64() * 1000.0
        ),
    ));
    rows.push((
        format!("watch fan-out to {watchers} watchers, p99"),
        format!(
            "{:.1} ms",
            percentile(&latencies, 0.99).as_secs_f64() * 1000.0
        ),
    ));

    println!(
        "korral API benchmark ({} cores)",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(10);
    for (k, v) in rows {
        println!("{k:<width$}  {v:>12}");
    }
    println!("(Kubernetes SLO for comparison: API call p99 ≤ 1 s; list calls ≤ 30 s.)");
    server.shutdown().await;
}
