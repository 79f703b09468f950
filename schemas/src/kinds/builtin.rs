//! The built-in kinds: every kind of a Kubernetes 1.33 cluster that users
//! keep in repositories (types from k8s-openapi) and korral's own
//! (`korral.dev`), each with its names, scope, subresources and the typed
//! defaulting, validation and conversion the rest of korral dispatches through.

use std::sync::{Arc, OnceLock};

use k8s_openapi::api::{
    admissionregistration::v1 as admissionregistration, apps::v1 as apps,
    autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling, batch::v1 as batch,
    certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, events::v1 as events, networking::v1 as networking,
    node::v1 as node, policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling,
    storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

use crate::conversion;
use crate::defaults::ApplyDefaults;
use crate::field_error::{FieldError, Reason};
use crate::kinds::{Behavior, KindInfo, LookupError};
use crate::korral::{DriftReport, GitSource, Notifier};
use crate::object::Object;
use crate::path::FieldPath;
use crate::validation::Validate;

/// Converts an object between two versions of its kind (`from`, `to`).
pub(crate) type ConvertFn = fn(Value, &str, &str) -> Result<Value, String>;

/// The typed operations of a built-in kind.
#[derive(Clone, Copy, Debug)]
pub struct BuiltinOps {
    /// The kind's JSON Schema (schemars).
    pub(crate) schema: fn(&mut SchemaGenerator) -> Schema,
    /// Decode, default, encode.
    pub(crate) default: fn(Value) -> Result<Value, FieldError>,
    /// Decode and run the semantic rules.
    pub(crate) validate: fn(&Value) -> Vec<FieldError>,
    /// Decode both and run the update rules.
    pub(crate) validate_update: fn(&Value, &Value) -> Vec<FieldError>,
    /// Converts between the versions the kind is served at (from, to).
    pub(crate) convert: Option<ConvertFn>,
    /// The schema's name (`io.k8s.api.core.v1.Pod`).
    pub(crate) name: fn() -> std::borrow::Cow<'static, str>,
}

/// A kind with typed defaulting and validation.
pub trait BuiltinKind: Object + JsonSchema + ApplyDefaults + Validate {}
impl<T: Object + JsonSchema + ApplyDefaults + Validate> BuiltinKind for T {}

/// Decodes a JSON value into `T`, naming the field that does not fit.
pub fn decode_typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, FieldError> {
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
            reason: Reason::Invalid,
            message: format!("Invalid value: {message}"),
        }
    })
}

fn validate_kind<T: BuiltinKind>(v: &Value) -> Vec<FieldError> {
    let mut errors = T::check_json(v);
    let mut v = v.clone();
    // the rest is checked without the values that cannot decode, so that one
    // bad value does not hide the object's other problems
    if !errors
        .iter()
        .all(|e| crate::check::remove_field(&mut v, &e.path))
    {
        return errors;
    }
    T::normalize_json(&mut v);
    match decode_typed::<T>(&v) {
        Ok(obj) => {
            let bad: Vec<FieldPath> = errors.iter().map(|e| e.path.clone()).collect();
            errors.extend(
                obj.validate()
                    .into_iter()
                    .filter(|e| !bad.iter().any(|b| e.path.starts_with(b))),
            );
            errors
        }
        Err(e) => {
            errors.push(e);
            errors
        }
    }
}

fn validate_update_kind<T: BuiltinKind>(old: &Value, new: &Value) -> Vec<FieldError> {
    let (mut old, mut new) = (old.clone(), new.clone());
    T::normalize_json(&mut old);
    T::normalize_json(&mut new);
    match (decode_typed::<T>(&old), decode_typed::<T>(&new)) {
        (Ok(old), Ok(new)) => new.validate_update(&old),
        (_, Err(e)) => vec![e],
        (Err(_), Ok(_)) => Vec::new(),
    }
}

fn default_kind<T: BuiltinKind>(mut v: Value) -> Result<Value, FieldError> {
    T::normalize_json(&mut v);
    let mut obj = decode_typed::<T>(&v)?;
    obj.apply_defaults();
    serde_json::to_value(&obj).map_err(|e| FieldError {
        path: FieldPath::root(),
        reason: Reason::Invalid,
        message: e.to_string(),
    })
}

fn schema_kind<T: BuiltinKind>(generator: &mut SchemaGenerator) -> Schema {
    generator.root_schema_for::<T>()
}

fn ops<T: BuiltinKind>() -> BuiltinOps {
    BuiltinOps {
        schema: schema_kind::<T>,
        default: default_kind::<T>,
        validate: validate_kind::<T>,
        validate_update: validate_update_kind::<T>,
        convert: None,
        name: <T as JsonSchema>::schema_name,
    }
}

/// A built-in kind's table entry.
struct Entry {
    info: KindInfo,
}

