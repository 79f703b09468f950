//! The per-kind list and map metadata the patch machinery needs, transcribed
//! from k8s.io/api's struct tags and markers: `patchStrategy`/`patchMergeKey`
//! (strategic merge patch) and `+listType`/`+listMapKey`/`+structType`/
//! `+mapType` (server-side apply). Only what differs from the defaults is
//! described; every other field is [`Type::Any`].

use schemas::KindInfo;

/// The shape of a value, as far as patching cares.
#[derive(Clone, Copy, Debug)]
pub enum Type {
    /// Anything not described: maps merge key by key, lists are atomic
    /// (replaced whole by a strategic merge patch), scalars are leaves.
    Any,
    /// A Go struct with described fields; undescribed fields are [`Type::Any`].
    Struct(&'static Struct),
    /// A `map[string]T`.
    Map(&'static MapType),
    /// A list with merge metadata.
    List(&'static ListType),
}

/// A struct and the fields of it that need describing.
#[derive(Debug)]
pub struct Struct {
    /// The fields that are not plain [`Type::Any`].
    pub fields: &'static [(&'static str, Type)],
    /// `+structType=atomic`: replaced whole by server-side apply.
    pub atomic: bool,
    /// A Go value (not a pointer): Kubernetes' empty objects already hold it,
    /// so creating it never records the struct itself in managedFields.
    pub always_present: bool,
}

/// A string-keyed map.
#[derive(Debug)]
pub struct MapType {
    /// The type of the values.
    pub values: Type,
    /// `+mapType=atomic`: replaced whole by server-side apply.
    pub atomic: bool,
}

/// How a strategic merge patch treats a list (`patchStrategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchStrategy {
    /// The patch's list replaces the original (the default).
    Replace,
    /// `patchStrategy:"merge"`: maps merge by `patchMergeKey`, scalars union.
    Merge,
}

/// How server-side apply treats a list (`+listType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// Owned and replaced as a whole.
    Atomic,
    /// A set of scalars, each owned separately (`v:` elements).
    Set,
    /// A list of maps identified by these keys (`k:` elements).
    Map(&'static [&'static str]),
}

/// A list's element type and merge metadata.
#[derive(Debug)]
pub struct ListType {
    /// The element type.
    pub elem: Type,
    /// The strategic merge patch strategy.
    pub strategy: PatchStrategy,
    /// The strategic merge patch key for lists of maps (`patchMergeKey`).
    pub merge_key: Option<&'static str>,
    /// The server-side apply list type.
    pub kind: ListKind,
}

impl Type {
    /// The type of the field or map entry `key` inside a value of this type.
    pub fn field(self, key: &str) -> Type {
        match self {
            Type::Struct(s) => s
                .fields
                .iter()
                .find(|(name, _)| *name == key)
                .map_or(Type::Any, |(_, t)| *t),
            Type::Map(m) => m.values,
            Type::Any | Type::List(_) => Type::Any,
        }
    }

    /// The list metadata, when this is a described list.
    pub fn list(self) -> Option<&'static ListType> {
        match self {
            Type::List(l) => Some(l),
            _ => None,
        }
    }

    /// The element type of a list (`Any` for undescribed lists).
    pub fn elem(self) -> Type {
        self.list().map_or(Type::Any, |l| l.elem)
    }

    /// Whether server-side apply owns and replaces values of this type whole.
    pub fn is_atomic(self) -> bool {
        match self {
            Type::Struct(s) => s.atomic,
            Type::Map(m) => m.atomic,
            Type::List(l) => l.kind == ListKind::Atomic,
            Type::Any => false,
        }
    }

    /// Whether `key` is a declared struct field here (as opposed to a map
    /// entry): apply records map entries themselves, struct fields only
    /// through their leaves.
    pub fn is_map(self) -> bool {
        matches!(self, Type::Map(_))
    }

    /// Whether Kubernetes' empty object already holds a value of this type.
    pub fn always_present(self) -> bool {
        matches!(self, Type::Struct(s) if s.always_present)
    }
}

