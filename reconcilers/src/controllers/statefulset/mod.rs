//! The StatefulSet controller, after kube-controller-manager 1.33's: pods
//! with stable names `<set>-<ordinal>` (from `spec.ordinals.start`),
//! hostname and subdomain (so `web-0.nginx.<ns>.svc` resolves through the
//! headless Service), one PersistentVolumeClaim per claim template and
//! ordinal made before the pod and kept across its restarts; OrderedReady
//! or Parallel pod management; ControllerRevisions (`<set>-<hash>`,
//! numbered, pruned to revisionHistoryLimit) behind `kubectl rollout
//! history|undo`; RollingUpdate with partition (and maxUnavailable, as
//! with the MaxUnavailableStatefulSet gate) or OnDelete; claims' owner
//! references per persistentVolumeClaimRetentionPolicy; and the status
//! counts and revisions `kubectl rollout status` reads.
//!
//! `plan.rs` decides a sync without I/O; this file reads the caches,
//! settles the revisions, carries the plan out and writes the status.

pub mod plan;
pub mod pods;
pub mod revisions;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use schemas::MetaExt;

use crate::controllers::claim::{adopters, claim, claim_filtered};
use crate::controllers::expectations::Expectations;
use crate::controllers::podutil::seconds_until_available;
use crate::controllers::recorder::{NORMAL, Recorder, WARNING};
use crate::controllers::{Context, write_status};
use crate::runtime::{
    Action, Cache, ClientError, Controller, DeleteParams, ObjectRef, Patch, WriteParams,
};

use plan::{Counts, Input, Plan, Step};
use revisions::UpdateRevision;

const MANAGER: &str = "statefulset-controller";
/// How many times a revision name may collide before the sync gives up.
const MAX_COLLISIONS: i32 = 16;

struct State {
    ctx: Context,
    sets: Cache<StatefulSet>,
    pods: Cache<Pod>,
    revisions: Cache<ControllerRevision>,
    claims: Cache<PersistentVolumeClaim>,
    expectations: Expectations,
    recorder: Recorder,
}

