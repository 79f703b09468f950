//! What the end-to-end benchmarks share: starting `korral` processes and a
//! `korral server` (no controllers) on a free port, ready for a client.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use reconcilers::runtime::{Client, WriteParams};

/// How often a benchmark checks a condition it waits for.
pub const POLL: Duration = Duration::from_millis(100);

/// Starts `korral ARGS…` with stderr in `log`.
pub fn spawn(args: &[&str], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_korral"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("spawn korral")
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Checks `cond` until it holds, up to `timeout`; panics naming `what` otherwise.
pub async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// Starts `korral server` without controllers on a free port with its data
/// in `data` (plus `extra` flags), and returns it with an admin client once
/// it answers.
// the child is handed to the caller, which stops and waits for it
#[allow(clippy::zombie_processes)]
pub async fn start_server(data: &Path, log: &Path, extra: &[&str]) -> (Child, Client) {
    let listen = format!("127.0.0.1:{}", free_port());
    let data_dir = data.to_string_lossy();
    let mut args = vec![
        "server",
        "--listen",
        &listen,
        "--controllers",
        "none",
        "--data-dir",
        &data_dir,
    ];
    args.extend_from_slice(extra);
    let mut server = spawn(&args, log);
    let kubeconfig = data.join("kubeconfig.yaml");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(c) = Client::from_kubeconfig(Some(&kubeconfig), "bench")
            && c.get_raw("/version").await.is_ok()
        {
            return (server, c);
        }
        if Instant::now() >= deadline {
            let _ = server.kill();
            let _ = server.wait();
            panic!(
                "the server did not answer within 60 s (log: {})",
                log.display()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How often a benchmark samples a process's resident memory.
pub const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Samples the resident memory of `process` every [`RSS_SAMPLE_EVERY`]
/// until `done` holds and returns the peak in KiB; panics naming `what`
/// after `limit`.
pub async fn peak_rss_until<F: std::future::Future<Output = bool>>(
    what: &str,
    process: &Child,
    limit: Duration,
    mut done: impl FnMut() -> F,
) -> u64 {
    let start = Instant::now();
    let mut peak = 0;
    while !done().await {
        peak = peak.max(rss_kib(process.id()));
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(RSS_SAMPLE_EVERY).await;
    }
    peak.max(rss_kib(process.id()))
}

/// The resident memory of process `pid` in KiB (0 when unreadable).
pub fn rss_kib(pid: u32) -> u64 {
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

/// CPU time (user + system) process `pid` has used so far (zero when unreadable).
pub fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // fields after the command's closing parenthesis; utime and stime are the 12th and 13th
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a configuration value
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / per_second)
}

/// Starts `korral controllers --controllers LIST` against the server whose
/// data is in `data` (its `controller.kubeconfig`), metrics on a free port,
/// and returns it with that port once it leads (its Lease is held) and
/// serves metrics.
// the child is handed to the caller, which stops and waits for it
#[allow(clippy::zombie_processes)]
pub async fn start_controllers(
    client: &Client,
    data: &Path,
    list: &str,
    log: &Path,
) -> (Child, u16) {
    use k8s_openapi::api::coordination::v1::Lease;
    let metrics_port = free_port();
    let controllers = spawn(
        &[
            "controllers",
            "--kubeconfig",
            &data.join("controller.kubeconfig").to_string_lossy(),
            "--controllers",
            list,
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
        ],
        log,
    );
    let leases = client.api::<Lease>(Some("kube-system"));
    wait_until("the controllers to lead", Duration::from_secs(60), || {
        let leases = leases.clone();
        async move {
            leases
                .get("korral-controllers")
                .await
                .ok()
                .and_then(|l| l.spec.and_then(|s| s.holder_identity))
                .is_some()
                && reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
                    .await
                    .is_ok()
        }
    })
    .await;
    (controllers, metrics_port)
}

/// Creates namespace `ns` and `n` bare pods in it with 16 concurrent
/// clients (the peer of controllers creating pods) and returns how long
/// the pods took.
pub async fn direct_creates(client: &Client, ns: &str, n: usize) -> Duration {
    create_namespace(client, ns).await;
    let api = client.api::<Pod>(Some(ns));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(16) {
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("direct-{i:05}"), "labels": {"app": "direct"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}
                }))
                .expect("pod");
                api.create(&pod, &WriteParams::default())
                    .await
                    .expect("create pod");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    start.elapsed()
}

/// Creates namespace `ns`.
pub async fn create_namespace(client: &Client, ns: &str) {
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).expect("namespace");
    client
        .api::<k8s_openapi::api::core::v1::Namespace>(None)
        .create(&namespace, &WriteParams::default())
        .await
        .expect("create namespace");
}
