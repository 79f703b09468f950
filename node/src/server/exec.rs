//! `POST /exec/{namespace}/{pod}/{container}?command=…[&stdin=true]`: runs
//! a command in a running container, streaming both ways like the kubelet's
//! exec — what the API server's `pods/exec` turns into a WebSocket session
//! for kubectl. The command starts at once. With `stdin=true` the request
//! body is the command's standard input, copied to it as it arrives (the
//! API server streams it); the body's end closes that input. The response
//! (`200`, [`STREAM_CONTENT_TYPE`]) is a sequence of [`Frame`]s written as
//! the command produces output: stdout and stderr chunks, then one final
//! frame, the exit code or an error. The session ends when the command
//! exits, whether or not its input ended. With `tty=true` the command runs
//! on a terminal: its output (stdout and stderr in one) comes as stdout,
//! and the request body is a sequence of [`InputFrame`]s instead — input
//! and the terminal's sizes (kubectl's resize stream). The command is
//! killed after [`EXEC_IDLE_TIMEOUT`] without input or output, after
//! [`EXEC_TIMEOUT`] in any case, or when the API server goes away.
//!
//! Errors found before the command starts (no such pod or container) are
//! plain-text HTTP errors instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::pods::PodContext;
use crate::runtime::{EXEC_QUEUE, ExecChunk, ExecStreams, RuntimeError, TermSize};

/// How long a session may go without input or output before the command is
/// stopped: the kubelet's default (`--streaming-connection-idle-timeout`).
pub const EXEC_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// The longest an exec'd command may run at all, busy or not.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The largest stdin accepted in one session (the API server's `pods/exec`
/// has the same cap and tells the client).
pub const MAX_STDIN: usize = 64 << 20;

/// The content type of the framed response.
pub const STREAM_CONTENT_TYPE: &str = "application/vnd.korral.exec-stream";

/// One frame of the response: a kind byte, the payload's length (4 bytes,
/// big-endian), the payload. The API server's `pods/exec` reads the same
/// layout (`apiserver/src/http/exec.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Kind 1: output on stdout.
    Stdout(Bytes),
    /// Kind 2: output on stderr.
    Stderr(Bytes),
    /// Kind 3, last: the command's exit code (4 bytes, big-endian, signed).
    Exit(i32),
    /// Kind 4, last: why the command could not run or finish (UTF-8).
    Error(String),
}

impl Frame {
    /// The frame's bytes.
    pub fn encode(&self) -> Bytes {
        let (kind, payload): (u8, &[u8]) = match self {
            Frame::Stdout(b) => (1, b),
            Frame::Stderr(b) => (2, b),
            Frame::Exit(code) => (3, &code.to_be_bytes()),
            Frame::Error(m) => (4, m.as_bytes()),
        };
        schemas::frames::encode(kind, payload)
    }
}

impl From<ExecChunk> for Frame {
    fn from(c: ExecChunk) -> Self {
        match c {
            ExecChunk::Stdout(b) => Frame::Stdout(b),
            ExecChunk::Stderr(b) => Frame::Stderr(b),
        }
    }
}

/// The `command` parameters of a query string, in order.
pub fn commands(query: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Whether the query asks for the body to be the command's stdin.
pub(super) fn wants_stdin(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "stdin" && (v == "true" || v == "1"))
}

/// Whether the query asks for a terminal (`tty=true`): the request body is
/// then [`InputFrame`]s.
pub(super) fn wants_tty(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "tty" && (v == "true" || v == "1"))
}

/// One frame of a terminal session's request body: a kind byte, the
/// payload's length (4 bytes, big-endian), the payload — the API server's
/// `pods/exec` and `pods/attach` write them (`apiserver/src/http/exec.rs`),
/// with the channel protocol's stream numbers as kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputFrame {
    /// Kind 0: input.
    Stdin(Bytes),
    /// Kind 4: the terminal's size, as kubectl sends it (`{"Width":…,"Height":…}`).
    Resize(TermSize),
}

