//! `POST /attach/{namespace}/{pod}/{container}[?stdin=true]`: attaches to a
//! running container's own process, like the kubelet's attach — what the
//! API server's `pods/attach` turns into a WebSocket session for `kubectl
//! attach`. The answer is exec's framed stream ([`super::exec`]): the
//! container's output from now on, read from its log as it is written
//! ([`super::logs::follow`]), then the container's exit code when it stops.
//! The runtimes send a container's stdout and stderr to one log file that
//! does not record which was which, so all of it arrives as stdout.
//!
//! Stdin: a container whose spec lacks `stdin: true` is refused as the
//! kubelet refuses it; one that has it is refused too, because korral's
//! runtimes start a container's process with its stdin closed (the process
//! runtime's shim detaches from the daemon and keeps no pipe; the
//! containerd runtime creates the task without a stdin FIFO).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use reconcilers::runtime::ObjectRef;
use tokio::sync::mpsc;

use super::exec::{Session, Shared, framed_response, wants_stdin};
use crate::pods::PodContext;
use crate::runtime::{EXEC_QUEUE, ExecChunk, RuntimeError, State as ContainerState};

/// The largest output chunk sent in one frame.
const CHUNK: usize = 32 * 1024;

/// Why `-i` cannot be served for a container, if it cannot: `stdin` is the
/// container spec's `stdin` field.
pub fn stdin_refusal(stdin: bool, container: &str, ns: &str, pod: &str) -> String {
    if stdin {
        format!(
            "cannot attach to the stdin of container {container:?} in pod {ns}/{pod}: korral's runtimes start a container's process without a stdin pipe to attach to; attach without -i to see its output, or use `kubectl exec -i`"
        )
    } else {
        format!(
            "cannot attach to container {container:?} in pod {ns}/{pod} with -i: stdin not enabled in its spec (stdin: true)"
        )
    }
}

/// Serves an attach request.
pub async fn attach(
    State(ctx): State<Arc<PodContext>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    if wants_stdin(&query) {
        let stdin = ctx
            .cache
            .get(&ObjectRef::new(Some(&ns), &pod))
            .and_then(|p| {
                p.spec
                    .as_ref()?
                    .containers
                    .iter()
                    .find(|c| c.name == container)
                    .map(|c| c.stdin == Some(true))
            })
            .unwrap_or(false);
        return (
            StatusCode::BAD_REQUEST,
            stdin_refusal(stdin, &container, &ns, &pod),
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
    // from now on: what is already in the log is not sent
    let offset = tokio::fs::metadata(&path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    tracing::info!(namespace = %ns, pod = %pod, container = %container, "attach");
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
    framed_response(
        rx,
        run,
        Arc::new(Shared::default()),
        Session::Attach,
        &container,
        &ns,
        &pod,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_is_refused_with_the_reason() {
        let m = stdin_refusal(false, "c", "ns", "p");
        assert!(m.contains("stdin not enabled"), "{m}");
        let m = stdin_refusal(true, "c", "ns", "p");
        assert!(m.contains("without a stdin pipe"), "{m}");
    }
}
