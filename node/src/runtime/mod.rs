//! The `Runtime` trait the pod reconciler drives, and what flows through it:
//! a pod sandbox (network), containers built from the pod spec, their
//! observed state, exec for probes and `kubectl exec` (streamed: the command
//! starts at once, its input arrives as it is sent, its output leaves as it is
//! written — see [`ExecStreams`]; on a terminal with `-t`, see [`pty`]), and
//! `kubectl attach`'s input to a container's own stdin or terminal
//! ([`AttachInput`]). Three implementations: [`containerd`], [`process`],
//! [`simulated`].

pub mod auth;
pub mod containerd;
pub mod process;
pub mod pty;
pub mod simulated;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc};

/// Why a runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The image is not on the node (and was not pulled).
    #[error(
        "image {0:?} is not present on the node; pull it or import it with `korral image import`"
    )]
    ImageNotPresent(String),
    /// No such container.
    #[error("container {0} not found")]
    NotFound(String),
    /// The configuration cannot run here.
    #[error("{0}")]
    Invalid(String),
    /// Anything else (I/O, gRPC, commands).
    #[error("{0}")]
    Other(String),
}

/// A `Result` with a [`RuntimeError`].
pub type Result<T> = std::result::Result<T, RuntimeError>;

/// Labels korral puts on runtime objects so a restarted daemon finds them.
pub mod labels {
    /// The node daemon that made it.
    pub const NODE: &str = "io.korral.node";
    /// The pod's uid.
    pub const POD_UID: &str = "io.korral.pod.uid";
    /// The pod's namespace.
    pub const POD_NAMESPACE: &str = "io.korral.pod.namespace";
    /// The pod's name.
    pub const POD_NAME: &str = "io.korral.pod.name";
    /// The container's name in the pod spec.
    pub const CONTAINER: &str = "io.korral.container.name";
    /// The restart attempt (0 for the first run).
    pub const ATTEMPT: &str = "io.korral.container.attempt";
    /// When the container was started (RFC 3339).
    pub const STARTED: &str = "io.korral.container.started";
    /// The pod's IP.
    pub const POD_IP: &str = "io.korral.pod.ip";
}

/// A pod's sandbox: what its containers share (the network).
#[derive(Clone, Debug)]
pub struct PodSandbox {
    /// The pod's uid.
    pub uid: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// Its hostname.
    pub hostname: String,
    /// Use the host's network.
    pub host_network: bool,
    /// The pod's directory on the node (volumes, logs, hosts files).
    pub dir: PathBuf,
    /// The pod's `/etc/resolv.conf` (`None`: the node's).
    pub resolv_conf: Option<String>,
}

/// A volume mounted into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where in the container.
    pub container_path: String,
    /// The node path (a directory or file).
    pub host_path: PathBuf,
    /// Mount read-only.
    pub read_only: bool,
}

/// Everything needed to run one container.
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    /// The pod's uid.
    pub pod_uid: String,
    /// The pod's namespace.
    pub pod_namespace: String,
    /// The pod's name.
    pub pod_name: String,
    /// The container's name.
    pub name: String,
    /// Restart attempt (0 first).
    pub attempt: u32,
    /// The image reference.
    pub image: String,
    /// `command` (replaces the image's entrypoint when set).
    pub command: Vec<String>,
    /// `args` (replace the image's cmd when set).
    pub args: Vec<String>,
    /// Resolved environment, in order.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// User and group ids.
    pub run_as: Option<(u32, Option<u32>)>,
    /// Volume mounts.
    pub mounts: Vec<Mount>,
    /// cpu limit in millicores.
    pub cpu_limit_millis: Option<i64>,
    /// cpu request in millicores (cpu shares).
    pub cpu_request_millis: Option<i64>,
    /// Memory limit in bytes.
    pub memory_limit_bytes: Option<i64>,
    /// Where stdout and stderr go.
    pub log_path: PathBuf,
    /// The pod's IP (for adoption records).
    pub pod_ip: Option<String>,
    /// The spec's `stdin`, `stdinOnce` and `tty`.
    pub io: ContainerIo,
}