/// The list server-side apply sees for a `Type::Any` list value: atomic.
pub static ATOMIC_LIST: ListType = ListType {
    elem: Type::Any,
    strategy: PatchStrategy::Replace,
    merge_key: None,
    kind: ListKind::Atomic,
};

const fn keyed(elem: Type, merge_key: &'static str, keys: &'static [&'static str]) -> ListType {
    ListType {
        elem,
        strategy: PatchStrategy::Merge,
        merge_key: Some(merge_key),
        kind: ListKind::Map(keys),
    }
}

const fn value_struct(fields: &'static [(&'static str, Type)]) -> Struct {
    Struct {
        fields,
        atomic: false,
        always_present: true,
    }
}

const fn atomic_struct() -> Struct {
    Struct {
        fields: &[],
        atomic: true,
        always_present: false,
    }
}

// ---- meta/v1 ----

/// `+structType=atomic` structs: LabelSelector, NodeSelector, ObjectReference,
/// OwnerReference, LocalObjectReference and the env var source selectors.
static ATOMIC: Struct = atomic_struct();

static FINALIZERS: ListType = ListType {
    elem: Type::Any,
    strategy: PatchStrategy::Merge,
    merge_key: None,
    kind: ListKind::Set,
};
static OWNER_REFERENCES: ListType = keyed(Type::Struct(&ATOMIC), "uid", &["uid"]);
static OBJECT_META: Struct = value_struct(&[
    ("finalizers", Type::List(&FINALIZERS)),
    ("ownerReferences", Type::List(&OWNER_REFERENCES)),
]);
static CONDITIONS: ListType = keyed(Type::Any, "type", &["type"]);
static STATUS_WITH_CONDITIONS: Struct = value_struct(&[("conditions", Type::List(&CONDITIONS))]);

// ---- core/v1: containers ----

static PORTS: ListType = keyed(Type::Any, "containerPort", &["containerPort", "protocol"]);
static ENV_VAR_SOURCE: Struct = Struct {
    fields: &[
        ("fieldRef", Type::Struct(&ATOMIC)),
        ("resourceFieldRef", Type::Struct(&ATOMIC)),
        ("configMapKeyRef", Type::Struct(&ATOMIC)),
        ("secretKeyRef", Type::Struct(&ATOMIC)),
    ],
    atomic: false,
    always_present: false,
};
static ENV_VAR: Struct = Struct {
    fields: &[("valueFrom", Type::Struct(&ENV_VAR_SOURCE))],
    atomic: false,
    always_present: false,
};
static ENV: ListType = keyed(Type::Struct(&ENV_VAR), "name", &["name"]);
static VOLUME_MOUNTS: ListType = keyed(Type::Any, "mountPath", &["mountPath"]);
static VOLUME_DEVICES: ListType = keyed(Type::Any, "devicePath", &["devicePath"]);
static RESOURCE_CLAIMS_BY_NAME: ListType = keyed(Type::Any, "name", &["name"]);
static RESOURCES: Struct = value_struct(&[("claims", Type::List(&RESOURCE_CLAIMS_BY_NAME))]);
static CONTAINER: Struct = Struct {
    fields: &[
        ("ports", Type::List(&PORTS)),
        ("env", Type::List(&ENV)),
        ("volumeMounts", Type::List(&VOLUME_MOUNTS)),
        ("volumeDevices", Type::List(&VOLUME_DEVICES)),
        ("resources", Type::Struct(&RESOURCES)),
    ],
    atomic: false,
    always_present: false,
};
static CONTAINERS: ListType = keyed(Type::Struct(&CONTAINER), "name", &["name"]);

// ---- core/v1: pods ----

