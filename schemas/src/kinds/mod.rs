//! Served kinds as data. A [`KindInfo`] is one kind at one version: its
//! identity (group, version, kind, plural, short names, scope, categories,
//! subresources), where it is stored, and its behaviour — a built-in kind's
//! typed defaulting and validation (`builtin.rs`), or a custom kind's schema
//! from its CustomResourceDefinition (`crate::crd`). A [`Registry`] holds the
//! kinds a server or a validation run knows; built-in kinds are in every one.

mod builtin;
mod registry;

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::crd::CustomKind;
use crate::field_error::FieldError;
use crate::path::{FieldPath, PathSeg};
use crate::schema::CompiledSchema;

pub use builtin::{BuiltinOps, builtin_kinds, decode_typed, lookup};
pub use registry::{Kinds, Registry, compare_versions};

/// A served kind at one version, with everything needed to handle it generically.
#[derive(Clone, Debug)]
pub struct KindInfo {
    /// API group, "" for core.
    pub group: String,
    /// Version in the group.
    pub version: String,
    /// `group/version`, or `version` for core.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// The kind of its lists (`PodList`).
    pub list_kind: String,
    /// The resource name in URLs.
    pub plural: String,
    /// The lower-case singular name.
    pub singular: String,
    /// kubectl short names.
    pub short_names: Vec<String>,
    /// Whether objects are namespaced.
    pub namespaced: bool,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Subresources served under the object.
    pub subresources: Vec<String>,
    /// The verbs of the main resource.
    pub verbs: Vec<&'static str>,
    /// The first part of every store key of this kind (shared by all versions).
    pub storage_prefix: String,
    /// The apiVersion objects are stored at.
    pub storage_version: String,
    /// A warning returned with every request, when this version is deprecated.
    pub deprecation_warning: Option<String>,
    /// Typed (built-in) or schema-driven (custom) behaviour.
    pub behavior: Behavior,
    compiled: OnceLock<Arc<CompiledSchema>>,
}

/// How a kind is defaulted, validated and converted.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// A built-in kind: k8s-openapi types plus korral's rules.
    Builtin(BuiltinOps),
    /// A custom resource: the schema and rules of its CustomResourceDefinition.
    Custom(Arc<CustomKind>),
}

