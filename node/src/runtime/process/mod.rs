//! The `process` runtime: each container's command runs as a host process
//! (no image, no root, no isolation), under a detached shim ([`shim`]) so it
//! survives daemon restarts and is adopted afterwards.
//!
//! Volumes are materialised under the node's data directory. When the
//! daemon is root and the kernel allows it, each container runs in its own
//! mount namespace with every volume bind-mounted at its `mountPath`
//! ([`mount_ns`]), and `exec` joins that namespace. Otherwise (not root:
//! `korral up` as a user) container paths are rewritten instead — every
//! command/args word, env value and working directory equal to a
//! `mountPath` or under it is pointed at the volume's node directory
//! (`/www/index.html` → `DATA/pods/UID/volumes/page/index.html`); programs
//! that read fixed paths of their own (in-cluster clients' token) do not
//! find them. Which of the two a daemon uses is logged once at start.
//! Pod IPs: the host's IP by default (like hostNetwork: pods on one node
//! must use distinct ports); `loopback` gives each pod its own 127.x.y.z
//! address (from the node's pod CIDR) for processes that bind `$(POD_IP)`.
//! cpu and memory limits are not enforced (no cgroups without root).

pub mod mount_ns;
pub mod shim;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use crate::runtime::{
    AttachInput, ContainerConfig, ContainerInfo, ExecChunk, ExecStreams, Mount, PodSandbox, Result,
    Runtime, RuntimeError, State, TermSize, event_channel, feed_input, pty, pump_output,
};

/// How the process runtime gives pods IPs.
#[derive(Clone, Debug)]
pub enum PodIps {
    /// Every pod has the host's IP.
    Host(String),
    /// Each pod gets 127.B.C.D where B.C.D are the last octets of a pod-CIDR address.
    Loopback([u8; 2]),
}

/// The process runtime of one node.
pub struct Process {
    root: PathBuf,
    shim: Vec<String>,
    ips: PodIps,
    events: broadcast::Sender<String>,
    /// Held while a sandbox picks and records its IP, so that two pods
    /// started at once never read the same free address.
    ip_lock: std::sync::Mutex<()>,
    /// Containers get their own mount namespace (else paths are rewritten).
    mount_ns: bool,
}

/// What the runtime keeps about a container (`ROOT/containers/ID/record.json`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Record {
    id: String,
    pod_uid: String,
    pod_namespace: String,
    pod_name: String,
    name: String,
    attempt: u32,
    image: String,
    started_at: String,
    log_path: PathBuf,
    env: Vec<(String, String)>,
    working_dir: Option<String>,
    mounts: Vec<(String, PathBuf)>,
    /// Runs in its own mount namespace: exec joins it, paths are not rewritten.
    #[serde(default)]
    mount_ns: bool,
}

/// The default `PATH` of a container.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Rewrites a container path to the node path of the volume it is in.
pub fn rewrite(s: &str, mounts: &[(String, PathBuf)]) -> String {
    for (mp, host) in mounts {
        let mp = mp.trim_end_matches('/');
        if mp.is_empty() {
            continue;
        }
        if s == mp {
            return host.to_string_lossy().into_owned();
        }
        if let Some(rest) = s.strip_prefix(mp)
            && rest.starts_with('/')
        {
            return format!("{}{rest}", host.to_string_lossy());
        }
    }
    s.to_string()
}

/// Whether containers get mount namespaces here (root, and the kernel
/// agrees); says which way volumes reach containers, once.
fn mount_namespaces() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        tracing::info!(
            "not root: containers share the node's mount namespace; volume paths in their commands, env and working directories are rewritten to node directories"
        );
        return false;
    }
    match mount_ns::probe() {
        Ok(()) => {
            tracing::info!(
                "containers run in their own mount namespaces, volumes bind-mounted at their mountPath"
            );
            true
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "no mount namespaces here: volume paths in containers' commands, env and working directories are rewritten to node directories"
            );
            false
        }
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

