//! `metadata.managedFields` bookkeeping: decoding and encoding the entries,
//! which fields are never tracked, and recording ordinary writes (create,
//! update, patch: operation `Update`) the way Kubernetes' field manager does.

use serde_json::{Map, Value};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemas::{KindInfo, TimeExt};

use super::fieldset::{FieldSet, PathElement};
use super::merge_keys::{Type, root_type};
use super::typed::{Comparison, compare};

/// The manager Kubernetes assigns the fields of an object that had no
/// managedFields when it is first applied to.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// One manager's entry, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The manager's name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion the fields were written at.
    pub api_version: String,
    /// When the manager last changed the object (RFC 3339).
    pub time: Option<String>,
    /// The subresource written through, if any.
    pub subresource: Option<String>,
    /// The fields owned.
    pub fields: FieldSet,
}

impl Entry {
    /// Whether this is the entry of `manager` for `operation`: Kubernetes
    /// keeps one entry per manager, operation, subresource and (for
    /// updates) apiVersion.
    pub fn is(
        &self,
        manager: &str,
        operation: &str,
        api_version: &str,
        subresource: Option<&str>,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
            && (operation == "Apply" || self.api_version == api_version)
    }

    fn encode(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), self.manager.clone().into());
        m.insert("operation".into(), self.operation.clone().into());
        m.insert("apiVersion".into(), self.api_version.clone().into());
        if let Some(t) = &self.time {
            m.insert("time".into(), t.clone().into());
        }
        m.insert("fieldsType".into(), "FieldsV1".into());
        m.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), s.clone().into());
        }
        Value::Object(m)
    }
}

fn decode_entry(v: &Value) -> Result<Entry, String> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(t) = s("fieldsType")
        && t != "FieldsV1"
    {
        return Err(format!("unsupported fieldsType {t:?}"));
    }
    Ok(Entry {
        manager: s("manager").unwrap_or_default(),
        operation: s("operation").ok_or("a managedFields entry needs an operation")?,
        api_version: s("apiVersion").unwrap_or_default(),
        time: s("time"),
        subresource: s("subresource").filter(|s| !s.is_empty()),
        fields: match v.get("fieldsV1") {
            Some(f) => FieldSet::from_fields_v1(f)?,
            None => FieldSet::new(),
        },
    })
}

/// The entries of an object's `metadata.managedFields`; like Kubernetes, an
/// undecodable list counts as none.
pub fn decode(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .map_or_else(Vec::new, decode_list)
}

/// The entries of a `managedFields` list (none when any is malformed).
fn decode_list(list: &Value) -> Vec<Entry> {
    match list {
        Value::Array(items) => items
            .iter()
            .map(decode_entry)
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Writes `entries` into `obj.metadata.managedFields` in Kubernetes' order
/// (operation, time, manager, apiVersion, subresource), dropping empty ones;
/// no entries removes the field.
pub fn encode_into(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::encode).collect()),
        );
    }
}

/// A copy of `obj` without `metadata.managedFields`.
pub fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
    out
}

fn set_of(paths: &[&[&str]]) -> FieldSet {
    let mut s = FieldSet::new();
    for p in paths {
        let path: Vec<PathElement> = p.iter().map(|f| PathElement::field(*f)).collect();
        s.insert(&path);
    }
    s
}

/// Fields set by the server or identifying the object, never owned by a
/// manager (Kubernetes' `stripMetaManager`).
pub fn server_fields() -> FieldSet {
    set_of(&[
        &["apiVersion"],
        &["kind"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ])
}

/// The fields a manager may own through this endpoint: not the server's,
/// not `metadata` itself, and not the part another endpoint owns (`status`
/// on a kind with a status subresource; `spec` through `status`).
pub fn tracked(set: &FieldSet, kind: &KindInfo, subresource: Option<&str>) -> FieldSet {
    let mut ignored = server_fields();
    match subresource {
        Some("status") => ignored = ignored.union(&set_of(&[&["spec"]])),
        None if kind.has_status_subresource() => ignored = ignored.union(&set_of(&[&["status"]])),
        _ => {}
    }
    set.without_prefixes(&ignored)
        .difference(&set_of(&[&["metadata"]]))
}

/// Compares two versions, keeping only the tracked fields.
pub fn tracked_changes(
    old: &Value,
    new: &Value,
    ty: Type,
    kind: &KindInfo,
    subresource: Option<&str>,
) -> Comparison {
    compare(old, new, ty).filter(|s| tracked(s, kind, subresource))
}

/// Whether a request's managedFields ask for a reset (`[]` or `[{}]`).
fn is_reset(v: &Value) -> bool {
    match v {
        Value::Array(items) => {
            items.is_empty()
                || (items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty))
        }
        _ => false,
    }
}

