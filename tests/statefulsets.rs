//! The StatefulSet controller against a real `korral server` with the fake
//! kubelet and the real kubectl, on the Kubernetes docs' example
//! (`statefulsets/web.yaml`: headless Service `nginx`, StatefulSet `web`
//! with three replicas and the claim template `www`): ordered creation
//! (each pod Running and Ready before the next exists, read from the
//! order of watch events), stable names, claims and DNS hostnames, a
//! deleted pod coming back with its claim, a partitioned rolling update,
//! `kubectl rollout status|history|undo|restart`, ordered scale down,
//! garbage collection; then never-ready pods (OrderedReady makes only the
//! first, Parallel all), orphaning, and claims deleted with their set under
//! `whenDeleted: Delete`.

use crate::support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use reconcilers::runtime::watcher::Config as WatchConfig;
use reconcilers::runtime::{Change, Client, Informer};
use schemas::MetaExt;
use serde_json::Value;
use support::fake_kubelet::FakeKubelet;
use support::pod_watch::is_ready;
use support::{Server, stderr, stdout, wait_for};

const LONG: Duration = Duration::from_secs(90);
const OLD_IMAGE: &str = "registry.k8s.io/nginx-slim:0.24";
const NEW_IMAGE: &str = "registry.k8s.io/nginx-slim:0.25";

/// What happened to pods, in the order the watch delivered it:
/// `added X`, `ready X`, `deleting X`, `deleted X`.
struct PodLog {
    lines: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PodLog {
    fn start(kubeconfig: &Path) -> PodLog {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let synced = Arc::new(AtomicBool::new(false));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (kubeconfig, out, flag) = (kubeconfig.to_path_buf(), lines.clone(), synced.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let client = Client::from_kubeconfig(Some(&kubeconfig), "pod-log").expect("client");
                let informer =
                    Informer::start(client.api::<Pod>(None), WatchConfig::default(), Vec::new());
                let mut changes = informer.subscribe();
                informer.cache().wait_synced().await;
                flag.store(true, Ordering::SeqCst);
                loop {
                    tokio::select! {
                        change = changes.recv() => match change {
                            Ok(c) => {
                                let mut log = out.lock().expect("log");
                                log.extend(describe(&c));
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                            Err(e) => out.lock().expect("log").push(format!("lagged {e}")),
                        },
                        _ = &mut stopped => return,
                    }
                }
            });
        });
        wait_for("the pod log's watch", LONG, || {
            synced.load(Ordering::SeqCst)
        });
        PodLog {
            lines,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("log").clone()
    }

    /// Where `line` first is in the log.
    fn position(&self, line: &str) -> Option<usize> {
        self.lines().iter().position(|l| l == line)
    }
}

fn describe(c: &Change<Pod>) -> Vec<String> {
    match c {
        Change::Applied { old, new } => {
            let name = new.metadata.name_str();
            let mut out = Vec::new();
            if old.is_none() {
                out.push(format!("added {name}"));
            }
            if is_ready(new) && old.as_ref().is_none_or(|o| !is_ready(o)) {
                out.push(format!("ready {name}"));
            }
            if new.metadata.deletion_timestamp.is_some()
                && old
                    .as_ref()
                    .is_none_or(|o| o.metadata.deletion_timestamp.is_none())
            {
                out.push(format!("deleting {name}"));
            }
            out
        }
        Change::Deleted(p) => vec![format!("deleted {}", p.metadata.name_str())],
        Change::Resynced => vec!["resynced".into()],
    }
}

impl Drop for PodLog {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn pods(s: &Server, selector: &str) -> Vec<Value> {
    items(&s.get_json(&["pods", "-l", selector]))
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn label<'a>(p: &'a Value, key: &str) -> &'a str {
    p["metadata"]["labels"][key].as_str().unwrap_or("")
}

fn image(p: &Value) -> &str {
    p["spec"]["containers"][0]["image"].as_str().unwrap_or("")
}

/// The pod `name`, if it exists.
fn pod(s: &Server, name: &str) -> Option<Value> {
    let v = s.get_json(&["pod", name]);
    v["metadata"]["name"].is_string().then_some(v)
}

/// Sets web's RollingUpdate partition with `kubectl patch`.
fn set_partition(s: &Server, partition: i32) {
    let patch = format!(
        r#"{{"spec":{{"updateStrategy":{{"type":"RollingUpdate","rollingUpdate":{{"partition":{partition}}}}}}}}}"#
    );
    s.ok(&["patch", "sts", "web", "-p", &patch]);
}

