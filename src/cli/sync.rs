//! `korral sync SOURCE`: sync a GitSource now — by asking the server's
//! intake (the `sync` subresource) and waiting for its answer, or with
//! `--local` in this process (a progress bar on a terminal). With `--url`
//! or `--path` the source is created or updated first. With `--wait`, also
//! until what was applied is healthy: exit 0 healthy, 1 not healthy (the
//! source's health check failed, or still progressing at `--timeout`),
//! 2 errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;

use intake::engine::Engine;
use intake::progress::Progress;
use reconcilers::runtime::{Client, Patch, WriteParams};
use schemas::MetaExt;
use schemas::korral::{GitSource, GitSourceStatus};

use crate::cli::output::{self, Format};
use crate::cli::sources::{cache_dir, client, get_source, runtime, split_source};

/// Arguments of `korral sync`.
#[derive(clap::Args)]
pub struct Args {
    /// The GitSource: NAME or NAMESPACE/NAME.
    source: String,
    /// Its namespace (default: the kubeconfig's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Create or update the source: a Git repository (https://, file:// or a local path).
    #[arg(long)]
    url: Option<String>,
    /// With --url: the branch to follow (default main).
    #[arg(long, requires = "url", conflicts_with_all = ["tag", "commit"])]
    branch: Option<String>,
    /// With --url: a tag.
    #[arg(long, requires = "url", conflicts_with = "commit")]
    tag: Option<String>,
    /// With --url: a commit.
    #[arg(long, requires = "url")]
    commit: Option<String>,
    /// With --url: a folder inside the repository; without: a local folder to sync.
    #[arg(long)]
    path: Option<String>,
    /// How often the server checks the source (e.g. 30s, 5m).
    #[arg(long)]
    interval: Option<String>,
    /// Delete objects that leave the source (`--prune=false` to stop).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    prune: Option<bool>,
    /// Revert changes made to owned objects outside the source.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    self_heal: Option<bool>,
    /// Sync in this process instead of asking the server's intake.
    #[arg(long)]
    local: bool,
    /// Wait until what was applied is healthy (or the source's health check fails).
    #[arg(long)]
    wait: bool,
    /// How long to wait for the server's answer (and, with --wait, for health).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    output: Format,
    /// The kubeconfig to use (default: $KUBECONFIG, then ./.korral/kubeconfig.yaml).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Where --local keeps Git mirrors (default: ~/.cache/korral).
    #[arg(long, env = "KORRAL_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    schemas::duration::parse_duration(s)
}

/// A local path made absolute (the server may run elsewhere in the file system).
fn absolute(p: &str) -> String {
    std::fs::canonicalize(p)
        .map(|a| a.display().to_string())
        .unwrap_or_else(|_| p.to_string())
}

/// The spec the flags describe, as an apply configuration; `None` without --url/--path.
fn spec_from_flags(args: &Args) -> Option<serde_json::Value> {
    if args.url.is_none() && args.path.is_none() {
        return None;
    }
    let mut spec = serde_json::Map::new();
    match &args.url {
        Some(u) => {
            let is_local = !u.contains("://") && std::path::Path::new(u).exists();
            spec.insert(
                "url".into(),
                json!(if is_local { absolute(u) } else { u.clone() }),
            );
            let r = if let Some(c) = &args.commit {
                json!({"commit": c})
            } else if let Some(t) = &args.tag {
                json!({"tag": t})
            } else {
                json!({"branch": args.branch.clone().unwrap_or_else(|| "main".into())})
            };
            spec.insert("ref".into(), r);
            if let Some(p) = &args.path {
                spec.insert("path".into(), json!(p));
            }
        }
        None => {
            spec.insert(
                "path".into(),
                json!(absolute(args.path.as_deref().unwrap_or("."))),
            );
        }
    }
    if let Some(i) = &args.interval {
        spec.insert("interval".into(), json!(i));
    }
    if let Some(p) = args.prune {
        spec.insert("prune".into(), json!(p));
    }
    if let Some(h) = args.self_heal {
        spec.insert("selfHeal".into(), json!(h));
    }
    Some(serde_json::Value::Object(spec))
}

