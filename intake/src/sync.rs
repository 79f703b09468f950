//! One sync of a rendered revision: read what the source owns in the
//! cluster, decide per object (unchanged when the applied digest matches
//! and the live object does not differ), ask the API server to dry-run every
//! write first (nothing is applied if any is refused), then server-side
//! apply in dependency order (Namespaces, ConfigMaps/Secrets, workloads,
//! Services), prune what left the inventory (opt-in, only what the source
//! still owns), and return the new inventory.

use std::collections::{BTreeSet, HashSet};

use futures_util::{StreamExt, stream};
use rayon::prelude::*;
use serde_json::Value;

use reconcilers::runtime::{Client, ClientError, DeleteParams, Patch, WriteParams};
use schemas::korral::InventoryEntry;
use schemas::{Class, Diagnostic};

use crate::drift::diff_object;
use crate::live::{self, CONCURRENCY, LiveObjects};
use crate::object::{ObjectKey, apply_rank, info_of};
use crate::owner::{MANAGER, Owner, applied_digest};
use crate::progress::Progress;
use crate::render::{Desired, DesiredObject};

/// How to sync.
#[derive(Clone, Copy, Debug)]
pub struct SyncOptions {
    /// Delete objects that left the source (only those it owns).
    pub prune: bool,
    /// How progress is shown.
    pub progress: Progress,
    /// Writes in flight at once.
    pub concurrency: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            prune: false,
            progress: Progress::Silent,
            concurrency: CONCURRENCY,
        }
    }
}

/// What a successful sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// The revision applied.
    pub revision: String,
    /// Objects created or changed.
    pub applied: Vec<ObjectKey>,
    /// Objects already as declared.
    pub unchanged: usize,
    /// Objects deleted.
    pub pruned: Vec<ObjectKey>,
    /// What the source owns now.
    pub inventory: Vec<InventoryEntry>,
    /// The source's objects in the cluster after the sync.
    pub live: LiveObjects,
}

/// Why a sync did not complete.
#[derive(Debug)]
pub enum SyncFailure {
    /// The API server refused some writes in the dry run: nothing was applied.
    Rejected(Vec<Diagnostic>),
    /// Some writes failed after others succeeded.
    Apply {
        /// What failed.
        errors: Vec<Diagnostic>,
        /// What was applied before.
        applied: Vec<ObjectKey>,
    },
    /// The cluster could not be read.
    Client(ClientError),
}

impl std::fmt::Display for SyncFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncFailure::Rejected(d) => write!(
                f,
                "the API server refused {} object{} in the dry run; nothing was applied",
                d.len(),
                if d.len() == 1 { "" } else { "s" }
            ),
            SyncFailure::Apply { errors, applied } => write!(
                f,
                "{} write{} failed after {} succeeded",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                applied.len()
            ),
            SyncFailure::Client(e) => write!(f, "reading the cluster: {e}"),
        }
    }
}

/// A diagnostic for an API error about a declared object: one per cause
/// (located at the field in its file), or one for the whole object.
pub fn error_diagnostics(o: &DesiredObject, e: &ClientError) -> Vec<Diagnostic> {
    if let ClientError::Api(status) = e {
        let causes: Vec<Diagnostic> = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.field.as_deref().is_some_and(|f| !f.is_empty()))
            .map(|c| {
                o.diagnostic(
                    c.field.as_deref(),
                    c.message.clone().unwrap_or_else(|| "refused".into()),
                )
            })
            .collect();
        if !causes.is_empty() {
            return causes;
        }
        let path = (status.reason.as_deref() == Some("NotFound")
            && status.details.as_ref().and_then(|d| d.kind.as_deref()) == Some("namespaces"))
        .then_some("metadata.namespace");
        let message = status.message.clone().unwrap_or_else(|| e.to_string());
        return vec![o.diagnostic(path, format!("the API server refused it: {message}"))];
    }
    vec![o.diagnostic(None, e.to_string())]
}

fn apply_params(dry_run: bool) -> WriteParams {
    WriteParams {
        field_manager: Some(MANAGER.into()),
        force: true,
        dry_run,
    }
}

/// Server-side applies one object.
pub async fn apply_one(
    client: &Client,
    o: &DesiredObject,
    dry_run: bool,
) -> Result<Value, ClientError> {
    client
        .dynamic(o.info, o.key.namespace.as_deref())
        .patch(
            &o.key.name,
            &Patch::Apply(o.object.clone()),
            &apply_params(dry_run),
        )
        .await
}

/// Runs CPU-heavy work (all cores, via rayon) without stalling the async
/// workers: `block_in_place` on a multi-threaded runtime.
fn cpu_bound<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Whether a live object already matches a declared one.
fn unchanged(o: &DesiredObject, live: &Value) -> bool {
    applied_digest(live) == applied_digest(&o.object)
        && diff_object(o, live).iter().all(|c| c.is_extra())
}

