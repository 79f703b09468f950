//! korral.dev/v1alpha1: korral's own kinds, `GitSource` (a Git repository or
//! folder the cluster converges to), `DriftReport` (what differs) and
//! `Notifier` (where to send word of syncs, failures, drift and heals).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};

/// Implements k8s-openapi's `Resource` and `Metadata` for a korral kind.
macro_rules! impl_resource {
    ($ty:ident, plural: $plural:literal) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = "korral.dev/v1alpha1";
            const GROUP: &'static str = "korral.dev";
            const KIND: &'static str = stringify!($ty);
            const VERSION: &'static str = "v1alpha1";
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::Metadata for $ty {
            type Ty = ObjectMeta;

            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// A source of manifests: a Git repository (`url`) or a local folder (`path` only).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSource {
    /// `korral.dev/v1alpha1`.
    pub api_version: Option<String>,
    /// `GitSource`.
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Where to read manifests and how to apply them.
    pub spec: Option<GitSourceSpec>,
    /// What the last syncs did.
    pub status: Option<GitSourceStatus>,
}
impl_resource!(GitSource, plural: "gitsources");

/// Where to read manifests and how to apply them.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSourceSpec {
    /// Repository URL (https, file:// or a local path); unset for a folder source.
    pub url: Option<String>,
    /// Branch, tag or commit (default: branch `main`).
    #[serde(rename = "ref")]
    pub ref_: Option<GitRef>,
    /// Sub-folder of the repository, or the folder of a folder source.
    pub path: Option<String>,
    /// How often to poll, e.g. `60s`, `5m` (default 60s).
    pub interval: Option<String>,
    /// Delete objects that left the source (default false).
    pub prune: Option<bool>,
    /// Undo changes made to the live objects outside the source (default false).
    pub self_heal: Option<bool>,
    /// Stop syncing while true.
    pub suspend: Option<bool>,
    /// Namespace for namespaced objects that name none (default: the source's).
    pub target_namespace: Option<String>,
    /// A ServiceAccount in the source's namespace: the source applies,
    /// prunes and heals as that account (impersonated), so RBAC decides
    /// what it may touch (default: intake's own identity).
    pub service_account_name: Option<String>,
    /// How a path holding a `kustomization.yaml` is built.
    pub kustomize: Option<KustomizeSpec>,
    /// Variable substitution on the rendered objects, as Flux's
    /// `spec.postBuild`.
    pub post_build: Option<PostBuild>,
    /// How long what a sync applied may take to become healthy (and each
    /// sync wave and hook Job), e.g. `2m` (default: the interval).
    pub timeout: Option<String>,
    /// GitSources that must be Ready before this one syncs (Flux's
    /// `spec.dependsOn`); a cycle is refused.
    pub depends_on: Option<Vec<DependencyReference>>,
}

/// Another GitSource a source depends on.
#[skip_serializing_none]
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DependencyReference {
    /// Its name.
    pub name: String,
    /// Its namespace (default: the dependent source's).
    pub namespace: Option<String>,
}

/// How a kustomization is built (with the real kustomize).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KustomizeSpec {
    /// Allow remote resources, bases and components (URLs, `github.com/…`,
    /// `git@…`, `?ref=`); default false: such a kustomization is refused.
    pub allow_remote_bases: Option<bool>,
    /// Which tool builds: `auto` (default: `kustomize` on PATH, else
    /// `kubectl kustomize`), `kustomize` or `kubectl`.
    pub tool: Option<String>,
}

/// Variable substitution after the build, as Flux's `spec.postBuild`:
/// `${var}`, `${var:=default}`; `$${var}` is left as `${var}`; undefined
/// variables become empty; objects annotated or labelled
/// `kustomize.toolkit.fluxcd.io/substitute: disabled` are left alone.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostBuild {
    /// Variables and their values; they take precedence over `substituteFrom`.
    pub substitute: Option<BTreeMap<String, String>>,
    /// ConfigMaps and Secrets (in the source's namespace) whose data are
    /// variables; later ones override earlier ones.
    pub substitute_from: Option<Vec<SubstituteReference>>,
}

/// A ConfigMap or Secret holding variables.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubstituteReference {
    /// `ConfigMap` or `Secret`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// A missing object is skipped instead of failing the sync (default false).
    pub optional: Option<bool>,
}

/// A Git reference; exactly one field is set.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitRef {
    /// A branch.
    pub branch: Option<String>,
    /// A tag.
    pub tag: Option<String>,
    /// A commit SHA.
    pub commit: Option<String>,
}