/// How a container's own process is connected (the spec's `stdin`,
/// `stdinOnce` and `tty`): with `stdin` the runtime keeps a stdin pipe that
/// attach sessions write to ([`Runtime::attach_input`]); with `tty` the
/// process gets a terminal, whose output (stdout and stderr in one) goes to
/// the log as usual.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerIo {
    /// Keep a stdin pipe open for attach sessions.
    pub stdin: bool,
    /// Close stdin when the first attach session's input ends.
    pub stdin_once: bool,
    /// Give the process a terminal.
    pub tty: bool,
}

impl ContainerIo {
    /// The fields of a container spec.
    pub fn of(c: &k8s_openapi::api::core::v1::Container) -> Self {
        ContainerIo {
            stdin: c.stdin == Some(true),
            stdin_once: c.stdin_once == Some(true),
            tty: c.tty == Some(true),
        }
    }
}

/// A terminal's size, as the remotecommand resize stream sends it
/// (`{"Width": columns, "Height": rows}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct TermSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// What an attach session sends to a container's own process: its input
/// (for a container with `stdin: true`) and terminal sizes (with `tty:
/// true`), as they arrive. See [`Runtime::attach_input`].
#[derive(Debug)]
pub struct AttachInput {
    /// Input for the container's stdin; the channel's end is the end of this
    /// session's input (not of the container's stdin, unless `close_stdin`).
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    /// Terminal sizes to apply to the container's terminal.
    pub resize: Option<mpsc::Receiver<TermSize>>,
    /// Close the container's stdin when this session's input ends
    /// (`stdinOnce` without a TTY, as containerd's CRI does).
    pub close_stdin: bool,
}

/// A container's state as the runtime sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, not yet running.
    Created,
    /// Running.
    Running,
    /// Exited.
    Exited {
        /// Exit code (128 + signal when killed).
        code: i32,
        /// When it exited.
        finished_at: DateTime<Utc>,
        /// `OOMKilled` when the memory limit killed it.
        reason: Option<String>,
    },
}

/// One container the runtime holds.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    /// Runtime id.
    pub id: String,
    /// The pod's uid.
    pub pod_uid: String,
    /// The pod's namespace.
    pub pod_namespace: String,
    /// The pod's name.
    pub pod_name: String,
    /// Container name in the pod spec.
    pub name: String,
    /// Restart attempt.
    pub attempt: u32,
    /// The image reference.
    pub image: String,
    /// The image's id (digest).
    pub image_id: String,
    /// State.
    pub state: State,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// Its log file.
    pub log_path: PathBuf,
}

impl ContainerInfo {
    /// Whether it is running (or about to).
    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running | State::Created)
    }
}

/// The result of running a command in a container.
#[derive(Clone, Debug)]
pub struct ExecOutput {
    /// Exit code.
    pub code: i32,
    /// What the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// stdout then stderr, for messages (probe failures).
    pub fn combined(&self) -> Vec<u8> {
        let mut all = self.stdout.clone();
        all.extend_from_slice(&self.stderr);
        all
    }
}

/// One piece of an exec'd command's output, as it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecChunk {
    /// Written to stdout.
    Stdout(Bytes),
    /// Written to stderr.
    Stderr(Bytes),
}

/// The streams of one [`Runtime::exec_streaming`] session.
#[derive(Debug)]
pub struct ExecStreams {
    /// The command's input, chunk by chunk as it arrives; the end of the
    /// channel (every sender dropped) is the end of input. `None`: no input
    /// (`/dev/null`).
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    /// Where the command's output goes as it is produced.
    pub output: mpsc::Sender<ExecChunk>,
    /// Run the command on a terminal: its output (stdout and stderr in one)
    /// arrives as [`ExecChunk::Stdout`].
    pub tty: bool,
    /// Terminal sizes to apply as they arrive (with `tty`).
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

/// How many chunks an exec's output (or input) channel holds before the
/// producer waits: backpressure instead of buffering.
pub const EXEC_QUEUE: usize = 16;

/// The largest chunk of output read at once.
pub const EXEC_CHUNK: usize = 32 * 1024;

/// Copies a command's output pipe to `output` as `wrap`ped chunks until the
/// pipe ends. When nobody receives any more, the rest is read and dropped,
/// so the command never blocks on a full pipe.
pub async fn pump_output<R>(
    mut pipe: R,
    wrap: fn(Bytes) -> ExecChunk,
    output: &mpsc::Sender<ExecChunk>,
) where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; EXEC_CHUNK];
    let mut open = true;
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if open
                    && output
                        .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                {
                    open = false;
                }
            }
        }
    }
}

