//! `POST /portforward/{namespace}/{pod}?port=N`: one forwarded connection
//! of the API server's `pods/portforward`, like the kubelet's port-forward:
//! the node daemon connects to the pod's port and relays both ways — the
//! request body (streamed) is what the client sends, the response body
//! (streamed) what the pod answers; the body's end half-closes the
//! connection to the pod. Containerd pods are reached as the kubelet reaches
//! them: at localhost inside the pod's network namespace (the socket is made
//! there by a thread that joins it, so a server bound only to 127.0.0.1 in a
//! container answers); a host-network pod at 127.0.0.1 of the node; a pod
//! without a namespace of its own at its IP. Process-runtime pods share the
//! host's network and are reached at their loopback pod IP (or 127.0.0.1
//! without one). A connection that cannot be made is a 502 with the reason,
//! which the API server reports on the client's error stream.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pods::PodContext;
use crate::runtime::containerd::network;
use reconcilers::runtime::ObjectRef;

/// The largest chunk read from the pod at once.
const CHUNK: usize = 32 * 1024;

/// How long a connection to the pod may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a pod's port is dialled.
#[derive(Debug, PartialEq)]
enum Target {
    /// This address, from the node's network namespace.
    Node(String),
    /// localhost inside this network namespace (a containerd pod's).
    Netns(std::path::PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Node(host) => write!(f, "{host}"),
            Target::Netns(path) => write!(f, "localhost in the pod's namespace {}", path.display()),
        }
    }
}

/// Where the pod's port is reached from the node, or why it cannot be.
fn target(ctx: &PodContext, ns: &str, pod: &str) -> Result<Target, (StatusCode, String)> {
    let p = ctx
        .cache
        .get(&ObjectRef::new(Some(ns), pod))
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("pod {ns}/{pod} is not running on node {}", ctx.node),
            )
        })?;
    let ip = p
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .filter(|ip| !ip.is_empty());
    let host_network = p
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let uid = p.metadata.uid.as_deref().unwrap_or_default();
    match ctx.runtime.kind() {
        // process pods listen on their (loopback) pod IP, or on the host's
        "process" => Ok(Target::Node(ip.unwrap_or_else(|| "127.0.0.1".into()))),
        // the kubelet dials localhost in the pod's namespace: the host's for host-network pods
        "containerd" if host_network => Ok(Target::Node("127.0.0.1".into())),
        "containerd" if !uid.is_empty() && network::netns_path(uid).exists() => {
            Ok(Target::Netns(network::netns_path(uid)))
        }
        "simulated" => Err((
            StatusCode::BAD_REQUEST,
            format!("pod {ns}/{pod} runs on a simulated node, which has no network to forward to"),
        )),
        _ => ip.map(Target::Node).ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!("pod {ns}/{pod} has no IP address yet"),
            )
        }),
    }
}

/// Serves one forwarded connection.
pub async fn portforward(
    State(ctx): State<Arc<PodContext>>,
    Path((ns, pod)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let port = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "port")
        .and_then(|(_, v)| v.parse::<u16>().ok())
        .filter(|p| *p > 0);
    let Some(port) = port else {
        return (
            StatusCode::BAD_REQUEST,
            "a port between 1 and 65535 is needed",
        )
            .into_response();
    };
    let host = match target(&ctx, &ns, &pod) {
        Ok(h) => h,
        Err(r) => return r.into_response(),
    };
    let connected = match &host {
        Target::Node(addr) => tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((addr.as_str(), port)),
        )
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
        Target::Netns(path) => network::connect_in_netns(path, port, CONNECT_TIMEOUT).await,
    };
    let stream = match connected {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("failed to connect to port {port} of pod {ns}/{pod} ({host}): {e}"),
            )
                .into_response();
        }
    };
    tracing::info!(namespace = %ns, pod = %pod, port, target = %host, "port-forward connection");
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    tokio::spawn(async move {
        let mut body = body.into_data_stream();
        while let Some(Ok(chunk)) = body.next().await {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // the client's half ended: so does ours towards the pod
        let _ = wr.shutdown().await;
    });
    let out = futures_util::stream::unfold(Some(rd), |rd| async move {
        let mut rd = rd?;
        let mut buf = vec![0u8; CHUNK];
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), Some(rd)))
            }
        }
    });
    (StatusCode::OK, Body::from_stream(out)).into_response()
}
