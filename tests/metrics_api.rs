//! The Metrics API end to end (issue 18): `kubectl top` and
//! `/apis/metrics.k8s.io/v1beta1` against a real `korral server` whose
//! figures come from node daemons' `/stats/summary`.
//!
//! - Simulated nodes (`korral node --simulate`, one shared endpoint): each
//!   pod reports what its `sim.korral.dev/cpu`/`memory` annotations say,
//!   and PodMetrics follow a patched annotation.
//! - A process-runtime node sampling every second: a busy container
//!   (`sh -c 'while :; do :; done'`) shows CPU, an idle one (`sleep`) shows
//!   next to none, and `kubectl top node` shows the node from `/proc`. The
//!   containers run under `timeout`, so a failed test leaves no busy loop
//!   behind for long.

use crate::node_support;
use crate::support;

use std::time::Duration;

use node_support::{NodeProc, wait_node, wait_ready};
use serde_json::Value;
use support::simulated_nodes::SimulatedNodes;
use support::{Server, poll_until, wait_for};

const WAIT: Duration = Duration::from_secs(60);

/// The PodMetrics of the pods selected by `selector` in `default`.
fn pod_metrics(s: &Server, selector: &str) -> Vec<Value> {
    let out = s.kubectl(&[
        "get",
        "--raw",
        &format!("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector={selector}"),
    ]);
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

fn cpu_of(m: &Value) -> String {
    m["containers"][0]["usage"]["cpu"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

const SIM_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: sim}
spec:
  replicas: 2
  selector: {matchLabels: {app: sim}}
  template:
    metadata:
      labels: {app: sim}
      annotations: {sim.korral.dev/cpu: 250m, sim.korral.dev/memory: 64Mi}
    spec:
      containers:
      - {name: app, image: registry.example/app:1}
"#;

#[test]
fn simulated_pods_report_their_annotations_and_follow_a_patch() {
    let s = Server::start();
    let _nodes = SimulatedNodes::start(&s, "sim", 2);
    s.apply(SIM_DEPLOYMENT);
    wait_for("two PodMetrics at 250m", WAIT, || {
        let m = pod_metrics(&s, "app%3Dsim");
        m.len() == 2 && m.iter().all(|p| cpu_of(p) == "250m")
    });
    let m = pod_metrics(&s, "app%3Dsim");
    assert_eq!(m[0]["containers"][0]["usage"]["memory"], "64Mi", "{m:?}");
    assert_eq!(m[0]["window"], "10s", "the housekeeping interval: {m:?}");
    let top = s.ok(&["top", "pod", "-l", "app=sim"]);
    assert!(top.contains("250m") && top.contains("64Mi"), "{top}");
    let nodes = s.ok(&["top", "node"]);
    assert!(
        nodes.contains("sim-0") && nodes.contains("sim-1"),
        "{nodes}"
    );
    assert!(!nodes.contains("<unknown>"), "{nodes}");

    // a patched annotation is what the next reading says
    s.ok(&[
        "annotate",
        "pods",
        "-l",
        "app=sim",
        "--overwrite",
        "sim.korral.dev/cpu=750m",
    ]);
    wait_for("both PodMetrics at 750m", WAIT, || {
        let m = pod_metrics(&s, "app%3Dsim");
        m.len() == 2 && m.iter().all(|p| cpu_of(p) == "750m")
    });
    // one container's own annotation wins over the pod's
    let pod = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=sim",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    s.ok(&["annotate", "pod", &pod, "sim.korral.dev/cpu.app=2"]);
    wait_for("the container's own figure", WAIT, || {
        pod_metrics(&s, "app%3Dsim")
            .iter()
            .any(|p| p["metadata"]["name"] == pod.as_str() && cpu_of(p) == "2")
    });
}

const NODE: &str = "metrics-1";

/// A busy and an idle pod on the process node, each ending by itself after two minutes.
const PODS: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: busy}
spec:
  nodeName: metrics-1
  terminationGracePeriodSeconds: 1
  containers:
  - {name: loop, image: busybox, command: ["timeout", "120", "sh", "-c", "while :; do :; done"]}
---
apiVersion: v1
kind: Pod
metadata: {name: idle}
spec:
  nodeName: metrics-1
  terminationGracePeriodSeconds: 1
  containers:
  - {name: sleep, image: busybox, command: ["timeout", "120", "sleep", "120"]}
"#;

/// `kubectl top pod`'s CPU column for `pod`, in millicores.
fn top_millicores(top: &str, pod: &str) -> Option<u64> {
    let line = top
        .lines()
        .find(|l| l.split_whitespace().next() == Some(pod))?;
    line.split_whitespace()
        .nth(1)?
        .strip_suffix('m')?
        .parse()
        .ok()
}

#[test]
fn kubectl_top_shows_a_busy_container_busy_and_an_idle_one_idle() {
    let s = Server::start();
    let data = s.dir.path().join("node-data");
    std::fs::create_dir_all(&data).expect("data dir");
    let args = node_support::node_args(
        &s,
        NODE,
        &data,
        &[
            "--runtime",
            "process",
            "--process-pod-ips",
            "loopback",
            "--housekeeping-interval",
            "1s",
        ],
    );
    let node = NodeProc::start(&data, &s.dir.path().join("node.log"), &args);
    wait_node(&s, &node, NODE);
    s.apply(PODS);
    wait_ready(&s, &node, "busy", WAIT);
    wait_ready(&s, &node, "idle", WAIT);
    let mut last = String::new();
    let measured = poll_until(WAIT, || {
        let o = s.kubectl(&["top", "pod", "--no-headers"]);
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // the busy loop gets most of a core even on a loaded machine; sleep next to nothing
        matches!(
            (top_millicores(&last, "busy"), top_millicores(&last, "idle")),
            (Some(busy), Some(idle)) if busy >= 200 && idle <= 20
        )
    });
    assert!(
        measured,
        "kubectl top pod:\n{last}\nnode log:\n{}",
        node_support::tail(&node.log_text(), 30)
    );
    let nodes = s.ok(&["top", "node", NODE, "--no-headers"]);
    let cells: Vec<&str> = nodes.split_whitespace().collect();
    assert_eq!(cells.first(), Some(&NODE), "{nodes}");
    // the node is at least as busy as its busy container, with memory in use
    let node_cpu: u64 = cells
        .get(1)
        .and_then(|c| c.strip_suffix('m'))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(node_cpu >= 200, "{nodes}");
    eprintln!("kubectl top pod:\n{last}\nkubectl top node:\n{nodes}");
    assert!(cells.get(3).is_some_and(|m| m.ends_with("Mi")), "{nodes}");
    // the kubelet's Prometheus view of the same figures on the node's
    // endpoint, for the API server's client certificate only
    let port = node_support::jsonpath(
        &s,
        "node",
        NODE,
        "{.status.daemonEndpoints.kubeletEndpoint.Port}",
    );
    let pki = s.dir.path().join("pki");
    let url = format!("https://127.0.0.1:{port}/metrics/resource");
    let scrape = |cert: bool| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sk", "--max-time", "5"]);
        if cert {
            cmd.arg("--cert")
                .arg(pki.join("kubelet-client.crt"))
                .arg("--key")
                .arg(pki.join("kubelet-client.key"));
        }
        let o = cmd.arg(&url).output().expect("curl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let text = scrape(true);
    for want in [
        "# TYPE container_cpu_usage_seconds_total counter",
        "container_cpu_usage_seconds_total{container=\"loop\",namespace=\"default\",pod=\"busy\"} ",
        "container_memory_working_set_bytes{container=\"sleep\",namespace=\"default\",pod=\"idle\"} ",
        "pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"busy\"} ",
        "node_cpu_usage_seconds_total ",
        "node_memory_working_set_bytes ",
        "resource_scrape_error 0",
    ] {
        assert!(
            text.contains(want),
            "{want:?} not in /metrics/resource:\n{text}"
        );
    }
    assert!(
        !scrape(false).contains("node_cpu"),
        "served without a client certificate"
    );
    s.ok(&["delete", "pod", "busy", "idle", "--wait=true"]);
}