fn wp() -> WriteParams {
    WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let set_informer = ctx.informers.get::<StatefulSet>();
    let pod_informer = ctx.informers.pods();
    let rev_informer = ctx.informers.get::<ControllerRevision>();
    let claim_informer = ctx.informers.get::<PersistentVolumeClaim>();
    let (for_orphans, for_claims) = (set_informer.cache(), set_informer.cache());
    let controller = Controller::new("statefulset", &set_informer)
        .owns::<StatefulSet, Pod>(&pod_informer)
        .owns::<StatefulSet, ControllerRevision>(&rev_informer)
        .watches(&pod_informer, move |p: &Pod| {
            adopters(&for_orphans, p, |s: &StatefulSet| {
                s.spec.as_ref().map(|s| s.selector.clone())
            })
        })
        // a pod waiting for a stale claim to go: `<template>-<set>-<ordinal>`
        .watches(&claim_informer, move |c: &PersistentVolumeClaim| {
            let name = c.metadata.name_str();
            for_claims
                .in_namespace(c.metadata.namespace_str())
                .iter()
                .filter(|s| {
                    let (parent, ord) = pods::parent_and_ordinal(name);
                    ord >= 0 && parent.ends_with(&format!("-{}", s.metadata.name_str()))
                })
                .map(|s| ObjectRef::of(s.as_ref()))
                .collect()
        })
        .workers(5);
    let state = Arc::new(State {
        recorder: Recorder::new(ctx.client.clone(), MANAGER, MANAGER),
        ctx: ctx.clone(),
        sets: set_informer.cache(),
        pods: pod_informer.cache(),
        revisions: rev_informer.cache(),
        claims: claim_informer.cache(),
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

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(set) = state.sets.get(&key) else {
        state.expectations.forget(&key);
        return Ok(Action::AwaitChange);
    };
    let ns = key.namespace.clone().unwrap_or_else(|| "default".into());
    let spec = set.spec.clone().unwrap_or_default();
    let client = &state.ctx.client;
    let rev_api = client.api::<ControllerRevision>(Some(&ns));
    let pod_api = client.api::<Pod>(Some(&ns));

    let mut history = claim(
        set.as_ref(),
        &spec.selector,
        &state.revisions,
        &rev_api,
        MANAGER,
    )
    .await?;
    let owned = claim_filtered(
        set.as_ref(),
        &spec.selector,
        |p: &Pod| pods::is_member(&set, p),
        &state.pods,
        &pod_api,
        MANAGER,
    )
    .await?;
    let cache = state.pods.clone();
    let settled = state.expectations.satisfied(
        &key,
        |name| {
            cache
                .get(&ObjectRef::new(Some(&ns), name))
                .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
        },
        |name| {
            cache
                .get(&ObjectRef::new(Some(&ns), name))
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        },
    );
    if !settled {
        // the cache has not seen our last creations or deletions yet
        return Ok(Action::requeue(Duration::from_secs(5)));
    }

    revisions::sort(&mut history);
    let mut collisions = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let update = settle_update_revision(&state, &set, &history, &mut collisions).await?;
    let current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref())
        .and_then(|name| history.iter().find(|r| r.metadata.name_str() == name))
        .cloned()
        .unwrap_or_else(|| update.clone());
    let current_set = revisions::apply(&set, &current);
    let update_set = revisions::apply(&set, &update);
    let claims = state.claims.clone();
    let claim_ns = ns.clone();
    let lookup = move |name: &str| claims.get(&ObjectRef::new(Some(&claim_ns), name));
    let plan = plan::plan(&Input {
        set: &set,
        current_set: &current_set,
        update_set: &update_set,
        current_revision: current.metadata.name_str(),
        update_revision: update.metadata.name_str(),
        pods: &owned,
        claim: &lookup,
    });
    let done = execute(&state, &key, &set, &plan).await;

    let status = new_status(&set, &plan.counts, &current, &update, collisions);
    let set_api = client.api::<StatefulSet>(Some(&ns));
    let name = set.metadata.name_str();
    if !write_status(&set_api, name, set.status.as_ref(), &status, MANAGER).await? {
        return Ok(Action::AwaitChange);
    }
    let limit = usize::try_from(spec.revision_history_limit.unwrap_or(10).max(0)).unwrap_or(0);
    let live = [current.metadata.name_str(), update.metadata.name_str()];
    for r in revisions::to_prune(&history, &live, &owned, limit) {
        let dp = DeleteParams {
            precondition_uid: r.metadata.uid.clone(),
            ..Default::default()
        };
        match rev_api.delete(r.metadata.name_str(), &dp).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => return Err(e),
        }
    }
    done?;
    // recheck when a ready pod becomes available
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let next = owned
        .iter()
        .map(|p| seconds_until_available(p, min_ready))
        .filter(|s| *s > 0)
        .min();
    Ok(match next {
        Some(s) => Action::requeue(Duration::from_secs(u64::try_from(s).unwrap_or(1) + 1)),
        None => Action::AwaitChange,
    })
}

