//! Cluster IPAM through the real API: Services created concurrently get
//! distinct cluster IPs from the service CIDR and distinct NodePorts from
//! 30000–32767; Nodes created concurrently get distinct /24 pod CIDRs;
//! a taken or out-of-range cluster IP is refused with the field named; a
//! deleted Service's address and port are free again.

use crate::support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use support::{Server, stderr};

fn service(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: NodePort\n  selector: {{app: {name}}}\n  ports: [{{port: 80{extra}}}]\n"
    )
}

fn create(s: &Server, yaml: &str) -> std::process::Output {
    s.kubectl_with(&["create", "-f", "-"], &[], Some(yaml))
}

fn in_cidr(ip: &str, base: [u8; 4], bits: u32) -> bool {
    let Ok(ip) = ip.parse::<Ipv4Addr>() else {
        return false;
    };
    let mask = u32::MAX << (32 - bits);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(base))
}

/// Runs `f(i)` for `0..n` on 8 threads at once.
fn concurrently(n: usize, f: impl Fn(usize) + Sync) {
    std::thread::scope(|scope| {
        for t in 0..8 {
            let f = &f;
            scope.spawn(move || {
                for i in (t..n).step_by(8) {
                    f(i);
                }
            });
        }
    });
}

#[test]
fn concurrent_creates_never_share_an_address_and_deletes_release_them() {
    let s = Server::start_with(&["--controllers", "none"]);
    const N: usize = 40;
    concurrently(N, |i| {
        let o = create(&s, &service(&format!("svc-{i}"), ""));
        assert!(o.status.success(), "svc-{i}: {}", stderr(&o));
    });
    let ips = s.ok(&[
        "get",
        "services",
        "-o",
        "jsonpath={range .items[?(@.spec.type==\"NodePort\")]}{.spec.clusterIP} {.spec.ports[0].nodePort}{\"\\n\"}{end}",
    ]);
    let rows: Vec<(String, u16)> = ips
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(ip, port)| (ip.to_string(), port.parse().unwrap_or(0)))
        .collect();
    assert_eq!(rows.len(), N, "{ips}");
    let distinct_ips: BTreeSet<&String> = rows.iter().map(|(ip, _)| ip).collect();
    let distinct_ports: BTreeSet<u16> = rows.iter().map(|(_, p)| *p).collect();
    assert_eq!(distinct_ips.len(), N, "cluster IPs are unique: {ips}");
    assert_eq!(distinct_ports.len(), N, "node ports are unique: {ips}");
    assert!(
        rows.iter().all(|(ip, _)| in_cidr(ip, [10, 96, 0, 0], 12)),
        "{ips}"
    );
    assert!(
        distinct_ports.iter().all(|p| (30000..=32767).contains(p)),
        "{ips}"
    );

    // a taken address, an address outside the range, a taken node port
    let (taken_ip, taken_port) = rows[0].clone();
    let o = create(
        &s,
        &service("dup-ip", "").replace(
            "  type: NodePort\n",
            &format!("  type: NodePort\n  clusterIP: {taken_ip}\n"),
        ),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("spec.clusterIP")
            && stderr(&o).contains("provided IP is already allocated"),
        "{}",
        stderr(&o)
    );
    let o = create(
        &s,
        &service("far-ip", "").replace(
            "  type: NodePort\n",
            "  type: NodePort\n  clusterIP: 192.168.7.7\n",
        ),
    );
    assert!(
        !o.status.success() && stderr(&o).contains("not in the valid range"),
        "{}",
        stderr(&o)
    );
    let o = create(
        &s,
        &service("dup-port", &format!(", nodePort: {taken_port}")),
    );
    assert!(
        !o.status.success() && stderr(&o).contains("nodePort"),
        "{}",
        stderr(&o)
    );

    // deleting svc-0 frees its address and port for an explicit request
    s.ok(&["delete", "service", "svc-0"]);
    let o = create(
        &s,
        &service("reuse", &format!(", nodePort: {taken_port}")).replace(
            "  type: NodePort\n",
            &format!("  type: NodePort\n  clusterIP: {taken_ip}\n"),
        ),
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // pod CIDRs for nodes created at once
    concurrently(12, |i| {
        let o = create(
            &s,
            &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: n{i}}}\n"),
        );
        assert!(o.status.success(), "n{i}: {}", stderr(&o));
    });
    let cidrs = s.ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"]);
    let cidrs: BTreeSet<&str> = cidrs.split_whitespace().collect();
    assert_eq!(cidrs.len(), 12, "{cidrs:?}");
    assert!(
        cidrs
            .iter()
            .all(|c| c.ends_with("/24") && in_cidr(c.trim_end_matches("/24"), [10, 244, 0, 0], 16)),
        "{cidrs:?}"
    );
}
