//! `pods/exec` as kubectl speaks it since 1.30: a WebSocket upgrade with the
//! `v5.channel.k8s.io` (or `v4.channel.k8s.io`) subprotocol — binary
//! messages whose first byte is the stream (1 stdout, 2 stderr, 3 the final
//! `Status`). The command runs on the pod's node daemon (see `node_proxy`)
//! to completion; its stdout and stderr are sent on their streams, then a `Status` that is
//! `Success`, or `Failure` with reason `NonZeroExitCode` and the exit code
//! as kubectl expects it, then the socket closes. With stdin (`-i`), what
//! the client sends on stream 0 until v5's close signal is the command's
//! input (so `kubectl cp` into a pod works); a TTY (`-t`) is refused with a
//! message saying so.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::errors::{ApiError, ApiResult};
use crate::http::App;
use crate::http::node_proxy::{
    client, endpoint, namespace_and_name, pick_container, requested_container,
};

/// The subprotocols served, preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The header the node answers the exit code in.
const EXIT_CODE_HEADER: &str = "x-korral-exit-code";

/// The header saying how many leading body bytes are stdout (the rest is stderr).
const STDOUT_BYTES_HEADER: &str = "x-korral-stdout-bytes";

/// Stream ids of the channel protocol.
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;

/// The largest message sent on a stream.
const CHUNK: usize = 32 * 1024;

/// How long the session waits for the client's half of the close handshake.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The largest stdin accepted (the node's exec endpoint has the same cap).
const MAX_STDIN: usize = 64 << 20;

/// Stream 0 (stdin) and v5's control stream, whose `[255, id]` closes a stream.
const STDIN: u8 = 0;
const CONTROL: u8 = 255;

/// What one exec request asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecRequest {
    /// The container (resolved like Kubernetes: the only one, or the default-container annotation).
    pub container: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Whether the client sends stdin.
    pub stdin: bool,
    /// Whether a TTY was asked for (not supported).
    pub tty: bool,
}

fn flag(query: &[(String, String)], key: &str) -> bool {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .is_some_and(|(_, v)| v == "true" || v == "1")
}

/// Reads an exec request's query parameters, as the API server validates them.
pub fn parse(pod: &Value, query: &[(String, String)]) -> ApiResult<ExecRequest> {
    let container = pick_container(pod, requested_container(query))?;
    let command: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
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
        container,
        command,
        stdin: flag(query, "stdin"),
        tty: flag(query, "tty"),
    })
}

