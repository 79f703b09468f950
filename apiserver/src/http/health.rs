//! `/healthz`, `/livez` and `/readyz` as kube-apiserver serves them: `ok`
//! when every check passes; `?verbose` lists each check (`[+]etcd ok`);
//! `?exclude=NAME` skips one; `/livez/NAME` runs one check; a failure is a
//! 500 whose body names the failed check (the reason is logged, not shown).

use std::sync::Arc;

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::errors::ApiError;
use crate::http::App;
use crate::http::request::Query;

/// Which endpoint: its name and the checks it runs.
#[derive(Clone, Copy, Debug)]
pub enum Endpoint {
    /// `/healthz` (deprecated in Kubernetes, still served).
    Healthz,
    /// `/livez`.
    Livez,
    /// `/readyz`.
    Readyz,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Healthz => "healthz",
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
        }
    }

    fn checks(self) -> &'static [&'static str] {
        match self {
            Endpoint::Healthz | Endpoint::Livez => &["ping", "log", "etcd"],
            Endpoint::Readyz => &["ping", "log", "etcd", "informer-sync", "shutdown"],
        }
    }
}

/// Runs one check: `Err(reason)` when it fails.
async fn run(app: &App, check: &str) -> Result<(), String> {
    match check {
        // the store, whichever backend (kube calls its check "etcd")
        "etcd" => app
            .registry
            .store()
            .current_revision()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

async fn serve(app: &App, endpoint: Endpoint, only: Option<&str>, uri: &Uri) -> Response {
    let query = Query::parse(uri.query());
    let name = endpoint.name();
    if let Some(check) = only.filter(|c| !c.is_empty()) {
        if !endpoint.checks().contains(&check) {
            return ApiError::no_route(&format!("/{name}/{check}")).into_response();
        }
        return match run(app, check).await {
            Ok(()) => "ok".into_response(),
            Err(reason) => {
                tracing::warn!(check, %reason, "{name} check failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal server error: {check} check failed\n"),
                )
                    .into_response()
            }
        };
    }
    let excluded: Vec<&str> = query.all("exclude");
    let verbose = query.get("verbose").is_some();
    let mut lines = Vec::new();
    let mut failed = false;
    for check in endpoint.checks() {
        if excluded.contains(check) {
            lines.push(format!("[+]{check} excluded: ok"));
            continue;
        }
        match run(app, check).await {
            Ok(()) => lines.push(format!("[+]{check} ok")),
            Err(reason) => {
                tracing::warn!(check, %reason, "{name} check failed");
                failed = true;
                lines.push(format!("[-]{check} failed: reason withheld"));
            }
        }
    }
    if !failed && !verbose {
        return "ok".into_response();
    }
    let verdict = if failed { "failed" } else { "passed" };
    let body = format!("{}\n{name} check {verdict}\n", lines.join("\n"));
    let code = if failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    (code, body).into_response()
}

/// The handler of `/NAME` (`check` is `None`) or `/NAME/CHECK`.
pub async fn handle(
    app: Arc<App>,
    uri: Uri,
    endpoint: Endpoint,
    check: Option<String>,
) -> Response {
    let check = check.as_deref().map(|c| c.trim_end_matches('/'));
    serve(&app, endpoint, check, &uri).await
}
