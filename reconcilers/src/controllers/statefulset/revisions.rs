//! A StatefulSet's history, as Kubernetes keeps it (`history` package and
//! `stateful_set_utils.go`): one ControllerRevision per pod template, named
//! `<set>-<hash>`, whose `data` is the strategic merge patch
//! `{"spec":{"template":{..., "$patch":"replace"}}}` (what `kubectl rollout
//! undo` sends back), numbered in order; the current and update revisions
//! chosen from it; the history pruned to revisionHistoryLimit.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use schemas::MetaExt;

use crate::controllers::deployment::util::safe_encode;
use crate::controllers::podutil::controller_ref;

use super::pods::{REVISION_LABEL, pod_revision};

/// The revision data of `set`'s template (`getPatch`).
pub fn patch(set: &StatefulSet) -> Value {
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut t = serde_json::to_value(&template).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut t {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// Compact JSON with keys sorted at every level (Go's `json.Marshal` of a
/// map), so equal data always hashes alike.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            let fields: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// `HashControllerRevision`: FNV-1 (32 bit) of the data, then the collision
/// count in decimal, safe-encoded.
pub fn hash(data: &Value, collision_count: i32) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in canonical(data)
        .bytes()
        .chain(collision_count.to_string().into_bytes())
    {
        h = h.wrapping_mul(0x0100_0193);
        h ^= u32::from(b);
    }
    safe_encode(&h.to_string())
}

/// The name of the revision with `hash` (the set's name cut to 223 bytes).
pub fn revision_name(set: &StatefulSet, hash: &str) -> String {
    let mut prefix = set.metadata.name_str().to_string();
    while prefix.len() > 223 {
        prefix.pop();
    }
    format!("{prefix}-{hash}")
}

/// A revision's data (null when absent).
pub fn data(r: &ControllerRevision) -> &Value {
    r.data.as_ref().map_or(&Value::Null, |d| &d.0)
}

/// The revision of `set`'s template numbered `number` (`newRevision`):
/// labelled with the template's labels and the hash, owned by the set, with
/// the set's annotations (so `kubernetes.io/change-cause` shows in
/// `kubectl rollout history`).
pub fn new_revision(set: &StatefulSet, number: i64, collision_count: i32) -> ControllerRevision {
    let data = patch(set);
    let hash = hash(&data, collision_count);
    let mut labels = set
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(set, &hash)),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: set.metadata.annotations.clone().filter(|a| !a.is_empty()),
            owner_references: Some(vec![controller_ref(set)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision: number,
    }
}

/// Revisions in history order: by number, then age, then name.
pub fn sort(revisions: &mut [Arc<ControllerRevision>]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let t = |r: &ControllerRevision| r.metadata.creation_timestamp.clone().map(|t| t.0);
                t(a).cmp(&t(b))
            })
            .then_with(|| a.metadata.name_str().cmp(b.metadata.name_str()))
    });
}

/// The number after the newest revision (1 for none).
pub fn next_number(sorted: &[Arc<ControllerRevision>]) -> i64 {
    sorted.last().map_or(1, |r| r.revision + 1)
}

/// What the set's update revision is (`getStatefulSetRevisions`).
#[derive(Debug, PartialEq)]
pub enum UpdateRevision {
    /// The newest revision already has the template.
    Latest(Arc<ControllerRevision>),
    /// An older revision has it (a rollback): renumber it to this.
    Renumber(Arc<ControllerRevision>, i64),
    /// No revision has it: create this one.
    Create(Box<ControllerRevision>),
}

/// Decides the update revision of `set` among its `sorted` revisions.
pub fn update_revision(
    set: &StatefulSet,
    sorted: &[Arc<ControllerRevision>],
    collision_count: i32,
) -> UpdateRevision {
    let candidate = new_revision(set, next_number(sorted), collision_count);
    let equal: Vec<&Arc<ControllerRevision>> = sorted
        .iter()
        .filter(|r| data(r) == data(&candidate))
        .collect();
    match (equal.last(), sorted.last()) {
        (Some(e), Some(last)) if e.metadata.name == last.metadata.name => {
            UpdateRevision::Latest((*e).clone())
        }
        (Some(e), _) => UpdateRevision::Renumber((*e).clone(), candidate.revision),
        (None, _) => UpdateRevision::Create(Box::new(candidate)),
    }
}

/// `ApplyRevision`: the set with the revision's template.
pub fn apply(set: &StatefulSet, revision: &ControllerRevision) -> StatefulSet {
    let mut out = set.clone();
    let template = data(revision)
        .pointer("/spec/template")
        .cloned()
        .map(|mut t| {
            if let Value::Object(m) = &mut t {
                m.remove("$patch");
            }
            t
        })
        .and_then(|t| serde_json::from_value::<PodTemplateSpec>(t).ok());
    if let (Some(spec), Some(t)) = (out.spec.as_mut(), template) {
        spec.template = t;
    }
    out
}

