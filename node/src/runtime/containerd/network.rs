//! Pod networking, CNI-bridge style, with iproute2: a per-node bridge
//! holding the pod CIDR's first address (the pods' gateway), and per pod a
//! named network namespace (`/run/netns/kr-<uid>`) with a veth pair whose
//! pod end is `eth0` with an address from the node's pod CIDR. Addresses
//! are leased as files under `DATA/ipam/` so a restarted daemon keeps them.
//! [`connect_in_netns`] dials localhost inside a pod's namespace (port-forward).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A node's pod network.
#[derive(Clone, Debug)]
pub struct Network {
    /// The bridge's name.
    pub bridge: String,
    /// The pod CIDR's base address.
    pub base: Ipv4Addr,
    /// Prefix length.
    pub bits: u8,
    ipam: PathBuf,
}

fn short_hash(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref()
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bridge name of a node (`kr-` + 8 hex digits; Linux allows 15 characters).
pub fn bridge_name(node: &str) -> String {
    format!("kr-{}", &short_hash(node)[..8])
}

/// The network namespace of a pod.
pub fn netns_name(uid: &str) -> String {
    format!("kr-{uid}")
}

/// The path of a pod's network namespace.
pub fn netns_path(uid: &str) -> PathBuf {
    Path::new("/run/netns").join(netns_name(uid))
}

/// Connects to `port` on localhost inside the network namespace at `netns`
/// (a pod's), as the kubelet's port-forward does: a thread of its own joins
/// the namespace (`setns`), makes and connects the socket there (127.0.0.1,
/// then ::1) and ends; the socket keeps its namespace and is handed to
/// tokio. Never a pooled thread: it would stay in the pod's namespace.
pub async fn connect_in_netns(
    netns: &Path,
    port: u16,
    timeout: Duration,
) -> std::io::Result<tokio::net::TcpStream> {
    let path = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns-connect".into())
        .spawn(move || {
            let _ = tx.send(connect_blocking(&path, port, timeout));
        })?;
    let stream = rx
        .await
        .map_err(|_| std::io::Error::other("the namespace thread ended without an answer"))??;
    stream.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(stream)
}

/// Joins `netns` (this thread only, which must end afterwards) and connects to localhost:`port`.
fn connect_blocking(
    netns: &Path,
    port: u16,
    timeout: Duration,
) -> std::io::Result<std::net::TcpStream> {
    let ns = std::fs::File::open(netns)?;
    // SAFETY: `ns` is an open namespace file; setns changes only the calling
    // thread's network namespace, and this thread ends after connecting
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    std::net::TcpStream::connect_timeout(&v4, timeout).or_else(|e| {
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        // the IPv4 error is the one to report when neither answers
        std::net::TcpStream::connect_timeout(&v6, timeout).map_err(|_| e)
    })
}

async fn ip(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("ip {}: {e} (install iproute2)", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

async fn link_exists(name: &str) -> bool {
    ip(&["link", "show", name]).await.is_ok()
}

impl Network {
    /// The network of `node` with pod CIDR `cidr` (`a.b.c.d/n`).
    pub fn new(node: &str, cidr: &str, data_dir: &Path) -> Result<Network, String> {
        let (base, bits) = cidr
            .split_once('/')
            .and_then(|(ip, b)| Some((ip.parse::<Ipv4Addr>().ok()?, b.parse::<u8>().ok()?)))
            .filter(|(_, b)| *b <= 30)
            .ok_or_else(|| format!("pod CIDR {cidr:?} is not an IPv4 CIDR"))?;
        Ok(Network {
            bridge: bridge_name(node),
            base,
            bits,
            ipam: data_dir.join("ipam"),
        })
    }

    fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    /// Creates the bridge if needed and enables forwarding.
    pub async fn ensure_bridge(&self) -> Result<(), String> {
        if !link_exists(&self.bridge).await {
            ip(&["link", "add", &self.bridge, "type", "bridge"]).await?;
            let gw = format!("{}/{}", self.gateway(), self.bits);
            ip(&["addr", "add", &gw, "dev", &self.bridge]).await?;
        }
        ip(&["link", "set", &self.bridge, "up"]).await?;
        // pods reaching other nodes and services need forwarding (as kube-proxy and CNI plugins set it)
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", b"1");
        Ok(())
    }

    fn lease_ip(&self, uid: &str) -> Result<Ipv4Addr, String> {
        std::fs::create_dir_all(&self.ipam).map_err(|e| format!("{}: {e}", self.ipam.display()))?;
        let size = 1u32 << (32 - u32::from(self.bits));
        for off in 2..size.saturating_sub(1) {
            let addr = Ipv4Addr::from(u32::from(self.base) + off);
            let f = self.ipam.join(addr.to_string());
            match std::fs::read_to_string(&f) {
                Ok(owner) if owner.trim() == uid => return Ok(addr),
                Ok(_) => continue,
                Err(_) => {}
            }
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&f);
            if let Ok(mut file) = created {
                use std::io::Write;
                file.write_all(uid.as_bytes())
                    .map_err(|e| format!("{}: {e}", f.display()))?;
                return Ok(addr);
            }
        }
        Err(format!("no free pod IP in {}/{}", self.base, self.bits))
    }

    fn release_ip(&self, uid: &str) {
        if let Ok(rd) = std::fs::read_dir(&self.ipam) {
            for e in rd.flatten() {
                if std::fs::read_to_string(e.path()).is_ok_and(|o| o.trim() == uid) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// The IP already leased to a pod, if any.
    pub fn leased(&self, uid: &str) -> Option<Ipv4Addr> {
        std::fs::read_dir(&self.ipam).ok()?.flatten().find_map(|e| {
            let owner = std::fs::read_to_string(e.path()).ok()?;
            (owner.trim() == uid).then(|| e.file_name().to_string_lossy().parse().ok())?
        })
    }

    /// Sets up (or finds) a pod's namespace and address.
    pub async fn setup(&self, uid: &str) -> Result<Ipv4Addr, String> {
        let ns = netns_name(uid);
        if netns_path(uid).exists()
            && let Some(ip) = self.leased(uid)
        {
            return Ok(ip);
        }
        self.ensure_bridge().await?;
        let addr = self.lease_ip(uid)?;
        let result = async {
            if !netns_path(uid).exists() {
                ip(&["netns", "add", &ns]).await?;
            }
            let h = short_hash(uid);
            let (host, peer) = (format!("vk{h}"), format!("vp{h}"));
            if link_exists(&host).await {
                ip(&["link", "del", &host]).await?;
            }
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer]).await?;
            ip(&["link", "set", &peer, "netns", &ns]).await?;
            ip(&["link", "set", &host, "master", &self.bridge]).await?;
            ip(&["link", "set", &host, "up"]).await?;
            ip(&["-n", &ns, "link", "set", &peer, "name", "eth0"]).await?;
            let cidr = format!("{addr}/{}", self.bits);
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"]).await?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"]).await?;
            ip(&["-n", &ns, "link", "set", "lo", "up"]).await?;
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &self.gateway().to_string(),
            ])
            .await?;
            Ok::<(), String>(())
        }
        .await;
        if let Err(e) = result {
            self.teardown(uid).await;
            return Err(e);
        }
        Ok(addr)
    }

    /// Removes a pod's namespace (its veth goes with it) and releases its address.
    pub async fn teardown(&self, uid: &str) {
        if netns_path(uid).exists() {
            let _ = ip(&["netns", "del", &netns_name(uid)]).await;
        }
        let host = format!("vk{}", short_hash(uid));
        if link_exists(&host).await {
            let _ = ip(&["link", "del", &host]).await;
        }
        self.release_ip(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_inside_a_namespace_from_a_thread_of_its_own() {
        // our own namespace, entered by path as a pod's would be
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let port = listener.local_addr().expect("addr").port();
        let ns = Path::new("/proc/self/ns/net");
        let got = connect_in_netns(ns, port, Duration::from_secs(5)).await;
        // SAFETY: geteuid has no preconditions
        if unsafe { libc::geteuid() } == 0 {
            let stream = got.expect("connected inside the namespace");
            let (_, from) = listener.accept().expect("accepted");
            assert_eq!(stream.local_addr().expect("local"), from);
        } else {
            let e = got.expect_err("setns needs CAP_SYS_ADMIN");
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        }
        let missing = connect_in_netns(
            Path::new("/run/netns/kr-none"),
            port,
            Duration::from_secs(1),
        );
        assert_eq!(
            missing.await.expect_err("no such namespace").kind(),
            std::io::ErrorKind::NotFound
        );
    }

    #[test]
    fn names_fit_linux_limits() {
        assert!(bridge_name("a-very-long-node-name-indeed").len() <= 15);
        assert_eq!(bridge_name("n1"), bridge_name("n1"));
        assert_ne!(bridge_name("n1"), bridge_name("n2"));
        assert_eq!(format!("vk{}", short_hash("uid")).len(), 12);
    }

    #[test]
    fn addresses_are_leased_once_per_pod() {
        let dir = tempfile::tempdir().expect("tmp");
        let n = Network::new("n", "10.244.3.0/24", dir.path()).expect("net");
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 244, 3, 1));
        let a = n.lease_ip("pod-a").expect("a");
        assert_eq!(a, Ipv4Addr::new(10, 244, 3, 2));
        assert_eq!(n.lease_ip("pod-a").expect("again"), a);
        let b = n.lease_ip("pod-b").expect("b");
        assert_eq!(b, Ipv4Addr::new(10, 244, 3, 3));
        n.release_ip("pod-a");
        assert_eq!(n.leased("pod-a"), None);
        assert_eq!(n.lease_ip("pod-c").expect("c"), a);
        assert!(Network::new("n", "bogus", dir.path()).is_err());
    }
}
