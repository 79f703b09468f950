//! Who set a field: reading `metadata.managedFields` (FieldsV1 sets) and
//! finding the managers whose sets contain a path of the live object, with
//! when each last wrote. List elements are found by their key fields
//! (`k:{"name":"web"}`), values (`v:"x"`) or index (`i:0`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::owner::MANAGER;

/// One `managedFields` entry.
#[derive(Clone, Debug)]
pub struct ManagedEntry {
    /// The manager, e.g. `kubectl-edit`.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The subresource written through (`status`, `scale`), if any.
    pub subresource: Option<String>,
    /// When the manager last changed the object.
    pub time: Option<Time>,
    fields: Value,
}

/// One step from a node of the live object to a child.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// A field of a mapping.
    Key(&'a str),
    /// An element of a list: the live element and its index.
    Elem(&'a Value, usize),
}

/// The managers of one live object.
#[derive(Clone, Debug, Default)]
pub struct Owners {
    entries: Vec<ManagedEntry>,
}

/// Whether a manager is part of the cluster itself (controllers, the
/// scheduler, node daemons): fields only they set are not drift.
pub fn is_system_manager(name: &str) -> bool {
    name == MANAGER
        || name.ends_with("-controller")
        || matches!(
            name,
            "garbage-collector"
                | "kube-scheduler"
                | "korral-scheduler"
                | "scheduler"
                | "korral-node"
                | "kubelet"
                | "kube-controller-manager"
                | "korral-controllers"
        )
}

impl Owners {
    /// The entries of a live object's `managedFields`, except status writes.
    pub fn of(live: &Value) -> Owners {
        let entries = live
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
                        let subresource = s("subresource").filter(|x| !x.is_empty());
                        if subresource.as_deref() == Some("status") {
                            return None;
                        }
                        Some(ManagedEntry {
                            manager: s("manager").unwrap_or_default(),
                            operation: s("operation").unwrap_or_default(),
                            subresource,
                            time: s("time")
                                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                                .map(|t| schemas::time::from_utc(t.with_timezone(&Utc))),
                            fields: e.get("fieldsV1").cloned().unwrap_or(Value::Null),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Owners { entries }
    }

    /// The entries whose sets contain `path` or anything under it.
    pub fn owning(&self, path: &[Step<'_>]) -> Vec<&ManagedEntry> {
        self.entries
            .iter()
            .filter(|e| find(&e.fields, path).is_some())
            .collect()
    }

    /// The manager to blame for the live value at `path`: an owner other
    /// than intake if there is one (the most recent), else intake itself.
    pub fn blame(&self, path: &[Step<'_>]) -> Option<&ManagedEntry> {
        let owners = self.owning(path);
        owners
            .iter()
            .filter(|e| e.manager != MANAGER)
            .max_by_key(|e| e.time.clone())
            .or_else(|| owners.iter().max_by_key(|e| e.time.clone()))
            .copied()
    }

    /// The most recent owner of anything at or under `path` that is not
    /// part of the cluster itself (see [`is_system_manager`]).
    pub fn foreign_owner(&self, path: &[Step<'_>]) -> Option<&ManagedEntry> {
        self.owning(path)
            .into_iter()
            .filter(|e| !is_system_manager(&e.manager))
            .max_by_key(|e| e.time.clone())
    }
}

fn find<'v>(set: &'v Value, path: &[Step<'_>]) -> Option<&'v Value> {
    let mut node = set;
    for step in path {
        let m = node.as_object()?;
        node = match step {
            Step::Key(k) => m.get(&format!("f:{k}"))?,
            Step::Elem(elem, index) => find_elem(m, elem, *index)?,
        };
    }
    Some(node)
}

fn find_elem<'v>(m: &'v Map<String, Value>, elem: &Value, index: usize) -> Option<&'v Value> {
    for (k, v) in m {
        if let Some(keys) = k.strip_prefix("k:") {
            if let (Ok(Value::Object(want)), Some(have)) =
                (serde_json::from_str::<Value>(keys), elem.as_object())
                && want.iter().all(|(wk, wv)| have.get(wk) == Some(wv))
            {
                return Some(v);
            }
        } else if let Some(val) = k.strip_prefix("v:") {
            if serde_json::from_str::<Value>(val).is_ok_and(|x| &x == elem) {
                return Some(v);
            }
        } else if let Some(i) = k.strip_prefix("i:")
            && i.parse::<usize>() == Ok(index)
        {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::TimeExt;
    use serde_json::json;

    fn live() -> Value {
        json!({
            "metadata": {"managedFields": [
                {"manager": "korral-intake", "operation": "Apply", "time": "2024-01-01T00:00:00Z",
                 "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                     "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}},
                {"manager": "kubectl-scale", "operation": "Update", "subresource": "scale", "time": "2024-01-01T00:01:00Z",
                 "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {"manager": "kubectl-edit", "operation": "Update", "time": "2024-01-01T00:02:00Z",
                 "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                     "k:{\"name\":\"web\"}": {"f:env": {"k:{\"name\":\"DEBUG\"}": {".": {}, "f:name": {}, "f:value": {}}}}}}}}}},
                {"manager": "deployment-controller", "operation": "Update", "time": "2024-01-01T00:03:00Z",
                 "fieldsV1": {"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}}},
                {"manager": "deployment-controller", "operation": "Update", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:replicas": {}}}}
            ]}
        })
    }

    #[test]
    fn blames_the_latest_manager_other_than_intake() {
        let l = live();
        let o = Owners::of(&l);
        let replicas = [Step::Key("spec"), Step::Key("replicas")];
        let e = o.blame(&replicas).expect("owner");
        assert_eq!(e.manager, "kubectl-scale");
        assert_eq!(
            e.time.as_ref().map(TimeExt::text).as_deref(),
            Some("2024-01-01T00:01:00Z")
        );
        let web = json!({"name": "web", "image": "x"});
        let image = [
            Step::Key("spec"),
            Step::Key("template"),
            Step::Key("spec"),
            Step::Key("containers"),
            Step::Elem(&web, 0),
            Step::Key("image"),
        ];
        assert_eq!(o.blame(&image).expect("owner").manager, "korral-intake");
        let env = json!({"name": "DEBUG", "value": "1"});
        let mut p = image[..5].to_vec();
        p.push(Step::Key("env"));
        p.push(Step::Elem(&env, 0));
        assert_eq!(o.foreign_owner(&p).expect("owner").manager, "kubectl-edit");
        let rev = [
            Step::Key("metadata"),
            Step::Key("annotations"),
            Step::Key("deployment.kubernetes.io/revision"),
        ];
        assert!(o.blame(&rev).is_some());
        assert!(o.foreign_owner(&rev).is_none(), "controllers are not drift");
        assert!(
            o.blame(&[Step::Key("status"), Step::Key("replicas")])
                .is_none()
        );
    }
}
