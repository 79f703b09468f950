//! The per-container shim of the process runtime (`korral node-shim`), like
//! containerd's: it detaches from the daemon (own session), runs the
//! container's command in its own process group with stdout/stderr
//! appended to the log file, records the pid, waits, and records the exit
//! status — so containers outlive a daemon restart and their exit codes are
//! never lost. Given a mount plan, the command runs in its own mount
//! namespace ([`super::mount_ns`]).
//!
//! With `stdin: true` or `tty: true` ([`Io`], in the container's directory)
//! the shim also makes a FIFO, [`CONTROL_FIFO`], which it holds open for the
//! container's lifetime: the node daemon — this one or the next after a
//! restart — writes [`Control`] frames to it (attach input, terminal sizes,
//! the end of a `stdinOnce` container's stdin). The command's stdin is a
//! pipe the shim feeds from those frames (so it sees EOF only when told),
//! or with `tty: true` a pseudo-terminal, whose output the shim appends to
//! the log file.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::mount_ns::{self, Plan};
use crate::runtime::{TermSize, pty};

/// The file in a container's directory that says how its process is
/// connected ([`Io`], JSON; absent: stdin closed, no terminal).
pub const IO_FILE: &str = "io.json";

/// The FIFO in a container's directory that takes [`Control`] frames.
pub const CONTROL_FIFO: &str = "control";

/// The file the shim writes once the command's stdin was closed for good
/// ([`Control::CloseStdin`]).
pub const STDIN_CLOSED: &str = "stdin-closed";

/// How a container's process is connected (the spec's `stdin` and `tty`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Io {
    /// Keep stdin open for attach sessions.
    pub stdin: bool,
    /// Run on a pseudo-terminal.
    pub tty: bool,
}

