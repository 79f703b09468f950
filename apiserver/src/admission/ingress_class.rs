//! The DefaultIngressClass admission plugin: a new Ingress that names no
//! class (neither `spec.ingressClassName` nor the deprecated
//! `kubernetes.io/ingress.class` annotation) gets the default IngressClass
//! — the one annotated `ingressclass.kubernetes.io/is-default-class:
//! "true"`, the newest when several are — or stays classless when none is.

use serde_json::Value;

use super::storage_class::newest_default;
use crate::errors::{ApiError, ApiResult};
use crate::registry::{ListOptions, Registry};

const DEFAULT_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Fills the default class into the new Ingress `ing` when it names none.
pub async fn admit_ingress(registry: &Registry, ing: &mut Value) -> ApiResult<()> {
    let has_class = ing
        .pointer("/spec/ingressClassName")
        .is_some_and(|v| !v.is_null())
        || ing
            .pointer("/metadata/annotations/kubernetes.io~1ingress.class")
            .is_some();
    if has_class {
        return Ok(());
    }
    let info = registry
        .kinds()
        .lookup("networking.k8s.io/v1", "IngressClass")
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let page = registry.list(&info, None, &ListOptions::cached()).await?;
    let Some(name) = newest_default(&page.items, &[DEFAULT_ANNOTATION]) else {
        return Ok(());
    };
    match ing.get_mut("spec") {
        Some(Value::Object(spec)) => {
            spec.insert("ingressClassName".into(), Value::String(name.to_string()));
        }
        _ => {
            if let Value::Object(o) = ing {
                o.insert("spec".into(), serde_json::json!({"ingressClassName": name}));
            }
        }
    }
    Ok(())
}
