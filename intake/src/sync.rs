//! One sync of a rendered revision: read what the source owns in the
//! cluster, decide per object (unchanged when the applied digest matches
//! and the live object does not differ), ask the API server to dry-run every
//! write first (nothing is applied if any is refused; objects whose
//! namespace or CustomResourceDefinition this sync creates cannot be
//! dry-run), then server-side apply in dependency order
//! (CustomResourceDefinitions — then wait until they are Established and
//! their kinds served — Namespaces, ConfigMaps/Secrets, workloads, Services,
//! custom resources) within each sync wave (the annotation
//! `korral.dev/sync-wave`, or Argo CD's `argocd.argoproj.io/sync-wave`; an
//! integer, default 0, lower first), each wave healthy
//! ([`crate::healthcheck`]) before the next starts — PreSync hook Jobs
//! before the first, PostSync ones once all are healthy
//! ([`crate::hooks`]) — prune what left the
//! inventory (opt-in, only what the source still owns, in reverse order:
//! custom resources before their definitions), and return the new
//! inventory.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use rayon::prelude::*;
use serde_json::Value;

use reconcilers::runtime::{Client, ClientError, DeleteParams, Patch, WriteParams};
use schemas::korral::InventoryEntry;
use schemas::{Class, Diagnostic, KindInfo};

use crate::definitions::{ESTABLISH_TIMEOUT, wait_established};
use crate::drift::diff_object;
use crate::health::{Unhealthy, summary};
use crate::healthcheck::wait_healthy;
use crate::hooks::{self, Phase};
use crate::live::{self, CONCURRENCY, LiveObjects};
use crate::object::{
    CUSTOM, DEFINITIONS, ObjectKey, info_of, is_definition, is_definition_key, sync_rank,
};
use crate::owner::{MANAGER, Owner, applied_digest};
use crate::progress::Progress;
use crate::render::{Desired, DesiredObject};

/// How to sync.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Delete objects that left the source (only those it owns).
    pub prune: bool,
    /// How progress is shown.
    pub progress: Progress,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// How long each sync wave may take to become healthy.
    pub timeout: Duration,
    /// The source's namespace (objects are named relative to it in messages).
    pub home: String,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            prune: false,
            progress: Progress::Silent,
            concurrency: CONCURRENCY,
            timeout: Duration::from_secs(60),
            home: "default".into(),
        }
    }
}

/// korral's sync-wave annotation.
pub const WAVE: &str = "korral.dev/sync-wave";
/// Argo CD's, honoured so migrating repositories keep their order.
pub const ARGO_WAVE: &str = "argocd.argoproj.io/sync-wave";

/// An object's sync wave: its `korral.dev/sync-wave` (else
/// `argocd.argoproj.io/sync-wave`) annotation, 0 when unset or not an integer.
pub fn wave_of(object: &Value) -> i64 {
    let annotations = &object["metadata"]["annotations"];
    [WAVE, ARGO_WAVE]
        .iter()
        .find_map(|a| annotations[*a].as_str())
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or(0)
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
    /// A hook Job failed or did not complete in time.
    Hook {
        /// When it ran.
        phase: Phase,
        /// What failed.
        unhealthy: Vec<Unhealthy>,
        /// What was applied before.
        applied: Vec<ObjectKey>,
    },
    /// A sync wave did not become healthy in time; later waves were not applied.
    Unhealthy {
        /// The wave.
        wave: i64,
        /// What was not healthy.
        unhealthy: Vec<Unhealthy>,
        /// What was applied before.
        applied: Vec<ObjectKey>,
    },
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
            SyncFailure::Hook {
                phase, unhealthy, ..
            } => write!(
                f,
                "a {phase} hook did not complete{}: {}",
                if *phase == Phase::PreSync {
                    "; nothing else applied"
                } else {
                    ""
                },
                summary(unhealthy)
            ),
            SyncFailure::Unhealthy {
                wave, unhealthy, ..
            } => write!(
                f,
                "sync wave {wave} is not healthy, later waves not applied: {}",
                summary(unhealthy)
            ),
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
        .dynamic(&o.info, o.key.namespace.as_deref())
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
    sync_as(client, client, owner, desired, previous, opts).await
}

