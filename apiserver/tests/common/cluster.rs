#![allow(dead_code)]

//! An in-process API server on a free loopback port with the embedded
//! store, driven by the real `kubectl` through the admin kubeconfig the
//! server writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use apiserver::server::{RunningServer, ServerConfig};

/// A running server and a kubectl pointed at it.
pub struct Cluster {
    /// The data directory (store, PKI, kubeconfigs) and kubectl's cache.
    pub dir: tempfile::TempDir,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    runtime: tokio::runtime::Runtime,
    server: Option<RunningServer>,
}

impl Cluster {
    /// Starts a server in a runtime of its own.
    pub fn start() -> Cluster {
        Self::start_with(|_| {})
    }

    /// Starts a server whose configuration `configure` adjusts first.
    pub fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut config = ServerConfig::new(dir.path().join("data"));
        config.listen = "127.0.0.1:0".parse().expect("address");
        configure(&mut config);
        let server = runtime
            .block_on(apiserver::server::start(config))
            .expect("start the API server");
        Cluster {
            kubeconfig: server.kubeconfig.clone(),
            dir,
            runtime,
            server: Some(server),
        }
    }

    /// The running server's shared state (its registry, watch caches, metrics).
    pub fn app(&self) -> &std::sync::Arc<apiserver::http::App> {
        &self.server.as_ref().expect("the server runs").app
    }

    /// Runs kubectl with `args`, optionally feeding `stdin`.
    pub fn kubectl_in(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(stdin.unwrap_or("").as_bytes())
                .expect("kubectl stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_in(args, None)
    }

    /// Runs kubectl, which must succeed; returns its trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            o.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout).trim().to_string()
    }

    /// Runs kubectl, which must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            !o.status.success(),
            "kubectl {args:?} should have failed:\n{}",
            text(&o.stdout)
        );
        text(&o.stderr)
    }

    /// The server's URL (from the admin kubeconfig) and the admin's bearer
    /// token (from the server's token file).
    pub fn endpoint(&self) -> (String, String) {
        let text = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        let server = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("server:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default();
        let tokens =
            std::fs::read_to_string(self.dir.path().join("data/tokens.csv")).expect("tokens.csv");
        let token = tokens
            .lines()
            .find_map(|l| l.strip_suffix(",admin,admin"))
            .unwrap_or_default()
            .to_string();
        (server, token)
    }

    /// An HTTP request with curl: (status code, headers, body bytes).
    pub fn curl(&self, method: &str, path: &str, headers: &[&str], body: Option<&[u8]>) -> Reply {
        let (server, token) = self.endpoint();
        let dir = self.dir.path();
        let head_file = dir.join("curl-headers");
        let body_file = dir.join("curl-body");
        let mut cmd = Command::new("curl");
        // kube-apiserver pretty-prints for a `curl/...` User-Agent; these
        // requests stand for programs, which get compact JSON (a test can
        // still send its own User-Agent header)
        cmd.args(["-sk", "-A", "korral-tests", "-X", method, "-o"])
            .arg(&body_file)
            .arg("-D")
            .arg(&head_file)
            .args(["-w", "%{http_code}"])
            .args(["-H", &format!("Authorization: Bearer {token}")]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        if let Some(b) = body {
            let data = dir.join("curl-data");
            std::fs::write(&data, b).expect("request body");
            cmd.arg("--data-binary").arg(format!("@{}", data.display()));
        }
        let out = cmd.arg(format!("{server}{path}")).output().expect("curl");
        Reply {
            code: text(&out.stdout).trim().parse().unwrap_or(0),
            headers: std::fs::read_to_string(&head_file).unwrap_or_default(),
            body: std::fs::read(&body_file).unwrap_or_default(),
        }
    }

    /// Waits until `cond` holds, failing the test after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}

/// What curl got back.
pub struct Reply {
    /// The HTTP status.
    pub code: u16,
    /// The response headers, as received.
    pub headers: String,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&self.body)))
    }

    /// The values of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Vec<String> {
        self.headers
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }
}

/// Bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
}
