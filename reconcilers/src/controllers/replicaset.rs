//! The ReplicaSet controller: keeps `replicas` pods running from the
//! template — creating in slow-start batches (1, 2, 4, … at most 500 per
//! sync), deleting the pods Kubernetes would delete first, adopting orphans
//! that match the selector, releasing pods that stop matching — with
//! expectations so a stale cache never double-creates or double-deletes,
//! and status replicas/fullyLabeled/ready/available/observedGeneration.
//!
//! ReplicationControllers run the same logic (as kube-controller-manager
//! runs them through the ReplicaSet controller): [`Replicated`] views either
//! kind as a ReplicaSet (an RC's map selector as `matchLabels`), and the
//! status goes back to the real kind, which has the same fields.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use schemas::MetaExt;
use schemas::Object;

use crate::controllers::claim::adopters;
use crate::controllers::expectations::Expectations;
use crate::controllers::podutil::{
    controller_ref, deletion_order, is_active, is_available, is_ready, seconds_until_available,
};
use crate::controllers::{Context, write_status};
use crate::runtime::{
    Action, Cache, ClientError, Controller, DeleteParams, ObjectRef, WriteParams,
};

/// At most this many pods are created or deleted per sync (Kubernetes' burstReplicas).
pub const BURST_REPLICAS: usize = 500;

/// A kind the ReplicaSet logic runs: ReplicaSets, and ReplicationControllers
/// seen as ReplicaSets.
pub trait Replicated: Object {
    /// The controller's name (`--controllers`, metrics).
    const CONTROLLER: &'static str;
    /// Its field manager and event source.
    const MANAGER: &'static str;
    /// This object as a ReplicaSet (spec, status and metadata).
    fn as_replicaset(&self) -> Cow<'_, ReplicaSet>;
}

impl Replicated for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset";
    const MANAGER: &'static str = "replicaset-controller";
    fn as_replicaset(&self) -> Cow<'_, ReplicaSet> {
        Cow::Borrowed(self)
    }
}

impl Replicated for ReplicationController {
    const CONTROLLER: &'static str = "replicationcontroller";
    const MANAGER: &'static str = "replication-controller";
    fn as_replicaset(&self) -> Cow<'_, ReplicaSet> {
        let spec = self.spec.clone().unwrap_or_default();
        let status = self
            .status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| serde_json::from_value::<ReplicaSetStatus>(v).ok());
        Cow::Owned(ReplicaSet {
            metadata: self.metadata.clone(),
            spec: Some(ReplicaSetSpec {
                min_ready_seconds: spec.min_ready_seconds,
                replicas: spec.replicas,
                selector: LabelSelector {
                    match_labels: spec.selector.filter(|s| !s.is_empty()),
                    match_expressions: None,
                },
                template: spec.template,
            }),
            status,
        })
    }
}

struct State<K: Replicated> {
    ctx: Context,
    owners: Cache<K>,
    pods: Cache<Pod>,
    expectations: Expectations,
}

/// Runs the ReplicaSet controller until shutdown.
pub async fn run(ctx: Context) {
    run_for::<ReplicaSet>(ctx).await;
}

/// Runs the ReplicationController controller until shutdown.
pub async fn run_replication_controllers(ctx: Context) {
    run_for::<ReplicationController>(ctx).await;
}

async fn run_for<K: Replicated>(ctx: Context) {
    let informer = ctx.informers.get::<K>();
    let pod_informer = ctx.informers.pods();
    let cache = informer.cache();
    // an orphan pod may be adopted by any owner in its namespace whose selector matches
    let for_orphans = informer.cache();
    let controller = Controller::new(K::CONTROLLER, &informer)
        .owns::<K, Pod>(&pod_informer)
        .watches(&pod_informer, move |p: &Pod| {
            adopters(&for_orphans, p, |o: &K| {
                o.as_replicaset().spec.as_ref().map(|s| s.selector.clone())
            })
        })
        .workers(16);
    let state = Arc::new(State {
        ctx: ctx.clone(),
        owners: cache,
        pods: pod_informer.cache(),
        expectations: Expectations::default(),
    });
    let shutdown = ctx.stopped();
    controller
        .run(
            move |key| reconcile(state.clone(), key),
            ctx.metrics.clone(),
            shutdown,
        )
        .await;
}

fn ns_of(key: &ObjectRef) -> &str {
    key.namespace.as_deref().unwrap_or("default")
}

