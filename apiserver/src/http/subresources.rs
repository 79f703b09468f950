//! Subresources beyond status: `scale` (Deployments, ReplicaSets,
//! StatefulSets, ReplicationControllers and custom resources with a scale
//! subresource), `binding` and `eviction` (Pods; `eviction.rs`), `log`/`exec`/`attach`/`portforward` (Pods,
//! proxied to the node daemon), and `sync` (GitSources: ask intake to sync now).

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::errors::{ApiError, ApiResult};
use crate::http::access;
use crate::http::options;
use crate::http::request;
use crate::http::resources::{Req, json_response};
use crate::objects;
use crate::registry::WriteOptions;
use schemas::KindInfo;

/// Where a kind keeps its replicas: `.spec.replicas` and `.status.replicas`
/// for built-in kinds, the CRD's paths for custom ones.
fn scale_paths(info: &KindInfo) -> (String, String, Option<String>) {
    match info.custom().and_then(|c| c.scale.clone()) {
        Some(p) => (p.spec_replicas, p.status_replicas, p.label_selector),
        None => (".spec.replicas".into(), ".status.replicas".into(), None),
    }
}

fn at_path<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .try_fold(v, |node, k| node.get(k))
}

/// A label selector (matchLabels and matchExpressions) in its string form.
fn selector_text(sel: &Value) -> String {
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            },
        );
    }
    parts.sort();
    parts.join(",")
}

/// The `Scale` view of an object.
fn scale_of(info: &KindInfo, obj: &Value) -> ApiResult<Value> {
    let meta = obj.get("metadata").cloned().unwrap_or_default();
    let (spec_path, status_path, selector_path) = scale_paths(info);
    let spec_replicas = match at_path(obj, &spec_path) {
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::internal(format!("{spec_path} accessor error: {v} is not an integer"))
        })?,
        None if info.is_builtin() => 1,
        None => {
            return Err(ApiError::internal(format!(
                "the spec replicas field {spec_path:?} does not exist"
            )));
        }
    };
    let status_replicas = at_path(obj, &status_path)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = match &selector_path {
        Some(p) => at_path(obj, p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        None => match obj.pointer("/spec/selector") {
            // ReplicationControllers select with a map
            Some(Value::Object(m))
                if !m.contains_key("matchLabels") && !m.contains_key("matchExpressions") =>
            {
                selector_text(&json!({"matchLabels": m}))
            }
            Some(sel) => selector_text(sel),
            None => String::new(),
        },
    };
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": spec_replicas},
        "status": {"replicas": status_replicas, "selector": selector},
    }))
}

/// Sets the replicas at a `.a.b` path, creating the objects on the way.
fn set_replicas(obj: &mut Value, path: &str, replicas: i64) {
    let segs: Vec<&str> = path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .collect();
    let mut node = obj;
    for (i, seg) in segs.iter().enumerate() {
        if !node.is_object() {
            *node = json!({});
        }
        let Value::Object(m) = node else { return };
        if i + 1 == segs.len() {
            m.insert(seg.to_string(), json!(replicas));
            return;
        }
        node = m.entry(seg.to_string()).or_insert_with(|| json!({}));
    }
}

fn replicas_from_scale(scale: &Value) -> ApiResult<i64> {
    // an absent spec.replicas is 0 (protobuf and Go's omitempty drop zeros)
    let r = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "spec.replicas: Invalid value: {v}: must be an integer"
            ))
        })?,
    };
    if r < 0 {
        return Err(ApiError::bad_request(format!(
            "spec.replicas: Invalid value: {r}: must be greater than or equal to 0"
        )));
    }
    Ok(r)
}

async fn scale(req: &Req, method: Method, body: bytes::Bytes) -> ApiResult<Response> {
    let info = req.target.info.clone();
    let info = &*info;
    let ns = req.target.namespace.as_deref();
    let name = req.target.name.as_deref().unwrap_or("");
    let verb = match method {
        Method::GET => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        m => {
            return Err(ApiError::method_not_allowed(&format!(
                "{m} {}/scale",
                info.plural
            )));
        }
    };
    access::check(&req.id, verb, &req.target)?;
    if method == Method::GET {
        let obj = req.app.registry.get(info, ns, name).await?;
        return Ok(json_response(StatusCode::OK, &scale_of(info, &obj)?));
    }
    let content_type = request::content_type(&req.headers);
    let manager = request::field_manager(&req.query, &req.headers);
    let precondition = if method == Method::PUT {
        let s = request::decode_object(&body, &content_type)?;
        objects::meta_str(&s, "resourceVersion").map(str::to_string)
    } else {
        None
    };
    let mut opts = req.write_options(if method == Method::PUT {
        options::Write::Update
    } else {
        options::Write::Patch {
            apply: content_type.starts_with("application/apply-patch"),
        }
    })?;
    let (spec_path, _, _) = scale_paths(info);
    let policies = req.admission_policies("UPDATE", name).await?;
    let options_kind = if method == Method::PUT {
        "UpdateOptions"
    } else {
        "PatchOptions"
    };
    opts.webhooks = req.webhook_calls("UPDATE", name, options_kind, &policies);
    let updated = req
        .app
        .registry
        .update_with(
            info,
            ns,
            name,
            Some("scale"),
            &opts,
            precondition.as_deref(),
            |old| {
                let new_scale = if method == Method::PUT {
                    request::decode_object(&body, &content_type)?
                } else {
                    crate::http::managed::apply_patch(
                        info,
                        &scale_of(info, old)?,
                        &content_type,
                        &body,
                        &manager,
                        req.query.flag("force"),
                        Some("scale"),
                    )?
                };
                let replicas = replicas_from_scale(&new_scale)?;
                let mut new = old.clone();
                set_replicas(&mut new, &spec_path, replicas);
                Ok(new)
            },
            |old, new| {
                // policies see the Scale objects, as for kube's scale subresource
                policies.validate(
                    Some(&scale_of(info, new)?),
                    Some(&scale_of(info, old)?),
                    &req.warnings,
                )?;
                crate::http::managed::record_update(info, Some(old), new, &manager, Some("scale"))
            },
        )
        .await?;
    Ok(json_response(StatusCode::OK, &scale_of(info, &updated)?))
}

