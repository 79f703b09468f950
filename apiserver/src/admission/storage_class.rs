//! The DefaultStorageClass admission plugin: a new PersistentVolumeClaim
//! that names no class (neither `spec.storageClassName`, not even `""`, nor
//! the beta annotation) gets the default StorageClass — the one annotated
//! `storageclass.kubernetes.io/is-default-class: "true"`, the newest when
//! several are (as kube since 1.26) — or stays classless when none is.

use serde_json::Value;

use crate::errors::{ApiError, ApiResult};
use crate::registry::{ListOptions, Registry};

const DEFAULT_ANNOTATIONS: &[&str] = &[
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

fn is_default(class: &Value, annotations: &[&str]) -> bool {
    annotations.iter().any(|a| {
        class
            .pointer(&format!("/metadata/annotations/{}", a.replace('/', "~1")))
            .and_then(Value::as_str)
            == Some("true")
    })
}

/// The default class among `classes` (`GetDefaultClass`): newest first, then by name.
pub fn default_class(classes: &[Value]) -> Option<&str> {
    newest_default(classes, DEFAULT_ANNOTATIONS)
}

/// The newest class annotated `true` under one of `annotations`, then by
/// name (StorageClasses and IngressClasses alike).
pub fn newest_default<'a>(classes: &'a [Value], annotations: &[&str]) -> Option<&'a str> {
    let created = |v: &Value| {
        v.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut defaults: Vec<&Value> = classes
        .iter()
        .filter(|c| is_default(c, annotations))
        .collect();
    defaults.sort_by(|a, b| {
        created(b)
            .cmp(&created(a))
            .then_with(|| crate::objects::name(a).cmp(crate::objects::name(b)))
    });
    defaults.first().map(|c| crate::objects::name(c))
}

/// Fills the default class into the new claim `pvc` when it names none.
pub async fn admit_claim(registry: &Registry, pvc: &mut Value) -> ApiResult<()> {
    let has_class = pvc
        .pointer("/spec/storageClassName")
        .is_some_and(|v| !v.is_null())
        || pvc
            .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
            .is_some();
    if has_class {
        return Ok(());
    }
    let info = registry
        .kinds()
        .lookup("storage.k8s.io/v1", "StorageClass")
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let page = registry.list(&info, None, &ListOptions::cached()).await?;
    let Some(name) = default_class(&page.items) else {
        return Ok(());
    };
    if let Some(Value::Object(spec)) = pvc.get_mut("spec") {
        spec.insert("storageClassName".into(), Value::String(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_newest_default_wins() {
        let sc = |name: &str, default: bool, at: &str| {
            json!({"metadata": {"name": name, "creationTimestamp": at, "annotations":
                {"storageclass.kubernetes.io/is-default-class": if default {"true"} else {"false"}}}})
        };
        let classes = vec![
            sc("old", true, "2026-01-01T00:00:00Z"),
            sc("new", true, "2026-02-01T00:00:00Z"),
            sc("newest-but-not-default", false, "2026-03-01T00:00:00Z"),
        ];
        assert_eq!(default_class(&classes), Some("new"));
        assert_eq!(default_class(&classes[2..]), None);
    }
}
