//! Benchmark of the Job and DaemonSet controllers end to end on this machine
//! (issue 16): a `korral server` and a separate `korral controllers` process
//! (the controller under test and the scheduler); nodes are simulated as
//! Node objects (as in `scheduler_api`), and this process is their kubelet —
//! a pod watch that writes one status per bound pod: a Job's pods end
//! Succeeded (exit code 0), a DaemonSet's run Ready.
//!
//! - Job: 10,000 completions, parallelism 100, on 100 nodes: the time from
//!   the create to `Complete`, completions per second.
//! - DaemonSet over 5,000 nodes: the time to all pods created, bound, and
//!   counted ready in the DaemonSet's status.
//!
//! Peers in the same run, on the same server once the controllers are
//! stopped: raw pod creates by 16 plain clients, and the writes each pod of
//! the scenario took (create, binding, status, and for a Job the finalizer
//! removal) by 16 plain clients, no controller in the loop — the ceiling the
//! pipeline could reach on this server.
//!
//! `cargo bench --bench workloads` (`-- --only job|daemonset`,
//! `--completions N`, `--parallelism N`, `--job-nodes N`, `--nodes N` for
//! the DaemonSet).

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use reconcilers::runtime::{Api, Client, ListParams, Patch, WatchEvent, WriteParams};
use schemas::{MetaExt, TimeExt};
use serde_json::{Value, json};

const CLIENTS: usize = 16;
/// At most this many status writes of the fake kubelet in flight.
const KUBELET_WRITES: usize = 64;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn node(i: usize) -> Node {
    let name = format!("sim-{i}");
    let capacity = json!({"pods": "250", "cpu": "64", "memory": "256Gi"});
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"podCIDR": format!("100.{}.{}.0/24", 64 + i / 256, i % 256)},
        "status": {"capacity": capacity, "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "lastHeartbeatTime": schemas::time::now()}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}
    }))
    .expect("node")
}

/// Creates `n` objects from `make` with CLIENTS concurrent clients.
async fn create_all<K: schemas::Object + 'static>(
    api: Api<K>,
    n: usize,
    make: fn(usize) -> K,
) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CLIENTS {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(CLIENTS) {
                api.create(&make(i), &WriteParams::default())
                    .await
                    .expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("create task");
    }
    start.elapsed()
}

/// The status a kubelet writes for a pod that ran to success or runs ready.
fn pod_status(finish: bool, pod_ip: &str) -> Value {
    let now = schemas::time::now().text();
    if finish {
        json!({"status": {"phase": "Succeeded", "startTime": now, "podIP": pod_ip,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now}],
            "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0, "image": "busybox",
                "imageID": "", "started": false, "state": {"terminated": {"exitCode": 0,
                "reason": "Completed", "startedAt": now, "finishedAt": now}}}]}})
    } else {
        json!({"status": {"phase": "Running", "startTime": now, "podIP": pod_ip,
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "busybox",
                "imageID": "", "started": true, "state": {"running": {"startedAt": now}}}]}})
    }
}

