//! The push webhook: `POST /hooks/git` with a GitHub or GitLab push payload
//! asks every GitSource following that repository to sync now (through the
//! API's `sync` subresource, so whichever server leads does it). With a
//! secret configured, GitHub's `X-Hub-Signature-256` HMAC or GitLab's
//! `X-Gitlab-Token` must match.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ring::hmac;
use serde_json::{Value, json};

use reconcilers::runtime::{Client, ListParams};
use schemas::MetaExt;
use schemas::korral::GitSource;

/// The webhook's state.
struct Hook {
    client: Client,
    secret: Option<String>,
}

/// A URL reduced to host and path, so `https://x/a/b.git`, `git@x:a/b` and
/// `https://user@x/a/b/` compare equal.
pub fn normalise_url(url: &str) -> String {
    let u = url.trim().trim_end_matches('/');
    let u = u.strip_suffix(".git").unwrap_or(u);
    let rest = match u.split_once("://") {
        Some((_, r)) => r.to_string(),
        None => match u.split_once('@') {
            // scp-like: git@host:path
            Some((_, r)) if !r.contains("://") => r.replacen(':', "/", 1),
            _ => u.to_string(),
        },
    };
    let rest = rest.rsplit_once('@').map_or(rest.as_str(), |(_, r)| r);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    format!("{host}/{path}")
}

/// The repository URLs a GitHub or GitLab push payload names.
pub fn payload_urls(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for obj in ["repository", "project"] {
        for field in [
            "clone_url",
            "html_url",
            "ssh_url",
            "git_url",
            "url",
            "git_http_url",
            "git_ssh_url",
            "web_url",
            "homepage",
        ] {
            if let Some(s) = v
                .get(obj)
                .and_then(|o| o.get(field))
                .and_then(Value::as_str)
            {
                out.push(normalise_url(s));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn authorised(secret: Option<&str>, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(secret) = secret else { return true };
    if let Some(sig) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
    {
        let Some(bytes) = decode_hex(sig) else {
            return false;
        };
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        return hmac::verify(&key, body, &bytes).is_ok();
    }
    if let Some(token) = headers.get("x-gitlab-token").and_then(|v| v.to_str().ok()) {
        // compare in constant time: HMACs of both under one key
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"korral-webhook-token");
        let tag = hmac::sign(&key, secret.as_bytes());
        return hmac::verify(&key, token.as_bytes(), tag.as_ref()).is_ok();
    }
    false
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

async fn receive(
    State(hook): State<Arc<Hook>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if !authorised(hook.secret.as_deref(), &headers, &body) {
        return (
            StatusCode::UNAUTHORIZED,
            "bad or missing signature\n".into(),
        );
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not JSON\n".into());
    };
    let urls = payload_urls(&payload);
    if urls.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "no repository URL in the payload\n".into(),
        );
    }
    let sources = match hook
        .client
        .api::<GitSource>(None)
        .list_all(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("cannot list GitSources: {e}\n"),
            );
        }
    };
    let mut triggered = Vec::new();
    for s in sources {
        let Some(url) = s.spec.as_ref().and_then(|s| s.url.as_deref()) else {
            continue;
        };
        if !urls.contains(&normalise_url(url)) {
            continue;
        }
        let ns = s.metadata.namespace_str().to_string();
        let name = s.metadata.name_str().to_string();
        match hook
            .client
            .api::<GitSource>(Some(&ns))
            .create_subresource(&name, "sync", &json!({}))
            .await
        {
            Ok(_) => triggered.push(format!("{ns}/{name}")),
            Err(e) => {
                tracing::warn!(source = %format!("{ns}/{name}"), error = %e, "webhook: cannot request a sync")
            }
        }
    }
    tracing::info!(?urls, ?triggered, "push webhook");
    (
        StatusCode::ACCEPTED,
        json!({ "triggered": triggered }).to_string(),
    )
}

/// The webhook's routes.
pub fn router(client: Client, secret: Option<String>) -> Router {
    Router::new()
        .route("/hooks/git", post(receive))
        .with_state(Arc::new(Hook { client, secret }))
}

/// Serves the webhook on `addr` until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    client: Client,
    secret: Option<String>,
) -> std::io::Result<()> {
    if secret.is_none() {
        tracing::warn!(%addr, "the push webhook accepts unsigned requests (no secret configured)");
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(client, secret)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_one_repository_compare_equal() {
        let want = "github.com/team/app";
        for u in [
            "https://github.com/team/app.git",
            "https://GitHub.com/team/app/",
            "git@github.com:team/app.git",
            "ssh://git@github.com:22/team/app.git",
            "https://bot:token@github.com/team/app",
        ] {
            assert_eq!(normalise_url(u), want, "{u}");
        }
        let github = json!({"ref": "refs/heads/main", "repository": {"clone_url": "https://github.com/team/app.git", "ssh_url": "git@github.com:team/app.git"}});
        assert_eq!(payload_urls(&github), vec![want.to_string()]);
        let gitlab = json!({"project": {"git_http_url": "https://gitlab.example/g/app.git"}});
        assert_eq!(
            payload_urls(&gitlab),
            vec!["gitlab.example/g/app".to_string()]
        );
    }

    #[test]
    fn signatures_are_checked_when_a_secret_is_set() {
        let body = br#"{"repository":{}}"#;
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"s3cret");
        let sig = crate::owner::hex(hmac::sign(&key, body).as_ref());
        let mut h = HeaderMap::new();
        assert!(authorised(None, &h, body));
        assert!(!authorised(Some("s3cret"), &h, body));
        h.insert(
            "x-hub-signature-256",
            format!("sha256={sig}").parse().expect("header"),
        );
        assert!(authorised(Some("s3cret"), &h, body));
        assert!(!authorised(Some("other"), &h, body));
        let mut g = HeaderMap::new();
        g.insert("x-gitlab-token", "s3cret".parse().expect("header"));
        assert!(authorised(Some("s3cret"), &g, body));
    }
}
