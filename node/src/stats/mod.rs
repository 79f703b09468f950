//! Resource usage of the node and of its containers, as the kubelet's
//! cadvisor reports it: a sampler reads every running container's counters
//! through the runtime ([`crate::runtime::Runtime::usage`]: the cgroup for
//! containerd, the process group in `/proc` for the process runtime) and the
//! node's from `/proc` every housekeeping interval, keeps the last two
//! samples of each, and turns them into a CPU rate (`usageNanoCores`) over
//! the interval between them (the Metrics API's `window`). Simulated nodes
//! sample nothing: their pods report what their annotations say
//! ([`simulated`]). [`Stats::summary`] is the kubelet's Summary API
//! (`/stats/summary`); [`prometheus`] renders it as `/metrics/resource`.

pub mod cgroup;
pub mod proc;
pub mod prometheus;
pub mod simulated;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemas::kubelet_stats::{
    ContainerStats, CpuStats, MemoryStats, NodeStats, PodReference, PodStats, Summary, Usage,
};

use crate::pods::PodContext;
use crate::runtime::{ContainerInfo, ContainerUsage};

/// One reading of a container's (or the node's) counters.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: DateTime<Utc>,
    usage: ContainerUsage,
    /// The node's available memory (node samples only).
    available: Option<u64>,
}

/// The last two samples of one container or of the node.
#[derive(Clone, Debug, Default)]
struct Series {
    prev: Option<Sample>,
    last: Option<Sample>,
}

impl Series {
    fn push(&mut self, s: Sample) {
        self.prev = self.last.take();
        self.last = Some(s);
    }

    fn cpu(&self) -> Option<CpuStats> {
        let last = self.last?;
        let rate = self.prev.and_then(|prev| {
            let dt = (last.at - prev.at).to_std().ok().filter(|d| !d.is_zero())?;
            // a counter that went back (a process of the group gone) reads as no use
            let used = last.usage.cpu_ns.saturating_sub(prev.usage.cpu_ns);
            let nano_cores = u128::from(used) * 1_000_000_000 / dt.as_nanos();
            Some((u64::try_from(nano_cores).unwrap_or(u64::MAX), dt))
        });
        Some(CpuStats {
            time: stamp(last.at),
            usage_nano_cores: rate.map(|r| r.0),
            usage_core_nano_seconds: Some(last.usage.cpu_ns),
            window: rate.map(|r| schemas::duration::format_go_duration(r.1)),
        })
    }

    fn memory(&self) -> Option<MemoryStats> {
        let last = self.last?;
        Some(MemoryStats {
            time: stamp(last.at),
            available_bytes: last.available,
            usage_bytes: Some(last.usage.usage_bytes),
            working_set_bytes: Some(last.usage.working_set_bytes),
            rss_bytes: Some(last.usage.rss_bytes),
        })
    }
}

/// How kube writes times in stats (`metav1.Time`: seconds, UTC).
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[derive(Default)]
struct State {
    node: Series,
    /// By runtime container id: the container and its samples.
    containers: HashMap<String, (ContainerInfo, Series)>,
}

/// A node's usage figures.
pub struct Stats {
    ctx: Arc<PodContext>,
    started: DateTime<Utc>,
    interval: Duration,
    proc_root: PathBuf,
    state: Mutex<State>,
}

impl Stats {
    /// The figures of the node whose pods `ctx` runs, sampled every `interval`
    /// (by [`Stats::run`]; simulated nodes need no sampling).
    pub fn new(ctx: Arc<PodContext>, interval: Duration) -> Arc<Stats> {
        Arc::new(Stats {
            ctx,
            started: Utc::now(),
            interval,
            proc_root: PathBuf::from("/proc"),
            state: Mutex::new(State::default()),
        })
    }

    fn simulated(&self) -> bool {
        self.ctx.runtime.kind() == "simulated"
    }

