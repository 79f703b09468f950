//! Service networking end to end, inside network namespaces the test
//! creates: two hosts on one segment, a `korral node` (containerd runtime,
//! iptables proxy, routes to the other host's pods) in each, one server
//! with the scheduler, endpoints and node-health controllers and the
//! cluster DNS. A Deployment of two busybox httpd pods spread one per host
//! behind a NodePort Service, and a client pod on each host:
//!
//! - 200 requests from each client to the cluster IP all succeed and both
//!   pods answer some (one is always on the other host: no NAT between pods);
//! - a pod turned not ready (its readiness probe fails) gets no more traffic
//!   within a couple of seconds;
//! - the node port answers on both hosts' addresses;
//! - `wget http://web.default.svc.cluster.local` works from a pod (cluster DNS
//!   through the kube-dns Service, resolv.conf written by the node);
//! - one host's daemon and network are killed: the node goes NotReady, its
//!   pod is replaced on the other host, and the Service keeps answering.
//!
//! And from the node's own network namespace (not a pod's), as on a k3s
//! node: 127.0.0.1:nodePort, the pod IP and the cluster IP answer; the
//! martian guard drops another host's packets to the node's 127.0.0.1; the
//! real kubectl port-forwards to a server listening only on 127.0.0.1 in
//! the pod.

use crate::net_support;
use crate::node_support;
use crate::support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use net_support::{Lab, start_containerd_node};
use node_support::containerd::Containerd;
use node_support::{jsonpath, tail};
use support::{Server, poll_until, wait_for};

const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      # evicted 2 s after its node becomes unreachable (the API server's default is 300 s)
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: web}}}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: busybox:1.36
        command: ["sh", "-c", "touch /tmp/ready; exec httpd -f -p 8080 -h /www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {exec: {command: ["cat", "/tmp/ready"]}, periodSeconds: 1, failureThreshold: 1}
        volumeMounts: [{name: page, mountPath: /www}]
      volumes:
      - name: page
        downwardAPI: {items: [{path: index.html, fieldRef: {fieldPath: metadata.name}}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http, nodePort: 30080}]
"#;

fn client(i: usize, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: client-{i}}}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: client
    image: busybox:1.36
    command: ["sleep", "3600"]
"#
    )
}

fn apply(s: &Server, yaml: &str) {
    let o = s.kubectl_with(&["apply", "-f", "-"], &[], Some(yaml));
    assert!(
        o.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs `sh -c SCRIPT` in the pod's (first) container through containerd.
fn pod_sh(s: &Server, ctd: &Containerd, pod: &str, script: &str) -> (bool, String) {
    let id = jsonpath(s, "pod", pod, "{.status.containerStatuses[0].containerID}");
    let id = id.trim_start_matches("containerd://");
    assert!(!id.is_empty(), "pod {pod} has no container");
    let exec_id = format!("t{:x}", rand_u32());
    ctd.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        &exec_id,
        id,
        "sh",
        "-c",
        script,
    ])
}

fn rand_u32() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    std::process::id().wrapping_mul(7919) ^ N.fetch_add(1, Ordering::Relaxed)
}

/// `n` requests from `pod` to `url`: answers by responding pod, and failures.
fn requests(
    s: &Server,
    ctd: &Containerd,
    pod: &str,
    url: &str,
    n: usize,
) -> (BTreeMap<String, usize>, Vec<String>) {
    let script = format!(
        "i=0; while [ $i -lt {n} ]; do if out=$(wget -q -O- {url} 2>&1); then echo \"OK $out\"; else echo \"FAIL $out\"; fi; i=$((i+1)); done"
    );
    let (ok, out) = pod_sh(s, ctd, pod, &script);
    assert!(ok, "requests from {pod}: {out}");
    let mut by_pod = BTreeMap::new();
    let mut failures = Vec::new();
    for line in out.lines() {
        match line.strip_prefix("OK ") {
            Some(name) => *by_pod.entry(name.trim().to_string()).or_insert(0) += 1,
            None => failures.push(line.to_string()),
        }
    }
    assert_eq!(
        by_pod.values().sum::<usize>() + failures.len(),
        n,
        "one line per request: {out}"
    );
    (by_pod, failures)
}

/// The web pods that are not being deleted: name → node.
fn web_pods(s: &Server) -> BTreeMap<String, String> {
    let out = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[?(@.metadata.deletionTimestamp)]}{.metadata.name}{\"\\n\"}{end}",
    ]);
    let deleting: Vec<&str> = out.lines().collect();
    let all = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    all.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[2] == "True" && !deleting.contains(&f[0]))
                .then(|| (f[0].to_string(), f[1].to_string()))
        })
        .collect()
}

