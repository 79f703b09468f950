//! The DaemonSet and ReplicationController controllers against a real
//! `korral server` with simulated nodes (`tests/sim`), the scheduler binding
//! the daemon pods by their `metadata.name` node affinity and the fake
//! kubelet marking pods Running and Ready: one pod per node, a new node
//! gets one, a tainted node none, a rolling update and its undo with
//! `kubectl rollout status|history|undo`; OnDelete replacing only deleted
//! pods; maxSurge starting a new pod beside the old one (a never-ready
//! template shows the old pods stay) and a rollout never leaving a node
//! without a ready pod nor more than one extra pod (seen through a pod
//! watch); an RC keeps its replicas and `kubectl scale rc` changes them.

use crate::sim;
use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sim::Sim;
use support::fake_kubelet::FakeKubelet;
use support::pod_watch::{self, PodWatch};
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
    let _kubelet = FakeKubelet::start_for_bound(&s.kubeconfig);
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

/// A DaemonSet named `name` with `strategy` (the `updateStrategy` value, as YAML flow).
fn daemonset(name: &str, strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {name}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  updateStrategy: {strategy}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n      - name: c\n        image: busybox:1\n"
    )
}

/// Live pods labelled `app=<app>`: name → (node, image, uid).
fn live_pods(s: &Server, app: &str) -> BTreeMap<String, (String, String, String)> {
    let list = s.get_json(&["pods", "-l", &format!("app={app}")]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| !p["metadata"]["deletionTimestamp"].is_string())
        .map(|p| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
            (
                s(&p["metadata"]["name"]),
                (
                    s(&p["spec"]["nodeName"]),
                    s(&p["spec"]["containers"][0]["image"]),
                    s(&p["metadata"]["uid"]),
                ),
            )
        })
        .collect()
}

