//! Regression tests of the count-once invariant (see `State::expected_removals`):
//! the Job's reconcile runs against a pod cache that lags behind the Job's
//! status and catches up in the middle of the sync, as it does under load.
//! The API server is a stub on loopback answering the few calls a sync makes
//! and recording the Job statuses written.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use super::{State, TRACKING_FINALIZER, reconcile};
use crate::controllers::Context;
use crate::controllers::expectations::Expectations;
use crate::controllers::informers::Informers;
use crate::controllers::options::ControllerOptions;
use crate::controllers::recorder::Recorder;
use crate::runtime::cache::{Writer, new_cache};
use crate::runtime::kubeconfig::KubeConfig;
use crate::runtime::{Client, ControllerMetrics, ObjectRef};

/// What the stub does when a pod is patched (the adoption patch is the
/// await in the sync where the pod cache moves on).
type OnPatch = Box<dyn Fn(&str) + Send + Sync>;

struct Stub {
    /// The Job statuses written, in order.
    statuses: Mutex<Vec<Value>>,
    /// The pods patched, by name.
    patched: Mutex<Vec<String>>,
    on_patch: OnPatch,
    /// The pods the stub answers patches with, by name.
    pods: HashMap<String, Value>,
}

async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, String, Vec<u8>)> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut words = head.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < end + len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[end..end + len].to_vec();
    buf.drain(..end + len);
    Some((method, path, body))
}

fn answer(stub: &Stub, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let sent: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let path = path.split('?').next().unwrap_or(path);
    if method == "PUT" && path.ends_with("/status") {
        let mut job = sent.clone();
        let rv: u64 = job["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        job["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
        if let Ok(mut s) = stub.statuses.lock() {
            s.push(sent);
        }
        return (200, job);
    }
    if method == "PATCH" && path.contains("/pods/") {
        let name = path.rsplit('/').next().unwrap_or("").to_string();
        (stub.on_patch)(&name);
        if let Ok(mut p) = stub.patched.lock() {
            p.push(name.clone());
        }
        if let Some(pod) = stub.pods.get(&name) {
            return (200, pod.clone());
        }
    }
    if method == "POST" {
        return (201, sent);
    }
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404}),
    )
}

