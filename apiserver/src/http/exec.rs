//! `pods/exec` as kubectl speaks it since 1.30: a WebSocket upgrade with the
//! `v5.channel.k8s.io` (or `v4.channel.k8s.io`) subprotocol — binary
//! messages whose first byte is the stream (0 stdin, 1 stdout, 2 stderr, 3
//! the final `Status`; v5 adds 255, whose `[255, 0]` closes stdin). Like
//! the kubelet, the command starts at once on the pod's node daemon (see
//! `node_proxy`), streaming both ways: what the client sends on stream 0 is
//! passed to the node as it arrives (the request body to the node is a
//! stream), and the node's framed answer — stdout and stderr chunks as the
//! command writes them, then its exit code — is relayed on streams 1 and 2
//! as it comes. v5's close signal (or, with v4, the socket's end) closes the
//! command's stdin; when the command exits the session ends with a `Status`
//! that is `Success`, or `Failure` with reason `NonZeroExitCode` and the
//! exit code as kubectl expects it, then the socket closes — whether or not
//! the client closed stdin. A client that leaves closes the command's stdin
//! and the command runs on to its end (as with the kubelet); its output is
//! dropped. Stdin is capped at [`MAX_STDIN`].
//!
//! With a TTY (`tty=true`, kubectl's `-t`) the command runs on a terminal
//! on the node: its output, stdout and stderr in one, comes on stream 1
//! only, and kubectl's resize stream (4: `{"Width":…,"Height":…}`) is
//! passed on. The request body to the node then carries both, as frames
//! ([`input_frame`]: the stream number, the length, the bytes).
//!
//! `pods/attach` is the same session with [`Action::Attach`]: no command;
//! the node's `/attach` endpoint answers in the same frames with the
//! container's output from now on and its exit code when it stops, which
//! ends the session with `Success` (as the kubelet's attach does); stdin
//! (`-i`) goes to the container's own stdin when its spec has `stdin: true`
//! (the node says why not otherwise), and `-t` to its terminal.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::errors::{ApiError, ApiResult};
use crate::http::App;
use crate::http::node_proxy::{
    client, endpoint, namespace_and_name, pick_container, requested_container,
};

/// The subprotocols served, preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The content type of the node's framed exec answer.
pub const NODE_STREAM_CONTENT_TYPE: &str = "application/vnd.korral.exec-stream";

/// Stream ids of the channel protocol.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
/// The terminal size stream (`{"Width":…,"Height":…}`).
const RESIZE: u8 = 4;
/// v5's control stream, whose `[255, id]` closes a stream.
const CONTROL: u8 = 255;

/// The largest message sent on a stream.
const CHUNK: usize = 32 * 1024;

/// How long the session waits for the client's half of the close handshake.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The largest stdin accepted in one session (the node's exec endpoint has the same cap).
pub const MAX_STDIN: usize = 64 << 20;

/// How many stdin messages wait for the node before the client is read no
/// further (backpressure: a command that does not read its input slows the
/// client down instead of filling memory).
const STDIN_QUEUE: usize = 16;

/// What a session does on the node: run a command (`pods/exec`) or attach
/// to the container's own process (`pods/attach`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `pods/exec`.
    Exec,
    /// `pods/attach`.
    Attach,
}

impl Action {
    /// The subresource's name, also the node endpoint's path.
    pub fn name(self) -> &'static str {
        match self {
            Action::Exec => "exec",
            Action::Attach => "attach",
        }
    }
}

/// What one exec or attach request asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecRequest {
    /// Exec or attach.
    pub action: Action,
    /// The container (resolved like Kubernetes: the only one, or the default-container annotation).
    pub container: String,
    /// The command and its arguments (none for attach).
    pub command: Vec<String>,
    /// Whether the client sends stdin.
    pub stdin: bool,
    /// Whether a TTY was asked for.
    pub tty: bool,
}

fn flag(query: &[(String, String)], key: &str) -> bool {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .is_some_and(|(_, v)| v == "true" || v == "1")
}

