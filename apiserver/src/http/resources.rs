//! The resource endpoints: one function per verb (get, list, watch, create,
//! update, patch, delete, deletecollection), each authorising, calling the
//! registry, and answering in the negotiated format.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::{Condition, Identity};
use crate::errors::{ApiError, ApiResult};
use crate::http::App;
use crate::http::access::{self, Access};
use crate::http::request::{self, Format, Query};
use crate::http::{subresources, watch};
use crate::objects;
use crate::registry::{DeleteOptions, DeleteOutcome, ListOptions, ListPage, WriteOptions};
use crate::target::Target;

/// A request being served.
pub struct Req {
    /// The server.
    pub app: Arc<App>,
    /// The caller.
    pub id: Identity,
    /// What the URL addresses.
    pub target: Target,
    /// Query parameters.
    pub query: Query,
    /// Request headers.
    pub headers: HeaderMap,
    /// Response format.
    pub format: Format,
    /// The WebSocket upgrade of a `pods/exec` request (taken by its handler).
    pub upgrade: std::sync::Mutex<Option<axum::extract::ws::WebSocketUpgrade>>,
}

/// Answers a JSON value with a status code.
pub fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

impl Req {
    fn ns(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }

    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or("")
    }

    fn write_options(&self) -> ApiResult<WriteOptions> {
        Ok(WriteOptions {
            dry_run: self.query.dry_run()?,
        })
    }

    /// An object in the negotiated format.
    pub fn object_response(&self, code: StatusCode, obj: Value) -> Response {
        match self.format {
            Format::Table => json_response(
                code,
                &crate::tables::table(
                    self.target.info,
                    &[obj],
                    json!({}),
                    self.query.get("includeObject").unwrap_or("Metadata"),
                ),
            ),
            Format::Json => json_response(code, &obj),
        }
    }

    fn list_response(&self, page: ListPage) -> Response {
        let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
        if let Some(c) = page.continue_token {
            meta["continue"] = json!(c);
        }
        match self.format {
            Format::Table => json_response(
                StatusCode::OK,
                &crate::tables::table(
                    self.target.info,
                    &page.items,
                    meta,
                    self.query.get("includeObject").unwrap_or("Metadata"),
                ),
            ),
            Format::Json if !page.raw_items.is_empty() => {
                // stored JSON spliced into the list without decoding it
                let head = json!({
                    "kind": format!("{}List", self.target.info.kind),
                    "apiVersion": self.target.info.api_version,
                    "metadata": meta,
                });
                let mut body = serde_json::to_vec(&head).unwrap_or_default();
                body.pop();
                body.extend_from_slice(b",\"items\":[");
                for (i, item) in page.raw_items.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(item);
                }
                body.extend_from_slice(b"]}");
                (
                    StatusCode::OK,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response()
            }
            Format::Json => json_response(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", self.target.info.kind),
                    "apiVersion": self.target.info.api_version,
                    "metadata": meta,
                    "items": page.items,
                }),
            ),
        }
    }

    /// Enforces a conditional access decision that depends on the stored object.
    async fn enforce_on_object(
        &self,
        access: &Access,
        verb: &str,
        obj: Option<&Value>,
    ) -> ApiResult<()> {
        match access {
            Access::Granted => Ok(()),
            Access::Conditional(Condition::PodOnNode(node)) => {
                let stored;
                let pod = match obj {
                    Some(p) => p,
                    None => {
                        stored = self
                            .app
                            .registry
                            .get(self.target.info, self.ns(), self.name())
                            .await?;
                        &stored
                    }
                };
                access::check_pod(&self.id, verb, &self.target, pod, node)
            }
            Access::Conditional(Condition::UsedByPodOn(node)) => {
                access::check_used_by_node(
                    &self.app.registry,
                    &self.id,
                    verb,
                    &self.target,
                    self.target.name.as_deref(),
                    node,
                )
                .await
            }
            Access::Conditional(Condition::SelectsNode(node)) => {
                let fields = self.query.selectors(self.target.info)?.fields;
                access::check_selects_node(&self.id, verb, &self.target, &fields, node)
            }
        }
    }

    async fn get(&self) -> ApiResult<Response> {
        let access = access::check(&self.id, "get", &self.target)?;
        let obj = self
            .app
            .registry
            .get(self.target.info, self.ns(), self.name())
            .await?;
        self.enforce_on_object(&access, "get", Some(&obj)).await?;
        Ok(self.object_response(StatusCode::OK, obj))
    }

    fn list_options(&self) -> ApiResult<ListOptions> {
        Ok(ListOptions {
            selectors: self.query.selectors(self.target.info)?,
            limit: self.query.int("limit")?.map(|l| l.max(0) as usize),
            continue_token: self
                .query
                .get("continue")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            resource_version: self.query.get("resourceVersion").map(str::to_string),
            resource_version_match: self
                .query
                .get("resourceVersionMatch")
                .filter(|m| !m.is_empty())
                .map(str::to_string),
            raw: false,
        })
    }

    async fn authorize_collection(&self, verb: &str, opts: &ListOptions) -> ApiResult<()> {
        match access::check(&self.id, verb, &self.target)? {
            Access::Granted => Ok(()),
            Access::Conditional(Condition::SelectsNode(node)) => access::check_selects_node(
                &self.id,
                verb,
                &self.target,
                &opts.selectors.fields,
                &node,
            ),
            Access::Conditional(Condition::UsedByPodOn(node)) => {
                let name = opts.selectors.fields.equals("metadata.name");
                access::check_used_by_node(
                    &self.app.registry,
                    &self.id,
                    verb,
                    &self.target,
                    name,
                    &node,
                )
                .await
            }
            Access::Conditional(Condition::PodOnNode(node)) => Err(ApiError::forbidden(
                &self.id.name,
                verb,
                self.target.info.plural,
                self.target.info.group,
                self.ns(),
                None,
                &format!("node {node:?} may not {verb} this collection"),
            )),
        }
    }

    async fn list(&self) -> ApiResult<Response> {
        let opts = self.list_options()?;
        self.authorize_collection("list", &opts).await?;
        let opts = ListOptions {
            raw: self.format == Format::Json,
            ..opts
        };
        let page = self
            .app
            .registry
            .list(self.target.info, self.ns(), &opts)
            .await?;
        Ok(self.list_response(page))
    }

    async fn watch(&self) -> ApiResult<Response> {
        let opts = self.list_options()?;
        self.authorize_collection("watch", &opts).await?;
        watch::serve(self, opts).await
    }

    async fn create(&self, body: bytes::Bytes) -> ApiResult<Response> {
        access::check(&self.id, "create", &self.target)?;
        let obj = request::decode_object(&body, &request::content_type(&self.headers))?;
        let manager = request::field_manager(&self.query, &self.headers)?;
        let created = self
            .app
            .registry
            .create(
                self.target.info,
                self.ns(),
                obj,
                &self.write_options()?,
                |o| crate::http::managed::record_update(self.target.info, None, o, &manager, None),
            )
            .await?;
        Ok(self.object_response(StatusCode::CREATED, created))
    }

    async fn update(&self, body: bytes::Bytes) -> ApiResult<Response> {
        let verb = "update";
        let access = access::check(&self.id, verb, &self.target)?;
        let new = request::decode_object(&body, &request::content_type(&self.headers))?;
        if matches!(access, Access::Conditional(_)) {
            self.enforce_on_object(&access, verb, None).await?;
        }
        let manager = request::field_manager(&self.query, &self.headers)?;
        let sub = self.target.subresource.as_deref();
        let updated = self
            .app
            .registry
            .update(
                self.target.info,
                self.ns(),
                self.name(),
                new,
                sub,
                &self.write_options()?,
                |old, new| {
                    crate::http::managed::record_update(
                        self.target.info,
                        Some(old),
                        new,
                        &manager,
                        sub,
                    )
                },
            )
            .await?;
        Ok(self.object_response(StatusCode::OK, updated))
    }

    async fn patch(&self, body: bytes::Bytes) -> ApiResult<Response> {
        let verb = "patch";
        let access = access::check(&self.id, verb, &self.target)?;
        if matches!(access, Access::Conditional(_)) {
            self.enforce_on_object(&access, verb, None).await?;
        }
        let content_type = request::content_type(&self.headers);
        let manager = request::field_manager(&self.query, &self.headers)?;
        let force = self.query.flag("force");
        let sub = self.target.subresource.as_deref();
        let info = self.target.info;
        let patched = self
            .app
            .registry
            .update_with(
                info,
                self.ns(),
                self.name(),
                sub,
                &self.write_options()?,
                None,
                |old| {
                    crate::http::managed::apply_patch(
                        info,
                        old,
                        &content_type,
                        &body,
                        &manager,
                        force,
                        sub,
                    )
                },
                |old, new| {
                    if content_type.starts_with("application/apply-patch") {
                        Ok(())
                    } else {
                        crate::http::managed::record_update(info, Some(old), new, &manager, sub)
                    }
                },
            )
            .await;
        match patched {
            Ok(obj) => Ok(self.object_response(StatusCode::OK, obj)),
            // server-side apply creates what does not exist yet
            Err(e)
                if e.code == 404
                    && content_type.starts_with("application/apply-patch")
                    && sub.is_none() =>
            {
                access::check(&self.id, "create", &self.target)?;
                let config = crate::http::managed::apply_to_new(
                    info,
                    self.ns(),
                    self.name(),
                    &body,
                    &manager,
                    force,
                )?;
                let created = self
                    .app
                    .registry
                    .create(info, self.ns(), config, &self.write_options()?, |_| Ok(()))
                    .await?;
                Ok(self.object_response(StatusCode::CREATED, created))
            }
            Err(e) => Err(e),
        }
    }

    fn delete_options(&self, body: &[u8]) -> ApiResult<DeleteOptions> {
        let mut opts = DeleteOptions {
            grace_period_seconds: self.query.int("gracePeriodSeconds")?,
            propagation_policy: self
                .query
                .get("propagationPolicy")
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            dry_run: self.query.dry_run()?,
            ..Default::default()
        };
        if self.query.get("orphanDependents") == Some("true") && opts.propagation_policy.is_none() {
            opts.propagation_policy = Some("Orphan".into());
        }
        if !body.is_empty() {
            let b: schemas::core::DeleteOptions = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("the DeleteOptions body is not valid: {e}"))
            })?;
            if b.grace_period_seconds.is_some() {
                opts.grace_period_seconds = b.grace_period_seconds;
            }
            if b.propagation_policy.is_some() {
                opts.propagation_policy = b.propagation_policy;
            } else if b.orphan_dependents == Some(true) {
                opts.propagation_policy = Some("Orphan".into());
            }
            if let Some(p) = b.preconditions {
                opts.precondition_uid = p.uid;
                opts.precondition_resource_version = p.resource_version;
            }
            if b.dry_run
                .as_ref()
                .is_some_and(|d| d.iter().any(|x| x == "All"))
            {
                opts.dry_run = true;
            }
        }
        Ok(opts)
    }

    async fn delete(&self, body: bytes::Bytes) -> ApiResult<Response> {
        let access = access::check(&self.id, "delete", &self.target)?;
        self.enforce_on_object(&access, "delete", None).await?;
        let opts = self.delete_options(&body)?;
        match self
            .app
            .registry
            .delete(self.target.info, self.ns(), self.name(), &opts)
            .await?
        {
            DeleteOutcome::Pending(obj) => Ok(self.object_response(StatusCode::OK, obj)),
            DeleteOutcome::Deleted(obj) => Ok(json_response(
                StatusCode::OK,
                &success_status(self.target.info, &obj),
            )),
        }
    }

    async fn delete_collection(&self, body: bytes::Bytes) -> ApiResult<Response> {
        let list_opts = self.list_options()?;
        self.authorize_collection("deletecollection", &list_opts)
            .await?;
        let opts = self.delete_options(&body)?;
        let page = self
            .app
            .registry
            .list(
                self.target.info,
                self.ns(),
                &ListOptions {
                    limit: None,
                    continue_token: None,
                    ..list_opts
                },
            )
            .await?;
        let mut items = Vec::new();
        for obj in page.items {
            let ns = objects::namespace(&obj).map(str::to_string);
            match self
                .app
                .registry
                .delete(self.target.info, ns.as_deref(), objects::name(&obj), &opts)
                .await
            {
                Ok(DeleteOutcome::Pending(o) | DeleteOutcome::Deleted(o)) => items.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.list_response(ListPage {
            raw_items: Vec::new(),
            items,
            resource_version: page.resource_version,
            continue_token: None,
        }))
    }
}

/// The `Status` Kubernetes answers a completed delete with.
fn success_status(info: &schemas::KindInfo, obj: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": objects::name(obj), "group": info.group, "kind": info.plural, "uid": objects::uid(obj)},
    })
}

/// Serves one resource request.
pub async fn serve(req: Req, method: Method, body: Body) -> ApiResult<Response> {
    let body = request::read_body(body).await?;
    let has_name = req.target.name.is_some();
    match (method, has_name, req.target.subresource.as_deref()) {
        (Method::GET, false, None) if req.query.flag("watch") => req.watch().await,
        (Method::GET, false, None) => req.list().await,
        (Method::GET, true, None | Some("status")) => req.get().await,
        (Method::POST, false, None) => req.create(body).await,
        (Method::PUT, true, None | Some("status" | "finalize")) => req.update(body).await,
        (Method::PATCH, true, None | Some("status")) => req.patch(body).await,
        (Method::DELETE, true, None) => req.delete(body).await,
        (Method::DELETE, false, None) => req.delete_collection(body).await,
        (m, true, Some(sub)) => subresources::serve(&req, m, sub, body).await,
        (m, _, _) => Err(ApiError::method_not_allowed(&format!(
            "{m} {}",
            req.target.info.plural
        ))),
    }
}
