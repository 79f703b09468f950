//! What the end-to-end benchmarks share: starting `korral` processes and a
//! `korral server` (no controllers) on a free port, ready for a client.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reconcilers::runtime::Client;

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