async fn reconcile<K: Replicated>(
    state: Arc<State<K>>,
    key: ObjectRef,
) -> Result<Action, ClientError> {
    let Some(owner) = state.owners.get(&key) else {
        state.expectations.forget(&key);
        return Ok(Action::AwaitChange);
    };
    let rs = owner.as_replicaset();
    let ns = ns_of(&key).to_string();
    let spec = rs.spec.clone().unwrap_or_default();
    let pod_api = state.ctx.client.api::<Pod>(Some(&ns));

    let owned = crate::controllers::claim::claim(
        owner.as_ref(),
        &spec.selector,
        &state.pods,
        &pod_api,
        K::MANAGER,
    )
    .await?;

    let pods_cache = state.pods.clone();
    let ready_to_act = state.expectations.satisfied(
        &key,
        |name| pods_cache.get(&ObjectRef::new(Some(&ns), name)).is_some(),
        |name| {
            pods_cache
                .get(&ObjectRef::new(Some(&ns), name))
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        },
    );
    let active: Vec<Arc<Pod>> = owned.iter().filter(|p| is_active(p)).cloned().collect();
    let mut create_error = None;
    if ready_to_act && rs.metadata.deletion_timestamp.is_none() {
        let want = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
        if active.len() < want {
            let count = (want - active.len()).min(BURST_REPLICAS);
            let pod = pod_from_template(rs.as_ref(), controller_ref(owner.as_ref()));
            match create_pods(&state, &key, &pod, count).await {
                Ok(()) => {}
                Err(e) => create_error = Some(e),
            }
        } else if active.len() > want {
            let count = (active.len() - want).min(BURST_REPLICAS);
            let mut victims: Vec<Arc<Pod>> = active.clone();
            victims.sort_by(|a, b| deletion_order(a, b));
            victims.truncate(count);
            let names: Vec<String> = victims
                .iter()
                .map(|p| p.metadata.name_str().to_string())
                .collect();
            state.expectations.deleted(&key, names);
            for p in victims {
                let dp = DeleteParams {
                    precondition_uid: p.metadata.uid.clone(),
                    ..Default::default()
                };
                match pod_api.delete(p.metadata.name_str(), &dp).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() || e.is_conflict() => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let status = compute_status(rs.as_ref(), &active, create_error.as_ref());
    // the RC status has the same fields: the patch is written as is
    let api = state.ctx.client.api::<K>(Some(&ns));
    let name = rs.metadata.name_str();
    if !write_status(&api, name, rs.status.as_ref(), &status, K::MANAGER).await? {
        return Ok(Action::AwaitChange);
    }
    if let Some(e) = create_error {
        return Err(e);
    }
    // recheck when a ready pod becomes available
    let next = active
        .iter()
        .map(|p| seconds_until_available(p, min_ready))
        .filter(|s| *s > 0)
        .min();
    Ok(match next {
        Some(s) => Action::requeue(Duration::from_secs(u64::try_from(s).unwrap_or(1) + 1)),
        None if !ready_to_act => Action::requeue(Duration::from_secs(5)),
        None => Action::AwaitChange,
    })
}

/// The pod a replicaset's template describes, controlled by `owner`.
pub fn pod_from_template(rs: &ReplicaSet, owner: OwnerReference) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.metadata.name_str())),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

async fn create_pods<K: Replicated>(
    state: &State<K>,
    key: &ObjectRef,
    pod: &Pod,
    count: usize,
) -> Result<(), ClientError> {
    let pod_api = state
        .ctx
        .client
        .api::<Pod>(pod.metadata.namespace.as_deref());
    let wp = WriteParams {
        field_manager: Some(K::MANAGER.into()),
        ..Default::default()
    };
    let mut remaining = count;
    let mut batch = 1usize;
    while remaining > 0 {
        let n = batch.min(remaining);
        let results =
            futures_util::future::join_all((0..n).map(|_| pod_api.create(pod, &wp))).await;
        let mut names = Vec::new();
        let mut first_error = None;
        for r in results {
            match r {
                Ok(p) => names.push(p.metadata.name_str().to_string()),
                Err(e) => {
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
        state.expectations.created(key, names);
        if let Some(e) = first_error {
            return Err(e);
        }
        remaining -= n;
        batch *= 2;
    }
    Ok(())
}

fn labels_superset(have: &BTreeMap<String, String>, want: &BTreeMap<String, String>) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

fn compute_status(
    rs: &ReplicaSet,
    active: &[Arc<Pod>],
    create_error: Option<&ClientError>,
) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .map(|m| m.labels_map().clone())
        .unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let mut conditions: Vec<ReplicaSetCondition> = rs
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "ReplicaFailure")
        .collect();
    if let Some(e) = create_error {
        let existing = rs
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "ReplicaFailure"));
        conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            last_transition_time: existing
                .and_then(|c| c.last_transition_time.clone())
                .or(Some(schemas::time::now())),
            reason: Some("FailedCreate".into()),
            message: Some(e.to_string()),
        });
    }
    ReplicaSetStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: Some(count(&|p| {
            labels_superset(p.metadata.labels_map(), &template_labels)
        })),
        ready_replicas: Some(count(&is_ready)),
        available_replicas: Some(count(&|p| is_available(p, min_ready))),
        terminating_replicas: None,
        observed_generation: rs.metadata.generation,
        conditions: if conditions.is_empty() {
            None
        } else {
            Some(conditions)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::SelectorExt;
    use serde_json::json;

    #[test]
    fn pods_come_from_the_template_with_a_controller_reference() {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "ns", "uid": "u1"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}
        }))
        .expect("rs");
        let pod = pod_from_template(&rs, controller_ref(&rs));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(
            pod.metadata.labels_map().get("app").map(String::as_str),
            Some("web")
        );
        let owner = &pod.metadata.owner_references.as_ref().expect("refs")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("ReplicaSet", "u1", Some(true))
        );
        assert_eq!(pod.spec.as_ref().map(|s| s.containers.len()), Some(1));
    }

    #[test]
    fn replication_controllers_are_seen_as_replicasets() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u2", "generation": 2},
            "spec": {"replicas": 3, "selector": {"app": "web"},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}},
            "status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": 1}
        }))
        .expect("rc");
        let rs = rc.as_replicaset();
        let spec = rs.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(3));
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), "web".to_string());
        assert!(spec.selector.matches(&labels));
        labels.insert("app".to_string(), "db".to_string());
        assert!(!spec.selector.matches(&labels));
        let status = rs.status.as_ref().expect("status");
        assert_eq!((status.replicas, status.ready_replicas), (1, Some(1)));
        // pods are controlled by the RC itself
        let pod = pod_from_template(&rs, controller_ref(&rc));
        let owner = &pod.metadata.owner_references.as_ref().expect("refs")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.api_version.as_str()),
            ("ReplicationController", "v1")
        );
        // an RC without a selector selects nothing
        let bare = ReplicationController::default();
        assert!(
            bare.as_replicaset()
                .spec
                .as_ref()
                .is_some_and(|s| s.selector.is_empty())
        );
    }
}