/// Copies `input` into a command's stdin pipe as it arrives, then closes the
/// pipe (the command's end of input). Stops early, without error, when the
/// command closes its end (it need not read everything).
pub async fn feed_input<W>(mut input: mpsc::Receiver<Bytes>, mut pipe: W)
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    while let Some(chunk) = input.recv().await {
        if pipe.write_all(&chunk).await.is_err() || pipe.flush().await.is_err() {
            return;
        }
    }
    let _ = pipe.shutdown().await;
}

/// An image a runtime pulled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulledImage {
    /// The image's id (the digest of its manifest).
    pub id: String,
    /// Its size in bytes as stored (compressed layers, config, manifests).
    pub size: u64,
}

/// An image the runtime holds, as the image garbage collector sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image's id (what [`ContainerInfo::image_id`] names).
    pub id: String,
    /// Its names (normalised references) on the node.
    pub names: Vec<String>,
    /// Its size in bytes as stored (as [`PulledImage::size`]).
    pub size: u64,
}

/// The filesystem a runtime keeps its images on (the kubelet's image filesystem).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFs {
    /// A path on it (the snapshotter's root).
    pub path: PathBuf,
    /// Its size in bytes.
    pub capacity_bytes: u64,
    /// Bytes available to unprivileged users.
    pub available_bytes: u64,
}

/// A container's resource counters as the runtime reads them (cgroup or
/// `/proc`); the node's sampler turns two of them into a CPU rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerUsage {
    /// CPU time used since the container started, in nanoseconds.
    pub cpu_ns: u64,
    /// The working set: memory in use minus inactive file pages.
    pub working_set_bytes: u64,
    /// Memory in use (page cache included).
    pub usage_bytes: u64,
    /// Resident anonymous memory.
    pub rss_bytes: u64,
}

