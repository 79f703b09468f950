//! The kubelet's `/metrics/resource` (what metrics-server 0.6+ scrapes), in
//! the Prometheus text format with the kubelet 1.33 names, help texts and
//! millisecond timestamps, rendered from a [`Summary`].

use std::fmt::Write;

use chrono::DateTime;
use schemas::kubelet_stats::{CpuStats, MemoryStats, Summary};

fn millis(time: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} [STABLE] {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn cpu_line(out: &mut String, name: &str, labels: &str, cpu: Option<&CpuStats>) {
    if let Some(c) = cpu
        && let (Some(ns), Some(ts)) = (c.usage_core_nano_seconds, millis(&c.time))
    {
        let secs = ns as f64 / 1e9;
        let _ = writeln!(out, "{name}{labels} {secs} {ts}");
    }
}

fn memory_line(out: &mut String, name: &str, labels: &str, memory: Option<&MemoryStats>) {
    if let Some(m) = memory
        && let (Some(ws), Some(ts)) = (m.working_set_bytes, millis(&m.time))
    {
        let _ = writeln!(out, "{name}{labels} {ws} {ts}");
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The text of `/metrics/resource`.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let containers: Vec<(String, &schemas::kubelet_stats::ContainerStats)> = s
        .pods
        .iter()
        .flat_map(|p| {
            p.containers.iter().map(move |c| {
                (
                    format!(
                        "{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}}",
                        escape(&c.name),
                        escape(&p.pod_ref.namespace),
                        escape(&p.pod_ref.name)
                    ),
                    c,
                )
            })
        })
        .collect();
    let pod_labels = |p: &schemas::kubelet_stats::PodStats| {
        format!(
            "{{namespace=\"{}\",pod=\"{}\"}}",
            escape(&p.pod_ref.namespace),
            escape(&p.pod_ref.name)
        )
    };
    family(
        &mut out,
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
    );
    for (l, c) in &containers {
        cpu_line(
            &mut out,
            "container_cpu_usage_seconds_total",
            l,
            c.usage.cpu.as_ref(),
        );
    }
    family(
        &mut out,
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set of the container in bytes",
    );
    for (l, c) in &containers {
        memory_line(
            &mut out,
            "container_memory_working_set_bytes",
            l,
            c.usage.memory.as_ref(),
        );
    }
    family(
        &mut out,
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds",
    );
    for (l, c) in &containers {
        if let Some(t) = c.usage.start_time.as_deref().and_then(millis) {
            let ts = c
                .usage
                .cpu
                .as_ref()
                .and_then(|c| millis(&c.time))
                .unwrap_or(t);
            let _ = writeln!(out, "container_start_time_seconds{l} {} {ts}", t / 1000);
        }
    }
    family(
        &mut out,
        "node_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the node in core-seconds",
    );
    cpu_line(
        &mut out,
        "node_cpu_usage_seconds_total",
        "",
        s.node.usage.cpu.as_ref(),
    );
    family(
        &mut out,
        "node_memory_working_set_bytes",
        "gauge",
        "Current working set of the node in bytes",
    );
    memory_line(
        &mut out,
        "node_memory_working_set_bytes",
        "",
        s.node.usage.memory.as_ref(),
    );
    family(
        &mut out,
        "pod_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
    );
    for p in &s.pods {
        cpu_line(
            &mut out,
            "pod_cpu_usage_seconds_total",
            &pod_labels(p),
            p.usage.cpu.as_ref(),
        );
    }
    family(
        &mut out,
        "pod_memory_working_set_bytes",
        "gauge",
        "Current working set of the pod in bytes",
    );
    for p in &s.pods {
        memory_line(
            &mut out,
            "pod_memory_working_set_bytes",
            &pod_labels(p),
            p.usage.memory.as_ref(),
        );
    }
    family(
        &mut out,
        "resource_scrape_error",
        "gauge",
        "1 if there was an error while getting container metrics, 0 otherwise",
    );
    let _ = writeln!(out, "resource_scrape_error 0");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::kubelet_stats::{ContainerStats, NodeStats, PodReference, PodStats, Usage};

    #[test]
    fn kubelet_names_labels_and_timestamps() {
        let t = "2027-01-15T08:00:10Z";
        let usage = Usage {
            start_time: Some("2027-01-15T08:00:00Z".into()),
            cpu: Some(CpuStats {
                time: t.into(),
                usage_nano_cores: Some(5),
                usage_core_nano_seconds: Some(1_500_000_000),
                window: None,
            }),
            memory: Some(MemoryStats {
                time: t.into(),
                working_set_bytes: Some(4096),
                ..Default::default()
            }),
        };
        let s = Summary {
            node: NodeStats {
                node_name: "n1".into(),
                usage: usage.clone(),
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "web".into(),
                    namespace: "default".into(),
                    uid: "u".into(),
                },
                usage: usage.clone(),
                containers: vec![ContainerStats {
                    name: "app".into(),
                    usage,
                }],
            }],
        };
        let text = render(&s);
        let ts = millis(t).expect("ts");
        for line in [
            "# TYPE container_cpu_usage_seconds_total counter".to_string(),
            format!(
                "container_cpu_usage_seconds_total{{container=\"app\",namespace=\"default\",pod=\"web\"}} 1.5 {ts}"
            ),
            format!(
                "container_memory_working_set_bytes{{container=\"app\",namespace=\"default\",pod=\"web\"}} 4096 {ts}"
            ),
            format!("node_cpu_usage_seconds_total 1.5 {ts}"),
            format!("node_memory_working_set_bytes 4096 {ts}"),
            format!("pod_cpu_usage_seconds_total{{namespace=\"default\",pod=\"web\"}} 1.5 {ts}"),
            format!("pod_memory_working_set_bytes{{namespace=\"default\",pod=\"web\"}} 4096 {ts}"),
            "resource_scrape_error 0".to_string(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
