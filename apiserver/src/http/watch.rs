//! Watch responses: a chunked stream of JSON events, one per line, with
//! bookmarks, `timeoutSeconds`, and Table rows when kubectl asks for them;
//! from the watch cache, changes are the cache's shared encoded bytes.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::cache::Delivery;
use crate::errors::ApiResult;
use crate::http::request::Format;
use crate::http::resources::Req;
use crate::registry::{INITIAL_EVENTS_END, ListOptions, WatchEvent, WatchFeed, WatchOptions};

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
    let feed = req
        .app
        .registry
        .watch_feed(
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
    let metrics = req.app.metrics.clone();
    metrics.watch_source(&req.target.info.plural, feed.source());
    let guard = metrics.watch_started();
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
        metrics,
    };
    let stream = futures_util::stream::unfold(
        (feed, guard, stream_req),
        move |(mut feed, guard, ctx)| async move {
            let bytes = match &mut feed {
                WatchFeed::Store(rx) | WatchFeed::TooOld(rx) => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(ev)) => ctx.encode(&ev),
                        _ => return None,
                    }
                }
                WatchFeed::Cache(w) => match tokio::time::timeout_at(deadline, w.next()).await {
                    Ok(Some(d)) => ctx.encode_cached(d),
                    Ok(None) => {
                        if w.fell_behind() {
                            ctx.metrics.watcher_terminated(&ctx.info.plural);
                        }
                        return None;
                    }
                    Err(_) => return None,
                },
            };
            Some((Ok::<_, Infallible>(bytes), (feed, guard, ctx)))
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
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl StreamCtx {
    /// Encodes a delivery of the watch cache: JSON lines and protobuf frames
    /// of changes are the cache's shared bytes when the kind is served as
    /// stored; everything else goes through [`StreamCtx::encode`].
    fn encode_cached(&self, d: Delivery) -> bytes::Bytes {
        let as_stored = crate::objects::served_as_stored(&self.info);
        let json = matches!(self.format, Format::Json | Format::Yaml);
        let event = match d {
            Delivery::Event(kind, e) if as_stored && json => return e.json_line(kind),
            Delivery::Event(kind, e) if as_stored && self.format == Format::Protobuf => {
                if let Some(frame) = e.protobuf_frame(kind) {
                    return frame;
                }
                return self.protobuf_error("a watch event has no protobuf form");
            }
            Delivery::Initial(o) if as_stored && json => {
                return crate::cache::event::json_line("ADDED", &o.bytes);
            }
            Delivery::Event(kind, e) => {
                let object = serde_json::from_slice(e.object_bytes(kind))
                    .map_err(|e| crate::errors::ApiError::internal(e.to_string()))
                    .and_then(|v| crate::objects::as_served(&self.info, v));
                match object {
                    Ok(object) => WatchEvent {
                        kind: kind.as_str(),
                        object,
                    },
                    Err(e) => error_event(e),
                }
            }
            Delivery::Initial(o) => match o.served(&self.info) {
                Ok(object) => WatchEvent {
                    kind: "ADDED",
                    object,
                },
                Err(e) => error_event(e),
            },
            Delivery::Bookmark(rev, end) => {
                let mut metadata = json!({"resourceVersion": rev.to_string()});
                if end {
                    metadata["annotations"] = json!({INITIAL_EVENTS_END: "true"});
                }
                WatchEvent {
                    kind: "BOOKMARK",
                    object: json!({"kind": self.info.kind, "apiVersion": self.info.api_version, "metadata": metadata}),
                }
            }
        };
        self.encode(&event)
    }

    fn protobuf_error(&self, message: &str) -> bytes::Bytes {
        use crate::protobuf::responses;
        let status = crate::errors::ApiError::internal(message).status();
        let v = serde_json::to_value(status).unwrap_or_default();
        let object = responses::status(&v).unwrap_or_default();
        bytes::Bytes::from(responses::watch_frame("ERROR", &object))
    }

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
                    return self.protobuf_error(&e.to_string());
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

/// An ERROR event carrying an error's Status.
fn error_event(e: crate::errors::ApiError) -> WatchEvent {
    WatchEvent {
        kind: "ERROR",
        object: serde_json::to_value(e.status()).unwrap_or_default(),
    }
}