fn ready_endpoints(s: &Server) -> usize {
    let o = s.kubectl(&[
        "get",
        "endpoints",
        "web",
        "-o",
        "jsonpath={.subsets[*].addresses[*].ip}",
    ]);
    support::stdout(&o).split_whitespace().count()
}

fn node_ready(s: &Server, node: &str) -> String {
    jsonpath(
        s,
        "node",
        node,
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    )
}

#[test]
fn services_across_two_hosts() {
    let mut lab = Lab::new(2);
    let gw = lab.gateway();
    let s = Server::start_on(
        &format!("{gw}:0"),
        &[
            "--node-monitor-grace-period",
            "4s",
            "--node-monitor-period",
            "1s",
        ],
    );
    let ctd_dir = lab.dir.path().join("ctd");
    std::fs::create_dir_all(&ctd_dir).expect("dir");
    let names: Vec<String> = (0..2)
        .map(|i| format!("net{}-{i}", std::process::id()))
        .collect();
    let ctd = Containerd::start(&ctd_dir, &names[0]);
    ctd.import_busybox("busybox:1.36");

    let mut nodes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let data = ctd_dir.join(format!("node-{i}"));
        nodes.push(start_containerd_node(
            &mut lab,
            &s,
            &ctd,
            i,
            name,
            &data,
            &[
                "--status-interval",
                "1s",
                "--proxy-min-sync-period",
                "100ms",
                "--proxy-sync-period",
                "10s",
            ],
        ));
    }

    apply(&s, WEB);
    for (i, name) in names.iter().enumerate() {
        apply(&s, &client(i, name));
    }
    let all_ready = || {
        let clients_ready = (0..2).all(|i| {
            jsonpath(
                &s,
                "pod",
                &format!("client-{i}"),
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            ) == "True"
        });
        web_pods(&s).len() == 2 && clients_ready && ready_endpoints(&s) == 2
    };
    assert!(
        poll_until(Duration::from_secs(90), all_ready),
        "pods not ready: {}\nnode logs:\n{}\n---\n{}",
        s.ok(&["get", "pods", "-o", "wide"]),
        tail(&nodes[0].log_text(), 20),
        tail(&nodes[1].log_text(), 20)
    );
    let web = web_pods(&s);
    let hosts_used: std::collections::BTreeSet<&String> = web.values().collect();
    assert_eq!(hosts_used.len(), 2, "one web pod per host: {web:?}");
    let cluster_ip = jsonpath(&s, "service", "web", "{.spec.clusterIP}");
    let url = format!("http://{cluster_ip}/");

    // 200 requests from a client on each host: all succeed, both pods answer
    for i in 0..2 {
        let client = format!("client-{i}");
        // the proxy syncs right after the endpoints change; wait for the first answer
        wait_for("the service to answer", Duration::from_secs(20), || {
            requests(&s, &ctd, &client, &url, 1).1.is_empty()
        });
        let (by_pod, failures) = requests(&s, &ctd, &client, &url, 200);
        assert!(
            failures.is_empty(),
            "{client}: failed requests: {failures:?}"
        );
        assert_eq!(
            by_pod.keys().collect::<Vec<_>>(),
            web.keys().collect::<Vec<_>>(),
            "{client}: both pods get a share: {by_pod:?}"
        );
        assert!(
            by_pod.values().all(|n| *n >= 20),
            "{client}: shares {by_pod:?}"
        );
    }

    // one pod turns not ready: within a couple of seconds all traffic goes to the other
    let (gone, stays) = {
        let mut it = web.keys();
        (
            it.next().expect("pod").clone(),
            it.next().expect("pod").clone(),
        )
    };
    let marked = Instant::now();
    let (ok, out) = pod_sh(&s, &ctd, &gone, "rm /tmp/ready");
    assert!(ok, "rm /tmp/ready: {out}");
    let mut moved = None;
    while marked.elapsed() < Duration::from_secs(10) {
        let (by_pod, failures) = requests(&s, &ctd, "client-0", &url, 10);
        if failures.is_empty() && by_pod.keys().all(|p| *p == stays) {
            moved = Some(marked.elapsed());
            break;
        }
    }
    let moved = moved.expect("traffic moved to the ready pod within 10 s");
    assert!(
        moved < Duration::from_secs(4),
        "traffic moved only after {moved:?}"
    );
    let (by_pod, failures) = requests(&s, &ctd, "client-1", &url, 50);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        by_pod.keys().collect::<Vec<_>>(),
        vec![&stays],
        "{by_pod:?}"
    );
    eprintln!("traffic left the not-ready pod after {moved:?}");
    let (ok, out) = pod_sh(&s, &ctd, &gone, "touch /tmp/ready");
    assert!(ok, "touch /tmp/ready: {out}");
    wait_for(
        "both endpoints ready again",
        Duration::from_secs(20),
        || ready_endpoints(&s) == 2,
    );

    // the node port answers on both hosts' addresses (from outside the hosts)
    for h in &lab.hosts {
        let node_url = format!("http://{}:30080/", h.ip);
        let mut answered = std::collections::BTreeSet::new();
        wait_for(
            &format!("the node port on {}", h.ip),
            Duration::from_secs(20),
            || {
                let body = node_support::http_get(&node_url);
                if web.contains_key(body.trim()) {
                    answered.insert(body.trim().to_string());
                }
                answered.len() == 2
            },
        );
    }

    // cluster DNS: the service's name, fully qualified and through the search path
    for name in ["web.default.svc.cluster.local", "web"] {
        let (by_pod, failures) = requests(&s, &ctd, "client-1", &format!("http://{name}/"), 5);
        assert!(failures.is_empty(), "wget http://{name}/: {failures:?}");
        assert!(by_pod.keys().all(|p| web.contains_key(p)), "{by_pod:?}");
    }
    let (ok, resolv) = pod_sh(&s, &ctd, "client-0", "cat /etc/resolv.conf");
    assert!(ok, "{resolv}");
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local")
            && resolv.contains("options ndots:5"),
        "{resolv}"
    );

    // host 1 dies (daemon and network): NotReady, its pod replaced on host 0, the service answers
    let dead = &names[1];
    nodes[1].kill();
    lab.cut(1);
    wait_for(
        "the dead node to turn NotReady",
        Duration::from_secs(30),
        || node_ready(&s, dead) != "True",
    );
    let replaced = || {
        let now = web_pods(&s);
        now.len() == 2 && now.values().all(|n| *n == names[0]) && ready_endpoints(&s) == 2
    };
    assert!(
        poll_until(Duration::from_secs(60), replaced),
        "no replacement on {}: {:?}\n{}",
        names[0],
        web_pods(&s),
        s.ok(&["get", "pods", "-o", "wide"])
    );
    let survivors = web_pods(&s);
    wait_for(
        "the service to answer from the survivors only",
        Duration::from_secs(20),
        || {
            let (by_pod, failures) = requests(&s, &ctd, "client-0", &url, 10);
            failures.is_empty() && by_pod.keys().all(|p| survivors.contains_key(p))
        },
    );
    let (by_pod, failures) = requests(&s, &ctd, "client-0", &url, 100);
    assert!(failures.is_empty(), "after the host died: {failures:?}");
    assert_eq!(
        by_pod.keys().collect::<Vec<_>>(),
        survivors.keys().collect::<Vec<_>>(),
        "both survivors answer: {by_pod:?}"
    );
    drop(nodes);
    drop(ctd);
    drop(lab);
}

