//! Pure rule generation: service ports in, the proxy's chains and rules
//! out, written exactly as `iptables-save` prints them back (so a sync's
//! input and a later save compare equal). Layout, as kube-proxy's iptables
//! mode with `KORRAL-` names:
//!
//! - nat `KORRAL-SERVICES`: per cluster IP (and external IP) a jump to the
//!   port's `KORRAL-SVC-…` chain; last, `KORRAL-NODEPORTS` for local
//!   destinations.
//! - nat `KORRAL-SVC-…`: traffic from outside the pod network is marked for
//!   masquerade; then, with `sessionAffinity: ClientIP`, a `recent` check
//!   per endpoint; then one `statistic --mode random` rule per endpoint with
//!   probability 1/(n−i), the last unconditional.
//! - nat `KORRAL-SEP-…`: hairpin mark (the endpoint reaching itself), DNAT.
//! - nat `KORRAL-NODEPORTS`: mark for masquerade, jump to the service chain.
//! - nat `KORRAL-POSTROUTING`: masquerade same-node service traffic between
//!   local pods (no `br_netfilter` needed) and pod traffic leaving the
//!   cluster network (as the bridge CNI's `ipMasq`), then whatever carries
//!   the mark.
//! - filter `KORRAL-SERVICES`: REJECT for service ports without ready
//!   endpoints; filter `KORRAL-FORWARD`: accept marked and pod traffic.
//! - filter `KORRAL-FIREWALL` (from INPUT and OUTPUT): with localhost node
//!   ports (kube-proxy's `--iptables-localhost-nodeports`, which needs
//!   `route_localnet`), the martian guard that drops packets to 127.0.0.0/8
//!   from elsewhere unless they were DNATed to a node port (issue 90259);
//!   without them the node-port jump skips 127.0.0.0/8 instead. NodePort
//!   traffic is always marked for masquerade, so a connection from
//!   127.0.0.1 leaves with the bridge's address and its reply comes back.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::proxy::model::{Cidr, ServicePort};
use crate::proxy::names;

/// The mark on packets that need masquerading (kube-proxy's bit 14).
pub const MASQ_MARK: &str = "0x4000";

/// The nat chain of service portals (jumped to from PREROUTING and OUTPUT).
pub const SERVICES: &str = "KORRAL-SERVICES";
/// The nat chain of node ports.
pub const NODEPORTS: &str = "KORRAL-NODEPORTS";
/// The nat chain jumped to from POSTROUTING.
pub const POSTROUTING: &str = "KORRAL-POSTROUTING";
/// The nat chain that marks a packet for masquerade.
pub const MARK_MASQ: &str = "KORRAL-MARK-MASQ";
/// The filter chain jumped to from FORWARD.
pub const FORWARD: &str = "KORRAL-FORWARD";
/// The filter chain jumped to from INPUT and OUTPUT (kubelet's `KUBE-FIREWALL`):
/// the martian guard of localhost node ports.
pub const FIREWALL: &str = "KORRAL-FIREWALL";
/// The loopback network, whose node ports need `route_localnet`.
pub const LOOPBACK: &str = "127.0.0.0/8";
/// Every chain name the proxy owns starts with this.
pub const PREFIX: &str = "KORRAL-";

/// What the rules depend on besides the services.
#[derive(Clone, Debug, Default)]
pub struct RuleConfig {
    /// The whole cluster's pod network (traffic from outside it is masqueraded).
    pub cluster_cidr: Option<Cidr>,
    /// This node's pod CIDR (same-node service traffic is masqueraded).
    pub local_pod_cidr: Option<Cidr>,
    /// Serve node ports on 127.0.0.0/8 too (kube-proxy's
    /// `--iptables-localhost-nodeports`; needs `route_localnet=1`, adds the
    /// martian guard); otherwise the node-port jump excludes them.
    pub localhost_nodeports: bool,
}

/// The chains of one table, by name, each with its rules (`-A …` lines).
pub type Chains = BTreeMap<String, Vec<String>>;

/// A full rule set: the proxy's chains in the filter and nat tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// filter table chains.
    pub filter: Chains,
    /// nat table chains.
    pub nat: Chains,
}

