//! The scheduling framework, after kube-scheduler's: plugins with PreFilter,
//! Filter, PreScore, Score and NormalizeScore points; one cycle filters
//! nodes (stopping once enough feasible ones are found, from a rotating
//! start, like `percentageOfNodesToScore`), scores the feasible ones, weighs
//! and sums the normalised scores and picks the best (ties at random). When
//! no node fits, the [`FitError`] renders kube-scheduler's message.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::cache::{ClusterCache, NodeInfo};
use super::pod_info::PodInfo;

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;
/// Below this many nodes, every node is examined.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never drops below this.
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// Why a node was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Might fit if other pods went away (preemption could help).
    Unschedulable,
    /// Cannot fit whatever other pods do.
    UnschedulableAndUnresolvable,
}

/// A plugin's rejection of a node (or, in PreFilter, of all nodes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The plugin.
    pub plugin: &'static str,
    /// Resolvable or not.
    pub code: Code,
    /// kube-scheduler's reason strings, e.g. `Insufficient cpu`.
    pub reasons: Vec<String>,
}

impl Rejection {
    /// A rejection with one reason.
    pub fn new(plugin: &'static str, code: Code, reason: impl Into<String>) -> Self {
        Rejection {
            plugin,
            code,
            reasons: vec![reason.into()],
        }
    }
}

/// What a PreFilter decided.
pub enum PreFilter {
    /// Run this plugin's Filter.
    Run,
    /// Nothing to check for this pod.
    Skip,
    /// No node can fit.
    Reject(Rejection),
}

/// Per-cycle data plugins keep between their extension points.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

impl CycleState {
    /// Stores `value` under `key`.
    pub fn put<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    /// The value under `key`, if it has type `T`.
    pub fn get<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.data.get(key).and_then(|b| b.downcast_ref::<T>())
    }
}

/// One scheduling cycle: the pod, the cluster, and the plugins' state.
pub struct Cycle<'a> {
    /// The pod being scheduled.
    pub pod: &'a PodInfo,
    /// The cluster.
    pub cache: &'a ClusterCache,
    /// Plugins' data.
    pub state: CycleState,
}

/// A scheduling plugin; every extension point is optional.
pub trait Plugin: Send + Sync {
    /// The plugin's name (as kube-scheduler's).
    fn name(&self) -> &'static str;

    /// Prepares the cycle; `Skip` means Filter need not run.
    fn pre_filter(&self, _cx: &mut Cycle<'_>) -> PreFilter {
        PreFilter::Skip
    }

    /// Whether `node` can take the pod.
    fn filter(&self, _cx: &Cycle<'_>, _node: &NodeInfo) -> Result<(), Rejection> {
        Ok(())
    }

    /// Prepares scoring of the feasible `nodes`; `false` skips scoring.
    fn pre_score(&self, _cx: &mut Cycle<'_>, _nodes: &[&NodeInfo]) -> bool {
        false
    }

    /// A node's raw score.
    fn score(&self, _cx: &Cycle<'_>, _node: &NodeInfo) -> i64 {
        0
    }

    /// Scales raw scores to 0..=100.
    fn normalize(&self, _cx: &Cycle<'_>, _scores: &mut [i64]) {}
}

/// kube-scheduler's `DefaultNormalizeScore`: scale to 0..=100 by the
/// maximum; `reverse` turns high raw scores into low ones.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

/// Why a pod could not be scheduled.
#[derive(Clone, Debug)]
pub enum ScheduleError {
    /// The cluster has no nodes.
    NoNodes,
    /// No node fits.
    Fit(FitError),
}

impl ScheduleError {
    /// The message kube-scheduler writes into the PodScheduled condition and the event.
    pub fn message(&self) -> String {
        match self {
            ScheduleError::NoNodes => "no nodes available to schedule pods".to_string(),
            ScheduleError::Fit(f) => f.message(),
        }
    }

    /// Plugins that rejected nodes (to decide which cluster events may help).
    pub fn plugins(&self) -> BTreeSet<&'static str> {
        match self {
            ScheduleError::NoNodes => BTreeSet::new(),
            ScheduleError::Fit(f) => f.statuses.iter().map(|(_, r)| r.plugin).collect(),
        }
    }
}

/// The diagnosis of a pod no node fits.
#[derive(Clone, Debug)]
pub struct FitError {
    /// Nodes in the cluster.
    pub num_all_nodes: usize,
    /// Each rejected node's rejection.
    pub statuses: Vec<(String, Rejection)>,
    /// A PreFilter rejection that applied to every node.
    pub pre_filter: Option<Rejection>,
    /// Whether the pod may preempt (`preemptionPolicy` is not `Never`).
    pub may_preempt: bool,
}

fn histogram<'a>(reasons: impl Iterator<Item = (&'a str, usize)>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (r, n) in reasons {
        *counts.entry(r).or_insert(0) += n;
    }
    // Go sorts the formatted "<count> <reason>" strings
    let mut items: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    items.sort();
    items.join(", ")
}