/// A pod with a server on 8080 (all addresses) and one on 127.0.0.1:8081
/// only, behind a NodePort Service.
const REACH: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox:1.36
    command: ["sh", "-c", "mkdir -p /tmp/www /tmp/lo && echo web > /tmp/www/index.html && echo loopback-only > /tmp/lo/index.html && httpd -p 127.0.0.1:8081 -h /tmp/lo && exec httpd -f -p 8080 -h /tmp/www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http, nodePort: 30090}]
"#;

/// The sysctl the proxy sets for node ports on 127.0.0.1 (read in the reader's namespace).
const ROUTE_LOCALNET: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

/// A process killed (and reaped) on drop, even when the test fails.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// curl from inside `host`'s namespace (2 s at most): the body, or "" on failure.
fn curl_in(host: &net_support::Host, url: &str) -> String {
    let o = host.exec("curl", &["-s", "--max-time", "2", url]);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Packets the martian guard of `host` has dropped so far.
fn guard_drops(host: &net_support::Host) -> u64 {
    let o = host.exec(
        "iptables",
        &[
            "-w",
            "-t",
            "filter",
            "-L",
            "KORRAL-FIREWALL",
            "-v",
            "-x",
            "-n",
        ],
    );
    assert!(o.status.success(), "iptables -L KORRAL-FIREWALL: {o:?}");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.lines()
        .find(|l| l.contains("DROP") && l.contains("127.0.0.0/8"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no martian guard in KORRAL-FIREWALL:\n{text}"))
}

#[test]
fn the_node_reaches_its_apps_on_localhost_cluster_ips_and_through_port_forward() {
    let mut lab = Lab::new(2);
    let gw = lab.gateway();
    let s = Server::start_on(&format!("{gw}:0"), &[]);
    let ctd_dir = lab.dir.path().join("ctd");
    std::fs::create_dir_all(&ctd_dir).expect("dir");
    let name = format!("reach{}", std::process::id());
    let ctd = Containerd::start(&ctd_dir, &name);
    ctd.import_busybox("busybox:1.36");
    let root_localnet = std::fs::read_to_string(ROUTE_LOCALNET).expect("route_localnet");
    let data = ctd_dir.join("node");
    let node = start_containerd_node(
        &mut lab,
        &s,
        &ctd,
        0,
        &name,
        &data,
        &["--proxy-min-sync-period", "100ms"],
    );
    apply(&s, REACH);
    let ready = || {
        jsonpath(
            &s,
            "pod",
            "web",
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "True"
            && ready_endpoints(&s) == 1
    };
    assert!(
        poll_until(Duration::from_secs(60), ready),
        "pod not ready: {}\nnode log:\n{}",
        s.ok(&["get", "pods", "-o", "wide"]),
        tail(&node.log_text(), 20)
    );
    let host = lab.hosts[0].clone();

    // route_localnet is set in the node's namespace, and only there
    let o = host.exec("cat", &[ROUTE_LOCALNET]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1", "{o:?}");
    assert_eq!(
        std::fs::read_to_string(ROUTE_LOCALNET).expect("route_localnet"),
        root_localnet,
        "the root namespace's route_localnet is left alone"
    );

    // 127.0.0.1:nodePort from the node's own namespace (masqueraded: the reply comes back)
    wait_for(
        "127.0.0.1:30090 to answer in the node's namespace",
        Duration::from_secs(20),
        || curl_in(&host, "http://127.0.0.1:30090/") == "web\n",
    );
    // the pod IP, through the bridge; its loopback-only server is not reachable so
    let pod_ip = jsonpath(&s, "pod", "web", "{.status.podIP}");
    assert_eq!(curl_in(&host, &format!("http://{pod_ip}:8080/")), "web\n");
    assert_eq!(curl_in(&host, &format!("http://{pod_ip}:8081/")), "");

    // the cluster IP: routed (as on any node, by the default route) before the proxy's DNAT
    host.default_route_to_nowhere();
    let cluster_ip = jsonpath(&s, "service", "web", "{.spec.clusterIP}");
    assert!(!cluster_ip.is_empty(), "the Service has a cluster IP");
    wait_for(
        "the cluster IP to answer in the node's namespace",
        Duration::from_secs(20),
        || curl_in(&host, &format!("http://{cluster_ip}/")) == "web\n",
    );
    for _ in 0..10 {
        assert_eq!(curl_in(&host, &format!("http://{cluster_ip}/")), "web\n");
    }

    // kubectl port-forward reaches the server that listens only on 127.0.0.1 in the pod
    node_support::check_port_forward(&s, "pod/web", 8081, "/", "loopback-only\n");

    // the martian guard: another host sending to the node's 127.0.0.1 is dropped
    // (host 1 routes 127.0.0.0/8 to host 0 — its own namespace's tables and sysctl only)
    let www = lab.dir.path().join("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("index.html"), "node-local\n").expect("page");
    let listener = Reaped(
        host.command("busybox")
            .args(["httpd", "-f", "-p", "127.0.0.1:18080", "-h"])
            .arg(&www)
            .spawn()
            .expect("busybox httpd"),
    );
    wait_for(
        "a server on the node's 127.0.0.1",
        Duration::from_secs(10),
        || curl_in(&host, "http://127.0.0.1:18080/") == "node-local\n",
    );
    let other = &lab.hosts[1];
    let o = other.exec("sh", &["-c", &format!("echo 1 > {ROUTE_LOCALNET}")]);
    assert!(o.status.success(), "{o:?}");
    let hijack = [
        vec![
            "route",
            "del",
            "local",
            "127.0.0.0/8",
            "dev",
            "lo",
            "table",
            "local",
        ],
        vec![
            "route",
            "del",
            "local",
            "127.0.0.1",
            "dev",
            "lo",
            "table",
            "local",
        ],
    ];
    for args in &hijack {
        let o = other.exec("ip", args);
        assert!(o.status.success(), "ip {args:?}: {o:?}");
    }
    let via = host.ip.to_string();
    let o = other.exec(
        "ip",
        &["route", "add", "127.0.0.0/8", "via", &via, "dev", "eth0"],
    );
    assert!(o.status.success(), "{o:?}");
    let before = guard_drops(&host);
    assert_eq!(
        curl_in(other, "http://127.0.0.1:18080/"),
        "",
        "another host reached a server on the node's 127.0.0.1"
    );
    let after = guard_drops(&host);
    assert!(
        after > before,
        "the martian guard dropped the attempt ({before} → {after} packets)"
    );
    drop(listener);
    drop(node);
    drop(ctd);
    drop(lab);
}
