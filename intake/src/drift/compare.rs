//! The field-by-field comparison of a desired object (defaults applied) with
//! the live one: every field the source declares must match (numbers and
//! quantities by value: `1000m` = `1`); fields only the live object has are
//! drift when a manager outside the cluster's own machinery set them.
//! Status, server-set metadata and fields nobody owns (allocated by the
//! server) are ignored. Associative lists are matched by their key field.

use base64::Engine;
use serde_json::{Map, Value};

use schemas::quantity::Amount;

use crate::drift::owners::{Owners, Step};

/// One differing field.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    /// The field, e.g. `spec.template.spec.containers[name=web].image`.
    pub path: String,
    /// The JSON pointer of the field in the live object (for removing it).
    pub live_pointer: String,
    /// The value the source declares (`None`: the source does not have it).
    pub desired: Option<Value>,
    /// The live value (`None`: missing from the cluster).
    pub live: Option<Value>,
    /// Who set the live value, and when.
    pub manager: Option<String>,
    /// When `manager` last wrote the object.
    pub time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

impl FieldChange {
    /// A field only the live object has (set outside the source).
    pub fn is_extra(&self) -> bool {
        self.desired.is_none()
    }
}

/// Metadata fields the server sets; never compared.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Keys that identify elements of associative lists, tried in order.
const LIST_KEYS: &[&[&str]] = &[
    &["name"],
    &["containerPort", "protocol"],
    &["port", "protocol"],
    &["mountPath"],
    &["devicePath"],
    &["type"],
    &["ip"],
];

/// Parents whose values are resource quantities.
const QUANTITY_PARENTS: &[&str] = &[
    "requests",
    "limits",
    "capacity",
    "allocatable",
    "overhead",
    "hard",
    "used",
];

/// Compares `desired` (defaults applied) with `live`.
pub fn compare(desired: &Value, live: &Value) -> Vec<FieldChange> {
    let desired = normalise(desired);
    let live_n = normalise(live);
    let owners = Owners::of(live);
    let mut w = Walker {
        owners: &owners,
        out: Vec::new(),
    };
    let (Some(d), Some(l)) = (desired.as_object(), live_n.as_object()) else {
        return w.out;
    };
    for (k, dv) in d {
        if matches!(k.as_str(), "status" | "apiVersion" | "kind") {
            continue;
        }
        let mut steps = vec![Step::Key(k)];
        let mut ptr = format!("/{}", escape(k));
        if k == "metadata" {
            w.metadata(dv, l.get(k), &mut steps, &mut ptr);
        } else {
            w.walk(dv, l.get(k), k.clone(), &mut steps, &mut ptr);
        }
    }
    for (k, lv) in l {
        if d.contains_key(k) || matches!(k.as_str(), "status" | "apiVersion" | "kind" | "metadata")
        {
            continue;
        }
        let steps = [Step::Key(k)];
        w.extra(k.clone(), format!("/{}", escape(k)), lv, &steps);
    }
    w.out
}

