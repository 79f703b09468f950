//! The scheduler end to end: a real `korral server` running only the
//! scheduler, nodes simulated by the test, pods created with the real
//! kubectl. Resources fill nodes without overcommit; what fits nowhere stays
//! Pending with kube-scheduler's exact message (in the PodScheduled
//! condition, a FailedScheduling event and `kubectl describe`); taints,
//! tolerations, node selectors, anti-affinity and topology spread place
//! pods as Kubernetes does; waiting pods are retried when a pod is deleted
//! or a node is added.

use crate::sim;
use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sim::{Sim, node_of, scheduled_condition};
use support::{Server, wait_for};

const WAIT: Duration = Duration::from_secs(30);

fn apply(s: &Server, yaml: &str) {
    let o = s.kubectl_with(&["apply", "-f", "-"], &[], Some(yaml));
    assert!(
        o.status.success(),
        "kubectl apply failed: {}\n{}",
        support::stderr(&o),
        s.log()
    );
}

fn pod_yaml(name: &str, labels: &str, spec_extra: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {labels}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox\n    resources: {{requests: {{cpu: \"{cpu}\", memory: 64Mi}}}}\n{spec_extra}---\n"
    )
}

fn placements(sim: &Sim, names: &[String]) -> BTreeMap<String, String> {
    names
        .iter()
        .map(|n| {
            (
                n.clone(),
                sim.pod("default", n)
                    .map(|p| node_of(&p))
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn wait_unschedulable(s: &Server, sim: &Sim, pod: &str) -> String {
    let mut message = String::new();
    wait_for(
        &format!("{pod} to be marked unschedulable"),
        WAIT,
        || match sim
            .pod("default", pod)
            .as_ref()
            .and_then(scheduled_condition)
        {
            Some((status, reason, msg)) if status == "False" && reason == "Unschedulable" => {
                message = msg;
                true
            }
            _ => false,
        },
    );
    assert!(
        sim.pod("default", pod)
            .is_some_and(|p| node_of(&p).is_empty()),
        "{pod} must stay pending\n{}",
        s.log()
    );
    message
}

#[test]
fn resources_fill_nodes_and_what_fits_nowhere_says_why_like_kube_scheduler() {
    let s = Server::start_with(&["--controllers", "scheduler"]);
    let sim = Sim::new(&s.kubeconfig);
    for n in ["n1", "n2", "n3"] {
        sim.node(n, "2", "4Gi", 110, json!({"pool": "general"}), json!({}));
    }
    let gpu_taint =
        json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]});
    for n in ["g1", "g2"] {
        sim.node(
            n,
            "8",
            "16Gi",
            110,
            json!({"pool": "gpu"}),
            gpu_taint.clone(),
        );
    }

    // six 1-CPU pods fill the three untainted 2-CPU nodes, two each
    let names: Vec<String> = (1..=6).map(|i| format!("web-{i}")).collect();
    let yaml: String = names
        .iter()
        .map(|n| pod_yaml(n, "{app: web}", "", "1"))
        .collect();
    apply(&s, &yaml);
    wait_for("six pods bound", WAIT, || {
        placements(&sim, &names).values().all(|n| !n.is_empty())
    });
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for node in placements(&sim, &names).into_values() {
        *per_node.entry(node).or_insert(0) += 1;
    }
    assert_eq!(
        per_node,
        BTreeMap::from([("n1".into(), 2), ("n2".into(), 2), ("n3".into(), 2)]),
        "no node may be overcommitted"
    );
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web-1,reason=Scheduled",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.starts_with("Successfully assigned default/web-1 to n"),
        "{events}"
    );

    // a seventh fits nowhere: pending, with kube-scheduler's message
    apply(&s, &pod_yaml("web-7", "{app: web}", "", "1"));
    let msg = wait_unschedulable(&s, &sim, "web-7");
    let expected = "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}, 3 Insufficient cpu. \
                    preemption: 0/5 nodes are available: 2 Preemption is not helpful for scheduling, \
                    3 No preemption victims found for incoming pod.";
    assert_eq!(msg, expected);
    let describe = s.ok(&["describe", "pod", "web-7"]);
    assert!(
        describe.contains("FailedScheduling") && describe.contains("default-scheduler"),
        "{describe}"
    );
    assert!(describe.contains("3 Insufficient cpu"), "{describe}");

    // a nodeSelector no node meets
    apply(
        &s,
        &pod_yaml(
            "nowhere",
            "{app: x}",
            "  nodeSelector: {disk: ssd}\n",
            "100m",
        ),
    );
    assert_eq!(
        wait_unschedulable(&s, &sim, "nowhere"),
        "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}, \
         3 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling."
    );

    // a required node affinity no node meets
    let affinity = "  tolerations: [{key: dedicated, operator: Exists}]\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: pool, operator: In, values: [fpga]}]\n";
    apply(&s, &pod_yaml("fpga", "{app: x}", affinity, "100m"));
    assert_eq!(
        wait_unschedulable(&s, &sim, "fpga"),
        "0/5 nodes are available: 5 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling."
    );

    // a toleration lets a pod onto the tainted nodes (and its selector keeps it there)
    let tolerant = "  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]\n  nodeSelector: {pool: gpu}\n";
    apply(&s, &pod_yaml("trainer", "{app: ml}", tolerant, "4"));
    wait_for("the tolerating pod to be bound", WAIT, || {
        sim.pod("default", "trainer")
            .is_some_and(|p| node_of(&p).starts_with('g'))
    });

    // deleting a pod frees its CPU: the waiting pod is retried and placed there
    let freed = node_of(&sim.pod("default", "web-1").expect("web-1"));
    s.ok(&["delete", "pod", "web-1", "--wait=false"]);
    wait_for("web-7 to take the freed CPU", WAIT, || {
        sim.pod("default", "web-7")
            .is_some_and(|p| node_of(&p) == freed)
    });
    assert_eq!(
        sim.pod("default", "web-7")
            .as_ref()
            .and_then(scheduled_condition)
            .map(|c| c.0),
        Some("True".to_string()),
        "binding sets PodScheduled=True"
    );
    let get = s.ok(&["get", "pod", "web-7", "-o", "wide"]);
    assert!(get.contains(&freed), "{get}");
}

#[test]
fn anti_affinity_spreads_replicas_and_topology_spread_bounds_skew() {
    let s = Server::start_with(&["--controllers", "scheduler"]);
    let sim = Sim::new(&s.kubeconfig);
    for (n, zone) in [("a1", "za"), ("a2", "za"), ("b1", "zb")] {
        sim.node(
            n,
            "16",
            "32Gi",
            110,
            json!({"topology.kubernetes.io/zone": zone}),
            json!({}),
        );
    }

    // required anti-affinity on the hostname: one replica per node
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: cache}}\n        topologyKey: kubernetes.io/hostname\n";
    let caches: Vec<String> = (1..=3).map(|i| format!("cache-{i}")).collect();
    let yaml: String = caches
        .iter()
        .map(|n| pod_yaml(n, "{app: cache}", anti, "100m"))
        .collect();
    apply(&s, &yaml);
    wait_for("three cache replicas bound", WAIT, || {
        placements(&sim, &caches).values().all(|n| !n.is_empty())
    });
    let mut nodes: Vec<String> = placements(&sim, &caches).into_values().collect();
    nodes.sort();
    assert_eq!(nodes, vec!["a1", "a2", "b1"], "one replica per node");

    // a fourth has nowhere to go
    apply(&s, &pod_yaml("cache-4", "{app: cache}", anti, "100m"));
    assert_eq!(
        wait_unschedulable(&s, &sim, "cache-4"),
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
         preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );
    // until a node is added: the waiting pod is retried and lands there
    sim.node(
        "b2",
        "16",
        "32Gi",
        110,
        json!({"topology.kubernetes.io/zone": "zb"}),
        json!({}),
    );
    wait_for("cache-4 on the new node", WAIT, || {
        sim.pod("default", "cache-4")
            .is_some_and(|p| node_of(&p) == "b2")
    });

    // topology spread over zones, maxSkew 1: zones stay within one pod of each other
    let spread = "  topologySpreadConstraints:\n  - maxSkew: 1\n    topologyKey: topology.kubernetes.io/zone\n    whenUnsatisfiable: DoNotSchedule\n    labelSelector: {matchLabels: {app: spread}}\n";
    let spreads: Vec<String> = (1..=7).map(|i| format!("spread-{i}")).collect();
    for chunk in spreads.chunks(3) {
        let yaml: String = chunk
            .iter()
            .map(|n| pod_yaml(n, "{app: spread}", spread, "100m"))
            .collect();
        apply(&s, &yaml);
    }
    wait_for("seven spread pods bound", WAIT, || {
        placements(&sim, &spreads).values().all(|n| !n.is_empty())
    });
    let zone = |n: &str| if n.starts_with('a') { "za" } else { "zb" };
    let mut per_zone: BTreeMap<&str, i64> = BTreeMap::new();
    for node in placements(&sim, &spreads).values() {
        *per_zone.entry(zone(node)).or_insert(0) += 1;
    }
    let (za, zb) = (
        per_zone.get("za").copied().unwrap_or(0),
        per_zone.get("zb").copied().unwrap_or(0),
    );
    assert_eq!(za + zb, 7);
    assert!((za - zb).abs() <= 1, "skew above 1: {per_zone:?}");
}