    /// Reads the node's and every running container's counters once.
    pub async fn sample(&self) {
        let now = Utc::now();
        let cpu = proc::node_cpu_ns(&self.proc_root);
        let memory = proc::node_memory(&self.proc_root);
        let mut readings = Vec::new();
        for c in self.ctx.runtime.list().await.unwrap_or_default() {
            if c.state != crate::runtime::State::Running {
                continue;
            }
            if let Some(u) = self.ctx.runtime.usage(&c.id).await {
                readings.push((c, u));
            }
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let (Some(cpu_ns), Some((_, available, working_set))) = (cpu, memory) {
            state.node.push(Sample {
                at: now,
                usage: ContainerUsage {
                    cpu_ns,
                    working_set_bytes: working_set,
                    usage_bytes: working_set,
                    rss_bytes: working_set,
                },
                available: Some(available),
            });
        }
        let seen: HashSet<String> = readings.iter().map(|(c, _)| c.id.clone()).collect();
        state.containers.retain(|id, _| seen.contains(id));
        for (c, usage) in readings {
            let entry = state
                .containers
                .entry(c.id.clone())
                .or_insert_with(|| (c.clone(), Series::default()));
            entry.0 = c;
            entry.1.push(Sample {
                at: now,
                usage,
                available: None,
            });
        }
    }

    /// Samples every housekeeping interval, forever (real runtimes).
    pub async fn run(self: Arc<Self>) {
        if self.simulated() {
            return;
        }
        loop {
            self.sample().await;
            tokio::time::sleep(self.interval).await;
        }
    }

    /// The kubelet's Summary: the node, and each pod with its measured containers.
    pub async fn summary(&self) -> Summary {
        let node_name = self.ctx.node.clone();
        let mut summary = if self.simulated() {
            self.simulated_summary().await
        } else {
            self.sampled_summary()
        };
        summary.node.node_name = node_name;
        summary.node.usage.start_time = Some(stamp(self.started));
        summary
    }

    fn sampled_summary(&self) -> Summary {
        let Ok(state) = self.state.lock() else {
            return Summary::default();
        };
        let mut pods: BTreeMap<String, PodStats> = BTreeMap::new();
        for (c, series) in state.containers.values() {
            let pod = pods.entry(c.pod_uid.clone()).or_insert_with(|| PodStats {
                pod_ref: PodReference {
                    name: c.pod_name.clone(),
                    namespace: c.pod_namespace.clone(),
                    uid: c.pod_uid.clone(),
                },
                ..Default::default()
            });
            pod.containers.push(ContainerStats {
                name: c.name.clone(),
                usage: Usage {
                    start_time: c.started_at.map(stamp),
                    cpu: series.cpu(),
                    memory: series.memory(),
                },
            });
        }
        Summary {
            node: NodeStats {
                node_name: String::new(),
                usage: Usage {
                    start_time: None,
                    cpu: state.node.cpu(),
                    memory: state.node.memory(),
                },
            },
            pods: pods.into_values().map(with_totals).collect(),
        }
    }

    /// Simulated pods: each running container reports its annotations' figures now.
    async fn simulated_summary(&self) -> Summary {
        let now = Utc::now();
        let window = schemas::duration::format_go_duration(self.interval);
        let running: Vec<ContainerInfo> = self
            .ctx
            .runtime
            .list()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.state == crate::runtime::State::Running)
            .collect();
        let pods_by_uid: HashMap<String, Arc<k8s_openapi::api::core::v1::Pod>> = self
            .ctx
            .cache
            .all()
            .into_iter()
            .filter_map(|p| Some((p.metadata.uid.clone()?, p)))
            .collect();
        let mut pods: BTreeMap<String, PodStats> = BTreeMap::new();
        for c in running {
            let Some(pod) = pods_by_uid.get(&c.pod_uid) else {
                continue;
            };
            let nano = simulated::cpu_nano_cores(pod, &c.name);
            let bytes = simulated::memory_bytes(pod, &c.name);
            let ran = c
                .started_at
                .and_then(|s| (now - s).to_std().ok())
                .unwrap_or_default();
            let total = u128::from(nano) * ran.as_nanos() / 1_000_000_000;
            let stats = pods.entry(c.pod_uid.clone()).or_insert_with(|| PodStats {
                pod_ref: PodReference {
                    name: c.pod_name.clone(),
                    namespace: c.pod_namespace.clone(),
                    uid: c.pod_uid.clone(),
                },
                ..Default::default()
            });
            stats.containers.push(ContainerStats {
                name: c.name.clone(),
                usage: Usage {
                    start_time: c.started_at.map(stamp),
                    cpu: Some(CpuStats {
                        time: stamp(now),
                        usage_nano_cores: Some(nano),
                        usage_core_nano_seconds: Some(u64::try_from(total).unwrap_or(u64::MAX)),
                        window: Some(window.clone()),
                    }),
                    memory: Some(MemoryStats {
                        time: stamp(now),
                        available_bytes: None,
                        usage_bytes: Some(bytes),
                        working_set_bytes: Some(bytes),
                        rss_bytes: Some(bytes),
                    }),
                },
            });
        }
        let pods: Vec<PodStats> = pods.into_values().map(with_totals).collect();
        let node = sum(pods.iter().map(|p| &p.usage));
        Summary {
            node: NodeStats {
                node_name: String::new(),
                usage: node,
            },
            pods,
        }
    }
}

