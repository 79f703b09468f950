//! Masking Secret values: no drift report, diff or log ever shows the
//! contents of a Secret's `data`/`stringData`, nor the copy of them kubectl
//! keeps in the last-applied-configuration annotation.

use serde_json::Value;

use crate::drift::compare::FieldChange;

/// What a masked value prints as.
pub const MASK: &str = "<masked>";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether a field of a Secret holds secret material.
pub fn is_secret_path(path: &str) -> bool {
    path.starts_with("data")
        || path.starts_with("stringData")
        || path.contains(LAST_APPLIED)
        || path == "metadata.annotations"
}

/// Replaces every scalar in `v` with the mask (keeping map keys).
pub fn mask_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let masked = if k == LAST_APPLIED || !x.is_object() {
                        Value::String(MASK.into())
                    } else {
                        mask_value(x)
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(mask_value).collect()),
        _ => Value::String(MASK.into()),
    }
}

/// Masks the values of a changed Secret field that may hold secret material.
pub fn mask_secret_change(c: &mut FieldChange) {
    if c.path == "metadata" || is_secret_path(&c.path) {
        c.desired = c.desired.as_ref().map(mask_value);
        c.live = c.live.as_ref().map(mask_value);
    }
}

/// A whole Secret object with its data masked (for `korral diff`).
pub fn mask_secret_object(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["data", "stringData"] {
            if let Some(d) = o.get(k) {
                let masked = mask_value(d);
                o.insert(k.into(), masked);
            }
        }
        if let Some(a) = o
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            .and_then(Value::as_object_mut)
            && a.contains_key(LAST_APPLIED)
        {
            a.insert(LAST_APPLIED.into(), Value::String(MASK.into()));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_material_never_shows() {
        let mut c = FieldChange {
            path: "data[password]".into(),
            live_pointer: "/data/password".into(),
            desired: Some(json!("aHVudGVyMg==")),
            live: Some(json!("c2VjcmV0")),
            manager: None,
            time: None,
        };
        mask_secret_change(&mut c);
        assert_eq!(c.desired, Some(json!(MASK)));
        assert_eq!(c.live, Some(json!(MASK)));
        let mut c = FieldChange {
            path: "metadata.annotations[kubectl.kubernetes.io/last-applied-configuration]".into(),
            live_pointer: String::new(),
            desired: None,
            live: Some(json!("{\"data\":{\"password\":\"aHVudGVyMg==\"}}")),
            manager: Some("kubectl".into()),
            time: None,
        };
        mask_secret_change(&mut c);
        assert_eq!(c.live, Some(json!(MASK)));
        let obj = json!({"kind": "Secret", "data": {"a": "eA=="}, "stringData": {"b": "y"},
            "metadata": {"annotations": {LAST_APPLIED: "{...}", "team": "x"}}});
        let m = mask_secret_object(&obj);
        let text = m.to_string();
        assert!(!text.contains("eA==") && !text.contains("\"y\"") && !text.contains("{...}"));
        assert_eq!(m["metadata"]["annotations"]["team"], "x");
        assert_eq!(
            mask_value(&json!({"data": {"a": "x"}})),
            json!({"data": {"a": MASK}})
        );
    }
}
