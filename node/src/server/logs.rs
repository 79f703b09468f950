//! `GET /containerLogs/{namespace}/{pod}/{container}`: a container's log
//! file (the current attempt, or with `previous=true` the one before), with
//! `tailLines`, `limitBytes` and `follow` (stream until the container exits
//! or the client goes away) — the kubelet's API, which the API server's
//! `pods/log` proxies to.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use reconcilers::runtime::ObjectRef;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::pods::PodContext;
use crate::pods::status::by_name;
use crate::runtime::Runtime;

/// Query parameters of a log request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogParams {
    /// Stream new lines as they come.
    #[serde(default)]
    pub follow: Option<String>,
    /// The previous attempt's log.
    #[serde(default)]
    pub previous: Option<String>,
    /// Only the last N lines.
    #[serde(default)]
    pub tail_lines: Option<i64>,
    /// At most this many bytes.
    #[serde(default)]
    pub limit_bytes: Option<i64>,
}

fn flag(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| s == "true" || s == "1")
}

fn err(code: StatusCode, msg: String) -> Response {
    (code, msg).into_response()
}

/// The last `n` lines of `data`.
pub fn tail(data: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let trimmed = data.strip_suffix(b"\n").unwrap_or(data);
    let mut count = 0;
    for (i, b) in trimmed.iter().enumerate().rev() {
        if *b == b'\n' {
            count += 1;
            if count == n {
                return &data[i + 1..];
            }
        }
    }
    data
}

/// The log file and runtime id of a container of a pod on this node (the
/// latest attempt, or the one before it); an error response otherwise.
pub(super) async fn locate(
    ctx: &PodContext,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<(PathBuf, String), Response> {
    let p = ctx
        .cache
        .get(&ObjectRef::new(Some(ns), pod))
        .ok_or_else(|| {
            err(
                StatusCode::NOT_FOUND,
                format!("pod {ns}/{pod} is not on this node"),
            )
        })?;
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let infos = ctx
        .runtime
        .list_pod(&uid)
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let attempts = by_name(&infos);
    let a = attempts.get(container).ok_or_else(|| {
        err(
            StatusCode::BAD_REQUEST,
            format!(
                "container {container:?} in pod {pod:?} is waiting to start: ContainerCreating"
            ),
        )
    })?;
    let c = if previous {
        a.previous.as_ref().ok_or_else(|| {
            err(
                StatusCode::BAD_REQUEST,
                format!("previous terminated container {container:?} in pod {pod:?} not found"),
            )
        })?
    } else {
        a.latest
            .as_ref()
            .ok_or_else(|| err(StatusCode::BAD_REQUEST, "no container".into()))?
    };
    Ok((c.log_path.clone(), c.id.clone()))
}

/// Serves a log request.
pub async fn container_logs(
    State(ctx): State<Arc<PodContext>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<LogParams>,
) -> Response {
    let previous = flag(&q.previous);
    let (path, id) = match locate(&ctx, &ns, &pod, &container, previous).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let data = match tokio::fs::read(&path).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return err(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}: {e}", path.display()),
            );
        }
    };
    let mut body: Vec<u8> = match q.tail_lines {
        Some(n) if n >= 0 => tail(&data, usize::try_from(n).unwrap_or(usize::MAX)).to_vec(),
        _ => data.clone(),
    };
    let limit = q.limit_bytes.and_then(|l| usize::try_from(l).ok());
    if let Some(l) = limit {
        body.truncate(l);
    }
    if !(flag(&q.follow) && !previous && limit.is_none()) {
        return (StatusCode::OK, [("content-type", "text/plain")], body).into_response();
    }
    let offset = u64::try_from(data.len()).unwrap_or(0);
    let rest = follow(ctx.runtime.clone(), id, path, offset);
    let stream = futures_util::stream::once(async move { Bytes::from(body) })
        .chain(rest)
        .map(Ok::<Bytes, std::io::Error>);
    (
        StatusCode::OK,
        [("content-type", "text/plain")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// How often a followed log is looked at for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// What a container appends to its log file from `offset` on, as it comes,
/// until the container `id` is no longer running (what it wrote before it
/// stopped included). `pods/log?follow` and `pods/attach` read output this way.
pub(super) fn follow(
    runtime: Arc<dyn Runtime>,
    id: String,
    path: PathBuf,
    offset: u64,
) -> impl futures_util::Stream<Item = Bytes> + Send {
    futures_util::stream::unfold(Some(offset), move |offset| {
        let (runtime, id, path) = (runtime.clone(), id.clone(), path.clone());
        async move {
            let mut offset = offset?;
            loop {
                // whether it ran before reading: what it wrote before stopping is read below
                let running = runtime
                    .list()
                    .await
                    .map(|cs| cs.iter().any(|c| c.id == id && c.is_running()))
                    .unwrap_or(false);
                let mut chunk = Vec::new();
                if let Ok(mut f) = tokio::fs::File::open(&path).await
                    && f.seek(SeekFrom::Start(offset)).await.is_ok()
                {
                    let _ = f.read_to_end(&mut chunk).await;
                }
                if !chunk.is_empty() {
                    offset += u64::try_from(chunk.len()).unwrap_or(0);
                    return Some((Bytes::from(chunk), running.then_some(offset)));
                }
                if !running {
                    return None;
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_takes_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
    }
}
