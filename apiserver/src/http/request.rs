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

    /// Every value of a repeated parameter (`?exclude=a&exclude=b`).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of a parameter, as Go's `url.Values.Get` and
    /// kube-apiserver's parameter conversions read it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter that is false when absent (see [`Query::bool`]).
    pub fn flag(&self, key: &str) -> bool {
        self.bool(key).unwrap_or(false)
    }

    /// A boolean parameter as kube-apiserver's parameter codec reads it
    /// (apimachinery's `Convert_Slice_string_To_bool`): absent is `None`,
    /// `0` and any case of `false` are false, anything else — `1`, `True`,
    /// `yes`, an empty value — is true. It never refuses a value.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key)
            .map(|v| !(v == "0" || v.eq_ignore_ascii_case("false")))
    }

    /// `fieldValidation` (Warn when absent, as kube-apiserver).
    pub fn field_validation(&self) -> ApiResult<crate::admission::FieldValidation> {
        crate::admission::FieldValidation::parse(self.get("fieldValidation"))
    }

    /// An optional integer parameter (`timeoutSeconds`, `gracePeriodSeconds`:
    /// Go's `*int64`, where an empty value is unset); a malformed one is a
    /// 400 with Go's `strconv.ParseInt` text, as kube-apiserver answers.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_int(v).map(Some),
        }
    }

    /// `limit` (Go's plain `int64`: present but empty is malformed too).
    pub fn limit(&self) -> ApiResult<Option<i64>> {
        self.get("limit").map(parse_int).transpose()
    }

    /// `labelSelector` and `fieldSelector` for a kind.
    pub fn selectors(&self, info: &schemas::KindInfo) -> ApiResult<Selectors> {
        Ok(Selectors {
            labels: LabelSelector::parse(self.get("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(self.get("fieldSelector").unwrap_or(""), info)?,
        })
    }
}

/// Go's `strconv.ParseInt(v, 10, 64)`, with its error text.
fn parse_int(v: &str) -> ApiResult<i64> {
    v.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: {why}"))
    })
}

/// The response format the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Plain JSON objects and lists.
    Json,
    /// YAML objects and lists.
    Yaml,
    /// meta.k8s.io Table (`v1` or `v1beta1`).
    Table(&'static str),
    /// meta.k8s.io PartialObjectMetadata(List) (`v1` or `v1beta1`).
    Metadata(&'static str),
    /// `application/vnd.kubernetes.protobuf` (built-in kinds only).
    Protobuf,
}

/// One media range of an Accept header.
struct MediaRange<'a> {
    media: &'a str,
    params: Vec<(&'a str, &'a str)>,
    q: f32,
}

fn media_ranges(accept: &str) -> Vec<MediaRange<'_>> {
    let mut out: Vec<MediaRange<'_>> = accept
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let mut pieces = part.split(';').map(str::trim);
            let media = pieces.next().unwrap_or("");
            let mut params = Vec::new();
            let mut q = 1.0;
            for p in pieces {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim() == "q" {
                        q = v.trim().parse().unwrap_or(0.0);
                    } else {
                        params.push((k.trim(), v.trim()));
                    }
                }
            }
            MediaRange { media, params, q }
        })
        .collect();
    // stable: equal q keeps the client's order
    out.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
    out
}

/// Picks the response format from the Accept header as kube-apiserver
/// negotiates it: the first acceptable media range by q-value, with Table and
/// PartialObjectMetadata transformations; protobuf only where the kind has
/// a protobuf form (`protobuf`); `None` when nothing is acceptable.
pub fn negotiate(accept: &str, list: bool, protobuf: bool) -> Option<Format> {
    if accept.trim().is_empty() {
        return Some(Format::Json);
    }
    for r in media_ranges(accept) {
        if r.q <= 0.0 {
            continue;
        }
        let param = |k: &str| r.params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let json = matches!(r.media, "application/json" | "application/*" | "*/*");
        match param("as") {
            None if json => return Some(Format::Json),
            None if r.media == "application/yaml" => return Some(Format::Yaml),
            None if protobuf && r.media == crate::protobuf::MEDIA_TYPE => {
                return Some(Format::Protobuf);
            }
            None => {}
            Some(as_) if json && param("g") == Some("meta.k8s.io") => {
                let version = match param("v") {
                    Some("v1") => "v1",
                    Some("v1beta1") => "v1beta1",
                    _ => continue,
                };
                match as_ {
                    "Table" => return Some(Format::Table(version)),
                    "PartialObjectMetadata" if !list => return Some(Format::Metadata(version)),
                    "PartialObjectMetadataList" if list => return Some(Format::Metadata(version)),
                    _ => {}
                }
            }
            Some(_) => {}
        }
    }
    None
}