static VOLUMES: ListType = keyed(Type::Any, "name", &["name"]);
static IMAGE_PULL_SECRETS: ListType = keyed(Type::Struct(&ATOMIC), "name", &["name"]);
static HOST_ALIASES: ListType = keyed(Type::Any, "ip", &["ip"]);
static TOPOLOGY_SPREAD_CONSTRAINT: Struct = Struct {
    fields: &[("labelSelector", Type::Struct(&ATOMIC))],
    atomic: false,
    always_present: false,
};
static TOPOLOGY_SPREAD_CONSTRAINTS: ListType = keyed(
    Type::Struct(&TOPOLOGY_SPREAD_CONSTRAINT),
    "topologyKey",
    &["topologyKey", "whenUnsatisfiable"],
);
static BY_NAME: ListType = keyed(Type::Any, "name", &["name"]);
static ATOMIC_MAP: MapType = MapType {
    values: Type::Any,
    atomic: true,
};
static NODE_AFFINITY: Struct = Struct {
    fields: &[(
        "requiredDuringSchedulingIgnoredDuringExecution",
        Type::Struct(&ATOMIC),
    )],
    atomic: false,
    always_present: false,
};
static AFFINITY: Struct = Struct {
    fields: &[("nodeAffinity", Type::Struct(&NODE_AFFINITY))],
    atomic: false,
    always_present: false,
};
static POD_SPEC: Struct = value_struct(&[
    ("volumes", Type::List(&VOLUMES)),
    ("initContainers", Type::List(&CONTAINERS)),
    ("containers", Type::List(&CONTAINERS)),
    ("ephemeralContainers", Type::List(&CONTAINERS)),
    ("imagePullSecrets", Type::List(&IMAGE_PULL_SECRETS)),
    ("hostAliases", Type::List(&HOST_ALIASES)),
    (
        "topologySpreadConstraints",
        Type::List(&TOPOLOGY_SPREAD_CONSTRAINTS),
    ),
    ("schedulingGates", Type::List(&BY_NAME)),
    ("resourceClaims", Type::List(&BY_NAME)),
    ("nodeSelector", Type::Map(&ATOMIC_MAP)),
    ("affinity", Type::Struct(&AFFINITY)),
]);
static POD_IPS: ListType = keyed(Type::Any, "ip", &["ip"]);
/// `patchStrategy:"merge" patchMergeKey:"ip"` but `+listType=atomic`.
static HOST_IPS: ListType = ListType {
    elem: Type::Any,
    strategy: PatchStrategy::Merge,
    merge_key: Some("ip"),
    kind: ListKind::Atomic,
};
static POD_STATUS: Struct = value_struct(&[
    ("conditions", Type::List(&CONDITIONS)),
    ("podIPs", Type::List(&POD_IPS)),
    ("hostIPs", Type::List(&HOST_IPS)),
    ("resourceClaimStatuses", Type::List(&BY_NAME)),
]);
static POD: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("spec", Type::Struct(&POD_SPEC)),
    ("status", Type::Struct(&POD_STATUS)),
]);
static POD_TEMPLATE_SPEC: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("spec", Type::Struct(&POD_SPEC)),
]);

// ---- apps/v1 ----

static EMPTY_VALUE_STRUCT: Struct = value_struct(&[]);
static DEPLOYMENT_SPEC: Struct = value_struct(&[
    ("selector", Type::Struct(&ATOMIC)),
    ("template", Type::Struct(&POD_TEMPLATE_SPEC)),
    ("strategy", Type::Struct(&EMPTY_VALUE_STRUCT)),
]);
static DEPLOYMENT: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("spec", Type::Struct(&DEPLOYMENT_SPEC)),
    ("status", Type::Struct(&STATUS_WITH_CONDITIONS)),
]);
static REPLICA_SET_SPEC: Struct = value_struct(&[
    ("selector", Type::Struct(&ATOMIC)),
    ("template", Type::Struct(&POD_TEMPLATE_SPEC)),
]);
static REPLICA_SET: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("spec", Type::Struct(&REPLICA_SET_SPEC)),
    ("status", Type::Struct(&STATUS_WITH_CONDITIONS)),
]);

// ---- core/v1: services, nodes, namespaces, the rest ----

