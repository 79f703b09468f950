//! One sync of a StatefulSet decided without I/O (`updateStatefulSet` of
//! Kubernetes' `stateful_set_control.go`): which pods to create, delete or
//! relabel and which claims to re-own, in the order the controller must do
//! them, and the status counts.
//!
//! OrderedReady ("monotonic") stops at the first step that must wait — a pod
//! just created, one not yet Running and Ready (and available), one
//! terminating — so ordinal i exists only once 0..i-1 are ready, and scale
//! down removes the highest ordinal first, one at a time. Parallel does every
//! step of a phase at once. Updates (RollingUpdate) delete the highest
//! ordinal at or above the partition whose revision is old, one at a time
//! (or up to maxUnavailable), after scaling is done; OnDelete never deletes.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemas::MetaExt;
use schemas::object::scaled_value;

use super::pods::{
    claim_is_stale, claim_owners, claims, end_ordinal, identity_matches, in_ordinal_range,
    is_created, is_finished, is_healthy, is_pending, is_running_and_available,
    is_running_and_ready, is_terminating, new_pod, ordinal, pod_revision, replicas, start_ordinal,
    storage_matches,
};

/// Why a pod is deleted (for events and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// It finished (Failed or Succeeded) and is made again.
    Finished,
    /// Its ordinal is past the replicas.
    ScaleDown,
    /// Its revision is old (RollingUpdate).
    Update,
}

/// One thing to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Create the pod's missing claims, then the pod.
    Create(Box<Pod>),
    /// Delete the pod (with its uid as a precondition).
    Delete(Arc<Pod>, DeleteReason),
    /// Put the identity labels back on the pod.
    Relabel(Arc<Pod>),
    /// Create the pod's missing claims (it is Pending, maybe for them).
    CreateClaims(Arc<Pod>),
    /// Set a claim's owner references (retention policy).
    SetClaimOwners(String, Vec<OwnerReference>),
}

impl Step {
    /// The pod the step is about.
    pub fn pod_name(&self) -> &str {
        match self {
            Step::Create(p) => p.metadata.name_str(),
            Step::Delete(p, _) | Step::Relabel(p) | Step::CreateClaims(p) => p.metadata.name_str(),
            Step::SetClaimOwners(claim, _) => claim,
        }
    }
}

/// The status counts (`computeReplicaStatus`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Pods created (with a phase).
    pub replicas: i32,
    /// Running and Ready.
    pub ready: i32,
    /// Running and Ready for minReadySeconds.
    pub available: i32,
    /// At the current revision, not terminating.
    pub current: i32,
    /// At the update revision, not terminating.
    pub updated: i32,
}

/// What one sync does: phases run in order, each step of a phase one after
/// the other (stopping at the first error) or, for Parallel, all at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The steps, phase by phase.
    pub phases: Vec<Vec<Step>>,
    /// Whether steps of a phase run at once.
    pub parallel: bool,
    /// The status counts after the plan.
    pub counts: Counts,
}

impl Plan {
    /// Adds a phase; whether the sync stops after it.
    fn end_phase(&mut self, steps: Vec<Step>, halted: bool) -> bool {
        self.phases.push(steps);
        halted
    }
}

/// What the planner needs to know.
pub struct Input<'a> {
    /// The set as stored.
    pub set: &'a StatefulSet,
    /// The set with its current revision's template.
    pub current_set: &'a StatefulSet,
    /// The set with its update revision's template.
    pub update_set: &'a StatefulSet,
    /// The current revision's name.
    pub current_revision: &'a str,
    /// The update revision's name.
    pub update_revision: &'a str,
    /// The set's pods.
    pub pods: &'a [Arc<Pod>],
    /// A claim of the namespace by name (from the cache).
    pub claim: &'a dyn Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
}

/// The counts over `pods` (`computeReplicaStatus`).
pub fn counts<'p>(
    pods: impl IntoIterator<Item = &'p Arc<Pod>>,
    min_ready_seconds: i32,
    current: &str,
    update: &str,
) -> Counts {
    let mut c = Counts::default();
    for p in pods {
        let created = is_created(p);
        c.replicas += i32::from(created);
        if is_running_and_ready(p) {
            c.ready += 1;
            c.available += i32::from(is_running_and_available(p, min_ready_seconds));
        }
        if created && !is_terminating(p) {
            c.current += i32::from(pod_revision(p) == current);
            c.updated += i32::from(pod_revision(p) == update);
        }
    }
    c
}

