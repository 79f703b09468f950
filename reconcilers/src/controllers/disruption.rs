//! The disruption controller: keeps each PodDisruptionBudget's status
//! (expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed,
//! disruptedPods, observedGeneration and the `DisruptionAllowed` condition)
//! as kube's `disruption.go` does. minAvailable as an integer counts the
//! matching pods; a percentage, and maxUnavailable, scale from the pods'
//! controllers' replicas (ReplicationController, Deployment, ReplicaSet,
//! StatefulSet). Pods the eviction subresource recorded in disruptedPods
//! count as gone for two minutes. A sync that fails writes
//! disruptionsAllowed 0 with reason SyncFailed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use schemas::object::scaled_value;
use schemas::{MetaExt, SelectorExt, TimeExt};

use crate::controllers::podutil::{controller_of, is_ready};
use crate::controllers::recorder::{NORMAL, Recorder, WARNING};
use crate::controllers::{Context, write_status};
use crate::runtime::{Action, Cache, ClientError, Controller, ObjectRef};

const MANAGER: &str = "disruption-controller";
/// How long a pod the eviction subresource approved may take to go before
/// it counts again (kube's DeletionTimeout).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// The condition type.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";

struct State {
    ctx: Context,
    pdbs: Cache<PodDisruptionBudget>,
    pods: Cache<Pod>,
    scales: Scales,
    recorder: Recorder,
}

/// The caches the controllers' scales are read from.
pub struct Scales {
    rcs: Cache<ReplicationController>,
    replicasets: Cache<ReplicaSet>,
    deployments: Cache<Deployment>,
    statefulsets: Cache<StatefulSet>,
}

impl Scales {
    /// (uid, replicas) of the controller `r` names in `ns`; `Ok(None)` when
    /// it is not (or no longer) there (kube's finders).
    fn of(&self, r: &OwnerReference, ns: &str) -> Result<Option<(String, i32)>, String> {
        let key = ObjectRef::new(Some(ns), &r.name);
        let found = |uid: Option<&String>, replicas: Option<i32>| {
            Ok(uid
                .filter(|u| **u == r.uid)
                .map(|u| (u.clone(), replicas.unwrap_or(1))))
        };
        match (r.api_version.as_str(), r.kind.as_str()) {
            ("v1", "ReplicationController") => match self.rcs.get(&key) {
                Some(rc) => found(
                    rc.metadata.uid.as_ref(),
                    rc.spec.as_ref().and_then(|s| s.replicas),
                ),
                None => Ok(None),
            },
            ("apps/v1", "ReplicaSet") => {
                let Some(rs) = self.replicasets.get(&key) else {
                    return Ok(None);
                };
                if rs.metadata.uid.as_deref() != Some(r.uid.as_str()) {
                    return Ok(None);
                }
                // a Deployment's ReplicaSet counts as the Deployment
                match controller_of(&rs.metadata).filter(|o| o.kind == "Deployment") {
                    Some(d_ref) => {
                        match self.deployments.get(&ObjectRef::new(Some(ns), &d_ref.name)) {
                            Some(d) => found(
                                d.metadata
                                    .uid
                                    .as_ref()
                                    .filter(|u| **u == d_ref.uid)
                                    .map(|_| &r.uid),
                                d.spec.as_ref().and_then(|s| s.replicas),
                            )
                            .map(|f| f.map(|(_, n)| (d_ref.uid.clone(), n))),
                            None => Ok(None),
                        }
                    }
                    None => found(
                        rs.metadata.uid.as_ref(),
                        rs.spec.as_ref().and_then(|s| s.replicas),
                    ),
                }
            }
            ("apps/v1", "StatefulSet") => match self.statefulsets.get(&key) {
                Some(s) => found(
                    s.metadata.uid.as_ref(),
                    s.spec.as_ref().and_then(|s| s.replicas),
                ),
                None => Ok(None),
            },
            (api_version, kind) => {
                let what = schemas::lookup(api_version, kind)
                    .map(|i| {
                        if i.group.is_empty() {
                            i.plural.to_string()
                        } else {
                            format!("{}.{}", i.plural, i.group)
                        }
                    })
                    .unwrap_or_else(|_| kind.to_lowercase());
                Err(format!("{what} does not implement the scale subresource"))
            }
        }
    }
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let pdb_informer = ctx.informers.get::<PodDisruptionBudget>();
    let pod_informer = ctx.informers.pods();
    let pdbs_for_pods = pdb_informer.cache();
    let controller = Controller::new("disruption", &pdb_informer)
        .watches(&pod_informer, move |p: &Pod| {
            pdbs_for_pods
                .in_namespace(p.metadata.namespace_str())
                .iter()
                .filter(|pdb| selects(pdb, p))
                .map(|pdb| ObjectRef::of(pdb.as_ref()))
                .collect()
        })
        .workers(4);
    let state = Arc::new(State {
        recorder: Recorder::new(ctx.client.clone(), MANAGER, MANAGER),
        pdbs: pdb_informer.cache(),
        pods: pod_informer.cache(),
        scales: Scales {
            rcs: ctx.informers.get::<ReplicationController>().cache(),
            replicasets: ctx.informers.get::<ReplicaSet>().cache(),
            deployments: ctx.informers.get::<Deployment>().cache(),
            statefulsets: ctx.informers.get::<StatefulSet>().cache(),
        },
        ctx: ctx.clone(),
    });
    // scales are read from these caches: let them fill first
    state.scales.rcs.wait_synced().await;
    state.scales.replicasets.wait_synced().await;
    state.scales.deployments.wait_synced().await;
    state.scales.statefulsets.wait_synced().await;
    let shutdown = ctx.stopped();
    controller
        .run(
            move |key| reconcile(state.clone(), key),
            ctx.metrics.clone(),
            shutdown,
        )
        .await;
}