static SERVICE_PORTS: ListType = keyed(Type::Any, "port", &["port", "protocol"]);
static SERVICE_SPEC: Struct = value_struct(&[
    ("ports", Type::List(&SERVICE_PORTS)),
    ("selector", Type::Map(&ATOMIC_MAP)),
]);
static SERVICE: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("spec", Type::Struct(&SERVICE_SPEC)),
    ("status", Type::Struct(&STATUS_WITH_CONDITIONS)),
]);
static POD_CIDRS: ListType = ListType {
    elem: Type::Any,
    strategy: PatchStrategy::Merge,
    merge_key: None,
    kind: ListKind::Set,
};
static NODE_SPEC: Struct = value_struct(&[("podCIDRs", Type::List(&POD_CIDRS))]);
/// `patchStrategy:"merge" patchMergeKey:"type"` but `+listType=atomic`
/// (types are not unique enough to merge by).
static NODE_ADDRESSES: ListType = ListType {
    elem: Type::Any,
    strategy: PatchStrategy::Merge,
    merge_key: Some("type"),
    kind: ListKind::Atomic,
};
static NODE_STATUS: Struct = value_struct(&[
    ("conditions", Type::List(&CONDITIONS)),
    ("addresses", Type::List(&NODE_ADDRESSES)),
]);
static NODE: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("spec", Type::Struct(&NODE_SPEC)),
    ("status", Type::Struct(&NODE_STATUS)),
]);
static NAMESPACE: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("spec", Type::Struct(&EMPTY_VALUE_STRUCT)),
    ("status", Type::Struct(&STATUS_WITH_CONDITIONS)),
]);
static EVENT: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("involvedObject", Type::Struct(&ATOMIC)),
    ("related", Type::Struct(&ATOMIC)),
]);
static LEASE: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("spec", Type::Struct(&EMPTY_VALUE_STRUCT)),
]);
/// ConfigMap, Secret, Endpoints: nothing beyond metadata needs describing.
static PLAIN: Struct = value_struct(&[("metadata", Type::Struct(&OBJECT_META))]);

// ---- workloads with pod templates: apps/v1, batch/v1, core/v1 ----

static TEMPLATED_SPEC: Struct = value_struct(&[
    ("selector", Type::Struct(&ATOMIC)),
    ("template", Type::Struct(&POD_TEMPLATE_SPEC)),
]);
static TEMPLATED: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("spec", Type::Struct(&TEMPLATED_SPEC)),
    ("status", Type::Struct(&STATUS_WITH_CONDITIONS)),
]);
static RC_SPEC: Struct = value_struct(&[
    ("selector", Type::Map(&ATOMIC_MAP)),
    ("template", Type::Struct(&POD_TEMPLATE_SPEC)),
]);
static REPLICATION_CONTROLLER: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("spec", Type::Struct(&RC_SPEC)),
    ("status", Type::Struct(&STATUS_WITH_CONDITIONS)),
]);
static POD_TEMPLATE: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("template", Type::Struct(&POD_TEMPLATE_SPEC)),
]);
static JOB_TEMPLATE_SPEC: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("spec", Type::Struct(&TEMPLATED_SPEC)),
]);
static CRON_JOB_SPEC: Struct = value_struct(&[("jobTemplate", Type::Struct(&JOB_TEMPLATE_SPEC))]);
static CRON_JOB: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("spec", Type::Struct(&CRON_JOB_SPEC)),
]);
/// Kinds whose status has conditions keyed by type.
static WITH_CONDITIONS: Struct = value_struct(&[
    ("metadata", Type::Struct(&OBJECT_META)),
    ("status", Type::Struct(&STATUS_WITH_CONDITIONS)),
]);

/// The root type of a served kind, and whether Kubernetes knows its struct
/// tags (built-in kinds) — strategic merge patch is refused otherwise.
pub fn root_type(kind: &KindInfo) -> (Type, bool) {
    let s: &'static Struct = match (kind.group.as_str(), kind.kind.as_str()) {
        ("", "Pod") => &POD,
        ("", "Service") => &SERVICE,
        ("", "Node") => &NODE,
        ("", "Namespace") => &NAMESPACE,
        ("", "Event") => &EVENT,
        ("", "ConfigMap" | "Secret" | "Endpoints") => &PLAIN,
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "ReplicaSet") => &REPLICA_SET,
        ("coordination.k8s.io", "Lease") => &LEASE,
        ("apps", "StatefulSet" | "DaemonSet") | ("batch", "Job") => &TEMPLATED,
        ("", "ReplicationController") => &REPLICATION_CONTROLLER,
        ("", "PodTemplate") => &POD_TEMPLATE,
        ("batch", "CronJob") => &CRON_JOB,
        ("korral.dev", _) => return (Type::Struct(&PLAIN), false),
        _ if kind.is_builtin() => &WITH_CONDITIONS,
        _ => {
            // custom resources: their schema's list and map types
            let t = kind.custom().map_or(Type::Struct(&PLAIN), |c| {
                super::schema_types::custom_root(&c.schema)
            });
            return (t, false);
        }
    };
    (Type::Struct(s), true)
}

