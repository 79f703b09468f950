//! `pods/portforward` as kubectl speaks it: SPDY/3.1 sessions
//! ([`spdy`](crate::http::spdy)) whose client opens, per forwarded
//! connection, an `error` and a `data` stream with the same `requestID` and
//! the pod's `port` — carried in WebSocket binary messages (subprotocol
//! `SPDY/3.1+portforward.k8s.io`, kubectl 1.31 and later) or on a raw
//! connection upgraded to `SPDY/3.1` (older kubectl, or
//! `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`). Each data stream becomes one
//! streaming request to the pod's node daemon (`POST /portforward/...`),
//! which connects to the port: bytes flow both ways as they come, either
//! side's end is passed on as a FIN, and a connection the node cannot make
//! is reported on the error stream as the kubelet words it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::errors::{ApiError, ApiResult};
use crate::http::App;
use crate::http::node_proxy::{client, endpoint, namespace_and_name};
use crate::http::spdy::{self, Codec, FLAG_FIN, Frame};

/// The WebSocket subprotocol of SPDY tunnelled in WebSocket messages.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The `X-Stream-Protocol-Version` of a raw SPDY upgrade.
pub const STREAM_PROTOCOL: &str = "portforward.k8s.io";

/// How many chunks wait for the node (per connection) before the client's
/// session is read no further.
const QUEUE: usize = 16;
/// The largest data frame sent to the client (spdystream's size).
const CHUNK: usize = 32 * 1024;

/// The two streams of one forwarded connection, as they arrive.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<u32>,
    port: u16,
}

/// One SPDY session: `incoming` are the client's bytes as they arrive,
/// `outgoing` takes the bytes to send it.
async fn session(
    app: Arc<App>,
    pod: Value,
    node: String,
    mut incoming: mpsc::Receiver<Bytes>,
    outgoing: mpsc::Sender<Bytes>,
) {
    let mut codec = Codec::new();
    let (events, mut event_rx) = mpsc::channel::<Frame>(64);
    // per request id, the streams seen so far; per data stream, where its bytes go
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut to_node: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        tokio::select! {
            chunk = incoming.recv() => {
                let Some(chunk) = chunk else { break };
                codec.push(&chunk);
                loop {
                    let frame = match codec.next_frame() {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::info!(error = %e, "port-forward session ended on a bad frame");
                            return;
                        }
                    };
                    let mut replies = Vec::new();
                    match frame {
                        Frame::SynStream { stream_id, headers, .. } => {
                            let kind = spdy::header(&headers, "streamtype").unwrap_or("").to_string();
                            let request = spdy::header(&headers, "requestid").unwrap_or("").to_string();
                            let port = spdy::header(&headers, "port").and_then(|p| p.parse::<u16>().ok());
                            let Some(port) = port.filter(|p| *p > 0) else {
                                replies.push(Frame::RstStream { stream_id, status: spdy::RST_REFUSED_STREAM });
                                send_all(&mut codec, &outgoing, replies).await;
                                continue;
                            };
                            replies.push(Frame::SynReply { stream_id, flags: 0, headers: vec![] });
                            let pair = pairs.entry(request.clone()).or_default();
                            pair.port = port;
                            match kind.as_str() {
                                "error" => pair.error = Some(stream_id),
                                "data" => pair.data = Some(stream_id),
                                _ => {}
                            }
                            if let (Some(error), Some(data)) = (pair.error, pair.data) {
                                let port = pair.port;
                                pairs.remove(&request);
                                let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
                                to_node.insert(data, tx);
                                tokio::spawn(forward(app.clone(), pod.clone(), node.clone(), port, error, data, rx, events.clone()));
                            }
                        }
                        Frame::Data { stream_id, flags, data } => {
                            if let Some(tx) = to_node.get(&stream_id) {
                                if !data.is_empty() && tx.send(data).await.is_err() {
                                    to_node.remove(&stream_id);
                                }
                                if flags & FLAG_FIN != 0 {
                                    // the client's half is done: the node sees the body end
                                    to_node.remove(&stream_id);
                                }
                            }
                        }
                        Frame::RstStream { stream_id, .. } => {
                            to_node.remove(&stream_id);
                        }
                        Frame::Ping { id } => replies.push(Frame::Ping { id }),
                        Frame::GoAway { .. } => return,
                        Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Settings | Frame::WindowUpdate => {}
                    }
                    send_all(&mut codec, &outgoing, replies).await;
                }
            }
            Some(frame) = event_rx.recv() => {
                send_all(&mut codec, &outgoing, vec![frame]).await;
            }
        }
    }
}

