//! The per-container shim of the process runtime (`korral node-shim`), like
//! containerd's: it detaches from the daemon (own session), runs the
//! container's command in its own process group with stdout/stderr
//! appended to the log file, records the pid, waits, and records the exit
//! status — so containers outlive a daemon restart and their exit codes are
//! never lost.

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

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

/// Runs the shim: `dir` holds the container's records, `log` receives its
/// output, `argv` is the command. Returns the shim's exit code.
pub fn run(dir: &Path, log: &Path, argv: &[String]) -> i32 {
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
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            let msg = format!("cannot run {program:?}: {e}");
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
