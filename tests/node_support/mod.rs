//! Helpers for the node end-to-end tests: start a `korral node` process
//! against a test server (and stop it, even when the test fails), read pod
//! fields with kubectl, and wait for pod states.

#![allow(dead_code)]

pub mod containerd;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Server, korral_bin, poll_until, wait_for};

/// Where in-cluster clients read their ServiceAccount's credentials.
pub const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A running `korral node`.
pub struct NodeProc {
    child: Option<Child>,
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    args: Vec<String>,
    /// Run as this user (uid = gid) instead of the test's own.
    user: Option<u32>,
    /// The binary (a copy others can run when `user` is set).
    bin: PathBuf,
}

impl NodeProc {
    /// Starts `korral node` with `args` (kubeconfig, name and data dir included by the caller).
    pub fn start(data_dir: &Path, log: &Path, args: &[String]) -> NodeProc {
        let mut n = NodeProc {
            child: None,
            data_dir: data_dir.to_path_buf(),
            log: log.to_path_buf(),
            args: args.to_vec(),
            user: None,
            bin: PathBuf::from(korral_bin()),
        };
        n.spawn();
        n
    }

    /// Starts `korral node` as an unprivileged user (uid = gid = `user`):
    /// `bin` is a copy of the binary that user may run, and everything the
    /// daemon reads or writes must be open to it.
    pub fn start_as(
        user: u32,
        bin: &Path,
        data_dir: &Path,
        log: &Path,
        args: &[String],
    ) -> NodeProc {
        let mut n = NodeProc {
            child: None,
            data_dir: data_dir.to_path_buf(),
            log: log.to_path_buf(),
            args: args.to_vec(),
            user: Some(user),
            bin: bin.to_path_buf(),
        };
        n.spawn();
        n
    }

    /// The daemon's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("node log");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("node")
            .args(&self.args)
            .env("KORRAL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out);
        if let Some(user) = self.user {
            use std::os::unix::process::CommandExt;
            cmd.uid(user).gid(user).env("HOME", "/nonexistent");
        }
        let child = cmd.spawn().expect("start korral node");
        self.child = Some(child);
    }

