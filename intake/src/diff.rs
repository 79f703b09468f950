//! What a sync would change, before committing (`korral diff PATH`): every
//! declared object is applied as a server-side dry run and the result
//! compared with the live object field by field; objects that would be
//! created, changed or pruned are listed. Secret values are masked.

use std::collections::HashSet;

use serde_json::Value;

use reconcilers::runtime::Client;
use schemas::Diagnostic;
use schemas::korral::InventoryEntry;

use crate::drift::compare::{equal, list_key};
use crate::drift::mask;
use crate::object::ObjectKey;
use crate::owner::{DIGEST_ANNOTATION, Owner, owner_of, stamp};
use crate::render::Desired;
use crate::sync::{apply_one, error_diagnostics};

/// One field a sync would change: `from` (live) → `to`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FieldUpdate {
    /// The field path.
    pub path: String,
    /// The live value (`None`: not set).
    pub from: Option<Value>,
    /// The value after the sync (`None`: removed).
    pub to: Option<Value>,
}

/// What a sync would do to one object.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Change {
    /// Created.
    Create {
        /// The object.
        object: String,
        /// The kustomization it is built from, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// Changed.
    Update {
        /// The object.
        object: String,
        /// The kustomization it is built from, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// The fields.
        fields: Vec<FieldUpdate>,
    },
    /// Owned by the source, no longer declared.
    Prune {
        /// The object.
        object: String,
        /// Whether the source prunes (otherwise it is left alone).
        deleted: bool,
    },
}

/// Everything a sync would do.
#[derive(Debug, Default, serde::Serialize)]
pub struct Plan {
    /// Objects that would change, in apply order.
    pub changes: Vec<Change>,
    /// Objects that would stay as they are.
    pub unchanged: usize,
}

impl Plan {
    /// Whether the sync would change anything (leftovers kept because prune is off do not count).
    pub fn changes_anything(&self) -> bool {
        self.changes
            .iter()
            .any(|c| !matches!(c, Change::Prune { deleted: false, .. }))
    }
}

const IGNORED_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
];

/// The fields that differ between `from` and `to` (status and server
/// bookkeeping ignored), both ways.
pub fn field_updates(from: &Value, to: &Value) -> Vec<FieldUpdate> {
    let mut out = Vec::new();
    let (Some(a), Some(b)) = (from.as_object(), to.as_object()) else {
        return out;
    };
    let keys: Vec<&String> = b
        .keys()
        .chain(a.keys().filter(|k| !b.contains_key(*k)))
        .collect();
    for k in keys {
        if k == "status" {
            continue;
        }
        if k == "metadata" {
            let strip = |v: Option<&Value>| -> Value {
                let mut m = v.and_then(Value::as_object).cloned().unwrap_or_default();
                for f in IGNORED_METADATA {
                    m.remove(*f);
                }
                // the digest follows the content, which is compared itself
                if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
                    a.remove(DIGEST_ANNOTATION);
                }
                Value::Object(m)
            };
            walk(
                &strip(a.get(k)),
                &strip(b.get(k)),
                "metadata".into(),
                &mut out,
            );
            continue;
        }
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) => walk(x, y, k.clone(), &mut out),
            (x, y) => out.push(FieldUpdate {
                path: k.clone(),
                from: x.cloned(),
                to: y.cloned(),
            }),
        }
    }
    out
}

fn child(path: &str, key: &str) -> String {
    if key.contains(['.', '/', ' ']) {
        format!("{path}[{key}]")
    } else {
        format!("{path}.{key}")
    }
}

fn walk(a: &Value, b: &Value, path: String, out: &mut Vec<FieldUpdate>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in y.keys().chain(x.keys().filter(|k| !y.contains_key(*k))) {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => walk(p, q, child(&path, k), out),
                    (p, q) => out.push(FieldUpdate {
                        path: child(&path, k),
                        from: p.cloned(),
                        to: q.cloned(),
                    }),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if !x.is_empty() && !y.is_empty() => {
            match list_key(y, x) {
                Some(keys) => {
                    let key_of = |v: &Value| -> Vec<Value> {
                        keys.iter()
                            .map(|k| v.get(*k).cloned().unwrap_or(Value::Null))
                            .collect()
                    };
                    let label = |v: &Value| match v.get(keys[0]) {
                        Some(Value::String(s)) => format!("{path}[{}={s}]", keys[0]),
                        Some(o) => format!("{path}[{}={o}]", keys[0]),
                        None => path.clone(),
                    };
                    let mut seen = HashSet::new();
                    for q in y {
                        match x.iter().find(|p| key_of(p) == key_of(q)) {
                            Some(p) => {
                                seen.insert(key_of(p));
                                walk(p, q, label(q), out);
                            }
                            None => out.push(FieldUpdate {
                                path: label(q),
                                from: None,
                                to: Some(q.clone()),
                            }),
                        }
                    }
                    for p in x.iter().filter(|p| !seen.contains(&key_of(p))) {
                        out.push(FieldUpdate {
                            path: label(p),
                            from: Some(p.clone()),
                            to: None,
                        });
                    }
                }
                None => {
                    if !equal(a, b, false) {
                        out.push(FieldUpdate {
                            path,
                            from: Some(a.clone()),
                            to: Some(b.clone()),
                        });
                    }
                }
            }
        }
        _ => {
            if !equal(a, b, false) {
                out.push(FieldUpdate {
                    path,
                    from: Some(a.clone()),
                    to: Some(b.clone()),
                });
            }
        }
    }
}

