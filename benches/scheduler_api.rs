//! Benchmark of the scheduler end to end through the API, on this machine:
//! a `korral server` and a separate `korral controllers --controllers
//! scheduler` process; simulated nodes (Node objects only, no containers)
//! from scheduler_perf's `node-default.yaml`; 1,000 pods already bound, then
//! 10,000 pods from its `pod-default.yaml`, either all created before the
//! scheduler starts (backlog: binding throughput) or created by 16 clients
//! while it runs (streaming: creation → bound latency); a watch records when
//! each is bound. For 100, 1,000 and 5,000 nodes.
//!
//! `cargo bench --bench scheduler_api` (`-- --quick`: 1,000 pods;
//! `-- --nodes N` for one size).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use reconcilers::runtime::client::WatchEvent;
use reconcilers::runtime::{DeleteParams, ListParams, WriteParams};
use schemas::MetaExt;
use serde_json::json;

const CLIENTS: usize = 16;

fn node(i: usize, cpu: &str, memory: &str) -> Node {
    let name = format!("scheduler-perf-{i}");
    let capacity = json!({"pods": "110", "cpu": cpu, "memory": memory});
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        // simulated nodes bring their own pod CIDR, as kwok's do
        "spec": {"podCIDR": format!("100.{}.{}.0/24", 64 + i / 256, i % 256)},
        "status": {"capacity": capacity, "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True"}], "phase": "Running"}
    }))
    .expect("node")
}

fn pod(prefix: &str, i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{prefix}-{i}")},
        "spec": {"containers": [{
            "name": "pause", "image": "k8s.gcr.io/pause:3.7", "ports": [{"containerPort": 80}],
            "resources": {"limits": {"cpu": "100m", "memory": "500Mi"},
                          "requests": {"cpu": "100m", "memory": "500Mi"}}}]}
    }))
    .expect("pod")
}