/// Sums usages (the newest time, rates and totals added up).
fn sum<'a>(parts: impl Iterator<Item = &'a Usage>) -> Usage {
    let mut cpu: Option<CpuStats> = None;
    let mut memory: Option<MemoryStats> = None;
    for u in parts {
        if let Some(c) = &u.cpu {
            let t = cpu.get_or_insert_with(|| CpuStats {
                usage_nano_cores: Some(0),
                usage_core_nano_seconds: Some(0),
                ..Default::default()
            });
            t.time = t.time.clone().max(c.time.clone());
            t.usage_nano_cores = t
                .usage_nano_cores
                .zip(c.usage_nano_cores)
                .map(|(a, b)| a + b);
            t.usage_core_nano_seconds = t
                .usage_core_nano_seconds
                .zip(c.usage_core_nano_seconds)
                .map(|(a, b)| a + b);
            if t.window.is_none() {
                t.window = c.window.clone();
            }
        }
        if let Some(m) = &u.memory {
            let t = memory.get_or_insert_with(|| MemoryStats {
                usage_bytes: Some(0),
                working_set_bytes: Some(0),
                rss_bytes: Some(0),
                ..Default::default()
            });
            t.time = t.time.clone().max(m.time.clone());
            let add = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| a + b);
            t.usage_bytes = add(t.usage_bytes, m.usage_bytes);
            t.working_set_bytes = add(t.working_set_bytes, m.working_set_bytes);
            t.rss_bytes = add(t.rss_bytes, m.rss_bytes);
        }
    }
    Usage {
        start_time: None,
        cpu,
        memory,
    }
}

/// A pod's own figures: its containers' summed, started with its first container.
fn with_totals(mut pod: PodStats) -> PodStats {
    pod.containers.sort_by(|a, b| a.name.cmp(&b.name));
    pod.usage = sum(pod.containers.iter().map(|c| &c.usage));
    pod.usage.start_time = pod
        .containers
        .iter()
        .filter_map(|c| c.usage.start_time.clone())
        .min();
    pod
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(secs: i64, cpu_ns: u64) -> Sample {
        Sample {
            at: DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time"),
            usage: ContainerUsage {
                cpu_ns,
                working_set_bytes: 100,
                usage_bytes: 150,
                rss_bytes: 90,
            },
            available: None,
        }
    }

    #[test]
    fn two_samples_make_a_rate_over_their_interval() {
        let mut s = Series::default();
        s.push(sample(0, 1_000_000_000));
        let first = s.cpu().expect("cpu");
        assert_eq!(first.usage_nano_cores, None, "one sample: no rate yet");
        s.push(sample(10, 6_000_000_000));
        let cpu = s.cpu().expect("cpu");
        // 5 s of CPU over 10 s: half a core
        assert_eq!(cpu.usage_nano_cores, Some(500_000_000));
        assert_eq!(cpu.usage_core_nano_seconds, Some(6_000_000_000));
        assert_eq!(cpu.window.as_deref(), Some("10s"));
        s.push(sample(20, 5_000_000_000));
        assert_eq!(
            s.cpu().and_then(|c| c.usage_nano_cores),
            Some(0),
            "a counter going back"
        );
        assert_eq!(s.memory().and_then(|m| m.working_set_bytes), Some(100));
    }

    #[test]
    fn pods_sum_their_containers() {
        let mut a = Series::default();
        a.push(sample(0, 0));
        a.push(sample(10, 2_000_000_000));
        let c = |name: &str| ContainerStats {
            name: name.into(),
            usage: Usage {
                start_time: Some(format!("2027-01-15T08:00:0{}Z", name.len())),
                cpu: a.cpu(),
                memory: a.memory(),
            },
        };
        let pod = with_totals(PodStats {
            containers: vec![c("web"), c("side")],
            ..Default::default()
        });
        assert_eq!(pod.containers[0].name, "side");
        let cpu = pod.usage.cpu.expect("cpu");
        assert_eq!(cpu.usage_nano_cores, Some(400_000_000));
        assert_eq!(
            pod.usage.memory.and_then(|m| m.working_set_bytes),
            Some(200)
        );
        assert_eq!(
            pod.usage.start_time.as_deref(),
            Some("2027-01-15T08:00:03Z")
        );
    }
}