/// [`sync`] reading the live objects with `reader` and writing (dry run,
/// apply, prune) with `writer` — a source's ServiceAccount, impersonated, so
/// RBAC refuses in the dry run what it may not write and nothing is written.
pub async fn sync_as(
    reader: &Client,
    writer: &Client,
    owner: &Owner,
    desired: &Desired,
    previous: &[InventoryEntry],
    opts: &SyncOptions,
) -> Result<SyncReport, SyncFailure> {
    let client = writer;
    let mut live = live::read(reader, owner, desired, previous, false)
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

    // what the inventory had, the source no longer declares, and the source still owns
    let declared: HashSet<&ObjectKey> = desired.objects.iter().map(|o| &o.key).collect();
    let mut leftovers: Vec<ObjectKey> = previous
        .iter()
        .filter_map(|e| ObjectKey::from_entry(e, &desired.kinds).map(|(_, k)| k))
        .filter(|k| !declared.contains(k))
        .filter(|k| live.get(k).is_some_and(|l| owner.owns(l)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if opts.prune {
        let doomed = doomed_definitions(desired, &leftovers);
        if !doomed.is_empty() {
            return Err(SyncFailure::Rejected(doomed));
        }
    }

    // the dry run: objects in namespaces this sync creates, and custom
    // resources of definitions it applies, cannot be dry-run
    let new_namespaces: HashSet<&str> = desired
        .objects
        .iter()
        .filter(|o| o.key.kind == "Namespace" && o.key.group.is_empty())
        .filter(|o| !live.contains_key(&o.key))
        .map(|o| o.key.name.as_str())
        .collect();
    let new_definitions: HashSet<&str> = to_apply
        .iter()
        .filter(|o| is_definition(&o.info))
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
        .filter(|o| {
            o.info
                .custom()
                .is_none_or(|c| !new_definitions.contains(c.crd_name.as_str()))
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

    // PreSync hooks
    if let Err(unhealthy) = hooks::run(
        client,
        &desired.hooks,
        Phase::PreSync,
        &desired.revision,
        &opts.home,
        opts.timeout,
    )
    .await
    {
        return Err(SyncFailure::Hook {
            phase: Phase::PreSync,
            unhealthy,
            applied: Vec::new(),
        });
    }

    // the writes, one wave at a time, each one rank at a time, each wave
    // healthy before the next
    let mut applied = Vec::new();
    let mut errors = Vec::new();
    let tracker = opts.progress.start("apply", to_apply.len());
    let waves: BTreeSet<i64> = desired.objects.iter().map(|o| wave_of(&o.object)).collect();
    let last_wave = waves.last().copied().unwrap_or(0);
    'waves: for &wave in &waves {
        for rank in DEFINITIONS..=CUSTOM {
            let batch: Vec<&DesiredObject> = to_apply
                .iter()
                .copied()
                .filter(|o| sync_rank(&o.info) == rank && wave_of(&o.object) == wave)
                .collect();
            if !batch.is_empty() {
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
            }
            if errors.is_empty() && rank == DEFINITIONS {
                errors.extend(establish(reader, desired, &to_apply, &new_definitions).await);
            }
            if !errors.is_empty() {
                break 'waves;
            }
        }
        if wave != last_wave {
            let members: Vec<&DesiredObject> = desired
                .objects
                .iter()
                .filter(|o| wave_of(&o.object) == wave)
                .collect();
            tracing::info!(
                wave,
                objects = members.len(),
                "waiting for the sync wave to be healthy"
            );
            if let Err(unhealthy) =
                wait_healthy(reader, &members, &opts.home, Instant::now() + opts.timeout).await
            {
                tracker.finish();
                return Err(SyncFailure::Unhealthy {
                    wave,
                    unhealthy,
                    applied,
                });
            }
        }
    }
    tracker.finish();
    if !errors.is_empty() {
        return Err(SyncFailure::Apply { errors, applied });
    }

    // PostSync hooks, once everything is healthy
    if desired
        .hooks
        .iter()
        .any(|h| hooks::phase_of(&h.object) == Some(Phase::PostSync))
    {
        let all: Vec<&DesiredObject> = desired.objects.iter().collect();
        let ran = match wait_healthy(reader, &all, &opts.home, Instant::now() + opts.timeout).await
        {
            Ok(()) => {
                hooks::run(
                    client,
                    &desired.hooks,
                    Phase::PostSync,
                    &desired.revision,
                    &opts.home,
                    opts.timeout,
                )
                .await
            }
            Err(u) => Err(u),
        };
        if let Err(unhealthy) = ran {
            return Err(SyncFailure::Hook {
                phase: Phase::PostSync,
                unhealthy,
                applied,
            });
        }
    }

    // prune, in reverse order: custom resources before their definitions
    let mut pruned = Vec::new();
    if opts.prune && !leftovers.is_empty() {
        let tracker = opts.progress.start("prune", leftovers.len());
        let with_kinds: Vec<(ObjectKey, Option<Arc<KindInfo>>)> = leftovers
            .iter()
            .map(|k| (k.clone(), info_of(k, &desired.kinds)))
            .collect();
        for rank in (DEFINITIONS..=CUSTOM).rev() {
            let batch: Vec<&(ObjectKey, Option<Arc<KindInfo>>)> = with_kinds
                .iter()
                .filter(|(_, i)| i.as_deref().map_or(CUSTOM, sync_rank) == rank)
                .collect();
            let done = run_all(batch, opts.concurrency, &tracker, |(k, info)| {
                let uid = live
                    .get(k)
                    .and_then(|l| l.pointer("/metadata/uid"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                async move {
                    let Some(info) = info else {
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
            for ((k, _), r) in done {
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
        .map(|o| o.key.to_entry(&o.info))
        .chain(
            leftovers
                .iter()
                .filter_map(|k| info_of(k, &desired.kinds).map(|i| k.to_entry(&i))),
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

/// Declared custom resources whose definition is a leftover a prune would
/// delete (and every object of its kinds with it): refused before anything
/// is written.
fn doomed_definitions(desired: &Desired, leftovers: &[ObjectKey]) -> Vec<Diagnostic> {
    let doomed: HashSet<&str> = leftovers
        .iter()
        .filter(|k| is_definition_key(k))
        .map(|k| k.name.as_str())
        .collect();
    if doomed.is_empty() {
        return Vec::new();
    }
    desired
        .objects
        .iter()
        .filter_map(|o| {
            let crd = &o.info.custom()?.crd_name;
            doomed.contains(crd.as_str()).then(|| {
                o.diagnostic(
                    Some("kind"),
                    format!(
                        "its CustomResourceDefinition {crd} is no longer in the source and prune would delete it, \
                         and every {} with it: keep the definition in the source, or remove its objects too",
                        o.info.kind
                    ),
                )
            })
        })
        .collect()
}

/// After the definitions are applied: waits until every declared
/// CustomResourceDefinition is Established and the kinds of those this sync
/// applied are served, when anything of theirs is being written. Problems
/// are located at the definition.
async fn establish(
    client: &Client,
    desired: &Desired,
    to_apply: &[&DesiredObject],
    new_definitions: &HashSet<&str>,
) -> Vec<Diagnostic> {
    let definitions: Vec<&DesiredObject> = desired
        .objects
        .iter()
        .filter(|o| is_definition(&o.info))
        .collect();
    let writes_custom = to_apply.iter().any(|o| o.info.custom().is_some());
    if definitions.is_empty() || (new_definitions.is_empty() && !writes_custom) {
        return Vec::new();
    }
    let names: Vec<String> = definitions.iter().map(|o| o.key.name.clone()).collect();
    let mut served: Vec<(String, String, String)> = to_apply
        .iter()
        .filter(|o| {
            o.info
                .custom()
                .is_some_and(|c| new_definitions.contains(c.crd_name.as_str()))
        })
        .map(|o| {
            (
                o.info.group.clone(),
                o.info.version.clone(),
                o.info.plural.clone(),
            )
        })
        .collect();
    served.sort();
    served.dedup();
    match wait_established(client, &names, &served, ESTABLISH_TIMEOUT).await {
        Ok(()) => Vec::new(),
        Err(failed) => failed
            .into_iter()
            .map(|(name, why)| {
                let message = format!("the CustomResourceDefinition {why}");
                match definitions.iter().find(|o| o.key.name == name) {
                    Some(o) => o.diagnostic(None, message),
                    None => Diagnostic {
                        file: String::new(),
                        line: 0,
                        column: 0,
                        document: None,
                        object: Some(format!("CustomResourceDefinition {name}")),
                        path: None,
                        class: Class::Invalid,
                        message,
                    },
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn waves_come_from_korral_or_argo_annotations() {
        let with = |a: Value| json!({"metadata": {"name": "x", "annotations": a}});
        assert_eq!(wave_of(&json!({"metadata": {"name": "x"}})), 0);
        assert_eq!(wave_of(&with(json!({WAVE: "2"}))), 2);
        assert_eq!(wave_of(&with(json!({ARGO_WAVE: "-1"}))), -1);
        assert_eq!(wave_of(&with(json!({WAVE: "3", ARGO_WAVE: "1"}))), 3);
        assert_eq!(wave_of(&with(json!({WAVE: "soon"}))), 0);
    }
}
