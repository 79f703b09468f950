//! `/korral/v1/snapshots`: the server's snapshots over HTTP, for `korral
//! snapshot save|ls|delete` (see `crate::snapshots`). Admin only: the
//! caller must be in `system:masters` (RBAC grants on the path are not
//! enough — a snapshot holds every Secret).
//!
//! - `GET /korral/v1/snapshots` → `{"kind": "SnapshotList", "items": [SnapshotInfo]}`
//! - `POST /korral/v1/snapshots` with `{"name": "...", "compress": bool}`
//!   (both optional; compression defaults to `--snapshot-compress`) → 201 `SnapshotInfo`
//! - `GET /korral/v1/snapshots/NAME` → the file (`application/octet-stream`)
//! - `DELETE /korral/v1/snapshots/NAME` → the deleted `SnapshotInfo`
//! - `DELETE /korral/v1/snapshots?retention=N[&prefix=P]` → prune: all but
//!   the newest N scheduled snapshots (or of those named `P…`) are deleted;
//!   `{"pruned": [names]}`

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{App, Caller};
use crate::auth::{Identity, Role};
use crate::errors::{ApiError, ApiResult};
use crate::snapshots::SnapshotError;

/// The collection's path.
pub const PATH: &str = "/korral/v1/snapshots";

/// The routes, merged into the API's router.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(PATH, get(list).post(save).delete(prune))
        .route(&format!("{PATH}/{{name}}"), get(download).delete(delete))
}

/// Only `system:masters` may take, read or delete snapshots.
fn admin_only(caller: Caller, verb: &str, path: &str) -> ApiResult<Identity> {
    let id = caller.0?;
    let is_master =
        matches!(&id.role, Role::Subject(s) if s.groups.iter().any(|g| g == "system:masters"));
    if is_master {
        Ok(id)
    } else {
        Err(ApiError::forbidden_message(format!(
            "forbidden: User {:?} cannot {verb} path {path:?}: snapshots hold every Secret, only system:masters may {verb} them",
            id.name
        )))
    }
}

fn error(e: SnapshotError) -> Response {
    match e {
        SnapshotError::InvalidName { .. } => ApiError::bad_request(e.to_string()),
        SnapshotError::Exists(_) => ApiError::with_reason(409, "AlreadyExists", e.to_string()),
        SnapshotError::NotFound(_) => ApiError::with_reason(404, "NotFound", e.to_string()),
        SnapshotError::Io { .. } | SnapshotError::Store(_) => ApiError::internal(e.to_string()),
    }
    .into_response()
}

fn json_body(code: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

async fn list(State(app): State<Arc<App>>, caller: Caller) -> Response {
    if let Err(e) = admin_only(caller, "list", PATH) {
        return e.into_response();
    }
    match app.snapshots.list().await {
        Ok(items) => json_body(
            StatusCode::OK,
            &json!({"kind": "SnapshotList", "apiVersion": "korral.dev/v1", "items": items}),
        ),
        Err(e) => error(e),
    }
}

async fn save(State(app): State<Arc<App>>, caller: Caller, body: Bytes) -> Response {
    let id = match admin_only(caller, "create", PATH) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let request = if body.is_empty() {
        serde_json::Value::Null
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) => v,
            Err(e) => {
                return ApiError::bad_request(format!("the request body is not JSON: {e}"))
                    .into_response();
            }
        }
    };
    let name = match request.get("name") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return ApiError::bad_request(format!("name: expected a string, got {other}"))
                .into_response();
        }
    };
    let compress = match request.get("compress") {
        None | Some(serde_json::Value::Null) => app.snapshots.compresses(),
        Some(serde_json::Value::Bool(b)) => *b,
        Some(other) => {
            return ApiError::bad_request(format!("compress: expected true or false, got {other}"))
                .into_response();
        }
    };
    tracing::info!(user = %id.name, name = ?name, compress, "snapshot requested");
    match app
        .snapshots
        .save_with(name.as_deref(), false, compress)
        .await
    {
        Ok(info) => json_body(StatusCode::CREATED, &info),
        Err(e) => error(e),
    }
}

async fn prune(State(app): State<Arc<App>>, caller: Caller, uri: Uri) -> Response {
    if let Err(e) = admin_only(caller, "delete", PATH) {
        return e.into_response();
    }
    let (mut retention, mut prefix) = (None, None);
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "retention" => retention = Some(v.into_owned()),
            "prefix" => prefix = Some(v.into_owned()),
            _ => {}
        }
    }
    let Some(retention) = retention
        .and_then(|r| r.parse::<usize>().ok())
        .filter(|r| *r > 0)
    else {
        return ApiError::bad_request(
            "retention: give how many snapshots to keep, a whole number of at least 1",
        )
        .into_response();
    };
    let selection = match prefix.as_deref() {
        Some(p) => crate::snapshots::Selection::Prefix(p),
        None => crate::snapshots::Selection::Scheduled,
    };
    match app.snapshots.prune(retention, selection).await {
        Ok(pruned) => json_body(StatusCode::OK, &json!({"pruned": pruned})),
        Err(e) => error(e),
    }
}

async fn delete(State(app): State<Arc<App>>, caller: Caller, Path(name): Path<String>) -> Response {
    if let Err(e) = admin_only(caller, "delete", &format!("{PATH}/{name}")) {
        return e.into_response();
    }
    match app.snapshots.delete(&name).await {
        Ok(info) => json_body(StatusCode::OK, &info),
        Err(e) => error(e),
    }
}

async fn download(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    if let Err(e) = admin_only(caller, "get", &format!("{PATH}/{name}")) {
        return e.into_response();
    }
    if let Err(e) = crate::snapshots::valid_name(&name) {
        return error(e);
    }
    let path = app.snapshots.dir().join(&name);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return error(SnapshotError::NotFound(name));
        }
        Err(e) => return ApiError::internal(format!("{}: {e}", path.display())).into_response(),
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 16];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let headers = resp.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(len) = len
        && let Ok(v) = axum::http::HeaderValue::from_str(&len.to_string())
    {
        headers.insert(axum::http::header::CONTENT_LENGTH, v);
    }
    resp
}
