//! The HTTP API: routing, authentication, discovery, OpenAPI, health and
//! metrics endpoints, and the resource endpoints in `resources`.

pub mod access;
pub mod eviction;
pub mod exec;
pub mod health;
pub mod managed;
pub mod node_proxy;
pub mod options;
pub mod portforward;
pub mod pretty;
pub mod request;
pub mod resources;
pub mod respond;
pub mod snapshots;
pub mod spdy;
pub mod subresources;
pub mod tokens;
pub mod watch;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::Value;

use crate::auth::{Identity, TokenFile};
use crate::discovery;
use crate::errors::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::registry::Registry;
use request::Format;
use resources::{Req, json_response};

/// Everything a request handler needs.
pub struct App {
    /// Objects over the store.
    pub registry: Registry,
    /// Bearer tokens.
    pub tokens: TokenFile,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// `host:port` clients reach the server at (for `/api`).
    pub server_address: String,
    /// The client certificate and key (PEM) presented to node daemons when proxying logs and exec.
    pub node_client: Option<(String, String)>,
    /// OpenAPI documents, cached per registry generation.
    pub openapi: crate::openapi::OpenApi,
    /// The `WatchList` feature gate (see `ServerConfig::watch_list`).
    pub watch_list: bool,
    /// Requests without credentials are `system:anonymous` (kube-apiserver's
    /// `--anonymous-auth`, on by default); else they get 401.
    pub anonymous_auth: bool,
    /// The RBAC objects requests of RBAC subjects are authorised against.
    pub rbac: Arc<crate::rbac::RbacCache>,
    /// Signs and checks ServiceAccount tokens.
    pub sa_tokens: Arc<crate::serviceaccounts::TokenIssuer>,
    /// The ValidatingAdmissionPolicies and bindings of the moment.
    pub policies: Arc<crate::admission::policies::PolicyCache>,
    /// The admission webhook configurations of the moment.
    pub webhooks: Arc<crate::admission::webhooks::WebhookCache>,
    /// The audit log, when configured.
    pub audit: Option<Arc<crate::audit::Audit>>,
    /// The Metrics API's node scraper and its cache (`metrics_api`).
    pub metrics_api: crate::metrics_api::scrape::Scraper,
    /// The server's snapshots (`/korral/v1/snapshots`).
    pub snapshots: Arc<crate::snapshots::Snapshots>,
}

