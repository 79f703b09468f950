//! One cached object: its served JSON (resourceVersion spliced in, encoded
//! once and shared) plus only what selectors need (labels and the kind's
//! selectable field values), and how selectors match it.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use schemas::KindInfo;

use crate::errors::{ApiError, ApiResult};
use crate::objects;
use crate::selectors::{self, Selectors};
use crate::store::{KeyValue, Revision};

/// An object as the cache keeps it.
#[derive(Debug)]
pub struct CachedObject {
    /// The store key (`pods/default/web`).
    pub key: Arc<str>,
    /// The JSON as served at the storage version, `metadata.resourceVersion` included.
    pub bytes: Bytes,
    /// The revision of the object's last write.
    pub mod_revision: Revision,
    /// Labels, sorted by key.
    labels: Box<[(Box<str>, Box<str>)]>,
    /// Values of the resource's selectable fields (see [`FieldNames`]), in order.
    fields: Box<[Box<str>]>,
}

/// The fields whose values cached objects keep: `metadata.name`,
/// `metadata.namespace` and the kind's selectable fields.
pub type FieldNames = Arc<[String]>;

/// The field names kept for a kind.
pub fn field_names(info: &KindInfo) -> FieldNames {
    let mut names = vec![
        "metadata.name".to_string(),
        "metadata.namespace".to_string(),
    ];
    names.extend(selectors::selectable_fields(info));
    names.into()
}

impl CachedObject {
    /// Builds the cached form of a stored key-value: the stored bytes with
    /// `resourceVersion` spliced in, and labels and fields read once.
    pub fn from_kv(kv: &KeyValue, fields: &FieldNames) -> ApiResult<CachedObject> {
        let bytes = objects::with_resource_version(kv)?;
        Self::from_bytes(kv.key.as_str().into(), bytes, kv.mod_revision, fields)
    }

    /// Builds the cached form of served JSON bytes.
    pub fn from_bytes(
        key: Arc<str>,
        bytes: Vec<u8>,
        mod_revision: Revision,
        fields: &FieldNames,
    ) -> ApiResult<CachedObject> {
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::internal(format!("stored object {key} is not JSON: {e}")))?;
        let mut labels: Vec<(Box<str>, Box<str>)> = v
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.as_str().into(), s.into())))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        let fields = fields
            .iter()
            .map(|f| selectors::field_value(&v, f).into_boxed_str())
            .collect();
        Ok(CachedObject {
            key,
            bytes: Bytes::from(bytes),
            mod_revision,
            labels: labels.into_boxed_slice(),
            fields,
        })
    }

    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.labels[i].1)
    }

    /// The value of the field at `index` in the cache's [`FieldNames`].
    pub fn field(&self, index: usize) -> Option<&str> {
        self.fields.get(index).map(|v| &**v)
    }

    /// Whether the object matches the selectors as a client of `info` sees
    /// it. Kinds served as stored match on the kept labels and fields; others
    /// (converted or defaulted on read) and fields not kept are decoded.
    pub fn matches(&self, info: &KindInfo, sel: &Selectors, names: &FieldNames) -> bool {
        if sel.labels.is_empty() && sel.fields.is_empty() {
            return true;
        }
        if objects::served_as_stored(info) {
            let labels_ok = sel.labels.is_empty() || sel.labels.matches_by(|k| self.label(k));
            if !labels_ok {
                return false;
            }
            if sel.fields.is_empty() {
                return true;
            }
            let by_name = |f: &str| {
                names
                    .iter()
                    .position(|n| n == f)
                    .and_then(|i| self.fields.get(i))
                    .map(|v| &**v)
            };
            if let Some(m) = sel.fields.matches_by(by_name) {
                return m;
            }
        }
        self.served(info).is_ok_and(|v| sel.matches(&v))
    }

    /// The object decoded as `info`'s version serves it.
    pub fn served(&self, info: &KindInfo) -> ApiResult<Value> {
        let v: Value = serde_json::from_slice(&self.bytes)
            .map_err(|e| ApiError::internal(format!("cached object is not JSON: {e}")))?;
        objects::as_served(info, v)
    }

    /// Bytes this object takes in memory, by its allocations (an estimate
    /// that counts what the cache holds: JSON, key, labels, fields, headers).
    pub fn footprint(&self) -> usize {
        const ALLOC: usize = 16; // allocator bookkeeping per allocation, rounded
        let strs = |s: &str| if s.is_empty() { 0 } else { s.len() + ALLOC };
        let labels: usize = self
            .labels
            .iter()
            .map(|(k, v)| 32 + strs(k) + strs(v))
            .sum();
        let fields: usize = self.fields.iter().map(|f| 16 + strs(f)).sum();
        16 + std::mem::size_of::<CachedObject>() + ALLOC // the Arc
            + self.bytes.len() + ALLOC
            + 16 + self.key.len() + ALLOC // the key's Arc<str>
            + labels + ALLOC
            + fields + ALLOC
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selectors::{FieldSelector, LabelSelector};
    use serde_json::json;

    fn pod_kv(labels: Value, node: &str) -> KeyValue {
        let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "labels": labels},
            "spec": {"nodeName": node}, "status": {"phase": "Running"}});
        KeyValue {
            key: "pods/default/p".into(),
            value: objects::encode(&obj).expect("encode"),
            create_revision: 3,
            mod_revision: 7,
            version: 1,
        }
    }

    #[test]
    fn kept_labels_and_fields_match_as_the_decoded_object_does() {
        let pod = schemas::lookup("v1", "Pod").expect("pod");
        let names = field_names(pod);
        let kv = pod_kv(json!({"app": "web", "tier": "1"}), "n1");
        let cached = CachedObject::from_kv(&kv, &names).expect("cache");
        let decoded = objects::decode(&kv).expect("decode");
        assert_eq!(cached.mod_revision, 7);
        assert_eq!(cached.label("app"), Some("web"));
        assert_eq!(cached.label("nope"), None);
        for (labels, fields) in [
            ("app=web", ""),
            ("app!=web", ""),
            ("tier>0,app in (web,db)", "spec.nodeName=n1"),
            ("", "spec.nodeName=n2"),
            ("", "status.phase!=Running"),
            ("!app", "metadata.name=p,metadata.namespace=default"),
            ("", "spec.hostNetwork=false"),
        ] {
            let sel = Selectors {
                labels: LabelSelector::parse(labels).expect("labels"),
                fields: FieldSelector::parse(fields, pod).expect("fields"),
            };
            assert_eq!(
                cached.matches(pod, &sel, &names),
                sel.matches(&decoded),
                "{labels} / {fields}"
            );
        }
        let served: Value = serde_json::from_slice(&cached.bytes).expect("json");
        assert_eq!(served, decoded);
        assert!(cached.footprint() > cached.bytes.len());
    }
}