/// Formats a probability as iptables-save prints it: stored as a fraction
/// of 2^31, printed with 11 decimals.
pub fn probability(p: f64) -> String {
    let stored = (p * 2_147_483_648.0).round();
    format!("{:.11}", stored / 2_147_483_648.0)
}

fn comment(text: &str) -> String {
    format!("-m comment --comment \"{text}\"")
}

fn add(chains: &mut Chains, chain: &str, rule: String) {
    let line = format!("-A {chain} {rule}");
    chains.entry(chain.to_string()).or_default().push(line);
}

fn declare(chains: &mut Chains, chain: &str) {
    chains.entry(chain.to_string()).or_default();
}

/// The rules for `ports`.
pub fn render(ports: &[ServicePort], config: &RuleConfig) -> Ruleset {
    let mut nat = Chains::new();
    let mut filter = Chains::new();
    for c in [SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ] {
        declare(&mut nat, c);
    }
    declare(&mut filter, SERVICES);
    declare(&mut filter, FORWARD);
    declare(&mut filter, FIREWALL);
    if config.localhost_nodeports {
        add(
            &mut filter,
            FIREWALL,
            format!(
                "! -s {LOOPBACK} -d {LOOPBACK} {} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
                comment("block incoming localnet connections")
            ),
        );
    }

    // marking and masquerading
    add(
        &mut nat,
        MARK_MASQ,
        format!("-j MARK --set-xmark {MASQ_MARK}/{MASQ_MARK}"),
    );
    if let Some(local) = config.local_pod_cidr {
        add(
            &mut nat,
            POSTROUTING,
            format!(
                "-s {local} -d {local} {} -m conntrack --ctstate DNAT -j MASQUERADE",
                comment("same-node service traffic between pods")
            ),
        );
    }
    if let Some(cluster) = config.cluster_cidr {
        add(
            &mut nat,
            POSTROUTING,
            format!(
                "-s {cluster} ! -d {cluster} {} -j MASQUERADE",
                comment("pod traffic leaving the cluster network")
            ),
        );
    }
    add(
        &mut nat,
        POSTROUTING,
        format!("-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"),
    );
    add(
        &mut nat,
        POSTROUTING,
        format!("-j MARK --set-xmark {MASQ_MARK}/0x0"),
    );
    add(
        &mut nat,
        POSTROUTING,
        format!(
            "{} -j MASQUERADE --random-fully",
            comment("korral service traffic requiring SNAT")
        ),
    );
    add(
        &mut filter,
        FORWARD,
        format!(
            "{} -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
            comment("korral forwarding rules")
        ),
    );
    if let Some(cluster) = config.cluster_cidr {
        for dir in ["-s", "-d"] {
            add(
                &mut filter,
                FORWARD,
                format!(
                    "{dir} {cluster} {} -j ACCEPT",
                    comment("korral pod network")
                ),
            );
        }
    }

    for sp in ports {
        service_port(&mut nat, &mut filter, sp, config);
    }
    // without route_localnet a DNATed packet from 127.0.0.1 cannot leave: skip loopback
    let not_loopback = if config.localhost_nodeports {
        String::new()
    } else {
        format!("! -d {LOOPBACK} ")
    };
    add(
        &mut nat,
        SERVICES,
        format!(
            "{not_loopback}{} -m addrtype --dst-type LOCAL -j {NODEPORTS}",
            comment("korral service nodeports; NOTE: this must be the last rule in this chain")
        ),
    );
    Ruleset { filter, nat }
}