/// Who is calling, after impersonation: the authenticated caller, or the
/// user, groups, uid and extras it names in `Impersonate-User`,
/// `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-<key>`
/// when it may `impersonate` each (users, groups and serviceaccounts; uids
/// and `userextras/<key>` in authentication.k8s.io), as kube's
/// impersonation filter.
async fn caller(
    app: &App,
    headers: &HeaderMap,
    cert: Option<&crate::tls::ClientCert>,
) -> ApiResult<Identity> {
    let id = authenticate(app, headers, cert).await?;
    let all = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let users = all("impersonate-user");
    let groups = all("impersonate-group");
    let uids = all("impersonate-uid");
    // Impersonate-Extra-<key>: the key percent-encoded, compared lowercase
    let mut extra: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix("impersonate-extra-")
            && let Ok(value) = value.to_str()
        {
            let key = percent_encoding::percent_decode_str(key)
                .decode_utf8_lossy()
                .to_lowercase();
            extra.entry(key).or_default().push(value.to_string());
        }
    }
    let Some(user) = users.first() else {
        if groups.is_empty() && uids.is_empty() && extra.is_empty() {
            return Ok(id);
        }
        return Err(ApiError::internal(
            "requested impersonation of groups, a uid or extras without impersonating a user",
        ));
    };
    let may = |resource: &str,
               subresource: Option<&str>,
               group: &str,
               namespace: Option<&str>,
               name: &str| {
        let attrs = crate::auth::Attributes {
            verb: "impersonate",
            group,
            resource,
            subresource,
            namespace,
            name: Some(name),
        };
        match crate::auth::authorize(&id, &attrs) {
            crate::auth::Decision::Allow => Ok(()),
            _ => Err(ApiError::forbidden(
                &id.name,
                "impersonate",
                &match subresource {
                    Some(sub) => format!("{resource}/{sub}"),
                    None => resource.to_string(),
                },
                group,
                namespace,
                Some(name),
                "",
            )),
        }
    };
    let service_account = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'));
    match service_account {
        Some((ns, name)) => may("serviceaccounts", None, "", Some(ns), name)?,
        None => may("users", None, "", None, user)?,
    }
    for g in &groups {
        may("groups", None, "", None, g)?;
    }
    for uid in &uids {
        may("uids", None, "authentication.k8s.io", None, uid)?;
    }
    for (key, values) in &extra {
        for v in values {
            may("userextras", Some(key), "authentication.k8s.io", None, v)?;
        }
    }
    let mut all_groups = groups.clone();
    if let (Some((ns, _)), true) = (service_account, groups.is_empty()) {
        all_groups.push("system:serviceaccounts".into());
        all_groups.push(format!("system:serviceaccounts:{ns}"));
    }
    if user != "system:anonymous" && !all_groups.iter().any(|g| g == "system:authenticated") {
        all_groups.push("system:authenticated".into());
    }
    let role = match user.strip_prefix("system:node:") {
        Some(node) if all_groups.iter().any(|g| g == "system:nodes") => {
            crate::auth::Role::Node(node.to_string())
        }
        _ => {
            let mut subject = crate::auth::Subject::in_groups(
                all_groups,
                crate::auth::RbacView(app.rbac.snapshot()),
            );
            subject.uid = uids.first().cloned();
            subject.extra = extra;
            crate::auth::Role::Subject(subject)
        }
    };
    Ok(Identity {
        name: user.clone(),
        role,
    })
}

/// Who is calling: the verified client certificate's subject, else the
/// bearer token's identity — a token-file token, a bootstrap token or a
/// ServiceAccount token (401 with none).
async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    cert: Option<&crate::tls::ClientCert>,
) -> ApiResult<Identity> {
    let rbac = app.rbac.snapshot();
    // the handshake verified the chain; the time is checked per request
    // (a long-lived connection outlives a rotated certificate)
    if cert.is_some_and(crate::tls::ClientCert::expired) {
        return Err(ApiError::unauthorized());
    }
    if let Some(id) = cert.and_then(|c| crate::auth::identity_from_cert(c, rbac.clone())) {
        return Ok(crate::auth::for_requests(id, rbac));
    }
    let Some(token) = request::bearer(headers) else {
        return if app.anonymous_auth {
            Ok(anonymous(rbac))
        } else {
            Err(ApiError::unauthorized())
        };
    };
    if let Some(id) = app.tokens.authenticate(token) {
        return Ok(crate::auth::for_requests(id, rbac));
    }
    if crate::bootstrap_tokens::parse(token).is_some() {
        let (name, groups) = crate::bootstrap_tokens::authenticate(&app.registry, token).await?;
        return Ok(Identity {
            name,
            role: crate::auth::Role::Subject(crate::auth::Subject::in_groups(
                groups,
                crate::auth::RbacView(rbac),
            )),
        });
    }
    if crate::serviceaccounts::looks_like_jwt(token) {
        let (id, _) = tokens::authenticate(app, token, &[crate::serviceaccounts::ISSUER]).await?;
        return Ok(id);
    }
    Err(ApiError::unauthorized())
}

/// The identity of a request without credentials: what RBAC's
/// `system:unauthenticated` bindings allow (`system:public-info-viewer`).
fn anonymous(rbac: Arc<crate::rbac::Snapshot>) -> Identity {
    Identity {
        name: ANONYMOUS.to_string(),
        role: crate::auth::Role::Subject(crate::auth::Subject::in_groups(
            vec!["system:unauthenticated".to_string()],
            crate::auth::RbacView(rbac),
        )),
    }
}

