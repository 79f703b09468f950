//! The table of served kinds: identity (group, version, kind, plural, short
//! names, scope, categories, subresources) and, per kind, the typed decode,
//! defaulting and validation the rest of korral dispatches through.

use schemars::{Schema, SchemaGenerator};
use serde_json::Value;

use crate::apps::{Deployment, ReplicaSet};
use crate::coordination::Lease;
use crate::core::{ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service};
use crate::defaults::ApplyDefaults;
use crate::field_error::{FieldError, Reason};
use crate::korral::{DriftReport, GitSource};
use crate::path::{FieldPath, PathSeg};
use crate::resource::Resource;
use crate::validation::Validate;

/// A served kind with everything needed to handle it generically.
#[derive(Debug)]
pub struct KindInfo {
    /// API group, "" for core.
    pub group: &'static str,
    /// Version in the group.
    pub version: &'static str,
    /// `group/version`, or `version` for core.
    pub api_version: &'static str,
    /// The kind.
    pub kind: &'static str,
    /// The resource name in URLs.
    pub plural: &'static str,
    /// The lower-case singular name.
    pub singular: &'static str,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Whether objects are namespaced.
    pub namespaced: bool,
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources served under the object.
    pub subresources: &'static [&'static str],
    schema: fn(&mut SchemaGenerator) -> Schema,
    check: fn(&Value) -> Vec<FieldError>,
    default: fn(Value) -> Result<Value, FieldError>,
}

/// A kind with defaulting and validation.
pub trait Kind: Resource + ApplyDefaults + Validate {}
impl<T: Resource + ApplyDefaults + Validate> Kind for T {}

/// Decodes a JSON value into `T`, naming the field that does not fit.
pub fn decode_typed<T: Resource>(v: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let mut path = FieldPath::root();
        for seg in e.path().iter() {
            path = match seg {
                serde_path_to_error::Segment::Seq { index } => path.index(*index),
                serde_path_to_error::Segment::Map { key } => path.key(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => path.key(variant.clone()),
                serde_path_to_error::Segment::Unknown => path,
            };
        }
        let message = e.into_inner().to_string();
        FieldError {
            path,
            reason: if message.starts_with("unknown field") {
                Reason::UnknownField
            } else {
                Reason::Invalid
            },
            message,
        }
    })
}

fn check_kind<T: Kind>(v: &Value) -> Vec<FieldError> {
    match decode_typed::<T>(v) {
        Ok(obj) => obj.validate(),
        Err(e) => vec![e],
    }
}

fn default_kind<T: Kind>(v: Value) -> Result<Value, FieldError> {
    let mut obj = decode_typed::<T>(&v)?;
    obj.apply_defaults();
    serde_json::to_value(&obj).map_err(|e| FieldError {
        path: FieldPath::root(),
        reason: Reason::Invalid,
        message: e.to_string(),
    })
}

fn schema_kind<T: Kind>(generator: &mut SchemaGenerator) -> Schema {
    generator.root_schema_for::<T>()
}

macro_rules! kind_info {
    ($ty:ty, singular: $singular:literal, short: [$($short:literal),*], categories: [$($cat:literal),*], subresources: [$($sub:literal),*]) => {
        KindInfo {
            group: <$ty as Resource>::GROUP,
            version: <$ty as Resource>::VERSION,
            api_version: <$ty as Resource>::API_VERSION,
            kind: <$ty as Resource>::KIND,
            plural: <$ty as Resource>::PLURAL,
            singular: $singular,
            short_names: &[$($short),*],
            namespaced: <$ty as Resource>::NAMESPACED,
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
            schema: schema_kind::<$ty>,
            check: check_kind::<$ty>,
            default: default_kind::<$ty>,
        }
    };
}

static SERVED: &[KindInfo] = &[
    kind_info!(Namespace, singular: "namespace", short: ["ns"], categories: [], subresources: ["status", "finalize"]),
    kind_info!(Pod, singular: "pod", short: ["po"], categories: ["all"], subresources: ["status", "binding", "eviction", "log", "exec"]),
    kind_info!(Node, singular: "node", short: ["no"], categories: [], subresources: ["status", "proxy"]),
    kind_info!(Service, singular: "service", short: ["svc"], categories: ["all"], subresources: ["status"]),
    kind_info!(Endpoints, singular: "endpoints", short: ["ep"], categories: [], subresources: []),
    kind_info!(ConfigMap, singular: "configmap", short: ["cm"], categories: [], subresources: []),
    kind_info!(Secret, singular: "secret", short: [], categories: [], subresources: []),
    kind_info!(Event, singular: "event", short: ["ev"], categories: [], subresources: []),
    kind_info!(Deployment, singular: "deployment", short: ["deploy"], categories: ["all"], subresources: ["status", "scale"]),
    kind_info!(ReplicaSet, singular: "replicaset", short: ["rs"], categories: ["all"], subresources: ["status", "scale"]),
    kind_info!(Lease, singular: "lease", short: [], categories: [], subresources: []),
    kind_info!(GitSource, singular: "gitsource", short: ["gs"], categories: ["korral"], subresources: ["status", "sync"]),
    kind_info!(DriftReport, singular: "driftreport", short: ["drift"], categories: ["korral"], subresources: ["status"]),
];