/// The update revision: the newest one, an older one renumbered (a
/// rollback), or a new one — whose name, on a collision with a revision of
/// other data, moves on with `collisions` (`CreateControllerRevision`).
async fn settle_update_revision(
    state: &State,
    set: &StatefulSet,
    sorted: &[Arc<ControllerRevision>],
    collisions: &mut i32,
) -> Result<Arc<ControllerRevision>, ClientError> {
    let api = state
        .ctx
        .client
        .api::<ControllerRevision>(set.metadata.namespace.as_deref());
    match revisions::update_revision(set, sorted, *collisions) {
        UpdateRevision::Latest(r) => Ok(r),
        UpdateRevision::Renumber(r, number) => {
            let patch = Patch::Merge(json!({"revision": number}));
            Ok(Arc::new(
                api.patch(r.metadata.name_str(), &patch, &wp()).await?,
            ))
        }
        UpdateRevision::Create(mut candidate) => {
            let number = candidate.revision;
            for _ in 0..MAX_COLLISIONS {
                match api.create(&candidate, &wp()).await {
                    Ok(r) => return Ok(Arc::new(r)),
                    Err(e) if e.is_already_exists() => {
                        let existing = api.get(candidate.metadata.name_str()).await?;
                        if revisions::data(&existing) == revisions::data(&candidate) {
                            return Ok(Arc::new(existing));
                        }
                        *collisions += 1;
                        *candidate = revisions::new_revision(set, number, *collisions);
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(ClientError::Decode(format!(
                "StatefulSet {}: {MAX_COLLISIONS} revision names collided",
                set.metadata.name_str()
            )))
        }
    }
}

/// The status a sync leaves (`updateStatefulSet` + `completeRollingUpdate`),
/// with kube's empty fields left out.
fn new_status(
    set: &StatefulSet,
    c: &Counts,
    current: &ControllerRevision,
    update: &ControllerRevision,
    collisions: i32,
) -> StatefulSetStatus {
    let rolling = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete");
    let (mut current_count, mut current_name) = (c.current, current.metadata.name_str());
    if rolling && c.updated == c.replicas && c.ready == c.replicas {
        current_count = c.updated;
        current_name = update.metadata.name_str();
    }
    let some = |n: i32| Some(n).filter(|n| *n != 0);
    StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: c.replicas,
        ready_replicas: some(c.ready),
        current_replicas: some(current_count),
        updated_replicas: some(c.updated),
        available_replicas: Some(c.available),
        current_revision: Some(current_name.to_string()),
        update_revision: Some(update.metadata.name_str().to_string()),
        collision_count: Some(collisions),
        conditions: None,
    }
}

/// Carries the plan out: phase by phase; in a phase step by step, or for
/// Parallel in slow-start batches (1, 2, 4, …) of concurrent steps; the
/// first error ends it.
async fn execute(
    state: &State,
    key: &ObjectRef,
    set: &StatefulSet,
    plan: &Plan,
) -> Result<(), ClientError> {
    for phase in &plan.phases {
        if plan.parallel {
            let mut rest: &[Step] = phase;
            let mut batch = 1;
            while !rest.is_empty() {
                let (now, later) = rest.split_at(batch.min(rest.len()));
                let results =
                    futures_util::future::join_all(now.iter().map(|s| perform(state, key, set, s)))
                        .await;
                results.into_iter().collect::<Result<Vec<()>, _>>()?;
                rest = later;
                batch *= 2;
            }
        } else {
            for step in phase {
                perform(state, key, set, step).await?;
            }
        }
    }
    Ok(())
}

/// One step, with the Event kube's StatefulPodControl records.
async fn perform(
    state: &State,
    key: &ObjectRef,
    set: &StatefulSet,
    step: &Step,
) -> Result<(), ClientError> {
    let ns = set.metadata.namespace_str();
    let pods = state.ctx.client.api::<Pod>(Some(ns));
    let name = step.pod_name().to_string();
    let (verb, result) = match step {
        Step::Create(pod) => {
            create_claims(state, set, pod).await?;
            state.expectations.created(key, [name.clone()]);
            match pods.create(pod, &wp()).await {
                Ok(created) => {
                    own_claims(state, set, &created).await?;
                    ("create", Ok(()))
                }
                Err(e) => {
                    state.expectations.observed(key, &name);
                    if e.is_already_exists() {
                        return Err(e);
                    }
                    ("create", Err(e))
                }
            }
        }
        Step::Delete(pod, reason) => {
            tracing::info!(statefulset = set.metadata.name_str(), pod = %name, ?reason, "deleting pod");
            state.expectations.deleted(key, [name.clone()]);
            let dp = DeleteParams {
                precondition_uid: pod.metadata.uid.clone(),
                ..Default::default()
            };
            let result = match pods.delete(&name, &dp).await {
                Err(e) if e.is_not_found() => Ok(()),
                other => other,
            };
            if result.is_err() {
                state.expectations.observed(key, &name);
            }
            ("delete", result)
        }
        Step::Relabel(pod) => {
            let labels = pods::identity_labels(pod);
            let patch =
                Patch::Merge(json!({"metadata": {"labels": labels, "uid": pod.metadata.uid}}));
            ("update", pods.patch(&name, &patch, &wp()).await.map(|_| ()))
        }
        Step::CreateClaims(pod) => return create_claims(state, set, pod).await,
        Step::SetClaimOwners(claim, owners) => {
            return match state
                .ctx
                .client
                .api::<PersistentVolumeClaim>(Some(ns))
                .patch(claim, &owners_patch(owners), &wp())
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(ClientError::Decode(format!(
                    "could not update claim {claim} for delete policy ownerRefs: {e}"
                ))),
            };
        }
    };
    let set_name = set.metadata.name_str();
    match &result {
        Ok(()) => state.recorder.record(
            set,
            NORMAL,
            &format!("Successful{}", capitalised(verb)),
            "",
            &format!("{verb} Pod {name} in StatefulSet {set_name} successful"),
        ),
        Err(e) => state.recorder.record(
            set,
            WARNING,
            &format!("Failed{}", capitalised(verb)),
            "",
            &format!("{verb} Pod {name} in StatefulSet {set_name} failed error: {e}"),
        ),
    }
    result
}

fn capitalised(verb: &str) -> String {
    let mut c = verb.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Creates the pod's claims that do not exist yet (`createPersistentVolumeClaims`);
/// a claim being deleted is an error (the pod waits for it to go).
async fn create_claims(state: &State, set: &StatefulSet, pod: &Pod) -> Result<(), ClientError> {
    let ns = set.metadata.namespace_str();
    let api = state.ctx.client.api::<PersistentVolumeClaim>(Some(ns));
    let (set_name, pod_name) = (set.metadata.name_str(), pod.metadata.name_str());
    let mut first_error = None;
    for (_, claim) in pods::claims(set, pods::ordinal(pod)) {
        let name = claim.metadata.name_str().to_string();
        let existing = match state.claims.get(&ObjectRef::new(Some(ns), &name)) {
            Some(c) => Some(c),
            None => api.get_opt(&name).await?.map(Arc::new),
        };
        match existing {
            Some(c) if c.metadata.deletion_timestamp.is_some() => {
                first_error
                    .get_or_insert(ClientError::Decode(format!("pvc {name} is being deleted")));
            }
            Some(_) => {}
            None => match api.create(&claim, &wp()).await {
                Ok(_) => state.recorder.record(
                    set,
                    NORMAL,
                    "SuccessfulCreate",
                    "",
                    &format!(
                        "create Claim {name} Pod {pod_name} in StatefulSet {set_name} success"
                    ),
                ),
                Err(e) if e.is_already_exists() => {}
                Err(e) => {
                    state.recorder.record(
                        set,
                        WARNING,
                        "FailedCreate",
                        "",
                        &format!("create Claim {name} for Pod {pod_name} in StatefulSet {set_name} failed error: {e}"),
                    );
                    first_error.get_or_insert(e);
                }
            },
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The merge patch that sets a claim's owner references to `owners`.
fn owners_patch(
    owners: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
) -> Patch {
    let refs = if owners.is_empty() {
        Value::Null
    } else {
        json!(owners)
    };
    Patch::Merge(json!({"metadata": {"ownerReferences": refs}}))
}

/// Sets the owners of a just-created pod's claims as the retention policy
/// wants (`UpdatePodClaimForRetentionPolicy`).
async fn own_claims(state: &State, set: &StatefulSet, pod: &Pod) -> Result<(), ClientError> {
    let ns = set.metadata.namespace_str();
    let api = state.ctx.client.api::<PersistentVolumeClaim>(Some(ns));
    for (_, claim) in pods::claims(set, pods::ordinal(pod)) {
        let name = claim.metadata.name_str();
        let Some(live) = api.get_opt(name).await? else {
            continue;
        };
        if let Some(owners) = pods::claim_owners(set, &live, pod) {
            api.patch(name, &owners_patch(&owners), &wp()).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(name: &str) -> ControllerRevision {
        serde_json::from_value(json!({"metadata": {"name": name}, "revision": 1}))
            .expect("revision")
    }

    #[test]
    fn a_finished_rolling_update_makes_the_update_revision_current() {
        let set: StatefulSet =
            serde_json::from_value(json!({"metadata": {"name": "web", "generation": 4},
            "spec": {"selector": {}, "template": {}, "serviceName": "web"}}))
            .expect("set");
        let (old, new) = (revision("web-old"), revision("web-new"));
        let three = |current, updated| Counts {
            replicas: 3,
            ready: 3,
            available: 3,
            current,
            updated,
        };
        let midway = three(2, 1);
        let s = new_status(&set, &midway, &old, &new, 0);
        assert_eq!(s.current_revision.as_deref(), Some("web-old"));
        assert_eq!((s.current_replicas, s.updated_replicas), (Some(2), Some(1)));
        assert_eq!(s.observed_generation, Some(4));
        let done = three(0, 3);
        let s = new_status(&set, &done, &old, &new, 0);
        assert_eq!(s.current_revision.as_deref(), Some("web-new"));
        assert_eq!(s.current_replicas, Some(3));
        assert_eq!(s.collision_count, Some(0));
        let empty = new_status(&set, &Counts::default(), &old, &new, 0);
        assert_eq!(
            (empty.ready_replicas, empty.available_replicas),
            (None, Some(0))
        );
    }
}