/// Runs `f` on `items` with `n` in flight, counting on `tracker`.
async fn run_all<'a, T, F, Fut, R>(
    items: Vec<&'a T>,
    n: usize,
    tracker: &crate::progress::Tracker,
    f: F,
) -> Vec<(&'a T, R)>
where
    F: Fn(&'a T) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    let futures: Vec<_> = items
        .into_iter()
        .map(|item| {
            let fut = f(item);
            async move {
                let r = fut.await;
                tracker.inc();
                (item, r)
            }
        })
        .collect();
    stream::iter(futures)
        .buffer_unordered(n.max(1))
        .collect()
        .await
}

/// Syncs `desired` for `owner`, given what it owned before.
pub async fn sync(
    client: &Client,
    owner: &Owner,
    desired: &Desired,
    previous: &[InventoryEntry],
    opts: &SyncOptions,
) -> Result<SyncReport, SyncFailure> {
    let mut live = live::read(client, owner, desired, previous, false)
        .await
        .map_err(SyncFailure::Client)?;

    let decisions: Vec<bool> = cpu_bound(|| {
        desired
            .objects
            .par_iter()
            .map(|o| live.get(&o.key).is_none_or(|l| !unchanged(o, l)))
            .collect()
    });
    let to_apply: Vec<&DesiredObject> = desired
        .objects
        .iter()
        .zip(&decisions)
        .filter(|(_, apply)| **apply)
        .map(|(o, _)| o)
        .collect();
    let unchanged_count = desired.objects.len() - to_apply.len();

    // the dry run: objects in namespaces this sync creates cannot be dry-run
    let new_namespaces: HashSet<&str> = desired
        .objects
        .iter()
        .filter(|o| o.key.kind == "Namespace" && o.key.group.is_empty())
        .filter(|o| !live.contains_key(&o.key))
        .map(|o| o.key.name.as_str())
        .collect();
    let checkable: Vec<&DesiredObject> = to_apply
        .iter()
        .copied()
        .filter(|o| {
            o.key
                .namespace
                .as_deref()
                .is_none_or(|ns| !new_namespaces.contains(ns))
        })
        .collect();
    let tracker = opts.progress.start("dry run", checkable.len());
    let checked = run_all(checkable, opts.concurrency, &tracker, |o| {
        apply_one(client, o, true)
    })
    .await;
    tracker.finish();
    let mut refused: Vec<Diagnostic> = checked
        .iter()
        .filter_map(|(o, r)| r.as_ref().err().map(|e| error_diagnostics(o, e)))
        .flatten()
        .collect();
    if !refused.is_empty() {
        refused.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        return Err(SyncFailure::Rejected(refused));
    }

    // the writes, one rank at a time
    let mut applied = Vec::new();
    let mut errors = Vec::new();
    let tracker = opts.progress.start("apply", to_apply.len());
    for rank in 0..=3u8 {
        let batch: Vec<&DesiredObject> = to_apply
            .iter()
            .copied()
            .filter(|o| apply_rank(&o.key.kind) == rank)
            .collect();
        if batch.is_empty() {
            continue;
        }
        let done = run_all(batch, opts.concurrency, &tracker, |o| {
            apply_one(client, o, false)
        })
        .await;
        for (o, r) in done {
            match r {
                Ok(obj) => {
                    applied.push(o.key.clone());
                    live.insert(o.key.clone(), obj);
                }
                Err(e) => errors.extend(error_diagnostics(o, &e)),
            }
        }
        if !errors.is_empty() {
            break;
        }
    }
    tracker.finish();
    if !errors.is_empty() {
        return Err(SyncFailure::Apply { errors, applied });
    }

    // prune: what the inventory had, the source no longer declares, and the source still owns
    let declared: HashSet<&ObjectKey> = desired.objects.iter().map(|o| &o.key).collect();
    let mut leftovers: Vec<ObjectKey> = previous
        .iter()
        .filter_map(|e| ObjectKey::from_entry(e).map(|(_, k)| k))
        .filter(|k| !declared.contains(k))
        .filter(|k| live.get(k).is_some_and(|l| owner.owns(l)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut pruned = Vec::new();
    if opts.prune && !leftovers.is_empty() {
        let tracker = opts.progress.start("prune", leftovers.len());
        for rank in (0..=3u8).rev() {
            let batch: Vec<&ObjectKey> = leftovers
                .iter()
                .filter(|k| apply_rank(&k.kind) == rank)
                .collect();
            let done = run_all(batch, opts.concurrency, &tracker, |k| {
                let uid = live
                    .get(k)
                    .and_then(|l| l.pointer("/metadata/uid"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                async move {
                    let Some(info) = info_of(k) else {
                        return Ok(());
                    };
                    let r = client
                        .dynamic(info, k.namespace.as_deref())
                        .delete(
                            &k.name,
                            &DeleteParams {
                                propagation_policy: Some("Background".into()),
                                precondition_uid: uid,
                                ..Default::default()
                            },
                        )
                        .await;
                    match r {
                        Err(e) if e.is_not_found() => Ok(()),
                        other => other,
                    }
                }
            })
            .await;
            for (k, r) in done {
                match r {
                    Ok(()) => pruned.push(k.clone()),
                    Err(e) => errors.push(Diagnostic {
                        file: String::new(),
                        line: 0,
                        column: 0,
                        document: None,
                        object: Some(k.to_string()),
                        path: None,
                        class: Class::Invalid,
                        message: format!("pruning it failed: {e}"),
                    }),
                }
            }
        }
        tracker.finish();
        for k in &pruned {
            live.remove(k);
        }
        leftovers.retain(|k| !pruned.contains(k));
        if !errors.is_empty() {
            return Err(SyncFailure::Apply { errors, applied });
        }
    }

    let mut inventory: Vec<InventoryEntry> = desired
        .objects
        .iter()
        .map(|o| o.key.to_entry(o.info))
        .chain(
            leftovers
                .iter()
                .filter_map(|k| info_of(k).map(|i| k.to_entry(i))),
        )
        .collect();
    inventory.sort();
    inventory.dedup();
    Ok(SyncReport {
        revision: desired.revision.clone(),
        applied,
        unchanged: unchanged_count,
        pruned,
        inventory,
        live,
    })
}