async fn serve(stub: Arc<Stub>, listener: TcpListener) {
    while let Ok((mut s, _)) = listener.accept().await {
        let stub = stub.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some((method, path, body)) = read_request(&mut s, &mut buf).await {
                let (code, value) = answer(&stub, &method, &path, &body);
                let text = value.to_string();
                let head = format!(
                    "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    text.len()
                );
                if s.write_all(head.as_bytes()).await.is_err()
                    || s.write_all(text.as_bytes()).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

fn pod(v: Value) -> Pod {
    serde_json::from_value(v).expect("pod")
}

/// Job `j` (uid `ju`) owns `p`, counted in an earlier sync whose finalizer
/// removal was sent and succeeded; the pod cache still shows `p` with the
/// finalizer, and moves on to show it without while the sync is under way
/// (during the adoption of the orphan `q`, which keeps the Job active).
/// Returns the statuses the sync wrote.
async fn sync_with_lagging_cache(job: Value, p_phase: &str, indexed: bool) -> Vec<Value> {
    let ns = "ns";
    let labels = json!({"app": "j"});
    let index = |ix: &str| {
        if indexed {
            json!({super::COMPLETION_INDEX: ix})
        } else {
            json!({})
        }
    };
    let owner = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "ju",
        "controller": true, "blockOwnerDeletion": true}]);
    let terminated = json!({"terminated": {"exitCode": if p_phase == "Failed" { 1 } else { 0 },
        "finishedAt": "2026-01-01T00:00:00Z"}});
    let p_stale = json!({"metadata": {"name": "p", "namespace": ns, "uid": "p",
            "labels": labels, "annotations": index("0"), "ownerReferences": owner,
            "finalizers": [TRACKING_FINALIZER], "resourceVersion": "5"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": p_phase, "containerStatuses": [{"name": "c", "image": "x",
            "imageID": "", "ready": false, "restartCount": 0, "state": terminated}]}});
    let mut p_released = p_stale.clone();
    p_released["metadata"]["finalizers"] = json!([]);
    p_released["metadata"]["resourceVersion"] = json!("6");
    let q_orphan = json!({"metadata": {"name": "q", "namespace": ns, "uid": "q",
            "labels": labels, "annotations": index("1"), "resourceVersion": "7"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running"}});
    let mut q_adopted = q_orphan.clone();
    q_adopted["metadata"]["ownerReferences"] = owner;
    q_adopted["metadata"]["finalizers"] = json!([TRACKING_FINALIZER]);

    let (pods, pod_writer) = new_cache::<Pod>(Vec::new());
    let (jobs, mut job_writer) = new_cache::<Job>(Vec::new());
    let job: Job = serde_json::from_value(job).expect("job");
    job_writer.restart(vec![job]);
    let pod_writer: Arc<Mutex<Writer<Pod>>> = Arc::new(Mutex::new(pod_writer));
    if let Ok(mut w) = pod_writer.lock() {
        w.restart(vec![pod(p_stale), pod(q_orphan)]);
    }

    let catch_up = pod_writer.clone();
    let stub = Arc::new(Stub {
        statuses: Mutex::new(Vec::new()),
        patched: Mutex::new(Vec::new()),
        on_patch: Box::new(move |name| {
            if name == "q"
                && let Ok(mut w) = catch_up.lock()
            {
                w.put(Arc::new(pod(p_released.clone())));
            }
        }),
        pods: HashMap::from([("q".to_string(), q_adopted)]),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(stub.clone(), listener));

    let kc = KubeConfig {
        server: format!("http://{addr}"),
        ca_pem: None,
        insecure: false,
        token: None,
        identity_pem: None,
        namespace: ns.into(),
    };
    let client = Client::new(&kc, "job-test").expect("client");
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let ctx = Context {
        client: client.clone(),
        informers: Informers::new(client.clone()),
        metrics: ControllerMetrics::new(),
        shutdown,
        options: Arc::new(ControllerOptions::default()),
    };
    let key = ObjectRef::new(Some(ns), "j");
    let state = Arc::new(State {
        recorder: Recorder::new(client, "job-test", "job-test"),
        ctx,
        jobs,
        pods,
        expectations: Expectations::default(),
        // the earlier sync's removal of p's finalizer, not yet observed
        finalizer_removals: Mutex::new(HashMap::from([(
            key.clone(),
            HashSet::from(["p".to_string()]),
        )])),
        backoff: Mutex::new(HashMap::new()),
        written: Mutex::new(HashMap::new()),
    });
    reconcile(state, key).await.expect("reconcile");
    let patched = stub.patched.lock().map(|p| p.clone()).unwrap_or_default();
    assert!(
        patched.contains(&"q".to_string()),
        "the orphan was adopted (the await where the cache moved on): {patched:?}"
    );
    stub.statuses.lock().map(|s| s.clone()).unwrap_or_default()
}

fn job(spec: Value, status: Value) -> Value {
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"app": "j"}});
    spec["template"] = json!({"metadata": {"labels": {"app": "j"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}});
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "j", "namespace": "ns", "uid": "ju", "resourceVersion": "10"},
        "spec": spec, "status": status})
}

fn uncounted(s: &Value, which: &str) -> Vec<String> {
    s["status"]["uncountedTerminatedPods"][which]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_counted_success_is_not_counted_again_from_a_lagging_cache() {
    let statuses = sync_with_lagging_cache(
        job(
            json!({"completions": 3, "parallelism": 1}),
            json!({"succeeded": 1, "startTime": "2026-01-01T00:00:00Z"}),
        ),
        "Succeeded",
        false,
    )
    .await;
    assert!(!statuses.is_empty(), "the sync wrote the active count");
    for s in &statuses {
        assert!(uncounted(s, "succeeded").is_empty(), "p counted again: {s}");
        assert_eq!(s["status"]["succeeded"], json!(1), "{s}");
    }
}

#[tokio::test]
async fn a_counted_failure_is_not_counted_again_from_a_lagging_cache() {
    let statuses = sync_with_lagging_cache(
        job(
            json!({"completions": 3, "parallelism": 1, "backoffLimit": 6}),
            json!({"failed": 1, "startTime": "2026-01-01T00:00:00Z"}),
        ),
        "Failed",
        false,
    )
    .await;
    assert!(!statuses.is_empty(), "the sync wrote the active count");
    for s in &statuses {
        assert!(uncounted(s, "failed").is_empty(), "p counted again: {s}");
        assert_eq!(s["status"]["failed"], json!(1), "{s}");
    }
}

#[tokio::test]
async fn a_completed_index_is_counted_once_from_a_lagging_cache() {
    let statuses = sync_with_lagging_cache(
        job(
            json!({"completions": 3, "parallelism": 1, "completionMode": "Indexed"}),
            json!({"succeeded": 1, "completedIndexes": "0",
                "startTime": "2026-01-01T00:00:00Z"}),
        ),
        "Succeeded",
        true,
    )
    .await;
    assert!(!statuses.is_empty(), "the sync wrote the active count");
    for s in &statuses {
        assert_eq!(s["status"]["succeeded"], json!(1), "{s}");
        assert_eq!(s["status"]["completedIndexes"], json!("0"), "{s}");
    }
}
