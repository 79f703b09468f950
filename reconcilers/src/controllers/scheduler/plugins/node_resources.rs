//! NodeResourcesFit (filter: pod count, CPU, memory, ephemeral storage and
//! extended resources against allocatable minus what placed pods request;
//! score: LeastAllocated over CPU and memory) and
//! NodeResourcesBalancedAllocation (score: prefer nodes whose CPU and memory
//! use stay in proportion).

use crate::controllers::scheduler::cache::NodeInfo;
use crate::controllers::scheduler::framework::{
    Code, Cycle, MAX_NODE_SCORE, Plugin, PreFilter, Rejection,
};

/// The Fit plugin.
pub struct Fit;

impl Fit {
    /// The reasons `node` cannot hold the pod (empty when it can).
    pub fn insufficient(cx: &Cycle<'_>, node: &NodeInfo) -> Vec<String> {
        let mut out = Vec::new();
        let alloc = &node.allocatable;
        let used = &node.requested;
        if node.pods.len() as i64 + 1 > alloc.pods {
            out.push("Too many pods".to_string());
        }
        let req = &cx.pod.requests;
        if req.is_empty() {
            return out;
        }
        if req.milli_cpu > 0 && alloc.milli_cpu < req.milli_cpu + used.milli_cpu {
            out.push("Insufficient cpu".to_string());
        }
        if req.memory > 0 && alloc.memory < req.memory + used.memory {
            out.push("Insufficient memory".to_string());
        }
        if req.ephemeral_storage > 0
            && alloc.ephemeral_storage < req.ephemeral_storage + used.ephemeral_storage
        {
            out.push("Insufficient ephemeral-storage".to_string());
        }
        for (name, amount) in &req.scalar {
            if *amount == 0 {
                continue;
            }
            let have = alloc.scalar.get(name).copied().unwrap_or(0);
            let taken = used.scalar.get(name).copied().unwrap_or(0);
            if have < amount + taken {
                out.push(format!("Insufficient {name}"));
            }
        }
        out
    }
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

impl Plugin for Fit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn pre_filter(&self, _cx: &mut Cycle<'_>) -> PreFilter {
        PreFilter::Run
    }

    fn filter(&self, cx: &Cycle<'_>, node: &NodeInfo) -> Result<(), Rejection> {
        let reasons = Self::insufficient(cx, node);
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(Rejection {
                plugin: self.name(),
                code: Code::Unschedulable,
                reasons,
            })
        }
    }

    fn pre_score(&self, _cx: &mut Cycle<'_>, _nodes: &[&NodeInfo]) -> bool {
        true
    }

    /// LeastAllocated: the average free share of CPU and memory after placing the pod.
    fn score(&self, cx: &Cycle<'_>, node: &NodeInfo) -> i64 {
        let pairs = [
            (
                node.non_zero_requested.milli_cpu + cx.pod.non_zero.milli_cpu,
                node.allocatable.milli_cpu,
            ),
            (
                node.non_zero_requested.memory + cx.pod.non_zero.memory,
                node.allocatable.memory,
            ),
        ];
        let mut sum = 0;
        let mut weights = 0;
        for (requested, capacity) in pairs {
            if capacity == 0 {
                continue;
            }
            sum += least_requested(requested, capacity);
            weights += 1;
        }
        if weights == 0 { 0 } else { sum / weights }
    }
}