/// Records a create, update or patch by `manager` (operation `Update`):
/// fields added or changed become the manager's and leave every other
/// manager, removed fields leave every manager, emptied entries are dropped
/// and the manager's `time` is refreshed. Returns `new` with
/// `metadata.managedFields` set.
///
/// As in Kubernetes, managedFields sent in the request replace the stored
/// ones (a main-resource write only), `[]` or `[{}]` clears them, and an
/// existing object without managedFields stays untracked until applied to.
pub fn update_managed_fields(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: Option<&str>,
    kind: &KindInfo,
    api_version: &str,
    now: Time,
) -> Value {
    update_managed_fields_of(
        old,
        new.clone(),
        manager,
        subresource,
        kind,
        api_version,
        now,
    )
}

/// [`update_managed_fields`] taking the new object by value: no copy of it
/// (the write path's way).
pub fn update_managed_fields_of(
    old: Option<&Value>,
    new: Value,
    manager: &str,
    subresource: Option<&str>,
    kind: &KindInfo,
    api_version: &str,
    now: Time,
) -> Value {
    let mut out = new;
    let requested = out
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.shift_remove("managedFields"));
    let mut entries = match (subresource, &requested) {
        (None, Some(r)) if is_reset(r) => Vec::new(),
        (None, Some(r)) => {
            let given = decode_list(r);
            if given.is_empty() {
                old.map(decode).unwrap_or_default()
            } else {
                given
            }
        }
        _ => old.map(decode).unwrap_or_default(),
    };
    if entries.is_empty() && old.is_some() {
        return out;
    }
    let (ty, _) = root_type(kind);
    let old_obj = old.map_or_else(|| Value::Object(Map::new()), without_managed_fields);
    let changes = tracked_changes(&old_obj, &out, ty, kind, subresource);
    record_update(
        &mut entries,
        &changes,
        manager,
        subresource,
        api_version,
        now,
    );
    cap_update_managers(&mut entries);
    encode_into(&mut out, entries);
    out
}

/// Kubernetes keeps at most this many `Update` entries; older ones are
/// folded into [`ANCIENT_CHANGES`].
pub const MAX_UPDATE_MANAGERS: usize = 10;
/// The entry the oldest updaters' fields are folded into.
pub const ANCIENT_CHANGES: &str = "ancient-changes";

/// Folds the oldest `Update` entries into `ancient-changes` until at most
/// [`MAX_UPDATE_MANAGERS`] remain (Kubernetes' `capManagersManager`).
pub fn cap_update_managers(entries: &mut Vec<Entry>) {
    loop {
        let updaters = entries.iter().filter(|e| e.operation == "Update").count();
        if updaters <= MAX_UPDATE_MANAGERS {
            return;
        }
        let Some(oldest) = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.operation == "Update" && e.manager != ANCIENT_CHANGES)
            .min_by(|(_, a), (_, b)| a.time.cmp(&b.time))
            .map(|(i, _)| i)
        else {
            return;
        };
        let old = entries.remove(oldest);
        match entries
            .iter_mut()
            .find(|e| e.is(ANCIENT_CHANGES, "Update", &old.api_version, None))
        {
            Some(bucket) => {
                bucket.fields = bucket.fields.union(&old.fields);
                bucket.time = bucket.time.clone().max(old.time);
            }
            None => entries.push(Entry {
                manager: ANCIENT_CHANGES.into(),
                subresource: None,
                ..old
            }),
        }
    }
}

