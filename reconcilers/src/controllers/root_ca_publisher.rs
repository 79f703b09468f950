//! The root CA publisher, after kube-controller-manager's: every active
//! namespace has a `kube-root-ca.crt` ConfigMap holding the cluster CA under
//! `ca.crt` (what the `kube-api-access` volume of every pod projects) —
//! created with the namespace, re-created if deleted, reset if edited.
//! The CA is the one the controllers trust the API server by.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controllers::Context;
use crate::runtime::{Action, Cache, ClientError, Controller, ObjectRef, Patch, WriteParams};

/// The ConfigMap's name.
pub const NAME: &str = "kube-root-ca.crt";
/// Its key.
pub const KEY: &str = "ca.crt";
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
const MANAGER: &str = "root-ca-cert-publisher";

struct State {
    ctx: Context,
    ca: String,
    namespaces: Cache<Namespace>,
    maps: Cache<ConfigMap>,
}

/// Runs the controller until shutdown (idle, with a warning, when the
/// controllers' kubeconfig names no CA).
pub async fn run(ctx: Context) {
    let Some(ca) = ctx.client.ca_pem().map(str::to_string) else {
        tracing::warn!(
            "the controllers' kubeconfig has no certificate-authority: no kube-root-ca.crt is published"
        );
        ctx.stopped().await;
        return;
    };
    let namespaces = ctx.informers.get::<Namespace>();
    // only the published ConfigMaps, not every ConfigMap of the cluster
    let maps = ctx
        .informers
        .selected::<ConfigMap>(&format!("metadata.name={NAME}"));
    let controller = Controller::new("root-ca-cert-publisher", &namespaces)
        .watches(&maps, |cm: &ConfigMap| match &cm.metadata.namespace {
            Some(ns) => vec![ObjectRef::new(None, ns)],
            None => Vec::new(),
        })
        .workers(2);
    let state = Arc::new(State {
        ctx: ctx.clone(),
        ca,
        namespaces: namespaces.cache(),
        maps: maps.cache(),
    });
    let shutdown = ctx.stopped();
    controller
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
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let api = state.ctx.client.api::<ConfigMap>(Some(&key.name));
    let wanted = ObjectRef::new(Some(&key.name), NAME);
    let result = match state.maps.get(&wanted) {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(NAME.into()),
                    namespace: Some(key.name.clone()),
                    annotations: Some(BTreeMap::from([(
                        DESCRIPTION_ANNOTATION.to_string(),
                        DESCRIPTION.to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(KEY.to_string(), state.ca.clone())])),
                ..Default::default()
            };
            api.create(&cm, &manager()).await.map(|_| ())
        }
        Some(cm) if !current(&cm, &state.ca) => {
            let patch = serde_json::json!({
                "metadata": {"annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                "data": {KEY: state.ca},
            });
            api.patch(NAME, &Patch::Merge(patch), &manager())
                .await
                .map(|_| ())
        }
        Some(_) => Ok(()),
    };
    match result {
        Ok(()) => Ok(Action::AwaitChange),
        // created meanwhile, or the namespace began terminating
        Err(e) if e.is_already_exists() || e.code() == 403 => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}

fn manager() -> WriteParams {
    WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// Whether the ConfigMap holds the CA and its description.
fn current(cm: &ConfigMap, ca: &str) -> bool {
    let data_ok = cm
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .is_some_and(|v| v == ca);
    let described = cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .is_some_and(|v| v == DESCRIPTION);
    data_ok && described
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_or_partial_map_is_not_current() {
        let mut cm = ConfigMap {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    DESCRIPTION_ANNOTATION.to_string(),
                    DESCRIPTION.to_string(),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(KEY.to_string(), "CA".to_string())])),
            ..Default::default()
        };
        assert!(current(&cm, "CA"));
        assert!(!current(&cm, "OTHER"));
        cm.metadata.annotations = None;
        assert!(!current(&cm, "CA"));
    }
}
