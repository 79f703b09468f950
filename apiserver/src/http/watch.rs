//! Watch responses: a chunked stream of JSON events, one per line, with
//! bookmarks, `timeoutSeconds`, and Table rows when kubectl asks for them.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::errors::ApiResult;
use crate::http::request::Format;
use crate::http::resources::Req;
use crate::registry::{ListOptions, WatchEvent, WatchOptions};

/// The longest a watch stays open when the client names no timeout
/// (Kubernetes picks 30–60 minutes; clients re-watch).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Starts a watch and streams it.
pub async fn serve(req: &Req, opts: ListOptions) -> ApiResult<Response> {
    let timeout = req
        .query
        .int("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t as u64));
    let rx = req
        .app
        .registry
        .watch(
            req.target.info.clone(),
            req.target.namespace.as_deref(),
            WatchOptions {
                selectors: opts.selectors,
                resource_version: opts.resource_version,
                bookmarks: req.query.flag("allowWatchBookmarks"),
                initial_events: crate::http::options::initial_events(
                    &req.query,
                    req.app.watch_list,
                ),
            },
        )
        .await?;
    let guard = req.app.metrics.watch_started();
    let deadline = tokio::time::Instant::now() + timeout;
    let format = req.format;
    let info = req.target.info.clone();
    let include = req
        .query
        .get("includeObject")
        .unwrap_or("Metadata")
        .to_string();
    let stream_req = StreamCtx {
        format,
        info,
        include,
    };
    let stream = futures_util::stream::unfold(
        (rx, guard, stream_req),
        move |(mut rx, guard, ctx)| async move {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(ev)) => {
                    let bytes = ctx.encode(&ev);
                    Some((Ok::<_, Infallible>(bytes), (rx, guard, ctx)))
                }
                _ => None,
            }
        },
    );
    let mut resp = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let content_type = if format == Format::Protobuf {
        crate::protobuf::responses::WATCH_MEDIA_TYPE
    } else {
        "application/json"
    };
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(content_type),
    );
    Ok(resp)
}

struct StreamCtx {
    format: Format,
    info: std::sync::Arc<schemas::KindInfo>,
    include: String,
}

impl StreamCtx {
    fn encode(&self, event: &WatchEvent) -> bytes::Bytes {
        if self.format == Format::Protobuf {
            use crate::protobuf::responses;
            match responses::watch_object(event.kind, &event.object) {
                Ok(object) => {
                    return bytes::Bytes::from(responses::watch_frame(event.kind, &object));
                }
                Err(e) => {
                    // a frame must be protobuf: say what failed in an ERROR event
                    tracing::warn!(error = %e, "a watch event has no protobuf form");
                    let status = crate::errors::ApiError::internal(e.to_string()).status();
                    let v = serde_json::to_value(status).unwrap_or_default();
                    let object = responses::status(&v).unwrap_or_default();
                    return bytes::Bytes::from(responses::watch_frame("ERROR", &object));
                }
            }
        }
        let object = match (self.format, event.kind) {
            (Format::Table(version), "ADDED" | "MODIFIED" | "DELETED") => crate::tables::table(
                &self.info,
                std::slice::from_ref(&event.object),
                json!({"resourceVersion": event.object.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)}),
                &self.include,
                version,
            ),
            (Format::Metadata(version), "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK") => {
                crate::http::respond::partial_metadata(&event.object, version)
            }
            _ => event.object.clone(),
        };
        bytes::Bytes::from(crate::status::encode(
            &json!({"type": event.kind, "object": object}),
        ))
    }
}