/// Picks the response format from the Accept header (406 when it accepts
/// nothing we write).
pub fn format(headers: &HeaderMap, list: bool, protobuf: bool) -> ApiResult<Format> {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    negotiate(accept, list, protobuf).ok_or_else(|| {
        ApiError::not_acceptable(
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        )
    })
}

/// The bearer token of a request, if any, read as kube-apiserver's
/// bearertoken authenticator does: the scheme in any case (the Python
/// client's in-cluster configuration sends `bearer`), the token the word
/// after it.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, rest) = value.split_once(' ')?;
    let token = rest.split(' ').next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
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
/// ([`crate::http::options::check_write`] checks the parameter.)
pub fn field_manager(query: &Query, headers: &HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let ua = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    ua.split('/')
        .next()
        .unwrap_or("unknown")
        .chars()
        .take(128)
        .collect()
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
    fn bearer_tokens_are_read_as_kube_apiserver_reads_them() {
        let token = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                axum::http::header::AUTHORIZATION,
                v.parse().expect("header value"),
            );
            bearer(&h).map(str::to_string)
        };
        assert_eq!(token("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(token("bearer abc").as_deref(), Some("abc"));
        assert_eq!(token("BEARER abc extra").as_deref(), Some("abc"));
        assert_eq!(token("Bearer  abc"), None);
        assert_eq!(token("Bearer"), None);
        assert_eq!(token("Basic abc"), None);
    }

    #[test]
    fn query_parameters_decode() {
        let q = Query::parse(Some("labelSelector=app%3Dweb&watch=1&limit=5&limit=6"));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
        assert!(q.flag("watch"));
        // the first of repeated values, as Go's url.Values.Get
        assert_eq!(q.limit().expect("limit"), Some(5));
        let e = Query::parse(Some("limit=x")).limit().expect_err("x");
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "strconv.ParseInt: parsing \"x\": invalid syntax")
        );
        let e = Query::parse(Some("limit=")).limit().expect_err("empty");
        assert_eq!(e.message, "strconv.ParseInt: parsing \"\": invalid syntax");
        let e = Query::parse(Some("timeoutSeconds=99999999999999999999"))
            .int("timeoutSeconds")
            .expect_err("range");
        assert_eq!(
            e.message,
            "strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(
            Query::parse(Some("timeoutSeconds="))
                .int("timeoutSeconds")
                .expect("empty"),
            None
        );
        // Go's ParseInt takes a sign; a raw "+" in a query is a space
        assert_eq!(
            Query::parse(Some("limit=%2B7")).limit().expect("+7"),
            Some(7)
        );
        assert!(Query::parse(Some("limit=+7")).limit().is_err());
    }

    #[test]
    fn booleans_parse_as_kube_apiserver_does() {
        for t in ["1", "t", "T", "TRUE", "true", "True", "yes", "", "F", "2"] {
            assert_eq!(
                Query::parse(Some(&format!("watch={t}"))).bool("watch"),
                Some(true),
                "{t:?}"
            );
        }
        for f in ["0", "false", "False", "FALSE", "fAlSe"] {
            assert_eq!(
                Query::parse(Some(&format!("watch={f}"))).bool("watch"),
                Some(false),
                "{f:?}"
            );
        }
        assert_eq!(Query::parse(Some("watch")).bool("watch"), Some(true));
        assert_eq!(Query::parse(Some("other=1")).bool("watch"), None);
    }

    #[test]
    fn accept_headers_negotiate_like_kube_apiserver() {
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(table, true, true), Some(Format::Table("v1")));
        assert_eq!(
            negotiate(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                true,
                true
            ),
            Some(Format::Metadata("v1"))
        );
        assert_eq!(
            negotiate(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
                false,
                true
            ),
            Some(Format::Json)
        );
        let protobuf_first = "application/vnd.kubernetes.protobuf,application/json";
        assert_eq!(
            negotiate(protobuf_first, false, true),
            Some(Format::Protobuf)
        );
        // custom resources have no protobuf form: the next choice
        assert_eq!(negotiate(protobuf_first, false, false), Some(Format::Json));
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf", false, false),
            None
        );
        assert_eq!(
            negotiate(
                "application/vnd.kubernetes.protobuf;stream=watch",
                true,
                true
            ),
            Some(Format::Protobuf)
        );
        assert_eq!(
            negotiate("application/json;q=0.5,application/yaml", false, true),
            Some(Format::Yaml)
        );
        assert_eq!(negotiate("text/html", false, true), None);
        assert_eq!(negotiate("", false, true), Some(Format::Json));
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
        assert_eq!(field_manager(&Query::default(), &h), "kubectl");
        assert_eq!(
            field_manager(&Query::parse(Some("fieldManager=me")), &h),
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
