//! The built-in service load balancer under `korral up` (process runtime,
//! loopback only): a Deployment of two HTTP servers behind a LoadBalancer
//! Service (its port from `free_port()`, `allocateLoadBalancerNodePorts:
//! false`) and a NodePort Service, synced from a folder. HTTP to
//! 127.0.0.1:<port> and 127.0.0.1:<nodePort> reaches the app, round-robin
//! over both pods; `kubectl get svc` shows the EXTERNAL-IP (127.0.0.1, with
//! the `ipMode: VIP` kube's defaulting adds); a LoadBalancer of another
//! `loadBalancerClass` is left alone; a pod whose readiness probe fails
//! leaves the rotation of both ports.

use crate::ingress::backend;
use crate::intake_up::Up;
use crate::support;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::Duration;

use support::{free_port, stdout, wait_for};

/// Two busybox httpd pods answering `web <pod name>`, ready while
/// `/www/ready` exists (the Ingress test's backend), and the Services in
/// front of them.
fn manifests(lb_port: u16, other_port: u16) -> String {
    let services = format!(
        r#"---
apiVersion: v1
kind: Service
metadata:
  name: web-lb
spec:
  type: LoadBalancer
  allocateLoadBalancerNodePorts: false
  selector: {{app: web}}
  ports: [{{name: http, port: {lb_port}, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata:
  name: web-np
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata:
  name: other-lb
spec:
  type: LoadBalancer
  loadBalancerClass: example.com/elsewhere
  selector: {{app: web}}
  ports: [{{name: http, port: {other_port}, targetPort: http}}]
"#
    );
    format!("{}{services}", backend("web", 2, ""))
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl")
}

/// The page at 127.0.0.1:`port` ("" when nothing answers).
fn get(port: u16) -> String {
    stdout(&curl(&[&format!("http://127.0.0.1:{port}/")]))
        .trim()
        .to_string()
}

#[test]
fn load_balancer_and_node_port_services_answer_on_loopback_and_follow_readiness() {
    let data = tempfile::tempdir().expect("temp dir");
    let src = data.path().join("manifests");
    std::fs::create_dir_all(&src).expect("manifests dir");
    let (lb_port, other_port) = (free_port(), free_port());
    std::fs::write(src.join("web.yaml"), manifests(lb_port, other_port)).expect("write");
    let up = Up::start(
        data.path(),
        &src,
        &[
            "--ingress-http-listen",
            "off",
            "--ingress-https-listen",
            "off",
        ],
    );
    assert!(
        up.log()
            .contains("LoadBalancer Services answer on 127.0.0.1"),
        "{}",
        up.log()
    );
    let kubectl = |args: &[&str]| up.kubectl(args);
    let ready_pods = || up.ready_pods("web");
    wait_for("both pods ready", Duration::from_secs(90), || {
        ready_pods().len() == 2
    });
    let node_port: u16 = {
        let mut port = None;
        wait_for("web-np's node port", Duration::from_secs(30), || {
            let o = kubectl(&[
                "get",
                "svc",
                "web-np",
                "-o",
                "jsonpath={.spec.ports[0].nodePort}",
            ]);
            port = stdout(&o).trim().parse().ok();
            port.is_some()
        });
        port.expect("a node port")
    };
    let o = kubectl(&[
        "get",
        "svc",
        "web-lb",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    assert_eq!(
        stdout(&o),
        "",
        "allocateLoadBalancerNodePorts: false allocates no node port"
    );

    // both ports reach the app, round-robin over the two pods
    for (what, port) in [
        ("the LoadBalancer port", lb_port),
        ("the NodePort", node_port),
    ] {
        wait_for(what, Duration::from_secs(30), || {
            get(port).starts_with("web ")
        });
        let seen: BTreeSet<String> = (0..8).map(|_| get(port)).collect();
        assert_eq!(seen.len(), 2, "{what}: {seen:?}");
    }

    // the status names the node's address; kubectl shows it as the EXTERNAL-IP
    wait_for("web-lb's status", Duration::from_secs(30), || {
        let o = kubectl(&[
            "get",
            "svc",
            "web-lb",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip} {.status.loadBalancer.ingress[*].ipMode}",
        ]);
        stdout(&o) == "127.0.0.1 VIP"
    });
    let o = kubectl(&["get", "svc", "web-lb", "web-np", "other-lb"]);
    let table = stdout(&o);
    let row = |name: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert!(table.contains("EXTERNAL-IP"), "{table}");
    assert_eq!(row("web-lb")[3], "127.0.0.1", "{table}");
    assert_eq!(row("web-lb")[4], format!("{lb_port}/TCP"), "{table}");
    assert_eq!(row("web-np")[3], "<none>", "{table}");
    assert_eq!(row("web-np")[4], format!("80:{node_port}/TCP"), "{table}");
    // another class's LoadBalancer is not ours: no address, no listener
    assert_eq!(row("other-lb")[3], "<pending>", "{table}");
    assert_eq!(get(other_port), "", "another class's port is not served");

    // a pod made not-ready leaves the rotation of both ports
    let pods = ready_pods();
    let (gone, stays) = (&pods[0], &pods[1]);
    let o = kubectl(&["exec", gone, "--", "rm", "/www/ready"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("the pod not ready", Duration::from_secs(30), || {
        !ready_pods().contains(gone)
    });
    for port in [lb_port, node_port] {
        wait_for(
            "only the ready pod answers",
            Duration::from_secs(30),
            || (0..6).all(|_| get(port) == format!("web {stays}")),
        );
    }
    // and comes back when ready again
    let o = kubectl(&["exec", gone, "--", "sh", "-c", "echo ok > /www/ready"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("both pods answer again", Duration::from_secs(30), || {
        (0..8).map(|_| get(lb_port)).collect::<BTreeSet<_>>().len() == 2
    });

    up.stop();
}
