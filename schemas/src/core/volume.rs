//! core/v1 pod volumes: emptyDir, configMap, secret, hostPath, projected,
//! downwardAPI, and persistentVolumeClaim/nfs (accepted; runtimes report them unsupported).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::core::container::{ObjectFieldSelector, ResourceFieldSelector};
use crate::quantity::Quantity;

/// A named volume that containers of the pod may mount. Exactly one source is set.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// Unique within the pod (DNS label).
    pub name: String,
    /// A scratch directory that lives as long as the pod.
    pub empty_dir: Option<EmptyDirVolumeSource>,
    /// Keys of a ConfigMap as files.
    pub config_map: Option<ConfigMapVolumeSource>,
    /// Keys of a Secret as files.
    pub secret: Option<SecretVolumeSource>,
    /// A directory or file of the node.
    pub host_path: Option<HostPathVolumeSource>,
    /// Several sources projected into one directory.
    pub projected: Option<ProjectedVolumeSource>,
    /// Pod fields as files.
    #[serde(rename = "downwardAPI")]
    pub downward_api: Option<DownwardApiVolumeSource>,
    /// A claim on a persistent volume.
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
    /// An NFS export.
    pub nfs: Option<NfsVolumeSource>,
}

impl Volume {
    /// The names of the sources set on this volume (exactly one is valid).
    pub fn sources(&self) -> Vec<&'static str> {
        let mut s = Vec::new();
        let set = [
            ("emptyDir", self.empty_dir.is_some()),
            ("configMap", self.config_map.is_some()),
            ("secret", self.secret.is_some()),
            ("hostPath", self.host_path.is_some()),
            ("projected", self.projected.is_some()),
            ("downwardAPI", self.downward_api.is_some()),
            (
                "persistentVolumeClaim",
                self.persistent_volume_claim.is_some(),
            ),
            ("nfs", self.nfs.is_some()),
        ];
        for (name, present) in set {
            if present {
                s.push(name);
            }
        }
        s
    }
}

/// A scratch directory.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmptyDirVolumeSource {
    /// `""` (disk) or `Memory` (tmpfs).
    pub medium: Option<String>,
    /// The most the volume may hold.
    pub size_limit: Option<Quantity>,
}

/// A key of a ConfigMap or Secret projected to a file.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyToPath {
    /// The key.
    pub key: String,
    /// The relative file path.
    pub path: String,
    /// The file mode (octal 0000–0777 written as a decimal number).
    pub mode: Option<i32>,
}

/// A ConfigMap as files.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapVolumeSource {
    /// The ConfigMap's name.
    pub name: Option<String>,
    /// Which keys to project where; all keys when unset.
    pub items: Option<Vec<KeyToPath>>,
    /// Mode of the files (default 0644).
    pub default_mode: Option<i32>,
    /// Whether the ConfigMap may be missing.
    pub optional: Option<bool>,
}

/// A Secret as files.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretVolumeSource {
    /// The Secret's name.
    pub secret_name: Option<String>,
    /// Which keys to project where; all keys when unset.
    pub items: Option<Vec<KeyToPath>>,
    /// Mode of the files (default 0644).
    pub default_mode: Option<i32>,
    /// Whether the Secret may be missing.
    pub optional: Option<bool>,
}

/// A path on the node.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostPathVolumeSource {
    /// The path on the node.
    pub path: String,
    /// `""`, `DirectoryOrCreate`, `Directory`, `FileOrCreate`, `File`, `Socket`, `CharDevice`, `BlockDevice`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
}

/// Several sources in one directory.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectedVolumeSource {
    /// The sources.
    pub sources: Option<Vec<VolumeProjection>>,
    /// Mode of the files.
    pub default_mode: Option<i32>,
}

/// One projected source.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeProjection {
    /// A ConfigMap.
    pub config_map: Option<ConfigMapProjection>,
    /// A Secret.
    pub secret: Option<SecretProjection>,
    /// Pod fields.
    #[serde(rename = "downwardAPI")]
    pub downward_api: Option<DownwardApiProjection>,
    /// A service account token (accepted, not supported).
    pub service_account_token: Option<serde_json::Value>,
    /// A cluster trust bundle (accepted, not supported).
    pub cluster_trust_bundle: Option<serde_json::Value>,
}

/// A projected ConfigMap.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapProjection {
    /// The ConfigMap's name.
    pub name: Option<String>,
    /// Which keys to project where.
    pub items: Option<Vec<KeyToPath>>,
    /// Whether the ConfigMap may be missing.
    pub optional: Option<bool>,
}

/// A projected Secret.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretProjection {
    /// The Secret's name.
    pub name: Option<String>,
    /// Which keys to project where.
    pub items: Option<Vec<KeyToPath>>,
    /// Whether the Secret may be missing.
    pub optional: Option<bool>,
}

/// Projected pod fields.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DownwardApiProjection {
    /// The files.
    pub items: Option<Vec<DownwardApiVolumeFile>>,
}

/// Pod fields as files.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DownwardApiVolumeSource {
    /// The files.
    pub items: Option<Vec<DownwardApiVolumeFile>>,
    /// Mode of the files.
    pub default_mode: Option<i32>,
}

/// One downward API file.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DownwardApiVolumeFile {
    /// The relative file path.
    pub path: String,
    /// A pod field.
    pub field_ref: Option<ObjectFieldSelector>,
    /// A container resource.
    pub resource_field_ref: Option<ResourceFieldSelector>,
    /// The file mode.
    pub mode: Option<i32>,
}

/// A persistent volume claim reference.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolumeClaimVolumeSource {
    /// The claim's name.
    pub claim_name: String,
    /// Mount read-only.
    pub read_only: Option<bool>,
}

/// An NFS export.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NfsVolumeSource {
    /// The server.
    pub server: String,
    /// The exported path.
    pub path: String,
    /// Mount read-only.
    pub read_only: Option<bool>,
}
