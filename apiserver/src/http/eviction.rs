//! `pods/eviction`, as kube-apiserver's eviction REST
//! (`pkg/registry/core/pod/storage/eviction.go`): a pod that is Pending,
//! finished or already being deleted goes at once; otherwise the one
//! PodDisruptionBudget covering it must allow a disruption, which the
//! eviction takes (disruptionsAllowed − 1 and the pod in disruptedPods,
//! written on the budget's status with its resourceVersion, retried on a
//! conflict) before the pod gets the `DisruptionTarget` condition and is
//! deleted. A budget that allows none, or that its controller has not
//! observed yet, answers 429 TooManyRequests with kube's Status; two budgets
//! answer 500. Unready pods skip the budget when its
//! unhealthyPodEvictionPolicy is AlwaysAllow, or when it is healthy enough
//! (IfHealthyBudget, the default).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::errors::{ApiError, ApiResult};
use crate::http::access;
use crate::http::options;
use crate::http::request;
use crate::http::resources::{Req, json_response};
use crate::objects;
use crate::registry::{DeleteOptions, ListOptions, WriteOptions};
use crate::status::{StatusCause, StatusDetails};
use schemas::KindInfo;

/// kube's MaxDisruptedPodSize: past this many unconfirmed evictions a budget refuses more.
const MAX_DISRUPTED_PODS: usize = 2000;
/// How many times a budget update is retried on conflicts (EvictionsRetry's steps).
const RETRIES: usize = 20;
const VIOLATES: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
const MANY_BUDGETS: &str = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.";

/// 429 with a `DisruptionBudget` cause, as `NewTooManyRequests` builds it.
fn too_many_requests(cause: String, retry_after: i32) -> ApiError {
    ApiError {
        code: 429,
        reason: "TooManyRequests",
        message: VIOLATES.into(),
        details: Some(Box::new(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some("DisruptionBudget".into()),
                message: Some(cause),
                field: None,
            }]),
            retry_after_seconds: (retry_after > 0).then_some(retry_after),
            ..Default::default()
        })),
    }
}

/// The 429 for a budget its controller has not caught up with.
fn still_processing(pdb: &str) -> ApiError {
    too_many_requests(
        format!("The disruption budget {pdb} is still being processed by the server."),
        10,
    )
}

/// 403 on the budget (`NewForbidden(policy.Resource("poddisruptionbudget"), ...)`).
fn forbidden(pdb: &str, why: &str) -> ApiError {
    ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!("poddisruptionbudget.policy {pdb:?} is forbidden: {why}"),
        details: Some(Box::new(StatusDetails {
            name: Some(pdb.into()),
            group: Some("policy".into()),
            kind: Some("poddisruptionbudget".into()),
            ..Default::default()
        })),
    }
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Pods whose eviction needs no budget (`canIgnorePDB`).
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending") || objects::is_deleting(pod)
}

