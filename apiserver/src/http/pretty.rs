//! Pretty-printed JSON as kube-apiserver writes it: for `?pretty=true`, and
//! when no `pretty` is given, for clients whose User-Agent starts with
//! `curl`, `Wget` or `Mozilla/5.0` (apiserver's `isPrettyPrint`). The
//! indentation is Go's `json.MarshalIndent(v, "", "  ")`: no trailing newline.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::request::Query;

/// The largest body re-indented (a bigger one goes out compact).
const MAX_PRETTY: usize = 64 * 1024 * 1024;

/// Whether a request asks for pretty output: `pretty` read with Go's
/// `strconv.ParseBool` (a bad value is false), else the User-Agent rule.
pub fn wanted(query: &Query, headers: &HeaderMap) -> bool {
    if let Some(p) = query.get("pretty").filter(|p| !p.is_empty()) {
        return matches!(p, "1" | "t" | "T" | "TRUE" | "true" | "True");
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ["curl", "Wget", "Mozilla/5.0"]
        .iter()
        .any(|p| ua.starts_with(p))
}

/// Re-indents JSON text as Go's `json.Indent` with two spaces: whitespace
/// between tokens is dropped, `{}`/`[]` stay empty, `": "` after keys.
pub fn indent(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + json.len() / 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    // an opening bracket waits for its first token before the newline
    let mut pending_open = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    for &b in json {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        if pending_open {
            pending_open = false;
            if matches!(b, b'}' | b']') {
                // empty object or array stays compact
                depth -= 1;
                out.push(b);
                continue;
            }
            newline(&mut out, depth);
        }
        match b {
            b'{' | b'[' => {
                out.push(b);
                depth += 1;
                pending_open = true;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b'"' => {
                in_string = true;
                out.push(b);
            }
            _ => out.push(b),
        }
    }
    out
}

/// Middleware: pretty-prints complete JSON responses for the requests that
/// want it (never watch streams, never the OpenAPI documents, which
/// kube-apiserver serves as they are).
pub async fn layer(req: Request, next: Next) -> Response {
    let want = wanted(&Query::parse(req.uri().query()), req.headers())
        && !req.uri().path().starts_with("/openapi/");
    let resp = next.run(req).await;
    if !want {
        return resp;
    }
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let size = axum::body::HttpBody::size_hint(resp.body()).exact();
    if !json || size.is_none_or(|n| n as usize > MAX_PRETTY) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_PRETTY).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let pretty = indent(&bytes);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(pretty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_as_go_json_indent() {
        let compact =
            br#"{"kind":"Status","metadata":{},"items":[],"a":[1,{"b":"x, y: {z}"}],"s":"q\"{"}
"#;
        let want = "{\n  \"kind\": \"Status\",\n  \"metadata\": {},\n  \"items\": [],\n  \"a\": [\n    1,\n    {\n      \"b\": \"x, y: {z}\"\n    }\n  ],\n  \"s\": \"q\\\"{\"\n}";
        assert_eq!(String::from_utf8_lossy(&indent(compact)), want);
        // indenting twice changes nothing
        assert_eq!(String::from_utf8_lossy(&indent(want.as_bytes())), want);
    }

    #[test]
    fn pretty_follows_the_parameter_then_the_user_agent() {
        let mut curl = HeaderMap::new();
        curl.insert(header::USER_AGENT, "curl/8.5.0".parse().expect("ua"));
        let mut kubectl = HeaderMap::new();
        kubectl.insert(header::USER_AGENT, "kubectl/v1.33.0".parse().expect("ua"));
        let q = |s: &str| Query::parse(Some(s));
        assert!(wanted(&q(""), &curl));
        assert!(!wanted(&q(""), &kubectl));
        assert!(wanted(&q("pretty=true"), &kubectl));
        assert!(wanted(&q("pretty=1"), &kubectl));
        assert!(!wanted(&q("pretty=false"), &curl));
        // ParseBool's error reads as false
        assert!(!wanted(&q("pretty=yes"), &curl));
        assert!(wanted(&q("pretty="), &curl));
    }
}