impl FitError {
    /// kube-scheduler's message: `0/5 nodes are available: 3 Insufficient cpu,
    /// 2 node(s) had untolerated taint {k: v}. preemption: 0/5 nodes are
    /// available: 2 Preemption is not helpful for scheduling, 3 No preemption
    /// victims found for incoming pod.`
    pub fn message(&self) -> String {
        let n = self.num_all_nodes;
        let mut msg = format!("0/{n} nodes are available:");
        match &self.pre_filter {
            Some(r) => msg.push_str(&format!(" {}.", r.reasons.join(", "))),
            None => {
                let h = histogram(
                    self.statuses
                        .iter()
                        .flat_map(|(_, r)| r.reasons.iter().map(|s| (s.as_str(), 1))),
                );
                if !h.is_empty() {
                    msg.push_str(&format!(" {h}."));
                }
            }
        }
        msg.push(' ');
        msg.push_str(&self.preemption_message());
        msg
    }

    /// What the (default) preemption plugin reports. korral does not
    /// preempt; with no lower-priority victims this is also what
    /// kube-scheduler says.
    pub fn preemption_message(&self) -> String {
        if !self.may_preempt {
            return "preemption: not eligible due to preemptionPolicy=Never.".to_string();
        }
        let n = self.num_all_nodes;
        const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
        const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
        let h = match &self.pre_filter {
            Some(r) => histogram(std::iter::once((
                if r.code == Code::UnschedulableAndUnresolvable {
                    NOT_HELPFUL
                } else {
                    NO_VICTIMS
                },
                n,
            ))),
            None => histogram(self.statuses.iter().map(|(_, r)| {
                (
                    if r.code == Code::UnschedulableAndUnresolvable {
                        NOT_HELPFUL
                    } else {
                        NO_VICTIMS
                    },
                    1,
                )
            })),
        };
        format!("preemption: 0/{n} nodes are available: {h}.")
    }
}

/// Where a pod goes and how much work deciding took.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The chosen node.
    pub node: String,
    /// Nodes filtered.
    pub evaluated: usize,
    /// Nodes found feasible.
    pub feasible: usize,
}

/// A plugin and its score weight.
pub struct Weighted {
    /// The plugin.
    pub plugin: Box<dyn Plugin>,
    /// Its score weight.
    pub weight: i64,
}

/// A scheduling profile: plugins in order, with weights, and sampling.
pub struct Profile {
    plugins: Vec<Weighted>,
    percentage_of_nodes_to_score: u32,
    next_start: usize,
    rng: u64,
}