impl Process {
    /// A runtime keeping its records under `root` (the node's data dir),
    /// launching containers through `shim` (e.g. `[korral, node-shim]`).
    pub fn new(root: &Path, shim: Vec<String>, ips: PodIps) -> Result<Self> {
        for d in ["containers", "sandboxes"] {
            std::fs::create_dir_all(root.join(d))
                .map_err(|e| RuntimeError::Other(format!("{}: {e}", root.display())))?;
        }
        let rt = Process {
            root: root.to_path_buf(),
            shim,
            ips,
            events: event_channel(),
            ip_lock: std::sync::Mutex::new(()),
            mount_ns: mount_namespaces(),
        };
        // watch the containers a previous daemon left running
        if let Ok(rd) = std::fs::read_dir(rt.root.join("containers")) {
            for e in rd.flatten() {
                let dir = e.path();
                if !dir.join("exit").exists()
                    && let Ok(rec) = rt.record(&dir)
                {
                    rt.watch(dir, rec.pod_uid);
                }
            }
        }
        Ok(rt)
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    fn record(&self, dir: &Path) -> Result<Record> {
        let body = std::fs::read(dir.join("record.json"))
            .map_err(|e| RuntimeError::Other(format!("{}: {e}", dir.display())))?;
        serde_json::from_slice(&body)
            .map_err(|e| RuntimeError::Other(format!("{}: {e}", dir.display())))
    }

    fn pid(dir: &Path) -> Option<i32> {
        std::fs::read_to_string(dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn exit(dir: &Path) -> Option<shim::ExitRecord> {
        serde_json::from_slice(&std::fs::read(dir.join("exit")).ok()?).ok()
    }

    fn info(&self, dir: &Path) -> Result<ContainerInfo> {
        let r = self.record(dir)?;
        let started = DateTime::parse_from_rfc3339(&r.started_at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|_| Utc::now());
        let state = match Self::exit(dir) {
            Some(x) => State::Exited {
                code: x.code,
                finished_at: DateTime::parse_from_rfc3339(&x.finished_at)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(|_| Utc::now()),
                reason: x.message.map(|_| "StartError".to_string()),
            },
            None => match Self::pid(dir) {
                Some(pid) if alive(pid) => State::Running,
                Some(_) => State::Exited {
                    code: 255,
                    finished_at: Utc::now(),
                    reason: Some("Unknown".into()),
                },
                None if Utc::now() - started > chrono::Duration::seconds(30) => State::Exited {
                    code: 255,
                    finished_at: started,
                    reason: Some("StartError".into()),
                },
                None => State::Created,
            },
        };
        Ok(ContainerInfo {
            id: r.id,
            pod_uid: r.pod_uid,
            pod_namespace: r.pod_namespace,
            pod_name: r.pod_name,
            name: r.name,
            attempt: r.attempt,
            image_id: format!("process://{}", r.image),
            image: r.image,
            state,
            started_at: Some(started),
            log_path: r.log_path,
        })
    }

    /// Polls for the exit record and tells the reconciler.
    fn watch(&self, dir: PathBuf, uid: String) {
        let events = self.events.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(EXIT_POLL).await;
                if !dir.exists() {
                    return;
                }
                let pid_gone = Self::pid(&dir).is_some_and(|p| !alive(p));
                if dir.join("exit").exists() || pid_gone {
                    let _ = events.send(uid);
                    return;
                }
            }
        });
    }

    fn signal(dir: &Path, sig: i32) {
        if let Some(pid) = Self::pid(dir) {
            // SAFETY: signalling the container's process group (it leads its own group).
            unsafe {
                libc::kill(-pid, sig);
            }
        }
    }

    fn ip_for(&self, uid: &str) -> Result<String> {
        match &self.ips {
            PodIps::Host(ip) => Ok(ip.clone()),
            PodIps::Loopback([b, c]) => {
                let dir = self.root.join("sandboxes");
                let taken: std::collections::HashSet<String> = std::fs::read_dir(&dir)
                    .map(|rd| {
                        rd.flatten()
                            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                            .collect()
                    })
                    .unwrap_or_default();
                for d in 2u8..255 {
                    let ip = format!("127.{b}.{c}.{d}");
                    if !taken.contains(&ip) {
                        return Ok(ip);
                    }
                }
                Err(RuntimeError::Other(format!(
                    "no loopback pod IP left for pod {uid}"
                )))
            }
        }
    }
}

