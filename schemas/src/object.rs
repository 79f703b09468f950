//! Typed objects: the [`Object`] bound every typed client and controller uses
//! (k8s-openapi's built-in types and korral's own), and small helpers the
//! generated types lack (metadata accessors, selector matching, tolerations).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Taint, Toleration, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Whether a k8s-openapi scope is namespaced.
pub trait ScopeInfo {
    /// True for namespaced kinds.
    const NAMESPACED: bool;
}

impl ScopeInfo for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl ScopeInfo for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// A typed kind: its identity (k8s-openapi's `Resource`), its metadata, and
/// its JSON form.
pub trait Object:
    k8s_openapi::Resource<Scope: ScopeInfo>
    + k8s_openapi::Metadata<Ty = ObjectMeta>
    + Serialize
    + DeserializeOwned
    + Clone
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Whether objects of this kind live in a namespace.
    const NAMESPACED: bool = <Self::Scope as ScopeInfo>::NAMESPACED;
}

impl<T> Object for T where
    T: k8s_openapi::Resource<Scope: ScopeInfo>
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// Accessors for optional metadata fields.
pub trait MetaExt {
    /// The name, or "" when unset.
    fn name_str(&self) -> &str;
    /// The namespace, or "" when unset.
    fn namespace_str(&self) -> &str;
    /// The labels, empty when unset.
    fn labels_map(&self) -> &BTreeMap<String, String>;
    /// The annotations, empty when unset.
    fn annotations_map(&self) -> &BTreeMap<String, String>;
    /// The uid, or "" when unset.
    fn uid_str(&self) -> &str;
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

impl MetaExt for ObjectMeta {
    fn name_str(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    fn namespace_str(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    fn labels_map(&self) -> &BTreeMap<String, String> {
        self.labels.as_ref().unwrap_or(&EMPTY)
    }

    fn annotations_map(&self) -> &BTreeMap<String, String> {
        self.annotations.as_ref().unwrap_or(&EMPTY)
    }

    fn uid_str(&self) -> &str {
        self.uid.as_deref().unwrap_or("")
    }
}

/// Label selector semantics.
pub trait SelectorExt {
    /// Whether the selector is empty (an empty selector matches everything).
    fn is_empty(&self) -> bool;
    /// Whether `labels` satisfy this selector.
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool;
}

impl SelectorExt for LabelSelector {
    fn is_empty(&self) -> bool {
        self.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && self.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let labels_ok = self
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        labels_ok
            && self.match_expressions.iter().flatten().all(|r| {
                let values = r.values.as_deref().unwrap_or_default();
                match r.operator.as_str() {
                    "In" => labels.get(&r.key).is_some_and(|v| values.contains(v)),
                    "NotIn" => labels.get(&r.key).is_none_or(|v| !values.contains(v)),
                    "Exists" => labels.contains_key(&r.key),
                    "DoesNotExist" => !labels.contains_key(&r.key),
                    _ => false,
                }
            })
    }
}

/// Selector labels written as a map (`a=b,c=d`), for Scale status and printing.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Resolves an absolute count or a percentage of `total`, rounding up or down
/// as the caller asks (Kubernetes rounds maxSurge up and maxUnavailable down).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct = s
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .ok_or_else(|| {
                    format!("invalid value {s:?}: must be an integer or a percentage like \"25%\"")
                })?;
            let num = pct * i64::from(total);
            let v = if round_up {
                (num + 99).div_euclid(100)
            } else {
                num.div_euclid(100)
            };
            i32::try_from(v).map_err(|_| format!("value {s:?} of {total} is out of range"))
        }
    }
}

/// An IntOrString as Kubernetes prints it (`8080`, `http`, `25%`).
pub fn int_or_string_text(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// Whether `toleration` tolerates `taint` (as Kubernetes' `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// The JSON names of the sources set on a volume (exactly one is valid).
pub fn volume_sources(v: &Volume) -> Vec<&'static str> {
    let set = [
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("cinder", v.cinder.is_some()),
        ("configMap", v.config_map.is_some()),
        ("csi", v.csi.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("emptyDir", v.empty_dir.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("flocker", v.flocker.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("image", v.image.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("nfs", v.nfs.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("projected", v.projected.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("rbd", v.rbd.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("secret", v.secret.is_some()),
        ("storageos", v.storageos.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
    ];
    set.into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn selectors_match_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(sel.matches(&labels(&[("app", "web")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(!sel.matches(&labels(&[("app", "api")])));
        assert!(LabelSelector::default().is_empty());
    }

    #[test]
    fn percentages_scale_with_rounding() {
        let pct = IntOrString::String("25%".into());
        assert_eq!(scaled_value(&pct, 10, true), Ok(3));
        assert_eq!(scaled_value(&pct, 10, false), Ok(2));
        assert!(scaled_value(&IntOrString::String("x".into()), 10, true).is_err());
    }

    #[test]
    fn namespaced_follows_the_scope() {
        const { assert!(<k8s_openapi::api::core::v1::Pod as Object>::NAMESPACED) };
        const { assert!(!<k8s_openapi::api::core::v1::Node as Object>::NAMESPACED) };
    }
}
