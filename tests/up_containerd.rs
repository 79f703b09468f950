//! `korral up` as root where containerd runs (issue 17): inside a network
//! namespace the test makes (the `net_support` lab; nothing leaves it),
//! with the test's own containerd holding the demo's busybox image, `korral
//! up` chooses the containerd runtime by itself and says why, runs
//! `fixtures/demo` in containers with their own IPs from the pod network,
//! the demo's Service answers on its cluster IP from the host and by name
//! from inside a pod (cluster DNS), and Ctrl-C stops the containers and
//! removes the service proxy's rules.

use crate::intake_up::Up;
use crate::net_support;
use crate::node_support;
use crate::support;

use std::time::Duration;

use net_support::Lab;
use node_support::containerd::Containerd;
use support::{korral_bin, root, stdout, wait_for};

const NODE: &str = "up-ctd";

/// The demo's pods (`app.kubernetes.io/name=hello`) that are Ready, with their IPs.
fn ready_hello(up: &Up) -> Vec<(String, String)> {
    let o = up.kubectl(&[
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=hello",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    stdout(&o)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() == 3 && f[2] == "True").then(|| (f[0].to_string(), f[1].to_string()))
        })
        .collect()
}

#[test]
fn up_as_root_runs_the_demo_in_containerd_containers() {
    let mut lab = Lab::new(1);
    let ctd_dir = lab.dir.path().join("containerd");
    std::fs::create_dir_all(&ctd_dir).expect("containerd dir");
    let ctd = Containerd::start(&ctd_dir, NODE);
    // the demo's image (no registry is reachable here)
    ctd.import_busybox("busybox:1.36");
    let dir = lab.dir.path().join("up");
    std::fs::create_dir_all(&dir).expect("up dir");
    lab.track_node(NODE, &dir.join("state").join("nodes").join(NODE));
    let host = lab.hosts[0].clone();
    // as a real machine has (cluster IPs are routed before the proxy's DNAT); it leads nowhere
    host.default_route_to_nowhere();
    let listen = format!("{}:0", host.ip);
    let up = Up::start_with(
        host.command(korral_bin()),
        &dir,
        &root().join("fixtures/demo"),
        &[
            "--listen",
            &listen,
            "--node-name",
            NODE,
            "--containerd-address",
            &ctd.sock.to_string_lossy(),
            "--containerd-namespace",
            &ctd.namespace,
            "--ingress-http-listen",
            "off",
            "--ingress-https-listen",
            "off",
            // the imported image stays, however full the machine's disk is
            "--image-gc-high-threshold",
            "100",
        ],
    );
    // no --runtime: root and a containerd that answers make it containerd
    assert!(
        up.log()
            .contains("korral up: runtime containerd: running as root and containerd answers"),
        "{}",
        up.log()
    );
    assert!(
        up.log().contains(&format!(
            "korral up: node {NODE} running pods in containerd containers"
        )),
        "{}",
        up.log()
    );

    let mut pods = Vec::new();
    wait_for("the demo's two pods ready", Duration::from_secs(90), || {
        pods = ready_hello(&up);
        pods.len() == 2
    });
    // containers with their own IPs from the pod network, not host processes on 127.x
    for (name, ip) in &pods {
        assert!(
            ip.starts_with("10.244."),
            "{name} has IP {ip}, not one of the pod network\n{}",
            up.log()
        );
    }
    let (_, tasks) = ctd.ctr(&["tasks", "ls"]);
    let running = tasks.lines().filter(|l| l.contains("RUNNING")).count();
    assert!(
        running >= 2,
        "containerd runs the demo's containers: {tasks}"
    );
    // the pod's own IP, from the machine
    let (_, ip) = &pods[0];
    let page = host.exec(
        "curl",
        &[
            "-s",
            "--max-time",
            "5",
            &format!("http://{ip}:8080/index.html"),
        ],
    );
    assert!(stdout(&page).contains("hello from korral"), "{page:?}");
    // the Service's cluster IP, from the machine (the iptables proxy)
    let o = up.kubectl(&["get", "svc", "hello", "-o", "jsonpath={.spec.clusterIP}"]);
    let cluster_ip = stdout(&o);
    let mut last = None;
    wait_for(
        "the Service's cluster IP to answer from the host",
        Duration::from_secs(30),
        || {
            let o = host.exec(
                "curl",
                &[
                    "-s",
                    "--max-time",
                    "3",
                    &format!("http://{cluster_ip}/index.html"),
                ],
            );
            let ok = stdout(&o).contains("hello from korral");
            last = Some(o);
            ok
        },
    );
    // from inside a pod: the name through the cluster DNS, the cluster IP through the proxy
    let (pod, _) = &pods[1];
    let name = "hello.default.svc.cluster.local";
    let mut answer = String::new();
    let reached = support::poll_until(Duration::from_secs(90), || {
        let o = up.kubectl(&["exec", pod, "--", "nslookup", name]);
        let found = stdout(&o).contains(&cluster_ip);
        let o2 = up.kubectl(&[
            "exec",
            pod,
            "--",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{cluster_ip}/index.html"),
        ]);
        answer = format!(
            "nslookup: {}{}\nwget: {}{}",
            stdout(&o),
            String::from_utf8_lossy(&o.stderr),
            stdout(&o2),
            String::from_utf8_lossy(&o2.stderr)
        );
        found && stdout(&o2).contains("hello from korral")
    });
    assert!(
        reached,
        "a pod did not find {name} at {cluster_ip} or reach it: {answer}\n{}",
        up.log()
    );

    // Ctrl-C: the containers stop and the proxy's rules go
    up.stop();
    assert_eq!(
        ctd.container_count(),
        0,
        "korral up left containers: {}",
        ctd.ctr(&["containers", "ls"]).1
    );
    assert_eq!(
        host.korral_rules(),
        "",
        "korral up left the service proxy's rules"
    );
}
