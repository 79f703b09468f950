//! The steps the reconciler and the command line share, for one GitSource:
//! fetch (off the async workers), render, sync and record the status, check
//! drift and write the DriftReport and metric, heal. Each step is a method
//! so callers choose when to run which.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use reconcilers::controllers::status_patch;
use reconcilers::runtime::{Client, ClientError, WriteParams};
use schemas::MetaExt;
use schemas::korral::{GitSource, GitSourceStatus};
use schemas::{Diagnostic, Registry};

use crate::definitions;
use crate::drift::{self, Drift};
use crate::heal::{self, Healed};
use crate::health::{Health, Status, Unhealthy};
use crate::healthcheck;
use crate::hooks;
use crate::kustomize::BuildOptions;
use crate::live;
use crate::metrics::IntakeMetrics;
use crate::notify::{self, Notice, Severity};
use crate::owner::{MANAGER, Owner};
use crate::progress::Progress;
use crate::render::{Desired, render_with};
use crate::report;
use crate::source::{self, FetchError, Location, Snapshot};
use crate::status::{self, Failure};
use crate::substitute;
use crate::sync::{SyncFailure, SyncOptions, SyncReport, sync_as};

/// The owner of a GitSource's objects.
pub fn owner_of(source: &GitSource) -> Owner {
    Owner::new(source.metadata.namespace_str(), source.metadata.name_str())
}

/// Where a source's namespaced objects go when they name no namespace.
pub fn default_namespace(source: &GitSource) -> String {
    source
        .spec
        .as_ref()
        .and_then(|s| s.target_namespace.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| source.metadata.namespace_str().to_string())
}

/// A duration field of the source's spec, if set and valid.
fn spec_duration(
    source: &GitSource,
    field: fn(&schemas::korral::GitSourceSpec) -> Option<&str>,
) -> Option<Duration> {
    source
        .spec
        .as_ref()
        .and_then(field)
        .and_then(|d| schemas::duration::parse_duration(d).ok())
}

/// How often a source is fetched (`spec.interval`, default 60 s, at least 1 s).
pub fn interval_of(source: &GitSource) -> Duration {
    spec_duration(source, |s| s.interval.as_deref())
        .unwrap_or(Duration::from_secs(60))
        .max(Duration::from_secs(1))
}

/// How long what a sync applies may take to become healthy, and each wave
/// and hook (`spec.timeout`; default the interval, as Flux's).
pub fn timeout_of(source: &GitSource) -> Duration {
    spec_duration(source, |s| s.timeout.as_deref()).unwrap_or_else(|| interval_of(source))
}

/// The user and groups a source with `spec.serviceAccountName` acts as.
pub fn service_account(source: &GitSource) -> Option<(String, Vec<String>)> {
    let name = source
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|n| !n.is_empty())?;
    let ns = source.metadata.namespace_str();
    Some((
        format!("system:serviceaccount:{ns}:{name}"),
        vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
        ],
    ))
}

/// A problem that is no manifest's.
fn failure_diagnostic(message: String) -> Diagnostic {
    Diagnostic {
        file: String::new(),
        line: 0,
        column: 0,
        document: None,
        object: None,
        path: None,
        class: schemas::Class::Io,
        message,
    }
}

/// The annotation `POST …/gitsources/NAME/sync` sets.
pub const SYNC_REQUESTED: &str = "korral.dev/sync-requested-at";

/// Marks the source's current sync request (if any) as handled in `status`.
pub(crate) fn handled(source: &GitSource, mut status: GitSourceStatus) -> GitSourceStatus {
    if let Some(r) = source.metadata.annotations_map().get(SYNC_REQUESTED) {
        status.last_handled_sync_request = Some(r.clone());
    }
    status
}

/// What a sync came to.
#[derive(Debug)]
pub enum Outcome {
    /// The revision is applied.
    Synced {
        /// What the sync did.
        report: SyncReport,
        /// What was applied.
        desired: Desired,
    },
    /// Nothing (or not everything) was applied.
    Failed {
        /// The revision tried, if it was fetched.
        revision: Option<String>,
        /// Which step failed.
        failure: Failure,
        /// One line.
        summary: String,
        /// Every problem, located.
        errors: Vec<Diagnostic>,
    },
}