/// Cuts a terminal session's request body into [`InputFrame`]s as its bytes
/// arrive, however they are split.
#[derive(Debug, Default)]
pub struct InputReader {
    frames: schemas::frames::FrameSplitter,
}

impl InputReader {
    /// Adds bytes as they arrive.
    pub fn push(&mut self, data: &[u8]) {
        self.frames.push(data);
    }

    /// The next complete frame, `None` until one is; an error for bytes
    /// that are not frames.
    pub fn next_frame(&mut self) -> Result<Option<InputFrame>, String> {
        let (kind, payload) = match self.frames.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(schemas::frames::Oversized(len)) => {
                return Err(format!(
                    "an input frame of {len} bytes (at most {}): not korral's terminal protocol",
                    schemas::frames::MAX_FRAME
                ));
            }
        };
        match kind {
            0 => Ok(Some(InputFrame::Stdin(payload))),
            4 => serde_json::from_slice::<TermSize>(&payload)
                .map(|s| Some(InputFrame::Resize(s)))
                .map_err(|e| {
                    format!(
                        "a terminal size {:?} is not {{\"Width\":N,\"Height\":N}}: {e}",
                        String::from_utf8_lossy(&payload)
                    )
                }),
            k => Err(format!("an input frame of unknown kind {k}")),
        }
    }
}

/// Reads a terminal session's framed request body as it arrives: input to
/// `input` (when the session has stdin; up to `limit` bytes, as
/// [`copy_stdin`]), sizes to `resize`. The body's end ends both; a body
/// that is not frames ends them too, with a warning.
pub async fn copy_framed_input(
    body: Body,
    input: Option<mpsc::Sender<Bytes>>,
    resize: mpsc::Sender<TermSize>,
    limit: usize,
    shared: Arc<Shared>,
) {
    let mut stream = body.into_data_stream();
    let mut frames = InputReader::default();
    let (mut input, mut total) = (input, 0usize);
    while let Some(Ok(chunk)) = stream.next().await {
        shared.touch();
        frames.push(&chunk);
        loop {
            match frames.next_frame() {
                Ok(Some(InputFrame::Stdin(data))) => {
                    total = total.saturating_add(data.len());
                    if total > limit {
                        let _ = shared.overflow.set(format!(
                            "stdin is larger than {} MiB; the command's input was cut there",
                            limit >> 20
                        ));
                        input = None;
                    }
                    if let Some(tx) = &input
                        && !data.is_empty()
                        && tx.send(data).await.is_err()
                    {
                        input = None;
                    }
                }
                Ok(Some(InputFrame::Resize(size))) => {
                    let _ = resize.send(size).await;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "terminal session input");
                    return;
                }
            }
        }
    }
}

/// What the pieces of one session share: when input or output last moved,
/// and why the input was cut, if it was.
#[derive(Debug)]
pub struct Shared {
    base: tokio::time::Instant,
    /// Milliseconds from `base` to the last input or output.
    last_ms: AtomicU64,
    /// Set when stdin went over the limit.
    overflow: OnceLock<String>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            base: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
            overflow: OnceLock::new(),
        }
    }
}

impl Shared {
    /// Input or output moved now.
    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let last = self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// What a streamed session serves: a command run for it (`/exec`) or a
/// container's own process it attaches to (`/attach`, see [`super::attach`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Session {
    /// A command run for the session.
    Exec,
    /// The container's own process.
    Attach,
}

impl Session {
    /// How messages name the session: `exec in` or `attach to` a container.
    fn doing(self) -> &'static str {
        match self {
            Session::Exec => "exec in",
            Session::Attach => "attach to",
        }
    }

    /// What the idle timeout does.
    fn on_idle(self) -> &'static str {
        match self {
            Session::Exec => "the command was stopped",
            Session::Attach => "the session was closed (the container runs on)",
        }
    }
}

/// A duration as a message says it: `4 hours`, `5 minutes`, `300 ms`.
fn spoken(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} minutes", s / 60),
        0 => format!("{} ms", d.as_millis()),
        s => format!("{s} s"),
    }
}

