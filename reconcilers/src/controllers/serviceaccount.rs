//! The ServiceAccount controller, after kube-controller-manager's: every
//! active namespace has a `default` ServiceAccount — created with the
//! namespace, and again if it is deleted.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controllers::Context;
use crate::runtime::{Action, Cache, ClientError, Controller, ObjectRef, WriteParams};

/// The ServiceAccount every namespace gets.
pub const DEFAULT: &str = "default";

struct State {
    ctx: Context,
    namespaces: Cache<Namespace>,
    accounts: Cache<ServiceAccount>,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let namespaces = ctx.informers.get::<Namespace>();
    let accounts = ctx.informers.get::<ServiceAccount>();
    let controller = Controller::new("serviceaccount", &namespaces)
        .watches(&accounts, |sa: &ServiceAccount| {
            match (&sa.metadata.namespace, sa.metadata.name.as_deref()) {
                (Some(ns), Some(DEFAULT)) => vec![ObjectRef::new(None, ns)],
                _ => Vec::new(),
            }
        })
        .workers(2);
    let state = Arc::new(State {
        ctx: ctx.clone(),
        namespaces: namespaces.cache(),
        accounts: accounts.cache(),
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
    // a terminating namespace refuses new content
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let wanted = ObjectRef::new(Some(&key.name), DEFAULT);
    if state.accounts.get(&wanted).is_some() {
        return Ok(Action::AwaitChange);
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: Some(key.name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let api = state.ctx.client.api::<ServiceAccount>(Some(&key.name));
    match api.create(&sa, &WriteParams::default()).await {
        Ok(_) => {
            tracing::info!(namespace = %key.name, "created the default ServiceAccount");
            Ok(Action::AwaitChange)
        }
        // created meanwhile, or the namespace began terminating
        Err(e) if e.is_already_exists() || e.code() == 403 => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}