/// The `Status` kubectl reads from the status stream at the end of a session.
pub fn final_status(result: &Result<(i32, Vec<u8>, Vec<u8>), String>, command: &[String]) -> Value {
    match result {
        Ok((0, _, _)) => json!({"metadata": {}, "status": "Success"}),
        Ok((code, _, _)) => json!({
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

/// Runs the command on the node: its exit code and output.
async fn run_on_node(
    app: &App,
    pod: &Value,
    node: &str,
    req: &ExecRequest,
    stdin: Option<Vec<u8>>,
) -> Result<(i32, Vec<u8>, Vec<u8>), String> {
    let ep = endpoint(app, node).await.map_err(|e| e.message)?;
    let (ns, name) = namespace_and_name(pod);
    let url = format!("{}/exec/{ns}/{name}/{}", ep.base, req.container);
    let mut query: Vec<(&str, &str)> = req
        .command
        .iter()
        .map(|c| ("command", c.as_str()))
        .collect();
    if stdin.is_some() {
        query.push(("stdin", "true"));
    }
    let resp = client(app, &ep)
        .map_err(|e| e.message)?
        .post(&url)
        .query(&query)
        .body(stdin.unwrap_or_default())
        .send()
        .await
        .map_err(|e| format!("cannot reach node {node:?} at {}: {e}", ep.base))?;
    let status = resp.status();
    let code = resp
        .headers()
        .get(EXIT_CODE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok());
    let split = resp
        .headers()
        .get(STDOUT_BYTES_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the output from node {node:?}: {e}"))?;
    match (status.is_success(), code) {
        (true, Some(code)) => {
            let (out, err) = body.split_at(split.unwrap_or(body.len()).min(body.len()));
            Ok((code, out.to_vec(), err.to_vec()))
        }
        _ => Err(String::from_utf8_lossy(&body).trim().to_string()),
    }
}

fn frame(stream: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(stream);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// Reads stdin from the client until it closes the stream (v5's close signal).
async fn read_stdin(socket: &mut WebSocket) -> Result<Vec<u8>, String> {
    if socket.protocol().and_then(|p| p.to_str().ok()) != Some(PROTOCOLS[0]) {
        return Err(format!(
            "exec with stdin needs the {} protocol (kubectl 1.30 or later) to know where the input ends",
            PROTOCOLS[0]
        ));
    }
    let mut input = Vec::new();
    while let Some(msg) = socket.recv().await {
        let Ok(Message::Binary(data)) = msg else {
            match msg {
                Ok(Message::Close(_)) | Err(_) => return Err("the client went away".into()),
                _ => continue,
            }
        };
        match data.split_first() {
            Some((&STDIN, rest)) => {
                if input.len() + rest.len() > MAX_STDIN {
                    return Err(format!("stdin is larger than {} MiB", MAX_STDIN >> 20));
                }
                input.extend_from_slice(rest);
            }
            Some((&CONTROL, [STDIN, ..])) => return Ok(input),
            _ => {}
        }
    }
    Err("the client went away".into())
}

async fn session(
    mut socket: WebSocket,
    app: std::sync::Arc<App>,
    pod: Value,
    node: String,
    req: ExecRequest,
) {
    let result = if req.tty {
        Err("exec with a TTY (-t) is not supported by korral's node daemons; run without -t (stdin with -i works)".to_string())
    } else {
        let stdin = match req.stdin {
            true => read_stdin(&mut socket).await.map(Some),
            false => Ok(None),
        };
        match stdin {
            Ok(stdin) => {
                // keep reading while the command runs: pings get their pongs (kubectl
                // drops a silent connection) and a client that leaves ends the session
                let run = run_on_node(&app, &pod, &node, &req, stdin);
                tokio::pin!(run);
                loop {
                    tokio::select! {
                        r = &mut run => break r,
                        msg = socket.recv() => match msg {
                            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                            Some(Ok(_)) => {}
                        },
                    }
                }
            }
            Err(e) => Err(e),
        }
    };
    if let Ok((_, stdout, stderr)) = &result {
        for (stream, data) in [(STDOUT, stdout), (STDERR, stderr)] {
            for chunk in data.chunks(CHUNK) {
                if socket.send(frame(stream, chunk)).await.is_err() {
                    return;
                }
            }
        }
    }
    let status = final_status(&result, &req.command);
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

/// Answers an exec request: upgrades to a WebSocket session, or explains what is missing.
pub fn serve(
    app: std::sync::Arc<App>,
    pod: Value,
    node: String,
    query: &[(String, String)],
    upgrade: Option<WebSocketUpgrade>,
) -> ApiResult<Response> {
    let req = parse(&pod, query)?;
    let upgrade = upgrade.ok_or_else(|| {
        ApiError::bad_request(format!(
            "pods/exec needs a WebSocket upgrade with subprotocol {} (kubectl 1.30 or later); SPDY is not supported",
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
        )
        .expect("valid");
        assert_eq!(r.container, "b");
        assert_eq!(r.command, vec!["sh", "-c", "id"]);
        assert!(!r.stdin && !r.tty);
        let e = parse(&pod, &q(&[("container", "a"), ("stdout", "true")])).expect_err("no command");
        assert!(e.message.contains("at least one command"), "{}", e.message);
        let e =
            parse(&pod, &q(&[("command", "ls"), ("stdout", "true")])).expect_err("which container");
        assert!(e.message.contains("choose one of: [a b]"), "{}", e.message);
        let e = parse(&pod, &q(&[("command", "ls"), ("container", "a")])).expect_err("no streams");
        assert!(e.message.contains("stdin, stdout, stderr"), "{}", e.message);
        let r = parse(
            &pod,
            &q(&[
                ("command", "sh"),
                ("container", "a"),
                ("stdin", "true"),
                ("tty", "true"),
            ]),
        )
        .expect("interactive parses");
        assert!(r.stdin && r.tty);
    }

    #[test]
    fn the_final_status_carries_the_exit_code_as_kubectl_reads_it() {
        let cmd = vec!["false".to_string()];
        assert_eq!(
            final_status(&Ok((0, vec![], vec![])), &cmd)["status"],
            "Success"
        );
        let s = final_status(&Ok((3, vec![], vec![])), &cmd);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        let s = final_status(&Err("no node".into()), &cmd);
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["message"], "no node");
    }
}