fn service_port(nat: &mut Chains, filter: &mut Chains, sp: &ServicePort, config: &RuleConfig) {
    let name = sp.display_name();
    let proto = sp.protocol.iptables();
    let dport = |p: u16| format!("-m {proto} --dport {p}");
    let cip = sp.cluster_ip;
    if sp.endpoints.is_empty() {
        let why = comment(&format!("{name} has no endpoints"));
        let reject = "-j REJECT --reject-with icmp-port-unreachable";
        add(
            filter,
            SERVICES,
            format!("-d {cip}/32 -p {proto} {why} {} {reject}", dport(sp.port)),
        );
        for ip in &sp.external_ips {
            add(
                filter,
                SERVICES,
                format!("-d {ip}/32 -p {proto} {why} {} {reject}", dport(sp.port)),
            );
        }
        if let Some(np) = sp.node_port {
            add(
                filter,
                SERVICES,
                format!(
                    "-p {proto} {why} -m addrtype --dst-type LOCAL {} {reject}",
                    dport(np)
                ),
            );
        }
        return;
    }
    let svc = names::service_chain(sp);
    declare(nat, &svc);
    add(
        nat,
        SERVICES,
        format!(
            "-d {cip}/32 -p {proto} {} {} -j {svc}",
            comment(&format!("{name} cluster IP")),
            dport(sp.port)
        ),
    );
    for ip in &sp.external_ips {
        let c = comment(&format!("{name} external IP"));
        let m = format!("-d {ip}/32 -p {proto} {c} {}", dport(sp.port));
        add(nat, SERVICES, format!("{m} -j {MARK_MASQ}"));
        add(nat, SERVICES, format!("{m} -j {svc}"));
    }
    if let Some(np) = sp.node_port {
        let m = format!("-p {proto} {} {}", comment(&name), dport(np));
        add(nat, NODEPORTS, format!("{m} -j {MARK_MASQ}"));
        add(nat, NODEPORTS, format!("{m} -j {svc}"));
    }
    if let Some(cluster) = config.cluster_cidr {
        add(
            nat,
            &svc,
            format!(
                "! -s {cluster} -d {cip}/32 -p {proto} {} {} -j {MARK_MASQ}",
                comment(&format!("{name} cluster IP")),
                dport(sp.port)
            ),
        );
    }
    let seps: Vec<String> = sp
        .endpoints
        .iter()
        .map(|e| names::endpoint_chain(sp, e))
        .collect();
    if let Some(seconds) = sp.affinity_seconds {
        for sep in &seps {
            add(
                nat,
                &svc,
                format!(
                    "-m recent --rcheck --seconds {seconds} --reap --name {sep} --mask 255.255.255.255 --rsource -j {sep}"
                ),
            );
        }
    }
    let n = seps.len();
    for (i, sep) in seps.iter().enumerate() {
        if i + 1 < n {
            // usize → f64 is exact for any realistic endpoint count
            let p = 1.0 / (n - i) as f64;
            add(
                nat,
                &svc,
                format!(
                    "-m statistic --mode random --probability {} -j {sep}",
                    probability(p)
                ),
            );
        } else {
            add(nat, &svc, format!("-j {sep}"));
        }
    }
    for (sep, ep) in seps.iter().zip(&sp.endpoints) {
        declare(nat, sep);
        add(nat, sep, format!("-s {}/32 -j {MARK_MASQ}", ep.ip));
        let recent = match sp.affinity_seconds {
            Some(_) => format!("-m recent --set --name {sep} --mask 255.255.255.255 --rsource "),
            None => String::new(),
        };
        add(
            nat,
            sep,
            format!(
                "-p {proto} {recent}-m {proto} -j DNAT --to-destination {}:{}",
                ep.ip, ep.port
            ),
        );
    }
}

impl Ruleset {
    /// The chains of both tables (table, chain).
    pub fn chain_names(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.filter
            .keys()
            .map(|c| ("filter", c.as_str()))
            .chain(self.nat.keys().map(|c| ("nat", c.as_str())))
    }

    /// The input of one `iptables-restore --noflush`: every chain declared
    /// (which flushes it) and refilled, and the `stale` chains (by table)
    /// flushed and deleted.
    pub fn restore_input(&self, stale: &BTreeMap<&str, Vec<String>>) -> String {
        self.partial_restore_input(None, stale)
    }

