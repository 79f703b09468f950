//! Ingress proxy benchmark (loopback only, no cluster): a small HTTP
//! backend (axum, keep-alive) and the node's Ingress proxy in front of it
//! with a routing table built from one Ingress, Service and Endpoints, the
//! same way the controller builds it. The same load (CONCURRENCY clients
//! with keep-alive, at most REQUESTS requests or LIMIT of time per row) goes
//! directly to the backend, through the proxy over HTTP/1.1 with a Host
//! header, and through the proxy over HTTPS (HTTP/2 by ALPN, SNI). Prints
//! requests/s and latency percentiles, with ratios to the direct run.
//! Run: `cargo bench --bench ingress`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use node::ingress::proxy::Proxy;
use node::ingress::{Shared, korral_class, routes, tls};
use serde_json::json;

const REQUESTS: usize = 20_000;
const CONCURRENCY: usize = 16;
const LIMIT: Duration = Duration::from_secs(15);
const BODY: &str = "hello from the backend\n";

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("object"))
}

/// The table the controller would build for one Ingress `bench.test` → Service `web` → `backend`.
fn table(backend: SocketAddr) -> routes::Table {
    let ing: Arc<Ingress> = obj(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"ingressClassName": "korral", "rules": [{"host": "bench.test", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}));
    let svc: Arc<Service> = obj(json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": backend.port()}]}}));
    let ep: Arc<Endpoints> = obj(json!({"metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": backend.ip().to_string()}],
            "ports": [{"name": "http", "port": backend.port()}]}]}));
    let class: Arc<IngressClass> = Arc::new(korral_class(true));
    routes::build(&[ing], &[class], &[svc], &[ep], &[])
}

struct Run {
    count: usize,
    took: Duration,
    latencies: Vec<Duration>,
    errors: usize,
}

/// Sends the load with `client` to `url` (with `host` as Host header when given).
async fn load(client: reqwest::Client, url: String, host: Option<&'static str>) -> Run {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < REQUESTS
                && started.elapsed() < LIMIT
            {
                let t = Instant::now();
                let mut req = client.get(&url);
                if let Some(h) = host {
                    req = req.header("host", h);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(b) if b.len() == BODY.len() => lat.push(t.elapsed()),
                        _ => errors += 1,
                    },
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut run = Run {
        count: 0,
        took: Duration::ZERO,
        latencies: Vec::new(),
        errors: 0,
    };
    for t in tasks {
        let (lat, errors) = t.await.expect("load task");
        run.latencies.extend(lat);
        run.errors += errors;
    }
    run.took = started.elapsed();
    run.count = run.latencies.len();
    run.latencies.sort();
    run
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn rate(r: &Run) -> f64 {
    r.count as f64 / r.took.as_secs_f64().max(1e-9)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // the backend
        let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let backend_addr = backend.local_addr().expect("addr");
        let app = axum::Router::new().fallback(|| async { BODY });
        tokio::spawn(async move { axum::serve(backend, app).await });
        // the proxy, HTTP and HTTPS
        let shared = Shared::default();
        shared.set(table(backend_addr));
        let proxy = Proxy::new(shared.clone());
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let https = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (http_port, https_port) = (
            http.local_addr().expect("addr").port(),
            https.local_addr().expect("addr").port(),
        );
        tokio::spawn(proxy.clone().serve(http, None));
        tokio::spawn(proxy.serve(https, Some(tls::server_config(shared).expect("tls"))));

        let plain = || {
            reqwest::Client::builder()
                .http1_only()
                .pool_max_idle_per_host(CONCURRENCY)
                .build()
                .expect("client")
        };
        let secure = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .resolve("bench.test", SocketAddr::from(([127, 0, 0, 1], https_port)))
            .build()
            .expect("client");
        // warm up connections and the code paths
        for (c, u, h) in [
            (plain(), format!("http://{backend_addr}/"), None),
            (plain(), format!("http://127.0.0.1:{http_port}/"), Some("bench.test")),
        ] {
            let mut r = c.get(&u);
            if let Some(h) = h {
                r = r.header("host", h);
            }
            let body = r.send().await.expect("warm-up").text().await.expect("body");
            assert_eq!(body, BODY, "{u}");
        }
        let direct = load(plain(), format!("http://{backend_addr}/"), None).await;
        let via_http = load(
            plain(),
            format!("http://127.0.0.1:{http_port}/"),
            Some("bench.test"),
        )
        .await;
        let via_https = load(secure, format!("https://bench.test:{https_port}/"), None).await;

        println!();
        println!(
            "## Ingress proxy: {CONCURRENCY} keep-alive clients, up to {REQUESTS} requests or {} s per row, loopback",
            LIMIT.as_secs()
        );
        println!();
        println!("| path | requests | errors | requests/s | ratio to direct | p50 | p99 | p99 ratio |");
        println!("|---|---|---|---|---|---|---|---|");
        for (name, r) in [
            ("directly to the backend (HTTP/1.1)", &direct),
            ("through the Ingress, HTTP/1.1 + Host", &via_http),
            ("through the Ingress, HTTPS + HTTP/2 (SNI)", &via_https),
        ] {
            println!(
                "| {name} | {} | {} | {:.0} | {:.2}x | {} | {} | {:.2}x |",
                r.count,
                r.errors,
                rate(r),
                rate(r) / rate(&direct).max(1e-9),
                us(pct(&r.latencies, 50.0)),
                us(pct(&r.latencies, 99.0)),
                pct(&r.latencies, 99.0).as_secs_f64()
                    / pct(&direct.latencies, 99.0).as_secs_f64().max(1e-9),
            );
        }
    });
}
