//! The node's HTTPS endpoint (the kubelet's port): container logs, exec,
//! attach and port-forward, reached only through the API server's `pods/log`,
//! `pods/exec`, `pods/attach` and `pods/portforward` proxies, and the resource figures the
//! Metrics API reads ([`stats`]). See [`tls`] for how both ends authenticate.

pub mod attach;
pub mod exec;
pub mod logs;
pub mod portforward;
pub mod stats;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::pods::PodContext;

/// The endpoint's routes.
pub fn router(ctx: Arc<PodContext>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            // the body is streamed into the command (exec::MAX_STDIN is counted as it goes)
            axum::routing::post(exec::exec),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            // the container's output from now on, exec's framed answer
            axum::routing::post(attach::attach),
        )
        .route(
            "/portforward/{namespace}/{pod}",
            // the body streams to the pod's port, the response from it
            axum::routing::post(portforward::portforward),
        )
        .with_state(ctx)
}

/// A bound, not yet serving, endpoint.
pub struct Endpoint {
    listener: std::net::TcpListener,
    /// The bound address (the port goes into the Node status).
    pub addr: SocketAddr,
}

/// Binds the endpoint's port (0 picks one).
pub fn bind(addr: SocketAddr) -> Result<Endpoint, String> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    Ok(Endpoint { listener, addr })
}

impl Endpoint {
    /// Serves `routes` (e.g. [`router`] merged with [`stats::routes`]) until the task is dropped.
    pub async fn serve(self, tls: Arc<rustls::ServerConfig>, routes: Router) {
        let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
        let server = match axum_server::from_tcp_rustls(self.listener, config) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "the node endpoint cannot serve");
                return;
            }
        };
        if let Err(e) = server.serve(routes.into_make_service()).await {
            tracing::error!(error = %e, "the node endpoint failed");
        }
    }
}
