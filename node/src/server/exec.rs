//! `POST /exec/{namespace}/{pod}/{container}?command=…[&stdin=true]`: runs
//! a command in a running container and answers its stdout then its stderr
//! (their split in the `x-korral-stdout-bytes` header) with the exit code in
//! the `x-korral-exit-code` header —
//! what the API server's `pods/exec` turns into a WebSocket session for
//! kubectl. With `stdin=true` the request body is the command's standard
//! input (then closed). The command runs to completion (at most
//! [`EXEC_TIMEOUT`]); no TTY.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::pods::PodContext;
use crate::runtime::RuntimeError;

/// The longest an exec'd command may run.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(300);

/// The largest stdin accepted (the API server's `pods/exec` has the same cap).
pub const MAX_STDIN: usize = 64 << 20;

/// The response header carrying the command's exit code.
pub const EXIT_CODE_HEADER: &str = "x-korral-exit-code";

/// The response header saying how many leading body bytes are stdout (the rest is stderr).
pub const STDOUT_BYTES_HEADER: &str = "x-korral-stdout-bytes";

/// The `command` parameters of a query string, in order.
pub fn commands(query: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Whether the query asks for the body to be the command's stdin.
fn wants_stdin(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "stdin" && (v == "true" || v == "1"))
}

/// Serves an exec request.
pub async fn exec(
    State(ctx): State<Arc<PodContext>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    let command = commands(&query);
    let stdin = wants_stdin(&query).then_some(&body[..]);
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
    match ctx.runtime.exec(&id, &command, stdin, EXEC_TIMEOUT).await {
        Ok(out) => (
            StatusCode::OK,
            [
                ("content-type", "application/octet-stream".to_string()),
                (EXIT_CODE_HEADER, out.code.to_string()),
                (STDOUT_BYTES_HEADER, out.stdout.len().to_string()),
            ],
            out.combined(),
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
        assert!(wants_stdin("command=cat&stdin=true"));
        assert!(!wants_stdin("command=cat&stdout=true"));
    }
}