/// Whether the budget covers `pod`: an empty selector selects every pod of
/// the namespace (policy/v1), a missing one none.
pub fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    match pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(sel) => sel.is_empty() || sel.matches(pod.metadata.labels_map()),
        None => false,
    }
}

/// (expectedPods, desiredHealthy) for the budget over `pods`
/// (`getExpectedPodCount`), and the names of pods without a controller.
pub fn expected_and_desired(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    scale: impl Fn(&OwnerReference, &str) -> Result<Option<(String, i32)>, String>,
) -> Result<(i32, i32, Vec<String>), String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let expected_scale = || -> Result<(i32, Vec<String>), String> {
        let mut scales: HashMap<String, i32> = HashMap::new();
        let mut unmanaged = Vec::new();
        for p in pods {
            let Some(r) = controller_of(&p.metadata) else {
                unmanaged.push(p.metadata.name_str().to_string());
                continue;
            };
            if scales.contains_key(&r.uid) {
                continue;
            }
            match scale(r, p.metadata.namespace_str())? {
                Some((uid, n)) => {
                    scales.insert(uid, n);
                }
                None => {
                    return Err(format!(
                        "found no controllers for pod {:?}",
                        p.metadata.name_str()
                    ));
                }
            }
        }
        Ok((scales.values().sum(), unmanaged))
    };
    if let Some(max) = &spec.max_unavailable {
        let (expected, unmanaged) = expected_scale()?;
        let max = scaled_value(max, expected, true)?;
        return Ok((expected, (expected - max).max(0), unmanaged));
    }
    match &spec.min_available {
        Some(v @ k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(_)) => {
            let (expected, unmanaged) = expected_scale()?;
            Ok((expected, scaled_value(v, expected, true)?, unmanaged))
        }
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
            Ok((count(pods.len()), *n, Vec::new()))
        }
        None => Ok((0, 0, Vec::new())),
    }
}

/// The disruptedPods entries still pending (not deleted yet, within the
/// deletion timeout), and when the earliest of them expires
/// (`buildDisruptedPodMap`).
pub fn pending_disruptions(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    now: DateTime<Utc>,
) -> (BTreeMap<String, Time>, Option<DateTime<Utc>>) {
    let mut out = BTreeMap::new();
    let mut recheck: Option<DateTime<Utc>> = None;
    let Some(recorded) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return (out, None);
    };
    let timeout = chrono::Duration::from_std(DELETION_TIMEOUT).unwrap_or_default();
    for p in pods {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(at) = recorded.get(p.metadata.name_str()) else {
            continue;
        };
        let expires = at.utc() + timeout;
        if expires > now {
            recheck = Some(recheck.map_or(expires, |r| r.min(expires)));
            out.insert(p.metadata.name_str().to_string(), at.clone());
        }
    }
    (out, recheck)
}

/// Ready pods not being deleted and not about to be (`countHealthyPods`).
pub fn current_healthy(pods: &[Arc<Pod>], disrupted: &BTreeMap<String, Time>) -> i32 {
    let n = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(p.metadata.name_str()))
        .filter(|p| is_ready(p))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `conditions` with the DisruptionAllowed condition set (`SetStatusCondition`:
/// the transition time moves only when the status does).
fn set_condition(
    conditions: &mut Vec<Condition>,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let now = schemas::time::now();
    match conditions
        .iter_mut()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now;
            }
            c.status = status.into();
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: generation,
            last_transition_time: now,
        }),
    }
}

