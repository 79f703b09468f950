//! The DaemonSet and ReplicationController controllers against a real
//! `korral server` with simulated nodes (`tests/sim`), the scheduler binding
//! the daemon pods by their `metadata.name` node affinity and the fake
//! kubelet marking pods Running and Ready: one pod per node, a new node
//! gets one, a tainted node none, a rolling update and its undo with
//! `kubectl rollout status|history|undo`; an RC keeps its replicas and
//! `kubectl scale rc` changes them.

use crate::sim;
use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sim::Sim;
use support::fake_kubelet::FakeKubelet;
use support::{Server, stderr, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(60);

/// Live (not terminating) pods labelled `app=<app>`: node → images.
fn pods_by_node(s: &Server, app: &str) -> BTreeMap<String, Vec<String>> {
    let list = s.get_json(&["pods", "-l", &format!("app={app}")]);
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in list["items"].as_array().into_iter().flatten() {
        if p["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        let node = p["spec"]["nodeName"].as_str().unwrap_or("").to_string();
        let image = p["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("")
            .to_string();
        out.entry(node).or_default().push(image);
    }
    out
}

fn one_each(by_node: &BTreeMap<String, Vec<String>>, nodes: &[&str], image: &str) -> bool {
    by_node.len() == nodes.len()
        && nodes.iter().all(|n| {
            by_node
                .get(*n)
                .is_some_and(|imgs| imgs.len() == 1 && imgs[0] == image)
        })
}

/// `kubectl rollout status ds/agent` succeeds.
fn rolled_out(s: &Server) {
    let o = s.kubectl(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    assert!(
        o.status.success(),
        "{}{}\n{}",
        stdout(&o),
        stderr(&o),
        s.log()
    );
    assert!(stdout(&o).contains("daemon set \"agent\" successfully rolled out"));
}

const AGENT: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector: {matchLabels: {app: agent}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 2}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers:
      - name: c
        image: busybox:1
        resources: {requests: {cpu: 10m}}
"#;

#[test]
fn a_daemonset_runs_one_pod_per_eligible_node_and_rolls_out() {
    let s = Server::start_with(&["--controllers", "daemonset,scheduler"]);
    let sim = Sim::new(&s.kubeconfig);
    for n in ["n1", "n2", "n3"] {
        sim.node(n, "4", "8Gi", 110, json!({}), json!({}));
    }
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    s.apply(AGENT);
    wait_for("a pod on each of the three nodes", WAIT, || {
        one_each(&pods_by_node(&s, "agent"), &["n1", "n2", "n3"], "busybox:1")
    });
    rolled_out(&s);

    // a new node gets its pod; a tainted one does not
    sim.node("n4", "4", "8Gi", 110, json!({}), json!({}));
    wait_for("a pod on the new node", WAIT, || {
        one_each(
            &pods_by_node(&s, "agent"),
            &["n1", "n2", "n3", "n4"],
            "busybox:1",
        )
    });
    sim.node(
        "tainted",
        "4",
        "8Gi",
        110,
        json!({}),
        json!({"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}),
    );
    // the node after it is seen later: once it has its pod, the tainted one was judged
    sim.node("n5", "4", "8Gi", 110, json!({}), json!({}));
    let five = ["n1", "n2", "n3", "n4", "n5"];
    wait_for("a pod on n5", WAIT, || {
        one_each(&pods_by_node(&s, "agent"), &five, "busybox:1")
    });
    let pods = s.get_json(&["pods", "-l", "app=agent"]);
    let pinned: Vec<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(
        !pinned.iter().any(|n| n == "tainted") && pinned.len() == 5,
        "{pinned:?}"
    );
    wait_for("the status to count five nodes", WAIT, || {
        let st = &s.get_json(&["ds", "agent"])["status"];
        st["desiredNumberScheduled"] == 5
            && st["currentNumberScheduled"] == 5
            && st["numberReady"] == 5
            && st["numberAvailable"] == 5
            && st["updatedNumberScheduled"] == 5
            && st["numberMisscheduled"] == 0
    });

    // a rolling update replaces every pod
    s.ok(&["set", "image", "ds/agent", "c=busybox:2"]);
    rolled_out(&s);
    wait_for("every pod on the new image", WAIT, || {
        one_each(&pods_by_node(&s, "agent"), &five, "busybox:2")
    });
    let hashes: Vec<String> = s.get_json(&["pods", "-l", "app=agent"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["labels"]["controller-revision-hash"].as_str())
        .map(str::to_string)
        .collect();
    let revisions = s.get_json(&["controllerrevisions"]);
    let current = revisions["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["revision"] == 2)
        .expect("revision 2");
    let hash = current["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .unwrap_or("");
    assert!(
        !hash.is_empty() && hashes.iter().all(|h| h == hash),
        "{hashes:?} vs {hash}"
    );
    let history = s.ok(&["rollout", "history", "ds/agent"]);
    assert!(
        history.contains("REVISION") && history.contains("\n1 ") && history.contains("\n2 "),
        "{history}"
    );
    let rev1 = s.ok(&["rollout", "history", "ds/agent", "--revision=1"]);
    assert!(rev1.contains("busybox:1"), "{rev1}");

    // undo goes back to the first template, as revision 3
    let out = s.ok(&["rollout", "undo", "ds/agent"]);
    assert!(out.contains("rolled back"), "{out}");
    rolled_out(&s);
    wait_for("every pod back on the old image", WAIT, || {
        one_each(&pods_by_node(&s, "agent"), &five, "busybox:1")
    });
    let history = s.ok(&["rollout", "history", "ds/agent"]);
    assert!(
        history.contains("\n2 ") && history.contains("\n3 ") && !history.contains("\n1 "),
        "{history}"
    );

    // restart replaces the pods too
    let before = s.get_json(&["pods", "-l", "app=agent"])["items"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0);
    assert_eq!(before, 5);
    s.ok(&["rollout", "restart", "ds/agent"]);
    rolled_out(&s);

    // nodes that stop qualifying lose their pod
    s.ok(&["label", "node", "n1", "n2", "role=db"]);
    s.ok(&[
        "patch",
        "ds/agent",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"nodeSelector":{"role":"db"}}}}}"#,
    ]);
    wait_for("pods only on the db nodes", WAIT, || {
        let by_node = pods_by_node(&s, "agent");
        by_node.len() == 2 && by_node.contains_key("n1") && by_node.contains_key("n2")
    });
}

const RC: &str = r#"
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
spec:
  replicas: 2
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: busybox:1
"#;

#[test]
fn a_replication_controller_keeps_its_replicas_and_scales() {
    let s = Server::start_with(&["--controllers", "replicationcontroller"]);
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    s.apply(RC);
    let ready = |n: i64| {
        move |s: &Server| {
            let rc = s.get_json(&["rc", "web"]);
            rc["status"]["readyReplicas"] == n
                && rc["status"]["replicas"] == n
                && rc["status"]["observedGeneration"] == rc["metadata"]["generation"]
        }
    };
    wait_for("two ready replicas", WAIT, || ready(2)(&s));
    let pods = s.get_json(&["pods", "-l", "app=web"]);
    for p in pods["items"].as_array().into_iter().flatten() {
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["kind"],
            "ReplicationController"
        );
    }
    // a deleted pod is replaced
    let first = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    s.ok(&["delete", "pod", &first, "--wait=false"]);
    wait_for("the pod replaced", WAIT, || {
        let names: Vec<String> = s.get_json(&["pods", "-l", "app=web"])["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| !p["metadata"]["deletionTimestamp"].is_string())
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        names.len() == 2 && !names.contains(&first)
    });
    let out = s.ok(&["scale", "rc", "web", "--replicas=4"]);
    assert!(out.contains("replicationcontroller/web scaled"), "{out}");
    wait_for("four ready replicas", WAIT, || ready(4)(&s));
    let table = s.ok(&["get", "rc", "web"]);
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(row.get(..4), Some(&["web", "4", "4", "4"][..]), "{table}");
    s.ok(&["scale", "rc", "web", "--replicas=1"]);
    wait_for("one replica", WAIT, || ready(1)(&s));
}
