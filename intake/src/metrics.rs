//! Intake's Prometheus metrics: `korral_drift_objects{source}` (objects
//! drifted at the last check), syncs by source and result, and sync
//! duration. Rendered in the text format for the server's `/metrics`.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    source: String,
    result: String,
}

type Histograms = Family<SourceLabels, Histogram, fn() -> Histogram>;

fn sync_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

/// Intake's metrics.
pub struct IntakeMetrics {
    registry: Registry,
    drift: Family<SourceLabels, Gauge<i64, AtomicI64>>,
    syncs: Family<ResultLabels, Counter>,
    duration: Histograms,
}

impl IntakeMetrics {
    /// A fresh set.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let drift = Family::<SourceLabels, Gauge<i64, AtomicI64>>::default();
        let syncs = Family::<ResultLabels, Counter>::default();
        let duration: Histograms = Family::new_with_constructor(sync_buckets);
        registry.register(
            "korral_drift_objects",
            "Objects of a source that differ from the cluster (modified, missing or extra) at the last check",
            drift.clone(),
        );
        registry.register(
            "korral_intake_syncs",
            "Syncs by source and result (synced, invalid, fetch_failed, apply_failed)",
            syncs.clone(),
        );
        registry.register(
            "korral_intake_sync_duration_seconds",
            "Time from fetch to status of a sync",
            duration.clone(),
        );
        Arc::new(IntakeMetrics {
            registry,
            drift,
            syncs,
            duration,
        })
    }

    /// Records the drift count of `source` (`namespace/name`); returns the
    /// count before (0 for a source not seen yet).
    pub fn set_drift(&self, source: &str, objects: usize) -> i64 {
        self.drift
            .get_or_create(&SourceLabels {
                source: source.to_string(),
            })
            .set(objects as i64)
    }

    /// Forgets a deleted source.
    pub fn forget(&self, source: &str) {
        let s = SourceLabels {
            source: source.to_string(),
        };
        self.drift.remove(&s);
        self.duration.remove(&s);
    }

    /// Records a sync's result and duration.
    pub fn synced(&self, source: &str, result: &str, seconds: f64) {
        self.syncs
            .get_or_create(&ResultLabels {
                source: source.to_string(),
                result: result.to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&SourceLabels {
                source: source.to_string(),
            })
            .observe(seconds);
    }

    /// The text exposition format (without the trailing `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode intake metrics");
        }
        out.strip_suffix("# EOF\n")
            .map(str::to_string)
            .unwrap_or(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_gauge_is_labelled_by_source() {
        let m = IntakeMetrics::new();
        m.set_drift("default/demo", 2);
        m.synced("default/demo", "synced", 0.5);
        let text = m.render();
        assert!(
            text.contains("korral_drift_objects{source=\"default/demo\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("korral_intake_syncs_total{source=\"default/demo\",result=\"synced\"} 1"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
        m.forget("default/demo");
        assert!(!m.render().contains("korral_drift_objects{"));
    }
}
