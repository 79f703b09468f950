//! Persistent storage, after kube-controller-manager's PV controller and
//! k3s's local-path provisioner: the binder (`binder.rs`: claims to
//! volumes, phases, reclaim) and the built-in dynamic provisioner
//! `korral.dev/local-path` (`local_path.rs`), the pvc- and pv-protection
//! controllers (`protection.rs`), the `ephemeral-volume` controller
//! (`ephemeral.rs`: the claims of generic ephemeral volumes), volume
//! expansion of local-path volumes (`expand.rs`), plus the annotations and
//! claim/volume helpers the scheduler and the node daemon share with them.

pub mod binder;
pub mod ephemeral;
pub mod expand;
pub mod local_path;
pub mod protection;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use schemas::MetaExt;

use crate::controllers::Context;
use crate::controllers::recorder::Recorder;
use crate::runtime::{Action, Cache, ClientError, Controller, ObjectRef};

/// What the binder and the provisioner read (synced caches) and how they report.
struct State {
    ctx: Context,
    claims: Cache<PersistentVolumeClaim>,
    volumes: Cache<PersistentVolume>,
    classes: Cache<StorageClass>,
    nodes: Cache<Node>,
    recorder: Recorder,
}

/// Runs `controller` (whose keys `reconcile` handles) once the caches are
/// synced, until shutdown; events are recorded as `component`.
async fn run_controller<F, Fut>(ctx: Context, component: &str, controller: Controller, reconcile: F)
where
    F: Fn(Arc<State>, ObjectRef) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, ClientError>> + Send + 'static,
{
    let i = &ctx.informers;
    let state = Arc::new(State {
        recorder: Recorder::new(ctx.client.clone(), component, component),
        claims: i.get::<PersistentVolumeClaim>().cache(),
        volumes: i.get::<PersistentVolume>().cache(),
        classes: i.get::<StorageClass>().cache(),
        nodes: i.get::<Node>().cache(),
        ctx: ctx.clone(),
    });
    state.classes.wait_synced().await;
    state.volumes.wait_synced().await;
    state.nodes.wait_synced().await;
    let shutdown = ctx.stopped();
    controller
        .run(
            move |key| reconcile(state.clone(), key),
            ctx.metrics.clone(),
            shutdown,
        )
        .await;
}

/// Set on a claim once the controller finished binding it.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on a claim or volume whose binding the controller (not a user) made.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// Set by the scheduler on a `WaitForFirstConsumer` claim: the node its pod goes to.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Set by the binder on a claim a provisioner is to provision.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The beta spelling of [`ANN_STORAGE_PROVISIONER`] (still set by kube).
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// Set on a provisioned volume: the provisioner that made it.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The beta class annotation older claims and volumes carry instead of `storageClassName`.
pub const ANN_BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// Marks the default StorageClass.
pub const ANN_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// The built-in provisioner's name.
pub const LOCAL_PATH_PROVISIONER: &str = "korral.dev/local-path";
/// The default StorageClass korral creates for it.
pub const LOCAL_PATH_CLASS: &str = "local-path";
/// On a Node: the directory its node daemon keeps local-path volumes in.
pub const ANN_LOCAL_PATH_ROOT: &str = "korral.dev/local-path-root";
/// On a local-path volume: the node whose directory it is.
pub const ANN_LOCAL_PATH_NODE: &str = "korral.dev/local-path-node";
/// Where volumes go on a node that does not say (no [`ANN_LOCAL_PATH_ROOT`]).
pub const DEFAULT_LOCAL_PATH_ROOT: &str = "/var/lib/korral/storage";

/// The claim's class: `spec.storageClassName`, else the beta annotation, else "".
pub fn claim_class(c: &PersistentVolumeClaim) -> &str {
    c.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .or_else(|| {
            c.metadata
                .annotations_map()
                .get(ANN_BETA_CLASS)
                .map(|s| s.as_str())
        })
        .unwrap_or("")
}

