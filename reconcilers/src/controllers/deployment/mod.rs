//! The Deployment controller, after Kubernetes': one ReplicaSet per pod
//! template (named by the template hash), rolled over by RollingUpdate
//! (maxSurge / maxUnavailable) or Recreate; revisions in annotations so
//! `kubectl rollout history|undo` work; paused deployments only scale;
//! old ReplicaSets beyond revisionHistoryLimit are deleted; status counts and
//! Available/Progressing conditions, including ProgressDeadlineExceeded.

pub mod status;
pub mod util;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemas::MetaExt;

use crate::controllers::Context;
use crate::controllers::claim::adopters;
use crate::controllers::claim::ignore_gone;
use crate::controllers::podutil::{controller_of, controller_ref};
use crate::runtime::{
    Action, Api, Cache, ClientError, Controller, DeleteParams, ObjectRef, Patch, WriteParams,
};
use status::reason;
use util::*;

const MANAGER: &str = "deployment-controller";

struct State {
    ctx: Context,
    deployments: Cache<Deployment>,
    replicasets: Cache<ReplicaSet>,
    pods: Cache<Pod>,
}

fn wp() -> WriteParams {
    WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let d_informer = ctx.informers.get::<Deployment>();
    let rs_informer = ctx.informers.get::<ReplicaSet>();
    let pod_informer = ctx.informers.pods();
    let d_for_orphans = d_informer.cache();
    let rs_for_pods = rs_informer.cache();
    let controller = Controller::new("deployment", &d_informer)
        .owns::<Deployment, ReplicaSet>(&rs_informer)
        .watches(&rs_informer, move |rs: &ReplicaSet| {
            adopters(&d_for_orphans, rs, |d: &Deployment| {
                d.spec.as_ref().map(|s| s.selector.clone())
            })
        })
        // Recreate waits for old pods to be gone: their deletions matter
        .watches(&pod_informer, move |p: &Pod| {
            let Some(owner) = controller_of(&p.metadata) else {
                return Vec::new();
            };
            let Some(rs) = rs_for_pods.get(&ObjectRef::new(
                p.metadata.namespace.as_deref(),
                &owner.name,
            )) else {
                return Vec::new();
            };
            crate::runtime::controller::controller_owner::<Deployment, ReplicaSet>(rs.as_ref())
        })
        .workers(8);
    let state = Arc::new(State {
        ctx: ctx.clone(),
        deployments: d_informer.cache(),
        replicasets: rs_informer.cache(),
        pods: pod_informer.cache(),
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
    let Some(d) = state.deployments.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let ns = key.namespace.clone().unwrap_or_else(|| "default".into());
    let spec = d.spec.clone().unwrap_or_default();
    let rs_api = state.ctx.client.api::<ReplicaSet>(Some(&ns));

    let owned = crate::controllers::claim::claim(
        d.as_ref(),
        &spec.selector,
        &state.replicasets,
        &rs_api,
        MANAGER,
    )
    .await?;

    let mut sync = Sync {
        state: &state,
        d: d.clone(),
        ns: ns.clone(),
        rs_api,
        owned,
        progress_reason: None,
    };
    if d.metadata.deletion_timestamp.is_some() {
        return sync.write_status(false).await;
    }
    if spec.paused == Some(true) {
        sync.scale_only().await?;
        return sync.write_status(true).await;
    }
    if sync.is_scaling_event() {
        sync.scale_only().await?;
        return sync.write_status(false).await;
    }
    if is_recreate(&d) {
        sync.rollout_recreate().await
    } else {
        sync.rollout_rolling().await
    }
}

struct Sync<'a> {
    state: &'a State,
    d: Arc<Deployment>,
    ns: String,
    rs_api: Api<ReplicaSet>,
    owned: Vec<Arc<ReplicaSet>>,
    progress_reason: Option<(String, String)>,
}

impl Sync<'_> {
    /// (new, old) ReplicaSets; the new one is the oldest matching the template.
    fn split(&self) -> (Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>) {
        let mut matching: Vec<&Arc<ReplicaSet>> = self
            .owned
            .iter()
            .filter(|rs| same_template(rs, &self.d))
            .collect();
        matching.sort_by_key(|rs| {
            (
                rs.metadata.creation_timestamp.clone(),
                rs.metadata.name_str().to_string(),
            )
        });
        let new = matching.first().map(|r| (*r).clone());
        let old = self
            .owned
            .iter()
            .filter(|rs| {
                new.as_ref()
                    .is_none_or(|n| n.metadata.uid != rs.metadata.uid)
            })
            .cloned()
            .collect();
        (new, old)
    }

    fn all(&self, new: &Option<Arc<ReplicaSet>>, old: &[Arc<ReplicaSet>]) -> Vec<Arc<ReplicaSet>> {
        let mut all: Vec<Arc<ReplicaSet>> = old.to_vec();
        if let Some(n) = new {
            all.push(n.clone());
        }
        all
    }

    fn is_scaling_event(&self) -> bool {
        let want = desired(&self.d).to_string();
        self.owned
            .iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .any(|rs| {
                rs.metadata
                    .annotations_map()
                    .get(DESIRED_REPLICAS)
                    .is_some_and(|v| *v != want)
            })
    }

    /// Sets a ReplicaSet's replicas (and the scaling annotations).
    async fn scale(&mut self, rs: &ReplicaSet, replicas: i32) -> Result<bool, ClientError> {
        let want = desired(&self.d).to_string();
        let (surge, _) = max_surge_unavailable(&self.d);
        let max = (desired(&self.d) + surge).to_string();
        let same_annotations = rs.metadata.annotations_map().get(DESIRED_REPLICAS) == Some(&want)
            && rs.metadata.annotations_map().get(MAX_REPLICAS) == Some(&max);
        if rs_replicas(rs) == replicas && same_annotations {
            return Ok(false);
        }
        let patch = json!({"metadata": {"annotations": {DESIRED_REPLICAS: want, MAX_REPLICAS: max}}, "spec": {"replicas": replicas}});
        let scaled = ignore_gone(
            self.rs_api
                .patch(rs.metadata.name_str(), &Patch::Merge(patch), &wp())
                .await,
        )?;
        if let Some(updated) = scaled {
            let from = rs_replicas(rs);
            if from != replicas {
                let verb = if replicas > from { "up" } else { "down" };
                tracing::info!(
                    deployment = self.d.metadata.name_str(),
                    replicaset = rs.metadata.name_str(),
                    from,
                    to = replicas,
                    "scaled {verb}"
                );
                crate::controllers::record_event(
                    &self.state.ctx.client,
                    self.d.as_ref(),
                    "Normal",
                    "ScalingReplicaSet",
                    &format!(
                        "Scaled {verb} replica set {} from {from} to {replicas}",
                        rs.metadata.name_str()
                    ),
                    MANAGER,
                )
                .await;
            }
            let updated = Arc::new(updated);
            for o in &mut self.owned {
                if o.metadata.uid == updated.metadata.uid {
                    *o = updated.clone();
                }
            }
        }
        Ok(true)
    }

    /// The new ReplicaSet, found (revision synced) or created.
    async fn new_replicaset(
        &mut self,
        create: bool,
    ) -> Result<(Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>), ClientError> {
        let (new, old) = self.split();
        let max_old = old.iter().map(|r| revision(r)).max().unwrap_or(0);
        let new_revision = max_old + 1;
        if let Some(rs) = new {
            let current = revision(&rs);
            let mut annotations = copied_annotations(&self.d);
            let mut changed = annotations
                .iter()
                .any(|(k, v)| rs.metadata.annotations_map().get(k) != Some(v));
            if current < new_revision {
                annotations.insert(REVISION.into(), new_revision.to_string());
                if current > 0 {
                    let mut history: Vec<String> = rs
                        .metadata
                        .annotations_map()
                        .get(REVISION_HISTORY)
                        .map(|h| h.split(',').map(str::to_string).collect())
                        .unwrap_or_default();
                    history.push(current.to_string());
                    annotations.insert(REVISION_HISTORY.into(), history.join(","));
                }
                changed = true;
            }
            let rs = if changed {
                let patch = json!({"metadata": {"annotations": annotations}});
                match ignore_gone(
                    self.rs_api
                        .patch(rs.metadata.name_str(), &Patch::Merge(patch), &wp())
                        .await,
                )? {
                    Some(u) => Arc::new(u),
                    None => rs,
                }
            } else {
                rs
            };
            self.sync_deployment_revision(revision(&rs)).await?;
            self.progress_reason = Some((
                reason::FOUND_NEW_RS.into(),
                format!("Found new replica set \"{}\"", rs.metadata.name_str()),
            ));
            return Ok((Some(rs), old));
        }
        if !create {
            return Ok((None, old));
        }
        let spec = self.d.spec.clone().unwrap_or_default();
        let collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&spec.template, collisions);
        let mut template: PodTemplateSpec = spec.template.clone();
        let tmeta = template.metadata.get_or_insert_with(Default::default);
        tmeta
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector: LabelSelector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut labels = tmeta.labels.clone().unwrap_or_default();
        labels.insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut annotations = copied_annotations(&self.d);
        annotations.insert(REVISION.into(), new_revision.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), desired(&self.d).to_string());
        let (surge, _) = max_surge_unavailable(&self.d);
        annotations.insert(MAX_REPLICAS.into(), (desired(&self.d) + surge).to_string());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", self.d.metadata.name_str())),
                namespace: Some(self.ns.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                owner_references: Some(vec![controller_ref(self.d.as_ref())]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all_now = self.all(&None, &old);
        let replicas = new_rs_new_replicas(&self.d, &all_now, &rs);
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(replicas);
        }
        match self.rs_api.create(&rs, &wp()).await {
            Ok(created) => {
                tracing::info!(
                    deployment = self.d.metadata.name_str(),
                    replicaset = created.metadata.name_str(),
                    replicas,
                    "created new replica set"
                );
                crate::controllers::record_event(
                    &self.state.ctx.client,
                    self.d.as_ref(),
                    "Normal",
                    "ScalingReplicaSet",
                    &format!(
                        "Scaled up replica set {} from 0 to {replicas}",
                        created.metadata.name_str()
                    ),
                    MANAGER,
                )
                .await;
                self.progress_reason = Some((
                    reason::NEW_RS_CREATED.into(),
                    format!(
                        "Created new replica set \"{}\"",
                        created.metadata.name_str()
                    ),
                ));
                self.sync_deployment_revision(new_revision).await?;
                let created = Arc::new(created);
                self.owned.push(created.clone());
                Ok((Some(created), old))
            }
            Err(e) if e.is_already_exists() => {
                // the name is taken: if it is ours with our template we just
                // have not seen it yet; otherwise a hash collision
                let existing = self.rs_api.get_opt(rs.metadata.name_str()).await?;
                let ours = existing.as_ref().is_some_and(|x| {
                    controller_of(&x.metadata)
                        .is_some_and(|r| Some(&r.uid) == self.d.metadata.uid.as_ref())
                        && same_template(x, &self.d)
                });
                if !ours {
                    let count = collisions.unwrap_or(0) + 1;
                    let patch = json!({"status": {"collisionCount": count}});
                    self.state
                        .ctx
                        .client
                        .api::<Deployment>(Some(&self.ns))
                        .patch_status(self.d.metadata.name_str(), &Patch::Merge(patch), &wp())
                        .await?;
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn sync_deployment_revision(&mut self, rev: i64) -> Result<(), ClientError> {
        let current = self
            .d
            .metadata
            .annotations_map()
            .get(REVISION)
            .and_then(|r| r.parse::<i64>().ok())
            .unwrap_or(0);
        if current == rev {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {REVISION: rev.to_string()}}});
        if let Some(updated) = ignore_gone(
            self.state
                .ctx
                .client
                .api::<Deployment>(Some(&self.ns))
                .patch(self.d.metadata.name_str(), &Patch::Merge(patch), &wp())
                .await,
        )? {
            self.d = Arc::new(updated);
        }
        Ok(())
    }

    async fn rollout_rolling(&mut self) -> Result<Action, ClientError> {
        let (new, old) = self.new_replicaset(true).await?;
        let Some(new) = new else {
            return self.write_status(false).await;
        };
        // scale up the new ReplicaSet within maxSurge
        let want = desired(&self.d);
        if rs_replicas(&new) != want {
            let target = if rs_replicas(&new) > want {
                want
            } else {
                new_rs_new_replicas(&self.d, &self.all(&Some(new.clone()), &old), &new)
            };
            if self.scale(&new, target).await? && target > rs_replicas(&new) {
                return self.write_status(false).await;
            }
        } else {
            self.scale(&new, want).await?;
        }
        let new = self
            .owned
            .iter()
            .find(|r| r.metadata.uid == new.metadata.uid)
            .cloned()
            .unwrap_or(new);
        let old: Vec<Arc<ReplicaSet>> = self
            .owned
            .iter()
            .filter(|r| r.metadata.uid != new.metadata.uid)
            .cloned()
            .collect();
        if self.reconcile_old(&new, &old).await? {
            return self.write_status(false).await;
        }
        self.write_status(false).await
    }

    /// Scales old ReplicaSets down as far as maxUnavailable allows.
    async fn reconcile_old(
        &mut self,
        new: &ReplicaSet,
        old: &[Arc<ReplicaSet>],
    ) -> Result<bool, ClientError> {
        let old_count: i32 = old.iter().map(|r| rs_replicas(r)).sum();
        if old_count == 0 {
            return Ok(false);
        }
        let all_count: i32 = old_count + rs_replicas(new);
        let min_available = desired(&self.d) - max_unavailable(&self.d);
        let new_unavailable = rs_replicas(new) - rs_available(new);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let mut sorted: Vec<Arc<ReplicaSet>> = old.to_vec();
        sorted.sort_by_key(|r| {
            (
                r.metadata.creation_timestamp.clone(),
                r.metadata.name_str().to_string(),
            )
        });
        // first, old replicas that are not available anyway
        let mut cleaned = 0;
        for rs in &sorted {
            if cleaned >= max_scaled_down {
                break;
            }
            let unhealthy = rs_replicas(rs) - rs_available(rs);
            if rs_replicas(rs) == 0 || unhealthy <= 0 {
                continue;
            }
            let down = unhealthy.min(max_scaled_down - cleaned);
            if self.scale(rs, rs_replicas(rs) - down).await? {
                cleaned += down;
            }
        }
        // then as many available ones as maxUnavailable allows
        let all: Vec<Arc<ReplicaSet>> = self.owned.clone();
        let available: i32 = all.iter().map(|r| rs_available(r)).sum();
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            let current_old: Vec<Arc<ReplicaSet>> = sorted
                .iter()
                .filter_map(|r| {
                    self.owned
                        .iter()
                        .find(|o| o.metadata.uid == r.metadata.uid)
                        .cloned()
                })
                .collect();
            for rs in current_old {
                if scaled >= total {
                    break;
                }
                if rs_replicas(&rs) == 0 {
                    continue;
                }
                let down = rs_replicas(&rs).min(total - scaled);
                if self.scale(&rs, rs_replicas(&rs) - down).await? {
                    scaled += down;
                }
            }
        }
        Ok(cleaned + scaled > 0)
    }

    async fn rollout_recreate(&mut self) -> Result<Action, ClientError> {
        let (new, old) = self.new_replicaset(false).await?;
        let mut scaled = false;
        for rs in old.iter().filter(|r| rs_replicas(r) > 0) {
            scaled |= self.scale(rs, 0).await?;
        }
        if scaled {
            return self.write_status(false).await;
        }
        // wait until no pod of an old ReplicaSet is left running
        let old_uids: Vec<String> = old.iter().filter_map(|r| r.metadata.uid.clone()).collect();
        let old_running = self.state.pods.in_namespace(&self.ns).iter().any(|p| {
            controller_of(&p.metadata).is_some_and(|o| old_uids.contains(&o.uid))
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        });
        if old_running {
            return self.write_status(false).await;
        }
        let new = match new {
            Some(n) => n,
            None => match self.new_replicaset(true).await? {
                (Some(n), _) => n,
                (None, _) => return self.write_status(false).await,
            },
        };
        let want = desired(&self.d);
        self.scale(&new, want).await?;
        self.write_status(false).await
    }

    /// Scaling without rolling out (paused, or replicas changed mid-rollout).
    async fn scale_only(&mut self) -> Result<(), ClientError> {
        let (new, old) = self.new_replicaset(false).await?;
        let want = desired(&self.d);
        let active: Vec<Arc<ReplicaSet>> = self
            .all(&new, &old)
            .into_iter()
            .filter(|r| rs_replicas(r) > 0)
            .collect();
        if active.len() <= 1 {
            let target = active.first().cloned().or(new.clone()).or_else(|| {
                let mut o = old.clone();
                o.sort_by_key(|r| revision(r));
                o.last().cloned()
            });
            if let Some(rs) = target {
                self.scale(&rs, want).await?;
            }
            return Ok(());
        }
        // several active: add to the newest, take from the oldest
        let (surge, _) = max_surge_unavailable(&self.d);
        let allowed = want + surge;
        let current: i32 = active.iter().map(|r| rs_replicas(r)).sum();
        let mut delta = allowed - current;
        let mut ordered = active.clone();
        ordered.sort_by_key(|r| (revision(r), r.metadata.creation_timestamp.clone()));
        if delta > 0 {
            if let Some(newest) = ordered.last().cloned() {
                self.scale(&newest, rs_replicas(&newest) + delta).await?;
            }
        } else {
            for rs in ordered {
                if delta >= 0 {
                    break;
                }
                let down = rs_replicas(&rs).min(-delta);
                self.scale(&rs, rs_replicas(&rs) - down).await?;
                delta += down;
            }
        }
        Ok(())
    }

    /// Deletes old, empty ReplicaSets beyond revisionHistoryLimit.
    async fn cleanup(&self, old: &[Arc<ReplicaSet>]) -> Result<(), ClientError> {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut cleanable: Vec<&Arc<ReplicaSet>> = old
            .iter()
            .filter(|r| {
                rs_replicas(r) == 0
                    && r.status.as_ref().is_none_or(|s| s.replicas == 0)
                    && r.metadata.deletion_timestamp.is_none()
            })
            .collect();
        let excess = cleanable
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        cleanable.sort_by_key(|r| (revision(r), r.metadata.creation_timestamp.clone()));
        for rs in cleanable.into_iter().take(excess) {
            tracing::info!(
                deployment = self.d.metadata.name_str(),
                replicaset = rs.metadata.name_str(),
                "deleting old replica set beyond revisionHistoryLimit"
            );
            let dp = DeleteParams {
                precondition_uid: rs.metadata.uid.clone(),
                ..Default::default()
            };
            match self.rs_api.delete(rs.metadata.name_str(), &dp).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn write_status(&mut self, paused: bool) -> Result<Action, ClientError> {
        let (new, old) = self.split();
        let all = self.all(&new, &old);
        let mut s: DeploymentStatus = status::calculate(&self.d, &all, new.as_deref());
        let has_deadline = self
            .d
            .spec
            .as_ref()
            .and_then(|sp| sp.progress_deadline_seconds)
            .is_some();
        let was_paused = status::condition(&s, "Progressing")
            .is_some_and(|c| c.reason.as_deref() == Some(reason::PAUSED));
        if paused {
            status::set_condition(
                &mut s,
                "Progressing",
                "Unknown",
                reason::PAUSED,
                "Deployment is paused".into(),
            );
        } else if was_paused {
            status::set_condition(
                &mut s,
                "Progressing",
                "Unknown",
                reason::RESUMED,
                "Deployment is resumed".into(),
            );
        } else if has_deadline && self.d.metadata.deletion_timestamp.is_none() {
            let rs_name = new
                .as_ref()
                .map(|n| n.metadata.name_str().to_string())
                .unwrap_or_default();
            if new.is_some() && status::complete(&self.d, &s) {
                status::set_condition(
                    &mut s,
                    "Progressing",
                    "True",
                    reason::NEW_RS_AVAILABLE,
                    format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                );
            } else if let Some((r, m)) = self
                .progress_reason
                .take()
                .filter(|(r, _)| r == reason::NEW_RS_CREATED)
            {
                status::set_condition(&mut s, "Progressing", "True", &r, m);
            } else if status::progressing(&self.d, &s) {
                status::set_condition(
                    &mut s,
                    "Progressing",
                    "True",
                    reason::RS_UPDATED,
                    format!("ReplicaSet \"{rs_name}\" is progressing."),
                );
            } else if status::timed_out(&self.d, &s) {
                status::set_condition(
                    &mut s,
                    "Progressing",
                    "False",
                    reason::TIMED_OUT,
                    format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                );
            } else if status::condition(&s, "Progressing").is_none()
                && let Some((r, m)) = self.progress_reason.take()
            {
                status::set_condition(&mut s, "Progressing", "True", &r, m);
            }
        }
        if status::complete(&self.d, &s) && !paused {
            self.cleanup(&old).await?;
        }
        if self.d.status.as_ref() != Some(&s) {
            let patch = crate::controllers::status_patch(self.d.status.as_ref(), &s);
            match self
                .state
                .ctx
                .client
                .api::<Deployment>(Some(&self.ns))
                .patch_status(self.d.metadata.name_str(), &patch, &wp())
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(Action::AwaitChange),
                Err(e) => return Err(e),
            }
        }
        // come back when the progress deadline would pass
        Ok(match status::seconds_to_deadline(&self.d, &s) {
            Some(left) if !status::complete(&self.d, &s) && !paused => Action::requeue(
                Duration::from_secs(u64::try_from(left.max(0)).unwrap_or(0) + 1),
            ),
            _ => Action::AwaitChange,
        })
    }
}