/// The user of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";

/// Whether a path is a non-resource URL (discovery roots and group
/// versions, OpenAPI, metrics) rather than a resource request.
fn non_resource_path(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.first().copied() {
        Some("api") => parts.len() <= 2,
        Some("apis") => parts.len() <= 3,
        _ => true,
    }
}

/// Authorises a non-resource request by RBAC's `nonResourceURLs` (kube's
/// `cannot get path` 403); nodes may read every such path.
fn authorize_path(id: &Identity, verb: &str, path: &str) -> ApiResult<()> {
    let crate::auth::Role::Subject(subject) = &id.role else {
        return Ok(());
    };
    let request = crate::rbac::Request {
        verb,
        path: Some(path),
        ..Default::default()
    };
    match subject.rbac.0.authorize(&subject.user(&id.name), &request) {
        crate::rbac::Verdict::Allow(_) => Ok(()),
        crate::rbac::Verdict::Deny => Err(ApiError::forbidden_message(format!(
            "forbidden: User {:?} cannot {verb} path {path:?}",
            id.name
        ))),
    }
}

/// The request's caller, authenticated (or the 401 to answer) and, for a
/// non-resource URL, authorised for it.
pub struct Caller(pub ApiResult<Identity>);

impl axum::extract::FromRequestParts<Arc<App>> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let cert = parts.extensions.get::<Arc<crate::tls::ClientCert>>();
        let id = caller(app, &parts.headers, cert.map(|c| &**c)).await;
        let path = parts.uri.path();
        let id = match id {
            Ok(id) if non_resource_path(path) => {
                let verb = parts.method.as_str().to_ascii_lowercase();
                authorize_path(&id, &verb, path).map(|()| id)
            }
            other => other,
        };
        Ok(Caller(id))
    }
}

/// The router of the whole API.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", health_route(health::Endpoint::Healthz, false))
        .route(
            "/healthz/{*check}",
            health_route(health::Endpoint::Healthz, true),
        )
        .route("/livez", health_route(health::Endpoint::Livez, false))
        .route(
            "/livez/{*check}",
            health_route(health::Endpoint::Livez, true),
        )
        .route("/readyz", health_route(health::Endpoint::Readyz, false))
        .route(
            "/readyz/{*check}",
            health_route(health::Endpoint::Readyz, true),
        )
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/api/", get(api_root))
        .route("/apis/", get(apis_root))
        .route("/metrics", get(metrics))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*path}", get(openapi_doc))
        .route("/api", get(api_root))
        .route("/apis", get(apis_root))
        .route("/api/{*rest}", any(core_api))
        .route("/apis/{*rest}", any(grouped_api))
        .merge(snapshots::routes())
        .fallback(not_found)
        .layer(axum::middleware::map_response(kube_headers))
        .layer(axum::middleware::from_fn(pretty::layer))
        .layer(
            tower_http::compression::CompressionLayer::new()
                .gzip(true)
                .compress_when(LargeBodies),
        )
        .with_state(app)
}

/// kube-apiserver gzips a response (when the client accepts gzip) only if
/// its body is complete and larger than 128 KiB: never a watch stream.
#[derive(Clone, Copy)]
struct LargeBodies;

impl tower_http::compression::Predicate for LargeBodies {
    fn should_compress<B>(&self, response: &axum::http::Response<B>) -> bool
    where
        B: axum::body::HttpBody,
    {
        response
            .body()
            .size_hint()
            .exact()
            .is_some_and(|n| n > 128 * 1024)
    }
}

/// A GET route to a health endpoint, whole or (`one_check`) one check.
fn health_route(
    endpoint: health::Endpoint,
    one_check: bool,
) -> axum::routing::MethodRouter<Arc<App>> {
    get(
        move |State(app): State<Arc<App>>,
              uri: Uri,
              params: Option<Path<std::collections::HashMap<String, String>>>| async move {
            let check = one_check.then(|| {
                params
                    .and_then(|p| p.0.get("check").cloned())
                    .unwrap_or_default()
            });
            health::handle(app, uri, endpoint, check).await
        },
    )
}