fn pod_ip(i: usize) -> String {
    format!("10.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256)
}

/// What the fake kubelet saw.
#[derive(Default)]
struct Seen {
    /// Pods created (watch ADDED events).
    created: AtomicUsize,
    /// Bound pods given their status.
    tended: AtomicUsize,
    /// When `created` and `tended` reached the target.
    all_created: Mutex<Option<Instant>>,
    all_tended: Mutex<Option<Instant>>,
}

fn mark(at: &Mutex<Option<Instant>>) {
    if let Ok(mut t) = at.lock() {
        t.get_or_insert_with(Instant::now);
    }
}

fn when(at: &Mutex<Option<Instant>>) -> Option<Instant> {
    at.lock().ok().and_then(|t| *t)
}

/// The fake kubelet of every simulated node: watches the pods of `ns` from
/// now on and writes one status for each pod once it is bound (Succeeded
/// when `finish`, else Running and Ready). Counts towards `target` pods.
async fn start_kubelet(
    client: Client,
    ns: &'static str,
    finish: bool,
    target: usize,
) -> (Arc<Seen>, tokio::task::JoinHandle<()>) {
    let api = client.api::<Pod>(Some(ns));
    let mut rv = api
        .list(&ListParams {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .expect("list pods")
        .resource_version;
    let seen = Arc::new(Seen::default());
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let permits = Arc::new(tokio::sync::Semaphore::new(KUBELET_WRITES));
        let mut tended: HashSet<String> = HashSet::new();
        loop {
            let stream = match api
                .watch(&ListParams::default(), &rv, Duration::from_secs(330))
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("fake kubelet: watch failed ({e}); watching again");
                    // a pause before watching again, not synchronisation
                    tokio::time::sleep(common::POLL).await;
                    continue;
                }
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                let p = match ev {
                    Ok(WatchEvent::Added(p)) => {
                        if seen.created.fetch_add(1, Ordering::Relaxed) + 1 == target {
                            mark(&seen.all_created);
                        }
                        p
                    }
                    Ok(WatchEvent::Modified(p) | WatchEvent::Deleted(p)) => p,
                    Ok(WatchEvent::Bookmark(r)) => {
                        rv = r;
                        continue;
                    }
                    Ok(WatchEvent::Error(s)) => panic!("fake kubelet: watch error {s:?}"),
                    Err(e) => {
                        eprintln!("fake kubelet: watch ended ({e}); watching again");
                        break;
                    }
                };
                if let Some(r) = &p.metadata.resource_version {
                    rv.clone_from(r);
                }
                let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                if !bound
                    || p.metadata.deletion_timestamp.is_some()
                    || matches!(phase, Some("Succeeded" | "Failed"))
                    || !tended.insert(p.metadata.uid_str().to_string())
                {
                    continue;
                }
                let n = tended.len();
                let (api, seen, permit) = (
                    api.clone(),
                    seen.clone(),
                    permits.clone().acquire_owned().await,
                );
                let name = p.metadata.name_str().to_string();
                tokio::spawn(async move {
                    let _permit = permit;
                    let patch = Patch::Merge(pod_status(finish, &pod_ip(n)));
                    if let Err(e) = api
                        .patch_status(&name, &patch, &WriteParams::default())
                        .await
                    {
                        eprintln!("fake kubelet: status of {name}: {e}");
                    }
                    if seen.tended.fetch_add(1, Ordering::Relaxed) + 1 == target {
                        mark(&seen.all_tended);
                    }
                });
            }
        }
    });
    (out, task)
}