/// The verbs of an ordinary resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl KindInfo {
    /// A kind with the given identity; `storage_prefix` and `storage_version`
    /// default to the plural and this version.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        singular: &str,
        namespaced: bool,
        behavior: Behavior,
    ) -> KindInfo {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        KindInfo {
            group: group.to_string(),
            version: version.to_string(),
            storage_version: api_version.clone(),
            api_version,
            kind: kind.to_string(),
            list_kind: format!("{kind}List"),
            plural: plural.to_string(),
            singular: singular.to_string(),
            short_names: Vec::new(),
            namespaced,
            categories: Vec::new(),
            subresources: Vec::new(),
            verbs: ALL_VERBS.to_vec(),
            storage_prefix: plural.to_string(),
            deprecation_warning: None,
            behavior,
            compiled: OnceLock::new(),
        }
    }

    /// The name OpenAPI documents give the kind's schema: Kubernetes' own for
    /// built-in kinds (`io.k8s.api.apps.v1.Deployment`), the reversed group
    /// for others (`com.example.shop.v1.Order`, `dev.korral.v1alpha1.GitSource`).
    pub fn schema_name(&self) -> String {
        match &self.behavior {
            Behavior::Builtin(ops) => {
                let name = (ops.name)();
                if name.contains('.') {
                    return name.into_owned();
                }
            }
            Behavior::Custom(_) => {}
        }
        let reversed: Vec<&str> = self.group.split('.').rev().collect();
        format!("{}.{}.{}", reversed.join("."), self.version, self.kind)
    }

    /// Whether this is a built-in kind (k8s-openapi or korral's own).
    pub fn is_builtin(&self) -> bool {
        matches!(self.behavior, Behavior::Builtin(_))
    }

    /// The custom kind's definition, for custom resources.
    pub fn custom(&self) -> Option<&CustomKind> {
        match &self.behavior {
            Behavior::Custom(c) => Some(c),
            Behavior::Builtin(_) => None,
        }
    }

    /// Whether `sub` is served under objects of this kind.
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.iter().any(|s| s == sub)
    }

    /// Whether `status` is written only through the `status` subresource.
    pub fn has_status_subresource(&self) -> bool {
        self.has_subresource("status")
    }

    /// Whether this kind is `group`'s `kind` (a convenient match for the
    /// few places that treat one built-in kind specially).
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind
    }

    /// The group-qualified resource name Kubernetes uses in messages
    /// (`pods`, `deployments.apps`).
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The group-qualified kind Kubernetes uses in messages (`Pod`, `Deployment.apps`).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// The kind's schema, generated (built-in) or converted from its CRD
    /// (custom), compiled once.
    pub fn compiled(&self) -> &Arc<CompiledSchema> {
        self.compiled.get_or_init(|| {
            let style = match self.behavior {
                Behavior::Builtin(_) => crate::schema::Style::Korral,
                Behavior::Custom(_) => crate::schema::Style::KubeOpenApi,
            };
            Arc::new(CompiledSchema::new(self.json_schema(), style))
        })
    }

    /// The JSON Schema of the kind as served (draft 2020-12, unknown fields
    /// refused, `apiVersion` and `kind` pinned).
    pub fn json_schema(&self) -> Value {
        match &self.behavior {
            Behavior::Builtin(ops) => crate::schema::builtin_root(self, ops),
            Behavior::Custom(c) => c.json_schema(self),
        }
    }

    /// Applies the kind's defaults (as the API server does on write), and the
    /// `default` namespace to a namespaced object that names none.
    pub fn apply_defaults(&self, v: Value) -> Result<Value, FieldError> {
        let mut v = match &self.behavior {
            Behavior::Builtin(ops) => (ops.default)(v)?,
            Behavior::Custom(c) => c.apply_defaults(self, v),
        };
        if self.namespaced
            && let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut)
            && meta
                .get("namespace")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            meta.insert("namespace".into(), Value::String("default".into()));
        }
        Ok(v)
    }

    /// The semantic rules of the kind (what a schema cannot say), on an object
    /// that passed its schema.
    pub fn check_typed(&self, v: &Value) -> Vec<FieldError> {
        match &self.behavior {
            Behavior::Builtin(ops) => (ops.validate)(v),
            Behavior::Custom(c) => c.validate(self, v, None),
        }
    }

    /// The rules of an update: immutable fields and transitions.
    pub fn validate_update(&self, old: &Value, new: &Value) -> Vec<FieldError> {
        match &self.behavior {
            Behavior::Builtin(ops) => (ops.validate_update)(old, new),
            Behavior::Custom(c) => c.validate(self, new, Some(old)),
        }
    }

    /// The object as this version shows it, from any version of the kind
    /// (the stored one included).
    pub fn convert_to(&self, v: Value, api_version: &str) -> Result<Value, String> {
        let from = v
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or(api_version)
            .to_string();
        if from == api_version {
            return Ok(v);
        }
        match &self.behavior {
            Behavior::Builtin(ops) => match ops.convert {
                Some(convert) => convert(v, &from, api_version),
                None => Err(format!(
                    "no conversion of {} from {from} to {api_version}",
                    self.kind
                )),
            },
            Behavior::Custom(_) => {
                let mut v = v;
                if let Some(m) = v.as_object_mut() {
                    m.insert("apiVersion".into(), Value::String(api_version.to_string()));
                }
                Ok(v)
            }
        }
    }

    /// The file name of the committed JSON Schema, e.g. `deployment.json`
    /// (qualified by group and version when another kind has the same name:
    /// `event_events.k8s.io_v1.json`).
    pub fn schema_file_name(&self) -> String {
        match builtin_kinds()
            .iter()
            .filter(|k| k.singular == self.singular)
            .count()
        {
            0 | 1 => format!("{}.json", self.singular),
            _ => {
                let group = if self.group.is_empty() {
                    "core"
                } else {
                    &self.group
                };
                format!("{}_{group}_{}.json", self.singular, self.version)
            }
        }
    }
}

/// Why a document's apiVersion/kind is not served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// The kind exists, in other versions.
    WrongVersion {
        /// The apiVersion given.
        api_version: String,
        /// The kind given.
        kind: String,
        /// The apiVersions the kind is served at.
        served: Vec<String>,
    },
    /// No served kind has this name.
    UnknownKind {
        /// The apiVersion given.
        api_version: String,
        /// The kind given.
        kind: String,
    },
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::WrongVersion {
                api_version,
                kind,
                served,
            } => write!(
                f,
                "apiVersion {api_version:?} is not served for kind {kind}; use apiVersion: {}",
                served.join(" or ")
            ),
            LookupError::UnknownKind { api_version, kind } => {
                let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
                if group.contains('.') && !group.ends_with(".k8s.io") {
                    write!(
                        f,
                        "no kind {kind:?} is served at apiVersion {api_version:?}: it looks like a custom resource; \
                         provide its CustomResourceDefinition (in the same input, or with --crds DIR), or read the \
                         definitions from a cluster (--kubeconfig)"
                    )
                } else {
                    write!(
                        f,
                        "no kind {kind:?} is served at apiVersion {api_version:?} (`kubectl api-resources` lists what is)"
                    )
                }
            }
        }
    }
}

/// Whether a path segment list starts with the given field names.
pub fn path_starts_with(path: &FieldPath, fields: &[&str]) -> bool {
    path.segments().len() >= fields.len()
        && path
            .segments()
            .iter()
            .zip(fields)
            .all(|(s, f)| matches!(s, PathSeg::Key(k) if k == f))
}
