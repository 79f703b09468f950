//! The network-namespace harness of the networking tests: "hosts" are
//! network namespaces, each joined by a veth pair to a bridge in the root
//! namespace (one L2 segment, `10.250.N.0/24`; the bridge holds `.1`, where
//! the control plane listens). Node daemons run inside a host's namespace
//! through `nsenter --net` (which keeps the mount namespace, so the pod
//! namespaces they create are visible to containerd). Everything is
//! removed when the [`Lab`] drops, even when the test fails: the hosts,
//! the bridge, the pod namespaces and runc cgroups the nodes leave, and the
//! `/run/netns` mount once no namespace is left under it.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Fails the test (it does not skip) when not run as root.
pub fn require_root(what: &str) {
    // SAFETY: geteuid has no preconditions and cannot fail
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "{what} needs root (network namespaces, iptables, containerd); run the tests as root, as CI does"
    );
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
        Err(e) => (false, format!("{cmd}: {e}")),
    }
}

fn must(cmd: &str, args: &[&str]) {
    let (ok, out) = run(cmd, args);
    assert!(ok, "{cmd} {}: {out}", args.join(" "));
}

/// One host: a network namespace with `eth0` on the lab's segment.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name (`/run/netns/NAME`).
    pub netns: String,
    /// Its address on the segment.
    pub ip: Ipv4Addr,
    /// The root-namespace end of its veth pair.
    veth: String,
}