/// The type of `metadata` (ObjectMeta) in every kind.
pub fn root_type_of_meta() -> Type {
    Type::Struct(&OBJECT_META)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(api_version: &str, kind: &str) -> &'static KindInfo {
        schemas::lookup(api_version, kind).expect("served kind")
    }

    fn at(t: Type, path: &[&str]) -> Type {
        path.iter()
            .fold(t, |t, k| if *k == "[]" { t.elem() } else { t.field(k) })
    }

    #[test]
    fn merge_keys_match_the_kubernetes_struct_tags() {
        let (dep, builtin) = root_type(kind("apps/v1", "Deployment"));
        assert!(builtin);
        let pod_spec = at(dep, &["spec", "template", "spec"]);
        let cases: &[(&[&str], Option<&str>, ListKind)] = &[
            (&["containers"], Some("name"), ListKind::Map(&["name"])),
            (&["initContainers"], Some("name"), ListKind::Map(&["name"])),
            (
                &["containers", "[]", "ports"],
                Some("containerPort"),
                ListKind::Map(&["containerPort", "protocol"]),
            ),
            (
                &["containers", "[]", "env"],
                Some("name"),
                ListKind::Map(&["name"]),
            ),
            (
                &["containers", "[]", "volumeMounts"],
                Some("mountPath"),
                ListKind::Map(&["mountPath"]),
            ),
            (&["volumes"], Some("name"), ListKind::Map(&["name"])),
            (
                &["imagePullSecrets"],
                Some("name"),
                ListKind::Map(&["name"]),
            ),
            (&["hostAliases"], Some("ip"), ListKind::Map(&["ip"])),
            (&["schedulingGates"], Some("name"), ListKind::Map(&["name"])),
            (
                &["topologySpreadConstraints"],
                Some("topologyKey"),
                ListKind::Map(&["topologyKey", "whenUnsatisfiable"]),
            ),
        ];
        for (path, key, list_kind) in cases {
            let l = at(pod_spec, path).list().expect("a described list");
            assert_eq!(l.merge_key, *key, "{path:?}");
            assert_eq!(l.kind, *list_kind, "{path:?}");
            assert_eq!(l.strategy, PatchStrategy::Merge, "{path:?}");
        }
        assert!(at(pod_spec, &["tolerations"]).list().is_none());
        assert!(at(pod_spec, &["nodeSelector"]).is_atomic());
        assert!(at(dep, &["spec", "selector"]).is_atomic());
        let fin = at(dep, &["metadata", "finalizers"])
            .list()
            .expect("finalizers");
        assert_eq!(
            (fin.strategy, fin.kind),
            (PatchStrategy::Merge, ListKind::Set)
        );
        let conds = at(dep, &["status", "conditions"])
            .list()
            .expect("conditions");
        assert_eq!(conds.merge_key, Some("type"));
    }

    #[test]
    fn services_nodes_and_korral_kinds() {
        let (svc, _) = root_type(kind("v1", "Service"));
        let ports = at(svc, &["spec", "ports"]).list().expect("ports");
        assert_eq!(ports.merge_key, Some("port"));
        let (node, _) = root_type(kind("v1", "Node"));
        let addrs = at(node, &["status", "addresses"])
            .list()
            .expect("addresses");
        assert_eq!(
            (addrs.merge_key, addrs.kind),
            (Some("type"), ListKind::Atomic)
        );
        let (gs, builtin) = root_type(kind("korral.dev/v1alpha1", "GitSource"));
        assert!(!builtin);
        assert!(at(gs, &["metadata", "ownerReferences"]).list().is_some());
        assert!(at(gs, &["spec", "ref"]).list().is_none());
    }
}