fn strategy(set: &StatefulSet) -> (bool, i32, Option<IntOrString>) {
    let s = set.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    let on_delete = s.and_then(|s| s.type_.as_deref()) == Some("OnDelete");
    let ru = s.and_then(|s| s.rolling_update.as_ref());
    (
        on_delete,
        ru.and_then(|r| r.partition).unwrap_or(0).max(0),
        ru.and_then(|r| r.max_unavailable.clone()),
    )
}

/// `newVersionedStatefulSetPod`: below the partition a missing pod is made
/// at the current revision, from the partition on at the update revision.
fn versioned_pod(input: &Input<'_>, ord: i32) -> Pod {
    let (on_delete, partition, _) = strategy(input.current_set);
    let below = ord < start_ordinal(input.current_set) + partition;
    if !on_delete && below {
        new_pod(input.current_set, ord, input.current_revision)
    } else {
        new_pod(input.update_set, ord, input.update_revision)
    }
}

/// The claims of `set`'s pod `p` whose owners are not what the retention
/// policy wants.
fn claim_fixes(set: &StatefulSet, p: &Pod, input: &Input<'_>) -> Vec<Step> {
    claims(set, ordinal(p))
        .iter()
        .filter_map(|(_, c)| {
            let live = (input.claim)(c.metadata.name_str())?;
            let owners = claim_owners(set, &live, p)?;
            Some(Step::SetClaimOwners(
                c.metadata.name_str().to_string(),
                owners,
            ))
        })
        .collect()
}

fn missing_claims(set: &StatefulSet, p: &Pod, input: &Input<'_>) -> bool {
    claims(set, ordinal(p))
        .iter()
        .any(|(_, c)| (input.claim)(c.metadata.name_str()).is_none())
}