/// Every served kind.
pub fn served() -> &'static [KindInfo] {
    SERVED
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
        /// The apiVersion korral serves it at.
        served: &'static str,
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
                "apiVersion {api_version:?} is not served for kind {kind}; use apiVersion: {served}"
            ),
            LookupError::UnknownKind { api_version, kind } => {
                let list = SERVED
                    .iter()
                    .map(|k| format!("{} {}", k.api_version, k.kind))
                    .collect::<Vec<_>>()
                    .join(", ");
                write!(
                    f,
                    "unknown kind {kind:?} (apiVersion {api_version:?}); korral serves: {list}"
                )
            }
        }
    }
}

/// Finds the served kind for an apiVersion and kind.
pub fn lookup(api_version: &str, kind: &str) -> Result<&'static KindInfo, LookupError> {
    if let Some(k) = SERVED
        .iter()
        .find(|k| k.api_version == api_version && k.kind == kind)
    {
        return Ok(k);
    }
    if let Some(k) = SERVED.iter().find(|k| k.kind == kind) {
        return Err(LookupError::WrongVersion {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            served: k.api_version,
        });
    }
    Err(LookupError::UnknownKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    })
}

/// Finds a served kind by group, version and plural resource name.
pub fn by_resource(group: &str, version: &str, plural: &str) -> Option<&'static KindInfo> {
    SERVED
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

impl KindInfo {
    /// The JSON Schema of the kind as served: generated from the types, with
    /// `apiVersion` and `kind` pinned and optional fields not nullable (the
    /// decoder drops explicit nulls before validating).
    pub fn json_schema(&self) -> Value {
        let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
            s.meta_schema = Some("https://json-schema.org/draft/2020-12/schema".into());
        });
        let mut generator = settings.into_generator();
        let schema = (self.schema)(&mut generator);
        let mut v = schema.to_value();
        crate::schema::finish_root(&mut v, self);
        v
    }

    /// Decodes `v` as this kind and runs the semantic checks. The schema check
    /// is separate (`schema::validate`) because it reports more precisely.
    pub fn check_typed(&self, v: &Value) -> Vec<FieldError> {
        (self.check)(v)
    }

    /// Applies the kind's defaults (as the API server does on write), and the
    /// `default` namespace to a namespaced object that names none.
    pub fn apply_defaults(&self, v: Value) -> Result<Value, FieldError> {
        let mut v = (self.default)(v)?;
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

    /// The file name of the committed JSON Schema, e.g. `deployment.json`.
    pub fn schema_file_name(&self) -> String {
        format!("{}.json", self.singular)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_identity() {
        for k in served() {
            assert_eq!(
                lookup(k.api_version, k.kind).map(|f| f.plural),
                Ok(k.plural)
            );
            assert_eq!(
                by_resource(k.group, k.version, k.plural).map(|f| f.kind),
                Some(k.kind)
            );
        }
        assert_eq!(
            lookup("apps/v1", "Deployment").map(|k| k.api_version),
            Ok("apps/v1")
        );
        assert_eq!(lookup("v1", "Pod").map(|k| k.api_version), Ok("v1"));
    }

    #[test]
    fn wrong_versions_and_unknown_kinds_say_what_is_served() {
        let e = lookup("extensions/v1beta1", "Deployment").expect_err("old version");
        assert!(e.to_string().contains("use apiVersion: apps/v1"), "{e}");
        let e = lookup("networking.k8s.io/v1", "Ingress").expect_err("unknown");
        assert!(e.to_string().contains("korral serves: v1 Namespace"), "{e}");
    }

    #[test]
    fn defaulting_sets_the_default_namespace_only_for_namespaced_kinds() {
        let cm = lookup("v1", "ConfigMap").expect("cm");
        let v = cm
            .apply_defaults(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}))
            .expect("defaults");
        assert_eq!(v["metadata"]["namespace"], "default");
        let ns = lookup("v1", "Namespace").expect("ns");
        let v = ns
            .apply_defaults(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}))
            .expect("defaults");
        assert!(v["metadata"].get("namespace").is_none());
    }
}
