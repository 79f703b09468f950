//! Which container runtime `korral up`'s node uses: containerd when run as
//! root where containerd answers (with the pod network and the iptables
//! service proxy, as `korral node --runtime containerd` runs it), host
//! processes otherwise — and why, in a line for the user.

use std::path::Path;

/// `korral up --runtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UpRuntime {
    /// containerd when running as root and containerd answers on --containerd-address,
    /// else host processes.
    Auto,
    /// containerd + runc, with a pod network and the iptables service proxy (root).
    Containerd,
    /// host processes, each pod on its own 127.x address (no root needed).
    Process,
}

/// The programs the containerd runtime's pod network and service proxy run.
pub const NETWORK_TOOLS: &[&str] = &["ip", "iptables-restore", "iptables-save", "runc"];

/// What the machine offers, as far as the choice goes.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Running as root.
    pub root: bool,
    /// Whether containerd accepts connections on its socket (the error if not).
    pub containerd: Result<(), String>,
    /// Programs of [`NETWORK_TOOLS`] not found on `PATH`.
    pub missing_tools: Vec<&'static str>,
}

impl Machine {
    /// Looks at this machine: the user, containerd's `socket`, the tools.
    pub fn probe(socket: &Path) -> Machine {
        let containerd = std::os::unix::net::UnixStream::connect(socket)
            .map(drop)
            .map_err(|e| format!("nothing answers on {}: {e}", socket.display()));
        Machine {
            root: node::machine::is_root(),
            containerd,
            missing_tools: NETWORK_TOOLS
                .iter()
                .copied()
                .filter(|t| node::machine::on_path(t).is_none())
                .collect(),
        }
    }

    /// Why containerd cannot be used here, if it cannot.
    fn containerd_blocker(&self) -> Option<String> {
        if !self.root {
            return Some(
                "not running as root (containers, network namespaces and iptables need it)".into(),
            );
        }
        if let Err(e) = &self.containerd {
            return Some(format!("containerd is not running: {e}"));
        }
        if !self.missing_tools.is_empty() {
            return Some(format!(
                "{} not found on PATH (the pod network and service proxy run them)",
                self.missing_tools.join(", ")
            ));
        }
        None
    }
}

/// The runtime chosen and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// containerd (else host processes).
    pub containerd: bool,
    /// Why, for the user.
    pub why: String,
}

/// Chooses the runtime `asked` for on `machine`; asking for containerd where
/// it cannot run is an error that says why (never a silent fallback).
pub fn choose(asked: UpRuntime, machine: &Machine) -> Result<Choice, String> {
    let blocker = machine.containerd_blocker();
    match (asked, blocker) {
        (UpRuntime::Process, _) => Ok(Choice {
            containerd: false,
            why: "asked for with --runtime process".into(),
        }),
        (UpRuntime::Containerd, Some(b)) => Err(format!(
            "--runtime containerd: {b}; run as root where containerd runs, or use --runtime process"
        )),
        (UpRuntime::Containerd, None) => Ok(Choice {
            containerd: true,
            why: "asked for with --runtime containerd".into(),
        }),
        (UpRuntime::Auto, None) => Ok(Choice {
            containerd: true,
            why: "running as root and containerd answers; --runtime process runs pods as host processes instead".into(),
        }),
        (UpRuntime::Auto, Some(b)) => Ok(Choice {
            containerd: false,
            why: format!("{b}; --runtime containerd needs root and a running containerd"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(root: bool, containerd: bool, missing: &[&'static str]) -> Machine {
        Machine {
            root,
            containerd: if containerd {
                Ok(())
            } else {
                Err("nothing answers on /x.sock".into())
            },
            missing_tools: missing.to_vec(),
        }
    }

    #[test]
    fn auto_takes_containerd_only_as_root_with_containerd_and_tools() {
        assert!(choose(UpRuntime::Auto, &machine(true, true, &[])).is_ok_and(|c| c.containerd));
        let c = choose(UpRuntime::Auto, &machine(false, true, &[])).expect("choice");
        assert!(
            !c.containerd && c.why.contains("not running as root"),
            "{c:?}"
        );
        let c = choose(UpRuntime::Auto, &machine(true, false, &[])).expect("choice");
        assert!(!c.containerd && c.why.contains("/x.sock"), "{c:?}");
        let c =
            choose(UpRuntime::Auto, &machine(true, true, &["iptables-restore"])).expect("choice");
        assert!(
            !c.containerd && c.why.contains("iptables-restore not found"),
            "{c:?}"
        );
    }

    #[test]
    fn asking_for_containerd_where_it_cannot_run_is_an_error() {
        let e = choose(UpRuntime::Containerd, &machine(false, true, &[])).expect_err("not root");
        assert!(
            e.contains("not running as root") && e.contains("--runtime process"),
            "{e}"
        );
        assert!(
            choose(UpRuntime::Containerd, &machine(true, true, &[])).is_ok_and(|c| c.containerd)
        );
        // process is always possible
        assert!(choose(UpRuntime::Process, &machine(true, true, &[])).is_ok_and(|c| !c.containerd));
    }
}
