//! The workload controllers against a real server, with a fake kubelet
//! marking pods ready: scaling, replacement, rolling updates that keep
//! enough pods ready, rollout history/undo/pause/resume, progress deadlines,
//! deletion propagation, namespace deletion.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use support::fake_kubelet::FakeKubelet;
use support::pod_watch::{PodWatch, is_ready};
use support::{Server, stderr, stdout, wait_for};

const LONG: Duration = Duration::from_secs(60);

fn deployment(name: &str, image: &str, replicas: i32, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n{extra_spec}  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: c\n        image: {image}\n"
    )
}

fn apply(s: &Server, yaml: &str) {
    let o = s.kubectl_with(&["apply", "-f", "-"], &[], Some(yaml));
    assert!(
        o.status.success(),
        "apply failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
}

fn jsonpath(s: &Server, what: &str, path: &str) -> String {
    let o = s.kubectl(&["get", what, "-o", &format!("jsonpath={path}")]);
    stdout(&o)
}

fn pod_names(s: &Server, selector: &str) -> Vec<String> {
    let out = stdout(&s.kubectl(&["get", "pods", "-l", selector, "-o", "name"]));
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

fn wait_available(s: &Server, name: &str, n: i32) {
    wait_for(
        &format!("deployment {name} to have {n} available"),
        LONG,
        || {
            let avail = jsonpath(
                s,
                &format!("deploy/{name}"),
                "{.status.availableReplicas}/{.status.updatedReplicas}/{.status.replicas}",
            );
            let want = if n == 0 {
                "//".to_string()
            } else {
                format!("{n}/{n}/{n}")
            };
            avail == want
                && pod_names(s, &format!("app={name}")).len() == usize::try_from(n).unwrap_or(0)
        },
    );
}

#[test]
fn scaling_converges_and_deleted_pods_are_replaced() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    apply(&s, &deployment("web", "nginx:1", 3, ""));
    wait_available(&s, "web", 3);
    s.ok(&["scale", "deploy/web", "--replicas=10"]);
    wait_available(&s, "web", 10);
    s.ok(&["scale", "deploy/web", "--replicas=0"]);
    wait_available(&s, "web", 0);
    s.ok(&["scale", "deploy/web", "--replicas=2"]);
    wait_available(&s, "web", 2);
    let before = pod_names(&s, "app=web");
    let victim = before[0].clone();
    s.ok(&["delete", &victim]);
    wait_for("the deleted pod to be replaced", LONG, || {
        let now = pod_names(&s, "app=web");
        now.len() == 2 && !now.contains(&victim)
    });
    wait_available(&s, "web", 2);
}

#[test]
fn rolling_update_keeps_replicas_ready_then_undo_pause_resume() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    let strategy = "  strategy:\n    type: RollingUpdate\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n";
    apply(&s, &deployment("web", "nginx:1", 3, strategy));
    wait_available(&s, "web", 3);

    // the number of ready pods after every pod change throughout the update
    let min_ready = Arc::new(AtomicI64::new(i64::MAX));
    let sampler = {
        let min_ready = min_ready.clone();
        PodWatch::start(&s.kubeconfig, "sampler", Some("app=web"), move |_, pods| {
            let ready = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
                .count();
            min_ready.fetch_min(i64::try_from(ready).unwrap_or(0), Ordering::Relaxed);
            Box::pin(async {})
        })
    };
    s.ok(&["set", "image", "deploy/web", "c=nginx:2"]);
    let out = s.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    drop(sampler);
    assert!(
        min_ready.load(Ordering::Relaxed) >= 3,
        "ready pods dropped to {} during the update",
        min_ready.load(Ordering::Relaxed)
    );
    wait_available(&s, "web", 3);

    let history = s.ok(&["rollout", "history", "deploy/web"]);
    assert!(
        history.contains("REVISION")
            && history.lines().any(|l| l.starts_with("1 "))
            && history.lines().any(|l| l.starts_with("2 ")),
        "{history}"
    );

    // undo returns to v1 (as revision 3)
    s.ok(&["rollout", "undo", "deploy/web"]);
    s.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert_eq!(
        jsonpath(
            &s,
            "deploy/web",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1"
    );
    wait_for("revision 3", LONG, || {
        jsonpath(
            &s,
            "deploy/web",
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ) == "3"
    });

    // a paused deployment does not roll out; resume does
    s.ok(&["rollout", "pause", "deploy/web"]);
    s.ok(&["set", "image", "deploy/web", "c=nginx:3"]);
    wait_for("the paused deployment to be observed", LONG, || {
        jsonpath(&s, "deploy/web", "{.status.observedGeneration}")
            == jsonpath(&s, "deploy/web", "{.metadata.generation}")
            && jsonpath(
                &s,
                "deploy/web",
                "{.status.conditions[?(@.type==\"Progressing\")].reason}",
            ) == "DeploymentPaused"
    });
    let images = stdout(&s.kubectl(&[
        "get",
        "rs",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.template.spec.containers[0].image}",
    ]));
    assert!(
        !images.contains("nginx:3"),
        "a paused deployment created a replica set for the new template: {images}"
    );
    s.ok(&["rollout", "resume", "deploy/web"]);
    s.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    wait_for("pods running nginx:3", LONG, || {
        stdout(&s.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ]))
        .split_whitespace()
        .all(|i| i == "nginx:3")
            && pod_names(&s, "app=web").len() == 3
    });

    // restart re-creates every pod
    let before = pod_names(&s, "app=web");
    s.ok(&["rollout", "restart", "deploy/web"]);
    s.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    wait_for("all pods replaced", LONG, || {
        let now = pod_names(&s, "app=web");
        now.len() == 3 && now.iter().all(|p| !before.contains(p))
    });
}