#[async_trait::async_trait]
impl Runtime for Process {
    fn kind(&self) -> &'static str {
        "process"
    }

    async fn version(&self) -> String {
        format!("process://{}", env!("CARGO_PKG_VERSION"))
    }

    async fn run_sandbox(&self, sandbox: &PodSandbox) -> Result<String> {
        let f = self.root.join("sandboxes").join(&sandbox.uid);
        let _picking = self
            .ip_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(ip) = std::fs::read_to_string(&f) {
            return Ok(ip.trim().to_string());
        }
        let ip = self.ip_for(&sandbox.uid)?;
        shim::write_atomic(&f, ip.as_bytes())
            .map_err(|e| RuntimeError::Other(format!("{}: {e}", f.display())))?;
        Ok(ip)
    }

    async fn remove_sandbox(&self, pod_uid: &str) -> Result<()> {
        let _ = std::fs::remove_file(self.root.join("sandboxes").join(pod_uid));
        Ok(())
    }

    async fn start(&self, sandbox: &PodSandbox, c: &ContainerConfig) -> Result<ContainerInfo> {
        let mut argv: Vec<String> = c.command.iter().chain(&c.args).cloned().collect();
        if argv.is_empty() {
            return Err(RuntimeError::Invalid(format!(
                "container {:?}: the process runtime runs `command`/`args` on the host and has no image entrypoint; set a command",
                c.name
            )));
        }
        let mut mounts: Vec<(String, PathBuf)> = c
            .mounts
            .iter()
            .map(
                |Mount {
                     container_path,
                     host_path,
                     ..
                 }| (container_path.clone(), host_path.clone()),
            )
            .collect();
        mounts.sort_by_key(|(mp, _)| std::cmp::Reverse(mp.len()));
        // without a mount namespace, container paths become node paths
        let path = |s: &str| {
            if self.mount_ns {
                s.to_string()
            } else {
                rewrite(s, &mounts)
            }
        };
        for a in &mut argv {
            *a = path(a);
        }
        let mut env: Vec<(String, String)> =
            c.env.iter().map(|(k, v)| (k.clone(), path(v))).collect();
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        if !env.iter().any(|(k, _)| k == "HOSTNAME") {
            env.push(("HOSTNAME".into(), sandbox.hostname.clone()));
        }
        let cwd = c.working_dir.as_deref().map(path);
        let id = format!("{:016x}", rand::random::<u64>());
        let dir = self.dir(&id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| RuntimeError::Other(format!("{}: {e}", dir.display())))?;
        let started = Utc::now();
        let rec = Record {
            id: id.clone(),
            pod_uid: c.pod_uid.clone(),
            pod_namespace: c.pod_namespace.clone(),
            pod_name: c.pod_name.clone(),
            name: c.name.clone(),
            attempt: c.attempt,
            image: c.image.clone(),
            started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            log_path: c.log_path.clone(),
            env: env.clone(),
            working_dir: cwd.clone(),
            mounts: mounts.clone(),
            mount_ns: self.mount_ns,
        };
        let body = serde_json::to_vec(&rec).map_err(|e| RuntimeError::Other(e.to_string()))?;
        shim::write_atomic(&dir.join("record.json"), &body)
            .map_err(|e| RuntimeError::Other(e.to_string()))?;
        if c.io.stdin || c.io.tty {
            let io = shim::Io {
                stdin: c.io.stdin,
                tty: c.io.tty,
            };
            let body = serde_json::to_vec(&io).map_err(|e| RuntimeError::Other(e.to_string()))?;
            shim::write_atomic(&dir.join(shim::IO_FILE), &body)
                .map_err(|e| RuntimeError::Other(e.to_string()))?;
        }
        let plan_file = dir.join("mounts.json");
        if self.mount_ns {
            let plan = mount_ns::Plan {
                mounts: c
                    .mounts
                    .iter()
                    .map(|m| mount_ns::BindMount {
                        source: m.host_path.clone(),
                        target: m.container_path.clone(),
                        read_only: m.read_only,
                    })
                    .collect(),
                working_dir: cwd.clone(),
            };
            let body = serde_json::to_vec(&plan).map_err(|e| RuntimeError::Other(e.to_string()))?;
            shim::write_atomic(&plan_file, &body)
                .map_err(|e| RuntimeError::Other(format!("{}: {e}", plan_file.display())))?;
        }
        if let Some(parent) = c.log_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| RuntimeError::Other(format!("{}: {e}", parent.display())))?;
        }
        let (prog, pre) = self
            .shim
            .split_first()
            .ok_or_else(|| RuntimeError::Other("no shim program configured".into()))?;
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(pre)
            .arg("--dir")
            .arg(&dir)
            .arg("--log-file")
            .arg(&c.log_path);
        if self.mount_ns {
            cmd.arg("--mounts").arg(&plan_file);
        }
        cmd.arg("--")
            .args(&argv)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(false);
        // in a mount namespace the shim's child enters the working directory
        let workdir = match cwd {
            Some(w) if !self.mount_ns => PathBuf::from(w),
            _ => PathBuf::from("/"),
        };
        if !workdir.is_dir() {
            return Err(RuntimeError::Invalid(format!(
                "working directory {} does not exist on the node",
                workdir.display()
            )));
        }
        cmd.current_dir(&workdir);
        let mut child = cmd
            .spawn()
            .map_err(|e| RuntimeError::Other(format!("cannot start the shim {prog}: {e}")))?;
        // reap the shim when it ends (it ends when the container does)
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        // wait for the pid (or an early exit record)
        let started = || Self::pid(&dir).is_some() || dir.join("exit").exists();
        if !until(Duration::from_secs(10), started).await {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(RuntimeError::Other(format!(
                "the shim did not start {:?} within 10 s",
                c.name
            )));
        }
        self.watch(dir.clone(), c.pod_uid.clone());
        self.info(&dir)
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Err(RuntimeError::NotFound(id.into()));
        }
        let done = |d: &Path| d.join("exit").exists() || Self::pid(d).is_none_or(|p| !alive(p));
        if done(&dir) {
            return Ok(());
        }
        Self::signal(&dir, libc::SIGTERM);
        if !until(grace, || done(&dir)).await {
            tracing::info!(container = id, "grace period over; sending SIGKILL");
            Self::signal(&dir, libc::SIGKILL);
        }
        until(Duration::from_secs(5), || dir.join("exit").exists()).await;
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        if Self::exit(&dir).is_none() && Self::pid(&dir).is_some_and(alive) {
            self.stop(id, Duration::from_secs(1)).await?;
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>> {
        let mut out = Vec::new();
        let rd = std::fs::read_dir(self.root.join("containers"))
            .map_err(|e| RuntimeError::Other(e.to_string()))?;
        for e in rd.flatten() {
            if let Ok(i) = self.info(&e.path()) {
                out.push(i);
            }
        }
        Ok(out)
    }

    async fn exec_streaming(
        &self,
        id: &str,
        command: &[String],
        streams: ExecStreams,
        timeout: Duration,
    ) -> Result<i32> {
        let dir = self.dir(id);
        let rec = self
            .record(&dir)
            .map_err(|_| RuntimeError::NotFound(id.into()))?;
        let argv: Vec<String> = if rec.mount_ns {
            command.to_vec()
        } else {
            command.iter().map(|a| rewrite(a, &rec.mounts)).collect()
        };
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| RuntimeError::Invalid("exec: empty command".into()))?;
        let mut cmd = tokio::process::Command::new(prog);
        if rec.mount_ns {
            let pid = Self::pid(&dir)
                .filter(|p| Self::exit(&dir).is_none() && alive(*p))
                .ok_or_else(|| RuntimeError::Invalid(format!("container {id} is not running")))?;
            mount_ns::Joined::open(pid, rec.working_dir.as_deref())
                .map_err(|e| RuntimeError::Other(format!("exec: {e}")))?
                .apply(&mut cmd);
        } else {
            cmd.current_dir(rec.working_dir.as_deref().unwrap_or("/"));
        }
        let ExecStreams {
            stdin,
            output,
            tty,
            resize,
        } = streams;
        cmd.args(args)
            .env_clear()
            .envs(rec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if tty {
            if !rec.env.iter().any(|(k, _)| k == "TERM") {
                cmd.env("TERM", "xterm");
            }
            return exec_on_terminal(cmd, prog, stdin, resize, output, timeout).await;
        }
        cmd.stdin(match stdin {
            Some(_) => std::process::Stdio::piped(),
            None => std::process::Stdio::null(),
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                // like a shell: the command cannot run, 127 and why on stderr
                let why = format!("cannot run {prog:?}: {e}\n");
                let _ = output.send(ExecChunk::Stderr(why.into())).await;
                return Ok(127);
            }
        };
        let pipe_in = child.stdin.take();
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(RuntimeError::Other(format!(
                "exec {prog:?}: no output pipes"
            )));
        };
        let session = async {
            // the exit ends the input too: a command may finish without reading it all
            let exited = async {
                let wait = child.wait();
                tokio::pin!(wait);
                if let (Some(input), Some(pipe)) = (stdin, pipe_in) {
                    tokio::select! {
                        status = &mut wait => return status,
                        () = feed_input(input, pipe) => {}
                    }
                }
                wait.await
            };
            let (status, (), ()) = tokio::join!(
                exited,
                pump_output(out, ExecChunk::Stdout, &output),
                pump_output(err, ExecChunk::Stderr, &output),
            );
            status
        };
        // the child is killed as it is dropped
        run_session(session, prog, timeout, &output).await
    }

    async fn stdin_ready(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Err(RuntimeError::NotFound(id.into()));
        }
        if !shim::Io::read(&dir).stdin {
            return Err(RuntimeError::Invalid(format!(
                "container {id} was started without stdin: true in its spec; restart it with stdin: true to attach to its stdin"
            )));
        }
        if dir.join(shim::STDIN_CLOSED).exists() {
            return Err(RuntimeError::Invalid(
                "its stdin was closed when the first attach session ended (stdinOnce: true); it stays closed until the container restarts".into(),
            ));
        }
        open_control(&dir).map(drop)
    }

    async fn attach_input(&self, id: &str, input: AttachInput) -> Result<()> {
        let dir = self.dir(id);
        let io = shim::Io::read(&dir);
        let AttachInput {
            mut stdin,
            mut resize,
            close_stdin,
        } = input;
        if !io.stdin {
            stdin = None;
        }
        if !io.tty {
            resize = None;
        }
        if stdin.is_none() && resize.is_none() {
            return Ok(());
        }
        let mut control = open_control(&dir)?;
        let gone = |e: std::io::Error| {
            RuntimeError::Other(format!(
                "writing to the shim of container {id} (did it stop?): {e}"
            ))
        };
        while stdin.is_some() || resize.is_some() {
            let frame = match next_input(&mut stdin, &mut resize).await {
                Input::Stdin(Some(data)) => {
                    for piece in data.chunks(shim::CONTROL_INPUT_MAX) {
                        let frame = shim::Control::Input(piece.to_vec()).encode();
                        control.write_all(&frame).await.map_err(gone)?;
                    }
                    continue;
                }
                Input::Stdin(None) => {
                    stdin = None;
                    if !close_stdin {
                        continue;
                    }
                    tracing::info!(container = id, "stdinOnce: closing the container's stdin");
                    shim::Control::CloseStdin
                }
                Input::Resize(Some(size)) => shim::Control::Resize(size),
                Input::Resize(None) => {
                    resize = None;
                    continue;
                }
            };
            control.write_all(&frame.encode()).await.map_err(gone)?;
        }
        Ok(())
    }

    fn events(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }

    /// The container's process group (the shim makes the command a group
    /// leader) read from `/proc`: CPU time and resident memory.
    async fn usage(&self, id: &str) -> Option<crate::runtime::ContainerUsage> {
        let dir = self.dir(id);
        let pid = Self::pid(&dir).filter(|p| alive(*p))?;
        tokio::task::spawn_blocking(move || {
            crate::stats::proc::process_group_usage(std::path::Path::new("/proc"), pid)
        })
        .await
        .ok()
        .flatten()
    }
}