/// What the last syncs of a source did.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSourceStatus {
    /// The generation observed.
    pub observed_generation: Option<i64>,
    /// The revision last fetched (commit SHA, or content digest for a folder).
    pub last_fetched_revision: Option<String>,
    /// The revision last applied successfully.
    pub last_applied_revision: Option<String>,
    /// When the last sync ended.
    pub last_sync_time: Option<Time>,
    /// Objects created or changed by the last sync.
    pub applied: Option<i64>,
    /// Objects already as desired in the last sync.
    pub unchanged: Option<i64>,
    /// Objects deleted by the last sync.
    pub pruned: Option<i64>,
    /// What this source owns.
    pub inventory: Option<Vec<InventoryEntry>>,
    /// Ready, Stalled, Reconciling.
    pub conditions: Option<Vec<Condition>>,
    /// Why the last sync failed.
    pub last_error: Option<SyncError>,
    /// The `korral.dev/sync-requested-at` annotation value of the last sync
    /// request handled (so a client knows when its request is done).
    pub last_handled_sync_request: Option<String>,
}

/// One object a source owns.
#[skip_serializing_none]
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InventoryEntry {
    /// Its apiVersion.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its namespace, if namespaced.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

/// The errors that stopped a sync.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncError {
    /// The revision that failed.
    pub revision: Option<String>,
    /// Every error found.
    pub errors: Option<Vec<SourceError>>,
}

/// One error in a manifest.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceError {
    /// The file, relative to the source.
    pub file: Option<String>,
    /// The 1-based line.
    pub line: Option<i64>,
    /// The 0-based document index in the file.
    pub document: Option<i64>,
    /// `Kind namespace/name` where known.
    pub object: Option<String>,
    /// The JSON path of the field, e.g. `spec.template.spec.containers[0].image`.
    pub path: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

/// What differs between a source and the live cluster.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DriftReport {
    /// `korral.dev/v1alpha1`.
    pub api_version: Option<String>,
    /// `DriftReport`.
    pub kind: Option<String>,
    /// Standard object metadata (named after the source).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Which source was compared.
    pub spec: Option<DriftReportSpec>,
    /// The differences.
    pub status: Option<DriftReportStatus>,
}
impl_resource!(DriftReport, plural: "driftreports");

/// Which source was compared.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DriftReportSpec {
    /// The GitSource's name (same namespace).
    pub source: String,
}

/// The differences found.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DriftReportStatus {
    /// The source revision compared.
    pub revision: Option<String>,
    /// When the comparison ran.
    pub checked_at: Option<Time>,
    /// Whether anything differs.
    pub drifted: Option<bool>,
    /// Objects in the source but not in the cluster.
    pub missing: Option<Vec<InventoryEntry>>,
    /// Objects the source owns in the cluster but no longer declares.
    pub extra: Option<Vec<InventoryEntry>>,
    /// Objects whose fields differ.
    pub modified: Option<Vec<ObjectDrift>>,
}

/// The drifted fields of one object.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectDrift {
    /// The object.
    pub object: InventoryEntry,
    /// The kustomization it was built from (`overlays/prod/kustomization.yaml`,
    /// with `(from FILE)` when kustomize recorded its origin); unset for an
    /// object read from a manifest file.
    pub built_from: Option<String>,
    /// The fields that differ.
    pub fields: Option<Vec<FieldDrift>>,
}

/// One drifted field.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldDrift {
    /// The field path.
    pub path: String,
    /// The value in the source (masked for Secrets).
    pub desired: Option<serde_json::Value>,
    /// The live value (masked for Secrets).
    pub live: Option<serde_json::Value>,
    /// The field manager that last set the live value.
    pub manager: Option<String>,
    /// When that manager last wrote the object (from `managedFields`).
    pub time: Option<Time>,
}

/// Where to send notifications about GitSources, as Flux's Provider and
/// Alert in one object: every sync, failure, drift and heal of the sources
/// it names (in its namespace) at or above its severity.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notifier {
    /// `korral.dev/v1alpha1`.
    pub api_version: Option<String>,
    /// `Notifier`.
    pub kind: Option<String>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Where and what to send.
    pub spec: Option<NotifierSpec>,
}
impl_resource!(Notifier, plural: "notifiers");

/// Where and what a Notifier sends.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifierSpec {
    /// `generic` (JSON), `generic-hmac` (JSON signed with
    /// `X-Signature: sha256=<hex>`) or `slack` (a Slack-compatible payload).
    #[serde(rename = "type")]
    pub type_: String,
    /// The URL posted to (or the Secret's `address` key).
    pub address: Option<String>,
    /// A Secret in the Notifier's namespace: `token` is the HMAC key of
    /// `generic-hmac`; `address` overrides `spec.address`.
    pub secret_ref: Option<LocalObjectReference>,
    /// The GitSources reported (`*` for all in the namespace; default all).
    pub event_sources: Option<Vec<LocalObjectReference>>,
    /// `info` (everything, default) or `error` (failures and drift only).
    pub event_severity: Option<String>,
    /// Send nothing while true.
    pub suspend: Option<bool>,
}

/// An object in the same namespace, by name.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    /// Its name.
    pub name: String,
}