/// Whether the delete must pin the pod's resourceVersion (`shouldEnforceResourceVersion`).
fn pin_version(pod: &Value) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !objects::is_deleting(pod)
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn status_int(pdb: &Value, field: &str) -> i64 {
    pdb.pointer(&format!("/status/{field}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Whether a budget's selector covers the pod: a missing or empty selector
/// covers nothing here (unlike in the disruption controller, as in kube).
fn covers(pdb: &Value, pod_labels: &std::collections::BTreeMap<String, String>) -> bool {
    let Some(sel) = pdb.pointer("/spec/selector") else {
        return false;
    };
    let Ok(sel) = serde_json::from_value::<
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    >(sel.clone()) else {
        return false;
    };
    use schemas::SelectorExt;
    !sel.is_empty() && sel.matches(pod_labels)
}

/// Takes one disruption from `pdb` for `pod` (`checkAndDecrement`): the
/// budget as it will be written, or the refusal.
pub fn take_disruption(pdb: &Value, pod: &str, now: &str) -> ApiResult<Value> {
    let name = objects::name(pdb);
    if status_int(pdb, "observedGeneration") < objects::generation(pdb) {
        return Err(still_processing(name));
    }
    let allowed = status_int(pdb, "disruptionsAllowed");
    if allowed < 0 {
        return Err(forbidden(name, "pdb disruptions allowed is negative"));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len);
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(forbidden(
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status_int(pdb, "desiredHealthy"),
                status_int(pdb, "currentHealthy")
            ),
            0,
        ));
    }
    let mut new = pdb.clone();
    let status = new
        .as_object_mut()
        .map(|m| m.entry("status").or_insert_with(|| json!({})));
    let Some(Value::Object(status)) = status else {
        return Err(ApiError::internal("the budget has no status"));
    };
    status.insert("disruptionsAllowed".into(), json!(allowed - 1));
    if allowed == 1 {
        // UpdateDisruptionAllowedCondition
        let generation = status.get("observedGeneration").cloned();
        let conditions = status.entry("conditions").or_insert_with(|| json!([]));
        if let Value::Array(list) = conditions {
            let existing = list.iter().position(|c| c["type"] == "DisruptionAllowed");
            let transition = match existing.map(|i| &list[i]) {
                Some(c) if c["status"] == "False" => c["lastTransitionTime"].clone(),
                _ => json!(now),
            };
            let cond = json!({"type": "DisruptionAllowed", "status": "False",
                "reason": "InsufficientPods", "message": "", "observedGeneration": generation,
                "lastTransitionTime": transition});
            match existing {
                Some(i) => list[i] = cond,
                None => list.push(cond),
            }
        }
    }
    let pods = status.entry("disruptedPods").or_insert_with(|| json!({}));
    if !pods.is_object() {
        *pods = json!({});
    }
    if let Value::Object(m) = pods {
        m.insert(pod.to_string(), json!(now));
    }
    Ok(new)
}

fn delete_options(req: &Req, body: &bytes::Bytes, name: &str) -> ApiResult<DeleteOptions> {
    let mut opts = DeleteOptions {
        dry_run: options::dry_run(&req.query),
        ..Default::default()
    };
    if body.is_empty() {
        return Ok(opts);
    }
    let ev = request::decode_object(body, &request::content_type(&req.headers))?;
    if let Some(n) = objects::meta_str(&ev, "name")
        && n != name
    {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    if let Some(d) = ev.get("deleteOptions").filter(|d| !d.is_null()) {
        let d: k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions =
            serde_json::from_value(d.clone()).map_err(|e| {
                ApiError::bad_request(format!("the Eviction body is not valid: {e}"))
            })?;
        opts.grace_period_seconds = d.grace_period_seconds;
        opts.propagation_policy = d.propagation_policy;
        if let Some(p) = d.preconditions {
            opts.precondition_uid = p.uid;
            opts.precondition_resource_version = p.resource_version;
        }
        if d.dry_run.is_some_and(|x| x.iter().any(|v| v == "All")) {
            opts.dry_run = true;
        }
    }
    Ok(opts)
}

/// Marks the pod with the `DisruptionTarget` condition, then deletes it
/// (`addConditionAndDeletePod`).
async fn mark_and_delete(
    req: &Req,
    info: &KindInfo,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<()> {
    let mut opts = opts.clone();
    if !opts.dry_run {
        let uid = opts.precondition_uid.clone();
        let now = schemas::time::now_text();
        let updated = req
            .app
            .registry
            .update_with(
                info,
                ns,
                name,
                Some("status"),
                &WriteOptions::default(),
                opts.precondition_resource_version.as_deref(),
                |old| {
                    if let Some(u) = uid.as_deref().filter(|u| !u.is_empty())
                        && u != objects::uid(old)
                    {
                        return Err(ApiError::conflict_because(
                            info,
                            name,
                            &format!(
                                "the UID in the precondition ({u}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                                objects::uid(old)
                            ),
                        ));
                    }
                    let mut new = old.clone();
                    set_disruption_target(&mut new, &now);
                    Ok(new)
                },
                |_, _| Ok(()),
            )
            .await?;
        if opts.precondition_resource_version.is_some() {
            // the condition bumped it: the delete expects the new one
            opts.precondition_resource_version =
                objects::meta_str(&updated, "resourceVersion").map(str::to_string);
        }
    }
    req.app.registry.delete(info, ns, name, &opts).await?;
    Ok(())
}

fn set_disruption_target(pod: &mut Value, now: &str) {
    // the transition time stays while the condition already holds
    let since = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|l| {
            l.iter()
                .find(|c| c["type"] == "DisruptionTarget" && c["status"] == "True")
        })
        .map_or_else(|| json!(now), |c| c["lastTransitionTime"].clone());
    let cond = json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
        "lastTransitionTime": since, "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting"});
    crate::http::subresources::set_pod_condition(pod, cond);
}