/// The revisions to delete to keep `limit` (`truncateHistory`): the oldest
/// of those neither current, nor update, nor any pod's.
pub fn to_prune<'a>(
    sorted: &'a [Arc<ControllerRevision>],
    live: &[&str],
    pods: &[Arc<Pod>],
    limit: usize,
) -> Vec<&'a Arc<ControllerRevision>> {
    let mut keep: HashSet<&str> = live.iter().copied().collect();
    keep.extend(pods.iter().map(|p| pod_revision(p)));
    let history: Vec<&Arc<ControllerRevision>> = sorted
        .iter()
        .filter(|r| !keep.contains(r.metadata.name_str()))
        .collect();
    let excess = history.len().saturating_sub(limit);
    history.into_iter().take(excess).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(image: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u", "annotations": {"kubernetes.io/change-cause": "v"}},
            "spec": {"replicas": 3, "serviceName": "nginx", "selector": {"matchLabels": {"app": "nginx"}},
                "template": {"metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": image}]}}}
        }))
        .expect("statefulset")
    }

    fn stored(mut r: ControllerRevision) -> Arc<ControllerRevision> {
        // as the API server returns it: data re-read, keys in another order
        let text = serde_json::to_string(&r).expect("json");
        r = serde_json::from_str(&text).expect("revision");
        Arc::new(r)
    }

    #[test]
    fn revisions_are_named_by_a_stable_hash_of_the_template() {
        let r = new_revision(&set("nginx:1"), 1, 0);
        let name = r.metadata.name_str().to_string();
        let label = r.metadata.labels_map()[REVISION_LABEL].clone();
        assert_eq!(name, format!("web-{label}"));
        assert_eq!(r.metadata.labels_map()["app"], "nginx");
        assert_eq!(
            r.metadata.annotations_map()["kubernetes.io/change-cause"],
            "v"
        );
        assert_eq!(data(&r)["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            new_revision(&set("nginx:1"), 7, 0).metadata.name_str(),
            name
        );
        assert_ne!(
            new_revision(&set("nginx:2"), 1, 0).metadata.name_str(),
            name
        );
        assert_ne!(
            new_revision(&set("nginx:1"), 1, 1).metadata.name_str(),
            name,
            "collisions move the name"
        );
        // keys in any order hash alike
        let a = json!({"b": 1, "a": {"y": 2, "x": [1, {"q": 1, "p": 2}]}});
        let b: Value =
            serde_json::from_str(r#"{"a": {"x": [1, {"p": 2, "q": 1}], "y": 2}, "b": 1}"#)
                .expect("json");
        assert_eq!(hash(&a, 0), hash(&b, 0));
    }

    #[test]
    fn the_update_revision_is_the_latest_a_renumbered_old_one_or_new() {
        let v1 = stored(new_revision(&set("nginx:1"), 1, 0));
        let v2 = stored(new_revision(&set("nginx:2"), 2, 0));
        let history = vec![v1.clone(), v2.clone()];
        assert_eq!(
            update_revision(&set("nginx:2"), &history, 0),
            UpdateRevision::Latest(v2.clone())
        );
        // a rollback to v1's template takes v1 back with number 3
        assert_eq!(
            update_revision(&set("nginx:1"), &history, 0),
            UpdateRevision::Renumber(v1.clone(), 3)
        );
        match update_revision(&set("nginx:3"), &history, 0) {
            UpdateRevision::Create(r) => assert_eq!(r.revision, 3),
            other => panic!("{other:?}"),
        }
        // the revision's template is what apply() puts back
        let back = apply(&set("nginx:9"), &v1);
        assert_eq!(
            back.spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|s| s.containers[0].image.as_deref()),
            Some("nginx:1")
        );
    }

    #[test]
    fn history_keeps_live_revisions_and_the_newest_others() {
        let revs: Vec<Arc<ControllerRevision>> = (1..=5)
            .map(|i| stored(new_revision(&set(&format!("nginx:{i}")), i, 0)))
            .collect();
        let name = |i: usize| revs[i].metadata.name_str().to_string();
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web-0",
            "labels": {REVISION_LABEL: name(0)}}}))
        .expect("pod");
        let live = [name(4), name(3)];
        let live: Vec<&str> = live.iter().map(String::as_str).collect();
        let pruned: Vec<String> = to_prune(&revs, &live, &[Arc::new(pod)], 1)
            .iter()
            .map(|r| r.metadata.name_str().to_string())
            .collect();
        // 0 is a pod's, 3 and 4 current/update; of 1 and 2 the newest stays
        assert_eq!(pruned, vec![name(1)]);
    }
}
