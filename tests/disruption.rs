//! PodDisruptionBudgets end to end: the disruption controller keeps a
//! budget's status, the eviction subresource refuses an eviction that would
//! break it with kube-apiserver's 429 Status, `kubectl drain` keeps
//! retrying until its timeout while the budget allows nothing, and drains
//! once the Deployment has a spare replica (each eviction takes the one
//! disruption; the replacement, ready on the other node, gives it back).

use crate::sim;
use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use sim::Sim;
use support::fake_kubelet::FakeKubelet;
use support::{Server, stderr, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(60);

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: busybox:1
        resources: {requests: {cpu: 10m}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web-pdb
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
"#;

fn budget(s: &Server) -> Value {
    s.get_json(&["pdb", "web-pdb"])["status"].clone()
}

/// Names of the live web pods on `node`.
fn web_pods_on(s: &Server, node: &str) -> Vec<String> {
    s.get_json(&["pods", "-l", "app=web"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["spec"]["nodeName"] == node && !p["metadata"]["deletionTimestamp"].is_string()
        })
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn drain_waits_for_the_disruption_budget() {
    let s = Server::start_with(&[
        "--controllers",
        "replicaset,deployment,disruption,scheduler,garbage-collector",
    ]);
    let sim = Sim::new(&s.kubeconfig);
    sim.node("d1", "4", "8Gi", 110, json!({}), json!({}));
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    s.apply(WEB);
    wait_for("two ready pods on d1 and the budget's status", WAIT, || {
        let b = budget(&s);
        web_pods_on(&s, "d1").len() == 2
            && b["currentHealthy"] == 2
            && b["desiredHealthy"] == 2
            && b["expectedPods"] == 2
            && b["disruptionsAllowed"] == 0
            && b["observedGeneration"] == 1
    });
    let b = budget(&s);
    let cond = &b["conditions"][0];
    assert_eq!(
        (&cond["type"], &cond["status"], &cond["reason"]),
        (
            &json!("DisruptionAllowed"),
            &json!("False"),
            &json!("InsufficientPods")
        ),
        "{b}"
    );
    sim.node("d2", "4", "8Gi", 110, json!({}), json!({}));

    // a raw eviction gets kube-apiserver's refusal, byte for byte (with its newline)
    let victim = web_pods_on(&s, "d1")[0].clone();
    let token = s.token("admin");
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": victim, "namespace": "default"}});
    let (code, text) = s.curl(
        "POST",
        &format!("/api/v1/namespaces/default/pods/{victim}/eviction"),
        Some(&token),
        "application/json",
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(code, 429, "{text}");
    assert_eq!(
        text,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"Cannot evict pod as it would violate the pod's disruption budget.\",\"reason\":\"TooManyRequests\",\"details\":{\"causes\":[{\"reason\":\"DisruptionBudget\",\"message\":\"The disruption budget web-pdb needs 2 healthy pods and has 2 currently\"}]},\"code\":429}\n"
    );

    // drain keeps retrying the 429 until its timeout
    let o = s.kubectl(&[
        "drain",
        "d1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=12s",
    ]);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{text}"
    );
    assert_eq!(web_pods_on(&s, "d1").len(), 2, "nothing was evicted");

    // a spare replica (on d2: d1 is cordoned) lets the drain through
    s.ok(&["scale", "deployment", "web", "--replicas=3"]);
    wait_for("one disruption allowed", WAIT, || {
        let b = budget(&s);
        b["currentHealthy"] == 3 && b["disruptionsAllowed"] == 1
    });
    let o = s.kubectl(&[
        "drain",
        "d1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=90s",
    ]);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{text}\n{}", s.log());
    assert!(text.contains("node/d1 drained"), "{text}");
    assert!(web_pods_on(&s, "d1").is_empty());
    wait_for("three ready pods on d2", WAIT, || {
        let b = budget(&s);
        web_pods_on(&s, "d2").len() == 3 && b["currentHealthy"] == 3
    });
}

#[test]
fn budgets_scale_from_the_controller_and_refuse_two_at_once() {
    let s = Server::start_with(&["--controllers", "replicaset,deployment,disruption"]);
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    s.apply(&WEB.replace("minAvailable: 2", "maxUnavailable: \"50%\""));
    s.ok(&["scale", "deployment", "web", "--replicas=4"]);
    wait_for("maxUnavailable 50% of four", WAIT, || {
        let b = budget(&s);
        b["expectedPods"] == 4 && b["desiredHealthy"] == 2 && b["disruptionsAllowed"] == 2
    });
    // an eviction takes one disruption and names the pod
    let pods = s.get_json(&["pods", "-l", "app=web"]);
    let victim = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let token = s.token("admin");
    let evict = |pod: &str| {
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod, "namespace": "default"}});
        s.curl(
            "POST",
            &format!("/api/v1/namespaces/default/pods/{pod}/eviction"),
            Some(&token),
            "application/json",
            Some(body.to_string().as_bytes()),
        )
    };
    let (code, text) = evict(&victim);
    assert_eq!(code, 201, "{text}");
    wait_for("the budget to recover with the replacement", WAIT, || {
        let b = budget(&s);
        b["currentHealthy"] == 4 && b["disruptionsAllowed"] == 2
    });
    // a second budget over the same pods: evictions are refused
    s.apply(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: other}\nspec:\n  minAvailable: 1\n  selector: {matchLabels: {app: web}}\n",
    );
    let pods = s.get_json(&["pods", "-l", "app=web"]);
    let next = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let (code, text) = evict(&next);
    assert_eq!(code, 500, "{text}");
    assert_eq!(
        text,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.\",\"code\":500}\n"
    );
}
