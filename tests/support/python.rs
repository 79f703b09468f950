//! Python client scenarios against a real server: the interpreters to use
//! (`KORRAL_PYTHONS`, colon-separated; CI sets one environment with pinned
//! client versions and one with the newest, else `python3`) and a runner that
//! checks a script's `...: ok` lines.

use std::ffi::OsStr;
use std::process::Command;

use super::{Server, stderr, stdout};

/// The Python interpreters to run the scenarios with.
pub fn pythons() -> Vec<String> {
    match std::env::var("KORRAL_PYTHONS") {
        Ok(list) if !list.trim().is_empty() => list.split(':').map(str::to_string).collect(),
        _ => vec!["python3".to_string()],
    }
}

/// The client packages an interpreter has, with versions, for failure messages.
pub fn versions(python: &str) -> String {
    let o = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m\nfor p in ('kubernetes', 'kopf', 'kubernetes_asyncio', 'kr8s', 'lightkube', 'httpx'):\n    try: print(p, m.version(p))\n    except Exception: pass",
        ])
        .output()
        .expect("run python");
    stdout(&o).replace('\n', ", ")
}

/// Runs `tests/python/<script>` with the server's kubeconfig and `args`
/// under `python`, and checks every `expected` line is in its output.
pub fn scenario(python: &str, server: &Server, script: &str, args: &[&OsStr], expected: &[&str]) {
    let o = Command::new(python)
        .arg(super::root().join("tests/python").join(script))
        .arg(&server.kubeconfig)
        .args(args)
        .output()
        .expect("run python");
    let out = stdout(&o);
    assert!(
        o.status.success(),
        "{script} under {python} ({}) failed:\nstdout:\n{out}\nstderr:\n{}\nserver log:\n{}",
        versions(python),
        stderr(&o),
        server.log()
    );
    for check in expected {
        assert!(
            out.contains(check),
            "{script} under {python} ({}): missing {check:?} in:\n{out}",
            versions(python)
        );
    }
}
