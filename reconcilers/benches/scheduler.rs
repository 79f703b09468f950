//! Benchmark of the scheduler's core (queue, cache, filter and score
//! plugins, assume) without HTTP, on scheduler_perf's `SchedulingBasic`
//! workload: nodes from its `node-default.yaml` (4 CPU, 32 GiB, 110 pods),
//! 1,000 pods placed first, then 10,000 measured pods from its
//! `pod-default.yaml` (100m CPU, 500 MiB), on 100, 1,000 and 5,000 nodes.
//! Prints pods scheduled per second and the p50/p99 of one scheduling
//! attempt, next to kube-scheduler's published scheduler_perf figures.
//!
//! `cargo bench -p reconcilers --bench scheduler` (`-- --quick`: 1,000 pods).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use reconcilers::controllers::ControllerOptions;
use reconcilers::controllers::scheduler::{Outcome, Scheduler};
use serde_json::json;

/// What kube-scheduler's scheduler_perf publishes for comparable workloads.
struct Published {
    nodes: usize,
    figure: &'static str,
}

const PUBLISHED: &[Published] = &[
    Published {
        nodes: 100,
        figure: "none at 100 nodes; SchedulingBasic/500Nodes ≈1,000 pods/s (p90 of 1 s samples) [2]",
    },
    Published {
        nodes: 1000,
        figure: "none at 1,000 nodes; SchedulingBasic/500Nodes ≈1,000 pods/s [2]",
    },
    Published {
        nodes: 5000,
        figure: "SchedulingBasic/5000Nodes_10000Pods: 1,146–1,302 pods/s avg [1]; CI floor 680 [3]",
    },
];

fn node(i: usize, cpu: &str, memory: &str) -> Arc<Node> {
    let name = format!("scheduler-perf-{i}");
    let capacity = json!({"pods": "110", "cpu": cpu, "memory": memory});
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": capacity, "allocatable": capacity,
                "conditions": [{"type": "Ready", "status": "True"}], "phase": "Running"}
        }))
        .expect("node"),
    )
}

fn pod(ns: &str, i: usize) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": format!("pod-{i}"), "namespace": ns, "uid": format!("{ns}-{i}")},
            "spec": {"schedulerName": "default-scheduler", "containers": [{
                "name": "pause", "image": "k8s.gcr.io/pause:3.7", "ports": [{"containerPort": 80}],
                "resources": {"limits": {"cpu": "100m", "memory": "500Mi"},
                              "requests": {"cpu": "100m", "memory": "500Mi"}}}]}
        }))
        .expect("pod"),
    )
}

struct Row {
    nodes: usize,
    measured: usize,
    scheduled: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    evaluated: f64,
    node_shape: &'static str,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn run(nodes: usize, init: usize, measured: usize) -> Row {
    // 10,000 pods of 100m / 500 MiB do not fit on 100 default nodes (4 CPU
    // each): there the nodes are 4× larger, still 110 pods each
    let (cpu, memory, shape) = if nodes * 40 < init + measured {
        ("16", "128Gi", "16 CPU, 128 GiB, 110 pods")
    } else {
        ("4", "32Gi", "4 CPU, 32 GiB, 110 pods")
    };
    let mut s = Scheduler::new(&ControllerOptions::default());
    let t = Instant::now();
    for i in 0..nodes {
        s.on_node(None, node(i, cpu, memory), t);
    }
    for i in 0..init {
        s.on_pod(pod("init", i), t);
    }
    while s.schedule_next(Instant::now()).is_some() {}
    let pods: Vec<Arc<Pod>> = (0..measured).map(|i| pod("measured", i)).collect();
    let mut attempts = Vec::with_capacity(measured);
    let mut evaluated = 0usize;
    let mut scheduled = 0usize;
    let start = Instant::now();
    for p in pods {
        s.on_pod(p, Instant::now());
    }
    while let Some(o) = s.schedule_next(Instant::now()) {
        match o {
            Outcome::Scheduled { took, decision, .. } => {
                attempts.push(took);
                evaluated += decision.evaluated;
                scheduled += 1;
            }
            Outcome::Unschedulable { took, .. } => attempts.push(took),
        }
    }
    let elapsed = start.elapsed();
    attempts.sort();
    Row {
        nodes,
        measured,
        scheduled,
        elapsed,
        p50: percentile(&attempts, 0.50),
        p99: percentile(&attempts, 0.99),
        max: attempts.last().copied().unwrap_or_default(),
        evaluated: evaluated as f64 / scheduled.max(1) as f64,
        node_shape: shape,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let measured = if quick { 1_000 } else { 10_000 };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "korral scheduler core, scheduler_perf SchedulingBasic workload: 1,000 init pods, {measured} measured pods \
         (100m CPU, 500 MiB each), one scheduling loop, {cores} cores on this machine\n"
    );
    println!(
        "| nodes | nodes are | measured pods | scheduled | pods/s | attempt p50 | attempt p99 | attempt max | nodes filtered/pod | kube-scheduler (scheduler_perf) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in PUBLISHED {
        let r = run(p.nodes, 1_000, measured);
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.1} µs | {:.1} µs | {:.1} µs | {:.0} | {} |",
            r.nodes,
            r.node_shape,
            r.measured,
            r.scheduled,
            r.scheduled as f64 / r.elapsed.as_secs_f64(),
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.max.as_secs_f64() * 1e6,
            r.evaluated,
            p.figure,
        );
    }
    println!(
        "\n[1] kubernetes/kubernetes PR #128023 (2024): BenchmarkPerfScheduling/SchedulingBasic/5000Nodes_10000Pods \
         SchedulingThroughput Average 1146.6 / 1152.7 / 1298.3 / 1302.2 pods/s (integration test: real API server + etcd, binding included)\n\
         [2] kubernetes/kubernetes PR #115422 (2023): PerfScheduling/SchedulingBasic/500Nodes-36 SchedulingThroughput/Perc90 1.00k pods/s (36 cores)\n\
         [3] test/integration/scheduler_perf/misc/performance-config.yaml: SchedulingBasic 5000Nodes_10000Pods threshold 680 pods/s\n\
         korral's figures exclude the API round trips (binding, watch); see the API benchmark for those."
    );
}