/// Creates or updates a GitSource with a server-side apply as `korral-cli`.
pub async fn apply_source(
    client: &Client,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> Result<GitSource, String> {
    let obj = json!({
        "apiVersion": "korral.dev/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    });
    client
        .api::<GitSource>(Some(ns))
        .patch(
            name,
            &Patch::Apply(obj),
            &WriteParams {
                field_manager: Some("korral-cli".into()),
                force: true,
                dry_run: false,
            },
        )
        .await
        .map_err(|e| format!("cannot create or update GitSource {ns}/{name}: {e}"))
}

/// Prints a source's sync result from its status; returns the exit code.
pub fn report(source: &GitSource, format: Format) -> ExitCode {
    let st: GitSourceStatus = source.status.clone().unwrap_or_default();
    let name = format!(
        "{}/{}",
        source.metadata.namespace_str(),
        source.metadata.name_str()
    );
    let ready = intake::status::ready(&st);
    // applied, health still progressing: synced (`--wait` waits for more)
    let ok = ready.is_some_and(|c| c.status == "True") || intake::status::progressing(&st);
    let reason = ready.map(|c| c.reason.clone()).unwrap_or_default();
    let code = if ok {
        output::OK
    } else if reason == "ValidationFailed" || reason == intake::status::HEALTH_CHECK_FAILED {
        output::FOUND
    } else {
        output::ERROR
    };
    let errors = st
        .last_error
        .as_ref()
        .and_then(|e| e.errors.clone())
        .unwrap_or_default();
    match format {
        Format::Json => {
            let v = json!({
                "source": name,
                "synced": ok,
                "reason": reason,
                "health": intake::status::health_column(&st),
                "message": ready.map(|c| c.message.clone()),
                "lastFetchedRevision": st.last_fetched_revision,
                "lastAppliedRevision": st.last_applied_revision,
                "applied": st.applied,
                "unchanged": st.unchanged,
                "pruned": st.pruned,
                "errors": errors,
            });
            let printed = output::print_json(&v);
            if printed != ExitCode::SUCCESS {
                return printed;
            }
        }
        Format::Text => {
            for e in &errors {
                let mut line = e.file.clone().unwrap_or_default();
                if let Some(l) = e.line {
                    line.push_str(&format!(":{l}"));
                }
                if !line.is_empty() {
                    line.push(':');
                }
                if let Some(d) = e.document {
                    line.push_str(&format!(" [document {d}]"));
                }
                if let Some(o) = &e.object {
                    line.push_str(&format!(" {o}:"));
                }
                if let Some(p) = &e.path {
                    line.push_str(&format!(" {p}:"));
                }
                println!("{} {}", line.trim_start(), e.message);
            }
            let message = ready.map(|c| c.message.clone()).unwrap_or_default();
            if ok {
                println!("{name}: {message}");
            } else if reason == intake::status::HEALTH_CHECK_FAILED {
                println!("{name}: not healthy: {message}");
            } else {
                println!("{name}: sync failed ({reason}): {message}");
            }
        }
    }
    ExitCode::from(code)
}

/// How a poll of the source ended.
enum Polled {
    /// The condition held for this copy.
    Done(GitSource),
    /// The deadline passed; the last copy read, if any.
    TimedOut(Option<GitSource>),
}

/// Reads the source until `done` holds for it or `deadline` passes (an
/// error when it is deleted).
async fn poll_source(
    client: &Client,
    ns: &str,
    name: &str,
    deadline: Instant,
    done: impl Fn(&GitSource) -> bool,
) -> Result<Polled, String> {
    let api = client.api::<GitSource>(Some(ns));
    let mut pause = Duration::from_millis(50);
    let mut last = None;
    loop {
        match api.get_opt(name).await {
            Ok(Some(s)) if done(&s) => return Ok(Polled::Done(s)),
            Ok(Some(s)) => last = Some(s),
            Ok(None) => return Err(format!("GitSource {ns}/{name} was deleted")),
            Err(e) => tracing::debug!(error = %e, "polling the source"),
        }
        if Instant::now() >= deadline {
            return Ok(Polled::TimedOut(last));
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

async fn wait_for_answer(
    client: &Client,
    ns: &str,
    name: &str,
    request: &str,
    timeout: Duration,
) -> Result<GitSource, String> {
    let answered = |s: &GitSource| {
        s.status
            .as_ref()
            .and_then(|st| st.last_handled_sync_request.as_deref())
            == Some(request)
    };
    match poll_source(client, ns, name, Instant::now() + timeout, answered).await? {
        Polled::Done(s) => Ok(s),
        Polled::TimedOut(_) => Err(format!(
            "no answer from the server's intake within {timeout:?} (does the server run it? `korral server` does unless --intake=false; or use --local)"
        )),
    }
}

/// After the sync: waits until the source is no longer progressing (its
/// applied objects healthy, or its health check failed) or `deadline`
/// (then the source as last read).
async fn wait_for_health(
    client: &Client,
    ns: &str,
    name: &str,
    deadline: Instant,
) -> Result<GitSource, String> {
    let settled =
        |s: &GitSource| !intake::status::progressing(&s.status.clone().unwrap_or_default());
    match poll_source(client, ns, name, deadline, settled).await? {
        Polled::Done(s) | Polled::TimedOut(Some(s)) => Ok(s),
        Polled::TimedOut(None) => Err(format!("cannot read GitSource {ns}/{name}")),
    }
}

/// With `--local --wait`: checks health in this process until it is
/// settled (what the server's intake does for a source it syncs).
async fn settle_locally(
    engine: &Engine,
    client: &Client,
    ns: &str,
    name: &str,
    desired: &intake::render::Desired,
    deadline: Instant,
) {
    loop {
        let Ok(s) = get_source("sync", client, ns, name).await else {
            return;
        };
        let st = s.status.clone().unwrap_or_default();
        if !intake::status::progressing(&st) || Instant::now() >= deadline {
            return;
        }
        engine.update_health(&s, desired).await;
        tokio::time::sleep(intake::healthcheck::POLL).await;
    }
}

/// The exit code of a `--wait`ed source that is still progressing.
fn still_progressing(s: &GitSource, format: Format) -> Option<ExitCode> {
    let st = s.status.clone().unwrap_or_default();
    if !intake::status::progressing(&st) {
        return None;
    }
    let message = intake::status::ready(&st)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    eprintln!(
        "korral sync: {}/{} not healthy within the timeout: {message}",
        s.metadata.namespace_str(),
        s.metadata.name_str()
    );
    let _ = report(s, format);
    Some(ExitCode::from(output::FOUND))
}

/// Runs `korral sync`.
pub fn run(args: Args) -> ExitCode {
    let rt = match runtime("sync") {
        Ok(r) => r,
        Err(c) => return c,
    };
    rt.block_on(async move {
        let client = match client("sync", args.kubeconfig.as_deref()) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let (ns, name) = split_source(&args.source, args.namespace.as_deref(), &client);
        let source = match spec_from_flags(&args) {
            Some(spec) => match apply_source(&client, &ns, &name, spec).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("korral sync: {e}");
                    return ExitCode::from(output::ERROR);
                }
            },
            None => match get_source("sync", &client, &ns, &name).await {
                Ok(s) => s,
                Err(code) => return code,
            },
        };
        let started = Instant::now();
        let done = if args.local {
            let mut engine = Engine::new(client.clone(), cache_dir(args.cache_dir.clone()));
            engine.progress = Progress::for_terminal();
            if let intake::engine::Outcome::Synced { desired, .. } = engine.sync_now(&source).await
            {
                if args.wait {
                    settle_locally(
                        &engine,
                        &client,
                        &ns,
                        &name,
                        &desired,
                        started + args.timeout,
                    )
                    .await;
                }
                let fresh = get_source("sync", &client, &ns, &name)
                    .await
                    .unwrap_or(source.clone());
                if let Ok(drift) = engine.check(&fresh, &desired, true).await
                    && !drift.is_clean()
                {
                    eprintln!(
                        "korral sync: {} object(s) still differ; see `korral drift {ns}/{name}`",
                        drift.count()
                    );
                }
            }
            get_source("sync", &client, &ns, &name).await
        } else {
            let requested = client
                .api::<GitSource>(Some(&ns))
                .create_subresource(&name, "sync", &json!({}))
                .await;
            let request = match requested {
                Ok(v) => v["metadata"]["annotations"][intake::engine::SYNC_REQUESTED]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                Err(e) => {
                    eprintln!("korral sync: requesting a sync of {ns}/{name}: {e}");
                    return ExitCode::from(output::ERROR);
                }
            };
            let answered = match wait_for_answer(&client, &ns, &name, &request, args.timeout).await
            {
                Ok(s) => Ok(s),
                Err(e) => {
                    eprintln!("korral sync: {e}");
                    return ExitCode::from(output::ERROR);
                }
            };
            match answered {
                Ok(_) if args.wait => {
                    match wait_for_health(&client, &ns, &name, started + args.timeout).await {
                        Ok(s) => Ok(s),
                        Err(e) => {
                            eprintln!("korral sync: {e}");
                            return ExitCode::from(output::ERROR);
                        }
                    }
                }
                other => other,
            }
        };
        match done {
            Ok(s) => {
                if args.wait
                    && let Some(code) = still_progressing(&s, args.output)
                {
                    return code;
                }
                report(&s, args.output)
            }
            Err(code) => code,
        }
    })
}
