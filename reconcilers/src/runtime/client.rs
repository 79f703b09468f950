//! A typed client of the korral (Kubernetes) API over HTTPS: get, list,
//! create, replace, patch, delete, subresources, and watch as a stream of
//! events. Everything else in the runtime builds on it.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use schemas::Object;

use crate::runtime::kubeconfig::{KubeConfig, resolve_path};

/// Why a request failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error `Status`.
    #[error("{code} {reason}: {message}", code = .0.code.unwrap_or(0), reason = .0.reason.as_deref().unwrap_or(""), message = .0.message.as_deref().unwrap_or(""))]
    Api(Box<Status>),
    /// The server could not be reached or the connection broke.
    #[error("transport: {0}")]
    Transport(String),
    /// The answer could not be decoded.
    #[error("decode: {0}")]
    Decode(String),
    /// The client is misconfigured.
    #[error("config: {0}")]
    Config(String),
}

impl ClientError {
    /// The HTTP status code of an API error (0 otherwise).
    pub fn code(&self) -> u16 {
        match self {
            ClientError::Api(s) => u16::try_from(s.code.unwrap_or(0)).unwrap_or(0),
            _ => 0,
        }
    }

    /// 404.
    pub fn is_not_found(&self) -> bool {
        self.code() == 404
    }

    /// 409 Conflict (a stale resourceVersion).
    pub fn is_conflict(&self) -> bool {
        matches!(self, ClientError::Api(s) if s.code == Some(409) && s.reason.as_deref() == Some("Conflict"))
    }

    /// 409 AlreadyExists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, ClientError::Api(s) if s.reason.as_deref() == Some("AlreadyExists"))
    }

    /// 410 Gone (a compacted resourceVersion).
    pub fn is_gone(&self) -> bool {
        self.code() == 410
    }
}

/// A `Result` with a [`ClientError`].
pub type Result<T> = std::result::Result<T, ClientError>;

/// A connection to the API server.
#[derive(Clone)]
pub struct Client {
    /// Shared by every clone, so that a new client certificate
    /// ([`Client::set_identity`]) reaches every user of the connection.
    http: Arc<std::sync::RwLock<reqwest::Client>>,
    /// What the HTTP client was built from (to build it again with a new identity).
    config: Arc<(KubeConfig, String)>,
    base: Arc<str>,
    token: Option<Arc<str>>,
    namespace: Arc<str>,
    ca_pem: Option<Arc<str>>,
    /// `Impersonate-User` and `Impersonate-Group`s sent with every request.
    impersonate: Option<Arc<(String, Vec<String>)>>,
}

/// How a patch body is interpreted.
#[derive(Clone, Debug)]
pub enum Patch {
    /// RFC 7386 JSON merge patch.
    Merge(Value),
    /// RFC 6902 JSON patch (an array of operations).
    Json(Value),
    /// Kubernetes' strategic merge patch.
    Strategic(Value),
    /// Server-side apply of a full configuration.
    Apply(Value),
}

impl Patch {
    fn content_type(&self) -> &'static str {
        match self {
            Patch::Merge(_) => "application/merge-patch+json",
            Patch::Json(_) => "application/json-patch+json",
            Patch::Strategic(_) => "application/strategic-merge-patch+json",
            Patch::Apply(_) => "application/apply-patch+yaml",
        }
    }

    fn body(&self) -> &Value {
        match self {
            Patch::Merge(v) | Patch::Json(v) | Patch::Strategic(v) | Patch::Apply(v) => v,
        }
    }
}

/// Parameters of a write.
#[derive(Clone, Debug, Default)]
pub struct WriteParams {
    /// The field manager (default: the client's user agent).
    pub field_manager: Option<String>,
    /// Server-side apply: take ownership of conflicting fields.
    pub force: bool,
    /// Store nothing.
    pub dry_run: bool,
}

/// Parameters of a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteParams {
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation_policy: Option<String>,
    /// Grace period.
    pub grace_period_seconds: Option<i64>,
    /// Only delete this uid.
    pub precondition_uid: Option<String>,
    /// Only delete at this resourceVersion.
    pub precondition_resource_version: Option<String>,
}