impl Entry {
    fn new<T: BuiltinKind>(singular: &str) -> Entry {
        Entry {
            info: KindInfo::new(
                T::GROUP,
                T::VERSION,
                T::KIND,
                T::URL_PATH_SEGMENT,
                singular,
                T::NAMESPACED,
                Behavior::Builtin(ops::<T>()),
            ),
        }
    }

    fn short(mut self, names: &[&str]) -> Entry {
        self.info.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn categories(mut self, names: &[&str]) -> Entry {
        self.info.categories = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn sub(mut self, names: &[&str]) -> Entry {
        self.info.subresources = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Served at another version too: stored at `storage_version`, converted by `convert`.
    fn stored_as(
        mut self,
        storage_version: &str,
        convert: fn(Value, &str, &str) -> Result<Value, String>,
    ) -> Entry {
        self.info.storage_version = storage_version.to_string();
        if let Behavior::Builtin(ops) = &mut self.info.behavior {
            ops.convert = Some(convert);
        }
        self
    }
}

const ALL: &[&str] = &["all"];
const API_EXTENSIONS: &[&str] = &["api-extensions"];

fn table() -> Vec<Entry> {
    vec![
        // core/v1
        Entry::new::<core::Namespace>("namespace")
            .short(&["ns"])
            .sub(&["status", "finalize"]),
        Entry::new::<core::Pod>("pod")
            .short(&["po"])
            .categories(ALL)
            .sub(&[
                "status",
                "binding",
                "eviction",
                "log",
                "exec",
                "attach",
                "portforward",
            ]),
        Entry::new::<core::Node>("node")
            .short(&["no"])
            .sub(&["status", "proxy"]),
        Entry::new::<core::Service>("service")
            .short(&["svc"])
            .categories(ALL)
            .sub(&["status"]),
        Entry::new::<core::Endpoints>("endpoints").short(&["ep"]),
        Entry::new::<core::ConfigMap>("configmap").short(&["cm"]),
        Entry::new::<core::Secret>("secret"),
        Entry::new::<core::Event>("event")
            .short(&["ev"])
            .stored_as("v1", conversion::event),
        Entry::new::<core::ServiceAccount>("serviceaccount")
            .short(&["sa"])
            .sub(&["token"]),
        Entry::new::<core::PersistentVolume>("persistentvolume")
            .short(&["pv"])
            .sub(&["status"]),
        Entry::new::<core::PersistentVolumeClaim>("persistentvolumeclaim")
            .short(&["pvc"])
            .sub(&["status"]),
        Entry::new::<core::LimitRange>("limitrange").short(&["limits"]),
        Entry::new::<core::ResourceQuota>("resourcequota")
            .short(&["quota"])
            .sub(&["status"]),
        Entry::new::<core::ReplicationController>("replicationcontroller")
            .short(&["rc"])
            .categories(ALL)
            .sub(&["status", "scale"]),
        Entry::new::<core::PodTemplate>("podtemplate"),
        // apps/v1
        Entry::new::<apps::Deployment>("deployment")
            .short(&["deploy"])
            .categories(ALL)
            .sub(&["status", "scale"]),
        Entry::new::<apps::ReplicaSet>("replicaset")
            .short(&["rs"])
            .categories(ALL)
            .sub(&["status", "scale"]),
        Entry::new::<apps::StatefulSet>("statefulset")
            .short(&["sts"])
            .categories(ALL)
            .sub(&["status", "scale"]),
        Entry::new::<apps::DaemonSet>("daemonset")
            .short(&["ds"])
            .categories(ALL)
            .sub(&["status"]),
        Entry::new::<apps::ControllerRevision>("controllerrevision"),
        // batch/v1
        Entry::new::<batch::Job>("job")
            .categories(ALL)
            .sub(&["status"]),
        Entry::new::<batch::CronJob>("cronjob")
            .short(&["cj"])
            .categories(ALL)
            .sub(&["status"]),
        // autoscaling
        Entry::new::<autoscaling::HorizontalPodAutoscaler>("horizontalpodautoscaler")
            .short(&["hpa"])
            .categories(ALL)
            .sub(&["status"])
            .stored_as("autoscaling/v2", conversion::hpa),
        Entry::new::<autoscaling_v1::HorizontalPodAutoscaler>("horizontalpodautoscaler")
            .short(&["hpa"])
            .categories(ALL)
            .sub(&["status"])
            .stored_as("autoscaling/v2", conversion::hpa),
        // policy/v1
        Entry::new::<policy::PodDisruptionBudget>("poddisruptionbudget")
            .short(&["pdb"])
            .sub(&["status"]),
        // networking.k8s.io/v1
        Entry::new::<networking::Ingress>("ingress")
            .short(&["ing"])
            .sub(&["status"]),
        Entry::new::<networking::IngressClass>("ingressclass"),
        Entry::new::<networking::NetworkPolicy>("networkpolicy").short(&["netpol"]),
        // discovery.k8s.io/v1
        Entry::new::<discovery::EndpointSlice>("endpointslice"),
        // rbac.authorization.k8s.io/v1
        Entry::new::<rbac::Role>("role"),
        Entry::new::<rbac::ClusterRole>("clusterrole"),
        Entry::new::<rbac::RoleBinding>("rolebinding"),
        Entry::new::<rbac::ClusterRoleBinding>("clusterrolebinding"),
        // storage.k8s.io/v1
        Entry::new::<storage::StorageClass>("storageclass").short(&["sc"]),
        Entry::new::<storage::CSIDriver>("csidriver"),
        Entry::new::<storage::VolumeAttachment>("volumeattachment").sub(&["status"]),
        // scheduling.k8s.io/v1
        Entry::new::<scheduling::PriorityClass>("priorityclass").short(&["pc"]),
        // node.k8s.io/v1
        Entry::new::<node::RuntimeClass>("runtimeclass"),
        // admissionregistration.k8s.io/v1
        Entry::new::<admissionregistration::ValidatingWebhookConfiguration>(
            "validatingwebhookconfiguration",
        )
        .categories(API_EXTENSIONS),
        Entry::new::<admissionregistration::MutatingWebhookConfiguration>(
            "mutatingwebhookconfiguration",
        )
        .categories(API_EXTENSIONS),
        Entry::new::<admissionregistration::ValidatingAdmissionPolicy>("validatingadmissionpolicy")
            .categories(API_EXTENSIONS)
            .sub(&["status"]),
        Entry::new::<admissionregistration::ValidatingAdmissionPolicyBinding>(
            "validatingadmissionpolicybinding",
        )
        .categories(API_EXTENSIONS),
        // certificates.k8s.io/v1
        Entry::new::<certificates::CertificateSigningRequest>("certificatesigningrequest")
            .short(&["csr"])
            .sub(&["status", "approval"]),
        // events.k8s.io/v1
        Entry::new::<events::Event>("event")
            .short(&["ev"])
            .stored_as("v1", conversion::event),
        // coordination.k8s.io/v1
        Entry::new::<coordination::Lease>("lease"),
        // apiextensions.k8s.io/v1
        Entry::new::<apiextensions::CustomResourceDefinition>("customresourcedefinition")
            .short(&["crd", "crds"])
            .categories(API_EXTENSIONS)
            .sub(&["status"]),
        // korral.dev/v1alpha1
        Entry::new::<GitSource>("gitsource")
            .short(&["gs"])
            .categories(&["korral"])
            .sub(&["status", "sync"]),
        Entry::new::<DriftReport>("driftreport")
            .short(&["drift"])
            .categories(&["korral"])
            .sub(&["status"]),
        Entry::new::<Notifier>("notifier").categories(&["korral"]),
    ]
}

/// Every built-in kind, in the order discovery lists them.
pub fn builtin_kinds() -> &'static [Arc<KindInfo>] {
    static KINDS: OnceLock<Vec<Arc<KindInfo>>> = OnceLock::new();
    KINDS.get_or_init(|| table().into_iter().map(|e| Arc::new(e.info)).collect())
}

/// Finds a built-in kind by apiVersion and kind.
pub fn lookup(api_version: &str, kind: &str) -> Result<&'static KindInfo, LookupError> {
    crate::kinds::registry::find(builtin_kinds(), api_version, kind).map(|k| {
        builtin_kinds()
            .iter()
            .find(|b| Arc::ptr_eq(b, &k))
            .map(|b| &**b)
            .unwrap_or_else(|| unreachable!("found among the built-in kinds"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_identity() {
        for k in builtin_kinds() {
            assert_eq!(
                lookup(&k.api_version, &k.kind).map(|f| &f.plural),
                Ok(&k.plural)
            );
        }
        assert_eq!(
            lookup("apps/v1", "Deployment").map(|k| k.api_version.as_str()),
            Ok("apps/v1")
        );
        assert_eq!(
            lookup("autoscaling/v1", "HorizontalPodAutoscaler").map(|k| k.storage_version.as_str()),
            Ok("autoscaling/v2")
        );
    }

    #[test]
    fn wrong_versions_and_unknown_kinds_say_what_is_served() {
        let e = lookup("extensions/v1beta1", "Deployment").expect_err("old version");
        assert!(e.to_string().contains("use apiVersion: apps/v1"), "{e}");
        let e = lookup("monitoring.coreos.com/v1", "ServiceMonitor").expect_err("custom");
        assert!(e.to_string().contains("CustomResourceDefinition"), "{e}");
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