/// Shared by every step.
#[derive(Clone)]
pub struct Engine {
    /// The API client (intake's identity).
    pub client: Client,
    /// Where Git mirrors live.
    pub cache_dir: PathBuf,
    /// Metrics.
    pub metrics: Arc<IntakeMetrics>,
    /// How sync progress is shown.
    pub progress: Progress,
}

impl Engine {
    /// An engine with fresh metrics and no progress display.
    pub fn new(client: Client, cache_dir: PathBuf) -> Engine {
        Engine {
            client,
            cache_dir,
            metrics: IntakeMetrics::new(),
            progress: Progress::Silent,
        }
    }

    /// The client a source writes with: its `spec.serviceAccountName`
    /// impersonated (`system:serviceaccount:NS:NAME` in
    /// `system:serviceaccounts` and `system:serviceaccounts:NS`, as kube
    /// authenticates its tokens), else intake's own identity.
    pub fn writer(&self, source: &GitSource) -> Client {
        match service_account(source) {
            Some((user, groups)) => self.client.impersonating(&user, &groups),
            None => self.client.clone(),
        }
    }

    /// The source's location.
    pub fn location(source: &GitSource) -> Result<Location, FetchError> {
        Location::from_spec(&source.spec.clone().unwrap_or_default())
    }

    /// Reads the source's current revision (or `revision`) off the async workers.
    pub async fn snapshot(
        &self,
        source: &GitSource,
        revision: Option<&str>,
    ) -> Result<Snapshot, FetchError> {
        let location = Self::location(source)?;
        let cache = self.cache_dir.clone();
        let revision = revision.map(str::to_string);
        let build = BuildOptions::from_spec(&source.spec.clone().unwrap_or_default());
        tokio::task::spawn_blocking(move || match revision {
            Some(r) => source::fetch_revision(&location, &cache, &r, &build),
            None => source::fetch(&location, &cache, &build),
        })
        .await
        .map_err(|e| FetchError::Io(format!("the fetch task failed: {e}")))?
    }

    /// The kinds a render of a source knows besides its own definitions:
    /// the built-in kinds and the cluster's custom kinds.
    pub async fn cluster_kinds(&self) -> Result<Registry, ClientError> {
        definitions::cluster_registry(&self.client).await
    }

    /// Renders a snapshot for `source` off the async workers (validation
    /// uses every core), custom resources checked against the source's and
    /// the cluster's CustomResourceDefinitions.
    pub async fn render(
        &self,
        source: &GitSource,
        snapshot: Snapshot,
    ) -> Result<Desired, Vec<Diagnostic>> {
        match self.cluster_kinds().await {
            Ok(registry) => self.render_with(source, snapshot, registry).await,
            Err(e) => Err(vec![failure_diagnostic(format!(
                "cannot read the cluster's CustomResourceDefinitions: {e}"
            ))]),
        }
    }

    /// Renders a snapshot for `source` with the kinds of `registry`, after
    /// the post-build substitution its spec asks for.
    pub async fn render_with(
        &self,
        source: &GitSource,
        mut snapshot: Snapshot,
        registry: Registry,
    ) -> Result<Desired, Vec<Diagnostic>> {
        if let Some(pb) = source.spec.as_ref().and_then(|s| s.post_build.as_ref()) {
            let vars = substitute::variables(&self.client, source.metadata.namespace_str(), pb)
                .await
                .map_err(|m| vec![failure_diagnostic(format!("postBuild: {m}"))])?;
            substitute::substitute_files(&mut snapshot.files, &vars);
        }
        let owner = owner_of(source);
        let ns = default_namespace(source);
        tokio::task::spawn_blocking(move || {
            render_with(&snapshot, Some(&owner), &ns, &registry).map(|mut d| {
                hooks::split(&mut d);
                d
            })
        })
        .await
        .unwrap_or_else(|e| {
            Err(vec![failure_diagnostic(format!(
                "the render task failed: {e}"
            ))])
        })
    }

    /// Writes a new status for `source` (a merge patch against its current one).
    pub async fn write_status(
        &self,
        source: &GitSource,
        new: &GitSourceStatus,
    ) -> Result<GitSource, ClientError> {
        self.client
            .api::<GitSource>(Some(source.metadata.namespace_str()))
            .patch_status(
                source.metadata.name_str(),
                &status_patch(source.status.as_ref(), new),
                &WriteParams {
                    field_manager: Some(MANAGER.into()),
                    ..Default::default()
                },
            )
            .await
    }

