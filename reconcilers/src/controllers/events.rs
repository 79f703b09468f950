//! Recording core/v1 Events about objects, the way Kubernetes' controllers
//! do, so `kubectl describe` and `kubectl get events` show what happened.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemas::MetaExt;
use schemas::Object;

use crate::runtime::{Client, WriteParams};

/// Records an event about `obj` (`type_` is `Normal` or `Warning`); failures are logged, not returned.
pub async fn record_event<K: Object>(
    client: &Client,
    obj: &K,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let m = obj.metadata();
    let ns = m
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let now = schemas::time::now();
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                m.name_str(),
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
            )),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(K::API_VERSION.into()),
            kind: Some(K::KIND.into()),
            namespace: m.namespace.clone(),
            name: Some(m.name_str().to_string()),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            field_path: None,
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        type_: Some(type_.into()),
        reporting_component: Some(component.into()),
        reporting_instance: Some(component.into()),
        ..Default::default()
    };
    if let Err(e) = client
        .api::<Event>(Some(&ns))
        .create(&ev, &WriteParams::default())
        .await
    {
        tracing::debug!(reason, error = %e, "cannot record event");
    }
}