#[test]
fn on_delete_replaces_only_the_pods_that_are_deleted() {
    let s = Server::start_with(&["--controllers", "daemonset,scheduler"]);
    let sim = Sim::new(&s.kubeconfig);
    let nodes = ["n1", "n2", "n3"];
    for n in nodes {
        sim.node(n, "4", "8Gi", 110, json!({}), json!({}));
    }
    let _kubelet = FakeKubelet::start_for_bound(&s.kubeconfig);
    s.apply(&daemonset("lazy", "{type: OnDelete}"));
    wait_for("a pod on each node", WAIT, || {
        one_each(&pods_by_node(&s, "lazy"), &nodes, "busybox:1")
    });
    let before = live_pods(&s, "lazy");
    assert_eq!(before.len(), 3, "{before:?}");

    // a new template: the controller records it (a second revision, the
    // status counting no updated pod) and replaces nothing
    s.ok(&["set", "image", "ds/lazy", "c=busybox:2"]);
    let observed = support::poll_until(WAIT, || {
        let ds = s.get_json(&["ds", "lazy"]);
        let st = &ds["status"];
        st["observedGeneration"] == ds["metadata"]["generation"]
            && ds["metadata"]["generation"] == 2
            // omitted when 0, as kube's omitempty
            && st["updatedNumberScheduled"].as_i64().unwrap_or(0) == 0
            && st["currentNumberScheduled"] == 3
            && st["numberReady"] == 3
    });
    assert!(
        observed,
        "the status did not observe the new template with no pod updated: {}",
        s.get_json(&["ds", "lazy"])
    );
    let revisions = s.get_json(&["controllerrevisions"]);
    let count = revisions["items"].as_array().map_or(0, |a| a.len());
    assert_eq!(count, 2, "two revisions: {revisions}");
    assert_eq!(
        live_pods(&s, "lazy"),
        before,
        "OnDelete replaced a pod without its deletion"
    );

    // the deleted pod comes back on its node with the new template; the
    // others stay as they were
    let (victim, (node, _, _)) = before
        .iter()
        .find(|(_, (n, _, _))| n == "n2")
        .map(|(k, v)| (k.clone(), v.clone()))
        .expect("the pod on n2");
    s.ok(&["delete", "pod", &victim, "--wait=false"]);
    wait_for("the replacement on n2 with the new image", WAIT, || {
        let now = live_pods(&s, "lazy");
        now.len() == 3
            && now
                .iter()
                .any(|(name, (n, image, _))| *name != victim && *n == node && image == "busybox:2")
    });
    let after = live_pods(&s, "lazy");
    for (name, v) in &before {
        if *name != victim {
            assert_eq!(after.get(name), Some(v), "{name} changed: {after:?}");
        }
    }
    wait_for("the status to count one updated pod", WAIT, || {
        let st = &s.get_json(&["ds", "lazy"])["status"];
        st["updatedNumberScheduled"] == 1 && st["numberReady"] == 3
    });
    // kubectl rollout status does not wait for OnDelete rollouts, as kube's
    let o = s.kubectl(&["rollout", "status", "ds/lazy", "--timeout=5s"]);
    assert!(
        !o.status.success()
            && stderr(&o)
                .contains("rollout status is only available for RollingUpdate strategy type"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
}

/// What the watch saw of a surge rollout, sampled after changes (a sample
/// may span several events, so it can miss a state but never invent one).
#[derive(Default)]
struct SurgeLog {
    /// The most live pods seen at once.
    most_live: usize,
    /// Samples in which a node had no live, ready pod (node, pods seen).
    dark: Vec<String>,
}

/// One pod as the surge log records it: name, node, image, readiness,
/// creation and deletion times.
fn pod_line(p: &k8s_openapi::api::core::v1::Pod) -> String {
    let spec = p.spec.as_ref();
    format!(
        "{} on {} image {} ready {} created {:?} deleting {:?} rv {:?}",
        p.metadata.name.as_deref().unwrap_or("?"),
        spec.and_then(|s| s.node_name.as_deref()).unwrap_or("-"),
        spec.and_then(|s| s.containers.first())
            .and_then(|c| c.image.as_deref())
            .unwrap_or("-"),
        pod_watch::is_ready(p),
        p.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        p.metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        p.metadata.resource_version,
    )
}

#[test]
fn max_surge_starts_the_new_pod_beside_the_old_one() {
    let s = Server::start_with(&["--controllers", "daemonset,scheduler"]);
    let sim = Sim::new(&s.kubeconfig);
    let nodes = ["n1", "n2", "n3"];
    for n in nodes {
        sim.node(n, "4", "8Gi", 110, json!({}), json!({}));
    }
    let _kubelet = FakeKubelet::start_for_bound(&s.kubeconfig);
    s.apply(&daemonset(
        "surge",
        "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}",
    ));
    wait_for("a ready pod on each node", WAIT, || {
        let st = &s.get_json(&["ds", "surge"])["status"];
        one_each(&pods_by_node(&s, "surge"), &nodes, "busybox:1") && st["numberReady"] == 3
    });

    // the status counts each node's oldest pod, and creation times have
    // whole seconds (kube breaks ties by name): the new pods must come in a
    // later second than the old ones for the counts below to be certain
    let newest = s.get_json(&["pods", "-l", "app=surge"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["creationTimestamp"].as_str())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .max()
        .expect("the old pods' creation times");
    wait_for("a second after the old pods' creation", WAIT, || {
        chrono::Utc::now() >= newest + chrono::Duration::seconds(1)
    });
    // a new template whose pods never become ready (the fake kubelet never
    // readies "bad" images): with maxUnavailable 0 the controller may only
    // surge — one new pod beside its node's old one, and no old pod goes
    s.ok(&["set", "image", "ds/surge", "c=busybox-bad:2"]);
    let mut surged = BTreeMap::new();
    wait_for("one surge pod", WAIT, || {
        surged = pods_by_node(&s, "surge");
        surged.values().flatten().any(|i| i == "busybox-bad:2")
    });
    let with_new: Vec<&String> = surged
        .iter()
        .filter(|(_, imgs)| imgs.iter().any(|i| i == "busybox-bad:2"))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        with_new.len(),
        1,
        "maxSurge 1 surges on one node: {surged:?}"
    );
    for n in nodes {
        assert!(
            surged
                .get(n)
                .is_some_and(|imgs| imgs.iter().any(|i| i == "busybox:1")),
            "the old pod on {n} must stay while its replacement is not ready: {surged:?}"
        );
    }
    let st = &s.get_json(&["ds", "surge"])["status"];
    assert_eq!(st["numberReady"], 3, "{st}");
    // back to the first template: the surge pod goes, the old pods stay
    // (going straight to another template would leave two pods of old
    // revisions on that node, and kube's choice between them breaks
    // creation-second ties by name)
    s.ok(&["rollout", "undo", "ds/surge"]);
    wait_for("the surge pod gone after the undo", WAIT, || {
        let st = &s.get_json(&["ds", "surge"])["status"];
        one_each(&pods_by_node(&s, "surge"), &nodes, "busybox:1") && st["numberReady"] == 3
    });

    // every change to the pods from here on, as a watch delivers them
    let log = Arc::new(Mutex::new(SurgeLog::default()));
    let (synced_tx, synced_rx) = std::sync::mpsc::channel::<()>();
    let watch = {
        let log = log.clone();
        PodWatch::start(
            &s.kubeconfig,
            "surge-log",
            Some("app=surge"),
            move |_, pods| {
                let live: Vec<_> = pods
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                let mut ready_on: BTreeSet<String> = BTreeSet::new();
                for p in &live {
                    if pod_watch::is_ready(p) {
                        let spec = p.spec.as_ref();
                        ready_on.insert(spec.and_then(|s| s.node_name.clone()).unwrap_or_default());
                    }
                }
                if let Ok(mut l) = log.lock() {
                    l.most_live = l.most_live.max(live.len());
                    for n in ["n1", "n2", "n3"] {
                        if !ready_on.contains(n) {
                            let seen: Vec<String> = pods.iter().map(|p| pod_line(p)).collect();
                            l.dark
                                .push(format!("{n} after {} live pods: {seen:?}", live.len()));
                        }
                    }
                }
                let _ = synced_tx.send(());
                Box::pin(async {})
            },
        )
    };
    assert!(
        synced_rx.recv_timeout(WAIT).is_ok(),
        "the pod watch did not sync"
    );
    // a template that becomes ready rolls out node by node
    s.ok(&["set", "image", "ds/surge", "c=busybox:2"]);
    let o = s.kubectl(&["rollout", "status", "ds/surge", "--timeout=90s"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    wait_for("one pod per node, all on the new image", WAIT, || {
        one_each(&pods_by_node(&s, "surge"), &nodes, "busybox:2")
    });
    drop(watch);
    let log = log.lock().expect("log");
    assert!(
        log.most_live <= nodes.len() + 1,
        "maxSurge 1 allows one extra pod, {} were live at once",
        log.most_live
    );
    assert!(
        log.dark.is_empty(),
        "maxUnavailable 0 left nodes without a ready pod: {:?}",
        log.dark
    );
}
