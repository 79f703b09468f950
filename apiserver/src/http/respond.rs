//! Response bodies and headers as kube-apiserver writes them: objects and
//! lists in the negotiated form (JSON with Go's escaping and a trailing
//! newline, YAML, a meta.k8s.io Table, PartialObjectMetadata(List), or
//! Kubernetes protobuf for built-in kinds),
//! and `Warning` headers in `299 - "text"` form (`Audit-Id` and
//! `Cache-Control` go on every response, in `http::kube_headers`).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use schemas::KindInfo;

use crate::http::request::Format;

/// A JSON body with a status code.
pub fn json(code: StatusCode, v: &Value) -> Response {
    bytes_response(code, "application/json", crate::status::encode(v))
}

/// A body with its content type.
pub fn bytes_response(code: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut resp = (code, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    resp
}

/// Adds `Warning: 299 - "text"` headers, one per warning, in order.
pub fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append(axum::http::header::WARNING, v);
        }
    }
}

/// An object's PartialObjectMetadata.
pub fn partial_metadata(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// An object in the negotiated format.
pub fn object(
    code: StatusCode,
    format: Format,
    info: &KindInfo,
    include: &str,
    obj: Value,
) -> Response {
    match format {
        Format::Table(version) => json(
            code,
            &crate::tables::table(info, &[obj], json!({}), include, version),
        ),
        Format::Metadata(version) => json(code, &partial_metadata(&obj, version)),
        Format::Yaml => yaml(code, &obj),
        Format::Json => json(code, &obj),
        Format::Protobuf => protobuf(code, crate::protobuf::responses::object(&obj), &obj),
    }
}

/// A protobuf body, or the same value as JSON when it has no protobuf form
/// (logged: the table lacks something the object holds).
fn protobuf(
    code: StatusCode,
    encoded: Result<Vec<u8>, crate::protobuf::ProtobufError>,
    v: &Value,
) -> Response {
    match encoded {
        Ok(bytes) => bytes_response(code, crate::protobuf::MEDIA_TYPE, bytes),
        Err(e) => {
            tracing::warn!(error = %e, "answering in JSON: the object has no protobuf form");
            json(code, v)
        }
    }
}

/// A Status (an error, or a delete's `Success`) in the negotiated format.
pub fn status(code: StatusCode, format: Format, status: &Value) -> Response {
    match format {
        Format::Protobuf => protobuf(code, crate::protobuf::responses::status(status), status),
        _ => json(code, status),
    }
}

/// A YAML body.
pub fn yaml(code: StatusCode, v: &Value) -> Response {
    match serde_saphyr::to_string(v) {
        Ok(text) => bytes_response(code, "application/yaml", text.into_bytes()),
        Err(_) => json(code, v),
    }
}

/// A list response's `metadata`.
pub fn list_meta(
    resource_version: i64,
    continue_token: Option<String>,
    remaining_item_count: Option<i64>,
) -> Value {
    let mut meta = json!({"resourceVersion": resource_version.to_string()});
    if let Some(c) = continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(n) = remaining_item_count {
        meta["remainingItemCount"] = json!(n);
    }
    meta
}

/// A list in the negotiated format. `raw_items` (stored JSON spliced
/// without decoding) is used for plain JSON when given.
pub fn list(
    format: Format,
    info: &KindInfo,
    include: &str,
    meta: Value,
    items: Vec<Value>,
    raw_items: Vec<bytes::Bytes>,
) -> Response {
    match format {
        Format::Table(version) => json(
            StatusCode::OK,
            &crate::tables::table(info, &items, meta, include, version),
        ),
        Format::Metadata(version) => {
            let items: Vec<Value> = items.iter().map(|o| partial_metadata(o, version)).collect();
            json(
                StatusCode::OK,
                &json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": format!("meta.k8s.io/{version}"),
                    "metadata": meta,
                    "items": items,
                }),
            )
        }
        Format::Json if !raw_items.is_empty() => {
            let head = json!({
                "kind": info.list_kind,
                "apiVersion": info.api_version,
                "metadata": meta,
            });
            let mut head = serde_json::to_vec(&head).unwrap_or_default();
            head.pop();
            head.extend_from_slice(b",\"items\":[");
            let mut resp = Body::new(ListBody::new(head.into(), raw_items)).into_response();
            resp.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Format::Protobuf => {
            let encoded = crate::protobuf::responses::list(
                &info.api_version,
                &info.kind,
                &info.list_kind,
                &meta,
                &items,
            );
            let v = json!({
                "kind": info.list_kind,
                "apiVersion": info.api_version,
                "metadata": meta,
                "items": items,
            });
            protobuf(StatusCode::OK, encoded, &v)
        }
        Format::Json | Format::Yaml => {
            let v = json!({
                "kind": info.list_kind,
                "apiVersion": info.api_version,
                "metadata": meta,
                "items": items,
            });
            if format == Format::Yaml {
                yaml(StatusCode::OK, &v)
            } else {
                json(StatusCode::OK, &v)
            }
        }
    }
}

/// A JSON list's body from its head and items' bytes, written in chunks of
/// about [`LIST_CHUNK`] as the connection takes them (the whole list is
/// never copied into one buffer), with its exact length (so large lists
/// are still gzipped and get a `Content-Length`).
struct ListBody {
    head: Option<bytes::Bytes>,
    items: std::vec::IntoIter<bytes::Bytes>,
    first: bool,
    done: bool,
    remaining: u64,
}

/// The size of the chunks a [`ListBody`] writes.
const LIST_CHUNK: usize = 64 * 1024;

impl ListBody {
    fn new(head: bytes::Bytes, items: Vec<bytes::Bytes>) -> Self {
        let commas = items.len().saturating_sub(1);
        let len = head.len() + items.iter().map(|i| i.len()).sum::<usize>() + commas + 3;
        ListBody {
            head: Some(head),
            items: items.into_iter(),
            first: true,
            done: false,
            remaining: len as u64,
        }
    }
}

impl http_body::Body for ListBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        use bytes::BufMut;
        let this = self.get_mut();
        let chunk = if let Some(head) = this.head.take() {
            head
        } else if this.done {
            return std::task::Poll::Ready(None);
        } else {
            let mut buf = bytes::BytesMut::with_capacity(LIST_CHUNK + 1024);
            while buf.len() < LIST_CHUNK {
                match this.items.next() {
                    Some(item) => {
                        if !this.first {
                            buf.put_u8(b',');
                        }
                        this.first = false;
                        buf.extend_from_slice(&item);
                    }
                    None => {
                        buf.extend_from_slice(b"]}\n");
                        this.done = true;
                        break;
                    }
                }
            }
            buf.freeze()
        };
        this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.head.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streamed_lists_are_the_whole_list_with_their_exact_length() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(3 * LIST_CHUNK / 2));
        let items: Vec<bytes::Bytes> = ["{\"n\":1}", big.as_str(), "{\"n\":3}"]
            .iter()
            .map(|s| bytes::Bytes::from(s.to_string()))
            .collect();
        let body = ListBody::new(bytes::Bytes::from_static(b"{\"items\":["), items);
        let hint = http_body::Body::size_hint(&body).exact();
        let bytes = axum::body::to_bytes(Body::new(body), usize::MAX)
            .await
            .expect("body");
        assert_eq!(hint, Some(bytes.len() as u64));
        let want = format!("{{\"items\":[{{\"n\":1}},{big},{{\"n\":3}}]}}\n");
        assert_eq!(String::from_utf8_lossy(&bytes), want);
    }
}