impl Io {
    /// The container directory's [`IO_FILE`] (the default without one).
    pub fn read(dir: &Path) -> Io {
        std::fs::read(dir.join(IO_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

/// The largest frame: writes to a FIFO up to `PIPE_BUF` bytes are atomic,
/// so frames from several attach sessions never interleave.
pub const CONTROL_MAX: usize = 4096;

/// The largest input carried by one frame (the header is 3 bytes).
pub const CONTROL_INPUT_MAX: usize = CONTROL_MAX - 3;

/// One message from the node daemon to the shim on [`CONTROL_FIFO`]: a kind
/// byte, the payload's length (2 bytes, big-endian), the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Kind 0: input for the command's stdin (at most [`CONTROL_INPUT_MAX`] bytes).
    Input(Vec<u8>),
    /// Kind 1: close the command's stdin for good (`stdinOnce`).
    CloseStdin,
    /// Kind 2: the terminal's new size (columns, rows: 2 bytes each).
    Resize(TermSize),
}

impl Control {
    /// The frame's bytes (input beyond [`CONTROL_INPUT_MAX`] is cut there:
    /// callers split it).
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, Vec<u8>) = match self {
            Control::Input(b) => (0, b[..b.len().min(CONTROL_INPUT_MAX)].to_vec()),
            Control::CloseStdin => (1, Vec::new()),
            Control::Resize(s) => {
                let mut p = s.width.to_be_bytes().to_vec();
                p.extend_from_slice(&s.height.to_be_bytes());
                (2, p)
            }
        };
        let mut out = Vec::with_capacity(3 + payload.len());
        out.push(kind);
        // at most CONTROL_INPUT_MAX, which fits
        out.extend_from_slice(
            &u16::try_from(payload.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&payload);
        out
    }

    /// Reads the next frame; `None` at the end of the stream; an error for
    /// bytes that are not frames.
    pub fn read(r: &mut impl Read) -> std::io::Result<Option<Control>> {
        let mut head = [0u8; 3];
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = usize::from(u16::from_be_bytes([head[1], head[2]]));
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload)?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        match (head[0], payload.len()) {
            (0, _) => Ok(Some(Control::Input(payload))),
            (1, _) => Ok(Some(Control::CloseStdin)),
            (2, 4) => Ok(Some(Control::Resize(TermSize {
                width: u16::from_be_bytes([payload[0], payload[1]]),
                height: u16::from_be_bytes([payload[2], payload[3]]),
            }))),
            (2, _) => Err(bad("a resize frame is 4 bytes")),
            _ => Err(bad("a control frame of unknown kind")),
        }
    }
}

/// Creates a FIFO (mode 0600).
pub fn make_fifo(path: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(std::io::Error::other)?;
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What the shim records when the command ends.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ExitRecord {
    /// Exit code (128 + signal when killed by one).
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// When it ended (RFC 3339).
    pub finished_at: String,
    /// Why it could not start, if it did not.
    pub message: Option<String>,
}

/// Writes `body` to `path` atomically.
pub fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn record_exit(dir: &Path, code: i32, signal: Option<i32>, message: Option<String>) {
    let rec = ExitRecord {
        code,
        signal,
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        message,
    };
    if let Ok(body) = serde_json::to_vec(&rec) {
        let _ = write_atomic(&dir.join("exit"), &body);
    }
}

/// The file in a container's directory where the child writes why its
/// mount namespace could not be set up.
const SETUP_ERROR: &str = "setup-error";

/// Runs the shim: `dir` holds the container's records, `log` receives its
/// output, `argv` is the command; with `mounts` (a [`Plan`] as JSON) the
/// command runs in its own mount namespace. Returns the shim's exit code.
pub fn run(dir: &Path, log: &Path, argv: &[String], mounts: Option<&Path>) -> i32 {
    // SAFETY: setsid has no memory effects; it detaches us from the daemon's session.
    unsafe {
        libc::setsid();
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let Some((program, args)) = argv.split_first() else {
        record_exit(dir, 127, None, Some("no command".into()));
        return 1;
    };
    if let Some(parent) = log.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let out = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        Ok(f) => f,
        Err(e) => {
            record_exit(
                dir,
                126,
                None,
                Some(format!("log file {}: {e}", log.display())),
            );
            return 1;
        }
    };
    let err = match out.try_clone() {
        Ok(f) => f,
        Err(e) => {
            record_exit(dir, 126, None, Some(format!("log file: {e}")));
            return 1;
        }
    };
    let io = Io::read(dir);
    let mut cmd = Command::new(program);
    cmd.args(args);
    let wired = match wire(&mut cmd, dir, io, out, err) {
        Ok(w) => w,
        Err(msg) => {
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
                let _ = writeln!(f, "{msg}");
            }
            record_exit(dir, 126, None, Some(msg));
            return 1;
        }
    };
    if let Some(plan) = mounts
        && let Err(msg) = isolate(&mut cmd, dir, plan)
    {
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
            let _ = writeln!(f, "{msg}");
        }
        record_exit(dir, 126, None, Some(msg));
        return 1;
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let setup = std::fs::read_to_string(dir.join(SETUP_ERROR)).unwrap_or_default();
            let code = if !setup.is_empty() {
                126
            } else if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            let msg = if setup.is_empty() {
                format!("cannot run {program:?}: {e}")
            } else {
                format!("cannot set up the mount namespace of {program:?}: {setup}")
            };
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
                let _ = writeln!(f, "{msg}");
            }
            record_exit(dir, code, None, Some(msg));
            return 1;
        }
    };
    // our copies of the terminal's slave end go: the terminal ends with the command
    drop(cmd);
    let output_done = wired.start(dir);
    let _ = write_atomic(&dir.join("pid"), child.id().to_string().as_bytes());
    let status = child.wait();
    // what the terminal still holds reaches the log before the exit is recorded
    // (unless something the command left behind keeps the terminal open)
    if let Some(done) = output_done {
        let _ = done.recv_timeout(TTY_DRAIN);
    }
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(c), _) => record_exit(dir, c, None, None),
            (None, Some(s)) => record_exit(dir, 128 + s, Some(s), None),
            (None, None) => record_exit(dir, 255, None, None),
        },
        Err(e) => record_exit(dir, 255, None, Some(format!("wait: {e}"))),
    }
    0
}

/// How long the shim waits, once the command ended, for the rest of its
/// terminal's output.
const TTY_DRAIN: Duration = Duration::from_secs(2);

/// The shim's ends of a command's stdio, kept while it runs.
struct Wired {
    /// The [`CONTROL_FIFO`], held open for reading (and writing, so that it
    /// never reads EOF between two daemons' writes).
    control: Option<std::fs::File>,
    /// The write end of the command's stdin pipe (no terminal).
    stdin: Option<std::fs::File>,
    /// The terminal's master side and the log its output goes to.
    tty: Option<(OwnedFd, std::fs::File)>,
}

