//! `POST /attach/{namespace}/{pod}/{container}[?stdin=true][&tty=true]`:
//! attaches to a running container's own process, like the kubelet's
//! attach — what the API server's `pods/attach` turns into a WebSocket
//! session for `kubectl attach`. The answer is exec's framed stream
//! ([`super::exec`]): the container's output from now on, read from its log
//! as it is written ([`super::logs::follow`]), then the container's exit
//! code when it stops. The runtimes send a container's stdout and stderr to
//! one log file that does not record which was which (on a terminal they
//! are one stream anyway), so all of it arrives as stdout.
//!
//! Stdin (`-i`): a container whose spec lacks `stdin: true` is refused as
//! the kubelet refuses it. Otherwise the request body is copied to the stdin
//! the runtime keeps for the container ([`crate::runtime::Runtime::attach_input`]),
//! which several sessions share; with `stdinOnce: true` (and no terminal,
//! as containerd's CRI) the end of the first session's input closes the
//! container's stdin for good. With `tty=true` the body is exec's
//! [`super::exec::InputFrame`]s: input and terminal sizes, applied to a
//! container with `tty: true`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use reconcilers::runtime::ObjectRef;
use tokio::sync::mpsc;

use super::exec::{Session, Shared, framed_response, input_channels, wants_stdin, wants_tty};
use crate::pods::PodContext;
use crate::runtime::{
    AttachInput, ContainerIo, EXEC_QUEUE, ExecChunk, RuntimeError, State as ContainerState,
};

/// The largest output chunk sent in one frame.
const CHUNK: usize = 32 * 1024;

/// Why `-i` cannot be served for a container, if it cannot: `stdin` is the
/// container spec's `stdin` field, `why` what the runtime said.
pub fn stdin_refusal(
    stdin: bool,
    why: Option<&str>,
    container: &str,
    ns: &str,
    pod: &str,
) -> String {
    match (stdin, why) {
        (true, Some(why)) => format!(
            "cannot attach to the stdin of container {container:?} in pod {ns}/{pod}: {why}; attach without -i to see its output, or use `kubectl exec -i`"
        ),
        _ => format!(
            "cannot attach to container {container:?} in pod {ns}/{pod} with -i: stdin not enabled in its spec (stdin: true)"
        ),
    }
}

/// Serves an attach request.
pub async fn attach(
    State(ctx): State<Arc<PodContext>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let query = query.unwrap_or_default();
    let io = ctx
        .cache
        .get(&ObjectRef::new(Some(&ns), &pod))
        .and_then(|p| {
            p.spec
                .as_ref()?
                .containers
                .iter()
                .find(|c| c.name == container)
                .map(ContainerIo::of)
        })
        .unwrap_or_default();
    let stdin = wants_stdin(&query);
    if stdin && !io.stdin {
        return (
            StatusCode::BAD_REQUEST,
            stdin_refusal(false, None, &container, &ns, &pod),
        )
            .into_response();
    }
    let (path, id) = match super::logs::locate(&ctx, &ns, &pod, &container, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let running = ctx
        .runtime
        .list()
        .await
        .map(|cs| cs.iter().any(|c| c.id == id && c.is_running()))
        .unwrap_or(false);
    if !running {
        return (
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {ns}/{pod} is not running"),
        )
            .into_response();
    }
    if stdin && let Err(e) = ctx.runtime.stdin_ready(&id).await {
        let why = e.to_string();
        return (
            StatusCode::BAD_REQUEST,
            stdin_refusal(true, Some(&why), &container, &ns, &pod),
        )
            .into_response();
    }
    // from now on: what is already in the log is not sent
    let offset = tokio::fs::metadata(&path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let tty = wants_tty(&query) && io.tty;
    tracing::info!(namespace = %ns, pod = %pod, container = %container, stdin, tty, "attach");
    let shared = Arc::new(Shared::default());
    if stdin || tty {
        let (stdin, resize) = input_channels(body, stdin, wants_tty(&query), &shared);
        let input = AttachInput {
            stdin,
            resize: resize.filter(|_| tty),
            close_stdin: io.stdin_once && !io.tty,
        };
        let (runtime, id) = (ctx.runtime.clone(), id.clone());
        tokio::spawn(async move {
            if let Err(e) = runtime.attach_input(&id, input).await {
                tracing::warn!(container = %id, error = %e, "attach: the session's input");
            }
        });
    }
    let (output, rx) = mpsc::channel(EXEC_QUEUE);
    let runtime = ctx.runtime.clone();
    let run = tokio::spawn(async move {
        let mut log = std::pin::pin!(super::logs::follow(
            runtime.clone(),
            id.clone(),
            path,
            offset
        ));
        while let Some(chunk) = log.next().await {
            for piece in chunk.chunks(CHUNK) {
                if output
                    .send(ExecChunk::Stdout(chunk.slice_ref(piece)))
                    .await
                    .is_err()
                {
                    // the session ended; the container runs on
                    return Err(RuntimeError::Other("the client left".into()));
                }
            }
        }
        let containers = runtime.list().await?;
        match containers.into_iter().find(|c| c.id == id).map(|c| c.state) {
            Some(ContainerState::Exited { code, .. }) => Ok(code),
            _ => Err(RuntimeError::NotFound(id)),
        }
    });
    framed_response(rx, run, shared, Session::Attach, &container, &ns, &pod)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_is_refused_with_the_reason() {
        let m = stdin_refusal(false, None, "c", "ns", "p");
        assert!(m.contains("stdin not enabled"), "{m}");
        let m = stdin_refusal(true, Some("it was closed"), "c", "ns", "p");
        assert!(
            m.contains("stdin of container \"c\" in pod ns/p: it was closed"),
            "{m}"
        );
    }
}
