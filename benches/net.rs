//! Service networking benchmark (root; everything inside network namespaces
//! it creates and removes): the time of one full service-proxy sync with
//! 1,000 services × 10 endpoints (rule generation alone, the first sync, an
//! unchanged periodic check and hourly full resync, a sync after one endpoint changed, a sync that
//! deletes them all), and the latency a request through a service IP adds
//! over the pod IP directly — with the 1,000 services ahead of it in
//! `KORRAL-SERVICES` (iptables mode's linear match) and with it alone.
//! Run: `cargo bench --bench net`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use node::proxy::Syncer;
use node::proxy::model::{Cidr, Endpoint, Protocol, ServicePort};
use node::proxy::rules::{self, RuleConfig};

const SERVICES: usize = 1_000;
const ENDPOINTS: usize = 10;
const REQUESTS: usize = 2_000;

const HOST: &str = "krbench-host";
const SERVER: &str = "krbench-server";
const CLIENT: &str = "krbench-client";
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 2);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 3);
const MEASURED_IP: Ipv4Addr = Ipv4Addr::new(10, 111, 255, 250);

fn sh(cmd: &str, args: &[&str]) {
    let o = Command::new(cmd).args(args).output();
    match o {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("{cmd}: {e}"),
    }
}

/// A node (`HOST`, with a bridge) and two pods (`SERVER` running httpd,
/// `CLIENT`), removed on drop.
struct Topology {
    httpd: Option<Child>,
    dir: tempfile::TempDir,
}