    /// Kills the daemon (SIGKILL: nothing is cleaned up) and starts it again.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Kills the daemon.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The daemon's log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `kubectl get KIND NAME -o jsonpath=PATH`, or "" on failure.
pub fn jsonpath(s: &Server, kind: &str, name: &str, path: &str) -> String {
    let o = s.kubectl(&["get", kind, name, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The pod's Ready condition status.
pub fn ready(s: &Server, pod: &str) -> String {
    jsonpath(
        s,
        "pod",
        pod,
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    )
}

/// The restart count of the pod's first container.
pub fn restarts(s: &Server, pod: &str) -> i64 {
    jsonpath(s, "pod", pod, "{.status.containerStatuses[0].restartCount}")
        .parse()
        .unwrap_or(-1)
}

/// The container id of the pod's first container.
pub fn container_id(s: &Server, pod: &str) -> String {
    jsonpath(s, "pod", pod, "{.status.containerStatuses[0].containerID}")
}

/// Waits until the pod is Running and Ready.
pub fn wait_ready(s: &Server, node: &NodeProc, pod: &str, timeout: Duration) {
    let running_and_ready =
        || jsonpath(s, "pod", pod, "{.status.phase}") == "Running" && ready(s, pod) == "True";
    if !poll_until(timeout, running_and_ready) {
        panic!(
            "pod {pod} not Running/Ready after {timeout:?}; status: {}\nnode log tail:\n{}",
            jsonpath(s, "pod", pod, "{.status}"),
            tail(&node.log_text(), 40)
        );
    }
}

/// Waits until the Node is Ready and its Lease renews.
pub fn wait_node(s: &Server, node: &NodeProc, name: &str) {
    let node_ready = || {
        jsonpath(
            s,
            "node",
            name,
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "True"
    };
    assert!(
        poll_until(Duration::from_secs(30), node_ready),
        "node {name} not Ready; log:\n{}",
        tail(&node.log_text(), 40)
    );
    let renew = || {
        let o = s.kubectl(&[
            "get",
            "lease",
            name,
            "-n",
            "kube-node-lease",
            "-o",
            "jsonpath={.spec.renewTime}",
        ]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let first = renew();
    wait_for(
        "the node's lease to be renewed",
        Duration::from_secs(15),
        || {
            let now = renew();
            !now.is_empty() && now != first && !first.is_empty()
        },
    );
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// HTTP GET with curl (short timeout): the body, or "" on failure.
pub fn http_get(url: &str) -> String {
    let o = Command::new("curl")
        .args(["-s", "--max-time", "2", url])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether a process with this pid exists.
pub fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Names of the pods matching a label selector, sorted.
pub fn pods_with(s: &Server, selector: &str) -> Vec<String> {
    let o = s.kubectl(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let mut names: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// Waits until `n` pods match the selector and all are Running and Ready; their names, sorted.
pub fn wait_ready_pods(
    s: &Server,
    node: &NodeProc,
    selector: &str,
    n: usize,
    timeout: Duration,
) -> Vec<String> {
    let mut pods = Vec::new();
    let all_ready = || {
        pods = pods_with(s, selector);
        pods.len() == n
            && pods.iter().all(|p| {
                jsonpath(s, "pod", p, "{.status.phase}") == "Running" && ready(s, p) == "True"
            })
    };
    if !poll_until(timeout, all_ready) {
        panic!(
            "not {n} Ready pods matching {selector} after {timeout:?}:\n{}\nnode log tail:\n{}",
            s.ok(&["get", "pods", "-o", "wide"]),
            tail(&node.log_text(), 40)
        );
    }
    pods
}

/// The ready and not-ready addresses (IPs, sorted) of a Service's Endpoints.
pub fn endpoint_ips(s: &Server, service: &str) -> (Vec<String>, Vec<String>) {
    let field = |path: &str| {
        let mut v: Vec<String> = jsonpath(s, "endpoints", service, path)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    (
        field("{.subsets[*].addresses[*].ip}"),
        field("{.subsets[*].notReadyAddresses[*].ip}"),
    )
}

/// The real user id of a process (from /proc), if it exists.
pub fn uid_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `kubectl apply -f -` of a manifest; panics with kubectl's message on failure.
pub fn apply(s: &Server, yaml: &str) {
    let o = s.kubectl_with(&["apply", "-f", "-"], &[], Some(yaml));
    assert!(
        o.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `kubectl exec` into `pod`: `cat FILE` prints `want`; stderr and a non-zero
/// exit code come back apart from stdout; stdin (`-i`) reaches the command.
/// `bin` prefixes busybox applets (`["busybox"]` on the host, `[]` in an image).
pub fn check_exec(s: &Server, pod: &str, bin: &[&str], file: &str, want: &str) {
    let cmd = |applet: &[&str]| -> Vec<String> {
        bin.iter().chain(applet).map(|a| a.to_string()).collect()
    };
    let mut args: Vec<String> = vec!["exec".into(), pod.into(), "--".into()];
    args.extend(cmd(&["cat", file]));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(s.ok(&argv).trim(), want);
    let o = s.kubectl(&["exec", pod, "--", "sh", "-c", "echo oops >&2; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "exit code of the command");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("oops") && o.stdout.is_empty(),
        "stderr stays stderr: {o:?}"
    );
    let mut args: Vec<String> = vec!["exec".into(), "-i".into(), pod.into(), "--".into()];
    args.extend(cmd(&["wc", "-c"]));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = s.kubectl_with(&argv, &[], Some("hello"));
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "5",
        "stdin reached the command"
    );
}

/// A failing readiness probe (after `break_yaml` is applied) makes every pod
/// of `web` NotReady and moves `ips` to the Service's not-ready addresses;
/// `fix_yaml` brings them back.
pub fn check_readiness_moves_endpoints(
    s: &Server,
    service: &str,
    web: &[String],
    ips: &[String],
    break_yaml: &str,
    fix_yaml: &str,
) {
    apply(s, break_yaml);
    wait_for(
        "the pods NotReady, out of the Endpoints",
        Duration::from_secs(20),
        || {
            web.iter().all(|p| ready(s, p) == "False")
                && endpoint_ips(s, service) == (vec![], ips.to_vec())
        },
    );
    for p in web {
        assert_eq!(jsonpath(s, "pod", p, "{.status.phase}"), "Running");
    }
    apply(s, fix_yaml);
    wait_for(
        "the pods Ready again, back in the Endpoints",
        Duration::from_secs(20),
        || {
            web.iter().all(|p| ready(s, p) == "True")
                && endpoint_ips(s, service) == (ips.to_vec(), vec![])
        },
    );
}

/// Kills the daemon (SIGKILL) and starts it again, then scales `deployment`
/// up by one: the pods of `web` keep their containers (same ids, no
/// restarts) and the new pod becomes Ready. Returns the pods after.
pub fn check_adoption(
    s: &Server,
    node: &mut NodeProc,
    deployment: &str,
    selector: &str,
    web: &[String],
    timeout: Duration,
) -> Vec<String> {
    let state = |pods: &[String]| -> Vec<(String, i64)> {
        pods.iter()
            .map(|p| (container_id(s, p), restarts(s, p)))
            .collect()
    };
    let before = state(web);
    node.restart();
    let replicas = format!("--replicas={}", web.len() + 1);
    s.ok(&["scale", &format!("deployment/{deployment}"), &replicas]);
    let after = wait_ready_pods(s, node, selector, web.len() + 1, timeout);
    assert!(web.iter().all(|p| after.contains(p)), "the first pods stay");
    assert_eq!(before, state(web), "containers were adopted, not restarted");
    after
}

/// A kubectl whose stdin the test holds open, its stdout read line by line
/// as it comes (killed when dropped).
pub struct Interactive {
    child: crate::support::ChildGuard,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every stdout line seen so far.
    pub seen: Vec<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Interactive {
    /// Starts `kubectl ARGS` against the server with piped stdin, stdout and stderr.
    pub fn start(s: &Server, args: &[&str]) -> Interactive {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&s.kubeconfig).args(args);
        Interactive::spawn(cmd)
    }

    /// Starts `kubectl ARGS` on a terminal of its own (util-linux `script`,
    /// which relays the piped stdin and stdout), after `stty cols 101 rows
    /// 31` on it: `kubectl -t` finds a terminal of that size.
    pub fn on_terminal(s: &Server, args: &[&str]) -> Interactive {
        let line = std::iter::once("kubectl".to_string())
            .chain([
                "--kubeconfig".to_string(),
                s.kubeconfig.display().to_string(),
            ])
            .chain(args.iter().map(|a| format!("'{a}'")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("script");
        cmd.args([
            "-qec",
            &format!("stty cols 101 rows 31; exec {line}"),
            "/dev/null",
        ]);
        Interactive::spawn(cmd)
    }

    /// Starts `cmd` with piped stdin, stdout and stderr.
    fn spawn(mut cmd: Command) -> Interactive {
        use std::io::{BufRead, Read};
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl (or script)");
        let stdin = child.stdin.take();
        let (tx, lines) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut err) = child.stderr.take() {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = err.read_to_string(&mut text);
                if let Ok(mut s) = stderr.lock() {
                    s.push_str(&text);
                }
            });
        }
        Interactive {
            child: crate::support::ChildGuard(child),
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Waits up to `timeout` for a stdout line equal to `want`; panics with what came instead.
    pub fn expect_line(&mut self, want: &str, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line == want;
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no line {want:?} from kubectl within {timeout:?}; stdout so far: {:?}; stderr: {}",
                    self.seen,
                    self.stderr_text()
                ),
            }
        }
    }

    /// Waits up to `timeout` for a stdout line containing `want` (a
    /// terminal's lines end in `\r`, may start with a prompt); that line.
    pub fn expect_containing(&mut self, want: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(want) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {want:?} from kubectl within {timeout:?}; stdout so far: {:?}; stderr: {}",
                    self.seen,
                    self.stderr_text()
                ),
            }
        }
    }

    /// The next stdout line, within `timeout`; panics with what came so far.
    pub fn next_line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(_) => panic!(
                "no line from kubectl within {timeout:?}; stdout so far: {:?}; stderr: {}",
                self.seen,
                self.stderr_text()
            ),
        }
    }

    /// Writes to kubectl's stdin (kept open).
    pub fn write(&mut self, text: &str) {
        use std::io::Write;
        let pipe = self.stdin.as_mut().expect("stdin still open");
        pipe.write_all(text.as_bytes())
            .expect("write kubectl stdin");
        pipe.flush().expect("flush kubectl stdin");
    }

    /// Writes to kubectl's stdin; false when kubectl is gone (no panic).
    pub fn try_write(&mut self, text: &str) -> bool {
        use std::io::Write;
        self.stdin.as_mut().is_some_and(|p| {
            p.write_all(text.as_bytes())
                .and_then(|()| p.flush())
                .is_ok()
        })
    }

    /// Whether a stdout line equal to `want` comes within `timeout` (false
    /// too when kubectl's stdout ends first).
    pub fn try_line(&mut self, want: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line == want;
                    self.seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Whether a stdout line containing `want` comes within `timeout`
    /// (false too when kubectl's stdout ends first).
    pub fn try_containing(&mut self, want: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(want);
                    self.seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Closes kubectl's stdin (its EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits up to `timeout` for kubectl to exit; its exit code. The rest of
    /// its stdout lands in [`Interactive::seen`].
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let mut status = None;
        let exited = poll_until(timeout, || {
            status = self.child.0.try_wait().ok().flatten();
            status.is_some()
        });
        assert!(
            exited,
            "kubectl still running after {timeout:?}; stdout so far: {:?}; stderr: {}",
            self.seen,
            self.stderr_text()
        );
        // the reader thread ends with the pipe
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        status.and_then(|s| s.code())
    }

    /// What kubectl wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// `kubectl exec -i` streams like the kubelet: the command starts while the
/// client's stdin is still open (its output shows at once), input reaches
/// it as it is typed, stdin's end is the command's EOF, a command that does
/// not read stdin (`ls /`) ends the session though stdin stays open.
/// `bin` prefixes busybox applets (`["busybox"]` on the host, `[]` in an image).
pub fn check_streaming_exec(s: &Server, pod: &str, bin: &[&str]) {
    let argv = |cmd: &[&str]| -> Vec<String> {
        ["exec", "-i", pod, "--"]
            .iter()
            .chain(bin)
            .chain(cmd)
            .map(|a| a.to_string())
            .collect()
    };
    let wait = Duration::from_secs(30);
    let args = argv(&["sh", "-c", "echo started; cat; echo stdin closed"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut k = Interactive::start(s, &args);
    k.expect_line("started", wait);
    k.write("typed while running\n");
    k.expect_line("typed while running", wait);
    k.write("last line\n");
    k.close_stdin();
    assert_eq!(k.wait(wait), Some(0), "stderr: {}", k.stderr_text());
    assert_eq!(
        k.seen,
        [
            "started",
            "typed while running",
            "last line",
            "stdin closed"
        ],
        "the echoed input, then the command's end"
    );

    let args = argv(&["ls", "/"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut k = Interactive::start(s, &args);
    // stdin stays open: the session ends with the command
    assert_eq!(k.wait(wait), Some(0), "stderr: {}", k.stderr_text());
    assert!(
        k.seen.iter().any(|l| l == "etc"),
        "ls / printed {:?}",
        k.seen
    );
}

/// A pod whose container `c` prints `tick N` every 200 ms until a file
/// `stop` appears in its emptyDir `/state`, then `stopping` on stderr, and
/// exits 3 (never restarted): what [`check_attach`] attaches to.
pub fn ticker_pod(name: &str, node: &str, bin: &[&str]) -> String {
    let sh: Vec<String> = bin
        .iter()
        .chain(&["sh"])
        .map(|a| format!("{a:?}"))
        .collect();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [{sh}, "-c", "i=0; while [ ! -e \"$1/stop\" ]; do i=$((i+1)); echo \"tick $i\"; sleep 0.2; done; echo stopping >&2; exit 3", "sh", "/state"]
    volumeMounts: [{{name: state, mountPath: /state}}]
  volumes: [{{name: state, emptyDir: {{}}}}]
"#,
        sh = sh.join(", ")
    )
}

/// The number of a `tick N` line.
fn tick(line: &str) -> u64 {
    line.strip_prefix("tick ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("not a tick line: {line:?}"))
}

/// `kubectl attach` to a running [`ticker_pod`] through the API server
/// and the node: discovery lists `pods/attach`; a viewer is refused (403);
/// `-i` is refused because the container has no `stdin: true`; the session
/// shows the container's new output (ticks after those already in its log)
/// as it is written, and ends when the container stops (`exit 3`: attach
/// ends well, as with the kubelet) after the container's last words.
pub fn check_attach(s: &Server, pod: &str, bin: &[&str]) {
    let wait = Duration::from_secs(30);
    let v1 = s.ok(&["get", "--raw", "/api/v1"]);
    assert!(
        v1.contains("\"name\":\"pods/attach\""),
        "discovery lists pods/attach: {v1}"
    );
    let viewer = s.token("viewer");
    let (code, body) = s.curl(
        "POST",
        &format!("/api/v1/namespaces/default/pods/{pod}/attach?container=c&stdout=true"),
        Some(&viewer),
        "application/json",
        None,
    );
    assert_eq!(code, 403, "a viewer may not attach: {body}");
    let o = s.kubectl_with(&["attach", "-i", pod, "-c", "c"], &[], Some(""));
    assert!(
        !o.status.success() && crate::support::stderr(&o).contains("stdin not enabled"),
        "attach -i to a container without stdin: {}",
        crate::support::stderr(&o)
    );

    // wait for a tick in the log, so "new" has a meaning
    let mut before = 0;
    crate::support::wait_for("the ticker's first ticks", wait, || {
        before = s
            .ok(&["logs", pod, "-c", "c"])
            .lines()
            .filter(|l| l.starts_with("tick "))
            .map(tick)
            .max()
            .unwrap_or(0);
        before > 0
    });
    let mut k = Interactive::start(s, &["attach", pod, "-c", "c"]);
    let first = tick(&k.next_line(wait));
    assert!(
        first > before,
        "attach shows output from now on: tick {first} was in the log (up to tick {before}) before it attached"
    );
    for want in first + 1..first + 4 {
        assert_eq!(tick(&k.next_line(wait)), want, "ticks as they come");
    }
    // the container's end is the session's end
    s.ok(&["exec", pod, "-c", "c", "--"]
        .into_iter()
        .chain(bin.iter().copied())
        .chain(["touch", "/state/stop"])
        .collect::<Vec<_>>());
    assert_eq!(k.wait(wait), Some(0), "stderr: {}", k.stderr_text());
    assert_eq!(
        k.seen.last().map(String::as_str),
        Some("stopping"),
        "the container's last words (its stderr: the log does not tell the streams apart)"
    );
}

/// A pod whose container echoes each line of its stdin (`got:LINE`) and says
/// `eof` at its end, then idles: `stdin: true`, with `stdinOnce` if `once`.
/// `bin` prefixes busybox applets (`["busybox"]` on the host, `[]` in an image).
pub fn stdin_pod(name: &str, node: &str, bin: &[&str], once: bool) -> String {
    let sh: Vec<String> = bin
        .iter()
        .chain(&["sh"])
        .map(|a| format!("{a:?}"))
        .collect();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:1.36
    stdin: true
    stdinOnce: {once}
    command: [{sh}, "-c", "while read l; do echo got:$l; done; echo eof; while true; do sleep 1; done"]
"#,
        sh = sh.join(", ")
    )
}

/// `kubectl attach -i` feeds a container's own stdin (`stdin: true`): the
/// stdin outlives a session whose input ends, sessions share it (each sees
/// the container's output), it outlives a restart of the node daemon; with
/// `stdinOnce` the first session's end of input is the container's EOF and
/// later `-i` sessions are refused. Makes the pods `reader` and `once`.
pub fn check_attach_stdin(s: &Server, node: &mut NodeProc, node_name: &str, bin: &[&str]) {
    let wait = Duration::from_secs(30);
    apply(s, &stdin_pod("reader", node_name, bin, false));
    apply(s, &stdin_pod("once", node_name, bin, true));
    wait_ready(s, node, "reader", Duration::from_secs(60));
    wait_ready(s, node, "once", Duration::from_secs(60));
    let attach = ["attach", "-i", "reader", "-c", "c"];

    // input reaches the container's process; the session's end of input is not its end
    let mut a = Interactive::start(s, &attach);
    a.write("one\n");
    a.expect_line("got:one", wait);
    a.close_stdin();
    drop(a);

    // two sessions share the stdin, and each sees what the container answers
    let mut b = Interactive::start(s, &attach);
    b.write("from-b\n");
    b.expect_line("got:from-b", wait);
    let mut c = Interactive::start(s, &attach);
    c.write("from-c\n");
    c.expect_line("got:from-c", wait);
    b.expect_line("got:from-c", wait);
    b.write("again-b\n");
    b.expect_line("got:again-b", wait);
    c.expect_line("got:again-b", wait);
    for k in [&b, &c] {
        assert!(
            !k.seen.iter().any(|l| l == "eof"),
            "the container's stdin stayed open: {:?}",
            k.seen
        );
    }
    drop((b, c));

    // the stdin outlives the daemon: the next one attaches to it
    node.restart();
    wait_for("an attachment through the restarted node", wait, || {
        let mut k = Interactive::start(s, &attach);
        k.try_write("after-restart\n") && k.try_line("got:after-restart", Duration::from_secs(5))
    });

    // stdinOnce: the first session's end of input closes the container's stdin for good
    let once = ["attach", "-i", "once", "-c", "c"];
    let mut o = Interactive::start(s, &once);
    o.write("first\n");
    o.expect_line("got:first", wait);
    o.close_stdin();
    o.expect_line("eof", wait);
    drop(o);
    let mut late = Interactive::start(s, &once);
    late.try_write("late\n");
    let code = late.wait(wait);
    assert!(
        code != Some(0) && late.stderr_text().contains("stdinOnce"),
        "attach -i after a stdinOnce session: exit {code:?}, {}",
        late.stderr_text()
    );
}

/// Terminals (`-t`): `kubectl exec -it POD -- sh` gets a shell on a
/// terminal of the client's size (the resize stream) whose exit code is
/// kubectl's, and `kubectl run -it --rm` (a pod with `stdin`, `stdinOnce`
/// and `tty`, then attach) gets an interactive shell, its output also in the
/// container's log, and deletes the pod when the shell exits. `pod` is a
/// running pod with a container `c`; `sh` the shell's command, `image` what
/// `kubectl run` starts.
pub fn check_terminals(
    s: &Server,
    node: &NodeProc,
    node_name: &str,
    pod: &str,
    sh: &[&str],
    image: &str,
) {
    let wait = Duration::from_secs(30);
    let exec: Vec<&str> = ["exec", "-it", pod, "-c", "c", "--"]
        .into_iter()
        .chain(sh.iter().copied())
        .collect();
    let mut t = Interactive::on_terminal(s, &exec);
    t.write("tty\n");
    let line = t.expect_containing("/dev/pts/", wait);
    assert!(
        !line.contains("not a tty"),
        "the shell's stdin is a terminal: {line:?}"
    );
    // the terminal has kubectl's size (sent on the resize stream as the session starts)
    expect_terminal_size(&mut t, wait);
    // what is typed is echoed by the terminal, and the shell runs it
    t.write("echo marker-$((6*7))\n");
    let echoed = t.expect_containing("marker-", wait);
    assert!(
        echoed.contains("$((6*7))"),
        "the typed line echoed first: {echoed:?}"
    );
    t.expect_containing("marker-42", wait);
    // one stream: what the shell writes to stderr arrives too
    t.write("echo to-stderr >&2\n");
    let line = t.expect_containing("to-stderr", wait);
    assert!(
        line.contains("echo"),
        "the echo of the typed line: {line:?}"
    );
    t.expect_containing("to-stderr", wait);
    t.write("exit 5\n");
    assert_eq!(
        t.wait(wait),
        Some(5),
        "kubectl's exit code is the shell's: {:?}",
        t.seen
    );

    // kubectl run -it --rm: a pod on a terminal, attached, deleted when done
    let overrides = format!(r#"{{"spec":{{"nodeName":"{node_name}"}}}}"#);
    let run: Vec<&str> = [
        "run",
        "tty-run",
        "-it",
        "--rm",
        "--restart=Never",
        "--image",
        image,
        "--overrides",
        &overrides,
        "--command",
        "--",
    ]
    .into_iter()
    .chain(sh.iter().copied())
    .collect();
    let mut r = Interactive::on_terminal(s, &run);
    if !r.try_containing("If you don't see a command prompt", Duration::from_secs(60)) {
        panic!(
            "kubectl run -it did not attach within 60 s; stdout: {:?}\nthe pod: {}\nnode log tail:\n{}",
            r.seen,
            s.kubectl(&["get", "pod", "tty-run", "-o", "yaml"])
                .stdout
                .escape_ascii(),
            tail(&node.log_text(), 40)
        );
    }
    r.write("echo run-$((1+2))\n");
    r.expect_containing("run-3", wait);
    // attached to the container's own terminal, kubectl's size reaches it too
    expect_terminal_size(&mut r, wait);
    let log = s.ok(&["logs", "tty-run"]);
    assert!(
        log.contains("run-3"),
        "the terminal's output is in the log: {log:?}"
    );
    r.write("exit\n");
    assert_eq!(r.wait(Duration::from_secs(60)), Some(0), "{:?}", r.seen);
    assert!(
        r.seen.iter().any(|l| l.contains("pod \"tty-run\" deleted")),
        "--rm deletes the pod: {:?}",
        r.seen
    );
}

/// Asks the shell on `t`'s terminal for its size (`stty size`) until it is
/// the 31 rows of 101 columns [`Interactive::on_terminal`] gives kubectl's
/// terminal — the size kubectl sends as the session starts — within `wait`.
fn expect_terminal_size(t: &mut Interactive, wait: Duration) {
    let mut sized = false;
    let deadline = std::time::Instant::now() + wait;
    while !sized && std::time::Instant::now() < deadline {
        t.write("stty size\n");
        let line = t.expect_containing(" ", wait);
        sized = line.trim_end() == "31 101";
    }
    assert!(
        sized,
        "the terminal is 31 rows of 101 columns: {:?}",
        t.seen
    );
}

/// `kubectl cp` (tar over exec's stdin and stdout) into `dir` of the pod and back.
pub fn check_cp(s: &Server, pod: &str, dir: &str) {
    let local = s.dir.path().join("cp-in.txt");
    // megabytes: many stdin messages, backpressure from the tar reading them
    let text = "copied in\nand out again\n".repeat(200_000);
    std::fs::write(&local, &text).expect("write");
    let remote = format!("{pod}:{dir}/cp-note.txt");
    s.ok(&["cp", &local.to_string_lossy(), &remote]);
    let back = s.dir.path().join("cp-back.txt");
    s.ok(&["cp", &remote, &back.to_string_lossy()]);
    assert_eq!(
        std::fs::read_to_string(&back).expect("copied back"),
        text,
        "the file came back whole"
    );
}

/// A graceful delete reports the pod terminating before it goes, as the
/// kubelet does: right after `kubectl delete --wait=false`, `kubectl wait
/// --for=condition=Ready=False` sees the condition on the pod (whose
/// container ignores SIGTERM, so the grace period runs out first), the
/// container shows terminated, then the pod is gone.
pub fn check_graceful_delete_reports_not_ready(s: &Server, node: &NodeProc, pod: &str) {
    assert_eq!(ready(s, pod), "True", "{pod} is Ready before the delete");
    s.ok(&["delete", "pod", pod, "--wait=false"]);
    let target = format!("pod/{pod}");
    let waits = [
        vec![
            "wait",
            "--for=condition=Ready=False",
            &target,
            "--timeout=30s",
        ],
        vec![
            "wait",
            "--for=jsonpath={.status.containerStatuses[0].state.terminated.exitCode}=137",
            &target,
            "--timeout=30s",
        ],
    ];
    let children: Vec<Interactive> = waits.iter().map(|a| Interactive::start(s, a)).collect();
    for (mut k, args) in children.into_iter().zip(&waits) {
        let code = k.wait(Duration::from_secs(40));
        assert_eq!(
            code,
            Some(0),
            "kubectl {args:?}: stdout {:?}, stderr {}\nnode log tail:\n{}",
            k.seen,
            k.stderr_text(),
            tail(&node.log_text(), 30)
        );
        assert!(
            k.seen.iter().any(|l| l.contains("condition met")),
            "kubectl {args:?}: {:?}",
            k.seen
        );
    }
    wait_for(
        "the deleted pod to be gone",
        Duration::from_secs(20),
        || !s.kubectl(&["get", "pod", pod]).status.success(),
    );
}

/// Waits until `pod` has finished and returns its log; it must have succeeded.
pub fn finished_log(s: &Server, name: &str) -> String {
    wait_for("the pod to finish", Duration::from_secs(60), || {
        let phase = jsonpath(s, "pod", name, "{.status.phase}");
        phase == "Succeeded" || phase == "Failed"
    });
    let logs = s.kubectl(&["logs", name]);
    let out = String::from_utf8_lossy(&logs.stdout).to_string();
    assert_eq!(
        jsonpath(s, "pod", name, "{.status.phase}"),
        "Succeeded",
        "logs: {out}"
    );
    out
}

/// Waits for the root CA publisher to put the cluster CA in the default namespace.
pub fn wait_root_ca(s: &Server) {
    wait_for(
        "kube-root-ca.crt in the default namespace",
        Duration::from_secs(20),
        || {
            s.kubectl(&[
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-o",
                "jsonpath={.data.ca\\.crt}",
            ])
            .stdout
            .starts_with(b"-----BEGIN CERTIFICATE-----")
        },
    );
}

/// kube-apiserver's 403 text for the `reader` ServiceAccount listing pods in `default`.
pub const READER_CANNOT_LIST_PODS: &str = "pods is forbidden: User \"system:serviceaccount:default:reader\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"";

/// Grants the `reader` ServiceAccount get/list/watch on pods in `default`
/// (a Role and a RoleBinding, made with kubectl).
pub fn let_reader_list_pods(s: &Server) {
    s.ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "reader",
        "--role=pod-reader",
        "--serviceaccount=default:reader",
    ]);
}

/// `kubectl port-forward TARGET LOCAL:REMOTE`, once over WebSocket
/// (kubectl's default since 1.31: SPDY tunnelled in WebSocket messages) and
/// once over a raw SPDY upgrade (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`, as
/// older kubectl speaks it): two HTTP requests through it (two forwarded
/// connections) both return `want`; for a pod, a local port forwarded to a
/// port nothing listens on fails that connection with the node's reason in kubectl's
/// output, and kubectl then ends the forward as it does against a kubelet.
pub fn check_port_forward(s: &Server, target: &str, remote: u16, path: &str, want: &str) {
    use std::io::{BufRead, BufReader};
    for websockets in ["true", "false"] {
        let (good, bad) = (crate::support::free_port(), crate::support::free_port());
        // a Service or workload only forwards the ports it names
        let refused = target.starts_with("pod/");
        let mut ports = vec![format!("{good}:{remote}")];
        if refused {
            ports.push(format!("{bad}:1"));
        }
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .arg("port-forward")
            .arg(target)
            .args(&ports)
            .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl port-forward");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let locals: Vec<String> = ports
            .iter()
            .map(|p| format!(":{} ->", p.split(':').next().unwrap_or_default()))
            .collect();
        while !locals
            .iter()
            .all(|local| seen.iter().any(|l: &String| l.contains(local)))
        {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => seen.push(l),
                Err(_) => {
                    let _ = child.kill();
                    let out = child.wait_with_output().expect("kubectl output");
                    panic!(
                        "kubectl port-forward {target} (websockets={websockets}) did not start: {seen:?}\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        let url = format!("http://127.0.0.1:{good}{path}");
        for attempt in 0..2 {
            assert_eq!(
                http_get(&url),
                want,
                "request {attempt} through kubectl port-forward {target} (websockets={websockets})"
            );
        }
        if !refused {
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        // kubectl (since 1.30) ends the whole forward on an error from the pod
        assert_eq!(http_get(&format!("http://127.0.0.1:{bad}/")), "");
        let ended = poll_until(Duration::from_secs(20), || {
            child.try_wait().ok().flatten().is_some()
        });
        let _ = child.kill();
        let out = child.wait_with_output().expect("kubectl output");
        assert!(
            ended,
            "kubectl port-forward went on after the error (websockets={websockets})"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("error forwarding port 1 to pod")
                && stderr.contains("failed to connect"),
            "kubectl reports the refused connection (websockets={websockets}): {stderr}"
        );
    }
}

/// `korral node` arguments for node `name` with data in `data`: the node's
/// kubeconfig, a loopback server, 1 s heartbeats and syncs, then `extra`.
pub fn node_args(s: &Server, name: &str, data: &Path, extra: &[&str]) -> Vec<String> {
    let kc = s.kubeconfig_for(&format!("node:{name}"));
    let mut args: Vec<String> = [
        "--kubeconfig",
        &kc.to_string_lossy(),
        "--name",
        name,
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data.to_string_lossy(),
        "--heartbeat-interval",
        "1s",
        "--sync-period",
        "1s",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// "Reason: message" lines of every Event about objects named `name`.
pub fn events_of(s: &Server, name: &str) -> String {
    s.get_json(&["events"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| {
            format!(
                "{}: {}\n",
                e["reason"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// [`node_args`] for a containerd + runc node on `ctd` without the service
/// proxy, and without image garbage collection unless `extra` sets it.
pub fn containerd_node_args(
    s: &Server,
    name: &str,
    data: &Path,
    ctd: &containerd::Containerd,
    extra: &[&str],
) -> Vec<String> {
    let sock = ctd.sock.to_string_lossy();
    let mut all = vec![
        "--runtime",
        "containerd",
        "--proxy-mode",
        "none",
        "--containerd-address",
        &sock,
        "--containerd-namespace",
        &ctd.namespace,
    ];
    if !extra.contains(&"--image-gc-high-threshold") {
        // the test's images stay, however full the machine's disk is (image GC is tests/node_image_gc.rs's)
        all.extend_from_slice(&["--image-gc-high-threshold", "100"]);
    }
    all.extend_from_slice(extra);
    node_args(s, name, data, &all)
}