/// How long an exec on a terminal waits, once its command ended, for the
/// rest of the terminal's output (something the command started may keep
/// the terminal open).
const TTY_DRAIN: Duration = Duration::from_secs(2);

/// Runs an exec'd command on a new pseudo-terminal (`kubectl exec -t`): its
/// stdin, stdout and stderr are the terminal, whose output goes to `output`
/// as stdout; input and sizes are applied as they arrive. Returns the exit
/// code as [`Runtime::exec_streaming`] does.
async fn exec_on_terminal(
    mut cmd: tokio::process::Command,
    prog: &str,
    mut stdin: Option<tokio::sync::mpsc::Receiver<Bytes>>,
    mut resize: Option<tokio::sync::mpsc::Receiver<TermSize>>,
    output: tokio::sync::mpsc::Sender<ExecChunk>,
    timeout: Duration,
) -> Result<i32> {
    let term = |e: std::io::Error| RuntimeError::Other(format!("exec {prog:?}: a terminal: {e}"));
    let (master, slave) = pty::open().map_err(term)?;
    let dup = |fd: &std::os::fd::OwnedFd| fd.try_clone().map_err(term);
    cmd.stdin(dup(&slave)?)
        .stdout(dup(&slave)?)
        .stderr(slave)
        .kill_on_drop(true);
    // SAFETY: the hook calls only setsid and ioctl (async-signal-safe).
    unsafe { cmd.pre_exec(pty::make_controlling_terminal) };
    let spawned = cmd.spawn();
    // our copies of the slave go: the terminal ends with the command
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let why = format!("cannot run {prog:?}: {e}\r\n");
            let _ = output.send(ExecChunk::Stdout(why.into())).await;
            return Ok(127);
        }
    };
    let master = pty::Master::new(master).map_err(term)?;
    let pump = async {
        let mut buf = vec![0u8; crate::runtime::EXEC_CHUNK];
        let mut open = true;
        loop {
            match master.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if open
                        && output
                            .send(ExecChunk::Stdout(Bytes::copy_from_slice(&buf[..n])))
                            .await
                            .is_err()
                    {
                        open = false;
                    }
                }
            }
        }
    };
    let feed = async {
        while stdin.is_some() || resize.is_some() {
            match next_input(&mut stdin, &mut resize).await {
                Input::Stdin(Some(data)) => {
                    if master.write_all(&data).await.is_err() {
                        stdin = None;
                    }
                }
                // a terminal's input has no end of its own (^D is typed)
                Input::Stdin(None) => stdin = None,
                Input::Resize(Some(size)) => {
                    if let Err(e) = master.resize(size) {
                        tracing::debug!(error = %e, "exec terminal resize");
                    }
                }
                Input::Resize(None) => resize = None,
            }
        }
        std::future::pending::<()>().await
    };
    let session = async {
        tokio::pin!(pump);
        let (status, drained) = tokio::select! {
            status = child.wait() => (status, false),
            // (feeding never ends: it waits once its input is gone)
            () = feed => (child.wait().await, false),
            // the terminal is gone: the command is ending
            () = &mut pump => (child.wait().await, true),
        };
        if !drained {
            let _ = tokio::time::timeout(TTY_DRAIN, &mut pump).await;
        }
        status
    };
    run_session(session, prog, timeout, &output).await
}