/// How many feasible nodes to look for among `all` (kube-scheduler's
/// `numFeasibleNodesToFind`).
pub fn feasible_nodes_to_find(all: usize, percentage: u32) -> usize {
    if all < MIN_FEASIBLE_NODES_TO_FIND {
        return all;
    }
    let mut pct = percentage as usize;
    if pct == 0 {
        pct = 50usize.saturating_sub(all / 125);
        if pct < MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND {
            pct = MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND;
        }
    }
    if pct >= 100 {
        return all;
    }
    (all * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

impl Profile {
    /// A profile with these plugins.
    pub fn new(plugins: Vec<Weighted>, percentage_of_nodes_to_score: u32) -> Self {
        Profile {
            plugins,
            percentage_of_nodes_to_score,
            next_start: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// The plugins' names, in order.
    pub fn plugin_names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|w| w.plugin.name()).collect()
    }

    fn random(&mut self, bound: usize) -> usize {
        // xorshift64*: cheap, and deterministic for benchmarks
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x % bound.max(1) as u64) as usize
    }

    /// Runs one scheduling cycle for `pod` against `cache`.
    pub fn schedule(
        &mut self,
        pod: &PodInfo,
        cache: &ClusterCache,
    ) -> Result<Decision, ScheduleError> {
        let nodes = cache.nodes();
        if nodes.is_empty() {
            return Err(ScheduleError::NoNodes);
        }
        let may_preempt = pod.spec().preemption_policy.as_deref() != Some("Never");
        let mut cx = Cycle {
            pod,
            cache,
            state: CycleState::default(),
        };
        let mut active = Vec::with_capacity(self.plugins.len());
        for (i, w) in self.plugins.iter().enumerate() {
            match w.plugin.pre_filter(&mut cx) {
                PreFilter::Run => active.push(i),
                PreFilter::Skip => {}
                PreFilter::Reject(r) => {
                    return Err(ScheduleError::Fit(FitError {
                        num_all_nodes: nodes.len(),
                        statuses: nodes.iter().map(|n| (n.name.clone(), r.clone())).collect(),
                        pre_filter: Some(r),
                        may_preempt,
                    }));
                }
            }
        }
        let want = feasible_nodes_to_find(nodes.len(), self.percentage_of_nodes_to_score);
        let start = self.next_start % nodes.len();
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(nodes.len()));
        let mut statuses = Vec::new();
        let mut evaluated = 0;
        for k in 0..nodes.len() {
            if feasible.len() >= want {
                break;
            }
            let node = &nodes[(start + k) % nodes.len()];
            evaluated += 1;
            let mut rejected = None;
            for &i in &active {
                if let Err(r) = self.plugins[i].plugin.filter(&cx, node) {
                    rejected = Some(r);
                    break;
                }
            }
            match rejected {
                Some(r) => statuses.push((node.name.clone(), r)),
                None => feasible.push(node),
            }
        }
        self.next_start = (start + evaluated) % nodes.len();
        if feasible.is_empty() {
            return Err(ScheduleError::Fit(FitError {
                num_all_nodes: nodes.len(),
                statuses,
                pre_filter: None,
                may_preempt,
            }));
        }
        let num_feasible = feasible.len();
        if feasible.len() == 1 {
            return Ok(Decision {
                node: feasible[0].name.clone(),
                evaluated,
                feasible: 1,
            });
        }
        let mut totals = vec![0i64; feasible.len()];
        let mut scores = vec![0i64; feasible.len()];
        for w in &self.plugins {
            if w.weight == 0 || !w.plugin.pre_score(&mut cx, &feasible) {
                continue;
            }
            for (s, n) in scores.iter_mut().zip(&feasible) {
                *s = w.plugin.score(&cx, n);
            }
            w.plugin.normalize(&cx, &mut scores);
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s * w.weight;
            }
        }
        // the best score; ties broken uniformly at random (reservoir sampling)
        let mut best = 0;
        let mut ties = 1;
        for i in 1..totals.len() {
            if totals[i] > totals[best] {
                best = i;
                ties = 1;
            } else if totals[i] == totals[best] {
                ties += 1;
                if self.random(ties) == 0 {
                    best = i;
                }
            }
        }
        Ok(Decision {
            node: feasible[best].name.clone(),
            evaluated,
            feasible: num_feasible,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rej(plugin: &'static str, code: Code, reasons: &[&str]) -> Rejection {
        Rejection {
            plugin,
            code,
            reasons: reasons.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_message_is_kube_schedulers() {
        let taint = "node(s) had untolerated taint {dedicated: gpu}";
        let f = FitError {
            num_all_nodes: 5,
            statuses: vec![
                (
                    "a".into(),
                    rej("Fit", Code::Unschedulable, &["Insufficient cpu"]),
                ),
                (
                    "b".into(),
                    rej("Fit", Code::Unschedulable, &["Insufficient cpu"]),
                ),
                (
                    "c".into(),
                    rej("Fit", Code::Unschedulable, &["Insufficient cpu"]),
                ),
                (
                    "d".into(),
                    rej("T", Code::UnschedulableAndUnresolvable, &[taint]),
                ),
                (
                    "e".into(),
                    rej("T", Code::UnschedulableAndUnresolvable, &[taint]),
                ),
            ],
            pre_filter: None,
            may_preempt: true,
        };
        assert_eq!(
            f.message(),
            "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}, 3 Insufficient cpu. \
             preemption: 0/5 nodes are available: 2 Preemption is not helpful for scheduling, \
             3 No preemption victims found for incoming pod."
        );
        let never = FitError {
            may_preempt: false,
            ..f.clone()
        };
        assert!(
            never
                .message()
                .ends_with("preemption: not eligible due to preemptionPolicy=Never.")
        );
    }

    #[test]
    fn several_reasons_per_node_all_count_and_sorting_is_by_text() {
        let f = FitError {
            num_all_nodes: 12,
            statuses: (0..12)
                .map(|i| {
                    let reasons: &[&str] = if i < 10 {
                        &["Insufficient cpu", "Insufficient memory"]
                    } else {
                        &["Too many pods"]
                    };
                    (format!("n{i}"), rej("Fit", Code::Unschedulable, reasons))
                })
                .collect(),
            pre_filter: None,
            may_preempt: true,
        };
        assert_eq!(
            f.message(),
            "0/12 nodes are available: 10 Insufficient cpu, 10 Insufficient memory, 2 Too many pods. \
             preemption: 0/12 nodes are available: 12 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn sampling_follows_percentage_of_nodes_to_score() {
        assert_eq!(feasible_nodes_to_find(50, 0), 50);
        assert_eq!(feasible_nodes_to_find(100, 0), 100);
        // 1000 nodes: 50 - 8 = 42%
        assert_eq!(feasible_nodes_to_find(1000, 0), 420);
        // 5000 nodes: 50 - 40 = 10%
        assert_eq!(feasible_nodes_to_find(5000, 0), 500);
        // 10000 nodes: floor at 5%
        assert_eq!(feasible_nodes_to_find(10_000, 0), 500);
        assert_eq!(feasible_nodes_to_find(1000, 100), 1000);
        assert_eq!(feasible_nodes_to_find(1000, 1), 100);
    }

    #[test]
    fn default_normalize_scales_and_reverses() {
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, false);
        assert_eq!(s, vec![0, 50, 100]);
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 50, 0]);
        let mut s = vec![0, 0];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 100]);
    }
}