/// Copies a request body into a command's input channel as it arrives, up
/// to `limit` bytes: beyond it the input ends and the session says why.
/// The body's end (or its failure: the API server went away) ends the input.
pub async fn copy_stdin(body: Body, input: mpsc::Sender<Bytes>, limit: usize, shared: Arc<Shared>) {
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        shared.touch();
        total = total.saturating_add(chunk.len());
        if total > limit {
            let _ = shared.overflow.set(format!(
                "stdin is larger than {} MiB; the command's input was cut there",
                limit >> 20
            ));
            return;
        }
        if chunk.is_empty() {
            continue;
        }
        if input.send(chunk).await.is_err() {
            // the command ended or closed its input
            return;
        }
    }
}

/// The response body: output frames as they come, then the final frame
/// (`run`'s exit code or error). After `idle` without input or output the
/// session ends with an error frame (dropping the output channel, which
/// makes the runtime kill an exec'd command, or ends an attachment).
fn response_stream(
    output: mpsc::Receiver<ExecChunk>,
    run: tokio::task::JoinHandle<Result<i32, RuntimeError>>,
    shared: Arc<Shared>,
    idle: Duration,
    session: Session,
    what: String,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    enum Step {
        Output(
            mpsc::Receiver<ExecChunk>,
            tokio::task::JoinHandle<Result<i32, RuntimeError>>,
        ),
        Done,
    }
    futures_util::stream::unfold(Step::Output(output, run), move |step| {
        let shared = shared.clone();
        let what = what.clone();
        async move {
            let Step::Output(mut output, run) = step else {
                return None;
            };
            tokio::select! {
                chunk = output.recv() => if let Some(chunk) = chunk {
                    shared.touch();
                    let frame = Frame::from(chunk).encode();
                    return Some((Ok(frame), Step::Output(output, run)));
                },
                () = shared.idle(idle) => {
                    let message = format!(
                        "{} {what}: no input or output for {} (the node's streaming idle timeout); {}",
                        session.doing(),
                        spoken(idle),
                        session.on_idle(),
                    );
                    return Some((Ok(Frame::Error(message).encode()), Step::Done));
                }
            }
            // every sender is gone: the runtime returned
            let result = run.await;
            let last = match result {
                _ if shared.overflow.get().is_some() => {
                    Frame::Error(shared.overflow.get().cloned().unwrap_or_default())
                }
                Ok(Ok(code)) => Frame::Exit(code),
                Ok(Err(RuntimeError::NotFound(_))) => {
                    Frame::Error(format!("{what} is not running"))
                }
                Ok(Err(e)) => Frame::Error(format!("{} {what}: {e}", session.doing())),
                Err(e) => Frame::Error(format!(
                    "{} {what}: the session failed: {e}",
                    session.doing()
                )),
            };
            Some((Ok(last.encode()), Step::Done))
        }
    })
}

/// Serves an exec request.
pub async fn exec(
    State(ctx): State<Arc<PodContext>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let query = query.unwrap_or_default();
    let command = commands(&query);
    if command.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        )
            .into_response();
    }
    let (_, id) = match super::logs::locate(&ctx, &ns, &pod, &container, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    tracing::info!(namespace = %ns, pod = %pod, container = %container, command = ?command, "exec");
    let shared = Arc::new(Shared::default());
    let tty = wants_tty(&query);
    let (stdin, resize) = input_channels(body, wants_stdin(&query), tty, &shared);
    let (output, rx) = mpsc::channel(EXEC_QUEUE);
    let runtime = ctx.runtime.clone();
    let run = tokio::spawn(async move {
        let streams = ExecStreams {
            stdin,
            output,
            tty,
            resize,
        };
        runtime
            .exec_streaming(&id, &command, streams, EXEC_TIMEOUT)
            .await
    });
    framed_response(rx, run, shared, Session::Exec, &container, &ns, &pod)
}

