//! The Ingress controller's reverse proxy: HTTP/1.1 and HTTP/2 (h2 by ALPN
//! on TLS, prior knowledge in clear) from clients, HTTP/1.1 over pooled
//! connections to the chosen endpoint, upgrades (WebSocket) passed through
//! as byte streams, ingress-nginx's forwarding headers (`X-Forwarded-For`
//! set to the peer, `-Proto`, `-Host`, `-Port`, `X-Real-IP`), hop-by-hop
//! headers dropped, 404 without a rule, 503 without a ready endpoint, 502
//! when the endpoint fails (a request without a body tries the next one).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::Shared;
use super::routes::Route;

/// Bodies sent and received.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Headers that belong to one connection, not to the request (RFC 9110 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The proxy: the routing table and a pooled client to the endpoints.
#[derive(Clone)]
pub struct Proxy {
    shared: Shared,
    client: HttpClient<HttpConnector, Body>,
}

/// A short text answer.
fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers, and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for h in named {
        headers.remove(h);
    }
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
}

/// What the proxy knows of the connection a request came on.
#[derive(Clone, Copy)]
struct Conn {
    peer: SocketAddr,
    local_port: u16,
    tls: bool,
}

impl Proxy {
    /// A proxy routing by `shared`'s table.
    pub fn new(shared: Shared) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Proxy { shared, client }
    }

    /// Accepts connections on `listener` (TLS when `tls` is given) until dropped.
    pub async fn serve(self, listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>) {
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "ingress: accept failed");
                    tokio::time::sleep(crate::proxy::ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let conn = Conn {
                peer,
                local_port,
                tls: acceptor.is_some(),
            };
            let (proxy, acceptor) = (self.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => match a.accept(stream).await {
                        Ok(s) => proxy.serve_connection(s, conn).await,
                        Err(e) => {
                            tracing::debug!(error = %e, %peer, "ingress: TLS handshake failed")
                        }
                    },
                    None => proxy.serve_connection(stream, conn).await,
                }
            });
        }
    }

    async fn serve_connection<I>(self, io: I, conn: Conn)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |req| {
            let proxy = self.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, conn).await) }
        });
        if let Err(e) = auto::Builder::new(TokioExecutor::new())
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .await
        {
            tracing::debug!(error = %e, peer = %conn.peer, "ingress: connection ended");
        }
    }

    async fn handle(&self, mut req: Request<Incoming>, conn: Conn) -> Response<Body> {
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let path = req.uri().path().to_string();
        let upstream = match self.shared.table().route(&host, &path) {
            Route::NotFound => {
                return text(
                    StatusCode::NOT_FOUND,
                    format!("404 Not Found: no Ingress rule for host {host:?} and path {path:?}\n"),
                );
            }
            Route::Backend(u) => u,
        };
        let upgrade = req.version() == Version::HTTP_11 && is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let upgrade_headers = upgrade.then(|| {
            (
                req.headers().get(header::UPGRADE).cloned(),
                HeaderValue::from_static("upgrade"),
            )
        });
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some((Some(up), conn_value)) = upgrade_headers {
            parts.headers.insert(header::UPGRADE, up);
            parts.headers.insert(header::CONNECTION, conn_value);
        }
        if !parts.headers.contains_key(header::HOST)
            && let Ok(h) = HeaderValue::from_str(&host)
        {
            parts.headers.insert(header::HOST, h);
        }
        let ip = conn.peer.ip().to_string();
        let forwarded = [
            ("x-forwarded-for", ip.clone()),
            ("x-real-ip", ip),
            ("x-forwarded-host", host.clone()),
            ("x-forwarded-port", conn.local_port.to_string()),
            (
                "x-forwarded-proto",
                if conn.tls { "https" } else { "http" }.to_string(),
            ),
        ];
        for (name, value) in forwarded {
            if let Ok(v) = HeaderValue::from_str(&value) {
                parts.headers.insert(name, v);
            }
        }
        parts.version = Version::HTTP_11;
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        // a request without a body can be sent again to another endpoint
        let retry = body.is_end_stream();
        let mut body = Some(body.boxed());
        let attempts = if retry {
            upstream.addrs.len().min(3)
        } else {
            1
        };
        let mut last_error = String::new();
        for _ in 0..attempts.max(1) {
            let Some(addr) = upstream.pick() else {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "503 Service Unavailable: no ready endpoints for {}\n",
                        upstream.name
                    ),
                );
            };
            let Ok(uri) = format!("http://{addr}{path_and_query}").parse::<http::Uri>() else {
                return text(StatusCode::BAD_REQUEST, "400 Bad Request\n".into());
            };
            let mut out = Request::new(
                body.take()
                    .unwrap_or_else(|| Empty::new().map_err(|e| match e {}).boxed()),
            );
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = uri;
            *out.version_mut() = Version::HTTP_11;
            *out.headers_mut() = parts.headers.clone();
            match self.client.request(out).await {
                Ok(mut resp) => {
                    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
                        && let Some(client_side) = client_upgrade
                    {
                        let backend_side = hyper::upgrade::on(&mut resp);
                        tokio::spawn(async move {
                            if let (Ok(c), Ok(b)) = tokio::join!(client_side, backend_side) {
                                let _ = tokio::io::copy_bidirectional(
                                    &mut TokioIo::new(c),
                                    &mut TokioIo::new(b),
                                )
                                .await;
                            }
                        });
                        let (parts, _) = resp.into_parts();
                        return Response::from_parts(
                            parts,
                            Empty::new().map_err(|e| match e {}).boxed(),
                        );
                    }
                    let (mut parts, body) = resp.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    return Response::from_parts(parts, body.boxed());
                }
                Err(e) => {
                    last_error = format!("{addr}: {e}");
                    if !e.is_connect() {
                        break;
                    }
                }
            }
        }
        text(
            StatusCode::BAD_GATEWAY,
            format!(
                "502 Bad Gateway: {} did not answer ({last_error})\n",
                upstream.name
            ),
        )
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
