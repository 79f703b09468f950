//! Node health end to end: three simulated nodes heartbeat through their
//! Leases; one stops. After the (shortened) grace period it turns
//! NotReady/Unknown with the unreachable taints, its pods are marked not
//! ready and evicted once their `tolerationSeconds` run out, the replicaset
//! controller replaces them and the scheduler puts the replacements on the
//! healthy nodes; when the heartbeat resumes the node recovers. Cordon,
//! drain and uncordon work with the real kubectl.

use crate::sim;
use crate::support;

use std::time::Duration;

use schemas::MetaExt;
use serde_json::json;
use sim::{Sim, node_of};
use support::{Server, wait_for};

const WAIT: Duration = Duration::from_secs(40);

fn apply(s: &Server, yaml: &str) {
    let o = s.kubectl_with(&["apply", "-f", "-"], &[], Some(yaml));
    assert!(
        o.status.success(),
        "kubectl apply failed: {}\n{}",
        support::stderr(&o),
        s.log()
    );
}

fn pod_yaml(name: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources: {{requests: {{cpu: 100m}}}}\n{spec_extra}---\n"
    )
}

fn taints(sim: &Sim, node: &str) -> Vec<(String, String)> {
    sim.get_node(node)
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.effect))
        .collect()
}

fn ready(sim: &Sim, node: &str) -> String {
    sim.get_node(node)
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status)
        .unwrap_or_default()
}

fn terminating(sim: &Sim, pod: &str) -> bool {
    sim.pod("default", pod)
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

/// The Deployment's pods: (name, node, terminating).
fn web_pods(sim: &Sim) -> Vec<(String, String, bool)> {
    let params = reconcilers::runtime::ListParams {
        label_selector: Some("app=web".into()),
        ..Default::default()
    };
    sim.block(
        sim.client
            .api::<k8s_openapi::api::core::v1::Pod>(Some("default"))
            .list(&params),
    )
    .expect("list pods")
    .items
    .into_iter()
    .map(|p| {
        (
            p.metadata.name_str().to_string(),
            node_of(&p),
            p.metadata.deletion_timestamp.is_some(),
        )
    })
    .collect()
}

fn pod_ready(sim: &Sim, pod: &str) -> Option<String> {
    sim.pod("default", pod)?
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status)
}

