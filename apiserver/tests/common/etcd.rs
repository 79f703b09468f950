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

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};

/// How long etcd may take to answer after it was started.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// Certificates for an etcd that serves TLS and requires client certificates.
#[derive(Clone, Debug)]
pub struct TestTls {
    /// The CA that signed both sides.
    pub ca: PathBuf,
    /// etcd's certificate (for 127.0.0.1) and key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate and key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestTls {
    /// Makes a CA, a server certificate for 127.0.0.1 and a client
    /// certificate in `dir` with the `openssl` command.
    pub fn generate(dir: &std::path::Path) -> Result<TestTls, String> {
        let p = |name: &str| dir.join(name);
        let openssl = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .map_err(|e| {
                    format!("cannot run openssl (install Debian's openssl package): {e}")
                })?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "openssl {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=korral-test-ca",
        ]);
        openssl(&ca)?;
        for (name, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            let (key, csr, crt, extfile) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("{name}.ext"),
            );
            std::fs::write(p(&extfile), ext).map_err(|e| format!("cannot write {extfile}: {e}"))?;
            let subject = format!("/CN=korral-test-{name}");
            let mut req = vec!["req"];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
            openssl(&req)?;
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &extfile,
            ])?;
        }
        Ok(TestTls {
            ca: p("ca.crt"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            client_cert: p("client.crt"),
            client_key: p("client.key"),
        })
    }

    fn client_options(&self) -> Result<TlsOptions, String> {
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        Ok(TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read(&self.ca)?))
            .identity(Identity::from_pem(
                read(&self.client_cert)?,
                read(&self.client_key)?,
            )))
    }
}

/// A running etcd process.
pub struct EtcdProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<TestTls>,
    /// The member name and the `--initial-cluster` it starts with.
    name: String,
    initial_cluster: Option<String>,
}

impl EtcdProcess {
    /// Starts etcd (the `ETCD_BIN` binary, or `etcd` on PATH) and waits until
    /// it answers. The error says why and includes etcd's log.
    pub async fn start() -> Result<EtcdProcess, String> {
        Self::start_with(None).await
    }

    /// Like `start`, serving TLS with these certificates when given.
    pub async fn start_with(tls: Option<TestTls>) -> Result<EtcdProcess, String> {
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
                tls: tls.clone(),
                name: "korral-test".into(),
                initial_cluster: None,
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
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
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
        let mut command = Command::new(&binary);
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cert-file={}", tls.server_cert.display()))
                .arg(format!("--key-file={}", tls.server_key.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca.display()))
                .arg("--client-cert-auth");
        }
        let initial_cluster = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={peer}", self.name));
        let child = command
            .arg(format!("--name={}", self.name))
            .arg(format!("--data-dir={}", self.dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg("--initial-cluster-token=korral-test")
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
            let mut opts = ConnectOptions::new()
                .with_connect_timeout(Duration::from_millis(500))
                .with_timeout(Duration::from_secs(1));
            if let Some(tls) = &self.tls {
                opts = opts.with_tls(tls.client_options().map_err(|e| (false, e))?);
            }
            match Client::connect([self.endpoint()], Some(opts)).await {
                // A linearizable read: answers only once the member has a leader.
                Ok(mut client) => match client
                    .get("ready", Some(GetOptions::new().with_count_only()))
                    .await
                {
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

/// A cluster of etcd members on loopback ports.
pub struct EtcdCluster {
    /// The members, in the order of `endpoints`.
    pub members: Vec<EtcdProcess>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until each answers a linearizable read.
    pub async fn start(n: usize) -> Result<EtcdCluster, String> {
        let mut members = Vec::new();
        for i in 0..n {
            members.push(EtcdProcess {
                child: None,
                dir: tempfile::Builder::new()
                    .prefix("korral-etcd-")
                    .tempdir()
                    .map_err(|e| format!("cannot create a temporary directory for etcd: {e}"))?,
                client_port: free_port()?,
                peer_port: free_port()?,
                tls: None,
                name: format!("member{i}"),
                initial_cluster: None,
            });
        }
        let initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        let initial = initial.join(",");
        for m in &mut members {
            m.initial_cluster = Some(initial.clone());
            m.spawn()?;
        }
        for m in &mut members {
            m.wait_ready().await.map_err(|(_, e)| e)?;
        }
        Ok(EtcdCluster { members })
    }

    /// The members' client URLs.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdProcess::endpoint).collect()
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
