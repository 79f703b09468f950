//! Reading node daemons' `/stats/summary` for the Metrics API, as
//! metrics-server scrapes kubelets but on demand: each node's summary is
//! kept for [`CACHE_FOR`] (metrics-server scrapes every 15 s), one scrape
//! per node at a time (concurrent requests for the same node wait for it),
//! at most [`CONCURRENT_SCRAPES`] nodes at once, each within
//! [`SCRAPE_TIMEOUT`]. A node that fails is logged and left out (for
//! [`CACHE_FOR`] too); it never fails the whole answer. The connection is
//! the one `pods/log` and `pods/exec` use (`http::node_proxy`: the node's
//! pinned certificate, the API server's kubelet-client certificate).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemas::kubelet_stats::{STATS_PATH_ANNOTATION, Summary};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::http::App;
use crate::http::node_proxy;

/// How long a node's summary (or its failure) is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(5);
/// Most nodes scraped at once.
pub const CONCURRENT_SCRAPES: usize = 32;
/// The longest a scrape may take.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Option<Arc<Summary>>)>>>;

/// The scraper and its cache.
pub struct Scraper {
    slots: Mutex<HashMap<String, Slot>>,
    clients: Mutex<HashMap<(String, String), reqwest::Client>>,
    permits: Semaphore,
}

impl Default for Scraper {
    fn default() -> Self {
        Scraper {
            slots: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            permits: Semaphore::new(CONCURRENT_SCRAPES),
        }
    }
}

/// Whether a Node's `Ready` condition is `True`.
pub fn node_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

impl Scraper {
    /// The summary of the node `node` (its Node object), from the cache or
    /// scraped now; `None` when the node is not Ready or cannot be read.
    pub async fn summary(&self, app: &App, node: &Value) -> Option<Arc<Summary>> {
        let name = node.pointer("/metadata/name").and_then(Value::as_str)?;
        if !node_ready(node) {
            return None;
        }
        let slot = {
            let mut slots = self.slots.lock().ok()?;
            slots.entry(name.to_string()).or_default().clone()
        };
        let mut cached = slot.lock().await;
        if let Some((at, summary)) = cached.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return summary.clone();
        }
        let fresh = match self.scrape(app, name, node).await {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                tracing::warn!(node = name, error = %e, "cannot read the node's resource usage; leaving it out");
                None
            }
        };
        *cached = Some((Instant::now(), fresh.clone()));
        fresh
    }

    /// Forgets nodes that are gone (called with the nodes that exist).
    pub fn retain(&self, names: &std::collections::HashSet<&str>) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.retain(|n, _| names.contains(n.as_str()));
        }
    }

    fn client(&self, app: &App, ep: &node_proxy::NodeEndpoint) -> Result<reqwest::Client, String> {
        let key = (ep.base.clone(), ep.sha256.clone());
        if let Some(c) = self.clients.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(c);
        }
        let c = node_proxy::client(app, ep).map_err(|e| e.message)?;
        if let Ok(mut m) = self.clients.lock() {
            // a node that moved leaves a stale client: keep the map small
            if m.len() > 4096 {
                m.clear();
            }
            m.insert(key, c.clone());
        }
        Ok(c)
    }

    async fn scrape(&self, app: &App, name: &str, node: &Value) -> Result<Summary, String> {
        let ep = node_proxy::endpoint_of(name, node).map_err(|e| e.message)?;
        let path = node
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(STATS_PATH_ANNOTATION))
            .and_then(Value::as_str)
            .filter(|p| p.starts_with('/'))
            .unwrap_or("/stats/summary");
        let client = self.client(app, &ep)?;
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let url = format!("{}{path}", ep.base);
        let resp = client
            .get(&url)
            .timeout(SCRAPE_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: {}", resp.status()));
        }
        let bytes = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("GET {url}: not a summary: {e}"))
    }
}
