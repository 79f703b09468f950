//! Self-heal: put drifted objects back as the source declares them. Apply
//! the declared configuration again (taking fields back from whoever
//! changed them), remove fields others added (a JSON patch guarded by the
//! resourceVersion), then set fields that only differ from their defaults
//! (which an apply does not own) directly. Missing objects are re-created.

use std::collections::HashMap;

use serde_json::{Value, json};

use reconcilers::runtime::{Client, ClientError, Patch, WriteParams};

use crate::drift::{Drift, diff_object};
use crate::object::ObjectKey;
use crate::owner::MANAGER;
use crate::render::{Desired, DesiredObject};
use crate::sync::apply_one;

/// What a heal did.
#[derive(Debug, Default)]
pub struct Healed {
    /// Objects put back (modified or re-created).
    pub objects: Vec<ObjectKey>,
    /// Fields reverted, as `Kind ns/name path (by manager)`.
    pub fields: Vec<String>,
    /// What could not be healed.
    pub errors: Vec<String>,
}

fn params() -> WriteParams {
    WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// Compares pointer tokens so later list elements come first (removing
/// them does not shift the earlier ones).
fn pointer_order(a: &str, b: &str) -> std::cmp::Ordering {
    let sa: Vec<&str> = a.split('/').collect();
    let sb: Vec<&str> = b.split('/').collect();
    for (x, y) in sa.iter().zip(&sb) {
        let o = match (x.parse::<usize>(), y.parse::<usize>()) {
            (Ok(p), Ok(q)) => p.cmp(&q),
            _ => x.cmp(y),
        };
        if o != std::cmp::Ordering::Equal {
            return o.reverse();
        }
    }
    sb.len().cmp(&sa.len())
}

async fn json_patch(
    client: &Client,
    o: &DesiredObject,
    ops: Vec<Value>,
) -> Result<Value, ClientError> {
    client
        .dynamic(&o.info, o.key.namespace.as_deref())
        .patch(&o.key.name, &Patch::Json(Value::Array(ops)), &params())
        .await
}

async fn heal_object(
    client: &Client,
    o: &DesiredObject,
    fields: &mut Vec<String>,
) -> Result<(), ClientError> {
    let api = client.dynamic(&o.info, o.key.namespace.as_deref());
    let Some(live) = api.get_opt(&o.key.name).await? else {
        apply_one(client, o, false).await?;
        return Ok(());
    };
    let changes = diff_object(o, &live);
    if changes.is_empty() {
        return Ok(());
    }
    for c in &changes {
        fields.push(format!(
            "{} {}{}",
            o.key,
            c.path,
            c.manager
                .as_deref()
                .map(|m| format!(" (by {m})"))
                .unwrap_or_default()
        ));
    }
    let mut live = live;
    if changes.iter().any(|c| !c.is_extra()) {
        live = apply_one(client, o, false).await?;
    }
    let rv = |v: &Value| {
        v.pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null)
    };
    // fields someone else added
    let mut extra: Vec<String> = diff_object(o, &live)
        .into_iter()
        .filter(|c| c.is_extra())
        .map(|c| c.live_pointer)
        .collect();
    extra.sort_by(|a, b| pointer_order(a, b));
    if !extra.is_empty() {
        let mut ops =
            vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv(&live)})];
        ops.extend(extra.iter().map(|p| json!({"op": "remove", "path": p})));
        live = json_patch(client, o, ops).await?;
    }
    // fields the apply does not own (differences from defaults)
    let rest: Vec<Value> = diff_object(o, &live)
        .into_iter()
        .filter(|c| c.live.is_some())
        .filter_map(|c| {
            c.desired
                .map(|d| json!({"op": "replace", "path": c.live_pointer, "value": d}))
        })
        .collect();
    if !rest.is_empty() {
        let mut ops =
            vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv(&live)})];
        ops.extend(rest);
        json_patch(client, o, ops).await?;
    }
    Ok(())
}

/// Heals every modified and missing object of `drift`.
pub async fn heal(client: &Client, desired: &Desired, drift: &Drift) -> Healed {
    let by_key: HashMap<&ObjectKey, &DesiredObject> =
        desired.objects.iter().map(|o| (&o.key, o)).collect();
    let mut out = Healed::default();
    let keys = drift
        .modified
        .iter()
        .map(|m| &m.key)
        .chain(drift.missing.iter().map(|(_, k)| k));
    for key in keys {
        let Some(o) = by_key.get(key) else { continue };
        match heal_object(client, o, &mut out.fields).await {
            Ok(()) => out.objects.push(key.clone()),
            Err(e) => out.errors.push(format!("{key}: {e}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_elements_are_removed_first() {
        let mut p = vec![
            "/spec/a/1/env",
            "/spec/a/10/env",
            "/spec/a/2",
            "/metadata/labels/x",
        ];
        p.sort_by(|a, b| pointer_order(a, b));
        assert_eq!(
            p,
            vec![
                "/spec/a/10/env",
                "/spec/a/2",
                "/spec/a/1/env",
                "/metadata/labels/x"
            ]
        );
    }
}
