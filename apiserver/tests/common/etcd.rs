//! A private etcd for tests and benchmarks: Debian's `etcd` binary on free
//! loopback ports with a temporary data dir, ready when it answers a status
//! call, killed (and waited for) when dropped, even if the test panicked.
//!
//! Shared by `tests/` (as `common::etcd`) and `benches/store.rs` (by path).

#![allow(dead_code)]

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

/// How long etcd may take to answer after it was started.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// A running etcd process.
pub struct EtcdProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

impl EtcdProcess {
    /// Starts etcd (the `ETCD_BIN` binary, or `etcd` on PATH) and waits until
    /// it answers. The error says why and includes etcd's log.
    pub async fn start() -> Result<EtcdProcess, String> {
        let mut last_error = String::new();
        // Ports are picked free but could be taken before etcd binds them:
        // retry (with new ports) when etcd exits early.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("korral-etcd-")
                .tempdir()
                .map_err(|e| format!("cannot create a temporary directory for etcd: {e}"))?;
            let mut etcd = EtcdProcess {
                child: None,
                dir,
                client_port: free_port()?,
                peer_port: free_port()?,
            };
            etcd.spawn()?;
            match etcd.wait_ready().await {
                Ok(()) => return Ok(etcd),
                Err((true, e)) => last_error = e,
                Err((false, e)) => return Err(e),
            }
        }
        Err(last_error)
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let binary = std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".into());
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("cannot create etcd's log file: {e}"))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("cannot share etcd's log file: {e}"))?;
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(&binary)
            .arg("--name=korral-test")
            .arg(format!("--data-dir={}", self.dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=korral-test={peer}"))
            .arg("--initial-cluster-state=new")
            // Idle watches get progress notifications quickly (Kubernetes runs 5s).
            .arg("--experimental-watch-progress-notify-interval=500ms")
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| {
                format!("cannot run {binary:?} (install Debian's etcd-server package, or set ETCD_BIN): {e}")
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// Polls etcd's status until it answers, it exits, or the deadline
    /// passes; the error says whether etcd exited.
    async fn wait_ready(&mut self) -> Result<(), (bool, String)> {
        let deadline = Instant::now() + READY_DEADLINE;
        let mut last;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err((
                    true,
                    format!(
                        "etcd exited ({status}) before it was ready; its log:\n{}",
                        self.log_tail()
                    ),
                ));
            }
            let opts = ConnectOptions::new()
                .with_connect_timeout(Duration::from_millis(500))
                .with_timeout(Duration::from_secs(1));
            match Client::connect([self.endpoint()], Some(opts)).await {
                Ok(mut client) => match client.status().await {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > deadline {
                return Err((
                    false,
                    format!(
                        "etcd at {} was not ready after {READY_DEADLINE:?} (last error: {last}); its log:\n{}",
                        self.endpoint(),
                        self.log_tail()
                    ),
                ));
            }
            // Polling interval, not synchronisation: the loop checks the condition.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Kills etcd (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills etcd and starts it again on the same ports and data.
    pub async fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()?;
        self.wait_ready().await.map_err(|(_, e)| e)
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}
