//! A private containerd for tests and benchmarks (own root, state and
//! sockets; CRI disabled), torn down with everything it ran — containers,
//! shims, mounts, pod network namespaces, the node's bridge, runc's cgroups.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::wait_for;

/// A private containerd, torn down (with everything it ran) on drop.
pub struct Containerd {
    dir: PathBuf,
    /// The gRPC socket.
    pub sock: PathBuf,
    /// The containerd namespace used.
    pub namespace: String,
    node: String,
    child: Option<Child>,
}

/// Runs a command: (succeeded, stdout+stderr).
pub fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    match Command::new(cmd).args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

impl Containerd {
    /// Starts containerd in `dir` for node `node`.
    pub fn start(dir: &Path, node: &str) -> Containerd {
        assert!(
            run("containerd", &["--version"]).0,
            "containerd is not installed (.ci/run installs containerd and runc)"
        );
        let sock = dir.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{s}\"\n[ttrpc]\n  address = \"{d}/containerd-ttrpc.sock\"\n[debug]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n",
            d = dir.display(),
            s = sock.display()
        );
        std::fs::write(dir.join("config.toml"), config).expect("containerd config");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("containerd log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            dir: dir.to_path_buf(),
            sock: sock.clone(),
            namespace: format!("korral-test-{}", std::process::id()),
            node: node.to_string(),
            child: Some(child),
        };
        wait_for("containerd's socket", Duration::from_secs(20), || {
            run("ctr", &["--address", &sock.to_string_lossy(), "version"]).0
        });
        c
    }

    /// Builds the busybox image from busybox-static with `korral image
    /// build-busybox` (tagged `tag`) and imports it with `korral image import`.
    pub fn import_busybox(&self, tag: &str) {
        self.import_busybox_with(tag, &[]);
    }

    /// [`Containerd::import_busybox`] with host files added to the image,
    /// each `SOURCE:DEST` (`korral image build-busybox --add`).
    pub fn import_busybox_with(&self, tag: &str, add: &[String]) {
        let tar = self.dir.join("busybox.tar");
        let o = Command::new(crate::support::korral_bin())
            .args(["image", "build-busybox"])
            .arg(&tar)
            .args(["--tag", tag])
            .args(add.iter().flat_map(|a| ["--add", a.as_str()]))
            .output()
            .expect("build-busybox");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = Command::new(crate::support::korral_bin())
            .args(["image", "import"])
            .arg(&tar)
            .arg("--containerd-address")
            .arg(&self.sock)
            .args(["--namespace", &self.namespace])
            .output()
            .expect("import");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Runs ctr against it.
    pub fn ctr(&self, args: &[&str]) -> (bool, String) {
        let mut all = vec![
            "--address",
            self.sock.to_str().unwrap_or(""),
            "--namespace",
            self.namespace.as_str(),
        ];
        all.extend_from_slice(args);
        run("ctr", &all)
    }

    /// The pid of a task.
    pub fn task_pid(&self, id: &str) -> i32 {
        let (_, out) = self.ctr(&["tasks", "ls"]);
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id)).then(|| f.get(1).and_then(|p| p.parse().ok()))?
            })
            .next()
            .unwrap_or(0)
    }

    /// How many containers it holds.
    pub fn container_count(&self) -> usize {
        self.ctr(&["containers", "ls", "-q"])
            .1
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // containers and their shims
        let (_, ids) = self.ctr(&["containers", "ls", "-q"]);
        for id in ids.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let _ = self.ctr(&["tasks", "kill", "-a", "-s", "SIGKILL", id]);
            let _ = self.ctr(&["tasks", "rm", "-f", id]);
            let _ = self.ctr(&["containers", "rm", id]);
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let sock = self.sock.to_string_lossy().into_owned();
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                if text.contains("containerd-shim")
                    && text.contains(&sock)
                    && let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>()
                {
                    let _ = run("kill", &["-9", &pid.to_string()]);
                }
            }
        }
        // mounts under our directory, deepest first
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.dir.to_string_lossy().into_owned();
        let mut ours: Vec<String> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = run("umount", &["-l", &m]);
        }
        // pod network namespaces (leased IPs name their pods), the node's bridge
        if let Ok(rd) = std::fs::read_dir(self.dir.join("node-data/ipam")) {
            for e in rd.flatten() {
                if let Ok(uid) = std::fs::read_to_string(e.path()) {
                    let _ = run(
                        "ip",
                        &[
                            "netns",
                            "del",
                            &node::runtime::containerd::network::netns_name(uid.trim()),
                        ],
                    );
                }
            }
        }
        let _ = run(
            "ip",
            &[
                "link",
                "del",
                &node::runtime::containerd::network::bridge_name(&self.node),
            ],
        );
        // runc leaves the cgroup parents
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for ctl in rd.flatten() {
                let parent = ctl.path().join(format!("korral-{}", self.node));
                if let Ok(children) = std::fs::read_dir(&parent) {
                    for c in children.flatten().filter(|c| c.path().is_dir()) {
                        let _ = std::fs::remove_dir(c.path());
                    }
                }
                let _ = std::fs::remove_dir(&parent);
            }
        }
    }
}