/// Reads an exec or attach request's query parameters, as the API server validates them.
pub fn parse(pod: &Value, query: &[(String, String)], action: Action) -> ApiResult<ExecRequest> {
    let container = pick_container(pod, requested_container(query))?;
    let command: Vec<String> = match action {
        Action::Exec => query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect(),
        Action::Attach => Vec::new(),
    };
    if command.is_empty() && action == Action::Exec {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    if !["stdin", "stdout", "stderr"].iter().any(|k| flag(query, k)) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    Ok(ExecRequest {
        action,
        container,
        command,
        stdin: flag(query, "stdin"),
        tty: flag(query, "tty"),
    })
}

/// The `Status` kubectl reads from the status stream at the end of a session:
/// from the command's exit code, or why it could not run. An attachment ends
/// with `Success` whatever the container's exit code (as the kubelet's).
pub fn final_status(result: &Result<i32, String>, req: &ExecRequest) -> Value {
    let command = &req.command;
    match result {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(_) if req.action == Action::Attach => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(message) => json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "code": 500,
        }),
    }
}

/// One frame of the node's answer (`node/src/server/exec.rs` writes them):
/// a kind byte, the payload's length (4 bytes, big-endian), the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeFrame {
    /// Kind 1: output on stdout.
    Stdout(Bytes),
    /// Kind 2: output on stderr.
    Stderr(Bytes),
    /// Kind 3, last: the exit code (4 bytes, big-endian, signed).
    Exit(i32),
    /// Kind 4, last: why the command could not run or finish.
    Error(String),
}

/// Cuts the node's answer into [`NodeFrame`]s as its bytes arrive, however
/// they are split.
#[derive(Debug, Default)]
pub struct FrameReader {
    frames: schemas::frames::FrameSplitter,
}

impl FrameReader {
    /// Adds bytes as they arrive.
    pub fn push(&mut self, data: &[u8]) {
        self.frames.push(data);
    }

    /// The next complete frame, `None` until one is; an error for bytes that are not frames.
    pub fn next_frame(&mut self) -> Result<Option<NodeFrame>, String> {
        let (kind, payload) = match self.frames.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(schemas::frames::Oversized(len)) => {
                return Err(format!(
                    "an exec frame of {len} bytes (at most {}): not korral's exec protocol",
                    schemas::frames::MAX_FRAME
                ));
            }
        };
        let len = payload.len();
        match kind {
            1 => Ok(Some(NodeFrame::Stdout(payload))),
            2 => Ok(Some(NodeFrame::Stderr(payload))),
            3 => match <[u8; 4]>::try_from(&payload[..]) {
                Ok(b) => Ok(Some(NodeFrame::Exit(i32::from_be_bytes(b)))),
                Err(_) => Err(format!("an exit code frame of {len} bytes")),
            },
            4 => Ok(Some(NodeFrame::Error(
                String::from_utf8_lossy(&payload).into_owned(),
            ))),
            k => Err(format!("an exec frame of unknown kind {k}")),
        }
    }
}

/// The largest terminal size message accepted from a client.
const MAX_RESIZE: usize = 1024;

/// One frame of a terminal session's request body to the node
/// (`node/src/server/exec.rs` reads them): the stream (0 input, 4 a
/// terminal size), the payload's length (4 bytes, big-endian), the payload.
pub fn input_frame(stream: u8, payload: &[u8]) -> Bytes {
    schemas::frames::encode(stream, payload)
}

/// A client's terminal size message, checked (`{"Width":N,"Height":N}`,
/// each 0–65535) and passed on as it is; an error says what was wrong.
pub fn terminal_size(payload: &[u8]) -> Result<Bytes, String> {
    #[derive(serde::Deserialize)]
    struct Size {
        #[serde(rename = "Width")]
        _width: u16,
        #[serde(rename = "Height")]
        _height: u16,
    }
    if payload.len() > MAX_RESIZE {
        return Err(format!(
            "a terminal size message of {} bytes",
            payload.len()
        ));
    }
    serde_json::from_slice::<Size>(payload)
        .map(|_| Bytes::copy_from_slice(payload))
        .map_err(|e| {
            format!(
                "terminal size {:?} is not {{\"Width\":N,\"Height\":N}}: {e}",
                String::from_utf8_lossy(payload)
            )
        })
}

