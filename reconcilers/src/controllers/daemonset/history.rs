//! A DaemonSet's history as ControllerRevisions, as Kubernetes keeps it:
//! each revision's `data` is the strategic merge patch that restores its
//! template (`{"spec":{"template":{..., "$patch":"replace"}}}` — what
//! `kubectl rollout undo` applies and `rollout history --revision` shows),
//! named `<daemonset>-<hash>` with the `controller-revision-hash` label and
//! the DaemonSet's annotations (so `kubernetes.io/change-cause` shows in
//! `rollout history`); the current one has the highest revision; old ones
//! beyond `revisionHistoryLimit` that no pod runs are deleted.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use schemas::MetaExt;

use crate::controllers::claim::{claim, ignore_gone};
use crate::controllers::deployment::util::template_hash;
use crate::controllers::podutil::controller_ref;
use crate::runtime::{Api, Cache, ClientError, DeleteParams, Patch, WriteParams};

use super::eligibility::REVISION_HASH;

/// The patch that restores `ds`'s template (`getPatch`).
pub fn patch_of(ds: &DaemonSet) -> Value {
    let template = ds
        .spec
        .as_ref()
        .map(|s| serde_json::to_value(&s.template).unwrap_or_default())
        .unwrap_or_default();
    let mut template = match template {
        Value::Object(m) => m,
        _ => Default::default(),
    };
    template.insert("$patch".into(), json!("replace"));
    json!({"spec": {"template": template}})
}

/// Whether a revision holds `ds`'s current template.
pub fn matches(ds: &DaemonSet, cr: &ControllerRevision) -> bool {
    cr.data.as_ref().map(|d| &d.0) == Some(&patch_of(ds))
}

/// The current revision and the old ones.
pub struct History {
    /// The revision of the current template.
    pub current: ControllerRevision,
    /// Every other revision owned by the DaemonSet.
    pub old: Vec<Arc<ControllerRevision>>,
}

impl History {
    /// The current revision's hash (the pods' `controller-revision-hash`).
    pub fn hash(&self) -> String {
        self.current
            .metadata
            .labels_map()
            .get(REVISION_HASH)
            .cloned()
            .unwrap_or_default()
    }
}

/// What went wrong keeping the history.
#[derive(Debug)]
pub enum HistoryError {
    /// An API call failed.
    Api(ClientError),
    /// A revision with the hash's name holds another template: the collision
    /// count was bumped; sync again.
    Collision,
}

impl From<ClientError> for HistoryError {
    fn from(e: ClientError) -> Self {
        HistoryError::Api(e)
    }
}

/// Finds (or creates) the revision of `ds`'s template, gives it the highest
/// revision number, and returns it with the old ones (`constructHistory`).
pub async fn construct(
    ds: &DaemonSet,
    cache: &Cache<ControllerRevision>,
    api: &Api<ControllerRevision>,
    ds_api: &Api<DaemonSet>,
    manager: &str,
) -> Result<History, HistoryError> {
    let selector = ds
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    let owned = claim(ds, &selector, cache, api, manager).await?;
    let wp = WriteParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    let max_revision = owned.iter().map(|c| c.revision).max().unwrap_or(0);
    let (mut current, old): (Vec<_>, Vec<_>) = owned.into_iter().partition(|c| matches(ds, c));
    current.sort_by_key(|c| std::cmp::Reverse(c.revision));
    // duplicates of the current template: keep the newest
    for dup in current.iter().skip(1) {
        let dp = DeleteParams {
            precondition_uid: dup.metadata.uid.clone(),
            ..Default::default()
        };
        ignore_gone(api.delete(dup.metadata.name_str(), &dp).await)?;
    }
    let current = match current.into_iter().next() {
        Some(cur) if cur.revision < max_revision => {
            // a rollback to an old template makes it the newest revision
            let patch = Patch::Merge(json!({"revision": max_revision + 1}));
            api.patch(cur.metadata.name_str(), &patch, &wp).await?
        }
        Some(cur) => (*cur).clone(),
        None => create(ds, api, ds_api, max_revision + 1, &wp).await?,
    };
    Ok(History { current, old })
}

async fn create(
    ds: &DaemonSet,
    api: &Api<ControllerRevision>,
    ds_api: &Api<DaemonSet>,
    revision: i64,
    wp: &WriteParams,
) -> Result<ControllerRevision, HistoryError> {
    let collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let hash = template_hash(&template, collision_count);
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(REVISION_HASH.into(), hash.clone());
    let name = format!("{}-{hash}", truncate(ds.metadata.name_str()));
    let cr = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: ds.metadata.annotations.clone(),
            owner_references: Some(vec![controller_ref(ds)]),
            ..Default::default()
        },
        data: Some(RawExtension(patch_of(ds))),
        revision,
    };
    match api.create(&cr, wp).await {
        Ok(c) => Ok(c),
        Err(e) if e.is_already_exists() => {
            let existing = api.get(&name).await?;
            let ours = existing
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.controller == Some(true) && Some(&r.uid) == ds.metadata.uid.as_ref());
            if ours && matches(ds, &existing) {
                return Ok(existing);
            }
            // another template has this name: count the collision, sync again
            let count = collision_count.unwrap_or(0) + 1;
            let patch = Patch::Merge(json!({"status": {"collisionCount": count}}));
            ds_api
                .patch_status(ds.metadata.name_str(), &patch, wp)
                .await?;
            Err(HistoryError::Collision)
        }
        Err(e) => Err(e.into()),
    }
}

/// Kubernetes keeps revision names within 253 characters by cutting the prefix.
fn truncate(name: &str) -> &str {
    const MAX_PREFIX: usize = 223;
    if name.len() <= MAX_PREFIX {
        return name;
    }
    let mut end = MAX_PREFIX;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Deletes the oldest revisions beyond `revisionHistoryLimit` that no live
/// pod runs (`cleanupHistory`).
pub async fn cleanup(
    ds: &DaemonSet,
    old: &[Arc<ControllerRevision>],
    live_hashes: &HashSet<String>,
    api: &Api<ControllerRevision>,
) -> Result<(), ClientError> {
    let keep = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0);
    let mut to_kill = old.len().saturating_sub(usize::try_from(keep).unwrap_or(0));
    if to_kill == 0 {
        return Ok(());
    }
    let mut sorted: Vec<&Arc<ControllerRevision>> = old.iter().collect();
    sorted.sort_by_key(|c| c.revision);
    for cr in sorted {
        if to_kill == 0 {
            break;
        }
        if cr
            .metadata
            .labels_map()
            .get(REVISION_HASH)
            .is_some_and(|h| live_hashes.contains(h))
        {
            continue;
        }
        let dp = DeleteParams {
            precondition_uid: cr.metadata.uid.clone(),
            ..Default::default()
        };
        ignore_gone(api.delete(cr.metadata.name_str(), &dp).await)?;
        to_kill -= 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_replaces_the_template() {
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "a"}},
                     "template": {"metadata": {"labels": {"app": "a"}},
                                  "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}
        }))
        .expect("ds");
        let p = patch_of(&ds);
        assert_eq!(p["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            p["spec"]["template"]["spec"]["containers"][0]["image"],
            "x:1"
        );
        let cr = ControllerRevision {
            data: Some(RawExtension(p)),
            ..Default::default()
        };
        assert!(matches(&ds, &cr));
        let mut changed = ds.clone();
        if let Some(s) = changed.spec.as_mut()
            && let Some(ps) = s.template.spec.as_mut()
        {
            ps.containers[0].image = Some("x:2".into());
        }
        assert!(!matches(&changed, &cr));
    }
}
