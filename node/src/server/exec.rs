//! `POST /exec/{namespace}/{pod}/{container}?command=…`: runs a command in
//! a running container and answers its output (stdout and stderr together)
//! with the exit code in the `x-korral-exit-code` header — what the API
//! server's `pods/exec` turns into a WebSocket session for kubectl. The
//! command runs to completion (at most [`EXEC_TIMEOUT`]); no stdin, no TTY.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::pods::PodContext;
use crate::runtime::RuntimeError;

/// The longest an exec'd command may run.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(300);

/// The response header carrying the command's exit code.
pub const EXIT_CODE_HEADER: &str = "x-korral-exit-code";

/// The `command` parameters of a query string, in order.
pub fn commands(query: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Serves an exec request.
pub async fn exec(
    State(ctx): State<Arc<PodContext>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let command = commands(query.as_deref().unwrap_or(""));
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
    match ctx.runtime.exec(&id, &command, EXEC_TIMEOUT).await {
        Ok(out) => (
            StatusCode::OK,
            [
                ("content-type", "application/octet-stream".to_string()),
                (EXIT_CODE_HEADER, out.code.to_string()),
            ],
            out.output,
        )
            .into_response(),
        Err(RuntimeError::NotFound(_)) => (
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod:?} is not running"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("exec in {ns}/{pod}/{container}: {e}"),
        )
            .into_response(),
    }
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
    }
}
