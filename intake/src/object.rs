//! Identifying objects across the source, the cluster and the inventory:
//! group, kind, namespace and name (the version does not matter), with the
//! served kind that handles them (found in the kinds a render knew: built-in
//! kinds, the cluster's and the source's CustomResourceDefinitions), and the
//! order a sync applies them in.

use std::fmt;
use std::sync::Arc;

use schemas::KindInfo;
use schemas::kinds::Kinds;
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

    /// The served kind and key of an inventory entry, among `kinds`
    /// (`None` for kinds no longer served, e.g. a removed definition's).
    pub fn from_entry(e: &InventoryEntry, kinds: &Kinds) -> Option<(Arc<KindInfo>, ObjectKey)> {
        let info = kinds.lookup(&e.api_version, &e.kind).ok().or_else(|| {
            let group = e.api_version.rsplit_once('/').map_or("", |(g, _)| g);
            kinds
                .all()
                .iter()
                .find(|k| k.group == group && k.kind == e.kind)
                .cloned()
        })?;
        let key = ObjectKey {
            group: info.group.to_string(),
            kind: info.kind.to_string(),
            namespace: e.namespace.clone().filter(|_| info.namespaced),
            name: e.name.clone(),
        };
        Some((info, key))
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

/// The served kind of a key among `kinds` (its preferred version).
pub fn info_of(key: &ObjectKey, kinds: &Kinds) -> Option<Arc<KindInfo>> {
    kinds
        .all()
        .iter()
        .find(|i| i.group == key.group && i.kind == key.kind)
        .cloned()
}

/// Where built-in objects of a kind go in the apply order: Namespaces, then
/// ConfigMaps and Secrets, then workloads and everything else, then Services.
pub fn apply_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "ConfigMap" | "Secret" => 1,
        "Service" | "Endpoints" => 3,
        _ => 2,
    }
}

/// The rank of CustomResourceDefinitions: applied first (and waited for
/// until Established), pruned last.
pub const DEFINITIONS: u8 = 0;
/// The rank of custom resources: after every built-in kind.
pub const CUSTOM: u8 = 5;

/// Whether `info` is the CustomResourceDefinition kind.
pub fn is_definition(info: &KindInfo) -> bool {
    info.is("apiextensions.k8s.io", "CustomResourceDefinition")
}

/// Whether `key` names a CustomResourceDefinition.
pub fn is_definition_key(key: &ObjectKey) -> bool {
    key.group == "apiextensions.k8s.io" && key.kind == "CustomResourceDefinition"
}

/// Where objects of a kind go in a sync, `DEFINITIONS..=CUSTOM`:
/// CustomResourceDefinitions, then built-in kinds by [`apply_rank`], then
/// custom resources. Prune goes the other way.
pub fn sync_rank(info: &KindInfo) -> u8 {
    if is_definition(info) {
        DEFINITIONS
    } else if info.is_builtin() {
        1 + apply_rank(&info.kind)
    } else {
        CUSTOM
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_round_trip_through_inventory_entries() {
        let kinds = schemas::Registry::builtin().snapshot();
        let info = schemas::lookup("apps/v1", "Deployment").expect("kind");
        let k = ObjectKey::of(
            info,
            &json!({"metadata": {"name": "web", "namespace": "prod"}}),
        );
        assert_eq!(k.to_string(), "Deployment prod/web");
        assert_eq!(k.short("default"), "Deployment/web -n prod");
        assert_eq!(k.short("prod"), "Deployment/web");
        let (i2, k2) = ObjectKey::from_entry(&k.to_entry(info), &kinds).expect("served");
        assert_eq!((i2.kind.as_str(), k2), ("Deployment", k));
        let ns = schemas::lookup("v1", "Namespace").expect("kind");
        let k = ObjectKey::of(ns, &json!({"metadata": {"name": "a", "namespace": "x"}}));
        assert_eq!(k.namespace, None);
        assert!(apply_rank("Namespace") < apply_rank("Secret"));
        assert!(apply_rank("Secret") < apply_rank("Deployment"));
        assert!(apply_rank("Deployment") < apply_rank("Service"));
    }

    #[test]
    fn definitions_come_first_and_custom_resources_last() {
        let registry = schemas::Registry::builtin();
        let crd =
            schemas::lookup("apiextensions.k8s.io/v1", "CustomResourceDefinition").expect("kind");
        let ns = schemas::lookup("v1", "Namespace").expect("kind");
        let svc = schemas::lookup("v1", "Service").expect("kind");
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/crds/shop.example.com_orders.yaml"
        ))
        .expect("fixture");
        let decoded = schemas::decode_file("orders.yaml", &text);
        assert!(schemas::crd::register_from_manifests(&decoded.manifests, &registry).is_empty());
        let kinds = registry.snapshot();
        let order = kinds
            .lookup("shop.example.com/v1", "Order")
            .expect("custom kind");
        assert_eq!(
            [crd, ns, svc, &order].map(sync_rank),
            [DEFINITIONS, 1, 4, CUSTOM]
        );
        // an inventory entry of an older version finds the kind; without the definition, nothing
        let entry = InventoryEntry {
            api_version: "shop.example.com/v0".into(),
            kind: "Order".into(),
            namespace: Some("shop".into()),
            name: "o".into(),
        };
        let (info, key) = ObjectKey::from_entry(&entry, &kinds).expect("served");
        assert_eq!(
            (info.version.as_str(), key.to_string().as_str()),
            ("v1", "Order shop/o")
        );
        assert!(info_of(&key, &kinds).is_some());
        let builtin = schemas::Registry::builtin().snapshot();
        assert!(ObjectKey::from_entry(&entry, &builtin).is_none());
        assert!(info_of(&key, &builtin).is_none());
    }
}