/// Runs an exec's `session` (its command's wait, with its input and output)
/// for at most `timeout`, or until the client's side (`output`) goes: the
/// command's exit code (128 + the signal that ended it), or why there is none.
async fn run_session(
    session: impl std::future::Future<Output = std::io::Result<std::process::ExitStatus>>,
    prog: &str,
    timeout: Duration,
    output: &tokio::sync::mpsc::Sender<ExecChunk>,
) -> Result<i32> {
    tokio::select! {
        r = tokio::time::timeout(timeout, session) => match r {
            Ok(Ok(status)) => Ok(status
                .code()
                .or_else(|| {
                    use std::os::unix::process::ExitStatusExt;
                    status.signal().map(|s| 128 + s)
                })
                .unwrap_or(255)),
            Ok(Err(e)) => Err(RuntimeError::Other(format!("exec {prog:?}: waiting: {e}"))),
            Err(_) => Err(RuntimeError::Other(format!(
                "exec {prog:?}: timed out after {timeout:?}"
            ))),
        },
        () = output.closed() => Err(RuntimeError::Other(format!(
            "exec {prog:?}: the session went away; the command was killed"
        ))),
    }
}

/// The next item of an optional channel (never, without one).
async fn recv<T>(rx: &mut Option<tokio::sync::mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What came next from an attach or exec session's input.
enum Input {
    /// Input (`None`: its end).
    Stdin(Option<Bytes>),
    /// A terminal size (`None`: no more).
    Resize(Option<TermSize>),
}

/// Waits for the next input or terminal size (never, when both are gone).
async fn next_input(
    stdin: &mut Option<tokio::sync::mpsc::Receiver<Bytes>>,
    resize: &mut Option<tokio::sync::mpsc::Receiver<TermSize>>,
) -> Input {
    tokio::select! {
        c = recv(stdin) => Input::Stdin(c),
        s = recv(resize) => Input::Resize(s),
    }
}

/// Opens the write end of a running container's control FIFO, which its
/// shim holds open (without a reader — the shim is gone — the open fails).
fn open_control(dir: &Path) -> Result<tokio::net::unix::pipe::Sender> {
    let path = dir.join(shim::CONTROL_FIFO);
    tokio::net::unix::pipe::OpenOptions::new()
        .open_sender(&path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) | Some(libc::ENOENT) => RuntimeError::Invalid(format!(
                "the container is not running (nothing reads {})",
                path.display()
            )),
            _ => RuntimeError::Other(format!("{}: {e}", path.display())),
        })
}

