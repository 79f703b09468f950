//! Response bodies and headers as kube-apiserver writes them: objects and
//! lists in the negotiated form (JSON with Go's escaping and a trailing
//! newline, YAML, a meta.k8s.io Table, PartialObjectMetadata(List), or
//! Kubernetes protobuf for built-in kinds),
//! and `Warning` headers in `299 - "text"` form (`Audit-Id` and
//! `Cache-Control` go on every response, in `http::kube_headers`).

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
            let mut body = serde_json::to_vec(&head).unwrap_or_default();
            body.reserve(raw_items.iter().map(|i| i.len() + 1).sum::<usize>() + 16);
            body.pop();
            body.extend_from_slice(b",\"items\":[");
            for (i, item) in raw_items.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(item);
            }
            body.extend_from_slice(b"]}\n");
            bytes_response(StatusCode::OK, "application/json", body)
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