impl DeleteParams {
    /// The `DeleteOptions` body.
    fn body(&self) -> Value {
        let mut body = serde_json::json!({"kind": "DeleteOptions", "apiVersion": "v1"});
        if let Some(pp) = &self.propagation_policy {
            body["propagationPolicy"] = serde_json::json!(pp);
        }
        if let Some(g) = self.grace_period_seconds {
            body["gracePeriodSeconds"] = serde_json::json!(g);
        }
        if self.precondition_uid.is_some() || self.precondition_resource_version.is_some() {
            body["preconditions"] = serde_json::json!({"uid": self.precondition_uid, "resourceVersion": self.precondition_resource_version});
        }
        body
    }
}

/// Parameters of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
    /// Continue token.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// Watch timeout in seconds.
    pub timeout_seconds: Option<u32>,
}

/// A page of a list.
#[derive(Clone, Debug)]
pub struct ObjectList<K> {
    /// The objects.
    pub items: Vec<K>,
    /// The revision the list was read at.
    pub resource_version: String,
    /// Token for the next page.
    pub continue_token: Option<String>,
}

/// One watch event.
#[derive(Clone, Debug)]
pub enum WatchEvent<K> {
    /// Created (or newly matching).
    Added(K),
    /// Changed.
    Modified(K),
    /// Deleted (or no longer matching).
    Deleted(K),
    /// Everything up to this resourceVersion has been delivered.
    Bookmark(String),
    /// The watch failed (e.g. 410 Gone); it ends after this.
    Error(Box<Status>),
}

fn transport(e: reqwest::Error) -> ClientError {
    ClientError::Transport(e.to_string())
}

impl Client {
    /// A client for a kubeconfig.
    pub fn new(kc: &KubeConfig, user_agent: &str) -> Result<Client> {
        let http = Self::build_http(kc, user_agent, kc.identity_pem.as_deref())?;
        Ok(Client {
            http: Arc::new(std::sync::RwLock::new(http)),
            config: Arc::new((kc.clone(), user_agent.to_string())),
            base: kc.server.clone().into(),
            token: kc.token.clone().map(Into::into),
            namespace: kc.namespace.clone().into(),
            ca_pem: kc.ca_pem.clone().map(Into::into),
            impersonate: None,
        })
    }

    /// Presents a new client certificate (`identity_pem`: certificate and
    /// key, PEM) on every new connection of this client and its clones, as
    /// client-go's certificate manager does after a rotation. Requests in
    /// flight finish on their old connection.
    pub fn set_identity(&self, identity_pem: &str) -> Result<()> {
        let (kc, user_agent) = &*self.config;
        let http = Self::build_http(kc, user_agent, Some(identity_pem))?;
        *self
            .http
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = http;
        Ok(())
    }

    fn build_http(
        kc: &KubeConfig,
        user_agent: &str,
        identity_pem: Option<&str>,
    ) -> Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90));
        if let Some(ca) = &kc.ca_pem {
            let cert = reqwest::Certificate::from_pem(ca.as_bytes())
                .map_err(|e| ClientError::Config(format!("the CA certificate: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        if kc.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some(pem) = identity_pem {
            let id = reqwest::Identity::from_pem(pem.as_bytes())
                .map_err(|e| ClientError::Config(format!("the client certificate: {e}")))?;
            b = b.identity(id);
        }
        b.build().map_err(|e| ClientError::Config(e.to_string()))
    }

    /// The same connection acting as `user` in `groups` (kube's
    /// `Impersonate-User`/`Impersonate-Group` headers; the server checks
    /// that this client may `impersonate` them).
    pub fn impersonating(&self, user: &str, groups: &[String]) -> Client {
        Client {
            impersonate: Some(Arc::new((user.to_string(), groups.to_vec()))),
            ..self.clone()
        }
    }

    /// The user this client impersonates, if any.
    pub fn impersonated_user(&self) -> Option<&str> {
        self.impersonate.as_deref().map(|(u, _)| u.as_str())
    }

    /// A client for the kubeconfig at `path` (or the default locations).
    pub fn from_kubeconfig(path: Option<&Path>, user_agent: &str) -> Result<Client> {
        let p = resolve_path(path);
        let kc = KubeConfig::load(&p).map_err(|e| ClientError::Config(e.to_string()))?;
        Self::new(&kc, user_agent)
    }

    /// The kubeconfig's default namespace.
    pub fn default_namespace(&self) -> &str {
        &self.namespace
    }

    /// The CA (PEM) the client trusts the server by, if the kubeconfig names one.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A typed API for kind `K` in `namespace` (`None`: all namespaces, or cluster-scoped).
    pub fn api<K: Object>(&self, namespace: Option<&str>) -> Api<K> {
        Api {
            client: self.clone(),
            namespace: namespace.filter(|_| K::NAMESPACED).map(str::to_string),
            _kind: PhantomData,
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let http = self
            .http
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut r = http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        if let Some((user, groups)) = self.impersonate.as_deref() {
            r = r.header("Impersonate-User", user);
            for g in groups {
                r = r.header("Impersonate-Group", g);
            }
        }
        r.header(reqwest::header::ACCEPT, "application/json")
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<Value> {
        let resp = r.send().await.map_err(transport)?;
        let code = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if code.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()));
        }
        let status: Status = serde_json::from_slice(&bytes).unwrap_or_else(|_| Status {
            code: Some(i32::from(code.as_u16())),
            message: Some(String::from_utf8_lossy(&bytes).into_owned()),
            reason: Some(code.canonical_reason().unwrap_or("").replace(' ', "")),
            ..Default::default()
        });
        Err(ClientError::Api(Box::new(status)))
    }

    /// A raw GET (e.g. `/version`, `/readyz`).
    pub async fn get_raw(&self, path: &str) -> Result<Value> {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    /// A raw POST of a JSON body (e.g. a SubjectAccessReview).
    pub async fn post_raw(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.req(reqwest::Method::POST, path).json(body))
            .await
    }
}