/// Whether the claim names a class at all (`""` included), kube's
/// `PersistentVolumeClaimHasClass`: one that does not gets the default
/// class, at creation or (retroactively) once there is one.
pub fn claim_has_class(c: &PersistentVolumeClaim) -> bool {
    c.spec
        .as_ref()
        .is_some_and(|s| s.storage_class_name.is_some())
        || c.metadata.annotations_map().contains_key(ANN_BETA_CLASS)
}

/// The default StorageClass (kube's `GetDefaultClass`): the newest class
/// marked default, then by name.
pub fn default_class(classes: &[Arc<StorageClass>]) -> Option<&StorageClass> {
    classes
        .iter()
        .filter(|c| is_default_class(c))
        .max_by(|a, b| {
            let created = |c: &StorageClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a)
                .cmp(&created(b))
                .then_with(|| b.metadata.name_str().cmp(a.metadata.name_str()))
        })
        .map(|c| c.as_ref())
}

/// The volume's class, as [`claim_class`].
pub fn volume_class(v: &PersistentVolume) -> &str {
    v.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .or_else(|| {
            v.metadata
                .annotations_map()
                .get(ANN_BETA_CLASS)
                .map(|s| s.as_str())
        })
        .unwrap_or("")
}

/// The volume a claim names (`spec.volumeName`), if any.
pub fn claim_volume(c: &PersistentVolumeClaim) -> Option<&str> {
    c.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Whether the class delays binding until a pod uses the claim.
pub fn waits_for_first_consumer(class: Option<&StorageClass>) -> bool {
    class.and_then(|c| c.volume_binding_mode.as_deref()) == Some("WaitForFirstConsumer")
}

/// The claims a pod's volumes name, in order (`persistentVolumeClaim.claimName`;
/// generic ephemeral volumes as `<pod>-<volume>`, the claim kube creates for them).
pub fn pod_claims(pod: &Pod) -> Vec<String> {
    pod_claim_volumes(pod).into_iter().map(|(c, _)| c).collect()
}

/// [`pod_claims`], each with whether it is a generic ephemeral volume's
/// (which must be controlled by the pod, [`ephemeral::volume_is_for_pod`]).
pub fn pod_claim_volumes(pod: &Pod) -> Vec<(String, bool)> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| match (&v.persistent_volume_claim, &v.ephemeral) {
            (Some(c), _) => Some((c.claim_name.clone(), false)),
            (None, Some(_)) => Some((ephemeral::claim_name(pod, v), true)),
            _ => None,
        })
        .collect()
}

/// The phase in a volume's status ("" when it has none yet).
pub fn volume_phase(v: &PersistentVolume) -> &str {
    v.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The phase in a claim's status ("" when it has none yet).
pub fn claim_phase(c: &PersistentVolumeClaim) -> &str {
    c.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The node a local-path volume lives on.
pub fn local_path_node(v: &PersistentVolume) -> Option<&str> {
    v.metadata
        .annotations_map()
        .get(ANN_LOCAL_PATH_NODE)
        .map(|s| s.as_str())
        .filter(|_| {
            v.metadata
                .annotations_map()
                .get(ANN_PROVISIONED_BY)
                .map(|s| s.as_str())
                == Some(LOCAL_PATH_PROVISIONER)
        })
}

/// Whether a volume's required node affinity admits the node `name` with `labels`
/// (a volume without one is reachable from every node).
pub fn volume_fits_node(
    v: &PersistentVolume,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(required) = v
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return true;
    };
    required.node_selector_terms.iter().any(|t| {
        crate::controllers::scheduler::plugins::node_affinity::term_matches_node(t, name, labels)
    })
}

/// The annotation value that makes a class the default.
pub fn is_default_class(c: &StorageClass) -> bool {
    let a = c.metadata.annotations_map();
    a.get(ANN_DEFAULT_CLASS).map(|s| s.as_str()) == Some("true")
        || a.get("storageclass.beta.kubernetes.io/is-default-class")
            .map(|s| s.as_str())
            == Some("true")
}