/// Decides one sync of `input.set`.
pub fn plan(input: &Input<'_>) -> Plan {
    let set = input.set;
    let spec = set.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
    let monotonic = !parallel;
    let (cur, upd) = (input.current_revision, input.update_revision);
    let mut out = Plan {
        parallel,
        counts: counts(input.pods, min_ready, cur, upd),
        ..Default::default()
    };
    if set.metadata.deletion_timestamp.is_some() {
        return out;
    }

    // replicas[i] holds ordinal start + i; the rest with a valid ordinal are condemned
    let start = start_ordinal(set);
    let n = usize::try_from(replicas(set)).unwrap_or(0);
    let mut slots: Vec<Option<Arc<Pod>>> = vec![None; n];
    let mut condemned: Vec<Arc<Pod>> = Vec::new();
    for p in input.pods {
        let o = ordinal(p);
        if in_ordinal_range(set, p) {
            if let Some(slot) = usize::try_from(o - start)
                .ok()
                .and_then(|i| slots.get_mut(i))
            {
                *slot = Some(p.clone());
            }
        } else if o >= 0 {
            condemned.push(p.clone());
        }
    }
    let mut fresh: HashSet<String> = HashSet::new();
    let replicas: Vec<Arc<Pod>> = slots
        .into_iter()
        .zip(start..=end_ordinal(set))
        .map(|(slot, ord)| {
            slot.unwrap_or_else(|| {
                let p = versioned_pod(input, ord);
                fresh.insert(p.metadata.name_str().to_string());
                Arc::new(p)
            })
        })
        .collect();
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
    let existing = |v: &[Arc<Pod>]| -> Vec<Arc<Pod>> {
        v.iter()
            .filter(|p| !fresh.contains(p.metadata.name_str()))
            .cloned()
            .collect()
    };
    let finish = |out: &mut Plan, decrement: i32| {
        let all: Vec<Arc<Pod>> = existing(&replicas)
            .into_iter()
            .chain(condemned.iter().cloned())
            .collect();
        out.counts = counts(&all, min_ready, cur, upd);
        out.counts.current -= decrement;
    };
    let first_unhealthy: Option<String> = replicas
        .iter()
        .chain(condemned.iter().rev())
        .find(|p| !is_healthy(p))
        .map(|p| p.metadata.name_str().to_string());

    // 1. every replica: replace finished pods, create missing ones, keep identity
    let mut steps = Vec::new();
    let mut halted = false;
    for p in &replicas {
        let name = p.metadata.name_str();
        if fresh.contains(name) {
            let stale = claims(set, ordinal(p)).iter().any(|(_, c)| {
                (input.claim)(c.metadata.name_str())
                    .is_some_and(|live| claim_is_stale(set, &live, p))
            });
            if stale {
                halted = monotonic;
            } else {
                steps.push(Step::Create(Box::new((**p).clone())));
                halted = monotonic;
            }
        } else if is_finished(p) {
            if !is_terminating(p) {
                steps.push(Step::Delete(p.clone(), DeleteReason::Finished));
            }
            halted = monotonic;
        } else {
            if is_pending(p) && missing_claims(set, p, input) {
                steps.push(Step::CreateClaims(p.clone()));
            }
            if monotonic
                && (is_terminating(p)
                    || !is_running_and_ready(p)
                    || !is_running_and_available(p, min_ready))
            {
                halted = true;
            } else {
                if !identity_matches(set, p) {
                    steps.push(Step::Relabel(p.clone()));
                }
                if !storage_matches(set, p) && missing_claims(set, p, input) {
                    steps.push(Step::CreateClaims(p.clone()));
                }
                steps.extend(claim_fixes(input.update_set, p, input));
            }
        }
        if halted {
            break;
        }
    }
    if out.end_phase(steps, halted) {
        finish(&mut out, 0);
        return out;
    }

    // 2. condemned pods' claims follow the retention policy before they go
    out.phases.push(
        condemned
            .iter()
            .flat_map(|p| claim_fixes(input.update_set, p, input))
            .collect(),
    );

    // 3. scale down, highest ordinal first
    let mut steps = Vec::new();
    for p in &condemned {
        if is_terminating(p) {
            halted = monotonic;
        } else {
            let first = first_unhealthy.as_deref() == Some(p.metadata.name_str());
            if monotonic
                && !first
                && (!is_running_and_ready(p) || !is_running_and_available(p, min_ready))
            {
                halted = true;
            } else {
                steps.push(Step::Delete(p.clone(), DeleteReason::ScaleDown));
                halted = monotonic;
            }
        }
        if halted {
            break;
        }
    }
    if out.end_phase(steps, halted) {
        finish(&mut out, 0);
        return out;
    }

    // 4. rolling update, highest ordinal first
    let (on_delete, partition, max_unavailable) = strategy(set);
    let partition = usize::try_from(partition).unwrap_or(0);
    let mut steps = Vec::new();
    if !on_delete {
        let old = |p: &Arc<Pod>| pod_revision(p) != upd && !is_terminating(p);
        match max_unavailable {
            // the MaxUnavailableStatefulSet behaviour
            Some(mu) => {
                let total = i32::try_from(replicas.len()).unwrap_or(i32::MAX);
                let allowed = scaled_value(&mu, total, true).unwrap_or(1).max(1);
                let unavailable =
                    i32::try_from(replicas.iter().filter(|p| !is_healthy(p)).count()).unwrap_or(0);
                let budget = usize::try_from(allowed - unavailable).unwrap_or(0);
                steps.extend(
                    replicas
                        .iter()
                        .enumerate()
                        .rev()
                        .filter(|(i, p)| *i >= partition && old(p))
                        .take(budget)
                        .map(|(_, p)| Step::Delete(p.clone(), DeleteReason::Update)),
                );
            }
            None => {
                for (_, p) in replicas
                    .iter()
                    .enumerate()
                    .rev()
                    .filter(|(i, _)| *i >= partition)
                {
                    if old(p) {
                        steps.push(Step::Delete(p.clone(), DeleteReason::Update));
                        break;
                    }
                    if !is_healthy(p) {
                        break;
                    }
                }
            }
        }
    }
    let decrement = i32::try_from(steps.len()).unwrap_or(0);
    out.phases.push(steps);
    finish(&mut out, decrement);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::statefulset::revisions::{apply, new_revision};
    use serde_json::json;
    use std::collections::HashMap;

    fn set(replicas: i32, policy: &str, extra: serde_json::Value) -> StatefulSet {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"},
            "spec": {"replicas": replicas, "serviceName": "nginx", "podManagementPolicy": policy,
                "selector": {"matchLabels": {"app": "nginx"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "template": {"metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}
        });
        if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
            for (k, x) in extra {
                spec.insert(k.clone(), x.clone());
            }
        }
        serde_json::from_value(v).expect("statefulset")
    }

    /// The set's pod at `ord`, as the API server would hold it.
    fn pod(s: &StatefulSet, ord: i32, revision: &str, state: &str) -> Arc<Pod> {
        let mut p = new_pod(s, ord, revision);
        p.metadata.uid = Some(format!("uid-{ord}"));
        let (phase, ready) = match state {
            "ready" => ("Running", "True"),
            "running" => ("Running", "False"),
            "failed" => ("Failed", "False"),
            _ => ("Pending", "False"),
        };
        p.status = serde_json::from_value(json!({"phase": phase,
            "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": "2020-01-01T00:00:00Z"}]}))
        .ok();
        if state == "terminating" {
            p.metadata.deletion_timestamp = Some(schemas::time::now());
        }
        Arc::new(p)
    }

    fn run(s: &StatefulSet, pods: &[Arc<Pod>], claims: &[&str]) -> Plan {
        run_revs(s, s, "web-r1", "web-r1", pods, claims)
    }

    fn run_revs(
        current: &StatefulSet,
        update: &StatefulSet,
        cur: &str,
        upd: &str,
        pods: &[Arc<Pod>],
        claims: &[&str],
    ) -> Plan {
        let have: HashMap<String, Arc<PersistentVolumeClaim>> = claims
            .iter()
            .map(|n| {
                let c: PersistentVolumeClaim =
                    serde_json::from_value(json!({"metadata": {"name": n, "namespace": "ns"}}))
                        .expect("claim");
                (n.to_string(), Arc::new(c))
            })
            .collect();
        let lookup = move |n: &str| have.get(n).cloned();
        plan(&Input {
            set: update,
            current_set: current,
            update_set: update,
            current_revision: cur,
            update_revision: upd,
            pods,
            claim: &lookup,
        })
    }

    fn summary(p: &Plan) -> Vec<String> {
        p.phases
            .iter()
            .flatten()
            .map(|s| match s {
                Step::Create(p) => format!("create {}", p.metadata.name_str()),
                Step::Delete(p, r) => format!("delete {} {r:?}", p.metadata.name_str()),
                Step::Relabel(p) => format!("relabel {}", p.metadata.name_str()),
                Step::CreateClaims(p) => format!("claims {}", p.metadata.name_str()),
                Step::SetClaimOwners(c, o) => format!("own {c} {}", o.len()),
            })
            .collect()
    }

    #[test]
    fn ordered_ready_creates_one_ordinal_after_the_previous_is_ready() {
        let s = set(3, "OrderedReady", json!({}));
        assert_eq!(summary(&run(&s, &[], &[])), vec!["create web-0"]);
        let pending = [pod(&s, 0, "web-r1", "pending")];
        assert_eq!(
            summary(&run(&s, &pending, &["www-web-0"])),
            Vec::<String>::new(),
            "web-0 not ready: wait"
        );
        let running = [pod(&s, 0, "web-r1", "running")];
        assert!(
            summary(&run(&s, &running, &["www-web-0"])).is_empty(),
            "running is not enough"
        );
        let ready = [pod(&s, 0, "web-r1", "ready")];
        assert_eq!(
            summary(&run(&s, &ready, &["www-web-0"])),
            vec!["create web-1"]
        );
        // a pending pod whose claim is missing gets it
        let pending = [pod(&s, 0, "web-r1", "pending")];
        assert_eq!(summary(&run(&s, &pending, &[])), vec!["claims web-0"]);
    }

    #[test]
    fn parallel_creates_every_missing_ordinal_at_once() {
        let s = set(3, "Parallel", json!({"ordinals": {"start": 5}}));
        let plan = run(&s, &[pod(&s, 6, "web-r1", "pending")], &[]);
        assert!(plan.parallel);
        assert_eq!(
            summary(&plan),
            vec!["create web-5", "claims web-6", "create web-7"]
        );
    }

    #[test]
    fn ordered_ready_scales_down_from_the_highest_ordinal_one_at_a_time() {
        let s = set(1, "OrderedReady", json!({}));
        let pods: Vec<Arc<Pod>> = (0..3).map(|i| pod(&s, i, "web-r1", "ready")).collect();
        let plan = run(&s, &pods, &[]);
        assert_eq!(summary(&plan), vec!["delete web-2 ScaleDown"]);
        assert_eq!(plan.counts.replicas, 3);
        // web-2 terminating: web-1 waits for it to be gone
        let pods = vec![
            pods[0].clone(),
            pods[1].clone(),
            pod(&s, 2, "web-r1", "terminating"),
        ];
        assert!(summary(&run(&s, &pods, &[])).is_empty());
        // an unhealthy pod below blocks scale down, unless it is the condemned one
        let pods = vec![
            pod(&s, 0, "web-r1", "running"),
            pod(&s, 1, "web-r1", "ready"),
        ];
        assert!(summary(&run(&s, &pods, &[])).is_empty());
        let pods = vec![
            pod(&s, 0, "web-r1", "ready"),
            pod(&s, 1, "web-r1", "running"),
        ];
        assert_eq!(
            summary(&run(&s, &pods, &[])),
            vec!["delete web-1 ScaleDown"]
        );
    }

    #[test]
    fn failed_pods_are_deleted_to_be_made_again() {
        let s = set(2, "OrderedReady", json!({}));
        let pods = vec![pod(&s, 0, "web-r1", "failed")];
        assert_eq!(summary(&run(&s, &pods, &[])), vec!["delete web-0 Finished"]);
    }

    fn two_revisions(extra: serde_json::Value) -> (StatefulSet, StatefulSet) {
        let old = set(3, "OrderedReady", extra.clone());
        let mut new = old.clone();
        if let Some(c) = new
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .and_then(|s| s.containers.first_mut())
        {
            c.image = Some("nginx:2".into());
        }
        // the current set is the stored set with the old revision's template
        let current = apply(&new, &new_revision(&old, 1, 0));
        (current, new)
    }

    #[test]
    fn rolling_update_respects_the_partition_highest_first() {
        let (cur, upd) = two_revisions(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}),
        );
        let pods: Vec<Arc<Pod>> = (0..3).map(|i| pod(&cur, i, "web-old", "ready")).collect();
        let plan = run_revs(&cur, &upd, "web-old", "web-new", &pods, &[]);
        assert_eq!(summary(&plan), vec!["delete web-2 Update"]);
        assert_eq!(
            plan.counts.current, 2,
            "the deleted pod no longer counts as current"
        );
        // web-2 updated but not ready yet: wait
        let pods = vec![
            pods[0].clone(),
            pods[1].clone(),
            pod(&upd, 2, "web-new", "running"),
        ];
        assert!(summary(&run_revs(&cur, &upd, "web-old", "web-new", &pods, &[])).is_empty());
        let pods = vec![
            pods[0].clone(),
            pods[1].clone(),
            pod(&upd, 2, "web-new", "ready"),
        ];
        let plan = run_revs(&cur, &upd, "web-old", "web-new", &pods, &[]);
        assert_eq!(summary(&plan), vec!["delete web-1 Update"]);
        // web-0 is below the partition: never touched, and remade at the old revision
        let pods = vec![pods[1].clone(), pods[2].clone()];
        let plan = run_revs(&cur, &upd, "web-old", "web-new", &pods, &[]);
        match &plan.phases[0][..] {
            [Step::Create(p)] => {
                assert_eq!(p.metadata.name_str(), "web-0");
                assert_eq!(pod_revision(p), "web-old");
                let image = p.spec.as_ref().and_then(|s| s.containers[0].image.clone());
                assert_eq!(image.as_deref(), Some("nginx:1"));
            }
            other => panic!("{other:?}"),
        }
        let counts = plan.counts;
        assert_eq!((counts.replicas, counts.current, counts.updated), (2, 1, 1));
    }

    #[test]
    fn max_unavailable_and_on_delete() {
        let (cur, upd) = two_revisions(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}}}),
        );
        let pods: Vec<Arc<Pod>> = (0..3).map(|i| pod(&cur, i, "web-old", "ready")).collect();
        let plan = run_revs(&cur, &upd, "web-old", "web-new", &pods, &[]);
        assert_eq!(
            summary(&plan),
            vec!["delete web-2 Update", "delete web-1 Update"]
        );
        let (cur, upd) = two_revisions(json!({"updateStrategy": {"type": "OnDelete"}}));
        let plan = run_revs(&cur, &upd, "web-old", "web-new", &pods, &[]);
        assert!(summary(&plan).is_empty(), "OnDelete waits for the user");
        // a pod the user deleted comes back at the update revision
        let plan = run_revs(&cur, &upd, "web-old", "web-new", &pods[..2], &[]);
        match &plan.phases[0][..] {
            [Step::Create(p)] => assert_eq!(pod_revision(p), "web-new"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scaled_down_claims_move_to_their_pod_under_when_scaled_delete() {
        let s = set(
            1,
            "OrderedReady",
            json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"}}),
        );
        let pods: Vec<Arc<Pod>> = (0..2).map(|i| pod(&s, i, "web-r1", "ready")).collect();
        let plan = run(&s, &pods, &["www-web-0", "www-web-1"]);
        assert_eq!(
            summary(&plan),
            vec!["own www-web-1 1", "delete web-1 ScaleDown"]
        );
    }
}