/// The headers kube-apiserver puts on every response, errors included: an
/// `Audit-Id` and `Cache-Control: no-cache, private`.
async fn kube_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    // an audited request carries its event's id already
    if !h.contains_key("audit-id")
        && let Ok(id) = axum::http::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
    {
        h.insert("audit-id", id);
    }
    h.entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-cache, private"));
    resp
}

/// `/version`, always indented (kube-apiserver writes it with
/// `json.MarshalIndent`, without a trailing newline).
async fn version() -> Response {
    let body = pretty::indent(&crate::status::encode(&discovery::version()));
    respond::bytes_response(StatusCode::OK, "application/json", body)
}

fn accept(headers: &HeaderMap) -> &str {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A cacheable document: `ETag`, and 304 when the client already has it.
fn cached(headers: &HeaderMap, content_type: &'static str, body: Vec<u8>) -> Response {
    let etag = discovery::etag(&body);
    let matches = headers
        .get(axum::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    let mut resp = if matches {
        respond::bytes_response(StatusCode::NOT_MODIFIED, content_type, Vec::new())
    } else {
        respond::bytes_response(StatusCode::OK, content_type, body)
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(axum::http::header::ETAG, v);
    }
    resp
}

async fn metrics(State(app): State<Arc<App>>, caller: Caller) -> Response {
    match caller.0 {
        Ok(_) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            app.metrics.render(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn not_found(uri: Uri) -> Response {
    ApiError::no_route(uri.path()).into_response()
}

fn discovery_response(app: &App, headers: &HeaderMap, core: bool, legacy: Value) -> Response {
    if discovery::wants_aggregated(accept(headers)) {
        let kinds = app.registry.kinds().snapshot();
        let body = crate::status::encode(&discovery::aggregated(&kinds, core));
        return cached(headers, discovery::AGGREGATED_V2, body);
    }
    cached(headers, "application/json", crate::status::encode(&legacy))
}

async fn api_root(State(app): State<Arc<App>>, caller: Caller, headers: HeaderMap) -> Response {
    if let Err(e) = caller.0 {
        return e.into_response();
    }
    discovery_response(
        &app,
        &headers,
        true,
        discovery::core_versions(&app.server_address),
    )
}

async fn apis_root(State(app): State<Arc<App>>, caller: Caller, headers: HeaderMap) -> Response {
    if let Err(e) = caller.0 {
        return e.into_response();
    }
    let kinds = app.registry.kinds().snapshot();
    discovery_response(&app, &headers, false, discovery::group_list(&kinds))
}

async fn openapi_v2(State(app): State<Arc<App>>, caller: Caller, headers: HeaderMap) -> Response {
    if let Err(e) = caller.0 {
        return e.into_response();
    }
    if accept(&headers).contains("protobuf") {
        respond::bytes_response(
            StatusCode::OK,
            crate::openapi::V2_PROTOBUF,
            crate::openapi::v2_protobuf(),
        )
    } else {
        let kinds = app.registry.kinds().snapshot();
        let doc = app.openapi.v2(&kinds);
        cached(&headers, "application/json", doc.body.to_vec())
    }
}

async fn openapi_root(State(app): State<Arc<App>>, caller: Caller, headers: HeaderMap) -> Response {
    if let Err(e) = caller.0 {
        return e.into_response();
    }
    let kinds = app.registry.kinds().snapshot();
    cached(
        &headers,
        "application/json",
        crate::status::encode(&app.openapi.root(&kinds)),
    )
}

async fn openapi_doc(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(path): Path<String>,
) -> Response {
    if let Err(e) = caller.0 {
        return e.into_response();
    }
    let kinds = app.registry.kinds().snapshot();
    let Some(doc) = app.openapi.group_version(&kinds, &path) else {
        return ApiError::no_route(&format!("/openapi/v3/{path}")).into_response();
    };
    let query = request::Query::parse(uri.query());
    match query.get("hash") {
        // a stale hash is redirected to the current document, as kube-apiserver does
        Some(h) if h != doc.hash => {
            let mut resp = respond::bytes_response(
                StatusCode::MOVED_PERMANENTLY,
                "application/json",
                Vec::new(),
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
                "/openapi/v3/{}?hash={}",
                path.trim_matches('/'),
                doc.hash
            )) {
                resp.headers_mut().insert(axum::http::header::LOCATION, v);
            }
            resp
        }
        Some(_) => {
            let mut resp = cached(&headers, "application/json", doc.body.to_vec());
            resp.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("public, immutable"),
            );
            let expires = (chrono::Utc::now() + chrono::Duration::days(365))
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string();
            if let Ok(v) = axum::http::HeaderValue::from_str(&expires) {
                resp.headers_mut().insert(axum::http::header::EXPIRES, v);
            }
            resp
        }
        None => cached(&headers, "application/json", doc.body.to_vec()),
    }
}

async fn core_api(
    State(app): State<Arc<App>>,
    caller: Caller,
    parts: axum::http::request::Parts,
    Path(rest): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    body: Body,
) -> Response {
    let call = Call {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        rest,
        grouped: false,
        upgrade: upgrade.ok(),
        raw_upgrade: parts.extensions.get::<hyper::upgrade::OnUpgrade>().cloned(),
        caller: caller.0,
    };
    api(app, call, body).await
}

async fn grouped_api(
    State(app): State<Arc<App>>,
    caller: Caller,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(rest): Path<String>,
    body: Body,
) -> Response {
    let call = Call {
        method,
        uri,
        headers,
        rest,
        grouped: true,
        upgrade: None,
        raw_upgrade: None,
        caller: caller.0,
    };
    api(app, call, body).await
}

/// What an API request asked for, before it is parsed.
struct Call {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    rest: String,
    grouped: bool,
    /// A WebSocket upgrade (`pods/exec`), when the request asked for one.
    upgrade: Option<WebSocketUpgrade>,
    /// The connection's upgrade to another protocol (`pods/portforward`'s SPDY).
    raw_upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// Who is asking.
    caller: ApiResult<Identity>,
}

/// The verb Kubernetes' metrics and audit use for a request.
fn verb_of(method: &Method, named: bool, watch: bool) -> &'static str {
    match (method, named) {
        (&Method::GET, _) if watch => "WATCH",
        (&Method::GET, true) => "GET",
        (&Method::GET, false) => "LIST",
        (&Method::POST, _) => "POST",
        (&Method::PUT, _) => "PUT",
        (&Method::PATCH, _) => "PATCH",
        (&Method::DELETE, true) => "DELETE",
        (&Method::DELETE, false) => "DELETECOLLECTION",
        _ => "OTHER",
    }
}

async fn api(app: Arc<App>, call: Call, body: Body) -> Response {
    let Call {
        method,
        uri,
        headers,
        rest,
        grouped,
        upgrade,
        raw_upgrade,
        caller,
    } = call;
    let started = Instant::now();
    let query = request::Query::parse(uri.query());
    let id = match caller {
        Ok(id) => id,
        Err(e) => {
            // read the body before answering: an HTTP/2 stream answered
            // while its body is still arriving is reset, and clients (curl)
            // then report a framing error instead of the 401/403
            let _ = request::read_body(body).await;
            return e.into_response();
        }
    };
    // go-restful trims the slashes at both ends of a path but matches an
    // empty segment inside it (`/api/v1//pods`) against nothing
    if rest.trim_matches('/').contains("//") {
        return ApiError::no_route(uri.path()).into_response();
    }
    let kinds = app.registry.kinds().snapshot();
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    // discovery documents of one group or group/version
    if method == Method::GET {
        let doc = match (grouped, segs.as_slice()) {
            (false, [v]) => discovery::resource_list(&kinds, "", v),
            (true, [g]) => discovery::group(&kinds, g),
            (true, [g, v]) => discovery::resource_list(&kinds, g, v),
            _ => None,
        };
        if let Some(doc) = doc {
            return cached(&headers, "application/json", crate::status::encode(&doc));
        }
    }
    if grouped && method == Method::POST {
        match segs.as_slice() {
            ["authorization.k8s.io", "v1", "selfsubjectaccessreviews"] => {
                return review(&id, &headers, body, true).await;
            }
            ["authorization.k8s.io", "v1", "selfsubjectrulesreviews"] => {
                return review(&id, &headers, body, false).await;
            }
            ["authorization.k8s.io", "v1", "subjectaccessreviews"] => {
                return subject_review(&app, &id, &headers, body, None).await;
            }
            [
                "authorization.k8s.io",
                "v1",
                "namespaces",
                ns,
                "localsubjectaccessreviews",
            ] => {
                return subject_review(&app, &id, &headers, body, Some(ns)).await;
            }
            ["authentication.k8s.io", "v1", "selfsubjectreviews"] => {
                return whoami(&id, &headers, body).await;
            }
            ["authentication.k8s.io", "v1", "tokenreviews"] => {
                let result = async {
                    let bytes = request::read_body(body).await?;
                    let v = request::decode_object(&bytes, &request::content_type(&headers))?;
                    tokens::token_review(&app, &id, &v).await
                }
                .await;
                return match result {
                    Ok(v) => json_response(StatusCode::CREATED, &v),
                    Err(e) => e.into_response(),
                };
            }
            _ => {}
        }
    }
    // the Metrics API, built in (metrics-server's group)
    if grouped && segs.first() == Some(&schemas::resource_metrics::GROUP) && segs.len() > 2 {
        let response =
            crate::metrics_api::serve(&app, &id, &method, &segs, &query, &headers, uri.path())
                .await;
        let verb = verb_of(&method, segs.len().is_multiple_of(2), query.flag("watch"));
        let resource = if segs.contains(&"pods") {
            "pods"
        } else {
            "nodes"
        };
        app.metrics
            .observe(verb, resource, response.status().as_u16(), started);
        return response;
    }
    let target = match crate::target::parse(&kinds, &rest, grouped) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let watching = query.flag("watch");
    let verb = verb_of(&method, target.name.is_some(), watching);
    let resource = match &target.subresource {
        Some(s) => format!("{}/{s}", target.info.plural),
        None => target.info.plural.to_string(),
    };
    // a watch streams single objects: its metadata form is PartialObjectMetadata
    let collection = target.name.is_none() && !watching;
    let protobuf =
        crate::protobuf::responses::supports(&target.info.api_version, &target.info.kind);
    let format = match request::format(&headers, collection, protobuf) {
        Ok(Format::Table(v)) => match options::check_table(&query) {
            Ok(()) => Format::Table(v),
            Err(e) => return e.into_response(),
        },
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    // the audit event, when the policy asks for one (written after the answer)
    let audit_verb = match (&method, target.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if watching => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    };
    // only an audited request needs the caller's groups
    let groups = if app.audit.is_some() {
        access::groups_of(&id)
    } else {
        Vec::new()
    };
    // what the audit event says of the object (owned: the request moves on)
    let object: AuditObject = (
        target.info.group.clone(),
        target.info.plural.clone(),
        target.subresource.clone(),
        target.namespace.clone(),
        target.name.clone(),
        target.info.version.clone(),
    );
    let audit = app.audit.as_ref().and_then(|a| {
        let level = a.level(&audit_request(&id.name, &groups, audit_verb, &object));
        (level != crate::audit::Level::None).then(|| (a.clone(), level, id.name.clone()))
    });
    let received = chrono::Utc::now();
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (body, request_object) = match &audit {
        Some((_, level, _)) if *level >= crate::audit::Level::Request => {
            match request::read_body(body).await {
                Ok(bytes) => {
                    // JSON, YAML or protobuf, logged as the object's JSON
                    let parsed = (!bytes.is_empty())
                        .then(|| {
                            request::decode_object(&bytes, &request::content_type(&headers)).ok()
                        })
                        .flatten();
                    (Body::from(bytes), parsed)
                }
                Err(e) => return e.into_response(),
            }
        }
        _ => (body, None),
    };
    let req = Req {
        app: app.clone(),
        id,
        target,
        query,
        headers,
        format,
        upgrade: std::sync::Mutex::new(upgrade),
        raw_upgrade: std::sync::Mutex::new(raw_upgrade),
        warnings: Default::default(),
    };
    let mut response = match resources::serve(req, method, body).await {
        Ok(r) => r,
        Err(e) => {
            if e.code >= 500 {
                tracing::error!(code = e.code, message = %e.message, "request failed");
            }
            e.into_response()
        }
    };
    app.metrics
        .observe(verb, &resource, response.status().as_u16(), started);
    if let Some((log, level, user)) = audit {
        let audit_id = uuid::Uuid::new_v4().to_string();
        if let Ok(v) = axum::http::HeaderValue::from_str(&audit_id) {
            response.headers_mut().insert("audit-id", v);
        }
        let r = audit_request(&user, &groups, audit_verb, &object);
        let uri_text = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.to_string());
        log.record(&crate::audit::event(
            level,
            &audit_id,
            &uri_text,
            &r,
            &object.5,
            &user_agent,
            response.status().as_u16(),
            request_object,
            received,
        ));
    }
    response
}

/// The audit policy's view of a resource request: who, the verb, and the
/// object (group, resource, subresource, namespace, name, version).
type AuditObject = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

fn audit_request<'a>(
    user: &'a str,
    groups: &'a [String],
    verb: &'a str,
    object: &'a AuditObject,
) -> crate::audit::Request<'a> {
    let (group, plural, sub, ns, name, _) = object;
    crate::audit::Request {
        user,
        groups,
        req: crate::rbac::Request {
            verb,
            group,
            resource: plural,
            subresource: sub.as_deref(),
            name: name.as_deref(),
            namespace: ns.as_deref(),
            path: None,
        },
    }
}

