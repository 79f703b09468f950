//! The StorageObjectInUseProtection admission plugin: every new
//! PersistentVolumeClaim gets the `kubernetes.io/pvc-protection` finalizer
//! and every new PersistentVolume `kubernetes.io/pv-protection`, so a claim
//! a pod still uses, or a volume still bound, stays until the protection
//! controllers (reconcilers' `persistentvolume/protection.rs`) let it go.

use serde_json::Value;

/// The claims' finalizer.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The volumes' finalizer.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// Adds the finalizer of `kind` (`PersistentVolumeClaim` or `PersistentVolume`) to `obj`.
pub fn admit(kind: &str, obj: &mut Value) {
    let finalizer = match kind {
        "PersistentVolumeClaim" => PVC_PROTECTION,
        "PersistentVolume" => PV_PROTECTION,
        _ => return,
    };
    let Some(Value::Object(meta)) = obj.get_mut("metadata") else {
        return;
    };
    let list = meta
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if list.is_null() {
        *list = Value::Array(Vec::new());
    }
    if let Value::Array(items) = list
        && !items.iter().any(|f| f.as_str() == Some(finalizer))
    {
        items.push(Value::String(finalizer.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn adds_its_finalizer_once() {
        let mut pvc = json!({"metadata": {"name": "c", "finalizers": ["x"]}});
        admit("PersistentVolumeClaim", &mut pvc);
        admit("PersistentVolumeClaim", &mut pvc);
        assert_eq!(pvc["metadata"]["finalizers"], json!(["x", PVC_PROTECTION]));
        let mut pv = json!({"metadata": {"name": "v"}});
        admit("PersistentVolume", &mut pv);
        assert_eq!(pv["metadata"]["finalizers"], json!([PV_PROTECTION]));
        let mut pod = json!({"metadata": {"name": "p"}});
        admit("Pod", &mut pod);
        assert!(pod["metadata"].get("finalizers").is_none());
    }
}
