//! What a resource request carries besides its URL: query parameters, the
//! caller, the negotiated response format, and the body (size-limited).

use axum::body::Body;
use axum::http::HeaderMap;
use serde_json::Value;

use crate::errors::{ApiError, ApiResult};
use crate::selectors::{FieldSelector, LabelSelector, Selectors};

/// The largest request body accepted (Kubernetes' limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Query parameters, in order.
#[derive(Clone, Debug, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last value of a parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// An integer parameter.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("{key}: invalid value {v:?}: must be an integer"))
            }),
        }
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    /// `labelSelector` and `fieldSelector` for a kind.
    pub fn selectors(&self, info: &schemas::KindInfo) -> ApiResult<Selectors> {
        Ok(Selectors {
            labels: LabelSelector::parse(self.get("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(self.get("fieldSelector").unwrap_or(""), info)?,
        })
    }
}

/// The response format the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Plain JSON objects and lists.
    Json,
    /// meta.k8s.io/v1 Table.
    Table,
}

/// Picks the response format from the Accept header.
pub fn format(headers: &HeaderMap) -> Format {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if crate::tables::wants_table(accept) {
        Format::Table
    } else {
        Format::Json
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The request's content type without parameters (e.g. `application/merge-patch+json`).
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The field manager: the `fieldManager` parameter, else the user agent's
/// product name (`kubectl`, `OpenAPI-Generator`), as Kubernetes defaults it.
pub fn field_manager(query: &Query, headers: &HeaderMap) -> ApiResult<String> {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        if m.len() > 128 || m.chars().any(|c| c.is_control()) {
            return Err(ApiError::bad_request(format!(
                "fieldManager: Invalid value: {m:?}: must be at most 128 printable characters"
            )));
        }
        return Ok(m.to_string());
    }
    let ua = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    Ok(ua
        .split('/')
        .next()
        .unwrap_or("unknown")
        .chars()
        .take(128)
        .collect())
}

/// How much of an oversized body is read and discarded so that the client,
/// still sending, receives the 413 instead of a reset connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads the body, refusing more than [`MAX_BODY`] bytes.
pub async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        total += chunk.len();
        if total <= MAX_BODY {
            buf.extend_from_slice(&chunk);
        } else if total > DRAIN_LIMIT {
            break;
        }
    }
    if total > MAX_BODY {
        return Err(ApiError::too_large(MAX_BODY));
    }
    Ok(buf.freeze())
}

/// Decodes a JSON (or YAML) request body into an object.
pub fn decode_object(bytes: &[u8], content_type: &str) -> ApiResult<Value> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; an object was expected",
        ));
    }
    let v: Value = if crate::protobuf::is_protobuf(content_type) {
        crate::protobuf::decode_request(bytes).map_err(|e| {
            ApiError::bad_request(format!("the protobuf request body cannot be decoded: {e}"))
        })?
    } else if content_type.contains("yaml") {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
        serde_saphyr::from_str(text).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid YAML: {e}"))
        })?
    } else {
        serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_decode() {
        let q = Query::parse(Some("labelSelector=app%3Dweb&watch=1&limit=5&dryRun=All"));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
        assert!(q.flag("watch"));
        assert_eq!(q.int("limit").expect("limit"), Some(5));
        assert!(q.dry_run().expect("dry run"));
        assert!(Query::parse(Some("dryRun=Some")).dry_run().is_err());
        assert!(Query::parse(Some("limit=x")).int("limit").is_err());
    }

    #[test]
    fn field_manager_defaults_to_the_user_agent_product() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::USER_AGENT,
            "kubectl/v1.32.4 (linux/amd64) kubernetes/abc"
                .parse()
                .expect("ua"),
        );
        assert_eq!(field_manager(&Query::default(), &h).expect("fm"), "kubectl");
        assert_eq!(
            field_manager(&Query::parse(Some("fieldManager=me")), &h).expect("fm"),
            "me"
        );
    }

    #[test]
    fn bodies_must_be_objects() {
        assert_eq!(
            decode_object(b"[1]", "application/json")
                .expect_err("array")
                .code,
            400
        );
        assert_eq!(
            decode_object(b"{bad", "application/json")
                .expect_err("bad")
                .code,
            400
        );
        assert!(decode_object(b"a: 1\n", "application/yaml").is_ok());
    }
}