/// Moves ownership for an `Update` by `manager` with these changes.
pub fn record_update(
    entries: &mut Vec<Entry>,
    changes: &Comparison,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    now: Time,
) {
    let changed = changes.changed();
    for e in entries.iter_mut() {
        e.fields = e.fields.difference(&changed).difference(&changes.removed);
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.is(manager, "Update", api_version, subresource))
        {
            Some(e) => {
                e.fields = e.fields.union(&changed);
                e.time = Some(now.text());
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: Some(now.text()),
                subresource: subresource.map(str::to_string),
                fields: changed,
            }),
        }
    }
    entries.retain(|e| !e.fields.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(api_version: &str, kind: &str) -> &'static KindInfo {
        schemas::lookup(api_version, kind).expect("served kind")
    }

    fn t(s: &str) -> Time {
        serde_json::from_value(json!(s)).expect("time")
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "5", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}}},
            "status": {"replicas": 1}
        })
    }

    #[test]
    fn create_records_every_field_but_server_ones_and_status() {
        let d = kind("apps/v1", "Deployment");
        let out = update_managed_fields(
            None,
            &deploy(1, "nginx"),
            "kubectl-create",
            None,
            d,
            "apps/v1",
            t("2024-01-02T03:04:05Z"),
        );
        let mf = out["metadata"]["managedFields"]
            .as_array()
            .expect("entries");
        assert_eq!(mf.len(), 1);
        assert_eq!(mf[0]["manager"], "kubectl-create");
        assert_eq!(mf[0]["operation"], "Update");
        assert_eq!(mf[0]["apiVersion"], "apps/v1");
        assert_eq!(mf[0]["time"], "2024-01-02T03:04:05Z");
        assert_eq!(mf[0]["fieldsType"], "FieldsV1");
        assert_eq!(
            mf[0]["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {}, "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {".": {}, "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                    }
                }
            })
        );
    }

    #[test]
    fn updates_move_ownership_and_drop_emptied_entries() {
        let d = kind("apps/v1", "Deployment");
        let v1 = update_managed_fields(
            None,
            &deploy(1, "nginx"),
            "creator",
            None,
            d,
            "apps/v1",
            t("2024-01-01T00:00:00Z"),
        );
        let mut v2 = deploy(3, "nginx");
        v2["metadata"]["managedFields"] = v1["metadata"]["managedFields"].clone();
        let v2 = update_managed_fields(
            Some(&v1),
            &v2,
            "kubectl-scale",
            Some("scale"),
            d,
            "apps/v1",
            t("2024-01-02T00:00:00Z"),
        );
        let entries = decode(&v2);
        assert_eq!(entries.len(), 2);
        let scale = entries
            .iter()
            .find(|e| e.manager == "kubectl-scale")
            .expect("scale entry");
        assert_eq!(scale.subresource.as_deref(), Some("scale"));
        assert_eq!(
            scale.fields.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}}})
        );
        let creator = entries
            .iter()
            .find(|e| e.manager == "creator")
            .expect("creator");
        assert!(
            !creator
                .fields
                .contains(&[PathElement::field("spec"), PathElement::field("replicas")])
        );
        assert_eq!(creator.time.as_deref(), Some("2024-01-01T00:00:00Z"));
        // a write that changes nothing leaves everything as it was
        let same = update_managed_fields(
            Some(&v2),
            &v2,
            "other",
            None,
            d,
            "apps/v1",
            t("2024-01-03T00:00:00Z"),
        );
        assert_eq!(
            same["metadata"]["managedFields"],
            v2["metadata"]["managedFields"]
        );
    }

    #[test]
    fn status_writes_are_recorded_against_the_status_subresource() {
        let d = kind("apps/v1", "Deployment");
        let v1 = update_managed_fields(
            None,
            &deploy(1, "nginx"),
            "creator",
            None,
            d,
            "apps/v1",
            t("2024-01-01T00:00:00Z"),
        );
        let mut v2 = v1.clone();
        v2["status"] = json!({"replicas": 1, "readyReplicas": 1});
        let v2 = update_managed_fields(
            Some(&v1),
            &v2,
            "korral-controller",
            Some("status"),
            d,
            "apps/v1",
            t("2024-01-02T00:00:00Z"),
        );
        let e = decode(&v2);
        let ctl = e
            .iter()
            .find(|e| e.manager == "korral-controller")
            .expect("entry");
        assert_eq!(ctl.subresource.as_deref(), Some("status"));
        assert_eq!(
            ctl.fields.to_fields_v1(),
            json!({"f:status": {"f:readyReplicas": {}}})
        );
    }

    #[test]
    fn at_most_ten_updaters_are_kept() {
        let d = kind("v1", "ConfigMap");
        let mut obj =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        for i in 0..12 {
            let mut next = obj.clone();
            next["data"][format!("k{i}")] = json!("v");
            let time = t(&format!("2024-01-01T00:00:{i:02}Z"));
            let old = Some(&obj).filter(|_| i > 0);
            obj = update_managed_fields(old, &next, &format!("m{i:02}"), None, d, "v1", time);
        }
        let entries = decode(&obj);
        assert_eq!(entries.len(), 10);
        let ancient = entries
            .iter()
            .find(|e| e.manager == ANCIENT_CHANGES)
            .expect("bucket");
        assert_eq!(
            ancient.fields.to_fields_v1(),
            json!({"f:data": {".": {}, "f:k0": {}, "f:k1": {}, "f:k2": {}}})
        );
        assert!(
            entries
                .iter()
                .all(|e| e.manager != "m00" && e.manager != "m02")
        );
        assert!(entries.iter().any(|e| e.manager == "m11"));
    }

    #[test]
    fn managed_fields_can_be_reset_and_untracked_objects_stay_untracked() {
        let d = kind("apps/v1", "Deployment");
        let v1 = update_managed_fields(
            None,
            &deploy(1, "nginx"),
            "creator",
            None,
            d,
            "apps/v1",
            t("2024-01-01T00:00:00Z"),
        );
        let mut v2 = deploy(2, "nginx");
        v2["metadata"]["managedFields"] = json!([{}]);
        let v2 = update_managed_fields(
            Some(&v1),
            &v2,
            "editor",
            None,
            d,
            "apps/v1",
            t("2024-01-02T00:00:00Z"),
        );
        assert!(v2["metadata"].get("managedFields").is_none());
        let v3 = update_managed_fields(
            Some(&v2),
            &deploy(4, "nginx"),
            "editor",
            None,
            d,
            "apps/v1",
            t("2024-01-02T00:00:00Z"),
        );
        assert!(v3["metadata"].get("managedFields").is_none());
        // garbage in the stored entries counts as none, never a panic
        let mut bad = deploy(1, "x");
        bad["metadata"]["managedFields"] =
            json!([{"operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"bogus": {}}}]);
        assert!(decode(&bad).is_empty());
    }
}
