//! Sync hooks: Jobs annotated `korral.dev/hook: PreSync|PostSync` (or Argo
//! CD's `argocd.argoproj.io/hook`). They are not applied with the other
//! objects (nor inventoried, pruned or checked for drift): PreSync hooks run
//! before the first wave, PostSync hooks once every wave is healthy, and a
//! hook that fails (or does not complete within the timeout) fails the
//! sync. A hook runs once per revision (stamped `korral.dev/hook-revision`):
//! a Job of an older revision is deleted before the new one is created
//! (Argo CD's default `BeforeHookCreation` policy).

use std::time::{Duration, Instant};

use serde_json::Value;

use reconcilers::runtime::{Client, ClientError, DeleteParams};

use crate::health::{Health, Status, Unhealthy};
use crate::healthcheck::{POLL, wait_healthy};
use crate::render::{Desired, DesiredObject};

/// korral's hook annotation.
pub const HOOK: &str = "korral.dev/hook";
/// Argo CD's, honoured so migrating repositories keep their hooks.
pub const ARGO_HOOK: &str = "argocd.argoproj.io/hook";
/// The revision a hook Job was created for.
pub const HOOK_REVISION: &str = "korral.dev/hook-revision";

/// When a hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before anything is applied.
    PreSync,
    /// After every wave is applied and healthy.
    PostSync,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::PreSync => "PreSync",
            Phase::PostSync => "PostSync",
        })
    }
}

/// The hook phase of a declared object: Jobs with a `PreSync` or
/// `PostSync` hook annotation (Argo's comma-separated lists included; the
/// first phase korral knows wins). Other kinds are not hooks.
pub fn phase_of(object: &Value) -> Option<Phase> {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    if object["kind"] != "Job" || !api_version.starts_with("batch/") {
        return None;
    }
    let annotations = &object["metadata"]["annotations"];
    let value = [HOOK, ARGO_HOOK]
        .iter()
        .find_map(|a| annotations[*a].as_str())?;
    value.split(',').find_map(|p| match p.trim() {
        "PreSync" => Some(Phase::PreSync),
        "PostSync" => Some(Phase::PostSync),
        _ => None,
    })
}

/// Moves the hooks of `desired` out of its objects.
pub fn split(desired: &mut Desired) {
    let (hooks, objects): (Vec<_>, Vec<_>) = std::mem::take(&mut desired.objects)
        .into_iter()
        .partition(|o| phase_of(&o.object).is_some());
    desired.objects = objects;
    desired.hooks = hooks;
}

fn failed(o: &DesiredObject, home: &str, phase: Phase, message: String) -> Unhealthy {
    Unhealthy {
        object: o.key.short(home),
        health: Health {
            status: Status::Failed,
            message: format!("{phase} hook: {message}"),
        },
        why: None,
    }
}

/// Deletes a hook Job of another revision (its pods with it) and waits
/// until it is gone.
async fn delete_old(
    client: &Client,
    o: &DesiredObject,
    uid: Option<String>,
    deadline: Instant,
) -> Result<(), String> {
    let api = client.dynamic(&o.info, o.key.namespace.as_deref());
    let params = DeleteParams {
        propagation_policy: Some("Background".into()),
        precondition_uid: uid.clone(),
        ..Default::default()
    };
    match api.delete(&o.key.name, &params).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(format!("cannot delete the previous run: {e}")),
    }
    loop {
        match api.get_opt(&o.key.name).await {
            Ok(None) => return Ok(()),
            Ok(Some(l)) if l.pointer("/metadata/uid").and_then(Value::as_str) != uid.as_deref() => {
                return Ok(());
            }
            Ok(Some(_)) => {}
            Err(e) => tracing::debug!(error = %e, "waiting for a hook Job's deletion"),
        }
        if Instant::now() >= deadline {
            return Err("the previous run is still being deleted".into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs one hook for `revision` and waits until it completes.
async fn run_one(
    client: &Client,
    o: &DesiredObject,
    phase: Phase,
    revision: &str,
    home: &str,
    deadline: Instant,
) -> Result<(), Vec<Unhealthy>> {
    let api = client.dynamic(&o.info, o.key.namespace.as_deref());
    let live = api
        .get_opt(&o.key.name)
        .await
        .map_err(|e| vec![failed(o, home, phase, format!("cannot read it: {e}"))])?;
    let current = live.as_ref().is_some_and(|l| {
        l.pointer(&format!(
            "/metadata/annotations/{}",
            HOOK_REVISION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
            == Some(revision)
    });
    if !current {
        if let Some(l) = &live {
            let uid = l
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .map(str::to_string);
            delete_old(client, o, uid, deadline)
                .await
                .map_err(|m| vec![failed(o, home, phase, m)])?;
        }
        let mut run = o.clone();
        if let Some(meta) = run.object["metadata"].as_object_mut() {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(HOOK_REVISION.into(), revision.into());
            }
        }
        tracing::info!(hook = %o.key, %phase, revision, "running a hook");
        crate::sync::apply_one(client, &run, false)
            .await
            .map_err(|e: ClientError| {
                vec![failed(o, home, phase, format!("cannot create it: {e}"))]
            })?;
    }
    wait_healthy(client, &[o], home, deadline)
        .await
        .map_err(|u| {
            u.into_iter()
                .map(|mut u| {
                    u.health.message = format!("{phase} hook: {}", u.health.message);
                    u
                })
                .collect()
        })
}

/// Runs the hooks of `phase` among `hooks`, one after another, each
/// complete (within `timeout`) before the next.
pub async fn run(
    client: &Client,
    hooks: &[DesiredObject],
    phase: Phase,
    revision: &str,
    home: &str,
    timeout: Duration,
) -> Result<(), Vec<Unhealthy>> {
    for o in hooks.iter().filter(|o| phase_of(&o.object) == Some(phase)) {
        run_one(client, o, phase, revision, home, Instant::now() + timeout).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hooks_are_annotated_jobs() {
        let job = |a: Value| json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m", "annotations": a}});
        assert_eq!(
            phase_of(&job(json!({HOOK: "PreSync"}))),
            Some(Phase::PreSync)
        );
        assert_eq!(
            phase_of(&job(json!({ARGO_HOOK: "Skip,PostSync"}))),
            Some(Phase::PostSync)
        );
        assert_eq!(phase_of(&job(json!({HOOK: "SyncFail"}))), None);
        assert_eq!(phase_of(&job(json!({}))), None);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"annotations": {HOOK: "PreSync"}}});
        assert_eq!(phase_of(&cm), None);
        assert_eq!(Phase::PostSync.to_string(), "PostSync");
    }
}