/// The channels a session's request body is copied into as it arrives:
/// input (with `stdin`) and, on a terminal (`tty`: the body is
/// [`InputFrame`]s), its sizes.
pub(super) fn input_channels(
    body: Body,
    stdin: bool,
    tty: bool,
    shared: &Arc<Shared>,
) -> (
    Option<mpsc::Receiver<Bytes>>,
    Option<mpsc::Receiver<TermSize>>,
) {
    let (input_tx, input_rx) = if stdin {
        let (tx, rx) = mpsc::channel(EXEC_QUEUE);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    if tty {
        let (size_tx, size_rx) = mpsc::channel(EXEC_QUEUE);
        tokio::spawn(copy_framed_input(
            body,
            input_tx,
            size_tx,
            MAX_STDIN,
            shared.clone(),
        ));
        return (input_rx, Some(size_rx));
    }
    if let Some(tx) = input_tx {
        tokio::spawn(copy_stdin(body, tx, MAX_STDIN, shared.clone()));
    }
    (input_rx, None)
}

/// The `200` answer of a session that started: [`response_stream`]'s
/// frames with the node's idle timeout ([`EXEC_IDLE_TIMEOUT`]).
pub(super) fn framed_response(
    output: mpsc::Receiver<ExecChunk>,
    run: tokio::task::JoinHandle<Result<i32, RuntimeError>>,
    shared: Arc<Shared>,
    session: Session,
    container: &str,
    ns: &str,
    pod: &str,
) -> Response {
    let what = format!("container {container:?} in pod {ns}/{pod}");
    (
        StatusCode::OK,
        [("content-type", STREAM_CONTENT_TYPE)],
        Body::from_stream(response_stream(
            output,
            run,
            shared,
            EXEC_IDLE_TIMEOUT,
            session,
            what,
        )),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_keep_their_order_and_decoding() {
        assert_eq!(
            commands("command=sh&container=web&command=-c&command=echo%20a%26b"),
            vec!["sh", "-c", "echo a&b"]
        );
        assert!(commands("stdout=true").is_empty());
        assert!(wants_stdin("command=cat&stdin=true"));
        assert!(!wants_stdin("command=cat&stdout=true"));
    }

    #[test]
    fn terminal_input_frames_are_read_however_their_bytes_are_split() {
        assert!(wants_tty("command=sh&tty=true"));
        assert!(!wants_tty("command=sh&stdin=true"));
        let frame = |kind: u8, payload: &[u8]| {
            let mut f = vec![kind];
            f.extend_from_slice(&u32::try_from(payload.len()).expect("short").to_be_bytes());
            f.extend_from_slice(payload);
            f
        };
        let mut wire = frame(0, b"ls\r");
        wire.extend(frame(4, br#"{"Width":120,"Height":40}"#));
        wire.extend(frame(0, b""));
        let want = vec![
            InputFrame::Stdin(Bytes::from_static(b"ls\r")),
            InputFrame::Resize(TermSize {
                width: 120,
                height: 40,
            }),
            InputFrame::Stdin(Bytes::new()),
        ];
        for step in [1, 2, 5, 9, wire.len()] {
            let mut r = InputReader::default();
            let mut got = Vec::new();
            for piece in wire.chunks(step) {
                r.push(piece);
                while let Some(f) = r.next_frame().expect("valid frames") {
                    got.push(f);
                }
            }
            assert_eq!(got, want, "split every {step} bytes");
        }
        let mut r = InputReader::default();
        r.push(&frame(4, br#"{"Width":-1}"#));
        assert!(
            r.next_frame()
                .expect_err("not a size")
                .contains("is not {\"Width\"")
        );
        let mut r = InputReader::default();
        r.push(&frame(7, b""));
        assert!(r.next_frame().expect_err("kind").contains("kind 7"));
    }

    #[tokio::test]
    async fn framed_input_is_split_into_stdin_and_sizes() {
        let (body_tx, body) = streamed_body();
        let (in_tx, mut in_rx) = mpsc::channel(4);
        let (size_tx, mut size_rx) = mpsc::channel(4);
        let copy = tokio::spawn(copy_framed_input(
            body,
            Some(in_tx),
            size_tx,
            1 << 20,
            Arc::new(Shared::default()),
        ));
        let mut wire = vec![0, 0, 0, 0, 3];
        wire.extend_from_slice(b"ab\r");
        let size = br#"{"Width":80,"Height":24}"#;
        wire.extend_from_slice(&[4, 0, 0, 0, u8::try_from(size.len()).expect("short")]);
        wire.extend_from_slice(size);
        // a frame split across two chunks of the body
        body_tx
            .send(Bytes::copy_from_slice(&wire[..3]))
            .await
            .expect("send");
        body_tx
            .send(Bytes::copy_from_slice(&wire[3..]))
            .await
            .expect("send");
        assert_eq!(in_rx.recv().await.as_deref(), Some(&b"ab\r"[..]));
        assert_eq!(
            size_rx.recv().await,
            Some(TermSize {
                width: 80,
                height: 24
            })
        );
        drop(body_tx);
        assert_eq!(in_rx.recv().await, None, "the body's end ends the input");
        assert_eq!(size_rx.recv().await, None);
        copy.await.expect("copy task");
    }

    #[test]
    fn durations_are_spoken_in_their_unit() {
        assert_eq!(spoken(EXEC_IDLE_TIMEOUT), "4 hours");
        assert_eq!(spoken(Duration::from_secs(300)), "5 minutes");
        assert_eq!(spoken(Duration::from_secs(90)), "90 s");
        assert_eq!(spoken(Duration::from_millis(300)), "300 ms");
    }

    #[test]
    fn frames_are_kind_length_payload() {
        assert_eq!(
            &Frame::Stdout(Bytes::from_static(b"hi")).encode()[..],
            &[1, 0, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(&Frame::Stderr(Bytes::new()).encode()[..], &[2, 0, 0, 0, 0]);
        assert_eq!(
            &Frame::Exit(-2).encode()[..],
            &[3, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfe]
        );
        assert_eq!(
            &Frame::Error("no".into()).encode()[..],
            &[4, 0, 0, 0, 2, b'n', b'o']
        );
    }

    /// A body whose chunks the test sends one at a time.
    fn streamed_body() -> (mpsc::Sender<Bytes>, Body) {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
        });
        (tx, Body::from_stream(stream))
    }

    #[tokio::test]
    async fn stdin_is_copied_chunk_by_chunk_as_it_arrives() {
        let (body_tx, body) = streamed_body();
        let (tx, mut rx) = mpsc::channel(4);
        let shared = Arc::new(Shared::default());
        let copy = tokio::spawn(copy_stdin(body, tx, 1 << 20, shared.clone()));
        // each chunk reaches the command before the next is even sent
        for chunk in ["first\n", "second\n"] {
            body_tx.send(Bytes::from(chunk)).await.expect("send");
            assert_eq!(rx.recv().await.as_deref(), Some(chunk.as_bytes()));
        }
        // the body's end is the input's end
        drop(body_tx);
        assert_eq!(rx.recv().await, None);
        copy.await.expect("copy task");
        assert!(shared.overflow.get().is_none());
    }

    #[tokio::test]
    async fn stdin_beyond_the_limit_ends_the_input_and_says_why() {
        let (body_tx, body) = streamed_body();
        let (tx, mut rx) = mpsc::channel(4);
        let shared = Arc::new(Shared::default());
        let copy = tokio::spawn(copy_stdin(body, tx, 8, shared.clone()));
        body_tx.send(Bytes::from("12345")).await.expect("send");
        assert_eq!(rx.recv().await.as_deref(), Some(&b"12345"[..]));
        body_tx.send(Bytes::from("67890")).await.expect("send");
        assert_eq!(rx.recv().await, None, "input ends at the limit");
        copy.await.expect("copy task");
        assert!(
            shared
                .overflow
                .get()
                .is_some_and(|m| m.contains("stdin is larger than")),
            "{shared:?}"
        );
    }

    #[tokio::test]
    async fn the_response_ends_with_the_exit_code_after_all_output() {
        let (out_tx, out_rx) = mpsc::channel(4);
        let run = tokio::spawn(async move {
            out_tx
                .send(ExecChunk::Stdout(Bytes::from("out")))
                .await
                .expect("send");
            out_tx
                .send(ExecChunk::Stderr(Bytes::from("err")))
                .await
                .expect("send");
            Ok(3)
        });
        let frames: Vec<Bytes> = response_stream(
            out_rx,
            run,
            Arc::new(Shared::default()),
            EXEC_IDLE_TIMEOUT,
            Session::Exec,
            "container \"c\" in pod ns/p".into(),
        )
        .map(|r| r.unwrap_or_default())
        .collect()
        .await;
        assert_eq!(
            frames,
            vec![
                Frame::Stdout(Bytes::from("out")).encode(),
                Frame::Stderr(Bytes::from("err")).encode(),
                Frame::Exit(3).encode(),
            ]
        );
        let (_, out_rx) = mpsc::channel::<ExecChunk>(1);
        let run = tokio::spawn(async { Err(RuntimeError::NotFound("x".into())) });
        let frames: Vec<Bytes> = response_stream(
            out_rx,
            run,
            Arc::new(Shared::default()),
            EXEC_IDLE_TIMEOUT,
            Session::Exec,
            "container \"c\" in pod ns/p".into(),
        )
        .map(|r| r.unwrap_or_default())
        .collect()
        .await;
        assert_eq!(
            frames,
            vec![Frame::Error("container \"c\" in pod ns/p is not running".into()).encode()]
        );
    }

    /// The next frame of a response, within a deadline.
    async fn next_frame<S>(frames: &mut std::pin::Pin<Box<S>>) -> Option<Bytes>
    where
        S: futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>>,
    {
        tokio::time::timeout(Duration::from_secs(20), frames.next())
            .await
            .expect("a frame within the deadline")
            .and_then(Result::ok)
    }

    #[tokio::test]
    async fn a_session_without_input_or_output_ends_after_the_idle_timeout() {
        let (out_tx, out_rx) = mpsc::channel::<ExecChunk>(4);
        let shared = Arc::new(Shared::default());
        let (in_tx, body) = streamed_body();
        let (stdin_tx, mut stdin_rx) = mpsc::channel(4);
        tokio::spawn(copy_stdin(body, stdin_tx, 1 << 20, shared.clone()));
        // the runtime: echoes input until its output is no longer wanted
        let run = tokio::spawn(async move {
            loop {
                tokio::select! {
                    chunk = stdin_rx.recv() => match chunk {
                        Some(b) => {
                            let _ = out_tx.send(ExecChunk::Stdout(b)).await;
                        }
                        None => return Ok(0),
                    },
                    () = out_tx.closed() => return Err(RuntimeError::Other("killed".into())),
                }
            }
        });
        let idle = Duration::from_millis(300);
        let mut frames = Box::pin(response_stream(
            out_rx,
            run,
            shared,
            idle,
            Session::Exec,
            "container \"c\" in pod ns/p".into(),
        ));
        // activity keeps the session alive, well past the idle time in total
        let started = tokio::time::Instant::now();
        while started.elapsed() < idle * 3 {
            in_tx.send(Bytes::from("x")).await.expect("send");
            assert_eq!(
                next_frame(&mut frames).await,
                Some(Frame::Stdout(Bytes::from("x")).encode())
            );
        }
        // then silence ends it, with a reason
        let last = next_frame(&mut frames).await.expect("frame");
        assert_eq!(last[0], 4, "an error frame");
        assert!(
            String::from_utf8_lossy(&last[5..]).contains("idle timeout"),
            "{last:?}"
        );
        assert!(next_frame(&mut frames).await.is_none(), "the stream ends");
    }
}