/// `n` pods in namespace `ns` taken through the writes the scenario made
/// for each, by CLIENTS plain clients: create (with the Job's tracking
/// finalizer when `finish`), binding to a node, status, and for a Job the
/// finalizer's removal. Returns the time taken.
async fn plain_lifecycle(
    client: &Client,
    ns: &str,
    n: usize,
    nodes: usize,
    finish: bool,
) -> Duration {
    common::create_namespace(client, ns).await;
    let api = client.api::<Pod>(Some(ns));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CLIENTS {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(CLIENTS) {
                let name = format!("plain-{i:05}");
                let finalizers: Vec<&str> = if finish {
                    vec!["batch.kubernetes.io/job-tracking"]
                } else {
                    Vec::new()
                };
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"app": "plain"}, "finalizers": finalizers},
                    "spec": {"restartPolicy": if finish { "Never" } else { "Always" },
                        "containers": [{"name": "c", "image": "busybox",
                            "resources": {"requests": {"cpu": "10m"}}}]}
                }))
                .expect("pod");
                api.create(&pod, &WriteParams::default())
                    .await
                    .expect("create pod");
                let binding = json!({"apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": name},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": format!("sim-{}", i % nodes)}});
                api.create_subresource(&name, "binding", &binding)
                    .await
                    .expect("bind pod");
                api.patch_status(
                    &name,
                    &Patch::Merge(pod_status(finish, &pod_ip(i))),
                    &WriteParams::default(),
                )
                .await
                .expect("pod status");
                if finish {
                    api.patch(
                        &name,
                        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                        &WriteParams::default(),
                    )
                    .await
                    .expect("remove finalizer");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    start.elapsed()
}

fn row(what: &str, value: String) {
    println!("  {what:<60} {value:>14}");
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

async fn start(dir: &Path, controllers: &str) -> (Child, Client, Child) {
    let (server, client) = common::start_server(dir, &dir.join("server.log"), &[]).await;
    let (ctl, _) =
        common::start_controllers(&client, dir, controllers, &dir.join("controllers.log")).await;
    (server, client, ctl)
}

async fn job_scenario(completions: usize, parallelism: usize, nodes: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, client, controllers) = start(dir.path(), "job,scheduler").await;
    create_all(client.api::<Node>(None), nodes, node).await;
    let rss_idle = common::rss_kib(controllers.id());
    let (seen, kubelet) = start_kubelet(client.clone(), "default", true, completions).await;
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bench"},
        "spec": {"completions": completions, "parallelism": parallelism,
            "template": {"metadata": {"labels": {"app": "bench"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "10m"}}}]}}}
    }))
    .expect("job");
    let jobs = client.api::<Job>(Some("default"));
    eprintln!("job: {completions} completions, parallelism {parallelism}, {nodes} nodes…");
    let t0 = Instant::now();
    jobs.create(&job, &WriteParams::default())
        .await
        .expect("create job");
    let peak = common::peak_rss_until(
        "the Job to complete",
        &controllers,
        Duration::from_secs(1800),
        || {
            let jobs = jobs.clone();
            async move {
                jobs.get("bench").await.ok().is_some_and(|j| {
                    j.status.and_then(|s| s.conditions).is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Complete" && c.status == "True")
                    })
                })
            }
        },
    )
    .await;
    let complete = t0.elapsed();
    let done = jobs.get("bench").await.expect("job");
    let succeeded = done.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
    assert_eq!(
        usize::try_from(succeeded).unwrap_or(0),
        completions,
        "succeeded pods"
    );
    let created = when(&seen.all_created).map(|t| t - t0);
    // every pod the Job ever made, as the watch saw them created
    let made = seen.created.load(Ordering::Relaxed);
    // the pods that really ran to success (finished pods stay once released)
    let ran = client
        .api::<Pod>(Some("default"))
        .list_all(&ListParams {
            label_selector: Some("batch.kubernetes.io/job-name=bench".into()),
            ..Default::default()
        })
        .await
        .expect("list the Job's pods")
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
        .count();
    kubelet.abort();
    stop(controllers);
    let peers = completions.min(5000);
    let raw = common::direct_creates(&client, "direct", peers).await;
    let plain = plain_lifecycle(&client, "plain", peers, nodes, true).await;
    stop(server);

    let rate = completions as f64 / complete.as_secs_f64();
    let raw_rate = peers as f64 / raw.as_secs_f64();
    let plain_rate = peers as f64 / plain.as_secs_f64();
    println!(
        "Job: {completions} completions, parallelism {parallelism}, {nodes} simulated nodes (job + scheduler controllers)"
    );
    row("time from the create to Complete", secs(complete));
    row(
        "time to the last pod created",
        created.map_or_else(|| "-".into(), secs),
    );
    row("completions per second", format!("{rate:.0}"));
    // status.succeeded should equal the pods made; more means pods counted twice
    row(
        "pods made (watch) / Succeeded (list) / status.succeeded",
        format!("{made} / {ran} / {succeeded}"),
    );
    peer_rows(
        Rates {
            what: "completions/s",
            rate,
            raw_rate,
            writes: "create+bind+status+unfinalize",
            plain_rate,
        },
        rss_idle,
        peak,
    );
    // each pod is counted exactly once (the regression of issue 16)
    assert_eq!(
        i32::try_from(ran).unwrap_or(i32::MAX),
        succeeded,
        "status.succeeded against the pods that ran to success"
    );
}

/// A scenario's rate next to its peers.
struct Rates {
    what: &'static str,
    rate: f64,
    raw_rate: f64,
    writes: &'static str,
    plain_rate: f64,
}

