//! The service proxy's rules against a real kernel, inside a network
//! namespace the test creates: a `korral node` (simulated runtime, iptables
//! proxy) runs in the namespace; Services and hand-written Endpoints are
//! created, updated and deleted through the API, and after each step
//! `iptables-save` of the KORRAL chains must equal the expected text
//! exactly (stale chains gone, not-ready addresses without rules, REJECT
//! for a service without endpoints). `korral node --cleanup` then leaves
//! no KORRAL chain or jump behind.

use crate::net_support;
use crate::support;

use std::time::Duration;

use net_support::{Lab, NetNode};
use support::{Server, poll_until};

fn apply(s: &Server, yaml: &str) {
    let o = s.kubectl_with(&["apply", "-f", "-"], &[], Some(yaml));
    assert!(
        o.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The lines of `rules` without the chains of the `default/kubernetes`
/// Service (its endpoint is the API server's random port).
fn without_kubernetes(rules: &str) -> String {
    let svc = rules
        .lines()
        .find(|l| {
            l.contains("\"default/kubernetes:https cluster IP\"")
                && l.starts_with("-A KORRAL-SERVICES")
        })
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_string);
    let Some(svc) = svc else {
        return rules.to_string();
    };
    let mut chains = vec![svc.clone()];
    for l in rules.lines() {
        if l.starts_with(&format!("-A {svc} ")) && l.contains("-j KORRAL-SEP-") {
            chains.extend(l.rsplit(' ').next().map(str::to_string));
        }
    }
    rules
        .lines()
        .filter(|l| !chains.iter().any(|c| l.contains(c.as_str())))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Waits until the host's KORRAL rules (less `default/kubernetes`) equal `want`.
fn expect_rules(lab: &Lab, node: &NetNode, step: &str, want: &str) {
    let mut got = String::new();
    if poll_until(Duration::from_secs(30), || {
        got = without_kubernetes(&lab.hosts[0].korral_rules());
        got == want
    }) {
        return;
    }
    let diff: Vec<String> = want
        .lines()
        .filter(|l| !got.lines().any(|g| g == *l))
        .map(|l| format!("- {l}"))
        .chain(
            got.lines()
                .filter(|l| !want.lines().any(|w| w == *l))
                .map(|l| format!("+ {l}")),
        )
        .collect();
    panic!(
        "{step}: the rules are not as expected after 30 s.\nmissing (-) / unexpected (+):\n{}\nactual:\n{got}\nnode log tail:\n{}",
        diff.join("\n"),
        {
            let log = node.log_text();
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
    );
}

const JUMPS_NAT: &str = r#"-A PREROUTING -m comment --comment "korral service portals" -j KORRAL-SERVICES
-A OUTPUT -m comment --comment "korral service portals" -j KORRAL-SERVICES
-A POSTROUTING -m comment --comment "korral postrouting rules" -j KORRAL-POSTROUTING
"#;

const JUMPS_FILTER: &str = r#"-A INPUT -m comment --comment "korral firewall" -j KORRAL-FIREWALL
-A INPUT -m conntrack --ctstate NEW -m comment --comment "korral service portals" -j KORRAL-SERVICES
-A FORWARD -m comment --comment "korral forwarding rules" -j KORRAL-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "korral service portals" -j KORRAL-SERVICES
-A OUTPUT -m comment --comment "korral firewall" -j KORRAL-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "korral service portals" -j KORRAL-SERVICES
"#;

/// The martian guard of node ports on 127.0.0.1 (`--iptables-localhost-nodeports`, on by default).
const FIREWALL: &str = r#"-A KORRAL-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
"#;

const FILTER_BASE: &str = r#"-A KORRAL-FORWARD -m comment --comment "korral forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KORRAL-FORWARD -s 10.244.0.0/16 -m comment --comment "korral pod network" -j ACCEPT
-A KORRAL-FORWARD -d 10.244.0.0/16 -m comment --comment "korral pod network" -j ACCEPT
"#;

const EMPTY_REJECT: &str = r#"-A KORRAL-SERVICES -d 10.96.100.11/32 -p udp -m comment --comment "default/empty:dns has no endpoints" -m udp --dport 53 -j REJECT --reject-with icmp-port-unreachable
-A KORRAL-SERVICES -p udp -m comment --comment "default/empty:dns has no endpoints" -m addrtype --dst-type LOCAL -m udp --dport 30111 -j REJECT --reject-with icmp-port-unreachable
"#;

/// The marking and masquerading rules of a node whose pod CIDR is `cidr`.
fn postrouting(cidr: &str) -> String {
    format!(
        r#"-A KORRAL-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KORRAL-POSTROUTING -s {cidr} -d {cidr} -m comment --comment "same-node service traffic between pods" -m conntrack --ctstate DNAT -j MASQUERADE
-A KORRAL-POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -m comment --comment "pod traffic leaving the cluster network" -j MASQUERADE
-A KORRAL-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KORRAL-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KORRAL-POSTROUTING -m comment --comment "korral service traffic requiring SNAT" -j MASQUERADE --random-fully
"#
    )
}

const LAST: &str = r#"-A KORRAL-SERVICES -m comment --comment "korral service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KORRAL-NODEPORTS
"#;

fn expected(nat_decls: &[&str], nat_rules: &str, filter_rules: &str) -> String {
    let mut decls: Vec<&str> = vec![
        "KORRAL-MARK-MASQ",
        "KORRAL-NODEPORTS",
        "KORRAL-POSTROUTING",
        "KORRAL-SERVICES",
    ];
    decls.extend_from_slice(nat_decls);
    decls.sort_unstable();
    let mut out = String::new();
    for d in decls {
        out.push_str(&format!(":{d} - [0:0]\n"));
    }
    out.push_str(JUMPS_NAT);
    out.push_str(nat_rules);
    out.push_str(":KORRAL-FIREWALL - [0:0]\n:KORRAL-FORWARD - [0:0]\n:KORRAL-SERVICES - [0:0]\n");
    out.push_str(JUMPS_FILTER);
    out.push_str(FIREWALL);
    out.push_str(FILTER_BASE);
    out.push_str(filter_rules);
    out
}

const WEB_SVC: &str = "KORRAL-SVC-OSC5D42RU6KJHZT7";
const SEP_0_5: &str = "KORRAL-SEP-P4MJFQDOCW2QOIBN";
const SEP_1_5: &str = "KORRAL-SEP-LXP5UW4MWEFI75UY";
const SEP_2_5: &str = "KORRAL-SEP-EGDNV3CAPBCFKMLA";

#[test]
fn proxy_rules_follow_services_exactly_and_cleanup_removes_them() {
    let lab = Lab::new(1);
    let host = &lab.hosts[0];
    let s = Server::start_on(&format!("{}:0", lab.gateway()), &["--dns-listen", "none"]);
    let name = format!("rules-{}", std::process::id());
    let kc = s.kubeconfig_for(&format!("node:{name}"));
    let data = s.dir.path().join("node");
    let args: Vec<String> = [
        "--kubeconfig",
        &kc.to_string_lossy(),
        "--name",
        &name,
        "--runtime",
        "simulated",
        "--proxy-mode",
        "iptables",
        "--proxy-min-sync-period",
        "100ms",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data.to_string_lossy(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut node = NetNode::start(host, &s.dir.path().join("node.log"), &args);
    let mut cidr = String::new();
    support::wait_for("the node's pod CIDR", Duration::from_secs(20), || {
        let o = s.kubectl(&["get", "node", &name, "-o", "jsonpath={.spec.podCIDR}"]);
        cidr = support::stdout(&o).trim().to_string();
        !cidr.is_empty()
    });
    let postrouting = postrouting(&cidr);

    // create: a service with two ready endpoints and one not ready; one without endpoints
    apply(
        &s,
        r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.100.10
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets:
- addresses: [{ip: 10.244.0.5}, {ip: 10.244.1.5}]
  notReadyAddresses: [{ip: 10.244.0.6}]
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  type: NodePort
  clusterIP: 10.96.100.11
  ports: [{name: dns, port: 53, protocol: UDP, nodePort: 30111}]
"#,
    );
    let web_rules = format!(
        r#"-A KORRAL-NODEPORTS -p tcp -m comment --comment "default/web:http" -m tcp --dport 30110 -j KORRAL-MARK-MASQ
-A KORRAL-NODEPORTS -p tcp -m comment --comment "default/web:http" -m tcp --dport 30110 -j {WEB_SVC}
"#
    );
    let create = expected(
        &[WEB_SVC, SEP_0_5, SEP_1_5],
        &format!(
            r#"{postrouting}-A {SEP_0_5} -s 10.244.0.5/32 -j KORRAL-MARK-MASQ
-A {SEP_0_5} -p tcp -m tcp -j DNAT --to-destination 10.244.0.5:8080
-A KORRAL-SERVICES -d 10.96.100.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j {WEB_SVC}
{LAST}-A {WEB_SVC} ! -s 10.244.0.0/16 -d 10.96.100.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KORRAL-MARK-MASQ
-A {WEB_SVC} -m statistic --mode random --probability 0.50000000000 -j {SEP_0_5}
-A {WEB_SVC} -j {SEP_1_5}
-A {SEP_1_5} -s 10.244.1.5/32 -j KORRAL-MARK-MASQ
-A {SEP_1_5} -p tcp -m tcp -j DNAT --to-destination 10.244.1.5:8080
"#
        ),
        EMPTY_REJECT,
    );
    expect_rules(&lab, &node, "after create", &sort_nat(&create));

    // update: ClientIP affinity, a node port, one endpoint replaced (its chain goes)
    apply(
        &s,
        r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  clusterIP: 10.96.100.10
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30110}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets:
- addresses: [{ip: 10.244.0.5}, {ip: 10.244.2.5}]
  ports: [{name: http, port: 8080}]
"#,
    );
    let update = expected(
        &[WEB_SVC, SEP_0_5, SEP_2_5],
        &format!(
            r#"{web_rules}{postrouting}-A {SEP_0_5} -s 10.244.0.5/32 -j KORRAL-MARK-MASQ
-A {SEP_0_5} -p tcp -m recent --set --name {SEP_0_5} --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.0.5:8080
-A KORRAL-SERVICES -d 10.96.100.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j {WEB_SVC}
{LAST}-A {WEB_SVC} ! -s 10.244.0.0/16 -d 10.96.100.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KORRAL-MARK-MASQ
-A {WEB_SVC} -m recent --rcheck --seconds 60 --reap --name {SEP_0_5} --mask 255.255.255.255 --rsource -j {SEP_0_5}
-A {WEB_SVC} -m recent --rcheck --seconds 60 --reap --name {SEP_2_5} --mask 255.255.255.255 --rsource -j {SEP_2_5}
-A {WEB_SVC} -m statistic --mode random --probability 0.50000000000 -j {SEP_0_5}
-A {WEB_SVC} -j {SEP_2_5}
-A {SEP_2_5} -s 10.244.2.5/32 -j KORRAL-MARK-MASQ
-A {SEP_2_5} -p tcp -m recent --set --name {SEP_2_5} --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.2.5:8080
"#
        ),
        EMPTY_REJECT,
    );
    expect_rules(&lab, &node, "after update", &sort_nat(&update));

    // delete: the service's chains go; the one without endpoints keeps its REJECT
    s.ok(&["delete", "service", "web"]);
    s.ok(&["delete", "endpoints", "web", "--ignore-not-found"]);
    let delete = expected(&[], &format!("{postrouting}{LAST}"), EMPTY_REJECT);
    expect_rules(&lab, &node, "after delete", &sort_nat(&delete));

    // --cleanup (daemon stopped first, as with kube-proxy --cleanup) leaves nothing
    node.kill();
    let o = host.exec(support::korral_bin(), &["node", "--cleanup"]);
    assert!(
        o.status.success(),
        "korral node --cleanup: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        host.korral_rules(),
        "",
        "no KORRAL chain or jump after --cleanup"
    );
    // and a second cleanup is a no-op
    let again = host.exec(support::korral_bin(), &["node", "--cleanup"]);
    assert!(again.status.success());
    drop(s);
}

/// Orders the nat part as iptables-save does: declarations, built-in jumps,
/// then each chain's rules in chain-name order (rules keep their order).
fn sort_nat(text: &str) -> String {
    let (nat, filter) = text
        .split_once(":KORRAL-FIREWALL - [0:0]\n")
        .expect("nat then filter");
    let mut decls = Vec::new();
    let mut builtin = Vec::new();
    let mut chains: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for l in nat.lines() {
        if l.starts_with(':') {
            decls.push(l);
        } else if let Some(chain) = l.strip_prefix("-A ").and_then(|r| r.split(' ').next()) {
            if chain.starts_with("KORRAL-") {
                chains.entry(chain).or_default().push(l);
            } else {
                builtin.push(l);
            }
        }
    }
    let mut out = String::new();
    for l in decls.into_iter().chain(builtin) {
        out.push_str(l);
        out.push('\n');
    }
    for rules in chains.values() {
        for l in rules {
            out.push_str(l);
            out.push('\n');
        }
    }
    out.push_str(":KORRAL-FIREWALL - [0:0]\n");
    out.push_str(filter);
    out
}
