//! The namespace controller: a namespace being deleted (phase Terminating)
//! has everything in it deleted, custom resources included; once it is empty, its `kubernetes`
//! finalizer is removed through the `finalize` subresource and the API
//! server removes the namespace.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use k8s_openapi::api::core::v1::Namespace;
use schemas::MetaExt;

use crate::controllers::Context;
use crate::runtime::{Action, Cache, ClientError, Controller, DeleteParams, ObjectRef};

struct State {
    ctx: Context,
    namespaces: Cache<Namespace>,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let informer = ctx.informers.get::<Namespace>();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        namespaces: informer.cache(),
    });
    let shutdown = ctx.stopped();
    Controller::new("namespace", &informer)
        .workers(2)
        .run(
            move |key| reconcile(state.clone(), key),
            ctx.metrics.clone(),
            shutdown,
        )
        .await;
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(ns) = state.namespaces.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::AwaitChange);
    }
    let name = ns.metadata.name_str().to_string();
    let mut remaining = 0usize;
    // each stored kind once (Events and HPAs are also served at a second
    // version), custom resources included
    let mut kinds: Vec<std::sync::Arc<schemas::KindInfo>> = schemas::builtin_kinds()
        .iter()
        .filter(|k| k.api_version == k.storage_version)
        .cloned()
        .collect();
    kinds.extend(crate::controllers::custom_kinds::stored(&state.ctx.client).await?);
    for info in kinds.iter().filter(|k| k.namespaced) {
        let api = state.ctx.client.dynamic(info, Some(&name));
        for obj in api.list_all().await? {
            remaining += 1;
            if obj.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let obj_name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let dp = DeleteParams {
                propagation_policy: Some("Background".into()),
                ..Default::default()
            };
            match api.delete(&obj_name, &dp).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    if remaining > 0 {
        tracing::debug!(namespace = %name, remaining, "waiting for the namespace's content to go");
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let finalizers: Vec<String> = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if finalizers.iter().any(|f| f == "kubernetes") {
        let mut body =
            serde_json::to_value(ns.as_ref()).map_err(|e| ClientError::Decode(e.to_string()))?;
        body["spec"] = json!({"finalizers": finalizers.iter().filter(|f| *f != "kubernetes").collect::<Vec<_>>()});
        let info =
            schemas::lookup("v1", "Namespace").map_err(|e| ClientError::Config(e.to_string()))?;
        match state
            .ctx
            .client
            .dynamic(info, None)
            .replace_subresource(&name, "finalize", &body)
            .await
        {
            Ok(_) => tracing::info!(namespace = %name, "namespace emptied and finalized"),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Action::AwaitChange)
}