/// The status for these counts (`updatePdbStatus`), or `None` when the
/// current one already says it.
pub fn new_status(
    pdb: &PodDisruptionBudget,
    current: i32,
    desired: i32,
    expected: i32,
    disrupted: BTreeMap<String, Time>,
) -> Option<PodDisruptionBudgetStatus> {
    let allowed = if expected <= 0 || current - desired <= 0 {
        0
    } else {
        current - desired
    };
    let old = pdb.status.clone().unwrap_or_default();
    let generation = pdb.metadata.generation;
    let (status, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let up_to_date = old.conditions.iter().flatten().any(|c| {
        c.type_ == DISRUPTION_ALLOWED
            && c.observed_generation == old.observed_generation
            && c.status == status
    });
    let disrupted = (!disrupted.is_empty()).then_some(disrupted);
    if old.current_healthy == current
        && old.desired_healthy == desired
        && old.expected_pods == expected
        && old.disruptions_allowed == allowed
        && old.disrupted_pods.as_ref().filter(|m| !m.is_empty()) == disrupted.as_ref()
        && old.observed_generation == generation
        && up_to_date
    {
        return None;
    }
    let mut conditions = old.conditions.unwrap_or_default();
    set_condition(&mut conditions, status, reason, "", generation);
    Some(PodDisruptionBudgetStatus {
        conditions: Some(conditions),
        current_healthy: current,
        desired_healthy: desired,
        disrupted_pods: disrupted,
        disruptions_allowed: allowed,
        expected_pods: expected,
        observed_generation: generation,
    })
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(pdb) = state.pdbs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let ns = pdb.metadata.namespace_str().to_string();
    let api = state.ctx.client.api::<PodDisruptionBudget>(Some(&ns));
    let name = pdb.metadata.name_str();
    let mut pods: Vec<Arc<Pod>> = state
        .pods
        .in_namespace(&ns)
        .into_iter()
        .filter(|p| selects(&pdb, p))
        .collect();
    pods.sort_by(|a, b| a.metadata.name_str().cmp(b.metadata.name_str()));
    if pods.is_empty() {
        state
            .recorder
            .record(pdb.as_ref(), NORMAL, "NoPods", "", "No matching pods found");
    }
    let counts = expected_and_desired(&pdb, &pods, |r, ns| state.scales.of(r, ns));
    let (expected, desired, unmanaged) = match counts {
        Ok(c) => c,
        Err(e) => {
            state.recorder.record(
                pdb.as_ref(),
                WARNING,
                "CalculateExpectedPodCountFailed",
                "",
                &format!("Failed to calculate the number of expected pods: {e}"),
            );
            // fail safe: no disruptions until the budget can be computed
            let mut status = pdb.status.clone().unwrap_or_default();
            status.disruptions_allowed = 0;
            let mut conditions = status.conditions.take().unwrap_or_default();
            set_condition(
                &mut conditions,
                "False",
                "SyncFailed",
                &e,
                status.observed_generation,
            );
            status.conditions = Some(conditions);
            write_status(&api, name, pdb.status.as_ref(), &status, MANAGER).await?;
            return Ok(Action::requeue(Duration::from_secs(10)));
        }
    };
    if !unmanaged.is_empty() {
        let selector = pdb
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .map(|s| serde_json::to_string(s).unwrap_or_default())
            .unwrap_or_default();
        state.recorder.record(
            pdb.as_ref(),
            WARNING,
            "UnmanagedPods",
            "",
            &format!(
                "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."
            ),
        );
    }
    let now = Utc::now();
    let (disrupted, recheck) = pending_disruptions(&pdb, &pods, now);
    let current = current_healthy(&pods, &disrupted);
    if let Some(status) = new_status(&pdb, current, desired, expected, disrupted) {
        // a conflict means the eviction subresource wrote first: read again
        match write_status(&api, name, pdb.status.as_ref(), &status, MANAGER).await {
            Ok(_) => {}
            Err(e) if e.is_conflict() => return Ok(Action::requeue(Duration::from_millis(100))),
            Err(e) => return Err(e),
        }
    }
    Ok(match recheck {
        Some(at) => {
            Action::requeue((at - now).to_std().unwrap_or_default() + Duration::from_millis(100))
        }
        None => Action::AwaitChange,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: serde_json::Value, status: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "generation": 2},
            "spec": spec, "status": status
        }))
        .expect("pdb")
    }

    fn pod(name: &str, ready: bool, owner: Option<&str>) -> Arc<Pod> {
        let refs = owner.map(|uid| {
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true}])
        });
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"},
                             "ownerReferences": refs},
                "spec": {"containers": []},
                "status": {"phase": "Running", "conditions": [{"type": "Ready",
                    "status": if ready { "True" } else { "False" }}]}
            }))
            .expect("pod"),
        )
    }

    fn scale_of(n: i32) -> impl Fn(&OwnerReference, &str) -> Result<Option<(String, i32)>, String> {
        move |r, _| Ok(Some((r.uid.clone(), n)))
    }

    #[test]
    fn min_available_as_a_number_counts_the_pods() {
        let p = pdb(
            json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
            json!({}),
        );
        let pods = vec![
            pod("a", true, None),
            pod("b", true, None),
            pod("c", false, None),
        ];
        let (expected, desired, unmanaged) =
            expected_and_desired(&p, &pods, scale_of(9)).expect("counts");
        assert_eq!((expected, desired), (3, 2));
        assert!(
            unmanaged.is_empty(),
            "an integer minAvailable needs no controllers"
        );
        let current = current_healthy(&pods, &BTreeMap::new());
        assert_eq!(current, 2);
        let s = new_status(&p, current, desired, expected, BTreeMap::new()).expect("status");
        assert_eq!(s.disruptions_allowed, 0);
        let c = &s.conditions.expect("conditions")[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "InsufficientPods")
        );
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn percentages_and_max_unavailable_scale_from_the_controller() {
        let pods: Vec<_> = (0..4)
            .map(|i| pod(&format!("p{i}"), true, Some("rs1")))
            .collect();
        let pct = pdb(json!({"minAvailable": "50%", "selector": {}}), json!({}));
        // the controller wants 5: 50% of 5 rounds up to 3
        let (expected, desired, _) =
            expected_and_desired(&pct, &pods, scale_of(5)).expect("counts");
        assert_eq!((expected, desired), (5, 3));
        let max = pdb(json!({"maxUnavailable": "30%", "selector": {}}), json!({}));
        // 30% of 4 rounds up to 2: 2 must stay healthy
        let (expected, desired, _) =
            expected_and_desired(&max, &pods, scale_of(4)).expect("counts");
        assert_eq!((expected, desired), (4, 2));
        let s = new_status(&max, 4, desired, expected, BTreeMap::new()).expect("status");
        assert_eq!(s.disruptions_allowed, 2);
        assert_eq!(s.conditions.expect("c")[0].reason, "SufficientPods");
        let max1 = pdb(json!({"maxUnavailable": 1, "selector": {}}), json!({}));
        assert_eq!(
            expected_and_desired(&max1, &pods, scale_of(4))
                .expect("c")
                .1,
            3
        );
        // a pod without a controller cannot be scaled from
        let loose = vec![pod("x", true, None)];
        assert_eq!(
            expected_and_desired(&max1, &loose, scale_of(4))
                .expect("counts")
                .2,
            vec!["x".to_string()]
        );
        let missing = |_: &OwnerReference, _: &str| Ok(None);
        assert_eq!(
            expected_and_desired(&max1, &pods, missing).unwrap_err(),
            "found no controllers for pod \"p0\""
        );
    }

    #[test]
    fn evicted_pods_count_as_gone_until_the_timeout() {
        let now = Utc::now();
        let recent = schemas::time::from_utc(now - chrono::Duration::seconds(10));
        let old = schemas::time::from_utc(now - chrono::Duration::seconds(500));
        let p = pdb(
            json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}),
            json!({"disruptedPods": {"a": recent, "b": old}}),
        );
        let pods = vec![
            pod("a", true, None),
            pod("b", true, None),
            pod("c", true, None),
        ];
        let (pending, recheck) = pending_disruptions(&p, &pods, now);
        assert_eq!(pending.keys().collect::<Vec<_>>(), vec!["a"]);
        assert!(recheck.is_some_and(|r| r > now));
        assert_eq!(current_healthy(&pods, &pending), 2);
        // the status is current: nothing to write
        let s = new_status(&p, 2, 1, 3, pending.clone()).expect("first write");
        let written = PodDisruptionBudget {
            status: Some(s),
            ..p.clone()
        };
        assert!(new_status(&written, 2, 1, 3, pending).is_none());
    }

    #[test]
    fn an_empty_selector_selects_everything_and_none_nothing() {
        let all = pdb(json!({"selector": {}}), json!({}));
        let none = pdb(json!({}), json!({}));
        let p = pod("a", true, None);
        assert!(selects(&all, &p));
        assert!(!selects(&none, &p));
    }
}
