//! The per-container shim of the process runtime (`korral node-shim`), like
//! containerd's: it detaches from the daemon (own session), runs the
//! container's command in its own process group with stdout/stderr
//! appended to the log file, records the pid, waits, and records the exit
//! status — so containers outlive a daemon restart and their exit codes are
//! never lost. Given a mount plan, the command runs in its own mount
//! namespace ([`super::mount_ns`]).

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

use super::mount_ns::{self, Plan};

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
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
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
    let _ = write_atomic(&dir.join("pid"), child.id().to_string().as_bytes());
    match child.wait() {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(c), _) => record_exit(dir, c, None, None),
            (None, Some(s)) => record_exit(dir, 128 + s, Some(s), None),
            (None, None) => record_exit(dir, 255, None, None),
        },
        Err(e) => record_exit(dir, 255, None, Some(format!("wait: {e}"))),
    }
    0
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