    /// Renders and applies `snapshot`, then records the status. Nothing is
    /// applied when anything is invalid.
    pub async fn sync_snapshot(&self, source: &GitSource, snapshot: Snapshot) -> Outcome {
        let started = Instant::now();
        let revision = snapshot.revision.clone();
        let spec = source.spec.clone().unwrap_or_default();
        let old = source.status.clone().unwrap_or_default();
        let rendered = match self.cluster_kinds().await {
            Ok(registry) => Ok(self.render_with(source, snapshot, registry).await),
            Err(e) => Err(e),
        };
        let outcome = match rendered {
            // the cluster may answer later: retried, not stalled
            Err(e) => Outcome::Failed {
                revision: Some(revision),
                failure: Failure::ApplyFailed,
                summary: format!("cannot read the cluster's CustomResourceDefinitions: {e}"),
                errors: Vec::new(),
            },
            Ok(Err(errors)) => Outcome::Failed {
                revision: Some(revision),
                failure: Failure::ValidationFailed,
                summary: format!(
                    "{} error{} in the manifests; nothing applied",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                ),
                errors,
            },
            Ok(Ok(desired)) => {
                let opts = SyncOptions {
                    prune: spec.prune.unwrap_or(false),
                    progress: self.progress,
                    timeout: timeout_of(source),
                    home: default_namespace(source),
                    ..Default::default()
                };
                let previous = old.inventory.clone().unwrap_or_default();
                let writer = self.writer(source);
                match sync_as(
                    &self.client,
                    &writer,
                    &owner_of(source),
                    &desired,
                    &previous,
                    &opts,
                )
                .await
                {
                    Ok(report) => Outcome::Synced { report, desired },
                    Err(f) => {
                        let (failure, errors) = match f {
                            // the cluster may change (a namespace appears): retried, not stalled
                            SyncFailure::Rejected(ref e) => (Failure::ApplyFailed, e.clone()),
                            SyncFailure::Apply { ref errors, .. } => {
                                (Failure::ApplyFailed, errors.clone())
                            }
                            SyncFailure::Client(_) => (Failure::ApplyFailed, Vec::new()),
                            SyncFailure::Unhealthy { .. } | SyncFailure::Hook { .. } => {
                                (Failure::HealthCheckFailed, Vec::new())
                            }
                        };
                        Outcome::Failed {
                            revision: Some(revision),
                            failure,
                            summary: f.to_string(),
                            errors,
                        }
                    }
                }
            }
        };
        let generation = source.metadata.generation;
        let new = match &outcome {
            Outcome::Synced { report, desired } => {
                let unhealthy = self.unhealthy(source, desired).await;
                status::synced(&old, report, generation, &unhealthy)
            }
            Outcome::Failed {
                revision,
                failure,
                summary,
                errors,
            } => status::failed(
                &old,
                revision.as_deref(),
                *failure,
                summary,
                errors,
                generation,
            ),
        };
        let new = handled(source, new);
        let key = owner_of(source).to_string();
        let result = match &outcome {
            Outcome::Synced { report, .. } => {
                tracing::info!(source = %key, revision = %report.revision, applied = report.applied.len(),
                    unchanged = report.unchanged, pruned = report.pruned.len(), "synced");
                "synced"
            }
            Outcome::Failed {
                failure,
                summary,
                errors,
                ..
            } => {
                tracing::warn!(source = %key, ?failure, errors = errors.len(), "sync failed: {summary}");
                match failure {
                    Failure::ValidationFailed => "invalid",
                    Failure::FetchFailed => "fetch_failed",
                    Failure::ApplyFailed => "apply_failed",
                    Failure::HealthCheckFailed => "unhealthy",
                }
            }
        };
        self.metrics
            .synced(&key, result, started.elapsed().as_secs_f64());
        if let Err(e) = self.write_status(source, &new).await {
            tracing::warn!(source = %key, error = %e, "cannot record the sync's status");
        }
        notify::notify(&self.client, source, &notice_of(&outcome, &new)).await;
        outcome
    }