async fn review(id: &Identity, headers: &HeaderMap, body: Body, access_review: bool) -> Response {
    let result = async {
        let bytes = request::read_body(body).await?;
        let v = request::decode_object(&bytes, &request::content_type(headers))?;
        if access_review {
            access::access_review(id, &v)
        } else {
            Ok(access::rules_review(id, &v))
        }
    }
    .await;
    match result {
        Ok(v) => json_response(StatusCode::CREATED, &v),
        Err(e) => e.into_response(),
    }
}

/// A SubjectAccessReview, or a LocalSubjectAccessReview in `namespace`.
async fn subject_review(
    app: &App,
    id: &Identity,
    headers: &HeaderMap,
    body: Body,
    namespace: Option<&str>,
) -> Response {
    let result = async {
        let bytes = request::read_body(body).await?;
        let v = request::decode_object(&bytes, &request::content_type(headers))?;
        access::subject_access_review(id, &app.rbac.snapshot(), &v, namespace)
    }
    .await;
    match result {
        Ok(v) => json_response(StatusCode::CREATED, &v),
        Err(e) => e.into_response(),
    }
}

async fn whoami(id: &Identity, headers: &HeaderMap, body: Body) -> Response {
    let result = async {
        let bytes = request::read_body(body).await?;
        let mut v = request::decode_object(&bytes, &request::content_type(headers))?;
        v["apiVersion"] = serde_json::json!("authentication.k8s.io/v1");
        v["kind"] = serde_json::json!("SelfSubjectReview");
        v["status"] = serde_json::json!({"userInfo": access::user_info(id)});
        Ok::<_, ApiError>(v)
    }
    .await;
    match result {
        Ok(v) => json_response(StatusCode::CREATED, &v),
        Err(e) => e.into_response(),
    }
}
