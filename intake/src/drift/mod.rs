//! Drift: what differs between a source (at the revision last applied) and
//! the cluster — objects whose fields changed (each naming who changed it
//! and when), objects missing from the cluster, and objects the source
//! owns but no longer declares. Secret values are masked in every output.

pub mod compare;
pub mod mask;
pub mod owners;
pub mod text;

use std::sync::Arc;

use rayon::prelude::*;
use serde_json::Value;

use schemas::KindInfo;
use schemas::korral::{DriftReportStatus, FieldDrift, InventoryEntry, ObjectDrift};

use crate::live::LiveObjects;
use crate::object::ObjectKey;
use crate::owner::Owner;
use crate::render::{Desired, DesiredObject};

pub use compare::FieldChange;

/// One object whose fields differ.
#[derive(Clone, Debug)]
pub struct ObjectDiff {
    /// Its kind.
    pub info: Arc<KindInfo>,
    /// Its identity.
    pub key: ObjectKey,
    /// The differing fields (Secret values already masked).
    pub changes: Vec<FieldChange>,
    /// The live object's resourceVersion when compared.
    pub resource_version: Option<String>,
}

/// The drift of one source.
#[derive(Clone, Debug, Default)]
pub struct Drift {
    /// The source revision compared.
    pub revision: String,
    /// Objects whose fields differ.
    pub modified: Vec<ObjectDiff>,
    /// Declared objects missing from the cluster.
    pub missing: Vec<(Arc<KindInfo>, ObjectKey)>,
    /// Objects the source owns in the cluster but no longer declares.
    pub extra: Vec<(Arc<KindInfo>, ObjectKey)>,
    /// Objects compared.
    pub objects: usize,
    /// The kustomization each declared object built by kustomize came from.
    pub built_from: std::collections::BTreeMap<ObjectKey, String>,
}

impl Drift {
    /// Whether nothing differs.
    pub fn is_clean(&self) -> bool {
        self.modified.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }

    /// How many objects drifted (modified, missing or extra).
    pub fn count(&self) -> usize {
        self.modified.len() + self.missing.len() + self.extra.len()
    }

    /// The drift as a DriftReport's status.
    pub fn to_status(&self) -> DriftReportStatus {
        let entries = |v: &[(Arc<KindInfo>, ObjectKey)]| -> Option<Vec<InventoryEntry>> {
            (!v.is_empty()).then(|| v.iter().map(|(i, k)| k.to_entry(i)).collect())
        };
        DriftReportStatus {
            revision: Some(self.revision.clone()),
            checked_at: Some(schemas::time::now()),
            drifted: Some(!self.is_clean()),
            missing: entries(&self.missing),
            extra: entries(&self.extra),
            modified: (!self.modified.is_empty()).then(|| {
                self.modified
                    .iter()
                    .map(|m| ObjectDrift {
                        object: m.key.to_entry(&m.info),
                        built_from: self.built_from.get(&m.key).cloned(),
                        fields: Some(
                            m.changes
                                .iter()
                                .map(|c| FieldDrift {
                                    path: c.path.clone(),
                                    desired: c.desired.clone(),
                                    live: c.live.clone(),
                                    manager: c.manager.clone(),
                                    time: c.time.clone(),
                                })
                                .collect(),
                        ),
                    })
                    .collect()
            }),
        }
    }
}

/// The desired object as the API server would store it (defaults applied).
pub fn defaulted(o: &DesiredObject) -> Value {
    o.info
        .apply_defaults(o.object.clone())
        .unwrap_or_else(|_| o.object.clone())
}

/// The differing fields of one declared object (masked for Secrets).
pub fn diff_object(o: &DesiredObject, live: &Value) -> Vec<FieldChange> {
    let mut changes = compare::compare(&defaulted(o), live);
    if o.info.kind == "Secret" {
        changes.iter_mut().for_each(mask::mask_secret_change);
    }
    changes
}

/// Compares everything `desired` declares with `live`; objects in `live`
/// owned by `owner` that `desired` does not declare are extra.
pub fn detect(desired: &Desired, live: &LiveObjects, owner: &Owner) -> Drift {
    let results: Vec<(usize, Option<Vec<FieldChange>>)> = desired
        .objects
        .par_iter()
        .enumerate()
        .map(|(i, o)| (i, live.get(&o.key).map(|l| diff_object(o, l))))
        .collect();
    let mut drift = Drift {
        revision: desired.revision.clone(),
        objects: desired.objects.len(),
        built_from: desired
            .objects
            .iter()
            .filter_map(|o| Some((o.key.clone(), o.built_from()?.to_string())))
            .collect(),
        ..Default::default()
    };
    for (i, r) in results {
        let o = &desired.objects[i];
        match r {
            None => drift.missing.push((o.info.clone(), o.key.clone())),
            Some(changes) if !changes.is_empty() => drift.modified.push(ObjectDiff {
                info: o.info.clone(),
                key: o.key.clone(),
                changes,
                resource_version: live
                    .get(&o.key)
                    .and_then(|l| l.pointer("/metadata/resourceVersion"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }),
            Some(_) => {}
        }
    }
    let declared: std::collections::HashSet<&ObjectKey> =
        desired.objects.iter().map(|o| &o.key).collect();
    let mut extra: Vec<(Arc<KindInfo>, ObjectKey)> = live
        .iter()
        .filter(|(k, v)| !declared.contains(k) && owner.owns(v))
        .filter_map(|(k, _)| Some((crate::object::info_of(k, &desired.kinds)?, k.clone())))
        .collect();
    extra.sort_by(|a, b| a.1.cmp(&b.1));
    drift.extra = extra;
    drift
}