async fn send_all(codec: &mut Codec, outgoing: &mpsc::Sender<Bytes>, frames: Vec<Frame>) {
    for f in frames {
        match codec.encode(&f) {
            Ok(b) => {
                let _ = outgoing.send(b).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode a SPDY frame"),
        }
    }
}

/// One forwarded connection: a streaming request to the node daemon whose
/// body is what the client sends on the data stream and whose response is
/// what the pod answers.
#[allow(clippy::too_many_arguments)]
async fn forward(
    app: Arc<App>,
    pod: Value,
    node: String,
    port: u16,
    error_stream: u32,
    data_stream: u32,
    from_client: mpsc::Receiver<Bytes>,
    events: mpsc::Sender<Frame>,
) {
    let send = |frame: Frame| {
        let events = events.clone();
        async move { events.send(frame).await.is_ok() }
    };
    let fin = |stream_id| Frame::Data {
        stream_id,
        flags: FLAG_FIN,
        data: Bytes::new(),
    };
    match open_on_node(&app, &pod, &node, port, from_client).await {
        Ok(resp) => {
            let mut body = resp.bytes_stream();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else { break };
                for part in chunk.chunks(CHUNK) {
                    let frame = Frame::Data {
                        stream_id: data_stream,
                        flags: 0,
                        data: Bytes::copy_from_slice(part),
                    };
                    if !send(frame).await {
                        return;
                    }
                }
            }
        }
        Err(e) => {
            let (ns, name) = namespace_and_name(&pod);
            let message = format!("error forwarding port {port} to pod {ns}/{name}: {e}");
            tracing::info!(%message, "port-forward");
            send(Frame::Data {
                stream_id: error_stream,
                flags: 0,
                data: Bytes::from(message),
            })
            .await;
        }
    }
    send(fin(data_stream)).await;
    send(fin(error_stream)).await;
}

/// Asks the node daemon to connect to the pod's `port`; the response body
/// is what the pod sends.
async fn open_on_node(
    app: &App,
    pod: &Value,
    node: &str,
    port: u16,
    from_client: mpsc::Receiver<Bytes>,
) -> Result<reqwest::Response, String> {
    let ep = endpoint(app, node).await.map_err(|e| e.message)?;
    let (ns, name) = namespace_and_name(pod);
    let url = format!("{}/portforward/{ns}/{name}", ep.base);
    let stream = futures_util::stream::unfold(from_client, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let resp = client(app, &ep)
        .map_err(|e| e.message)?
        .post(&url)
        .query(&[("port", port.to_string())])
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .map_err(|e| format!("cannot reach node {node:?} at {}: {e}", ep.base))?;
    if !resp.status().is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(text.trim().to_string());
    }
    Ok(resp)
}

/// Runs a session over a WebSocket carrying SPDY bytes in binary messages.
async fn over_websocket(socket: WebSocket, app: Arc<App>, pod: Value, node: String) {
    let (mut sink, mut stream) = socket.split();
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(QUEUE);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(QUEUE);
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            let data = match m {
                Message::Binary(b) => b,
                Message::Text(t) => Bytes::from(t.as_str().as_bytes().to_vec()),
                Message::Close(_) => break,
                _ => continue,
            };
            if in_tx.send(data).await.is_err() {
                break;
            }
        }
    });
    let writer = tokio::spawn(async move {
        use futures_util::SinkExt;
        while let Some(b) = out_rx.recv().await {
            if sink.send(Message::Binary(b)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    session(app, pod, node, in_rx, out_tx).await;
    reader.abort();
    let _ = writer.await;
}

/// Runs a session over a raw upgraded connection.
pub async fn over_connection<S>(io: S, app: Arc<App>, pod: Value, node: String)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(QUEUE);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(QUEUE);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if in_tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(b) = out_rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    session(app, pod, node, in_rx, out_tx).await;
    reader.abort();
    let _ = writer.await;
}

/// Whether a request asks for a raw SPDY upgrade.
pub fn wants_spdy(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"))
}

/// Answers a port-forward request: a WebSocket tunnel, or a raw SPDY
/// upgrade, or an error saying what is missing.
pub fn serve(
    app: Arc<App>,
    pod: Value,
    node: String,
    upgrade: Option<WebSocketUpgrade>,
    raw: Option<hyper::upgrade::OnUpgrade>,
    headers: &axum::http::HeaderMap,
) -> ApiResult<Response> {
    if let Some(ws) = upgrade {
        return Ok(ws
            .protocols([TUNNEL_PROTOCOL])
            .on_upgrade(move |socket| over_websocket(socket, app, pod, node))
            .into_response());
    }
    if wants_spdy(headers) {
        let raw = raw.ok_or_else(|| {
            ApiError::bad_request("the connection cannot be upgraded (HTTP/2?); use HTTP/1.1")
        })?;
        tokio::spawn(async move {
            match raw.await {
                Ok(upgraded) => {
                    over_connection(hyper_util::rt::TokioIo::new(upgraded), app, pod, node).await
                }
                Err(e) => tracing::info!(error = %e, "port-forward upgrade failed"),
            }
        });
        return Ok(Response::builder()
            .status(axum::http::StatusCode::SWITCHING_PROTOCOLS)
            .header(axum::http::header::CONNECTION, "Upgrade")
            .header(axum::http::header::UPGRADE, "SPDY/3.1")
            .header("X-Stream-Protocol-Version", STREAM_PROTOCOL)
            .body(axum::body::Body::empty())
            .unwrap_or_default());
    }
    Err(ApiError::bad_request(format!(
        "pods/portforward needs an upgrade: a WebSocket with subprotocol {TUNNEL_PROTOCOL} or Upgrade: SPDY/3.1 with X-Stream-Protocol-Version: {STREAM_PROTOCOL}"
    )))
}
