//! The resource endpoints: one function per verb (get, list, watch, create,
//! update, patch, delete, deletecollection), each authorising, calling the
//! registry, and answering in the negotiated format with kube-apiserver's
//! codes, bodies and `Warning` headers.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use crate::admission::{Directives, Warnings};
use crate::auth::{Condition, Identity};
use crate::errors::{ApiError, ApiResult};
use crate::http::App;
use crate::http::access::{self, Access};
use crate::http::options;
use crate::http::request::{self, Format, Query};
use crate::http::respond;
use crate::http::{subresources, watch};
use crate::objects;
use crate::registry::{DeleteOptions, DeleteOutcome, ListOptions, ListPage, WriteOptions};
use crate::status::{Status, StatusDetails};
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
    /// The connection's raw upgrade (`pods/portforward` over SPDY; taken by its handler).
    pub raw_upgrade: std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>,
    /// `Warning` headers collected while serving.
    pub warnings: Warnings,
}

/// Answers a JSON value with a status code.
pub fn json_response(code: StatusCode, v: &Value) -> Response {
    respond::json(code, v)
}

impl Req {
    fn ns(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }

    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or("")
    }

    /// The options of a write (checked as kube-apiserver checks them):
    /// `dryRun`, `fieldValidation`, and the warnings sink.
    pub fn write_options(&self, write: options::Write) -> ApiResult<WriteOptions> {
        options::check_write(&self.query, write)?;
        Ok(WriteOptions {
            dry_run: options::dry_run(&self.query),
            directives: Directives {
                field_validation: self.query.field_validation()?,
                warnings: self.warnings.clone(),
            },
            webhooks: None,
        })
    }

    fn include_object(&self) -> &str {
        self.query.get("includeObject").unwrap_or("Metadata")
    }

    /// An object in the negotiated format.
    pub fn object_response(&self, code: StatusCode, obj: Value) -> Response {
        respond::object(
            code,
            self.format,
            &self.target.info,
            self.include_object(),
            obj,
        )
    }

    fn list_response(&self, page: ListPage) -> Response {
        let meta = respond::list_meta(
            page.resource_version,
            page.continue_token,
            page.remaining_item_count,
        );
        respond::list(
            self.format,
            &self.target.info,
            self.include_object(),
            meta,
            page.items,
            page.raw_items,
        )
    }

    fn admission_attributes<'a>(
        &'a self,
        operation: &'a str,
        name: &'a str,
    ) -> crate::admission::policies::Attributes<'a> {
        crate::admission::policies::Attributes {
            operation,
            info: &self.target.info,
            subresource: self.target.subresource.as_deref(),
            namespace: self.ns(),
            name,
            user_info: access::user_info(&self.id),
            dry_run: options::dry_run(&self.query),
        }
    }

    /// The ValidatingAdmissionPolicy bindings that apply to this request
    /// (none for the policy kinds themselves, as kube-apiserver spares them).
    pub async fn admission_policies(
        &self,
        operation: &str,
        name: &str,
    ) -> ApiResult<crate::admission::policies::Prepared> {
        let attrs = self.admission_attributes(operation, name);
        let policies = if self.target.info.group == "admissionregistration.k8s.io" {
            std::sync::Arc::new(crate::admission::policies::Policies::default())
        } else {
            self.app.policies.snapshot()
        };
        policies.prepare(&self.app.registry, &attrs).await
    }

    /// The admission webhooks that may apply to this request (`options`:
    /// the kind of its options object, `CreateOptions`, `UpdateOptions`,
    /// `PatchOptions` or `DeleteOptions`), given the namespace the
    /// policies read.
    pub fn webhook_calls(
        &self,
        operation: &str,
        name: &str,
        options: &str,
        policies: &crate::admission::policies::Prepared,
    ) -> Option<Arc<crate::admission::webhooks::Calls>> {
        let mut opts = serde_json::json!({"kind": options, "apiVersion": "meta.k8s.io/v1"});
        if let Some(m) = self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            opts["fieldManager"] = Value::String(m.to_string());
        }
        if options::dry_run(&self.query) {
            opts["dryRun"] = serde_json::json!(["All"]);
        }
        self.app.webhooks.snapshot().prepare(
            &self.admission_attributes(operation, name),
            policies.namespace_object(),
            opts,
        )
    }

    /// RBAC's escalation prevention for writes of roles and bindings by RBAC
    /// subjects (korral's fixed roles may grant anything).
    fn check_escalation(&self, obj: &Value) -> ApiResult<()> {
        let info = &self.target.info;
        match &self.id.role {
            crate::auth::Role::Subject(subject) if info.group == "rbac.authorization.k8s.io" => {
                crate::rbac::escalation::check_write(
                    &subject.rbac.0,
                    &subject.user(&self.id.name),
                    &info.kind,
                    self.ns(),
                    obj,
                )
            }
            _ => Ok(()),
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
            Access::Conditional(
                cond @ (Condition::PodOnNode(node) | Condition::VolumeOnNode(node)),
            ) => {
                let stored;
                let o = match obj {
                    Some(o) => o,
                    None => {
                        stored = self
                            .app
                            .registry
                            .get(&self.target.info, self.ns(), self.name())
                            .await?;
                        &stored
                    }
                };
                if matches!(cond, Condition::PodOnNode(_)) {
                    access::check_pod(&self.id, verb, &self.target, o, node)
                } else {
                    access::check_volume_on_node(&self.id, verb, &self.target, o, node)
                }
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
                let fields = self.query.selectors(&self.target.info)?.fields;
                access::check_selects_node(&self.id, verb, &self.target, &fields, node)
            }
            // only the TokenRequest handler can check this one
            Access::Conditional(Condition::TokenForPodOn(node)) => Err(ApiError::forbidden(
                &self.id.name,
                verb,
                &self.target.info.plural,
                &self.target.info.group,
                self.ns(),
                self.target.name.as_deref(),
                &format!("node {node:?} may not {verb} this"),
            )),
        }
    }

    async fn get(&self) -> ApiResult<Response> {
        let access = access::check(&self.id, "get", &self.target)?;
        let registry = &self.app.registry;
        // `resourceVersion=0`: any state will do, so the watch cache answers
        let obj = if self.query.get("resourceVersion") == Some("0") {
            registry
                .get_cached(&self.target.info, self.ns(), self.name())
                .await?
        } else {
            registry
                .get(&self.target.info, self.ns(), self.name())
                .await?
        };
        self.enforce_on_object(&access, "get", Some(&obj)).await?;
        Ok(self.object_response(StatusCode::OK, obj))
    }

    fn list_options(&self) -> ApiResult<ListOptions> {
        options::check_list(&self.query, self.query.flag("watch"), self.app.watch_list)?;
        Ok(ListOptions {
            selectors: self.query.selectors(&self.target.info)?,
            limit: self.query.limit()?.map(|l| l.max(0) as usize),
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
            Access::Conditional(
                Condition::PodOnNode(node)
                | Condition::TokenForPodOn(node)
                | Condition::VolumeOnNode(node),
            ) => Err(ApiError::forbidden(
                &self.id.name,
                verb,
                &self.target.info.plural,
                &self.target.info.group,
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
            .list(&self.target.info, self.ns(), &opts)
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
        self.check_escalation(&obj)?;
        let manager = request::field_manager(&self.query, &self.headers);
        let info = self.target.info.clone();
        let decoded = crate::admission::as_decoded(&info, &obj);
        let name = objects::name(&obj).to_string();
        let policies = self.admission_policies("CREATE", &name).await?;
        let mut opts = self.write_options(options::Write::Create)?;
        opts.webhooks = self.webhook_calls("CREATE", &name, "CreateOptions", &policies);
        let created = self
            .app
            .registry
            .create(&info, self.ns(), obj, &opts, |o| {
                crate::certificates::prepare_create(&info, &self.id, o)?;
                crate::admission::node_restriction::admit_create(&info, &self.id, o)?;
                policies.admit(&info.kind, o, None, &self.warnings)?;
                crate::http::managed::record_create(&info, decoded.as_ref(), o, &manager)
            })
            .await?;
        Ok(self.object_response(StatusCode::CREATED, created))
    }

    async fn update(&self, body: bytes::Bytes) -> ApiResult<Response> {
        let verb = "update";
        let access = access::check(&self.id, verb, &self.target)?;
        let new = request::decode_object(&body, &request::content_type(&self.headers))?;
        self.check_escalation(&new)?;
        if matches!(access, Access::Conditional(_)) {
            self.enforce_on_object(&access, verb, None).await?;
        }
        let manager = request::field_manager(&self.query, &self.headers);
        let sub = self.target.subresource.as_deref();
        let info = self.target.info.clone();
        let policies = self.admission_policies("UPDATE", self.name()).await?;
        let mut opts = self.write_options(options::Write::Update)?;
        opts.webhooks = self.webhook_calls("UPDATE", self.name(), "UpdateOptions", &policies);
        let updated = self
            .app
            .registry
            .update(
                &info,
                self.ns(),
                self.name(),
                new,
                sub,
                &opts,
                |old, new| {
                    crate::certificates::prepare_update(&info, sub, &self.id, old, new)?;
                    policies.admit(&info.kind, new, Some(old), &self.warnings)?;
                    crate::http::managed::record_update(&info, Some(old), new, &manager, sub)
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
        let manager = request::field_manager(&self.query, &self.headers);
        let force = self.query.flag("force");
        let sub = self.target.subresource.as_deref();
        let info = self.target.info.clone();
        let mut opts = self.write_options(options::Write::Patch {
            apply: content_type.starts_with("application/apply-patch"),
        })?;
        let policies = self.admission_policies("UPDATE", self.name()).await?;
        opts.webhooks = self.webhook_calls("UPDATE", self.name(), "PatchOptions", &policies);
        let patched = self
            .app
            .registry
            .update_with(
                &info,
                self.ns(),
                self.name(),
                sub,
                &opts,
                None,
                |old| {
                    crate::http::managed::apply_patch(
                        &info,
                        old,
                        &content_type,
                        &body,
                        &manager,
                        force,
                        sub,
                    )
                },
                |old, new| {
                    crate::certificates::prepare_update(&info, sub, &self.id, old, new)?;
                    self.check_escalation(new)?;
                    policies.admit(&info.kind, new, Some(old), &self.warnings)?;
                    if content_type.starts_with("application/apply-patch") {
                        Ok(())
                    } else {
                        crate::http::managed::record_update(&info, Some(old), new, &manager, sub)
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
                    &info,
                    self.ns(),
                    self.name(),
                    &body,
                    &manager,
                    force,
                )?;
                self.check_escalation(&config)?;
                let policies = self.admission_policies("CREATE", self.name()).await?;
                let opts = WriteOptions {
                    webhooks: self.webhook_calls("CREATE", self.name(), "PatchOptions", &policies),
                    ..opts
                };
                let created = self
                    .app
                    .registry
                    .create(&info, self.ns(), config, &opts, |o| {
                        crate::certificates::prepare_create(&info, &self.id, o)?;
                        crate::admission::node_restriction::admit_create(&info, &self.id, o)?;
                        policies.admit(&info.kind, o, None, &self.warnings)
                    })
                    .await?;
                Ok(self.object_response(StatusCode::CREATED, created))
            }
            Err(e) => Err(e),
        }
    }

    /// The options of a delete: from the body when there is one, else from
    /// the query (kube-apiserver reads one or the other, never both).
    /// The second value says whether a pending deletion answers 202
    /// Accepted (only when `orphanDependents=false` asked for it, as kube).
    fn delete_options(&self, body: &[u8]) -> ApiResult<(DeleteOptions, bool)> {
        let mut opts = DeleteOptions::default();
        let orphan_dependents;
        let dry_run: Vec<String>;
        if body.is_empty() {
            opts.grace_period_seconds = self.query.int("gracePeriodSeconds")?;
            opts.propagation_policy = self.query.get("propagationPolicy").map(str::to_string);
            orphan_dependents = self.query.bool("orphanDependents");
            dry_run = self
                .query
                .all("dryRun")
                .into_iter()
                .map(str::to_string)
                .collect();
        } else {
            let decoded = request::decode_object(body, &request::content_type(&self.headers))?;
            let b: k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions =
                serde_json::from_value(decoded).map_err(|e| {
                    ApiError::bad_request(format!("the DeleteOptions body is not valid: {e}"))
                })?;
            opts.grace_period_seconds = b.grace_period_seconds;
            opts.propagation_policy = b.propagation_policy;
            orphan_dependents = b.orphan_dependents;
            if let Some(p) = b.preconditions {
                opts.precondition_uid = p.uid;
                opts.precondition_resource_version = p.resource_version;
            }
            dry_run = b.dry_run.unwrap_or_default();
        }
        options::check_delete(
            opts.propagation_policy.as_deref(),
            orphan_dependents,
            &dry_run,
        )?;
        opts.dry_run = !dry_run.is_empty();
        if opts.propagation_policy.is_none() {
            match orphan_dependents {
                Some(true) => opts.propagation_policy = Some("Orphan".into()),
                Some(false) => opts.propagation_policy = Some("Background".into()),
                None => {
                    // batch/v1 Jobs and v1 ReplicationControllers orphan their pods unless told otherwise
                    let info = &self.target.info;
                    if info.is("batch", "Job") {
                        self.warnings.add("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning");
                        opts.propagation_policy = Some("Orphan".into());
                    } else if info.is("", "ReplicationController") {
                        opts.propagation_policy = Some("Orphan".into());
                    }
                }
            }
        }
        Ok((opts, orphan_dependents == Some(false)))
    }

    fn protect_namespace(&self, name: &str) -> ApiResult<()> {
        if self.target.info.is("", "Namespace")
            && crate::admission::PROTECTED_NAMESPACES.contains(&name)
        {
            let mut e = ApiError::forbidden_message(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            ));
            e.details = Some(Box::new(StatusDetails {
                name: Some(name.to_string()),
                kind: Some("namespaces".into()),
                ..Default::default()
            }));
            return Err(e);
        }
        Ok(())
    }

    /// The body of a completed delete: the object, for the kinds whose
    /// registries return it, else a `Success` Status.
    fn deleted_body(&self, obj: Value) -> Response {
        let info = &self.target.info;
        if crate::admission::returns_deleted_object(info) {
            return self.object_response(StatusCode::OK, obj);
        }
        let status = Status::success(StatusDetails {
            name: Some(objects::name(&obj).to_string()),
            group: Some(info.group.clone()).filter(|g| !g.is_empty()),
            kind: Some(info.plural.clone()),
            uid: Some(objects::uid(&obj).to_string()).filter(|u| !u.is_empty()),
            ..Default::default()
        });
        if self.format == Format::Protobuf {
            let v = serde_json::to_value(&status).unwrap_or_default();
            return respond::status(StatusCode::OK, self.format, &v);
        }
        respond::bytes_response(StatusCode::OK, "application/json", status.to_bytes())
    }

    async fn delete(&self, body: bytes::Bytes) -> ApiResult<Response> {
        let access = access::check(&self.id, "delete", &self.target)?;
        self.protect_namespace(self.name())?;
        self.enforce_on_object(&access, "delete", None).await?;
        let (mut opts, accepted) = self.delete_options(&body)?;
        let policies = self.admission_policies("DELETE", self.name()).await?;
        opts.webhooks = self.webhook_calls("DELETE", self.name(), "DeleteOptions", &policies);
        opts.warnings = self.warnings.clone();
        match self
            .app
            .registry
            .delete(&self.target.info, self.ns(), self.name(), &opts)
            .await?
        {
            DeleteOutcome::Pending(obj) if accepted => {
                Ok(self.object_response(StatusCode::ACCEPTED, obj))
            }
            DeleteOutcome::Pending(obj) => Ok(self.object_response(StatusCode::OK, obj)),
            DeleteOutcome::Deleted(obj) => Ok(self.deleted_body(obj)),
        }
    }

    async fn delete_collection(&self, body: bytes::Bytes) -> ApiResult<Response> {
        let list_opts = self.list_options()?;
        self.authorize_collection("deletecollection", &list_opts)
            .await?;
        let (mut opts, _) = self.delete_options(&body)?;
        opts.warnings = self.warnings.clone();
        let policies = self.admission_policies("DELETE", "").await?;
        let page = self
            .app
            .registry
            .list(
                &self.target.info,
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
            let name = objects::name(&obj).to_string();
            // protected namespaces stay, as the rest of the collection goes
            if self.target.info.is("", "Namespace")
                && crate::admission::PROTECTED_NAMESPACES.contains(&name.as_str())
            {
                continue;
            }
            // webhooks see each object deleted, by name
            opts.webhooks = self.webhook_calls("DELETE", &name, "DeleteOptions", &policies);
            match self
                .app
                .registry
                .delete(&self.target.info, ns.as_deref(), &name, &opts)
                .await
            {
                Ok(DeleteOutcome::Pending(_) | DeleteOutcome::Deleted(_)) => items.push(obj),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.list_response(ListPage {
            raw_items: Vec::new(),
            items,
            resource_version: page.resource_version,
            continue_token: None,
            remaining_item_count: None,
        }))
    }
}

/// Serves one resource request.
pub async fn serve(req: Req, method: Method, body: Body) -> ApiResult<Response> {
    let body = request::read_body(body).await?;
    let has_name = req.target.name.is_some();
    if let Some(w) = &req.target.info.deprecation_warning {
        req.warnings.add(w.clone());
    }
    let watch = req.query.flag("watch");
    let result = match (method, has_name, req.target.subresource.as_deref()) {
        (Method::GET, false, None) if watch => req.watch().await,
        (Method::GET, false, None) => req.list().await,
        (Method::GET, true, None | Some("status")) => req.get().await,
        (Method::POST, false, None) => req.create(body).await,
        (Method::PUT, true, None | Some("status" | "finalize" | "approval")) => {
            req.update(body).await
        }
        (Method::PATCH, true, None | Some("status" | "approval")) => req.patch(body).await,
        (Method::DELETE, true, None) => req.delete(body).await,
        (Method::DELETE, false, None) => req.delete_collection(body).await,
        (m, true, Some(sub)) => subresources::serve(&req, m, sub, body).await,
        (m, _, _) => Err(ApiError::method_not_allowed(&format!(
            "{m} {}",
            req.target.info.plural
        ))),
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            if e.code >= 500 {
                tracing::error!(code = e.code, message = %e.message, "request failed");
            }
            if req.format == Format::Protobuf {
                let code =
                    StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let v = serde_json::to_value(e.status()).unwrap_or_default();
                respond::status(code, req.format, &v)
            } else {
                axum::response::IntoResponse::into_response(e)
            }
        }
    };
    // warnings go out with errors too, as kube-apiserver sends them
    respond::add_warnings(&mut resp, &req.warnings.list());
    Ok(resp)
}