/// Connects the command's stdio as `io` says: stdout and stderr to the log
/// (`out`, `err`) and stdin closed; with `stdin`, a pipe the shim feeds from
/// the control FIFO; with `tty`, a new pseudo-terminal for all three (the
/// command leads a session with it as its controlling terminal). Without a
/// terminal the command leads its own process group.
fn wire(
    cmd: &mut Command,
    dir: &Path,
    io: Io,
    out: std::fs::File,
    err: std::fs::File,
) -> Result<Wired, String> {
    let mut wired = Wired {
        control: None,
        stdin: None,
        tty: None,
    };
    if io.stdin || io.tty {
        let path = dir.join(CONTROL_FIFO);
        let _ = std::fs::remove_file(&path);
        make_fifo(&path).map_err(|e| format!("control FIFO {}: {e}", path.display()))?;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("control FIFO {}: {e}", path.display()))?;
        wired.control = Some(f);
    }
    if io.tty {
        let (master, slave) = pty::open().map_err(|e| format!("opening a terminal: {e}"))?;
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("terminal: {e}"));
        cmd.stdin(Stdio::from(dup(&slave)?))
            .stdout(Stdio::from(dup(&slave)?))
            .stderr(Stdio::from(slave));
        // SAFETY: the hook calls only setsid and ioctl (async-signal-safe).
        unsafe { cmd.pre_exec(pty::make_controlling_terminal) };
        wired.tty = Some((master, out));
        drop(err);
        return Ok(wired);
    }
    if io.stdin {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(format!("stdin pipe: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: pipe2 succeeded: both are open descriptors we now own.
        let (r, w) = unsafe {
            use std::os::fd::FromRawFd;
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        };
        cmd.stdin(Stdio::from(r));
        wired.stdin = Some(w);
    } else {
        cmd.stdin(Stdio::null());
    }
    cmd.stdout(out).stderr(err).process_group(0);
    Ok(wired)
}

impl Wired {
    /// Starts the threads that serve a running command: control frames to
    /// its stdin or terminal, its terminal's output to the log. Returns what
    /// says the terminal's output has ended (with a terminal).
    fn start(self, dir: &Path) -> Option<std::sync::mpsc::Receiver<()>> {
        let master = self.tty.as_ref().and_then(|(m, _)| m.try_clone().ok());
        if let Some(mut control) = self.control {
            let (mut stdin, dir) = (self.stdin, dir.to_path_buf());
            let mut master = master.map(std::fs::File::from);
            std::thread::spawn(move || {
                while let Ok(Some(frame)) = Control::read(&mut control) {
                    match frame {
                        Control::Input(data) => {
                            let target = stdin.as_mut().or(master.as_mut());
                            // a command that closed its stdin takes no more
                            if let Some(t) = target
                                && t.write_all(&data).is_err()
                            {
                                stdin = None;
                            }
                        }
                        Control::CloseStdin => {
                            if stdin.take().is_some() {
                                let _ = write_atomic(&dir.join(STDIN_CLOSED), b"");
                            }
                        }
                        Control::Resize(size) => {
                            if let Some(m) = &master {
                                let _ = pty::set_size(m.as_raw_fd(), size);
                            }
                        }
                    }
                }
            });
        }
        let (master, mut log) = self.tty?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut master = std::fs::File::from(master);
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match master.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // EIO: every slave is closed, the terminal is gone
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = log.write_all(&buf[..n]);
                    }
                }
            }
            let _ = tx.send(());
        });
        Some(rx)
    }
}

/// Makes `cmd` enter a mount namespace set up from the plan in `file`
/// before exec; a failure there is written to [`SETUP_ERROR`] and makes the
/// spawn fail.
fn isolate(cmd: &mut Command, dir: &Path, file: &Path) -> Result<(), String> {
    let plan: Plan = std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("mount plan {}: {e}", file.display()))?;
    let scratch = dir.join("mnt");
    std::fs::create_dir_all(&scratch)
        .and_then(|()| std::fs::canonicalize(&scratch))
        .map_err(|e| format!("{}: {e}", scratch.display()))
        .map(|scratch| {
            let report = std::fs::File::create(dir.join(SETUP_ERROR));
            // SAFETY: the shim is single-threaded, so the child may allocate
            // between fork and exec; it only sets up its own mount namespace.
            unsafe {
                cmd.pre_exec(move || {
                    mount_ns::enter(&plan, &scratch).inspect_err(|e| {
                        if let Ok(mut f) = report.as_ref() {
                            let _ = write!(f, "{e}");
                        }
                    })
                });
            }
        })
}
