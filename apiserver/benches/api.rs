//! Benchmark of the API server, in one run on this machine: creates/s through
//! the HTTPS API next to writes/s straight into the same store (the physical
//! limit), list latency at 10,000 and 100,000 pods (one request and pages of
//! 500, timed to each body's last byte; items counted afterwards),
//! the watch cache's memory per pod against the pod's JSON, resident memory
//! per stored pod, and watch fan-out latency to 1,000 watchers.
//!
//! `cargo bench -p apiserver --bench api` (`-- --quick` for a smaller run;
//! `-- --no-watch-cache` to measure the store paths alone; `-- --watchers N`
//! for another fan-out size).

use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::registry::{Registry, WriteOptions};
use apiserver::server::{ServerConfig, start};
use apiserver::store::{LocalOptions, LocalStore, Store};
use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

const CONCURRENCY: usize = 16;

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench", "shard": name.len().to_string()}},
        "spec": {"containers": [{"name": "web", "image": "registry.example.com/web:1.0", "ports": [{"containerPort": 8080}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}})
}

/// What the list benchmark reads of a list: its continue token and how many items.
#[derive(Deserialize)]
struct Skim {
    metadata: SkimMeta,
    items: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
struct SkimMeta {
    #[serde(rename = "continue")]
    cont: Option<String>,
}

/// A list's body, read to the last byte: its chunks as they came (joined
/// later, outside the timed part, by [`joined`]).
async fn body(mut resp: reqwest::Response) -> Vec<bytes::Bytes> {
    assert_eq!(resp.status().as_u16(), 200, "the list succeeds");
    let mut chunks = Vec::new();
    while let Some(chunk) = resp.chunk().await.expect("the body") {
        chunks.push(chunk);
    }
    chunks
}

fn joined(chunks: &[bytes::Bytes]) -> Vec<u8> {
    chunks.concat()
}

/// A list's continue token, read from its head (metadata precedes items)
/// without parsing the items.
fn continue_of(body: &[u8]) -> Option<String> {
    const FIELD: &[u8] = b"\"continue\":\"";
    let head = &body[..body.len().min(4096)];
    let at = head.windows(FIELD.len()).position(|w| w == FIELD)? + FIELD.len();
    let len = head[at..].iter().position(|b| *b == b'"')?;
    Some(String::from_utf8_lossy(&head[at..at + len]).into_owned())
}

fn skim(body: &[u8]) -> Skim {
    serde_json::from_slice(body).expect("a list")
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

/// A client on HTTP/1.1, so each watcher has its own connection as separate
/// clients (kubelets, controllers) do; on one HTTP/2 connection 1,000
/// watches would take every stream the server allows a connection.
fn watcher_client(ca_pem: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("the CA parses");
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .http1_only()
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
    let watch_cache = !std::env::args().any(|a| a == "--no-watch-cache");
    let (creates, big, watchers) = if quick {
        (1_000, 20_000, 100)
    } else {
        (5_000, 100_000, 1_000)
    };
    // `--watchers N` overrides the fan-out's size
    let args: Vec<String> = std::env::args().collect();
    let watchers = args
        .iter()
        .position(|a| a == "--watchers")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(watchers);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.watch_cache = watch_cache;
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

    // pods need their ServiceAccount (no controller runs here to make it)
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
    let r = http
        .post(format!("{base}/api/v1/namespaces/default/serviceaccounts"))
        .bearer_auth(&token)
        .json(&sa)
        .send()
        .await
        .expect("serviceaccount");
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
                assert_eq!(r.status().as_u16(), 201);
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
        if let Some(caches) = registry.caches() {
            // a warm cache, as kube-apiserver's always is after start
            let warm = Instant::now();
            caches
                .ready(pods_info, Duration::from_secs(300))
                .await
                .expect("the pods cache becomes ready");
            eprintln!("pods cache ready in {:.1}s", warm.elapsed().as_secs_f64());
        }
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let r = http
                .get(format!("{base}/api/v1/namespaces/default/pods"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("list");
            let chunks = body(r).await;
            times.push(t.elapsed());
            assert_eq!(skim(&joined(&chunks)).items.len(), target);
        }
        times.sort();
        rows.push((
            format!("list {target} pods, one request (median of 3)"),
            format!("{:.0} ms", times[1].as_secs_f64() * 1000.0),
        ));
        let t = Instant::now();
        let mut cont: Option<String> = None;
        let mut pages = Vec::new();
        loop {
            let mut url = format!("{base}/api/v1/namespaces/default/pods?limit=500");
            if let Some(c) = &cont {
                url.push_str(&format!("&continue={c}"));
            }
            let r = http
                .get(url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("page");
            let chunks = body(r).await;
            let mut head = Vec::new();
            for c in &chunks {
                if head.len() >= 4096 {
                    break;
                }
                head.extend_from_slice(c);
            }
            cont = continue_of(&head);
            pages.push(chunks);
            if cont.is_none() {
                break;
            }
        }
        let paged = t.elapsed();
        let mut seen = 0;
        for (i, page) in pages.iter().enumerate() {
            let page = skim(&joined(page));
            assert_eq!(page.metadata.cont.is_some(), i + 1 < pages.len());
            seen += page.items.len();
        }
        assert_eq!(seen, target);
        rows.push((
            format!("list {target} pods in pages of 500"),
            format!("{:.0} ms", paged.as_secs_f64() * 1000.0),
        ));
        if target == big {
            let per_pod = rss_bytes().saturating_sub(rss_before) as f64 / target as f64;
            rows.push((
                "resident memory per stored pod (server + store + cache, in-process)".into(),
                format!("{per_pod:.0} B"),
            ));
            if let Some(stats) = registry.caches().and_then(|c| c.stats("pods/")) {
                let n = stats.objects.max(1) as f64;
                let cached = stats.footprint_bytes as f64 / n;
                let json = stats.json_bytes as f64 / n;
                rows.push((
                    "watch cache bytes per pod (by its allocations)".into(),
                    format!("{cached:.0} B"),
                ));
                rows.push(("a pod's JSON as served".into(), format!("{json:.0} B")));
                rows.push((
                    "watch cache bytes / JSON bytes".into(),
                    format!("{:.2}", cached / json),
                ));
            }
        }
    }

    // watch fan-out: time from write to each watcher's delivery
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
    let watch_http = watcher_client(&ca);
    for _ in 0..watchers {
        let (http, base, token, tx, rv) = (
            watch_http.clone(),
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
    let deadline = Instant::now() + Duration::from_secs(180);
    while !server
        .app
        .metrics
        .render()
        .contains(&format!("apiserver_longrunning_watches {watchers}"))
    {
        assert!(
            Instant::now() < deadline,
            "{watchers} watchers did not connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::new();
    let mut write_times = Vec::new();
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
        write_times.push(sent.elapsed());
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
    write_times.sort();
    rows.push((
        "  (of which the write itself: create round trip, p50)".into(),
        format!(
            "{:.1} ms",
            percentile(&write_times, 0.5).as_secs_f64() * 1000.0
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