/// Starts the command (or the attachment) on the node: `stdin` is the request body, streamed.
async fn start_on_node(
    app: &App,
    pod: &Value,
    node: &str,
    req: &ExecRequest,
    stdin: reqwest::Body,
) -> Result<reqwest::Response, String> {
    let ep = endpoint(app, node).await.map_err(|e| e.message)?;
    let (ns, name) = namespace_and_name(pod);
    let url = format!(
        "{}/{}/{ns}/{name}/{}",
        ep.base,
        req.action.name(),
        req.container
    );
    let mut query: Vec<(&str, &str)> = req
        .command
        .iter()
        .map(|c| ("command", c.as_str()))
        .collect();
    if req.stdin {
        query.push(("stdin", "true"));
    }
    if req.tty {
        query.push(("tty", "true"));
    }
    let resp = client(app, &ep)
        .map_err(|e| e.message)?
        .post(&url)
        .query(&query)
        .body(stdin)
        .send()
        .await
        .map_err(|e| format!("cannot reach node {node:?} at {}: {e}", ep.base))?;
    if !resp.status().is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(text.trim().to_string());
    }
    let streamed = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        == Some(NODE_STREAM_CONTENT_TYPE);
    if !streamed {
        return Err(format!(
            "node {node:?} answered {} in another format than {NODE_STREAM_CONTENT_TYPE} (an older node daemon?); run the API server's korral version on the node",
            req.action.name()
        ));
    }
    Ok(resp)
}

fn frame(stream: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(stream);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// Room in the stdin queue to the node (an error once the node takes no more input).
async fn reserve(tx: Option<mpsc::Sender<Bytes>>) -> Result<mpsc::OwnedPermit<Bytes>, ()> {
    match tx {
        Some(tx) => tx.reserve_owned().await.map_err(|_| ()),
        None => Err(()),
    }
}

/// How a relayed session ended.
struct Relayed {
    /// The exit code, or why there is none.
    result: Result<i32, String>,
    /// The client left before the end.
    client_gone: bool,
}

/// Runs the command on the node, relaying the client's stdin to it and its
/// output to the client as both come, until the command's end.
async fn relay(
    socket: &mut WebSocket,
    app: &App,
    pod: &Value,
    node: &str,
    req: &ExecRequest,
) -> Relayed {
    // on a terminal the body carries input and sizes, framed
    let (mut stdin, body) = if req.stdin || req.tty {
        let (tx, rx) = mpsc::channel::<Bytes>(STDIN_QUEUE);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
        });
        (Some(tx), reqwest::Body::wrap_stream(stream))
    } else {
        (None, reqwest::Body::from(Vec::new()))
    };
    let resp = match start_on_node(app, pod, node, req, body).await {
        Ok(r) => r,
        Err(e) => {
            return Relayed {
                result: Err(e),
                client_gone: false,
            };
        }
    };
    let mut output = resp.bytes_stream();
    let mut frames = FrameReader::default();
    // a message from the client not yet taken by the node: the client is read no further until it is
    let mut pending: Option<Bytes> = None;
    let mut received = 0usize;
    let mut client_gone = false;
    let (mut exit, mut failure) = (None, None);
    'session: loop {
        tokio::select! {
            permit = reserve(stdin.clone()), if pending.is_some() => match permit {
                Ok(permit) => {
                    if let Some(data) = pending.take() {
                        permit.send(data);
                    }
                }
                // the node takes no more input: the command ended or closed its stdin
                Err(()) => {
                    pending = None;
                    stdin = None;
                }
            },
            // reading the client also answers its pings (kubectl drops a silent connection)
            msg = socket.recv(), if !client_gone && pending.is_none() => match msg {
                Some(Ok(Message::Binary(data))) => match data.first() {
                    Some(&STDIN) if stdin.is_some() => {
                        received += data.len() - 1;
                        if received > MAX_STDIN {
                            failure = Some(format!(
                                "stdin is larger than {} MiB, korral's limit for exec input; the command was stopped",
                                MAX_STDIN >> 20
                            ));
                            break 'session;
                        }
                        if data.len() > 1 {
                            pending = Some(if req.tty {
                                input_frame(STDIN, &data[1..])
                            } else {
                                data.slice(1..)
                            });
                        }
                    }
                    Some(&RESIZE) if req.tty && stdin.is_some() => {
                        match terminal_size(&data[1..]) {
                            Ok(size) => pending = Some(input_frame(RESIZE, &size)),
                            Err(e) => tracing::debug!(error = %e, "exec: a terminal size"),
                        }
                    }
                    // v5: the client closed stdin, so does the command (on a
                    // terminal, the body's end also ends the sizes)
                    Some(&CONTROL) if data.get(1) == Some(&STDIN) => stdin = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    // the socket's end is stdin's end; the command runs on, unseen
                    client_gone = true;
                    stdin = None;
                }
                Some(Ok(_)) => {}
            },
            chunk = output.next() => match chunk {
                Some(Ok(bytes)) => {
                    frames.push(&bytes);
                    loop {
                        let (stream, data) = match frames.next_frame() {
                            Ok(Some(NodeFrame::Stdout(data))) => (STDOUT, data),
                            Ok(Some(NodeFrame::Stderr(data))) => (STDERR, data),
                            Ok(Some(NodeFrame::Exit(code))) => {
                                exit = Some(code);
                                continue;
                            }
                            Ok(Some(NodeFrame::Error(message))) => {
                                failure = Some(message);
                                continue;
                            }
                            Ok(None) => break,
                            Err(e) => {
                                failure = Some(format!("{} on node {node:?}: {e}", req.action.name()));
                                break 'session;
                            }
                        };
                        if client_gone {
                            continue;
                        }
                        for piece in data.chunks(CHUNK) {
                            if socket.send(frame(stream, piece)).await.is_err() {
                                client_gone = true;
                                stdin = None;
                                pending = None;
                                break;
                            }
                        }
                    }
                }
                Some(Err(e)) => {
                    failure = Some(format!("reading the output from node {node:?}: {e}"));
                    break 'session;
                }
                None => break 'session,
            },
        }
    }
    let result = match (failure, exit) {
        (Some(message), _) => Err(message),
        (None, Some(code)) => Ok(code),
        (None, None) => Err(format!(
            "node {node:?} ended the {} session without the exit status (did the node daemon restart?)",
            req.action.name()
        )),
    };
    Relayed {
        result,
        client_gone,
    }
}