#[test]
fn a_silent_node_turns_not_ready_and_its_pods_are_evicted_and_replaced() {
    let s = Server::start_with(&[
        "--controllers",
        "scheduler,node-health,replicaset,deployment",
        "--node-monitor-grace-period",
        "2s",
        "--node-monitor-period",
        "200ms",
    ]);
    let sim = Sim::new(&s.kubeconfig);
    for n in ["n1", "n2", "n3"] {
        sim.node(n, "4", "8Gi", 110, json!({}), json!({}));
    }
    let beat = sim.heartbeat(&["n1", "n2", "n3"], Duration::from_millis(300));

    let on_n3 = "  nodeSelector: {kubernetes.io/hostname: n3}\n";
    let short = "  tolerations:\n  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}\n  - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}\n";
    let forever = "  tolerations: [{operator: Exists}]\n";
    // three replicas of 1 CPU on three 4-CPU nodes: one per node
    let template_tolerations: String = short.lines().map(|l| format!("    {l}\n")).collect();
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n        resources: {{requests: {{cpu: \"1\"}}}}\n{template_tolerations}---\n"
    );
    let yaml = [
        deployment,
        // the API server gives it the default 300 s tolerations
        pod_yaml("patient", on_n3),
        pod_yaml("stubborn", &format!("{on_n3}{forever}")),
    ]
    .concat();
    apply(&s, &yaml);
    wait_for("the pods to be bound", WAIT, || {
        let web = web_pods(&sim);
        web.len() == 3
            && web.iter().all(|(_, node, _)| !node.is_empty())
            && ["patient", "stubborn"].iter().all(|p| {
                sim.pod("default", p)
                    .is_some_and(|p| !node_of(&p).is_empty())
            })
    });
    let mut nodes: Vec<String> = web_pods(&sim).into_iter().map(|(_, n, _)| n).collect();
    nodes.sort();
    assert_eq!(nodes, vec!["n1", "n2", "n3"], "one replica per node");
    let victim = web_pods(&sim)
        .into_iter()
        .find(|(_, n, _)| n == "n3")
        .map(|(name, _, _)| name)
        .expect("a replica on n3");
    sim.pod_status("default", &victim, "10.244.3.2", true);
    sim.pod_status("default", "patient", "10.244.3.3", true);
    // with heartbeats, nodes stay Ready and untainted
    assert_eq!(ready(&sim, "n3"), "True");

    beat.silence("n3");
    wait_for("n3 to turn Unknown", WAIT, || {
        ready(&sim, "n3") == "Unknown"
    });
    let nodes = s.ok(&["get", "nodes"]);
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("n3") && l.contains("NotReady")),
        "{nodes}"
    );
    wait_for("the unreachable taints", WAIT, || {
        let t = taints(&sim, "n3");
        t.contains(&("node.kubernetes.io/unreachable".into(), "NoSchedule".into()))
            && t.contains(&("node.kubernetes.io/unreachable".into(), "NoExecute".into()))
    });
    assert!(
        taints(&sim, "n1").is_empty(),
        "healthy nodes stay untainted"
    );
    wait_for("the pods on n3 to be marked not ready", WAIT, || {
        pod_ready(&sim, "patient").as_deref() == Some("False")
    });

    // evicted once its 2 s toleration runs out; the others stay
    wait_for("the replica on n3 to be evicted", WAIT, || {
        terminating(&sim, &victim)
    });
    assert!(
        !terminating(&sim, "patient"),
        "300 s toleration: still there"
    );
    assert!(!terminating(&sim, "stubborn"), "tolerates everything");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={victim},reason=TaintManagerEviction"),
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert_eq!(events, format!("Marking for deletion Pod default/{victim}"));

    // the replicaset controller replaces it; the scheduler keeps it off n3
    wait_for("a replacement on a healthy node", WAIT, || {
        let live: Vec<(String, String, bool)> = web_pods(&sim)
            .into_iter()
            .filter(|(_, _, terminating)| !terminating)
            .collect();
        live.len() == 3 && live.iter().all(|(_, n, _)| n == "n1" || n == "n2")
    });

    // the heartbeat resumes: Ready again, taints gone
    beat.resume("n3");
    wait_for("n3 to recover", WAIT, || {
        ready(&sim, "n3") == "True" && taints(&sim, "n3").is_empty()
    });
}

#[test]
fn cordon_drain_and_uncordon_work_with_kubectl() {
    let s = Server::start_with(&[
        "--controllers",
        "scheduler,node-health",
        "--node-monitor-period",
        "200ms",
    ]);
    let sim = Sim::new(&s.kubeconfig);
    for n in ["d1", "d2"] {
        sim.node(n, "4", "8Gi", 110, json!({}), json!({}));
    }
    let _beat = sim.heartbeat(&["d1", "d2"], Duration::from_secs(1));
    let on_d1 = "  nodeSelector: {kubernetes.io/hostname: d1}\n";
    apply(
        &s,
        &[pod_yaml("old-1", on_d1), pod_yaml("old-2", on_d1)].concat(),
    );
    wait_for("the pods on d1", WAIT, || {
        ["old-1", "old-2"]
            .iter()
            .all(|p| sim.pod("default", p).is_some_and(|p| node_of(&p) == "d1"))
    });

    let out = s.ok(&["cordon", "d1"]);
    assert!(out.contains("node/d1 cordoned"), "{out}");
    let nodes = s.ok(&["get", "node", "d1"]);
    assert!(nodes.contains("Ready,SchedulingDisabled"), "{nodes}");
    wait_for("the unschedulable taint", WAIT, || {
        taints(&sim, "d1").contains(&(
            "node.kubernetes.io/unschedulable".into(),
            "NoSchedule".into(),
        ))
    });
    apply(
        &s,
        &(1..=3)
            .map(|i| pod_yaml(&format!("new-{i}"), ""))
            .collect::<String>(),
    );
    wait_for("new pods bound", WAIT, || {
        (1..=3).all(|i| {
            sim.pod("default", &format!("new-{i}"))
                .is_some_and(|p| !node_of(&p).is_empty())
        })
    });
    for i in 1..=3 {
        let p = sim.pod("default", &format!("new-{i}")).expect("pod");
        assert_eq!(node_of(&p), "d2", "nothing lands on a cordoned node");
    }

    let o = s.kubectl(&[
        "drain",
        "d1",
        "--force",
        "--grace-period=0",
        "--timeout=60s",
    ]);
    let text = format!("{}{}", support::stdout(&o), support::stderr(&o));
    assert!(o.status.success(), "{text}\n{}", s.log());
    assert!(text.contains("evicting pod default/old-1"), "{text}");
    assert!(text.contains("node/d1 drained"), "{text}");
    assert!(sim.pod("default", "old-1").is_none() && sim.pod("default", "old-2").is_none());

    let out = s.ok(&["uncordon", "d1"]);
    assert!(out.contains("node/d1 uncordoned"), "{out}");
    wait_for("the unschedulable taint to go", WAIT, || {
        taints(&sim, "d1").is_empty()
    });
    apply(&s, &pod_yaml("back", on_d1));
    wait_for("a pod on the uncordoned node", WAIT, || {
        sim.pod("default", "back")
            .is_some_and(|p| node_of(&p) == "d1")
    });
}
