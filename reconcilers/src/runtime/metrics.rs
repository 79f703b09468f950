//! Prometheus metrics of controllers: queue depth, adds, retries, reconcile
//! duration and errors, labelled by controller (what kube-rs lacks, #1916/#1917).

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

type Histograms = Family<ControllerLabel, Histogram, fn() -> Histogram>;

fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// Metrics of every controller in a process.
pub struct ControllerMetrics {
    registry: std::sync::Mutex<Registry>,
    depth: Family<ControllerLabel, Gauge<i64, AtomicI64>>,
    adds: Family<ControllerLabel, Counter>,
    retries: Family<ControllerLabel, Counter>,
    errors: Family<ControllerLabel, Counter>,
    reconciles: Family<ControllerLabel, Counter>,
    duration: Histograms,
    leader: Gauge<i64, AtomicI64>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let depth = Family::<ControllerLabel, Gauge<i64, AtomicI64>>::default();
        let adds = Family::<ControllerLabel, Counter>::default();
        let retries = Family::<ControllerLabel, Counter>::default();
        let errors = Family::<ControllerLabel, Counter>::default();
        let reconciles = Family::<ControllerLabel, Counter>::default();
        let duration: Histograms = Family::new_with_constructor(reconcile_histogram);
        let leader = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "workqueue_depth",
            "Keys waiting in the controller's queue",
            depth.clone(),
        );
        registry.register(
            "workqueue_adds",
            "Keys added to the controller's queue",
            adds.clone(),
        );
        registry.register(
            "workqueue_retries",
            "Rate-limited requeues after failures",
            retries.clone(),
        );
        registry.register(
            "controller_reconcile_errors",
            "Reconciles that failed",
            errors.clone(),
        );
        registry.register(
            "controller_reconciles",
            "Reconciles run",
            reconciles.clone(),
        );
        registry.register(
            "controller_reconcile_duration_seconds",
            "Reconcile duration",
            duration.clone(),
        );
        registry.register(
            "leader_election_master_status",
            "1 while this process leads",
            leader.clone(),
        );
        ControllerMetrics {
            registry: std::sync::Mutex::new(registry),
            depth,
            adds,
            retries,
            errors,
            reconciles,
            duration,
            leader,
        }
    }
}

impl ControllerMetrics {
    /// Shared metrics.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn l(name: &str) -> ControllerLabel {
        ControllerLabel {
            controller: name.to_string(),
        }
    }

    /// Records a finished reconcile.
    pub fn reconciled(&self, controller: &str, took: Duration, failed: bool) {
        let l = Self::l(controller);
        self.reconciles.get_or_create(&l).inc();
        self.duration.get_or_create(&l).observe(took.as_secs_f64());
        if failed {
            self.errors.get_or_create(&l).inc();
        }
    }

    /// Publishes the queue's depth and counters.
    pub fn queue(&self, controller: &str, depth: usize, adds: u64, retries: u64) {
        let l = Self::l(controller);
        self.depth
            .get_or_create(&l)
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
        let a = self.adds.get_or_create(&l);
        a.inc_by(adds.saturating_sub(a.get()));
        let r = self.retries.get_or_create(&l);
        r.inc_by(retries.saturating_sub(r.get()));
    }

    /// Whether this process is the leader.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock()
            && let Err(e) = prometheus_client::encoding::text::encode(&mut out, &r)
        {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_per_controller_series() {
        let m = ControllerMetrics::default();
        m.reconciled("replicaset", Duration::from_millis(3), false);
        m.reconciled("replicaset", Duration::from_millis(3), true);
        m.queue("replicaset", 4, 10, 2);
        let t = m.render();
        assert!(
            t.contains("controller_reconciles_total{controller=\"replicaset\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("controller_reconcile_errors_total{controller=\"replicaset\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("workqueue_depth{controller=\"replicaset\"} 4"),
            "{t}"
        );
        assert!(
            t.contains("workqueue_adds_total{controller=\"replicaset\"} 10"),
            "{t}"
        );
    }
}