async fn binding(req: &Req, body: bytes::Bytes) -> ApiResult<Response> {
    access::check(&req.id, "create", &req.target)?;
    let b = request::decode_object(&body, &request::content_type(&req.headers))?;
    let node = b
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("target.name: Required value: the node to bind to"))?
        .to_string();
    let name = req.target.name.as_deref().unwrap_or("");
    let info = req.target.info.clone();
    let info = &*info;
    let dry_run = req.write_options(options::Write::Create)?.dry_run;
    req.app
        .registry
        .guaranteed_update(
            info,
            req.target.namespace.as_deref(),
            name,
            dry_run,
            |pod| {
                if objects::is_deleting(pod) {
                    return Err(ApiError::conflict_because(
                        info,
                        name,
                        "pod is being deleted, cannot be assigned to a host",
                    ));
                }
                if let Some(current) = pod
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                {
                    return Err(ApiError::conflict_because(
                        info,
                        name,
                        &format!("pod {name} is already assigned to node \"{current}\""),
                    ));
                }
                pod["spec"]["nodeName"] = json!(node);
                set_pod_scheduled(pod);
                Ok(true)
            },
        )
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

fn set_pod_scheduled(pod: &mut Value) {
    let now = schemas::time::now_text();
    let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    set_pod_condition(pod, cond);
}

/// Sets a pod's condition, replacing the one of the same type.
pub fn set_pod_condition(pod: &mut Value, cond: Value) {
    let status = pod
        .as_object_mut()
        .map(|m| m.entry("status").or_insert_with(|| json!({})));
    let Some(Value::Object(status)) = status else {
        return;
    };
    let conds = status.entry("conditions").or_insert_with(|| json!([]));
    if let Value::Array(list) = conds {
        list.retain(|c| c.get("type") != cond.get("type"));
        list.push(cond);
    }
}

/// `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: proxied
/// to the node daemon running the pod (see `node_proxy` for how the node is
/// found and authenticated).
async fn node_served(req: &Req, what: &str) -> ApiResult<Response> {
    // exec runs commands in the pod, attach reaches its process and
    // port-forward its ports: Kubernetes asks for `create` on all three,
    // whatever the method
    let verb = if what == "log" { "get" } else { "create" };
    access::check(&req.id, verb, &req.target)?;
    let name = req.target.name.as_deref().unwrap_or("");
    let pod = req
        .app
        .registry
        .get(&req.target.info, req.target.namespace.as_deref(), name)
        .await?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))?
        .to_string();
    if what == "log" {
        return crate::http::node_proxy::logs(&req.app, &pod, &node, &req.query.0).await;
    }
    let upgrade = req.upgrade.lock().ok().and_then(|mut u| u.take());
    if what == "portforward" {
        let raw = req.raw_upgrade.lock().ok().and_then(|mut u| u.take());
        return crate::http::portforward::serve(
            req.app.clone(),
            pod,
            node,
            upgrade,
            raw,
            &req.headers,
        );
    }
    let action = if what == "attach" {
        crate::http::exec::Action::Attach
    } else {
        crate::http::exec::Action::Exec
    };
    crate::http::exec::serve(req.app.clone(), pod, node, &req.query.0, upgrade, action)
}

async fn sync(req: &Req) -> ApiResult<Response> {
    access::check(&req.id, "create", &req.target)?;
    let info = req.target.info.clone();
    let now = schemas::time::micro_now_text();
    let updated = req
        .app
        .registry
        .update_with(
            &info,
            req.target.namespace.as_deref(),
            req.target.name.as_deref().unwrap_or(""),
            None,
            &WriteOptions::default(),
            None,
            |old| {
                let mut new = old.clone();
                objects::meta_mut(&mut new)
                    .entry("annotations")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|a| a.insert("korral.dev/sync-requested-at".into(), json!(now)));
                Ok(new)
            },
            |_, _| Ok(()),
        )
        .await?;
    Ok(json_response(StatusCode::ACCEPTED, &updated))
}

/// Serves a subresource request.
pub async fn serve(
    req: &Req,
    method: Method,
    sub: &str,
    body: bytes::Bytes,
) -> ApiResult<Response> {
    match (sub, &method) {
        ("scale", _) => scale(req, method, body).await,
        ("binding", &Method::POST) => binding(req, body).await,
        ("eviction", &Method::POST) => crate::http::eviction::serve(req, body).await,
        ("log", &Method::GET) => node_served(req, "log").await,
        ("exec", &Method::GET | &Method::POST) => node_served(req, "exec").await,
        ("attach", &Method::GET | &Method::POST) => node_served(req, "attach").await,
        ("portforward", &Method::GET | &Method::POST) => node_served(req, "portforward").await,
        ("sync", &Method::POST) => sync(req).await,
        ("token", &Method::POST) if req.target.info.is("", "ServiceAccount") => {
            crate::http::tokens::token_request(req, body).await
        }
        // a subresource the kind does not have is no route at all (kubectl
        // debug reads that as "ephemeral containers are disabled")
        (sub, _) if !req.target.info.has_subresource(sub) => Err(ApiError::no_route(sub)),
        (sub, m) => Err(ApiError::method_not_allowed(&format!(
            "{m} {}/{sub}",
            req.target.info.plural
        ))),
    }
}