/// The API of one kind, optionally in one namespace.
pub struct Api<K> {
    client: Client,
    namespace: Option<String>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api {
            client: self.client.clone(),
            namespace: self.namespace.clone(),
            _kind: PhantomData,
        }
    }
}

fn decode<K: DeserializeOwned>(v: Value) -> Result<K> {
    serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string()))
}

fn write_query(p: &WriteParams) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(m) = &p.field_manager {
        q.push(("fieldManager", m.clone()));
    }
    if p.force {
        q.push(("force", "true".into()));
    }
    if p.dry_run {
        q.push(("dryRun", "All".into()));
    }
    q
}

impl<K: Object> Api<K> {
    fn base(&self) -> String {
        if K::GROUP.is_empty() {
            format!("/api/{}", K::VERSION)
        } else {
            format!("/apis/{}/{}", K::GROUP, K::VERSION)
        }
    }

    fn collection(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/namespaces/{ns}/{}", self.base(), K::URL_PATH_SEGMENT),
            None => format!("{}/{}", self.base(), K::URL_PATH_SEGMENT),
        }
    }

    fn item(&self, name: &str) -> Result<String> {
        if K::NAMESPACED && self.namespace.is_none() {
            return Err(ClientError::Config(format!(
                "{} {name:?}: a namespace is needed",
                K::KIND
            )));
        }
        Ok(format!("{}/{name}", self.collection()))
    }

    /// The namespace this API is bound to.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The same kind in another namespace.
    pub fn in_namespace(&self, namespace: &str) -> Api<K> {
        self.client.api(Some(namespace))
    }

    /// Reads an object.
    pub async fn get(&self, name: &str) -> Result<K> {
        decode(
            self.client
                .send(self.client.req(reqwest::Method::GET, &self.item(name)?))
                .await?,
        )
    }

    /// Reads an object, `None` when it does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(k) => Ok(Some(k)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list_query(p: &ListParams) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(s) = &p.label_selector {
            q.push(("labelSelector", s.clone()));
        }
        if let Some(s) = &p.field_selector {
            q.push(("fieldSelector", s.clone()));
        }
        if let Some(l) = p.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(c) = &p.continue_token {
            q.push(("continue", c.clone()));
        }
        if let Some(rv) = &p.resource_version {
            q.push(("resourceVersion", rv.clone()));
        }
        q
    }

    /// Lists one page.
    pub async fn list(&self, p: &ListParams) -> Result<ObjectList<K>> {
        let v = self
            .client
            .send(
                self.client
                    .req(reqwest::Method::GET, &self.collection())
                    .query(&Self::list_query(p)),
            )
            .await?;
        let rv = v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let cont = v["metadata"]["continue"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let items = match v.get("items") {
            Some(Value::Array(a)) => a.iter().cloned().map(decode).collect::<Result<Vec<K>>>()?,
            _ => Vec::new(),
        };
        Ok(ObjectList {
            items,
            resource_version: rv,
            continue_token: cont,
        })
    }

    /// Lists everything, following continue tokens; returns the items and the resourceVersion.
    pub async fn list_all(&self, p: &ListParams) -> Result<ObjectList<K>> {
        let mut params = p.clone();
        params.limit = Some(p.limit.unwrap_or(500));
        let mut all = Vec::new();
        loop {
            let page = self.list(&params).await?;
            all.extend(page.items);
            match page.continue_token {
                Some(c) => params.continue_token = Some(c),
                None => {
                    return Ok(ObjectList {
                        items: all,
                        resource_version: page.resource_version,
                        continue_token: None,
                    });
                }
            }
        }
    }

    /// Creates an object.
    pub async fn create(&self, obj: &K, p: &WriteParams) -> Result<K> {
        let r = self
            .client
            .req(reqwest::Method::POST, &self.collection())
            .query(&write_query(p))
            .json(obj);
        decode(self.client.send(r).await?)
    }

    /// Replaces an object (optimistic concurrency on its resourceVersion).
    pub async fn replace(&self, name: &str, obj: &K, p: &WriteParams) -> Result<K> {
        let r = self
            .client
            .req(reqwest::Method::PUT, &self.item(name)?)
            .query(&write_query(p))
            .json(obj);
        decode(self.client.send(r).await?)
    }

    /// Replaces an object's status.
    pub async fn replace_status(&self, name: &str, obj: &K, p: &WriteParams) -> Result<K> {
        let r = self
            .client
            .req(
                reqwest::Method::PUT,
                &format!("{}/status", self.item(name)?),
            )
            .query(&write_query(p))
            .json(obj);
        decode(self.client.send(r).await?)
    }

    async fn patch_at(&self, path: String, patch: &Patch, p: &WriteParams) -> Result<Value> {
        let body =
            serde_json::to_vec(patch.body()).map_err(|e| ClientError::Decode(e.to_string()))?;
        let r = self
            .client
            .req(reqwest::Method::PATCH, &path)
            .query(&write_query(p))
            .header(reqwest::header::CONTENT_TYPE, patch.content_type())
            .body(body);
        self.client.send(r).await
    }

    /// Patches an object.
    pub async fn patch(&self, name: &str, patch: &Patch, p: &WriteParams) -> Result<K> {
        decode(self.patch_at(self.item(name)?, patch, p).await?)
    }

    /// Patches an object's status.
    pub async fn patch_status(&self, name: &str, patch: &Patch, p: &WriteParams) -> Result<K> {
        decode(
            self.patch_at(format!("{}/status", self.item(name)?), patch, p)
                .await?,
        )
    }

    /// Patches a subresource (e.g. `scale`) and returns its raw answer.
    pub async fn patch_subresource(
        &self,
        name: &str,
        sub: &str,
        patch: &Patch,
        p: &WriteParams,
    ) -> Result<Value> {
        self.patch_at(format!("{}/{sub}", self.item(name)?), patch, p)
            .await
    }

    /// POSTs to a subresource (`binding`, `eviction`, `sync`).
    pub async fn create_subresource(&self, name: &str, sub: &str, body: &Value) -> Result<Value> {
        let r = self
            .client
            .req(
                reqwest::Method::POST,
                &format!("{}/{sub}", self.item(name)?),
            )
            .json(body);
        self.client.send(r).await
    }

    /// Deletes an object; `Ok(())` also when deletion is pending (finalizers, grace).
    pub async fn delete(&self, name: &str, p: &DeleteParams) -> Result<()> {
        let body = p.body();
        let r = self
            .client
            .req(reqwest::Method::DELETE, &self.item(name)?)
            .json(&body);
        self.client.send(r).await.map(|_| ())
    }

    /// Opens a watch from `resource_version`; the stream ends when the server
    /// closes it, after an `Error` event, or after `idle` without any bytes.
    pub async fn watch(
        &self,
        p: &ListParams,
        resource_version: &str,
        idle: Duration,
    ) -> Result<impl Stream<Item = Result<WatchEvent<K>>> + Send + use<K>> {
        let mut q = Self::list_query(&ListParams {
            limit: None,
            continue_token: None,
            resource_version: None,
            ..p.clone()
        });
        q.push(("watch", "1".into()));
        q.push(("allowWatchBookmarks", "true".into()));
        q.push(("resourceVersion", resource_version.to_string()));
        if let Some(t) = p.timeout_seconds {
            q.push(("timeoutSeconds", t.to_string()));
        }
        let resp = self
            .client
            .req(reqwest::Method::GET, &self.collection())
            .query(&q)
            .send()
            .await
            .map_err(transport)?;
        if !resp.status().is_success() {
            let code = resp.status().as_u16();
            let bytes = resp.bytes().await.map_err(transport)?;
            let status: Status = serde_json::from_slice(&bytes).unwrap_or_else(|_| Status {
                code: Some(i32::from(code)),
                ..Default::default()
            });
            return Err(ClientError::Api(Box::new(status)));
        }
        let bytes = resp.bytes_stream();
        let state = (bytes, Vec::<u8>::new(), false);
        Ok(futures_util::stream::unfold(
            state,
            move |(mut bytes, mut buf, done)| async move {
                if done {
                    return None;
                }
                loop {
                    if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        let ev = parse_event::<K>(&line);
                        let end = matches!(ev, Ok(WatchEvent::Error(_)) | Err(_));
                        return Some((ev, (bytes, buf, end)));
                    }
                    match tokio::time::timeout(idle, bytes.next()).await {
                        Ok(Some(Ok(chunk))) => buf.extend_from_slice(&chunk),
                        Ok(Some(Err(e))) => return Some((Err(transport(e)), (bytes, buf, true))),
                        Ok(None) => return None,
                        Err(_) => {
                            return Some((
                                Err(ClientError::Transport(format!("watch idle for {idle:?}"))),
                                (bytes, buf, true),
                            ));
                        }
                    }
                }
            },
        ))
    }
}