/// How often a container's exit record is looked for (the shim writes it
/// when the process ends; like the kubelet's relist, but finer).
const EXIT_POLL: Duration = Duration::from_millis(100);

/// How often the shim's records are checked while a start or stop waits for them.
const RECORD_POLL: Duration = Duration::from_millis(20);

/// Checks `cond` until it holds (true) or `timeout` passes (false).
async fn until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(RECORD_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn paths_under_mounts_are_rewritten() {
        let mounts = vec![
            ("/www/sub".to_string(), PathBuf::from("/data/b")),
            ("/www".to_string(), PathBuf::from("/data/a")),
        ];
        assert_eq!(rewrite("/www", &mounts), "/data/a");
        assert_eq!(rewrite("/www/index.html", &mounts), "/data/a/index.html");
        assert_eq!(rewrite("/www/sub/x", &mounts), "/data/b/x");
        assert_eq!(rewrite("/wwwx", &mounts), "/wwwx");
        assert_eq!(rewrite("8080", &mounts), "8080");
    }

    /// A process runtime with one container record (no shim: exec needs only the record).
    fn runtime_with_container() -> (tempfile::TempDir, Process, String) {
        let root = tempfile::tempdir().expect("temp dir");
        let rt = Process::new(root.path(), vec![], PodIps::Host("127.0.0.1".into())).expect("rt");
        let id = "c0".to_string();
        let rec = Record {
            id: id.clone(),
            pod_uid: "u".into(),
            pod_namespace: "ns".into(),
            pod_name: "p".into(),
            name: "c".into(),
            attempt: 0,
            image: "busybox".into(),
            started_at: Utc::now().to_rfc3339(),
            log_path: root.path().join("log"),
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            working_dir: None,
            mounts: vec![],
            mount_ns: false,
        };
        let dir = rt.dir(&id);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("record.json"),
            serde_json::to_vec(&rec).expect("json"),
        )
        .expect("record");
        (root, rt, id)
    }

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    const WAIT: Duration = Duration::from_secs(20);

    async fn next_output(rx: &mut tokio::sync::mpsc::Receiver<ExecChunk>) -> Option<ExecChunk> {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("output within the deadline")
    }

    #[tokio::test]
    async fn exec_starts_at_once_and_streams_stdin_and_output() {
        let (_root, rt, id) = runtime_with_container();
        let (in_tx, in_rx) = tokio::sync::mpsc::channel(4);
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(4);
        let cmd = argv(&["sh", "-c", "echo started; cat; echo done >&2"]);
        let run = rt.exec_streaming(
            &id,
            &cmd,
            ExecStreams {
                stdin: Some(in_rx),
                output: out_tx,
                tty: false,
                resize: None,
            },
            WAIT,
        );
        let session = async {
            // the command runs before any input is sent
            assert_eq!(
                next_output(&mut out_rx).await,
                Some(ExecChunk::Stdout(Bytes::from("started\n")))
            );
            // input reaches it as it is sent, and its echo comes back at once
            in_tx.send(Bytes::from("one\n")).await.expect("send");
            assert_eq!(
                next_output(&mut out_rx).await,
                Some(ExecChunk::Stdout(Bytes::from("one\n")))
            );
            // the end of input is the command's EOF
            drop(in_tx);
            assert_eq!(
                next_output(&mut out_rx).await,
                Some(ExecChunk::Stderr(Bytes::from("done\n")))
            );
            next_output(&mut out_rx).await
        };
        let (code, rest) = tokio::join!(run, session);
        assert_eq!(code.expect("ran"), 0);
        assert_eq!(rest, None, "the output ends with the command");
    }

    #[tokio::test]
    async fn exec_ends_when_the_command_exits_though_stdin_stays_open() {
        let (_root, rt, id) = runtime_with_container();
        let (_in_tx, in_rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(4);
        let cmd = argv(&["sh", "-c", "ls / >/dev/null; exit 4"]);
        let run = rt.exec_streaming(
            &id,
            &cmd,
            ExecStreams {
                stdin: Some(in_rx),
                output: out_tx,
                tty: false,
                resize: None,
            },
            WAIT,
        );
        let code = tokio::time::timeout(WAIT, run).await.expect("ends");
        assert_eq!(code.expect("ran"), 4);
        assert_eq!(out_rx.recv().await, None);
    }

    #[tokio::test]
    async fn exec_kills_the_command_when_nobody_reads_its_output() {
        let (_root, rt, id) = runtime_with_container();
        let (out_tx, out_rx) = tokio::sync::mpsc::channel(4);
        drop(out_rx);
        let cmd = argv(&["sleep", "60"]);
        let run = rt.exec_streaming(
            &id,
            &cmd,
            ExecStreams {
                stdin: None,
                output: out_tx,
                tty: false,
                resize: None,
            },
            Duration::from_secs(120),
        );
        let r = tokio::time::timeout(WAIT, run).await.expect("ends");
        assert!(
            r.as_ref()
                .is_err_and(|e| e.to_string().contains("went away")),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn exec_on_a_terminal_echoes_input_applies_sizes_and_merges_output() {
        let (_root, rt, id) = runtime_with_container();
        let (in_tx, in_rx) = tokio::sync::mpsc::channel(4);
        let (size_tx, size_rx) = tokio::sync::mpsc::channel(4);
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(4);
        // the size is read after a line of input, so it is applied by then
        let cmd = argv(&[
            "sh",
            "-c",
            "read l; test -t 0 && echo tty:yes; echo err:$l >&2; stty size; echo TERM=$TERM",
        ]);
        let run = rt.exec_streaming(
            &id,
            &cmd,
            ExecStreams {
                stdin: Some(in_rx),
                output: out_tx,
                tty: true,
                resize: Some(size_rx),
            },
            WAIT,
        );
        let session = async {
            size_tx
                .send(TermSize {
                    width: 77,
                    height: 11,
                })
                .await
                .expect("size");
            in_tx.send(Bytes::from("hi\n")).await.expect("send");
            let mut text = String::new();
            while let Some(chunk) = next_output(&mut out_rx).await {
                match chunk {
                    ExecChunk::Stdout(b) => text.push_str(&String::from_utf8_lossy(&b)),
                    ExecChunk::Stderr(b) => panic!("stderr on a terminal: {b:?}"),
                }
            }
            text
        };
        let (code, text) = tokio::join!(run, session);
        assert_eq!(code.expect("ran"), 0, "{text:?}");
        for want in [
            "hi\r\n",
            "tty:yes\r\n",
            "err:hi\r\n",
            "11 77\r\n",
            "TERM=xterm",
        ] {
            assert!(text.contains(want), "{want:?} in {text:?}");
        }
    }

    #[test]
    fn control_frames_read_back_as_written() {
        let frames = vec![
            shim::Control::Input(b"line\n".to_vec()),
            shim::Control::Resize(TermSize {
                width: 300,
                height: 2,
            }),
            shim::Control::CloseStdin,
            shim::Control::Input(vec![7; shim::CONTROL_INPUT_MAX]),
        ];
        let mut wire = Vec::new();
        for f in &frames {
            let bytes = f.encode();
            assert!(bytes.len() <= shim::CONTROL_MAX, "atomic on a FIFO");
            wire.extend(bytes);
        }
        let mut r = &wire[..];
        let mut got = Vec::new();
        while let Some(f) = shim::Control::read(&mut r).expect("frames") {
            got.push(f);
        }
        assert_eq!(got, frames);
        let mut bad = &[2u8, 0, 1, 9][..];
        assert!(shim::Control::read(&mut bad).is_err(), "a short resize");
        let mut bad = &[9u8, 0, 0][..];
        assert!(shim::Control::read(&mut bad).is_err(), "an unknown kind");
    }

    #[tokio::test]
    async fn collected_exec_still_takes_its_whole_input() {
        let (_root, rt, id) = runtime_with_container();
        let out = rt
            .exec(&id, &argv(&["wc", "-c"]), Some(b"hello"), WAIT)
            .await
            .expect("ran");
        assert_eq!(
            (out.code, String::from_utf8_lossy(&out.stdout).trim()),
            (0, "5")
        );
        let out = rt
            .exec(&id, &argv(&["no-such-command-korral"]), None, WAIT)
            .await
            .expect("ran");
        assert_eq!(out.code, 127);
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run"));
    }
}