async fn create_all<K: schemas::Object>(
    api: reconcilers::runtime::Api<K>,
    objects: Vec<K>,
    created: Option<Arc<Mutex<HashMap<String, Instant>>>>,
) {
    let objects = Arc::new(objects);
    let mut tasks = Vec::new();
    for w in 0..CLIENTS {
        let (api, objects, created) = (api.clone(), objects.clone(), created.clone());
        tasks.push(tokio::spawn(async move {
            for o in objects.iter().skip(w).step_by(CLIENTS) {
                let name = o.metadata().name_str().to_string();
                let sent = Instant::now();
                api.create(o, &WriteParams::default())
                    .await
                    .expect("create");
                if let Some(c) = &created
                    && let Ok(mut m) = c.lock()
                {
                    m.insert(name, sent);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("create task");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

struct Row {
    nodes: usize,
    mode: &'static str,
    bound: usize,
    window: Duration,
    p50: Duration,
    p99: Duration,
    create_rate: Option<f64>,
    cpu_per_pod: Duration,
}

/// One run: `backlog` creates every pod before the scheduler starts (pure
/// scheduling + binding throughput through the API, like scheduler_perf's);
/// otherwise pods are created while it runs (creation → bound latency).
async fn run(nodes: usize, init: usize, measured: usize, backlog: bool) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, client) =
        common::start_server(dir.path(), &dir.path().join("server.log"), &[]).await;
    let (cpu, memory) = if nodes * 40 < init + measured {
        ("16", "128Gi")
    } else {
        ("4", "32Gi")
    };
    create_all(
        client.api::<Node>(None),
        (0..nodes).map(|i| node(i, cpu, memory)).collect(),
        None,
    )
    .await;
    let pods = client.api::<Pod>(Some("default"));
    // the init pods arrive bound (spread round-robin), taking their share of the nodes
    create_all(
        pods.clone(),
        (0..init)
            .map(|i| {
                let mut p = pod("init", i);
                if let Some(s) = p.spec.as_mut() {
                    s.node_name = Some(format!("scheduler-perf-{}", i % nodes));
                }
                p
            })
            .collect(),
        None,
    )
    .await;
    // the watch starts before any measured pod exists, so it sees every binding
    let rv = pods
        .list(&ListParams::default())
        .await
        .expect("list")
        .resource_version;
    let mut stream = Box::pin(
        pods.watch(&ListParams::default(), &rv, Duration::from_secs(600))
            .await
            .expect("watch"),
    );
    let start_scheduler = || {
        common::spawn(
            &[
                "controllers",
                "--controllers",
                "scheduler",
                "--kubeconfig",
                &dir.path().join("controller.kubeconfig").to_string_lossy(),
                "--metrics-addr",
                &format!("127.0.0.1:{}", common::free_port()),
            ],
            &dir.path().join("scheduler.log"),
        )
    };
    let created = Arc::new(Mutex::new(HashMap::with_capacity(measured)));
    let measured_pods: Vec<Pod> = (0..measured).map(|i| pod("measured", i)).collect();
    let scheduler;
    let mut creating = None;
    let start;
    if backlog {
        start = Instant::now();
        create_all(pods.clone(), measured_pods, Some(created.clone())).await;
        scheduler = start_scheduler();
    } else {
        scheduler = start_scheduler();
        // wait until the scheduler leads and has synced: it binds a probe pod
        pods.create(&pod("probe", 0), &WriteParams::default())
            .await
            .expect("probe");
        let probe_deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(120), stream.next())
                .await
                .expect("a watch event within 120 s")
                .expect("the watch ended")
                .expect("watch event");
            if let WatchEvent::Modified(p) = ev
                && p.metadata.name_str() == "probe-0"
                && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
            {
                break;
            }
            assert!(Instant::now() < probe_deadline, "the probe was not bound");
        }
        // give its slot back: on 100 nodes the measured pods fill every one
        let now = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        pods.delete("probe-0", &now).await.expect("delete probe");
        start = Instant::now();
        creating = Some(tokio::spawn(create_all(
            pods.clone(),
            measured_pods,
            Some(created.clone()),
        )));
    }
    let mut bound_at: HashMap<String, Instant> = HashMap::with_capacity(measured);
    let mut first_bound: Option<Instant> = None;
    // CPU the server and the scheduler use in the window, per pod bound
    let cpu = |server: &std::process::Child, scheduler: &std::process::Child| {
        common::cpu_time(server.id()) + common::cpu_time(scheduler.id())
    };
    let mut cpu_start = if backlog {
        None
    } else {
        Some((cpu(&server, &scheduler), 0usize))
    };
    let limit = Instant::now() + Duration::from_secs(1800);
    // the last revision seen: a watch the server ends (a watcher that fell
    // behind the watch cache is closed, as kube-apiserver's is) is resumed
    // from it, as an informer does
    let mut last_rv = rv.clone();
    while bound_at.len() < measured {
        let next = tokio::time::timeout(Duration::from_secs(120), stream.next())
            .await
            .expect("a watch event within 120 s");
        let Some(ev) = next else {
            stream = Box::pin(
                pods.watch(&ListParams::default(), &last_rv, Duration::from_secs(600))
                    .await
                    .expect("watch again"),
            );
            continue;
        };
        let ev = ev.expect("watch event");
        match &ev {
            WatchEvent::Added(p) | WatchEvent::Modified(p) | WatchEvent::Deleted(p) => {
                if let Some(v) = &p.metadata.resource_version {
                    last_rv = v.clone();
                }
            }
            WatchEvent::Bookmark(v) => last_rv = v.clone(),
            WatchEvent::Error(e) => panic!("the watch failed: {e:?}"),
        }
        if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev {
            let bound = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty());
            let name = p.metadata.name_str().to_string();
            if bound && name.starts_with("measured-") {
                let now = Instant::now();
                first_bound.get_or_insert(now);
                if cpu_start.is_none() {
                    cpu_start = Some((cpu(&server, &scheduler), bound_at.len()));
                }
                bound_at.entry(name).or_insert(now);
            }
        }
        assert!(Instant::now() < limit, "not all pods were bound");
    }
    let done = Instant::now();
    let cpu_per_pod = cpu_start.map_or(Duration::ZERO, |(c0, n0)| {
        cpu(&server, &scheduler).saturating_sub(c0)
            / u32::try_from(measured - n0).unwrap_or(1).max(1)
    });
    if let Some(c) = creating {
        c.await.expect("creates");
    }
    let created = created.lock().map(|m| m.clone()).unwrap_or_default();
    let create_done = created.values().max().copied().unwrap_or(start);
    let mut latencies: Vec<Duration> = bound_at
        .iter()
        .filter_map(|(n, b)| created.get(n).map(|c| b.saturating_duration_since(*c)))
        .collect();
    latencies.sort();
    let mut scheduler = scheduler;
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    let _ = server.kill();
    let _ = server.wait();
    let window = if backlog {
        done.duration_since(first_bound.unwrap_or(start))
    } else {
        done.duration_since(start)
    };
    Row {
        nodes,
        mode: if backlog { "backlog" } else { "streaming" },
        bound: bound_at.len(),
        window,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        create_rate: (!backlog)
            .then(|| measured as f64 / create_done.duration_since(start).as_secs_f64()),
        cpu_per_pod,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let measured = if quick { 1_000 } else { 10_000 };
    let sizes: Vec<usize> = match args
        .iter()
        .position(|a| a == "--nodes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
    {
        Some(n) => vec![n],
        None => vec![100, 1000, 5000],
    };
    println!(
        "korral scheduler through the API: a server and a scheduler process, simulated nodes, 1,000 pods already bound, \
         {measured} measured pods; all processes share this machine's cores\n\
         backlog: every pod exists before the scheduler starts (throughput from first to last binding, as scheduler_perf counts it);\n\
         streaming: {CLIENTS} clients create pods while it runs (throughput and latency from creation to bound);\n\
         CPU per pod: the server's and the scheduler's CPU time over the window ÷ pods bound in it (less sensitive to other load on the machine than pods/s)\n"
    );
    println!(
        "| nodes | mode | pods bound | pods/s | pods created/s | create → bound p50 | create → bound p99 | CPU per pod |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        for backlog in [true, false] {
            let r = run(n, 1_000, measured, backlog).await;
            let latency = |d: Duration| {
                if backlog {
                    "—".to_string()
                } else {
                    format!("{:.0} ms", d.as_secs_f64() * 1e3)
                }
            };
            println!(
                "| {} | {} | {} | {:.0} | {} | {} | {} | {:.0} µs |",
                r.nodes,
                r.mode,
                r.bound,
                r.bound as f64 / r.window.as_secs_f64(),
                r.create_rate.map_or("—".to_string(), |c| format!("{c:.0}")),
                latency(r.p50),
                latency(r.p99),
                r.cpu_per_pod.as_secs_f64() * 1e6,
            );
        }
    }
}