    /// What `desired` declares that is not healthy in the cluster now (a
    /// cluster that cannot be read counts as not healthy yet).
    pub async fn unhealthy(&self, source: &GitSource, desired: &Desired) -> Vec<Unhealthy> {
        let objects: Vec<&crate::render::DesiredObject> = desired.objects.iter().collect();
        match healthcheck::unhealthy(&self.client, &objects, &default_namespace(source)).await {
            Ok(u) => u,
            Err(e) => vec![Unhealthy {
                object: "the cluster".into(),
                health: Health {
                    status: Status::InProgress,
                    message: format!("cannot be read: {e}"),
                },
                why: None,
            }],
        }
    }

    /// Checks again the health of what the last sync applied, when it was
    /// not healthy: records healthy, still progressing, or — after
    /// `spec.timeout` since the sync, or when an object failed —
    /// `HealthCheckFailed`. Returns the source as written, if it changed.
    pub async fn update_health(&self, source: &GitSource, desired: &Desired) -> Option<GitSource> {
        let old = source.status.clone().unwrap_or_default();
        if !status::health_pending(&old)
            || old.last_applied_revision.as_deref() != Some(desired.revision.as_str())
        {
            return None;
        }
        let unhealthy = self.unhealthy(source, desired).await;
        let elapsed = old
            .last_sync_time
            .as_ref()
            .map(|t| {
                (chrono::Utc::now() - schemas::TimeExt::utc(t))
                    .to_std()
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        let gave_up = healthcheck::any_failed(&unhealthy) || elapsed >= timeout_of(source);
        let new = status::health(&old, &unhealthy, gave_up, old.observed_generation);
        if new == old {
            return None;
        }
        let key = owner_of(source).to_string();
        match status::ready(&new).map(|c| c.status.as_str()) {
            Some("True") => tracing::info!(source = %key, "healthy"),
            Some("False") if status::ready(&old).is_none_or(|c| c.status != "False") => {
                tracing::warn!(source = %key, unhealthy = %crate::health::summary(&unhealthy), "health check failed")
            }
            _ => {
                tracing::debug!(source = %key, unhealthy = %crate::health::summary(&unhealthy), "waiting for health")
            }
        }
        match self.write_status(source, &new).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(source = %key, error = %e, "cannot record the health check");
                None
            }
        }
    }

    /// Records a failed fetch (a kustomization that did not build is a
    /// validation failure of its revision, with every error located).
    pub async fn fetch_failed(&self, source: &GitSource, e: &FetchError) -> Outcome {
        let old = source.status.clone().unwrap_or_default();
        let (revision, failure, errors): (Option<&str>, Failure, &[Diagnostic]) = match e {
            FetchError::Build { revision, errors } => (
                Some(revision.as_str()).filter(|r| !r.is_empty()),
                Failure::ValidationFailed,
                errors,
            ),
            _ => (None, Failure::FetchFailed, &[]),
        };
        let summary = match e {
            FetchError::Build { .. } => {
                format!("the kustomization does not build; nothing applied: {e}")
            }
            _ => format!(
                "cannot read {}: {e}",
                Self::location(source)
                    .map(|l| l.describe())
                    .unwrap_or_default()
            ),
        };
        let new = handled(
            source,
            status::failed(
                &old,
                revision,
                failure,
                &summary,
                errors,
                source.metadata.generation,
            ),
        );
        let key = owner_of(source).to_string();
        tracing::warn!(source = %key, "{summary}");
        self.metrics.synced(
            &key,
            if failure == Failure::FetchFailed {
                "fetch_failed"
            } else {
                "invalid"
            },
            0.0,
        );
        if let Err(e) = self.write_status(source, &new).await {
            tracing::warn!(source = %key, error = %e, "cannot record the fetch failure");
        }
        let notice = Notice {
            severity: Severity::Error,
            reason: "SyncFailed".into(),
            message: status::ready(&new)
                .map(|c| c.message.clone())
                .unwrap_or_else(|| summary.clone()),
            revision: revision.map(str::to_string),
        };
        notify::notify(&self.client, source, &notice).await;
        Outcome::Failed {
            revision: revision.map(str::to_string),
            failure,
            summary,
            errors: errors.to_vec(),
        }
    }