async fn session(
    mut socket: WebSocket,
    app: std::sync::Arc<App>,
    pod: Value,
    node: String,
    req: ExecRequest,
) {
    let relayed = relay(&mut socket, &app, &pod, &node, &req).await;
    if relayed.client_gone {
        return;
    }
    let result = relayed.result;
    let status = final_status(&result, &req);
    let _ = socket
        .send(frame(
            STATUS,
            &serde_json::to_vec(&status).unwrap_or_default(),
        ))
        .await;
    // a normal closure (1000): kubectl treats a close without a status as an error
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
    // finish the close handshake, reading what the client still sends (input never
    // read, pings): closing with unread data resets the connection, and the client
    // could lose the status above
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Answers an exec or attach request: upgrades to a WebSocket session, or explains what is missing.
pub fn serve(
    app: std::sync::Arc<App>,
    pod: Value,
    node: String,
    query: &[(String, String)],
    upgrade: Option<WebSocketUpgrade>,
    action: Action,
) -> ApiResult<Response> {
    let req = parse(&pod, query, action)?;
    let upgrade = upgrade.ok_or_else(|| {
        ApiError::bad_request(format!(
            "pods/{} needs a WebSocket upgrade with subprotocol {} (kubectl 1.30 or later); SPDY is not supported",
            action.name(),
            PROTOCOLS.join(" or ")
        ))
    })?;
    Ok(upgrade
        .protocols(PROTOCOLS)
        .on_upgrade(move |socket| session(socket, app, pod, node, req))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn requests_are_read_like_the_api_server_reads_them() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let r = parse(
            &pod,
            &q(&[
                ("command", "sh"),
                ("command", "-c"),
                ("command", "id"),
                ("container", "b"),
                ("stdout", "true"),
            ]),
            Action::Exec,
        )
        .expect("valid");
        assert_eq!(r.container, "b");
        assert_eq!(r.command, vec!["sh", "-c", "id"]);
        assert!(!r.stdin && !r.tty);
        let e = parse(
            &pod,
            &q(&[("container", "a"), ("stdout", "true")]),
            Action::Exec,
        )
        .expect_err("no command");
        assert!(e.message.contains("at least one command"), "{}", e.message);
        let e = parse(
            &pod,
            &q(&[("command", "ls"), ("stdout", "true")]),
            Action::Exec,
        )
        .expect_err("which container");
        assert!(e.message.contains("choose one of: [a b]"), "{}", e.message);
        let e = parse(
            &pod,
            &q(&[("command", "ls"), ("container", "a")]),
            Action::Exec,
        )
        .expect_err("no streams");
        assert!(e.message.contains("stdin, stdout, stderr"), "{}", e.message);
        let r = parse(
            &pod,
            &q(&[
                ("command", "sh"),
                ("container", "a"),
                ("stdin", "true"),
                ("tty", "true"),
            ]),
            Action::Exec,
        )
        .expect("interactive parses");
        assert!(r.stdin && r.tty);
        // attach has no command; it asks for streams all the same
        let r = parse(
            &pod,
            &q(&[("container", "a"), ("stdout", "true"), ("stderr", "true")]),
            Action::Attach,
        )
        .expect("attach parses");
        assert_eq!(r.action, Action::Attach);
        assert!(r.command.is_empty());
        let e = parse(&pod, &q(&[("container", "a")]), Action::Attach).expect_err("no streams");
        assert!(e.message.contains("stdin, stdout, stderr"), "{}", e.message);
    }

    #[test]
    fn the_final_status_carries_the_exit_code_as_kubectl_reads_it() {
        let mut req = ExecRequest {
            action: Action::Exec,
            container: "c".into(),
            command: vec!["false".to_string()],
            stdin: false,
            tty: false,
        };
        assert_eq!(final_status(&Ok(0), &req)["status"], "Success");
        let s = final_status(&Ok(3), &req);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        let s = final_status(&Err("no node".into()), &req);
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["message"], "no node");
        // an attachment ends well whatever the container's exit code
        req.action = Action::Attach;
        req.command.clear();
        assert_eq!(final_status(&Ok(3), &req)["status"], "Success");
        assert_eq!(
            final_status(&Err("no stdin".into()), &req)["status"],
            "Failure"
        );
    }

    #[test]
    fn frames_are_read_however_their_bytes_are_split() {
        let mut wire = vec![1, 0, 0, 0, 3];
        wire.extend_from_slice(b"out");
        wire.extend_from_slice(&[2, 0, 0, 0, 0]);
        wire.extend_from_slice(&[4, 0, 0, 0, 2]);
        wire.extend_from_slice(b"no");
        wire.extend_from_slice(&[3, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfe]);
        let want = vec![
            NodeFrame::Stdout(Bytes::from_static(b"out")),
            NodeFrame::Stderr(Bytes::new()),
            NodeFrame::Error("no".into()),
            NodeFrame::Exit(-2),
        ];
        for step in [1, 2, 3, 7, wire.len()] {
            let mut r = FrameReader::default();
            let mut got = Vec::new();
            for piece in wire.chunks(step) {
                r.push(piece);
                while let Some(f) = r.next_frame().expect("valid frames") {
                    got.push(f);
                }
            }
            assert_eq!(got, want, "split every {step} bytes");
        }
    }

    #[test]
    fn terminal_input_is_framed_for_the_node_and_sizes_are_checked() {
        assert_eq!(&input_frame(STDIN, b"ls")[..], &[0, 0, 0, 0, 2, b'l', b's']);
        assert_eq!(&input_frame(RESIZE, b"")[..], &[4, 0, 0, 0, 0]);
        let size = br#"{"Width":120,"Height":40}"#;
        assert_eq!(terminal_size(size).expect("a size"), &size[..]);
        for bad in [
            &br#"{"Width":-1,"Height":40}"#[..],
            br#"{"Width":70000,"Height":40}"#,
            br#"{"Height":40}"#,
            b"80x24",
        ] {
            let e = terminal_size(bad).expect_err("not a size");
            assert!(e.contains("Width"), "{e}");
        }
        assert!(terminal_size(&[b' '; 2000]).is_err(), "too long");
    }

    #[test]
    fn bytes_that_are_not_frames_are_refused() {
        let mut r = FrameReader::default();
        r.push(&[9, 0, 0, 0, 0]);
        assert!(r.next_frame().expect_err("unknown kind").contains("kind 9"));
        let mut r = FrameReader::default();
        r.push(&[1, 0xff, 0, 0, 0]);
        assert!(r.next_frame().expect_err("too long").contains("bytes"));
        let mut r = FrameReader::default();
        r.push(&[3, 0, 0, 0, 1, 7]);
        assert!(r.next_frame().is_err(), "an exit code is 4 bytes");
    }
}