/// The peer rows, the ratios and the controller process's memory.
fn peer_rows(r: Rates, rss_idle: u64, peak: u64) {
    row(
        &format!("peer: raw pod creates, {CLIENTS} plain clients"),
        format!("{:.0}/s", r.raw_rate),
    );
    row(
        &format!("peer: {} per pod, plain clients", r.writes),
        format!("{:.0} pods/s", r.plain_rate),
    );
    row(
        &format!("{} ÷ raw creates/s", r.what),
        format!("{:.2}x", r.rate / r.raw_rate),
    );
    row(
        &format!("{} ÷ the same writes by plain clients", r.what),
        format!("{:.2}x", r.rate / r.plain_rate),
    );
    row(
        "controller process RSS, idle → peak",
        format!("{} → {} MiB", rss_idle / 1024, peak / 1024),
    );
}

async fn daemonset_scenario(nodes: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, client, controllers) = start(dir.path(), "daemonset,scheduler").await;
    eprintln!("daemonset: {nodes} nodes…");
    let node_time = create_all(client.api::<Node>(None), nodes, node).await;
    let rss_idle = common::rss_kib(controllers.id());
    let (seen, kubelet) = start_kubelet(client.clone(), "default", false, nodes).await;
    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "10m"}}}]}}}
    }))
    .expect("daemonset");
    let api = client.api::<DaemonSet>(Some("default"));
    let t0 = Instant::now();
    api.create(&ds, &WriteParams::default())
        .await
        .expect("create daemonset");
    let want = i32::try_from(nodes).unwrap_or(i32::MAX);
    let peak = common::peak_rss_until(
        "the DaemonSet to count every pod ready",
        &controllers,
        Duration::from_secs(1800),
        || {
            let api = api.clone();
            async move {
                api.get("agent")
                    .await
                    .ok()
                    .and_then(|d| d.status)
                    .is_some_and(|s| s.desired_number_scheduled == want && s.number_ready == want)
            }
        },
    )
    .await;
    let ready = t0.elapsed();
    let created = when(&seen.all_created).map(|t| t - t0);
    let bound = when(&seen.all_tended).map(|t| t - t0);
    kubelet.abort();
    stop(controllers);
    let raw = common::direct_creates(&client, "direct", nodes).await;
    let plain = plain_lifecycle(&client, "plain", nodes, nodes, false).await;
    stop(server);

    let rate = nodes as f64 / ready.as_secs_f64();
    let raw_rate = nodes as f64 / raw.as_secs_f64();
    let plain_rate = nodes as f64 / plain.as_secs_f64();
    println!("DaemonSet: {nodes} simulated nodes (daemonset + scheduler controllers)");
    row(
        &format!("{nodes} Node objects created, {CLIENTS} clients"),
        secs(node_time),
    );
    let opt = |d: Option<Duration>| d.map_or_else(|| "-".into(), secs);
    row("time to all pods created", opt(created));
    row("time to all pods bound and given a status", opt(bound));
    row("time to status.numberReady = every node", secs(ready));
    row("pods ready per second", format!("{rate:.0}"));
    if let Some(c) = created {
        row(
            "pods created per second",
            format!("{:.0}", nodes as f64 / c.as_secs_f64()),
        );
    }
    peer_rows(
        Rates {
            what: "pods ready/s",
            rate,
            raw_rate,
            writes: "create+bind+status",
            plain_rate,
        },
        rss_idle,
        peak,
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let only = arg(&args, "--only");
    let num = |name: &str, default: usize| {
        arg(&args, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    println!(
        "korral workloads benchmark: a server, a controllers process, this process as the nodes' kubelet"
    );
    if only.as_deref().is_none_or(|o| o == "job") {
        job_scenario(
            num("--completions", 10_000),
            num("--parallelism", 100),
            num("--job-nodes", 100),
        )
        .await;
    }
    if only.as_deref().is_none_or(|o| o == "daemonset") {
        daemonset_scenario(num("--nodes", 5000)).await;
    }
}