fn mask_update(u: &mut FieldUpdate) {
    if u.path == "metadata" || mask::is_secret_path(&u.path) {
        u.from = u.from.as_ref().map(mask::mask_value);
        u.to = u.to.as_ref().map(mask::mask_value);
    }
}

/// Plans a sync of `desired`. With `owner`, objects are stamped as that
/// source's and `inventory` leftovers are listed (pruned when `prune`);
/// without, each object keeps the owner it has in the cluster.
pub async fn plan(
    client: &Client,
    owner: Option<&Owner>,
    desired: &Desired,
    inventory: &[InventoryEntry],
    prune: bool,
) -> Result<Plan, Vec<Diagnostic>> {
    let mut plan = Plan::default();
    let mut errors = Vec::new();
    for o in &desired.objects {
        let api = client.dynamic(&o.info, o.key.namespace.as_deref());
        let live = match api.get_opt(&o.key.name).await {
            Ok(l) => l,
            Err(e) => {
                errors.extend(error_diagnostics(o, &e));
                continue;
            }
        };
        let mut o = o.clone();
        if owner.is_none()
            && let Some(current) = live.as_ref().and_then(owner_of)
        {
            stamp(&mut o.object, &current);
        }
        let after = match apply_one(client, &o, true).await {
            Ok(a) => a,
            Err(e) if live.is_none() && e.is_not_found() => {
                // its namespace, or its kind's definition, does not exist yet
                // (the sync would create it first)
                plan.changes.push(Change::Create {
                    object: o.key.to_string(),
                    from: o.built_from().map(str::to_string),
                });
                continue;
            }
            Err(e) => {
                errors.extend(error_diagnostics(&o, &e));
                continue;
            }
        };
        match live {
            None => plan.changes.push(Change::Create {
                object: o.key.to_string(),
                from: o.built_from().map(str::to_string),
            }),
            Some(l) => {
                let mut fields = field_updates(&l, &after);
                if o.info.kind == "Secret" {
                    fields.iter_mut().for_each(mask_update);
                }
                if fields.is_empty() {
                    plan.unchanged += 1;
                } else {
                    plan.changes.push(Change::Update {
                        object: o.key.to_string(),
                        from: o.built_from().map(str::to_string),
                        fields,
                    });
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Some(owner) = owner {
        let declared: HashSet<&ObjectKey> = desired.objects.iter().map(|o| &o.key).collect();
        for e in inventory {
            let Some((info, key)) = ObjectKey::from_entry(e, &desired.kinds) else {
                continue;
            };
            if declared.contains(&key) {
                continue;
            }
            let live = client
                .dynamic(&info, key.namespace.as_deref())
                .get_opt(&key.name)
                .await
                .ok()
                .flatten();
            if live.is_some_and(|l| owner.owns(&l)) {
                plan.changes.push(Change::Prune {
                    object: key.to_string(),
                    deleted: prune,
                });
            }
        }
    }
    Ok(plan)
}

/// ` [overlays/prod/kustomization.yaml]` for an object built by kustomize.
pub fn from_suffix(from: &Option<String>) -> String {
    from.as_deref()
        .map(|f| format!(" [{f}]"))
        .unwrap_or_default()
}

/// The plan for people: `+`, `~` with one line per field (`from → to`), `-`.
pub fn render_text(plan: &Plan) -> String {
    use crate::drift::text::show;
    use std::fmt::Write;
    let mut out = String::new();
    for c in &plan.changes {
        match c {
            Change::Create { object, from } => {
                let _ = writeln!(out, "+ {object}{}: would be created", from_suffix(from));
            }
            Change::Update {
                object,
                from,
                fields,
            } => {
                let _ = writeln!(out, "~ {object}{}:", from_suffix(from));
                for f in fields {
                    let _ = writeln!(
                        out,
                        "    {}: {} → {}",
                        f.path,
                        show(f.from.as_ref()),
                        show(f.to.as_ref())
                    );
                }
            }
            Change::Prune { object, deleted } => {
                let _ = writeln!(
                    out,
                    "- {object}: {}",
                    if *deleted {
                        "would be pruned"
                    } else {
                        "no longer declared; left alone (prune is off)"
                    }
                );
            }
        }
    }
    let changed = plan
        .changes
        .iter()
        .filter(|c| !matches!(c, Change::Prune { deleted: false, .. }))
        .count();
    let _ = writeln!(
        out,
        "{changed} object{} would change, {} unchanged",
        if changed == 1 { "" } else { "s" },
        plan.unchanged
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn updates_both_ways_ignoring_bookkeeping() {
        let live = json!({"metadata": {"name": "a", "resourceVersion": "1", "labels": {"x": "1", "gone": "y"}},
            "spec": {"replicas": 5, "ports": [{"port": 80}, {"port": 81}]}, "status": {"a": 1}});
        let after = json!({"metadata": {"name": "a", "resourceVersion": "2", "labels": {"x": "1"}},
            "spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 82}]}, "status": {"a": 2}});
        let u = field_updates(&live, &after);
        let paths: Vec<&str> = u.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "metadata.labels.gone",
                "spec.replicas",
                "spec.ports[port=82]",
                "spec.ports[port=81]"
            ],
            "{u:#?}"
        );
        assert_eq!(u[1].from, Some(json!(5)));
        assert_eq!(u[1].to, Some(json!(3)));
        assert!(field_updates(&live, &live).is_empty());
    }
}