/// What a runtime does for the pod reconciler. Every call is idempotent
/// where it can be (a sandbox that exists is returned, a container already
/// stopped stops at once).
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `containerd`, `process` or `simulated` (the scheme of container ids).
    fn kind(&self) -> &'static str;

    /// `NAME://VERSION` for `nodeInfo.containerRuntimeVersion`.
    async fn version(&self) -> String;

    /// Whether this runtime keeps images (and pulls them): image pull
    /// policies apply only then. The process runtime runs host commands and
    /// the simulated one runs nothing, so neither has images.
    fn has_images(&self) -> bool {
        false
    }

    /// The id of an image when it is on the node.
    async fn image_id(&self, reference: &str) -> Result<Option<String>> {
        Err(RuntimeError::Invalid(format!(
            "the {} runtime keeps no images (it cannot look up {reference:?})",
            self.kind()
        )))
    }

    /// Pulls an image from its registry with the credentials `keyring` holds.
    async fn pull_image(&self, reference: &str, keyring: &auth::Keyring) -> Result<PulledImage> {
        let _ = keyring;
        Err(RuntimeError::Invalid(format!(
            "the {} runtime cannot pull images (it runs no images: cannot pull {reference:?}); use the containerd runtime",
            self.kind()
        )))
    }

    /// The images on the node (none for runtimes without images).
    async fn images(&self) -> Result<Vec<ImageInfo>> {
        Ok(Vec::new())
    }

    /// The filesystem images are kept on, with its usage now.
    async fn image_fs(&self) -> Result<ImageFs> {
        Err(RuntimeError::Invalid(format!(
            "the {} runtime keeps no images",
            self.kind()
        )))
    }

    /// Removes an image by id: every name of it, and what only it used (its
    /// content and unpacked layers).
    async fn remove_image(&self, id: &str) -> Result<()> {
        Err(RuntimeError::Invalid(format!(
            "the {} runtime keeps no images (it cannot remove {id:?})",
            self.kind()
        )))
    }

    /// Sets up (or finds) the pod's sandbox; returns the pod's IP.
    async fn run_sandbox(&self, sandbox: &PodSandbox) -> Result<String>;

    /// Tears down the pod's sandbox (after its containers are gone).
    async fn remove_sandbox(&self, pod_uid: &str) -> Result<()>;

    /// Creates and starts a container.
    async fn start(&self, sandbox: &PodSandbox, config: &ContainerConfig) -> Result<ContainerInfo>;

    /// Stops a container: the stop signal (SIGTERM), then SIGKILL after `grace`.
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;

    /// Removes a stopped container (its log file stays until the pod goes).
    async fn remove(&self, id: &str) -> Result<()>;

    /// Every container of every pod this node runs.
    async fn list(&self) -> Result<Vec<ContainerInfo>>;

    /// The containers of one pod.
    async fn list_pod(&self, pod_uid: &str) -> Result<Vec<ContainerInfo>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|c| c.pod_uid == pod_uid)
            .collect())
    }

    /// Runs a command in a running container, streaming: the command starts
    /// at once; what arrives on `streams.stdin` is copied to its standard
    /// input as it comes (the channel's end closes that input; without a
    /// channel the input is empty); its stdout and stderr go to
    /// `streams.output` as they are written. Returns the exit code once the
    /// command has exited and its output is sent — whether or not its input
    /// ended. The command is killed after `timeout`, and when
    /// `streams.output`'s receiver goes away (nobody is left to see it).
    async fn exec_streaming(
        &self,
        id: &str,
        command: &[String],
        streams: ExecStreams,
        timeout: Duration,
    ) -> Result<i32>;

    /// Runs a command to completion (probes): `stdin` (when given) is its whole
    /// input, then closed; the output is collected.
    async fn exec(
        &self,
        id: &str,
        command: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let input = stdin.map(|data| {
            let (tx, rx) = mpsc::channel(1);
            // a fresh channel with room for one: this cannot fail; dropping tx ends the input
            let _ = tx.try_send(Bytes::copy_from_slice(data));
            rx
        });
        let (output, mut rx) = mpsc::channel(EXEC_QUEUE);
        let run = self.exec_streaming(
            id,
            command,
            ExecStreams {
                stdin: input,
                output,
                tty: false,
                resize: None,
            },
            timeout,
        );
        let collect = async {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(chunk) = rx.recv().await {
                match chunk {
                    ExecChunk::Stdout(b) => stdout.extend_from_slice(&b),
                    ExecChunk::Stderr(b) => stderr.extend_from_slice(&b),
                }
            }
            (stdout, stderr)
        };
        let (code, (stdout, stderr)) = tokio::join!(run, collect);
        Ok(ExecOutput {
            code: code?,
            stdout,
            stderr,
        })
    }

    /// Whether a running container's stdin can be written by an attach
    /// session now: an error saying why not otherwise (started without
    /// `stdin: true`, its stdin closed after a `stdinOnce` session, or a
    /// runtime that keeps no stdin).
    async fn stdin_ready(&self, id: &str) -> Result<()> {
        let _ = id;
        Err(RuntimeError::Invalid(format!(
            "the {} runtime keeps no stdin for a container's own process",
            self.kind()
        )))
    }

    /// Feeds an attach session's input to a container's own process: its
    /// stdin chunks to the container's stdin (which several sessions share),
    /// its terminal sizes to the container's terminal, as they arrive, until
    /// both channels end (then, with `close_stdin`, the container's stdin is
    /// closed for good).
    async fn attach_input(&self, id: &str, input: AttachInput) -> Result<()> {
        let _ = input;
        self.stdin_ready(id).await
    }

    /// Pod uids whose containers changed state (exited): the reconciler resyncs them.
    fn events(&self) -> broadcast::Receiver<String>;

    /// A running container's resource counters now (`None`: not measurable:
    /// gone, or a runtime that measures nothing, like the simulated one,
    /// whose usage comes from pod annotations — see `crate::stats`).
    async fn usage(&self, id: &str) -> Option<ContainerUsage> {
        let _ = id;
        None
    }
}

/// A broadcast channel for runtime events (pod uids).
pub fn event_channel() -> broadcast::Sender<String> {
    broadcast::channel(1024).0
}