/// Serves `POST pods/NAME/eviction`.
pub async fn serve(req: &Req, body: bytes::Bytes) -> ApiResult<Response> {
    access::check(&req.id, "create", &req.target)?;
    options::check_write(&req.query, options::Write::Create)?;
    let info = req.target.info.clone();
    let info = &*info;
    let ns = req.target.namespace.as_deref();
    let name = req.target.name.as_deref().unwrap_or("");
    let mut opts = delete_options(req, &body, name)?;
    let rv_given = opts.precondition_resource_version.is_some();
    let success = || {
        json_response(
            StatusCode::CREATED,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    };

    let pod = req.app.registry.get(info, ns, name).await?;
    if can_ignore_budget(&pod) {
        if pin_version(&pod) && !rv_given {
            opts.precondition_resource_version =
                objects::meta_str(&pod, "resourceVersion").map(str::to_string);
        }
        mark_and_delete(req, info, ns, name, &opts).await?;
        return Ok(success());
    }

    let pdb_info = schemas::lookup("policy/v1", "PodDisruptionBudget")
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let labels = objects::labels(&pod);
    let budgets: Vec<Value> = req
        .app
        .registry
        .list(pdb_info, ns, &ListOptions::default())
        .await?
        .items
        .into_iter()
        .filter(|p| covers(p, &labels))
        .collect();
    if budgets.len() > 1 {
        return Err(ApiError {
            code: 500,
            reason: "",
            message: MANY_BUDGETS.into(),
            details: None,
        });
    }
    let mut pin = false;
    let mut budget_name = String::new();
    if let Some(pdb) = budgets.first() {
        budget_name = objects::name(pdb).to_string();
        let always_allow =
            pdb.pointer("/spec/unhealthyPodEvictionPolicy") == Some(&json!("AlwaysAllow"));
        let healthy_enough = status_int(pdb, "currentHealthy") >= status_int(pdb, "desiredHealthy")
            && status_int(pdb, "desiredHealthy") > 0;
        if !is_ready(&pod) && (always_allow || healthy_enough) {
            pin = true;
        } else {
            take(req, pdb_info, ns, &budget_name, name, opts.dry_run).await?;
        }
    }
    if pin && !rv_given {
        opts.precondition_resource_version =
            objects::meta_str(&pod, "resourceVersion").map(str::to_string);
    }
    match mark_and_delete(req, info, ns, name, &opts).await {
        Err(e) if e.code == 409 && pin && !rv_given => Err(still_processing(&budget_name)),
        Err(e) => Err(e),
        Ok(()) => Ok(success()),
    }
}

/// Takes a disruption from the budget `pdb` for `pod` (a dry run only checks).
async fn take(
    req: &Req,
    pdb_info: &KindInfo,
    ns: Option<&str>,
    pdb: &str,
    pod: &str,
    dry_run: bool,
) -> ApiResult<()> {
    let now = schemas::time::now_text();
    for _ in 0..RETRIES {
        let current = req.app.registry.get(pdb_info, ns, pdb).await?;
        let updated = take_disruption(&current, pod, &now)?;
        if dry_run {
            return Ok(());
        }
        let rv = objects::meta_str(&current, "resourceVersion").map(str::to_string);
        let written = req
            .app
            .registry
            .update_with(
                pdb_info,
                ns,
                pdb,
                Some("status"),
                &WriteOptions::default(),
                rv.as_deref(),
                |_| Ok(updated.clone()),
                |_, _| Ok(()),
            )
            .await;
        match written {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::timeout(format!(
        "couldn't update PodDisruptionBudget {pdb:?} due to conflicts"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(status: Value) -> Value {
        json!({"metadata": {"name": "web-pdb", "generation": 1}, "spec": {"minAvailable": 2,
            "selector": {"matchLabels": {"app": "web"}}}, "status": status})
    }

    #[test]
    fn a_budget_without_room_refuses_with_kubes_status() {
        let p = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": 0,
            "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2}));
        let e = take_disruption(&p, "web-1", "2026-01-01T00:00:00Z").unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(
            String::from_utf8(e.status().to_bytes()).expect("utf8"),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"Cannot evict pod as it would violate the pod's disruption budget.\",\"reason\":\"TooManyRequests\",\"details\":{\"causes\":[{\"reason\":\"DisruptionBudget\",\"message\":\"The disruption budget web-pdb needs 2 healthy pods and has 2 currently\"}]},\"code\":429}\n"
        );
    }

    #[test]
    fn a_budget_not_yet_observed_asks_to_retry() {
        let p = pdb(json!({"observedGeneration": 0, "disruptionsAllowed": 3}));
        let e = take_disruption(&p, "web-1", "t").unwrap_err();
        assert_eq!(e.code, 429);
        let details = e.details.expect("details");
        assert_eq!(details.retry_after_seconds, Some(10));
        assert_eq!(
            details.causes.expect("causes")[0].message.as_deref(),
            Some("The disruption budget web-pdb is still being processed by the server.")
        );
        let negative = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": -1}));
        let e = take_disruption(&negative, "p", "t").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                403,
                "poddisruptionbudget.policy \"web-pdb\" is forbidden: pdb disruptions allowed is negative"
            )
        );
    }

    #[test]
    fn a_disruption_is_taken_and_recorded() {
        let p = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": 1,
            "currentHealthy": 3, "desiredHealthy": 2,
            "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
                            "message": "", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}));
        let new = take_disruption(&p, "web-1", "2026-01-01T00:00:00Z").expect("taken");
        assert_eq!(new["status"]["disruptionsAllowed"], 0);
        assert_eq!(
            new["status"]["disruptedPods"]["web-1"],
            "2026-01-01T00:00:00Z"
        );
        let c = &new["status"]["conditions"][0];
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some("False"), Some("InsufficientPods"))
        );
        assert_eq!(c["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn which_pods_skip_the_budget() {
        let pod = |phase: &str, deleting: bool| {
            let mut p = json!({"metadata": {"name": "p"}, "status": {"phase": phase}});
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            p
        };
        assert!(can_ignore_budget(&pod("Pending", false)));
        assert!(can_ignore_budget(&pod("Succeeded", false)));
        assert!(can_ignore_budget(&pod("Running", true)));
        assert!(!can_ignore_budget(&pod("Running", false)));
        assert!(pin_version(&pod("Pending", false)));
        assert!(!pin_version(&pod("Failed", false)));
        let labels: std::collections::BTreeMap<String, String> =
            [("app".to_string(), "web".to_string())].into();
        assert!(covers(&pdb(json!({})), &labels));
        assert!(!covers(&json!({"spec": {"selector": {}}}), &labels));
    }
}