/// A watch line whose object decodes as the watched kind.
#[derive(serde::Deserialize)]
#[serde(bound = "K: DeserializeOwned")]
struct TypedLine<K> {
    #[serde(rename = "type")]
    type_: String,
    object: K,
}

fn parse_event<K: DeserializeOwned>(line: &[u8]) -> Result<WatchEvent<K>> {
    // objects decode straight from the bytes (no intermediate Value);
    // bookmarks, errors and objects that do not decode take the slow path
    if let Ok(t) = serde_json::from_slice::<TypedLine<K>>(line) {
        match t.type_.as_str() {
            "ADDED" => return Ok(WatchEvent::Added(t.object)),
            "MODIFIED" => return Ok(WatchEvent::Modified(t.object)),
            "DELETED" => return Ok(WatchEvent::Deleted(t.object)),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_slice(line)
        .map_err(|e| ClientError::Decode(format!("watch event: {e}")))?;
    let object = v.get_mut("object").map(Value::take).unwrap_or(Value::Null);
    match v.get("type").and_then(Value::as_str).unwrap_or("") {
        "ADDED" => Ok(WatchEvent::Added(decode(object)?)),
        "MODIFIED" => Ok(WatchEvent::Modified(decode(object)?)),
        "DELETED" => Ok(WatchEvent::Deleted(decode(object)?)),
        "BOOKMARK" => Ok(WatchEvent::Bookmark(
            object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )),
        "ERROR" => Ok(WatchEvent::Error(Box::new(
            serde_json::from_value(object).unwrap_or_default(),
        ))),
        other => Err(ClientError::Decode(format!(
            "unknown watch event type {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use schemas::MetaExt;

    #[test]
    fn watch_lines_decode_into_events() {
        let ev = parse_event::<ConfigMap>(br#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}}"#).expect("added");
        assert!(matches!(ev, WatchEvent::Added(cm) if cm.metadata.name_str() == "a"));
        let ev = parse_event::<ConfigMap>(
            br#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"42"}}}"#,
        )
        .expect("bookmark");
        assert!(matches!(ev, WatchEvent::Bookmark(rv) if rv == "42"));
        let ev = parse_event::<ConfigMap>(
            br#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}"#,
        )
        .expect("error");
        assert!(matches!(ev, WatchEvent::Error(s) if s.code == Some(410)));
        assert!(parse_event::<ConfigMap>(b"{nope").is_err());
        let ev =
            parse_event::<ConfigMap>(br#"{"object":{"metadata":{"name":"b"}},"type":"DELETED"}"#)
                .expect("deleted");
        assert!(matches!(ev, WatchEvent::Deleted(cm) if cm.metadata.name_str() == "b"));
        // an object that is not the kind's shape is an error, not a default
        assert!(
            parse_event::<ConfigMap>(br#"{"type":"ADDED","object":{"metadata":{"name":5}}}"#)
                .is_err()
        );
    }

    #[test]
    fn errors_classify_by_status() {
        let e = ClientError::Api(Box::new(Status {
            code: Some(409),
            reason: Some("Conflict".into()),
            ..Default::default()
        }));
        assert!(e.is_conflict() && !e.is_already_exists());
        let e = ClientError::Api(Box::new(Status {
            code: Some(409),
            reason: Some("AlreadyExists".into()),
            ..Default::default()
        }));
        assert!(e.is_already_exists() && !e.is_conflict());
        assert!(
            ClientError::Api(Box::new(Status {
                code: Some(410),
                ..Default::default()
            }))
            .is_gone()
        );
    }
}

/// The API of a kind known only at run time (the garbage collector, the
/// namespace controller, intake's custom resources): the same verbs on JSON values.
#[derive(Clone)]
pub struct DynApi {
    client: Client,
    /// `/api/v1` or `/apis/GROUP/VERSION`.
    base: String,
    plural: String,
    namespace: Option<String>,
}

impl Client {
    /// A dynamic API for `info` in `namespace` (`None`: all namespaces / cluster-scoped).
    pub fn dynamic(&self, info: &schemas::KindInfo, namespace: Option<&str>) -> DynApi {
        let base = if info.group.is_empty() {
            format!("/api/{}", info.version)
        } else {
            format!("/apis/{}/{}", info.group, info.version)
        };
        DynApi {
            client: self.clone(),
            base,
            plural: info.plural.clone(),
            namespace: namespace.filter(|_| info.namespaced).map(str::to_string),
        }
    }
}

impl DynApi {
    fn collection(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/namespaces/{ns}/{}", self.base, self.plural),
            None => format!("{}/{}", self.base, self.plural),
        }
    }

    fn item(&self, name: &str) -> String {
        format!("{}/{name}", self.collection())
    }

    /// Reads an object; `None` when it does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<Value>> {
        match self
            .client
            .send(self.client.req(reqwest::Method::GET, &self.item(name)))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists every object (following continue tokens).
    pub async fn list_all(&self) -> Result<Vec<Value>> {
        self.list_selected(None).await
    }

    /// Lists every object matching a label selector (following continue tokens).
    pub async fn list_selected(&self, label_selector: Option<&str>) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut cont: Option<String> = None;
        loop {
            let mut q = vec![("limit", "500".to_string())];
            if let Some(s) = label_selector {
                q.push(("labelSelector", s.to_string()));
            }
            if let Some(c) = &cont {
                q.push(("continue", c.clone()));
            }
            let v = self
                .client
                .send(
                    self.client
                        .req(reqwest::Method::GET, &self.collection())
                        .query(&q),
                )
                .await?;
            if let Some(Value::Array(items)) = v.get("items") {
                out.extend(items.iter().cloned());
            }
            cont = v["metadata"]["continue"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            if cont.is_none() {
                return Ok(out);
            }
        }
    }

    /// Patches an object.
    pub async fn patch(&self, name: &str, patch: &Patch, p: &WriteParams) -> Result<Value> {
        let body =
            serde_json::to_vec(patch.body()).map_err(|e| ClientError::Decode(e.to_string()))?;
        let r = self
            .client
            .req(reqwest::Method::PATCH, &self.item(name))
            .query(&write_query(p))
            .header(reqwest::header::CONTENT_TYPE, patch.content_type())
            .body(body);
        self.client.send(r).await
    }

    /// Deletes an object; `Ok(())` also when deletion is pending.
    pub async fn delete(&self, name: &str, p: &DeleteParams) -> Result<()> {
        let body = p.body();
        let r = self
            .client
            .req(reqwest::Method::DELETE, &self.item(name))
            .json(&body);
        self.client.send(r).await.map(|_| ())
    }

    /// Reads a subresource (e.g. a workload's `scale`).
    pub async fn get_subresource(&self, name: &str, sub: &str) -> Result<Value> {
        let path = format!("{}/{sub}", self.item(name));
        self.client
            .send(self.client.req(reqwest::Method::GET, &path))
            .await
    }

    /// Replaces a subresource (e.g. a namespace's `finalize`).
    pub async fn replace_subresource(&self, name: &str, sub: &str, obj: &Value) -> Result<Value> {
        let r = self
            .client
            .req(reqwest::Method::PUT, &format!("{}/{sub}", self.item(name)))
            .json(obj);
        self.client.send(r).await
    }
}
