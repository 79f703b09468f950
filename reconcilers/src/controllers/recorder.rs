//! An Event recorder as client-go's (`record.EventRecorder`): core/v1 Events about an object, named
//! `<object>.<hex nanos>`, with the component as `source` and
//! `reportingComponent`, and repeats of the same event (same object, type,
//! reason and message) folded into one Event whose `count` and
//! `lastTimestamp` grow — which is how `kubectl describe` shows
//! `(x3 over 20s)`. Writes happen in the background and never block the caller.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::json;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemas::Object;

use crate::runtime::{Client, Patch, WriteParams};

/// `Normal` event type.
pub const NORMAL: &str = "Normal";
/// `Warning` event type.
pub const WARNING: &str = "Warning";

/// How many distinct events the recorder remembers for folding repeats
/// (client-go's LRU holds 4096).
const REMEMBERED: usize = 4096;

/// What identifies a repeat.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    uid: String,
    name: String,
    type_: String,
    reason: String,
    message: String,
}

#[derive(Clone, Debug)]
struct Seen {
    event_name: String,
    count: i32,
}

#[derive(Default)]
struct Memory {
    seen: HashMap<Key, Seen>,
    order: VecDeque<Key>,
}

impl Memory {
    fn remember(&mut self, key: Key, seen: Seen) {
        if self.seen.insert(key.clone(), seen).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }
}

/// Records Events on behalf of one component (cheap to clone).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: Arc<str>,
    instance: Arc<str>,
    memory: Arc<Mutex<Memory>>,
}

/// The reference to `obj` an Event's `involvedObject` holds.
pub fn reference<K: Object>(obj: &K) -> ObjectReference {
    let m = obj.metadata();
    ObjectReference {
        api_version: Some(K::API_VERSION.to_string()),
        kind: Some(K::KIND.to_string()),
        namespace: m.namespace.clone().filter(|_| K::NAMESPACED),
        name: m.name.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        field_path: None,
    }
}

impl Recorder {
    /// A recorder for `component` (e.g. `default-scheduler`), running as `instance`.
    pub fn new(client: Client, component: &str, instance: &str) -> Self {
        Recorder {
            client,
            component: component.into(),
            instance: instance.into(),
            memory: Arc::new(Mutex::new(Memory::default())),
        }
    }

    /// The Event that would be written first for this occurrence.
    pub fn build(
        &self,
        regarding: ObjectReference,
        type_: &str,
        reason: &str,
        action: &str,
        message: &str,
    ) -> Event {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or_default();
        let base = regarding.name.clone().unwrap_or_default();
        // events of cluster-scoped objects live in `default`, as in Kubernetes
        let namespace = regarding
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{base}.{nanos:x}")),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: regarding,
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            source: Some(EventSource {
                component: Some(self.component.to_string()),
                host: None,
            }),
            first_timestamp: Some(schemas::time::from_utc(now)),
            last_timestamp: Some(schemas::time::from_utc(now)),
            count: Some(1),
            type_: Some(type_.to_string()),
            event_time: None,
            series: None,
            action: Some(action.to_string()).filter(|a| !a.is_empty()),
            related: None,
            reporting_component: Some(self.component.to_string()),
            reporting_instance: Some(self.instance.to_string()),
        }
    }

    /// Records an event about `obj` in the background.
    pub fn record<K: Object>(
        &self,
        obj: &K,
        type_: &str,
        reason: &str,
        action: &str,
        message: &str,
    ) {
        self.record_about(reference(obj), type_, reason, action, message);
    }

    /// Records an event about the object `regarding` in the background.
    pub fn record_about(
        &self,
        regarding: ObjectReference,
        type_: &str,
        reason: &str,
        action: &str,
        message: &str,
    ) {
        let key = Key {
            namespace: regarding.namespace.clone().unwrap_or_default(),
            uid: regarding.uid.clone().unwrap_or_default(),
            name: regarding.name.clone().unwrap_or_default(),
            type_: type_.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
        };
        let event = self.build(regarding, type_, reason, action, message);
        let previous = self
            .memory
            .lock()
            .ok()
            .and_then(|m| m.seen.get(&key).cloned());
        let this = self.clone();
        tokio::spawn(async move { this.write(key, event, previous).await });
    }

    async fn write(&self, key: Key, event: Event, previous: Option<Seen>) {
        let ns = event.metadata.namespace.clone().unwrap_or_default();
        let api = self.client.api::<Event>(Some(&ns));
        if let Some(prev) = previous {
            let count = prev.count + 1;
            let patch = Patch::Merge(json!({
                "count": count,
                "lastTimestamp": event.last_timestamp,
                "message": event.message,
            }));
            match api
                .patch(&prev.event_name, &patch, &WriteParams::default())
                .await
            {
                Ok(_) => {
                    if let Ok(mut m) = self.memory.lock() {
                        m.remember(
                            key,
                            Seen {
                                event_name: prev.event_name,
                                count,
                            },
                        );
                    }
                    return;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::debug!(error = %e, "cannot update event");
                    return;
                }
            }
        }
        let name = event.metadata.name.clone().unwrap_or_default();
        match api.create(&event, &WriteParams::default()).await {
            Ok(_) => {
                if let Ok(mut m) = self.memory.lock() {
                    m.remember(
                        key,
                        Seen {
                            event_name: name,
                            count: 1,
                        },
                    );
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot write event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn client() -> Client {
        let kc = crate::runtime::kubeconfig::KubeConfig {
            server: "https://127.0.0.1:1".into(),
            ca_pem: None,
            token: None,
            identity_pem: None,
            namespace: "default".into(),
            insecure: true,
        };
        Client::new(&kc, "test").expect("client")
    }

    #[test]
    fn events_look_like_client_go_ones() {
        let r = Recorder::new(client(), "default-scheduler", "default-scheduler-host");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"namespace": "web", "name": "p1", "uid": "u1"}
        }))
        .expect("pod");
        let e = r.build(
            reference(&pod),
            NORMAL,
            "Scheduled",
            "Binding",
            "Successfully assigned web/p1 to n1",
        );
        let name = e.metadata.name.clone().unwrap_or_default();
        assert!(name.starts_with("p1."), "{name}");
        assert_eq!(e.metadata.namespace.as_deref(), Some("web"));
        assert_eq!(e.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(e.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(
            e.source.and_then(|s| s.component).as_deref(),
            Some("default-scheduler")
        );
        assert_eq!(e.count, Some(1));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
    }

    #[test]
    fn memory_is_bounded() {
        let mut m = Memory::default();
        for i in 0..(REMEMBERED + 10) {
            let k = Key {
                namespace: "a".into(),
                uid: i.to_string(),
                name: "x".into(),
                type_: "Normal".into(),
                reason: "R".into(),
                message: "M".into(),
            };
            m.remember(
                k,
                Seen {
                    event_name: "e".into(),
                    count: 1,
                },
            );
        }
        assert_eq!(m.seen.len(), REMEMBERED);
        assert_eq!(m.order.len(), REMEMBERED);
    }
}
