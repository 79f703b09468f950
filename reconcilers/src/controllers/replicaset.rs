//! The ReplicaSet controller: keeps `replicas` pods running from the
//! template — creating in slow-start batches (1, 2, 4, … at most 500 per
//! sync), deleting the pods Kubernetes would delete first, adopting orphans
//! that match the selector, releasing pods that stop matching — with
//! expectations so a stale cache never double-creates or double-deletes,
//! and status replicas/fullyLabeled/ready/available/observedGeneration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemas::MetaExt;
use schemas::SelectorExt;

use crate::controllers::Context;
use crate::controllers::expectations::Expectations;
use crate::controllers::podutil::{
    controller_of, controller_ref, deletion_order, is_active, is_available, is_ready,
    seconds_until_available,
};
use crate::runtime::{
    Action, Cache, ClientError, Controller, DeleteParams, ObjectRef, WriteParams,
};

/// At most this many pods are created or deleted per sync (Kubernetes' burstReplicas).
pub const BURST_REPLICAS: usize = 500;
const MANAGER: &str = "replicaset-controller";

struct State {
    ctx: Context,
    replicasets: Cache<ReplicaSet>,
    pods: Cache<Pod>,
    expectations: Expectations,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let rs_informer = ctx.informers.get::<ReplicaSet>();
    let pod_informer = ctx.informers.pods();
    let rs_cache = rs_informer.cache();
    // an orphan pod may be adopted by any replicaset in its namespace whose selector matches
    let rs_for_orphans = rs_informer.cache();
    let controller = Controller::new("replicaset", &rs_informer)
        .owns::<ReplicaSet, Pod>(&pod_informer)
        .watches(&pod_informer, move |p: &Pod| {
            if controller_of(&p.metadata).is_some() {
                return Vec::new();
            }
            let ns = p.metadata.namespace_str();
            rs_for_orphans
                .in_namespace(ns)
                .iter()
                .filter(|rs| {
                    rs.spec.as_ref().is_some_and(|s| {
                        !s.selector.is_empty() && s.selector.matches(p.metadata.labels_map())
                    })
                })
                .map(|rs| ObjectRef::of(rs.as_ref()))
                .collect()
        })
        .workers(16);
    let state = Arc::new(State {
        ctx: ctx.clone(),
        replicasets: rs_cache,
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

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(rs) = state.replicasets.get(&key) else {
        state.expectations.forget(&key);
        return Ok(Action::AwaitChange);
    };
    let ns = ns_of(&key).to_string();
    let spec = rs.spec.clone().unwrap_or_default();
    let pod_api = state.ctx.client.api::<Pod>(Some(&ns));

    let owned = crate::controllers::claim::claim(
        rs.as_ref(),
        &spec.selector,
        &state.pods,
        &pod_api,
        MANAGER,
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
            match create_pods(&state, &key, rs.as_ref(), count).await {
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
    if rs.status.as_ref() != Some(&status) {
        let patch = crate::controllers::status_patch(rs.status.as_ref(), &status);
        match state
            .ctx
            .client
            .api::<ReplicaSet>(Some(&ns))
            .patch_status(
                rs.metadata.name_str(),
                &patch,
                &WriteParams {
                    field_manager: Some(MANAGER.into()),
                    ..Default::default()
                },
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(Action::AwaitChange),
            Err(e) => return Err(e),
        }
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

/// The pod a replicaset's template describes.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
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
            owner_references: Some(vec![controller_ref(rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

async fn create_pods(
    state: &State,
    key: &ObjectRef,
    rs: &ReplicaSet,
    count: usize,
) -> Result<(), ClientError> {
    let pod_api = state
        .ctx
        .client
        .api::<Pod>(rs.metadata.namespace.as_deref());
    let pod = pod_from_template(rs);
    let wp = WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let mut remaining = count;
    let mut batch = 1usize;
    while remaining > 0 {
        let n = batch.min(remaining);
        let results =
            futures_util::future::join_all((0..n).map(|_| pod_api.create(&pod, &wp))).await;
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
        let pod = pod_from_template(&rs);
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
}
