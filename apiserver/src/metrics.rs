//! Prometheus metrics of the API server (`/metrics`): requests by verb,
//! resource and code, request latency, open watches, and store latency
//! (through `MeteredStore`, a `Store` that times every call).

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Instant;

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::{
    Deleted, KeyValue, ListRequest, ListResponse, Result, Revision, Store, WatchStream,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchSourceLabels {
    resource: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    operation: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Renders other components' metrics (text format) into `/metrics`.
type Collector = Box<dyn Fn() -> String + Send + Sync>;

/// The API server's metrics.
pub struct Metrics {
    registry: Registry,
    collectors: std::sync::RwLock<Vec<Collector>>,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<LatencyLabels>,
    watches: Gauge<i64, AtomicI64>,
    watch_sources: Family<WatchSourceLabels, Counter>,
    terminated: Family<ResourceLabels, Counter>,
    store_latency: HistogramFamily<StoreLabels>,
}

/// Decrements the open-watch gauge when the watch ends.
pub struct WatchGuard(Gauge<i64, AtomicI64>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily<LatencyLabels> =
            Family::new_with_constructor(latency_histogram);
        let watches = Gauge::<i64, AtomicI64>::default();
        let store_latency: HistogramFamily<StoreLabels> =
            Family::new_with_constructor(latency_histogram);
        let watch_sources = Family::<WatchSourceLabels, Counter>::default();
        let terminated = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "apiserver_request",
            "API requests by verb, resource and HTTP code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "API request latency by verb and resource",
            latency.clone(),
        );
        registry.register(
            "apiserver_longrunning_watches",
            "Open watch requests",
            watches.clone(),
        );
        registry.register(
            "korral_watch_starts",
            "Watches started, by what serves them: cache, store, or too_old (410 Gone: older than the cache's changes)",
            watch_sources.clone(),
        );
        registry.register(
            "apiserver_terminated_watchers",
            "Watchers the watch cache closed because they fell behind its changes",
            terminated.clone(),
        );
        registry.register(
            "korral_store_request_duration_seconds",
            "Store operation latency",
            store_latency.clone(),
        );
        Metrics {
            registry,
            collectors: Default::default(),
            requests,
            latency,
            watches,
            watch_sources,
            terminated,
            store_latency,
        }
    }
}

impl Metrics {
    /// Records a finished request.
    pub fn observe(&self, verb: &str, resource: &str, code: u16, started: Instant) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.to_string(),
                resource: resource.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                verb: verb.to_string(),
                resource: resource.to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts an open watch until the guard drops.
    pub fn watch_started(&self) -> WatchGuard {
        self.watches.inc();
        WatchGuard(self.watches.clone())
    }

    /// Counts a watch started from `source` (`cache`, `store`, `too_old`).
    pub fn watch_source(&self, resource: &str, source: &str) {
        self.watch_sources
            .get_or_create(&WatchSourceLabels {
                resource: resource.to_string(),
                source: source.to_string(),
            })
            .inc();
    }

    /// Counts a watcher the cache closed for falling behind.
    pub fn watcher_terminated(&self, resource: &str) {
        self.terminated
            .get_or_create(&ResourceLabels {
                resource: resource.to_string(),
            })
            .inc();
    }

    /// Adds metrics of a component running in this process (e.g. intake),
    /// rendered in the text format, to `/metrics`.
    pub fn add_collector(&self, render: impl Fn() -> String + Send + Sync + 'static) {
        self.collectors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(render));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        let collectors = self.collectors.read().unwrap_or_else(|p| p.into_inner());
        if !collectors.is_empty() {
            const EOF: &str = "# EOF\n";
            let mut merged = out.strip_suffix(EOF).unwrap_or(&out).to_string();
            for c in collectors.iter() {
                let text = c();
                merged.push_str(text.strip_suffix(EOF).unwrap_or(&text));
            }
            merged.push_str(EOF);
            out = merged;
        }
        out
    }

    fn time_store(&self, operation: &str, started: Instant) {
        self.store_latency
            .get_or_create(&StoreLabels {
                operation: operation.to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// A store that records the latency of every operation.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        MeteredStore { inner, metrics }
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn current_revision(&self) -> Result<Revision> {
        let t = Instant::now();
        let r = self.inner.current_revision().await;
        self.metrics.time_store("current_revision", t);
        r
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.inner.compacted_revision().await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let t = Instant::now();
        let r = self.inner.get(key).await;
        self.metrics.time_store("get", t);
        r
    }

    async fn list(&self, req: ListRequest) -> Result<ListResponse> {
        let t = Instant::now();
        let r = self.inner.list(req).await;
        self.metrics.time_store("list", t);
        r
    }

    async fn count(&self, req: ListRequest) -> Result<usize> {
        let t = Instant::now();
        let r = self.inner.count(req).await;
        self.metrics.time_store("count", t);
        r
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let t = Instant::now();
        let r = self.inner.create(key, value).await;
        self.metrics.time_store("create", t);
        r
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        let t = Instant::now();
        let r = self.inner.update(key, value, expected).await;
        self.metrics.time_store("update", t);
        r
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        let t = Instant::now();
        let r = self.inner.delete(key, expected).await;
        self.metrics.time_store("delete", t);
        r
    }

    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream> {
        self.inner.watch(prefix, start).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn snapshot(&self, dest: &std::path::Path) -> Result<crate::store::SnapshotWritten> {
        let t = Instant::now();
        let r = self.inner.snapshot(dest).await;
        self.metrics.time_store("snapshot", t);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_request_counts_and_watches() {
        let m = Metrics::default();
        m.observe("LIST", "pods", 200, Instant::now());
        let g = m.watch_started();
        let text = m.render();
        assert!(
            text.contains(
                "apiserver_request_total{verb=\"LIST\",resource=\"pods\",code=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("apiserver_longrunning_watches 1"), "{text}");
        drop(g);
        assert!(m.render().contains("apiserver_longrunning_watches 0"));
    }
}