/// Folds a Secret's `stringData` into `data` (as the API server does on write).
fn normalise(v: &Value) -> Value {
    let mut v = v.clone();
    if v.get("kind").and_then(Value::as_str) == Some("Secret")
        && let Some(obj) = v.as_object_mut()
        && let Some(Value::Object(sd)) = obj.remove("stringData")
    {
        let data = obj
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(data) = data.as_object_mut() {
            for (k, s) in sd {
                let text = s.as_str().unwrap_or_default();
                data.insert(
                    k,
                    Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
    v
}

struct Walker<'o> {
    owners: &'o Owners,
    out: Vec<FieldChange>,
}

impl Walker<'_> {
    fn metadata<'a>(
        &mut self,
        desired: &'a Value,
        live: Option<&'a Value>,
        steps: &mut Vec<Step<'a>>,
        ptr: &mut String,
    ) {
        let Some(d) = desired.as_object() else { return };
        let l = live.and_then(Value::as_object);
        for (k, dv) in d {
            if SERVER_METADATA.contains(&k.as_str()) {
                continue;
            }
            steps.push(Step::Key(k));
            let saved = ptr.len();
            ptr.push('/');
            ptr.push_str(&escape(k));
            self.walk(
                dv,
                l.and_then(|l| l.get(k)),
                format!("metadata.{k}"),
                steps,
                ptr,
            );
            ptr.truncate(saved);
            steps.pop();
        }
        // labels and annotations others added count; other live-only metadata does not
        for k in ["labels", "annotations"] {
            if d.contains_key(k) {
                continue;
            }
            if let Some(lv) = l.and_then(|l| l.get(k)) {
                let mut s = steps.clone();
                s.push(Step::Key(k));
                self.extra(format!("metadata.{k}"), format!("{ptr}/{k}"), lv, &s);
            }
        }
    }

    fn record(
        &mut self,
        path: String,
        ptr: &str,
        d: Option<&Value>,
        l: Option<&Value>,
        steps: &[Step<'_>],
    ) {
        let blame = l.and_then(|_| self.owners.blame(steps));
        self.out.push(FieldChange {
            path,
            live_pointer: ptr.to_string(),
            desired: d.cloned(),
            live: l.cloned(),
            manager: blame.map(|e| e.manager.clone()),
            time: blame.and_then(|e| e.time.clone()),
        });
    }

    fn extra(&mut self, path: String, ptr: String, live: &Value, steps: &[Step<'_>]) {
        if let Some(e) = self.owners.foreign_owner(steps) {
            self.out.push(FieldChange {
                path,
                live_pointer: ptr,
                desired: None,
                live: Some(live.clone()),
                manager: Some(e.manager.clone()),
                time: e.time.clone(),
            });
        }
    }

    fn walk<'a>(
        &mut self,
        desired: &'a Value,
        live: Option<&'a Value>,
        path: String,
        steps: &mut Vec<Step<'a>>,
        ptr: &mut String,
    ) {
        let Some(live) = live else {
            self.record(path, ptr, Some(desired), None, steps);
            return;
        };
        match (desired, live) {
            (Value::Object(d), Value::Object(l)) => {
                for (k, dv) in d {
                    steps.push(Step::Key(k));
                    let saved = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&escape(k));
                    self.walk(dv, l.get(k), child(&path, k), steps, ptr);
                    ptr.truncate(saved);
                    steps.pop();
                }
                for (k, lv) in l {
                    if d.contains_key(k) {
                        continue;
                    }
                    let mut s = steps.clone();
                    s.push(Step::Key(k));
                    self.extra(child(&path, k), format!("{ptr}/{}", escape(k)), lv, &s);
                }
            }
            (Value::Array(d), Value::Array(l)) => match list_key(d, l) {
                Some(keys) => self.assoc_list(d, l, keys, path, steps, ptr),
                None => {
                    let quantity = is_quantity_path(&path);
                    if d.len() != l.len() || d.iter().zip(l).any(|(a, b)| !equal(a, b, quantity)) {
                        self.record(path, ptr, Some(desired), Some(live), steps);
                    }
                }
            },
            (d, l) => {
                if !equal(d, l, is_quantity_path(&path)) {
                    self.record(path, ptr, Some(d), Some(l), steps);
                }
            }
        }
    }

    fn assoc_list<'a>(
        &mut self,
        d: &'a [Value],
        l: &'a [Value],
        keys: &[&str],
        path: String,
        steps: &mut Vec<Step<'a>>,
        ptr: &mut String,
    ) {
        let key_of = |v: &Value| -> Vec<Value> {
            keys.iter()
                .map(|k| v.get(*k).cloned().unwrap_or(Value::Null))
                .collect()
        };
        let mut matched = vec![false; l.len()];
        for de in d {
            let dk = key_of(de);
            let label = element_label(keys[0], &dk[0]);
            let found = l
                .iter()
                .enumerate()
                .find(|(i, le)| !matched[*i] && key_of(le) == dk);
            match found {
                Some((i, le)) => {
                    matched[i] = true;
                    steps.push(Step::Elem(le, i));
                    let saved = ptr.len();
                    ptr.push_str(&format!("/{i}"));
                    self.walk(de, Some(le), format!("{path}[{label}]"), steps, ptr);
                    ptr.truncate(saved);
                    steps.pop();
                }
                None => self.record(format!("{path}[{label}]"), ptr, Some(de), None, steps),
            }
        }
        for (i, le) in l.iter().enumerate() {
            if matched[i] {
                continue;
            }
            let label = element_label(keys[0], &key_of(le)[0]);
            let mut s = steps.clone();
            s.push(Step::Elem(le, i));
            self.extra(format!("{path}[{label}]"), format!("{ptr}/{i}"), le, &s);
        }
    }
}

fn element_label(key: &str, v: &Value) -> String {
    match v {
        Value::String(s) => format!("{key}={s}"),
        other => format!("{key}={other}"),
    }
}

fn child(path: &str, key: &str) -> String {
    if key.contains(['.', '/', ' ']) || key.is_empty() {
        format!("{path}[{key}]")
    } else {
        format!("{path}.{key}")
    }
}

/// The key fields of an associative list: the first candidate every element
/// has, with no two desired elements sharing a key.
pub(crate) fn list_key(d: &[Value], l: &[Value]) -> Option<&'static [&'static str]> {
    if d.is_empty() || !d.iter().chain(l).all(Value::is_object) {
        return None;
    }
    LIST_KEYS.iter().copied().find(|keys| {
        let first = keys[0];
        let all_have = d.iter().chain(l).all(|v| v.get(first).is_some());
        if !all_have {
            return false;
        }
        let mut seen: Vec<Vec<&Value>> = Vec::new();
        for v in d {
            let k: Vec<&Value> = keys.iter().filter_map(|k| v.get(*k)).collect();
            if seen.contains(&k) {
                return false;
            }
            seen.push(k);
        }
        true
    })
}