impl Host {
    /// `/run/netns/NAME`.
    pub fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }

    /// A command that runs `program` inside the host's network namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.netns_path().display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `program args` in the host's namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .expect("nsenter (util-linux)")
    }

    /// Gives the host a default route as a real node has (cluster IPs are
    /// routed by it before the proxy's DNAT, as with kube-proxy), but into
    /// a veth pair of its own whose other end is down: what is not DNATed
    /// goes nowhere, nothing leaves the host. It goes with the namespace.
    pub fn default_route_to_nowhere(&self) {
        let ns = self.netns.as_str();
        must(
            "ip",
            &[
                "-n",
                ns,
                "link",
                "add",
                "krnowhere",
                "type",
                "veth",
                "peer",
                "name",
                "krnowhere1",
            ],
        );
        must("ip", &["-n", ns, "link", "set", "krnowhere", "up"]);
        must(
            "ip",
            &["-n", ns, "route", "add", "default", "dev", "krnowhere"],
        );
    }

    /// `iptables-save` of the host, only the lines about korral's chains.
    pub fn korral_rules(&self) -> String {
        let mut out = String::new();
        for table in ["nat", "filter"] {
            let o = self.exec("iptables-save", &["-t", table]);
            assert!(o.status.success(), "iptables-save: {o:?}");
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                if l.contains("KORRAL-") && !l.starts_with('#') {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// A set of hosts on one segment, torn down on drop.
pub struct Lab {
    /// N of `10.250.N.0/24`.
    pub net: u8,
    /// The bridge in the root namespace.
    pub bridge: String,
    /// The hosts.
    pub hosts: Vec<Host>,
    lock: PathBuf,
    nodes: Vec<(String, PathBuf)>,
    /// Node data and containerd state live here: it outlives everything else the test drops.
    pub dir: tempfile::TempDir,
}

fn pid_alive(pid: &str) -> bool {
    !pid.trim().is_empty() && Path::new("/proc").join(pid.trim()).exists()
}

/// Takes a free `10.250.N.0/24` for this process (a lock file per N).
fn reserve() -> (u8, PathBuf) {
    let dir = Path::new("/run/korral-netlab");
    std::fs::create_dir_all(dir).expect("/run/korral-netlab");
    for n in 1..=250u8 {
        let lock = dir.join(n.to_string());
        if let Ok(owner) = std::fs::read_to_string(&lock)
            && !pid_alive(&owner)
        {
            let _ = std::fs::remove_file(&lock);
        }
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock);
        if let Ok(mut f) = created {
            use std::io::Write;
            let _ = write!(f, "{}", std::process::id());
            return (n, lock);
        }
    }
    panic!("no free 10.250.N.0/24 test network (see /run/korral-netlab)");
}

impl Lab {
    /// Creates `hosts` hosts.
    pub fn new(hosts: usize) -> Lab {
        require_root("the network-namespace harness");
        for tool in ["ip", "nsenter", "iptables-save"] {
            assert!(
                Command::new(tool).arg("--version").output().is_ok(),
                "{tool} is not installed (.ci/run installs iproute2, util-linux and iptables)"
            );
        }
        let (net, lock) = reserve();
        let mut lab = Lab {
            net,
            bridge: format!("krlab{net}"),
            hosts: Vec::new(),
            lock,
            nodes: Vec::new(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        // leftovers of a killed run with the same N
        lab.remove_links(hosts.max(4));
        must("ip", &["link", "add", &lab.bridge, "type", "bridge"]);
        must(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", lab.gateway()),
                "dev",
                &lab.bridge,
            ],
        );
        must("ip", &["link", "set", &lab.bridge, "up"]);
        for i in 0..hosts {
            let netns = format!("krlab{net}-h{i}");
            let veth = format!("krl{net}h{i}");
            let peer = format!("{veth}p");
            let ip = Ipv4Addr::new(10, 250, net, u8::try_from(i + 2).expect("few hosts"));
            must("ip", &["netns", "add", &netns]);
            must(
                "ip",
                &["link", "add", &veth, "type", "veth", "peer", "name", &peer],
            );
            must("ip", &["link", "set", &peer, "netns", &netns]);
            must("ip", &["link", "set", &veth, "master", &lab.bridge, "up"]);
            must("ip", &["-n", &netns, "link", "set", &peer, "name", "eth0"]);
            must(
                "ip",
                &[
                    "-n",
                    &netns,
                    "addr",
                    "add",
                    &format!("{ip}/24"),
                    "dev",
                    "eth0",
                ],
            );
            must("ip", &["-n", &netns, "link", "set", "eth0", "up"]);
            must("ip", &["-n", &netns, "link", "set", "lo", "up"]);
            // no default route: nothing a pod sends leaves the lab
            lab.hosts.push(Host { netns, ip, veth });
        }
        lab
    }

    /// The bridge's address (`10.250.N.1`): the control plane listens here.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 250, self.net, 1)
    }

    /// Registers a node's data directory (under [`Lab::dir`]) and name so
    /// its pod namespaces and cgroups are removed with the lab.
    pub fn track_node(&mut self, name: &str, data_dir: &Path) {
        self.nodes.push((name.to_string(), data_dir.to_path_buf()));
    }

    /// Cuts host `i` off: its namespace (with its veth, bridge and routes) is deleted.
    pub fn cut(&mut self, i: usize) {
        let h = &self.hosts[i];
        must("ip", &["netns", "del", &h.netns]);
        let _ = run("ip", &["link", "del", &h.veth]);
    }

    fn remove_links(&self, hosts: usize) {
        for i in 0..hosts {
            let _ = run("ip", &["netns", "del", &format!("krlab{}-h{i}", self.net)]);
            let _ = run("ip", &["link", "del", &format!("krl{}h{i}", self.net)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (node, data) in &self.nodes {
            // pod namespaces (leased IPs name their pods)
            if let Ok(rd) = std::fs::read_dir(data.join("ipam")) {
                for e in rd.flatten() {
                    if let Ok(uid) = std::fs::read_to_string(e.path()) {
                        let _ = run("ip", &["netns", "del", &format!("kr-{}", uid.trim())]);
                    }
                }
            }
            // runc leaves the cgroup parents
            if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
                for ctl in rd.flatten() {
                    let parent = ctl.path().join(format!("korral-{node}"));
                    if let Ok(children) = std::fs::read_dir(&parent) {
                        for c in children.flatten().filter(|c| c.path().is_dir()) {
                            let _ = std::fs::remove_dir(c.path());
                        }
                    }
                    let _ = std::fs::remove_dir(&parent);
                }
            }
        }
        self.remove_links(self.hosts.len());
        let _ = std::fs::remove_file(&self.lock);
        // `ip netns add` leaves /run/netns mounted; unmount it when no namespace is left (a busy mount stays)
        let empty = std::fs::read_dir("/run/netns").is_ok_and(|mut d| d.next().is_none());
        if empty {
            let _ = run("umount", &["/run/netns"]);
        }
    }
}

/// Starts `korral node` with the containerd runtime (and so the service
/// proxy) in `lab`'s host `i`, as node `name` of server `s`: data in `data`
/// (tracked for cleanup), serving on the host's address, 1 s heartbeats and
/// syncs, `extra` flags after those; waits until the Node is Ready.
pub fn start_containerd_node(
    lab: &mut Lab,
    s: &crate::support::Server,
    ctd: &crate::node_support::containerd::Containerd,
    i: usize,
    name: &str,
    data: &Path,
    extra: &[&str],
) -> NetNode {
    lab.track_node(name, data);
    let host = &lab.hosts[i];
    let ip = host.ip.to_string();
    let kc = s.kubeconfig_for(&format!("node:{name}"));
    let base = [
        "--kubeconfig",
        &kc.to_string_lossy(),
        "--name",
        name,
        "--runtime",
        "containerd",
        "--containerd-address",
        &ctd.sock.to_string_lossy(),
        "--containerd-namespace",
        &ctd.namespace,
        "--node-ip",
        &ip,
        "--listen",
        &format!("{ip}:0"),
        "--data-dir",
        &data.to_string_lossy(),
        "--heartbeat-interval",
        "1s",
        "--sync-period",
        "1s",
        // the test's image stays, however full the machine's disk is (image GC is tests/node_image_gc.rs's)
        "--image-gc-high-threshold",
        "100",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect::<Vec<String>>();
    let args: Vec<String> = base
        .into_iter()
        .chain(extra.iter().map(|a| a.to_string()))
        .collect();
    let log = s.dir.path().join(format!("node-{i}.log"));
    let node = NetNode::start(host, &log, &args);
    let ready = || {
        crate::node_support::jsonpath(
            s,
            "node",
            name,
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "True"
    };
    assert!(
        crate::support::poll_until(std::time::Duration::from_secs(30), ready),
        "node {name} not Ready; log:\n{}",
        crate::node_support::tail(&node.log_text(), 30)
    );
    node
}

/// A `korral node` running inside a host's namespace, killed on drop.
pub struct NetNode {
    child: Option<Child>,
    /// Its log file.
    pub log: PathBuf,
}

impl NetNode {
    /// Starts `korral node ARGS` in `host`'s namespace.
    pub fn start(host: &Host, log: &Path, args: &[String]) -> NetNode {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("node log");
        let child = host
            .command(crate::support::korral_bin())
            .arg("node")
            .args(args)
            .env("KORRAL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start korral node");
        NetNode {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// Kills the daemon (SIGKILL: nothing is cleaned up).
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

impl Drop for NetNode {
    fn drop(&mut self) {
        self.kill();
    }
}