#[test]
fn a_bad_image_ends_in_progress_deadline_exceeded() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    apply(
        &s,
        &deployment(
            "stuck",
            "registry.example.com/bad:1",
            2,
            "  progressDeadlineSeconds: 2\n",
        ),
    );
    wait_for("ProgressDeadlineExceeded", LONG, || {
        jsonpath(
            &s,
            "deploy/stuck",
            "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        ) == "ProgressDeadlineExceeded"
    });
    let o = s.kubectl(&["rollout", "status", "deploy/stuck", "--timeout=20s"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("exceeded its progress deadline"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn deletion_propagation_leaves_what_kubernetes_leaves() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    for name in ["bg", "fg", "orphan"] {
        apply(&s, &deployment(name, "nginx:1", 2, ""));
    }
    for name in ["bg", "fg", "orphan"] {
        wait_available(&s, name, 2);
    }
    // background: the deployment goes at once, then its replica set and pods
    s.ok(&["delete", "deploy/bg", "--cascade=background"]);
    wait_for("background deletion of dependents", LONG, || {
        pod_names(&s, "app=bg").is_empty()
            && stdout(&s.kubectl(&["get", "rs", "-l", "app=bg", "-o", "name"])).is_empty()
    });
    // foreground: kubectl waits until dependents are gone, then the deployment
    s.ok(&[
        "delete",
        "deploy/fg",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    assert!(pod_names(&s, "app=fg").is_empty());
    assert!(stdout(&s.kubectl(&["get", "rs", "-l", "app=fg", "-o", "name"])).is_empty());
    assert_eq!(s.kubectl(&["get", "deploy/fg"]).status.code(), Some(1));
    // orphan: replica set and pods stay, without the owner reference
    s.ok(&[
        "delete",
        "deploy/orphan",
        "--cascade=orphan",
        "--timeout=60s",
    ]);
    wait_for("orphaned replica set", LONG, || {
        let owners = stdout(&s.kubectl(&[
            "get",
            "rs",
            "-l",
            "app=orphan",
            "-o",
            "jsonpath={.items[*].metadata.ownerReferences}",
        ]));
        let rs = stdout(&s.kubectl(&["get", "rs", "-l", "app=orphan", "-o", "name"]));
        owners.is_empty() && !rs.is_empty()
    });
    assert_eq!(
        pod_names(&s, "app=orphan").len(),
        2,
        "orphaned pods keep running"
    );
}

#[test]
fn deleting_a_namespace_empties_it() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    s.ok(&["create", "namespace", "doomed"]);
    let o = s.kubectl_with(
        &["apply", "-n", "doomed", "-f", "-"],
        &[],
        Some(&deployment("app", "nginx:1", 2, "")),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    s.ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "doomed",
        "--from-literal=a=b",
    ]);
    wait_for("pods in the namespace", LONG, || {
        stdout(&s.kubectl(&["get", "pods", "-n", "doomed", "-o", "name"]))
            .lines()
            .count()
            == 2
    });
    s.ok(&["delete", "namespace", "doomed", "--timeout=60s"]);
    let o = s.kubectl(&["get", "namespace", "doomed"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    for kind in ["pods", "deployments", "replicasets", "configmaps"] {
        assert!(
            stdout(&s.kubectl(&["get", kind, "-n", "doomed", "-o", "name"])).is_empty(),
            "{kind} left behind"
        );
    }
}

#[test]
fn a_deployment_with_a_60_character_name_rolls_out() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    let file = support::root().join("fixtures/parity/deployment-long-name.yaml");
    s.ok(&["apply", "-f", &file.to_string_lossy()]);
    let name = "payments-reconciliation-worker-europe-west-primary-canary-ab";
    wait_for("the long-named deployment to be available", LONG, || {
        jsonpath(&s, &format!("deploy/{name}"), "{.status.availableReplicas}") == "1"
    });
    // its ReplicaSet's name adds the template hash: 71 characters, still a valid subdomain
    let rs = jsonpath(&s, "rs", "{.items[0].metadata.name}");
    assert!(rs.starts_with(&format!("{name}-")) && rs.len() > 63, "{rs}");
}

#[test]
fn custom_resources_go_with_their_namespace_and_their_owners() {
    let s = Server::start();
    let crd = support::root().join("fixtures/crds/shop.example.com_orders.yaml");
    s.ok(&["apply", "-f", &crd.to_string_lossy()]);
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/orders.shop.example.com",
        "--timeout=30s",
    ]);
    s.ok(&["create", "namespace", "doomed"]);
    let order = |name: &str, ns: &str| {
        format!(
            "apiVersion: shop.example.com/v1\nkind: Order\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  customer: hooli\n  replicas: 1\n  lineItems:\n  - sku: MUG-001\n    quantity: 1\n"
        )
    };
    apply(&s, &order("in-doomed", "doomed"));
    apply(&s, &order("owner", "default"));

    // a ConfigMap owned by an Order lives as long as the Order
    let uid = jsonpath(&s, "order/owner", "{.metadata.uid}");
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: invoice\n  ownerReferences:\n  - apiVersion: shop.example.com/v1\n    kind: Order\n    name: owner\n    uid: {uid}\ndata:\n  total: \"12\"\n"
    );
    apply(&s, &cm);
    // and an Order owned by a ConfigMap goes when the ConfigMap does
    let cm_uid = jsonpath(&s, "configmap/invoice", "{.metadata.uid}");
    let dependent = format!(
        "apiVersion: shop.example.com/v1\nkind: Order\nmetadata:\n  name: follow-up\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: invoice\n    uid: {cm_uid}\nspec:\n  customer: hooli\n  replicas: 1\n  lineItems:\n  - sku: MUG-001\n    quantity: 1\n"
    );
    apply(&s, &dependent);

    s.ok(&["delete", "namespace", "doomed", "--timeout=60s"]);
    assert!(
        !s.kubectl(&["get", "order", "in-doomed", "-n", "doomed"])
            .status
            .success()
    );
    assert!(
        s.kubectl(&["get", "configmap", "invoice"]).status.success(),
        "the owner still exists"
    );

    s.ok(&["delete", "order", "owner"]);
    wait_for("the owned ConfigMap to be collected", LONG, || {
        !s.kubectl(&["get", "configmap", "invoice"]).status.success()
    });
    wait_for(
        "the Order owned by the ConfigMap to be collected",
        LONG,
        || !s.kubectl(&["get", "order", "follow-up"]).status.success(),
    );
}

#[test]
fn every_namespace_has_a_default_service_account() {
    let s = Server::start();
    s.ok(&["create", "namespace", "team"]);
    let has_default = |ns: &str| {
        stdout(&s.kubectl(&["get", "serviceaccount", "default", "-n", ns, "-o", "name"])).trim()
            == "serviceaccount/default"
    };
    for ns in ["default", "kube-system", "team"] {
        wait_for("the default ServiceAccount", LONG, || has_default(ns));
    }
    // deleted, it comes back (with a new uid)
    let uid = jsonpath(&s, "serviceaccount/default", "{.metadata.uid}");
    // without waiting: kubectl's wait for a deletion can miss it when the
    // name is recreated at once
    s.ok(&["delete", "serviceaccount", "default", "--wait=false"]);
    wait_for("the default ServiceAccount to come back", LONG, || {
        has_default("default") && jsonpath(&s, "serviceaccount/default", "{.metadata.uid}") != uid
    });
}