fn is_quantity_path(path: &str) -> bool {
    let mut parts = path.rsplit(['.', '[']);
    let last = parts.next().unwrap_or("");
    let parent = parts.next().unwrap_or("");
    last == "sizeLimit" || QUANTITY_PARENTS.contains(&parent)
}

fn as_quantity(v: &Value) -> Option<Amount> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

/// Equality by value: numbers numerically, quantities (where `quantity`) by amount.
pub fn equal(a: &Value, b: &Value, quantity: bool) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, xv)| {
                    y.get(k).is_some_and(|yv| {
                        equal(xv, yv, quantity || QUANTITY_PARENTS.contains(&k.as_str()))
                    })
                })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q, quantity))
        }
        _ if a == b => true,
        _ if quantity => match (as_quantity(a), as_quantity(b)) {
            (Some(p), Some(q)) => p.nanos() == q.nanos(),
            _ => false,
        },
        _ => false,
    }
}

/// Escapes a JSON pointer token.
fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn managed(entries: Value) -> Value {
        entries
    }

    #[test]
    fn equal_after_normalising_numbers_and_quantities() {
        assert!(equal(&json!("1000m"), &json!("1"), true));
        assert!(equal(&json!(1), &json!("1"), true));
        assert!(equal(&json!("128Mi"), &json!("134217728"), true));
        assert!(!equal(&json!("1000m"), &json!("1"), false));
        assert!(equal(&json!(2), &json!(2.0), false));
        assert!(equal(
            &json!({"limits": {"cpu": "1"}}),
            &json!({"limits": {"cpu": "1000m"}}),
            false
        ));
    }

    #[test]
    fn finds_changed_missing_and_foreign_fields_and_ignores_the_rest() {
        let desired = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "template": {"spec": {"containers": [
                    {"name": "web", "image": "nginx:1", "resources": {"limits": {"cpu": "1"}},
                     "ports": [{"containerPort": 80, "protocol": "TCP"}]}
                ]}}
            }
        });
        let live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "default", "uid": "u", "resourceVersion": "9",
                "labels": {"app": "web"},
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "managedFields": managed(json!([
                    {"manager": "kubectl-scale", "operation": "Update", "time": "2024-01-01T00:00:00Z",
                     "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                    {"manager": "kubectl-edit", "operation": "Update", "time": "2024-01-01T00:00:05Z",
                     "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:env": {}}}}}}}},
                    {"manager": "deployment-controller", "operation": "Update",
                     "fieldsV1": {"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}}}
                ]))
            },
            "spec": {
                "replicas": 5,
                "progressDeadlineSeconds": 600,
                "template": {"spec": {"containers": [
                    {"name": "web", "image": "nginx:1", "resources": {"limits": {"cpu": "1000m"}},
                     "ports": [{"containerPort": 80, "protocol": "TCP"}],
                     "env": [{"name": "DEBUG", "value": "1"}]}
                ]}}
            },
            "status": {"replicas": 5}
        });
        let changes = compare(&desired, &live);
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "spec.replicas",
                "spec.template.spec.containers[name=web].env"
            ],
            "{changes:#?}"
        );
        assert_eq!(changes[0].manager.as_deref(), Some("kubectl-scale"));
        assert_eq!(changes[0].desired, Some(json!(2)));
        assert_eq!(changes[0].live, Some(json!(5)));
        assert!(changes[1].is_extra());
        assert_eq!(changes[1].manager.as_deref(), Some("kubectl-edit"));
        assert_eq!(
            changes[1].live_pointer,
            "/spec/template/spec/containers/0/env"
        );
    }

    #[test]
    fn missing_list_elements_and_secrets_written_as_string_data() {
        let desired = json!({"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"pw": "hunter2"}, "type": "Opaque"});
        let live = json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"pw": "aHVudGVyMg=="}, "type": "Opaque"});
        assert!(compare(&desired, &live).is_empty());
        let desired = json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]}});
        let live = json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 81, "protocol": "TCP"}]}});
        let changes = compare(&desired, &live);
        assert_eq!(changes.len(), 1, "{changes:#?}");
        assert_eq!(changes[0].path, "spec.ports[port=80]");
        assert_eq!(changes[0].live, None);
    }

    #[test]
    fn label_keys_with_dots_are_bracketed() {
        let desired = json!({"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}}});
        let live = json!({"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "y"}}});
        let changes = compare(&desired, &live);
        assert_eq!(changes[0].path, "metadata.labels[app.kubernetes.io/name]");
        assert_eq!(
            changes[0].live_pointer,
            "/metadata/labels/app.kubernetes.io~1name"
        );
    }
}