    /// The chains (by table) whose rules differ from `last`'s, or are new.
    pub fn changed_since(&self, last: &Ruleset) -> BTreeMap<&'static str, Vec<String>> {
        let mut out = BTreeMap::new();
        for (table, now, before) in [
            ("filter", &self.filter, &last.filter),
            ("nat", &self.nat, &last.nat),
        ] {
            let changed: Vec<String> = now
                .iter()
                .filter(|(c, rules)| before.get(*c) != Some(*rules))
                .map(|(c, _)| c.clone())
                .collect();
            out.insert(table, changed);
        }
        out
    }

    /// Like [`Ruleset::restore_input`], but writing only the chains in
    /// `only` (all when `None`): chains not named stay as they are, which
    /// is what makes a sync after a small change cheap (kube-proxy's
    /// "minimize iptables-restore").
    pub fn partial_restore_input(
        &self,
        only: Option<&BTreeMap<&str, Vec<String>>>,
        stale: &BTreeMap<&str, Vec<String>>,
    ) -> String {
        let mut out = String::with_capacity(self.nat.values().map(Vec::len).sum::<usize>() * 96);
        for (table, chains) in [("filter", &self.filter), ("nat", &self.nat)] {
            let gone = stale.get(table).map(Vec::as_slice).unwrap_or_default();
            let written: Vec<(&String, &Vec<String>)> = match only.and_then(|o| o.get(table)) {
                Some(names) => names
                    .iter()
                    .filter_map(|n| chains.get_key_value(n))
                    .collect(),
                None if only.is_some() => Vec::new(),
                None => chains.iter().collect(),
            };
            let _ = writeln!(out, "*{table}");
            for c in written.iter().map(|(c, _)| *c).chain(gone) {
                let _ = writeln!(out, ":{c} - [0:0]");
            }
            for (_, rules) in &written {
                for r in *rules {
                    out.push_str(r);
                    out.push('\n');
                }
            }
            for c in gone {
                let _ = writeln!(out, "-X {c}");
            }
            out.push_str("COMMIT\n");
        }
        out
    }

    /// The proxy's chains of one table as `iptables-save` prints them:
    /// declarations, then each chain's rules, chains in name order.
    pub fn saved(&self, table: &str) -> String {
        let chains = if table == "nat" {
            &self.nat
        } else {
            &self.filter
        };
        let mut out = String::new();
        for c in chains.keys() {
            let _ = writeln!(out, ":{c} - [0:0]");
        }
        for rules in chains.values() {
            for r in rules {
                out.push_str(r);
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::model::{Endpoint, Protocol};
    use std::net::Ipv4Addr;

    fn port(name: &str, endpoints: &[(u8, u8)]) -> ServicePort {
        ServicePort {
            namespace: "default".into(),
            name: name.into(),
            port_name: "http".into(),
            protocol: Protocol::Tcp,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 20),
            port: 80,
            node_port: None,
            external_ips: vec![],
            affinity_seconds: None,
            endpoints: endpoints
                .iter()
                .map(|(n, h)| Endpoint {
                    ip: Ipv4Addr::new(10, 244, *n, *h),
                    port: 8080,
                })
                .collect(),
        }
    }

    fn config() -> RuleConfig {
        RuleConfig {
            cluster_cidr: Cidr::parse("10.244.0.0/16"),
            local_pod_cidr: Cidr::parse("10.244.0.0/24"),
            localhost_nodeports: true,
        }
    }

    #[test]
    fn probabilities_print_as_iptables_save_does() {
        assert_eq!(probability(0.5), "0.50000000000");
        assert_eq!(probability(1.0 / 3.0), "0.33333333349");
        assert_eq!(probability(0.1), "0.10000000009");
    }

    #[test]
    fn a_clusterip_service_with_two_endpoints() {
        let r = render(&[port("web", &[(0, 2), (1, 2)])], &config());
        let svc = names::service_chain(&port("web", &[]));
        let sep0 = names::endpoint_chain(
            &port("web", &[]),
            &Endpoint {
                ip: Ipv4Addr::new(10, 244, 0, 2),
                port: 8080,
            },
        );
        let sep1 = names::endpoint_chain(
            &port("web", &[]),
            &Endpoint {
                ip: Ipv4Addr::new(10, 244, 1, 2),
                port: 8080,
            },
        );
        let expected = format!(
            r#":KORRAL-MARK-MASQ - [0:0]
:KORRAL-NODEPORTS - [0:0]
:KORRAL-POSTROUTING - [0:0]
:{sep0} - [0:0]
:{sep1} - [0:0]
:KORRAL-SERVICES - [0:0]
:{svc} - [0:0]
-A KORRAL-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KORRAL-POSTROUTING -s 10.244.0.0/24 -d 10.244.0.0/24 -m comment --comment "same-node service traffic between pods" -m conntrack --ctstate DNAT -j MASQUERADE
-A KORRAL-POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -m comment --comment "pod traffic leaving the cluster network" -j MASQUERADE
-A KORRAL-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KORRAL-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KORRAL-POSTROUTING -m comment --comment "korral service traffic requiring SNAT" -j MASQUERADE --random-fully
-A {sep0} -s 10.244.0.2/32 -j KORRAL-MARK-MASQ
-A {sep0} -p tcp -m tcp -j DNAT --to-destination 10.244.0.2:8080
-A {sep1} -s 10.244.1.2/32 -j KORRAL-MARK-MASQ
-A {sep1} -p tcp -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KORRAL-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j {svc}
-A KORRAL-SERVICES -m comment --comment "korral service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KORRAL-NODEPORTS
-A {svc} ! -s 10.244.0.0/16 -d 10.96.0.20/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KORRAL-MARK-MASQ
-A {svc} -m statistic --mode random --probability 0.50000000000 -j {sep0}
-A {svc} -j {sep1}
"#
        );
        // chains sort by name; the SEP chains' hashes decide their order
        let mut want: Vec<&str> = expected.lines().collect();
        let mut got_text = r.saved("nat");
        let mut got: Vec<&str> = got_text.lines().collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want);
        // and the real order is iptables-save's: declarations, then rules by chain name
        got_text = r.saved("nat");
        let decls: Vec<&str> = got_text.lines().filter(|l| l.starts_with(':')).collect();
        let mut sorted = decls.clone();
        sorted.sort_unstable();
        assert_eq!(decls, sorted);
        assert_eq!(
            r.saved("filter"),
            ":KORRAL-FIREWALL - [0:0]\n:KORRAL-FORWARD - [0:0]\n:KORRAL-SERVICES - [0:0]\n\
             -A KORRAL-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n\
             -A KORRAL-FORWARD -m comment --comment \"korral forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT\n\
             -A KORRAL-FORWARD -s 10.244.0.0/16 -m comment --comment \"korral pod network\" -j ACCEPT\n\
             -A KORRAL-FORWARD -d 10.244.0.0/16 -m comment --comment \"korral pod network\" -j ACCEPT\n"
        );
    }

    /// Renders `ports` and compares with a golden file (the exact text
    /// `iptables-save` prints for these chains; `tests/net_proxy.rs` checks
    /// the same against a real kernel).
    fn golden(ports: &[ServicePort], config: &RuleConfig, golden: &str) {
        let r = render(ports, config);
        let actual = format!("*nat\n{}*filter\n{}", r.saved("nat"), r.saved("filter"));
        assert_eq!(actual, golden, "golden text changed; actual:\n{actual}");
    }

    #[test]
    fn golden_nodeport_affinity_and_no_endpoints() {
        let mut web = port("web", &[(0, 2)]);
        web.node_port = Some(30080);
        web.affinity_seconds = Some(600);
        web.external_ips = vec![Ipv4Addr::new(192, 0, 2, 1)];
        let mut empty = port("empty", &[]);
        empty.cluster_ip = Ipv4Addr::new(10, 96, 0, 21);
        empty.protocol = Protocol::Udp;
        empty.node_port = Some(30053);
        golden(
            &[empty, web],
            &RuleConfig::default(),
            include_str!("testdata/nodeport_affinity.txt"),
        );
    }

    #[test]
    fn golden_three_endpoints_with_pod_network() {
        let mut dns = port("dns", &[(0, 5), (1, 5), (2, 5)]);
        dns.protocol = Protocol::Udp;
        dns.port = 53;
        golden(
            &[dns, port("web", &[(1, 2)])],
            &config(),
            include_str!("testdata/three_endpoints.txt"),
        );
    }

    #[test]
    fn localhost_nodeports_add_the_martian_guard_or_skip_loopback() {
        let mut web = port("web", &[(0, 2)]);
        web.node_port = Some(30080);
        let on = render(std::slice::from_ref(&web), &config());
        let guard = &on.filter[FIREWALL];
        assert_eq!(guard.len(), 1, "{guard:?}");
        assert!(guard[0].contains("! -s 127.0.0.0/8 -d 127.0.0.0/8"));
        assert!(guard[0].contains("! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"));
        let last = on.nat[SERVICES].last().expect("the node-port jump");
        assert!(last.ends_with(&format!("-m addrtype --dst-type LOCAL -j {NODEPORTS}")));
        assert!(!last.contains("127.0.0.0/8"), "{last}");
        // node ports are marked for masquerade: a reply to 127.0.0.1 could not return
        assert!(on.nat[NODEPORTS][0].ends_with(&format!("--dport 30080 -j {MARK_MASQ}")));

        let off = render(
            &[web],
            &RuleConfig {
                localhost_nodeports: false,
                ..config()
            },
        );
        assert!(off.filter[FIREWALL].is_empty(), "the chain stays, empty");
        let last = off.nat[SERVICES].last().expect("the node-port jump");
        assert!(
            last.starts_with(&format!("-A {SERVICES} ! -d 127.0.0.0/8 ")),
            "{last}"
        );
    }

    #[test]
    fn probabilities_spread_evenly_and_the_last_endpoint_is_unconditional() {
        let r = render(&[port("web", &[(0, 2), (0, 3), (0, 4), (1, 2)])], &config());
        let svc = names::service_chain(&port("web", &[]));
        let rules: Vec<&String> = r.nat[&svc]
            .iter()
            .filter(|l| l.contains("-j KORRAL-SEP-"))
            .collect();
        assert_eq!(rules.len(), 4);
        assert!(rules[0].contains("--probability 0.25000000000"));
        assert!(rules[1].contains("--probability 0.33333333349"));
        assert!(rules[2].contains("--probability 0.50000000000"));
        assert!(!rules[3].contains("statistic"));
    }

    #[test]
    fn a_partial_restore_writes_only_changed_chains() {
        let before = render(
            &[port("web", &[(0, 2), (1, 2)]), port("db", &[(0, 9)])],
            &config(),
        );
        let after = render(
            &[port("web", &[(0, 2), (1, 3)]), port("db", &[(0, 9)])],
            &config(),
        );
        let changed = after.changed_since(&before);
        let svc = names::service_chain(&port("web", &[]));
        let new_sep = names::endpoint_chain(
            &port("web", &[]),
            &Endpoint {
                ip: Ipv4Addr::new(10, 244, 1, 3),
                port: 8080,
            },
        );
        let mut nat = changed["nat"].clone();
        nat.sort();
        let mut want = vec![svc.clone(), new_sep];
        want.sort();
        assert_eq!(
            nat, want,
            "the web service chain and its new endpoint chain"
        );
        assert!(changed["filter"].is_empty());
        let text = after.partial_restore_input(Some(&changed), &BTreeMap::new());
        assert!(text.contains(&format!(":{svc} - [0:0]")));
        assert!(
            !text.contains("KORRAL-SERVICES"),
            "unchanged chains are not touched"
        );
        assert_eq!(text.matches("COMMIT\n").count(), 2);
    }

    #[test]
    fn restore_input_declares_refills_and_deletes_stale_chains() {
        let r = render(&[], &RuleConfig::default());
        let mut stale = BTreeMap::new();
        stale.insert("nat", vec!["KORRAL-SVC-GONE".to_string()]);
        let text = r.restore_input(&stale);
        assert!(text.starts_with("*filter\n:KORRAL-FIREWALL - [0:0]\n:KORRAL-FORWARD - [0:0]\n"));
        assert!(text.contains(":KORRAL-SVC-GONE - [0:0]\n"));
        assert!(text.ends_with("-X KORRAL-SVC-GONE\nCOMMIT\n"));
        assert_eq!(text.matches("COMMIT\n").count(), 2);
    }
}
