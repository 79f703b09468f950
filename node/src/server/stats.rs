//! The kubelet's resource endpoints on the node's HTTPS port (behind the
//! same client-certificate check as logs and exec): `/stats/summary` (the
//! Summary API the API server's Metrics API reads), `/metrics/resource`
//! (the same figures as Prometheus text, as metrics-server 0.6+ scrapes
//! them) and `/metrics` (the node daemon's own metrics: its pod-sync
//! controller, plus the node's resource figures).
//!
//! Simulated nodes (`korral node --simulate N`) share one endpoint per
//! process: node `NAME`'s figures are under `/nodes/NAME/…`, and its Node
//! names that path in `korral.dev/stats-summary-path`, as kwok's nodes name
//! theirs for metrics-server.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reconcilers::runtime::ControllerMetrics;

use crate::stats::{Stats, prometheus};

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn summary_of(stats: &Stats) -> Response {
    axum::Json(stats.summary().await).into_response()
}

async fn resource_of(stats: &Stats) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, PROMETHEUS_TEXT)],
        prometheus::render(&stats.summary().await),
    )
        .into_response()
}

/// `/stats/summary`, `/metrics/resource` and `/metrics` of one node.
pub fn routes(stats: Arc<Stats>, metrics: Arc<ControllerMetrics>) -> Router {
    Router::new()
        .route(
            "/stats/summary",
            get(|State(s): State<Arc<Stats>>| async move { summary_of(&s).await }),
        )
        .route(
            "/metrics/resource",
            get(|State(s): State<Arc<Stats>>| async move { resource_of(&s).await }),
        )
        .route(
            "/metrics",
            get(move |State(s): State<Arc<Stats>>| async move {
                let mut text = metrics.render();
                text.push_str(&prometheus::render(&s.summary().await));
                ([(axum::http::header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response()
            }),
        )
        .with_state(stats)
}

/// The simulated nodes of one process, by name, behind their shared endpoint.
#[derive(Default)]
pub struct Directory {
    nodes: RwLock<HashMap<String, Arc<Stats>>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.nodes.read().map(|m| m.len()).unwrap_or(0);
        write!(f, "Directory({n} nodes)")
    }
}

impl Directory {
    /// Serves `node`'s figures.
    pub fn insert(&self, node: &str, stats: Arc<Stats>) {
        if let Ok(mut m) = self.nodes.write() {
            m.insert(node.to_string(), stats);
        }
    }

    /// Stops serving `node`'s figures.
    pub fn remove(&self, node: &str) {
        if let Ok(mut m) = self.nodes.write() {
            m.remove(node);
        }
    }

    fn get(&self, node: &str) -> Option<Arc<Stats>> {
        self.nodes.read().ok()?.get(node).cloned()
    }
}

/// Where a simulated node's summary is on the shared endpoint.
pub fn summary_path(node: &str) -> String {
    format!("/nodes/{node}/stats/summary")
}

fn unknown(node: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no node {node:?} on this endpoint\n"),
    )
        .into_response()
}

/// The shared endpoint's routes: `/nodes/{node}/stats/summary` and `/nodes/{node}/metrics/resource`.
pub fn shared_routes(directory: Arc<Directory>) -> Router {
    Router::new()
        .route(
            "/nodes/{node}/stats/summary",
            get(
                |State(d): State<Arc<Directory>>, Path(node): Path<String>| async move {
                    match d.get(&node) {
                        Some(s) => summary_of(&s).await,
                        None => unknown(&node),
                    }
                },
            ),
        )
        .route(
            "/nodes/{node}/metrics/resource",
            get(
                |State(d): State<Arc<Directory>>, Path(node): Path<String>| async move {
                    match d.get(&node) {
                        Some(s) => resource_of(&s).await,
                        None => unknown(&node),
                    }
                },
            ),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(directory)
}

/// A shared endpoint simulated nodes publish: its port, its certificate's
/// fingerprint, and the directory it serves.
#[derive(Clone, Debug)]
pub struct SharedEndpoint {
    /// The port (the Nodes' `daemonEndpoints.kubeletEndpoint.Port`).
    pub port: u16,
    /// SHA-256 of its serving certificate (the Nodes' `korral.dev/serving-cert-sha256`).
    pub cert_sha256: String,
    /// The nodes it serves.
    pub directory: Arc<Directory>,
}

/// Starts the endpoint the simulated nodes of this process share, on a free
/// port of `ip`, with a self-signed certificate kept in `dir` and client
/// certificates required from `ca_pem` (the API server's), as a node's own.
pub fn serve_shared(
    ip: std::net::IpAddr,
    dir: &std::path::Path,
    ca_pem: &str,
    sans: &[String],
) -> Result<(SharedEndpoint, tokio::task::JoinHandle<()>), String> {
    let ep = super::bind(std::net::SocketAddr::new(ip, 0))?;
    let cert = super::tls::load_or_create(dir, sans)?;
    let tls = super::tls::server_config(&cert, ca_pem)?;
    let shared = SharedEndpoint {
        port: ep.addr.port(),
        cert_sha256: cert.sha256.clone(),
        directory: Arc::new(Directory::default()),
    };
    tracing::info!(addr = %ep.addr, "serving the simulated nodes' resource figures over HTTPS");
    let task = tokio::spawn(ep.serve(tls, shared_routes(shared.directory.clone())));
    Ok((shared, task))
}