/// The revision numbers `kubectl rollout history` lists.
fn history(s: &Server, target: &str) -> Vec<i64> {
    s.ok(&["rollout", "history", target])
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn rollout_status(s: &Server, target: &str) -> String {
    let o = s.kubectl(&["rollout", "status", target, "--timeout=90s"]);
    assert!(
        o.status.success(),
        "rollout status {target}: {}{}\n{}",
        stdout(&o),
        stderr(&o),
        s.get_json(&["sts"])
    );
    stdout(&o)
}

/// Waits until the set's three pods are ready at its update revision and
/// its status says the rollout is done; returns that revision.
fn wait_rolled_out(s: &Server, set: &str, replicas: usize) -> String {
    let mut revision = String::new();
    wait_for(&format!("{set} to roll out"), LONG, || {
        let sts = s.get_json(&["sts", set]);
        let update = sts["status"]["updateRevision"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let pods = pods(s, "app=nginx");
        let done = pods.len() == replicas
            && pods
                .iter()
                .all(|p| ready(p) && label(p, "controller-revision-hash") == update)
            && sts["status"]["currentRevision"] == update.as_str()
            && sts["status"]["readyReplicas"] == replicas;
        revision = update;
        done
    });
    revision
}

#[test]
fn ordered_pods_keep_their_names_and_claims_through_updates_rollbacks_and_scaling() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    let log = PodLog::start(&s.kubeconfig);
    let manifest = support::root().join("tests/statefulsets/web.yaml");
    s.ok(&["apply", "-f", &manifest.to_string_lossy()]);

    // OrderedReady: each ordinal is Running and Ready before the next exists
    let first = wait_rolled_out(&s, "web", 3);
    let order = log.lines();
    for (before, after) in [
        ("ready web-0", "added web-1"),
        ("ready web-1", "added web-2"),
    ] {
        let (b, a) = (log.position(before), log.position(after));
        assert!(
            matches!((b, a), (Some(b), Some(a)) if b < a),
            "{before} should come before {after}: {order:?}"
        );
    }
    let sts = s.get_json(&["sts", "web"]);
    assert_eq!(sts["status"]["replicas"], 3, "{sts}");
    assert_eq!(sts["status"]["availableReplicas"], 3, "{sts}");
    assert_eq!(sts["status"]["updatedReplicas"], 3, "{sts}");
    assert_eq!(sts["status"]["currentReplicas"], 3, "{sts}");
    assert_eq!(sts["status"]["collisionCount"], 0, "{sts}");
    assert_eq!(
        sts["status"]["observedGeneration"],
        sts["metadata"]["generation"]
    );
    for i in 0..3 {
        let name = format!("web-{i}");
        let p = pod(&s, &name).expect("pod");
        assert_eq!(label(&p, "statefulset.kubernetes.io/pod-name"), name);
        assert_eq!(label(&p, "apps.kubernetes.io/pod-index"), i.to_string());
        assert_eq!(p["spec"]["hostname"], name.as_str());
        assert_eq!(p["spec"]["subdomain"], "nginx");
        let volume = p["spec"]["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == "www"))
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(
            volume["persistentVolumeClaim"]["claimName"],
            format!("www-{name}"),
            "{p}"
        );
        let claim = s.get_json(&["pvc", &format!("www-{name}")]);
        assert_eq!(claim["metadata"]["labels"]["app"], "nginx", "{claim}");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    }
    // the headless Service's Endpoints carry the hostnames the cluster DNS answers
    wait_for("the nginx Endpoints to name web-0..2", LONG, || {
        let ep = s.get_json(&["endpoints", "nginx"]);
        let mut hosts: Vec<String> = ep["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["hostname"].as_str().map(str::to_string))
            .collect();
        hosts.sort();
        hosts == ["web-0", "web-1", "web-2"]
    });
    let revs = items(&s.get_json(&["controllerrevisions"]));
    assert_eq!(revs.len(), 1, "{revs:?}");
    assert_eq!(revs[0]["metadata"]["name"], first.as_str());
    assert_eq!(revs[0]["revision"], 1);
    assert_eq!(revs[0]["data"]["spec"]["template"]["$patch"], "replace");

    // a deleted pod comes back with its name and its claim
    let old = pod(&s, "web-1").expect("web-1");
    let claim_uid = s.get_json(&["pvc", "www-web-1"])["metadata"]["uid"].clone();
    s.ok(&["delete", "pod", "web-1", "--wait=false"]);
    wait_for("web-1 to come back", LONG, || {
        pod(&s, "web-1").is_some_and(|p| {
            p["metadata"]["uid"] != old["metadata"]["uid"]
                && ready(&p)
                && p["metadata"]["deletionTimestamp"].is_null()
        })
    });
    let again = pod(&s, "web-1").expect("web-1");
    assert_eq!(
        s.get_json(&["pvc", "www-web-1"])["metadata"]["uid"],
        claim_uid,
        "the same claim"
    );
    assert_eq!(
        again["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "www-web-1"
    );

    // a partitioned update: only ordinals >= 2 move to the new template
    set_partition(&s, 2);
    s.ok(&[
            "patch",
            "sts",
            "web",
            "--type=json",
            "-p",
            &format!(
                r#"[{{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"{NEW_IMAGE}"}}]"#
            ),
        ],
    );
    let mut second = String::new();
    wait_for("web-2 at the new revision", LONG, || {
        let sts = s.get_json(&["sts", "web"]);
        second = sts["status"]["updateRevision"]
            .as_str()
            .unwrap_or("")
            .to_string();
        second != first
            && sts["status"]["updatedReplicas"] == 1
            && pod(&s, "web-2").is_some_and(|p| {
                ready(&p)
                    && label(&p, "controller-revision-hash") == second
                    && image(&p) == NEW_IMAGE
            })
    });
    let out = rollout_status(&s, "sts/web");
    assert!(
        out.contains("partitioned roll out complete: 1 new pods have been updated"),
        "{out}"
    );
    for name in ["web-0", "web-1"] {
        let p = pod(&s, name).expect("pod");
        assert_eq!(
            label(&p, "controller-revision-hash"),
            first,
            "{name} kept the old revision"
        );
        assert_eq!(image(&p), OLD_IMAGE);
    }
    let sts = s.get_json(&["sts", "web"]);
    assert_eq!(sts["status"]["currentRevision"], first.as_str(), "{sts}");
    assert_eq!(sts["status"]["currentReplicas"], 2, "{sts}");

    // the rest of the rollout, then history and undo
    set_partition(&s, 0);
    let out = rollout_status(&s, "sts/web");
    assert!(
        out.contains("partitioned roll out complete: 3 new pods"),
        "{out}"
    );
    assert_eq!(wait_rolled_out(&s, "web", 3), second);
    assert_eq!(history(&s, "sts/web"), vec![1, 2]);
    let detail = s.ok(&["rollout", "history", "sts/web", "--revision=1"]);
    assert!(detail.contains(OLD_IMAGE), "{detail}");
    s.ok(&["rollout", "undo", "sts/web"]);
    let sts = s.get_json(&["sts", "web"]);
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"], OLD_IMAGE,
        "undo puts the previous template back: {sts}"
    );
    rollout_status(&s, "sts/web");
    assert_eq!(
        wait_rolled_out(&s, "web", 3),
        first,
        "the first revision is the update revision again"
    );
    assert_eq!(
        history(&s, "sts/web"),
        vec![2, 3],
        "revision 1 renumbered to 3"
    );
    for p in pods(&s, "app=nginx") {
        assert_eq!(image(&p), OLD_IMAGE);
    }

    // restart: a new revision with the restartedAt annotation, every pod replaced
    let before: Vec<Value> = pods(&s, "app=nginx")
        .iter()
        .map(|p| p["metadata"]["uid"].clone())
        .collect();
    s.ok(&["rollout", "restart", "sts/web"]);
    rollout_status(&s, "sts/web");
    let third = wait_rolled_out(&s, "web", 3);
    assert!(third != first && third != second, "{third}");
    for p in pods(&s, "app=nginx") {
        assert!(
            !before.contains(&p["metadata"]["uid"]),
            "{p} was not replaced"
        );
        assert!(p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string());
    }
    assert_eq!(history(&s, "sts/web"), vec![2, 3, 4]);

    // scale down: the highest ordinal goes first, and web-1 waits while web-2
    // terminates (a finalizer holds it)
    s.ok(&[
        "patch",
        "pod",
        "web-2",
        "-p",
        r#"{"metadata":{"finalizers":["korral.dev/test-hold"]}}"#,
    ]);
    let mark = log.lines().len();
    s.ok(&["scale", "sts", "web", "--replicas=1"]);
    wait_for(
        "web-2 terminating and no longer current in the status",
        LONG,
        || {
            let sts = s.get_json(&["sts", "web"]);
            sts["status"]["currentReplicas"] == 2
                && pod(&s, "web-2").is_some_and(|p| p["metadata"]["deletionTimestamp"].is_string())
        },
    );
    let web1 = pod(&s, "web-1").expect("web-1 stays while web-2 terminates");
    assert!(web1["metadata"]["deletionTimestamp"].is_null(), "{web1}");
    s.ok(&[
        "patch",
        "pod",
        "web-2",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    wait_for("web to scale down to one pod", LONG, || {
        pods(&s, "app=nginx").len() == 1 && pod(&s, "web-0").is_some()
    });
    let after: Vec<String> = log.lines().split_off(mark);
    let gone2 = after.iter().position(|l| l == "deleted web-2");
    let going1 = after
        .iter()
        .position(|l| l == "deleting web-1" || l == "deleted web-1");
    assert!(
        matches!((gone2, going1), (Some(a), Some(b)) if a < b),
        "web-2 must be gone before web-1 is deleted: {after:?}"
    );
    wait_for("the status to count one replica", LONG, || {
        let sts = s.get_json(&["sts", "web"]);
        sts["status"]["replicas"] == 1 && sts["status"]["readyReplicas"] == 1
    });
    // claims are retained by default (whenScaled: Retain)
    for i in 0..3 {
        assert!(s.get_json(&["pvc", &format!("www-web-{i}")])["metadata"]["uid"].is_string());
    }

    // deleting the set: its pods and revisions go by garbage collection, claims stay
    s.ok(&["delete", "sts", "web", "--wait=false"]);
    wait_for("web's pods and revisions to be collected", LONG, || {
        pods(&s, "app=nginx").is_empty() && items(&s.get_json(&["controllerrevisions"])).is_empty()
    });
    assert_eq!(items(&s.get_json(&["pvc"])).len(), 3);
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
    ]);
    assert!(
        events.contains("create Pod web-0 in StatefulSet web successful"),
        "{events}"
    );
    assert!(
        events.contains("create Claim www-web-0 Pod web-0 in StatefulSet web success"),
        "{events}"
    );
    assert!(
        events.contains("delete Pod web-2 in StatefulSet web successful"),
        "{events}"
    );
}

fn parallel_set(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: {name}\nspec:\n  serviceName: {name}\n  replicas: 3\n  podManagementPolicy: Parallel\n{extra}  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: main\n        image: bad-never-ready\n  volumeClaimTemplates:\n  - metadata:\n      name: data\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources:\n        requests:\n          storage: 1Gi\n"
    )
}

#[test]
fn parallel_pods_orphaning_and_claims_deleted_with_their_set() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    // the fake kubelet never readies "bad" images: Parallel creates all three anyway
    s.apply(&format!(
        "{}---\n{}",
        parallel_set(
            "db",
            "  persistentVolumeClaimRetentionPolicy:\n    whenDeleted: Delete\n    whenScaled: Retain\n"
        ),
        parallel_set("cache", "")
    ));
    // the same never-ready pods under OrderedReady: once the status counts
    // ordered-0 (written after the sync that saw it), nothing else was created
    s.apply(&parallel_set("ordered", "").replace("  podManagementPolicy: Parallel\n", ""));
    wait_for(
        "the ordered set's status to count its first pod",
        LONG,
        || {
            s.get_json(&["sts", "ordered"])["status"]["replicas"]
                .as_i64()
                .is_some_and(|n| n >= 1)
        },
    );
    let names: Vec<String> = pods(&s, "app=ordered")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        names,
        ["ordered-0"],
        "OrderedReady waits for ordered-0 to be ready"
    );
    for set in ["db", "cache"] {
        wait_for(&format!("{set}'s three pods"), LONG, || {
            pods(&s, &format!("app={set}")).len() == 3
        });
        assert!(pods(&s, &format!("app={set}")).iter().all(|p| !ready(p)));
    }
    // whenDeleted: Delete — the set owns its claims
    wait_for("db's claims owned by db", LONG, || {
        (0..3).all(|i| {
            let c = s.get_json(&["pvc", &format!("data-db-{i}")]);
            c["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
                && c["metadata"]["ownerReferences"][0]["name"] == "db"
        })
    });
    let c = s.get_json(&["pvc", "data-cache-0"]);
    assert!(c["metadata"]["ownerReferences"].is_null(), "Retain: {c}");

    s.ok(&["delete", "sts", "cache", "--cascade=orphan"]);
    wait_for("cache's pods orphaned", LONG, || {
        let pods = pods(&s, "app=cache");
        pods.len() == 3
            && pods
                .iter()
                .all(|p| p["metadata"]["ownerReferences"].is_null())
    });
    s.ok(&["delete", "sts", "db", "--wait=false"]);
    wait_for("db's pods and claims collected", LONG, || {
        pods(&s, "app=db").is_empty()
            && items(&s.get_json(&["pvc"])).iter().all(|c| {
                !c["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("data-db-")
            })
    });
    assert_eq!(pods(&s, "app=cache").len(), 3, "orphans stay");
    let cache_claims = items(&s.get_json(&["pvc"]))
        .iter()
        .filter(|c| {
            c["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .starts_with("data-cache-")
        })
        .count();
    assert_eq!(cache_claims, 3, "cache's claims stay");
}