    /// Fetches and syncs `source` now.
    pub async fn sync_now(&self, source: &GitSource) -> Outcome {
        match self.snapshot(source, None).await {
            Ok(s) => self.sync_snapshot(source, s).await,
            Err(e) => self.fetch_failed(source, &e).await,
        }
    }

    /// Compares `desired` with the cluster; with `publish`, writes the
    /// DriftReport and the metric.
    pub async fn check(
        &self,
        source: &GitSource,
        desired: &Desired,
        publish: bool,
    ) -> Result<Drift, ClientError> {
        let owner = owner_of(source);
        let inventory = source
            .status
            .as_ref()
            .and_then(|s| s.inventory.clone())
            .unwrap_or_default();
        let live = live::read(&self.client, &owner, desired, &inventory, true).await?;
        let desired_c = desired.clone();
        let owner_c = owner.clone();
        let drift = tokio::task::spawn_blocking(move || drift::detect(&desired_c, &live, &owner_c))
            .await
            .map_err(|e| ClientError::Decode(format!("the drift task failed: {e}")))?;
        if publish {
            self.publish(source, &drift).await;
        }
        Ok(drift)
    }

    /// Writes the DriftReport and the metric for `drift`.
    pub async fn publish(&self, source: &GitSource, drift: &Drift) {
        let key = owner_of(source).to_string();
        let before = self.metrics.set_drift(&key, drift.count());
        if let Err(e) = report::write(&self.client, source, drift).await {
            tracing::warn!(source = %key, error = %e, "cannot write the DriftReport");
        }
        if before == 0 && drift.count() > 0 {
            let notice = Notice {
                severity: Severity::Error,
                reason: "DriftDetected".into(),
                message: format!(
                    "{} object{} drifted from the source",
                    drift.count(),
                    if drift.count() == 1 { "" } else { "s" }
                ),
                revision: source
                    .status
                    .as_ref()
                    .and_then(|s| s.last_applied_revision.clone()),
            };
            notify::notify(&self.client, source, &notice).await;
        }
    }

    /// Heals `drift`, recording an Event on the source.
    pub async fn heal(&self, source: &GitSource, desired: &Desired, drift: &Drift) -> Healed {
        let healed = heal::heal(&self.writer(source), desired, drift).await;
        let key = owner_of(source).to_string();
        if !healed.objects.is_empty() {
            let message = format!(
                "reverted {} object{}: {}",
                healed.objects.len(),
                if healed.objects.len() == 1 { "" } else { "s" },
                healed.fields.join("; ")
            );
            tracing::info!(source = %key, "self-heal: {message}");
            let notice = Notice {
                severity: Severity::Info,
                reason: "SelfHealed".into(),
                message,
                revision: source
                    .status
                    .as_ref()
                    .and_then(|s| s.last_applied_revision.clone()),
            };
            notify::notify(&self.client, source, &notice).await;
        }
        for e in &healed.errors {
            tracing::warn!(source = %key, "self-heal failed: {e}");
        }
        healed
    }
}

/// The notice of a sync: `Synced` (info) or `SyncFailed` (error), with the
/// Ready condition's message.
fn notice_of(outcome: &Outcome, status: &GitSourceStatus) -> Notice {
    let message = status::ready(status)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    match outcome {
        Outcome::Synced { report, .. } => Notice {
            severity: Severity::Info,
            reason: "Synced".into(),
            message,
            revision: Some(report.revision.clone()),
        },
        Outcome::Failed {
            revision, summary, ..
        } => Notice {
            severity: Severity::Error,
            reason: "SyncFailed".into(),
            message: if message.is_empty() {
                summary.clone()
            } else {
                message
            },
            revision: revision.clone(),
        },
    }
}

/// The JSON form of an outcome (for `-o json`).
pub fn outcome_json(outcome: &Outcome) -> serde_json::Value {
    match outcome {
        Outcome::Synced { report, .. } => json!({
            "synced": true,
            "revision": report.revision,
            "applied": report.applied.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "unchanged": report.unchanged,
            "pruned": report.pruned.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
        Outcome::Failed {
            revision,
            failure,
            summary,
            errors,
        } => json!({
            "synced": false,
            "revision": revision,
            "reason": format!("{failure:?}"),
            "message": summary,
            "errors": errors,
        }),
    }
}
