//! Identifying objects across the source, the cluster and the inventory:
//! group, kind, namespace and name (the version does not matter), with the
//! served kind that handles them.

use std::fmt;

use schemas::KindInfo;
use schemas::korral::InventoryEntry;
use serde_json::Value;

/// One object's identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// API group ("" for core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

impl ObjectKey {
    /// The key of an object of kind `info` (namespace dropped for cluster-scoped kinds).
    pub fn of(info: &KindInfo, object: &Value) -> ObjectKey {
        let meta = &object["metadata"];
        ObjectKey {
            group: info.group.to_string(),
            kind: info.kind.to_string(),
            namespace: if info.namespaced {
                meta["namespace"].as_str().map(str::to_string)
            } else {
                None
            },
            name: meta["name"].as_str().unwrap_or("").to_string(),
        }
    }

    /// The served kind and key of an inventory entry (`None` for kinds no longer served).
    pub fn from_entry(e: &InventoryEntry) -> Option<(&'static KindInfo, ObjectKey)> {
        let info = schemas::lookup(&e.api_version, &e.kind).ok().or_else(|| {
            let group = e.api_version.rsplit_once('/').map_or("", |(g, _)| g);
            schemas::builtin_kinds()
                .iter()
                .find(|k| k.group == group && k.kind == e.kind)
                .map(|k| &**k)
        })?;
        Some((
            info,
            ObjectKey {
                group: info.group.to_string(),
                kind: info.kind.to_string(),
                namespace: e.namespace.clone().filter(|_| info.namespaced),
                name: e.name.clone(),
            },
        ))
    }

    /// The inventory entry of this key.
    pub fn to_entry(&self, info: &KindInfo) -> InventoryEntry {
        InventoryEntry {
            api_version: info.api_version.to_string(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// `Kind/name`, with ` -n NAMESPACE` when not in `home`.
    pub fn short(&self, home: &str) -> String {
        match &self.namespace {
            Some(ns) if ns != home => format!("{}/{} -n {ns}", self.kind, self.name),
            _ => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// The served kind of a key.
pub fn info_of(key: &ObjectKey) -> Option<&'static KindInfo> {
    schemas::builtin_kinds()
        .iter()
        .find(|i| i.group == key.group && i.kind == key.kind)
        .map(|i| &**i)
}

/// Where objects of a kind go in the apply order: Namespaces, then
/// ConfigMaps and Secrets, then workloads and everything else, then Services.
pub fn apply_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "ConfigMap" | "Secret" => 1,
        "Service" | "Endpoints" => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_round_trip_through_inventory_entries() {
        let info = schemas::lookup("apps/v1", "Deployment").expect("kind");
        let k = ObjectKey::of(
            info,
            &json!({"metadata": {"name": "web", "namespace": "prod"}}),
        );
        assert_eq!(k.to_string(), "Deployment prod/web");
        assert_eq!(k.short("default"), "Deployment/web -n prod");
        assert_eq!(k.short("prod"), "Deployment/web");
        let (i2, k2) = ObjectKey::from_entry(&k.to_entry(info)).expect("served");
        assert_eq!((i2.kind.as_str(), k2), ("Deployment", k));
        let ns = schemas::lookup("v1", "Namespace").expect("kind");
        let k = ObjectKey::of(ns, &json!({"metadata": {"name": "a", "namespace": "x"}}));
        assert_eq!(k.namespace, None);
        assert!(apply_rank("Namespace") < apply_rank("Secret"));
        assert!(apply_rank("Secret") < apply_rank("Deployment"));
        assert!(apply_rank("Deployment") < apply_rank("Service"));
    }
}
