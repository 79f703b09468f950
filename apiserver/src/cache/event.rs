//! One change as the cache keeps it, with its wire forms encoded once, on
//! first use, and shared by every watcher: the JSON line
//! (`{"type":...,"object":...}`) and the protobuf frame, per event type.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::Value;

use crate::store::{EventType, Revision};

use super::object::CachedObject;

/// The type of a watch event as a watcher sees it (a change can be
/// `DELETED` for a watcher whose selector the object left).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `ADDED`.
    Added,
    /// `MODIFIED`.
    Modified,
    /// `DELETED`.
    Deleted,
}

impl Kind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Added => "ADDED",
            Kind::Modified => "MODIFIED",
            Kind::Deleted => "DELETED",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A change to one key.
#[derive(Debug)]
pub struct CachedEvent {
    /// The revision of the change.
    pub revision: Revision,
    /// What the store reported.
    pub kind: EventType,
    /// The object after the change (`None` for a delete).
    pub object: Option<Arc<CachedObject>>,
    /// The object before the change (`None` for a create).
    pub prev: Option<Arc<CachedObject>>,
    /// For a delete: the last state with `resourceVersion` = the deletion's revision.
    pub deleted: Option<Bytes>,
    json: [OnceLock<Bytes>; 3],
    protobuf: [OnceLock<Option<Bytes>>; 3],
}

impl CachedEvent {
    /// A change; `deleted` is the deleted object's JSON at the deletion revision.
    pub fn new(
        revision: Revision,
        kind: EventType,
        object: Option<Arc<CachedObject>>,
        prev: Option<Arc<CachedObject>>,
        deleted: Option<Bytes>,
    ) -> Self {
        CachedEvent {
            revision,
            kind,
            object,
            prev,
            deleted,
            json: Default::default(),
            protobuf: Default::default(),
        }
    }

    /// The key changed.
    pub fn key(&self) -> &str {
        self.object
            .as_ref()
            .or(self.prev.as_ref())
            .map_or("", |o| &o.key)
    }

    /// The JSON object a watcher gets with `kind`: the deleted state for a
    /// delete, else the object after the change.
    pub fn object_bytes(&self, kind: Kind) -> &Bytes {
        static EMPTY: Bytes = Bytes::from_static(b"{}");
        match (kind, &self.deleted, &self.object) {
            (Kind::Deleted, Some(d), _) => d,
            (_, _, Some(o)) => &o.bytes,
            (_, Some(d), None) => d,
            (_, None, None) => &EMPTY,
        }
    }

    /// The event's JSON line for `kind`, encoded once.
    pub fn json_line(&self, kind: Kind) -> Bytes {
        self.json[kind.index()]
            .get_or_init(|| json_line(kind.as_str(), self.object_bytes(kind)))
            .clone()
    }

    /// The event's protobuf WatchEvent frame for `kind`, encoded once;
    /// `None` when the object has no protobuf form.
    pub fn protobuf_frame(&self, kind: Kind) -> Option<Bytes> {
        self.protobuf[kind.index()]
            .get_or_init(|| {
                use crate::protobuf::responses;
                let v: Value = serde_json::from_slice(self.object_bytes(kind)).ok()?;
                match responses::watch_object(kind.as_str(), &v) {
                    Ok(object) => Some(Bytes::from(responses::watch_frame(kind.as_str(), &object))),
                    Err(e) => {
                        tracing::warn!(error = %e, "a watch event has no protobuf form");
                        None
                    }
                }
            })
            .clone()
    }
}

/// A watch event's JSON line around an object's JSON, as
/// `status::encode(&json!({"type": .., "object": ..}))` writes it.
pub fn json_line(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + kind.len() + 24);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_are_what_the_per_watcher_encoder_writes() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a<b>", "resourceVersion": "5"}, "data": {"x": "&"}});
        let mut bytes = crate::status::encode(&obj);
        bytes.pop();
        let line = json_line("ADDED", &bytes);
        assert_eq!(
            &line[..],
            &crate::status::encode(&json!({"type": "ADDED", "object": obj}))[..]
        );
    }
}