impl Topology {
    fn new() -> Topology {
        let t = Topology {
            httpd: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        t.remove();
        sh("ip", &["netns", "add", HOST]);
        sh("ip", &["-n", HOST, "link", "add", "br0", "type", "bridge"]);
        sh(
            "ip",
            &["-n", HOST, "addr", "add", "10.244.0.1/24", "dev", "br0"],
        );
        sh("ip", &["-n", HOST, "link", "set", "br0", "up"]);
        sh("ip", &["-n", HOST, "link", "set", "lo", "up"]);
        for (ns, ip) in [(SERVER, SERVER_IP), (CLIENT, CLIENT_IP)] {
            sh("ip", &["netns", "add", ns]);
            sh(
                "ip",
                &[
                    "-n", HOST, "link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns",
                    ns,
                ],
            );
            sh(
                "ip",
                &["-n", HOST, "link", "set", ns, "master", "br0", "up"],
            );
            sh(
                "ip",
                &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
            );
            sh("ip", &["-n", ns, "link", "set", "eth0", "up"]);
            sh("ip", &["-n", ns, "link", "set", "lo", "up"]);
            sh(
                "ip",
                &["-n", ns, "route", "add", "default", "via", "10.244.0.1"],
            );
        }
        sh(
            "ip",
            &[
                "netns",
                "exec",
                HOST,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
            ],
        );
        std::fs::write(t.dir.path().join("index.html"), "ok\n").expect("page");
        t
    }

    fn start_httpd(&mut self) {
        let child = Command::new("ip")
            .args([
                "netns", "exec", SERVER, "busybox", "httpd", "-f", "-p", "8080", "-h",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("busybox httpd (busybox-static)");
        self.httpd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from((SERVER_IP, 8080));
        while in_netns(CLIENT, move || get(addr).is_err()) {
            assert!(Instant::now() < deadline, "httpd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn remove(&self) {
        for ns in [CLIENT, SERVER, HOST] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Some(mut c) = self.httpd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.remove();
        let empty = std::fs::read_dir("/run/netns").is_ok_and(|mut d| d.next().is_none());
        if empty {
            let _ = Command::new("umount").arg("/run/netns").output();
        }
    }
}

/// Runs `f` on a thread inside the named network namespace (threads it
/// starts, and processes it spawns, are there too).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        // SAFETY: a valid namespace fd; setns changes only this thread's namespace
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread")
}

/// One HTTP/1.0 GET on a new connection.
fn get(addr: SocketAddr) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    if buf.starts_with(b"HTTP/1.") && buf.windows(3).any(|w| w == b"ok\n") {
        Ok(())
    } else {
        Err(std::io::Error::other("bad answer"))
    }
}

/// Request latencies (µs, sorted) from the client pod to `a` and to `b`,
/// alternating, so both see the same machine load.
fn latencies(a: SocketAddr, b: SocketAddr) -> (Vec<f64>, Vec<f64>) {
    in_netns(CLIENT, move || {
        for _ in 0..100 {
            get(a).expect("warm-up request");
            get(b).expect("warm-up request");
        }
        let time = |addr| {
            let t = Instant::now();
            get(addr).expect("request");
            t.elapsed().as_secs_f64() * 1e6
        };
        let (mut va, mut vb): (Vec<f64>, Vec<f64>) =
            (0..REQUESTS).map(|_| (time(a), time(b))).unzip();
        va.sort_by(f64::total_cmp);
        vb.sort_by(f64::total_cmp);
        (va, vb)
    })
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn service(i: usize) -> ServicePort {
    let ip = |n: usize| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 16 + n as u32);
    ServicePort {
        namespace: "bench".into(),
        name: format!("svc-{i:04}"),
        port_name: "http".into(),
        protocol: Protocol::Tcp,
        cluster_ip: ip(i),
        port: 80,
        node_port: None,
        external_ips: vec![],
        affinity_seconds: None,
        endpoints: (0..ENDPOINTS)
            .map(|e| Endpoint {
                ip: Ipv4Addr::from(
                    u32::from(Ipv4Addr::new(10, 245, 0, 0)) + (i * ENDPOINTS + e) as u32,
                ),
                port: 8080,
            })
            .collect(),
    }
}

/// The service the requests go through: sorts after the others, so its
/// rule is the last cluster-IP match in `KORRAL-SERVICES`.
fn measured() -> ServicePort {
    ServicePort {
        namespace: "bench".into(),
        name: "zz-measured".into(),
        port_name: "http".into(),
        protocol: Protocol::Tcp,
        cluster_ip: MEASURED_IP,
        port: 80,
        node_port: None,
        external_ips: vec![],
        affinity_seconds: None,
        endpoints: vec![Endpoint {
            ip: SERVER_IP,
            port: 8080,
        }],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // SAFETY: geteuid has no preconditions
    if unsafe { libc::geteuid() } != 0 {
        println!("| service networking | skipped: needs root (network namespaces, iptables) |");
        return;
    }
    let mut topo = Topology::new();
    topo.start_httpd();
    let config = RuleConfig {
        cluster_cidr: Cidr::parse("10.244.0.0/16"),
        local_pod_cidr: Cidr::parse("10.244.0.0/24"),
        ..RuleConfig::default()
    };
    let mut all: Vec<ServicePort> = (0..SERVICES).map(service).collect();
    all.push(measured());

    // rule generation alone (median of 5)
    let mut gen_times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let r = rules::render(&all, &config);
            std::hint::black_box(&r);
            t.elapsed()
        })
        .collect();
    gen_times.sort();
    let ruleset = rules::render(&all, &config);
    let input_bytes = ruleset.restore_input(&Default::default()).len();

    // the syncs, inside the node's namespace
    let syncs = {
        let (all, config) = (all.clone(), config.clone());
        in_netns(HOST, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut syncer = Syncer::new(config);
                let first = syncer.sync(&all, true).await.expect("first sync");
                let resync = syncer.sync(&all, true).await.expect("resync");
                // the 30 s check: re-render (nothing to write) and re-check the jumps
                let t = Instant::now();
                let idle = syncer.sync(&all, false).await.expect("check");
                assert!(!idle.applied, "an unchanged check writes nothing");
                node::proxy::iptables::ensure_jumps().await.expect("jumps");
                let check = t.elapsed();
                let mut changed = all.clone();
                changed[SERVICES / 2].endpoints[3].ip = Ipv4Addr::new(10, 246, 0, 1);
                let one = syncer.sync(&changed, false).await.expect("one endpoint");
                (first, resync, one, check)
            })
        })
    };
    let saved = Command::new("ip")
        .args(["netns", "exec", HOST, "iptables-save", "-t", "nat"])
        .output()
        .expect("iptables-save");
    let saved = String::from_utf8_lossy(&saved.stdout).into_owned();
    let sep_chains = saved
        .lines()
        .filter(|l| l.starts_with(":KORRAL-SEP-"))
        .count();
    assert_eq!(
        sep_chains,
        SERVICES * ENDPOINTS + 1,
        "every endpoint has its chain in the node's namespace"
    );

    let service_addr = SocketAddr::from((MEASURED_IP, 80));
    let pod_addr = SocketAddr::from((SERVER_IP, 8080));
    let (direct_1001, through_1001) = latencies(pod_addr, service_addr);
    let deleted = in_netns(HOST, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut syncer = Syncer::new(config);
            syncer.sync(&[measured()], true).await.expect("delete sync")
        })
    });
    let (direct_1, through_1) = latencies(pod_addr, service_addr);

    println!();
    println!(
        "## Service proxy sync: {SERVICES} services × {ENDPOINTS} endpoints ({} rules, {} chains, {} KiB of iptables-restore input)",
        syncs.0.rules,
        syncs.0.chains,
        input_bytes / 1024
    );
    println!();
    println!("| step | time |");
    println!("|---|---|");
    println!(
        "| rule generation only (median of 5) | {} |",
        ms(gen_times[2])
    );
    println!(
        "| first full sync (iptables-save, one iptables-restore, jump rules) | {} |",
        ms(syncs.0.took)
    );
    println!(
        "| periodic check (every 30 s), nothing changed: render, compare, re-check jumps | {} |",
        ms(syncs.3)
    );
    println!(
        "| full resync (hourly), nothing changed | {} |",
        ms(syncs.1.took)
    );
    println!(
        "| sync after one endpoint changed (only the changed chains) | {} |",
        ms(syncs.2.took)
    );
    println!(
        "| sync deleting all {SERVICES} services ({} chains) | {} |",
        deleted.deleted,
        ms(deleted.took)
    );
    println!();
    println!(
        "## Request latency, client pod → server pod on one node ({REQUESTS} HTTP/1.0 requests, a new connection each)"
    );
    println!();
    println!(
        "| rules installed | pod IP p50 / p99 | service IP p50 / p99 | added by the service IP (p50) |"
    );
    println!("|---|---|---|---|");
    let row = |name: &str, direct: &[f64], service: &[f64]| {
        println!(
            "| {name} | {:.0} / {:.0} µs | {:.0} / {:.0} µs | {:+.0} µs |",
            pct(direct, 50.0),
            pct(direct, 99.0),
            pct(service, 50.0),
            pct(service, 99.0),
            pct(service, 50.0) - pct(direct, 50.0)
        );
    };
    row("the measured service alone", &direct_1, &through_1);
    row(
        &format!("{SERVICES} other services' rules ahead of it"),
        &direct_1001,
        &through_1001,
    );
    drop(topo);
}
