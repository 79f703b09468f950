//! Shared helpers for the end-to-end tests: start a real `korral server` on a
//! free port in a temporary directory, wait for it, run kubectl against it,
//! and stop it when the test ends (even when it fails).

#![allow(dead_code)]

pub mod fake_kubelet;
pub mod pod_watch;
pub mod python;
pub mod simulated_nodes;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `korral server`.
pub struct Server {
    /// Its data directory.
    pub dir: tempfile::TempDir,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    child: Child,
}

/// How long one kubectl may run in a test (the longest `--timeout` the
/// tests give kubectl is 90 s).
pub const KUBECTL_DEADLINE: Duration = Duration::from_secs(150);

/// The `korral` binary under test.
pub fn korral_bin() -> &'static str {
    env!("CARGO_BIN_EXE_korral")
}

/// The repository root (for fixtures).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How often a condition is checked while waiting for it.
const POLL: Duration = Duration::from_millis(50);

/// Checks `cond` until it holds (true) or `timeout` passes (false). The one
/// place tests wait: for a condition, with a deadline.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits for `cond` to hold up to `timeout`; panics with `what` otherwise.
pub fn wait_for(what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
    assert!(
        poll_until(timeout, cond),
        "timed out after {timeout:?} waiting for {what}"
    );
}

fn server_url(kubeconfig: &Path) -> Option<String> {
    let text = std::fs::read_to_string(kubeconfig).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_string))
}

impl Server {
    /// Starts a server with the embedded store.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts a server with extra flags.
    pub fn start_with(extra: &[&str]) -> Server {
        Self::start_on("127.0.0.1:0", extra)
    }

    /// Starts a server listening on `listen` (e.g. a test network's address) with extra flags.
    pub fn start_on(listen: &str, extra: &[&str]) -> Server {
        Self::start_in(tempfile::tempdir().expect("temp dir"), listen, extra)
    }

    /// Starts a server on an existing data directory (e.g. one a snapshot
    /// was restored into).
    pub fn start_in(dir: tempfile::TempDir, listen: &str, extra: &[&str]) -> Server {
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(korral_bin())
            .args(["server", "--listen", listen, "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .env("KORRAL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start korral server");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let mut server = Server {
            url: String::new(),
            kubeconfig,
            dir,
            child,
        };
        let kc = server.kubeconfig.clone();
        wait_for("the server's kubeconfig", Duration::from_secs(30), || {
            server_url(&kc).is_some()
        });
        server.url = server_url(&server.kubeconfig).unwrap_or_default();
        let url = server.url.clone();
        wait_for("/readyz", Duration::from_secs(30), || {
            Command::new("curl")
                .args(["-sk", "--max-time", "2", &format!("{url}/readyz")])
                .output()
                .is_ok_and(|o| o.stdout == b"ok")
        });
        server
    }

    /// The server process's id (for benchmarks reading its memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs kubectl against the server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(args, &[], None)
    }

    /// Runs kubectl with environment variables and optional stdin. A kubectl
    /// still running after [`KUBECTL_DEADLINE`] is killed and the test fails
    /// naming the command, instead of hanging until the test runner's timeout.
    pub fn kubectl_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .current_dir(root())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run kubectl");
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(input.as_bytes())
                .expect("write kubectl stdin");
        }
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(KUBECTL_DEADLINE) {
            Ok(out) => out.expect("kubectl output"),
            Err(_) => {
                // SAFETY: kill(2) on the pid of our own child, which the
                // waiting thread has not reaped yet (it has not answered)
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                let out = rx.recv().ok().and_then(Result::ok);
                panic!(
                    "kubectl {} still running after {KUBECTL_DEADLINE:?}; killed.\nstdout:\n{}\nstderr:\n{}",
                    args.join(" "),
                    out.as_ref().map(stdout).unwrap_or_default(),
                    out.as_ref().map(stderr).unwrap_or_default()
                )
            }
        }
    }

    /// Runs kubectl, asserts it succeeded, returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            o.status.success(),
            "kubectl {} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `kubectl apply -f -` of `yaml`; panics with kubectl's output on failure.
    pub fn apply(&self, yaml: &str) {
        let o = self.kubectl_with(&["apply", "-f", "-"], &[], Some(yaml));
        assert!(
            o.status.success(),
            "kubectl apply failed: {}{}\n{}",
            stdout(&o),
            stderr(&o),
            self.log()
        );
    }

    /// `kubectl get ARGS -o json`, parsed (`null` when kubectl fails).
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let o = self.kubectl(&all);
        serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// A token for an identity with `role` (via `korral token create`).
    pub fn token(&self, role: &str) -> String {
        let o = Command::new(korral_bin())
            .args(["token", "create", "--role", role, "--data-dir"])
            .arg(self.dir.path())
            .output()
            .expect("korral token create");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// A kubeconfig file for an identity with `role`.
    pub fn kubeconfig_for(&self, role: &str) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("{}.kubeconfig", role.replace(':', "-")));
        let o = Command::new(korral_bin())
            .args(["token", "create", "--role", role, "--data-dir"])
            .arg(self.dir.path())
            .arg("--kubeconfig-out")
            .arg(&path)
            .output()
            .expect("korral token create");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        path
    }

    /// How many objects of a kind (`nodes`, `pods`) have the Ready condition True.
    pub fn ready_count(&self, kind: &str) -> usize {
        let o = self.kubectl(&[
            "get",
            kind,
            "-o",
            "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter(|x| *x == "True")
            .count()
    }

    /// An HTTP request with curl: returns (status code, body).
    pub fn curl(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Option<&[u8]>,
    ) -> (u16, String) {
        let mut cmd = Command::new("curl");
        // kube-apiserver pretty-prints for a `curl/...` User-Agent; these
        // requests stand for programs, which get compact JSON
        cmd.args([
            "-sk",
            "-A",
            "korral-tests",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
            "-H",
            &format!("Content-Type: {content_type}"),
        ]);
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        let body_file = self.dir.path().join(format!("body-{}", rand_suffix()));
        if let Some(b) = body {
            std::fs::write(&body_file, b).expect("write body");
            cmd.arg("--data-binary")
                .arg(format!("@{}", body_file.display()));
        }
        cmd.arg(format!("{}{path}", self.url));
        let o = cmd.output().expect("curl");
        let _ = std::fs::remove_file(&body_file);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// stdout of a finished command as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr of a finished command as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A child process killed (and reaped) when the guard drops, even when the
/// test panics.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Kills the process now.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port free on 127.0.0.1 right now (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