/// The BalancedAllocation plugin.
pub struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    /// Best-effort pods (no CPU or memory requests) are not scored.
    fn pre_score(&self, cx: &mut Cycle<'_>, _nodes: &[&NodeInfo]) -> bool {
        cx.pod.requests.milli_cpu != 0 || cx.pod.requests.memory != 0
    }

    /// `(1 - standard deviation of the CPU and memory fractions) * 100`.
    fn score(&self, cx: &Cycle<'_>, node: &NodeInfo) -> i64 {
        let pairs = [
            (
                node.requested.milli_cpu + cx.pod.requests.milli_cpu,
                node.allocatable.milli_cpu,
            ),
            (
                node.requested.memory + cx.pod.requests.memory,
                node.allocatable.memory,
            ),
        ];
        let fraction =
            |(req, cap): (i64, i64)| (cap > 0).then(|| (req as f64 / cap as f64).min(1.0));
        let std = match (fraction(pairs[0]), fraction(pairs[1])) {
            (Some(a), Some(b)) => (a - b).abs() / 2.0,
            _ => 0.0,
        };
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::plugins::testing::{cache, filter, node, pod, scores};
    use serde_json::{Value, json};

    fn requests(r: Value) -> Value {
        json!({"containers": [{"name": "c", "resources": {"requests": r}}]})
    }

    #[test]
    fn fit_counts_what_placed_pods_request() {
        let nodes = vec![
            node(
                "small",
                json!({}),
                json!({"status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "2", "ephemeral-storage": "1Gi"}}}),
            ),
            node(
                "big",
                json!({}),
                json!({"status": {"allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi", "example.com/gpu": "1"}}}),
            ),
        ];
        let bound = vec![
            (
                pod(
                    "x",
                    json!({}),
                    requests(json!({"cpu": "600m", "memory": "512Mi"})),
                ),
                "small",
            ),
            (pod("y", json!({}), requests(json!({"cpu": "7"}))), "big"),
        ];
        let c = cache(nodes, bound);
        let cases: Vec<(Value, Vec<Option<&str>>)> = vec![
            (
                requests(json!({"cpu": "500m"})),
                vec![Some("Insufficient cpu"), None],
            ),
            (
                requests(json!({"cpu": "1500m"})),
                vec![Some("Insufficient cpu"), Some("Insufficient cpu")],
            ),
            (
                requests(json!({"memory": "600Mi"})),
                vec![Some("Insufficient memory"), None],
            ),
            (
                requests(json!({"cpu": "2", "memory": "2Gi"})),
                vec![
                    Some("Insufficient cpu, Insufficient memory"),
                    Some("Insufficient cpu"),
                ],
            ),
            (
                requests(json!({"ephemeral-storage": "2Gi"})),
                vec![Some("Insufficient ephemeral-storage"), None],
            ),
            (
                requests(json!({"example.com/gpu": "1"})),
                vec![Some("Insufficient example.com/gpu"), None],
            ),
            (
                requests(json!({"example.com/gpu": "2"})),
                vec![
                    Some("Insufficient example.com/gpu"),
                    Some("Insufficient example.com/gpu"),
                ],
            ),
            (json!({}), vec![None, None]),
        ];
        for (spec, want) in cases {
            let want: Vec<Option<String>> =
                want.into_iter().map(|w| w.map(str::to_string)).collect();
            assert_eq!(
                filter(&Fit, &pod("p", json!({}), spec.clone()), &c),
                want,
                "{spec}"
            );
        }
        // the pod slot is counted even for pods that request nothing
        let full = cache(
            vec![node(
                "one",
                json!({}),
                json!({"status": {"allocatable": {"pods": "1"}}}),
            )],
            vec![(pod("z", json!({}), json!({})), "one")],
        );
        assert_eq!(
            filter(&Fit, &pod("p", json!({}), json!({})), &full),
            vec![Some("Too many pods".to_string())]
        );
    }

    #[test]
    fn least_allocated_prefers_emptier_nodes() {
        let nodes = vec![
            node(
                "busy",
                json!({}),
                json!({"status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"}}}),
            ),
            node(
                "idle",
                json!({}),
                json!({"status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"}}}),
            ),
        ];
        let c = cache(
            nodes,
            vec![(
                pod(
                    "x",
                    json!({}),
                    requests(json!({"cpu": "3", "memory": "2Gi"})),
                ),
                "busy",
            )],
        );
        let p = pod(
            "p",
            json!({}),
            requests(json!({"cpu": "1", "memory": "1Gi"})),
        );
        // busy: cpu (4-4)/4 = 0, mem (4-3)/4 = 25 → 12; idle: cpu 75, mem 75 → 75
        assert_eq!(scores(&Fit, &p, &c), Some(vec![12, 75]));
        // requests of nothing count as 100m / 200Mi
        let none = pod("q", json!({}), json!({}));
        let s = scores(&Fit, &none, &c).expect("scores");
        assert!(s[1] > s[0], "{s:?}");
    }

    #[test]
    fn balanced_allocation_prefers_proportional_use() {
        let nodes = vec![
            node(
                "cpu-heavy",
                json!({}),
                json!({"status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"}}}),
            ),
            node(
                "even",
                json!({}),
                json!({"status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"}}}),
            ),
        ];
        let c = cache(
            nodes,
            vec![(
                pod("x", json!({}), requests(json!({"cpu": "3"}))),
                "cpu-heavy",
            )],
        );
        let p = pod(
            "p",
            json!({}),
            requests(json!({"cpu": "1", "memory": "1Gi"})),
        );
        // cpu-heavy: cpu 1.0, mem 0.25 → std 0.375 → 62; even: 0.25/0.25 → 100
        assert_eq!(scores(&BalancedAllocation, &p, &c), Some(vec![62, 100]));
        assert_eq!(
            scores(&BalancedAllocation, &pod("b", json!({}), json!({})), &c),
            None
        );
    }
}
