//! `korral node --simulate N` as a test fixture: N real node daemons (one
//! process, simulated runtime) that register, heartbeat and run the pods
//! the scheduler binds to them (Running and Ready after a short delay);
//! stopped when dropped.

use std::process::{Child, Command};
use std::time::Duration;

use super::{Server, korral_bin, wait_for};

/// Running simulated nodes.
pub struct SimulatedNodes {
    child: Child,
}

impl SimulatedNodes {
    /// Starts `n` nodes named `NAME-0..` and waits until all are Ready.
    pub fn start(s: &Server, name: &str, n: usize) -> SimulatedNodes {
        let log = std::fs::File::create(s.dir.path().join(format!("{name}.log"))).expect("log");
        let child = Command::new(korral_bin())
            .arg("node")
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .args([
                "--simulate",
                &n.to_string(),
                "--name",
                name,
                "--heartbeat-interval",
                "1s",
                "--simulated-start-delay",
                "200ms",
            ])
            .arg("--data-dir")
            .arg(s.dir.path().join(name))
            .env("KORRAL_LOG", "info")
            .stderr(log)
            .spawn()
            .expect("korral node --simulate");
        let nodes = SimulatedNodes { child };
        wait_for(&format!("{n} Ready nodes"), Duration::from_secs(60), || {
            s.ready_count("nodes") >= n
        });
        nodes
    }
}

impl Drop for SimulatedNodes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
