//! `korral sources`: the GitSources with their status (revision, readiness,
//! health of what they applied, counts, drift); plus the helpers the other intake commands share
//! (client, runtime, source names, the local Git cache).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

use intake::drift::text::{ago, short_revision};
use reconcilers::runtime::{Client, ListParams};
use schemas::MetaExt;
use schemas::korral::{DriftReport, GitSource, GitSourceStatus};

use crate::cli::output::{self, Format};

/// Arguments of `korral sources`.
#[derive(clap::Args)]
pub struct Args {
    /// Only this namespace (default: the kubeconfig's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    output: Format,
    /// The kubeconfig to use (default: $KUBECONFIG, then ./.korral/kubeconfig.yaml).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// A multi-threaded tokio runtime for a command.
pub fn runtime(command: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("korral {command}: cannot start the async runtime: {e}");
            ExitCode::from(output::ERROR)
        })
}

/// A client for the kubeconfig (user agent `korral-cli`).
pub fn client(command: &str, kubeconfig: Option<&Path>) -> Result<Client, ExitCode> {
    Client::from_kubeconfig(kubeconfig, "korral-cli").map_err(|e| {
        eprintln!("korral {command}: {e}");
        ExitCode::from(output::ERROR)
    })
}

/// `NAME` or `NAMESPACE/NAME` → (namespace, name); `-n` and then the
/// kubeconfig's namespace apply to a bare name.
pub fn split_source(source: &str, namespace: Option<&str>, client: &Client) -> (String, String) {
    match source.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (
            namespace.unwrap_or(client.default_namespace()).to_string(),
            source.to_string(),
        ),
    }
}

/// Where this machine keeps Git mirrors for the command line:
/// `$XDG_CACHE_HOME/korral`, else `~/.cache/korral`, else `./.korral/cache`.
pub fn cache_dir(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("korral");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".cache").join("korral");
    }
    PathBuf::from(".korral/cache")
}

/// Reads a GitSource; prints why not and returns the exit code otherwise.
pub async fn get_source(
    command: &str,
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<GitSource, ExitCode> {
    match client.api::<GitSource>(Some(ns)).get_opt(name).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => {
            eprintln!("korral {command}: GitSource {ns}/{name} not found");
            Err(ExitCode::from(output::ERROR))
        }
        Err(e) => {
            eprintln!("korral {command}: reading GitSource {ns}/{name}: {e}");
            Err(ExitCode::from(output::ERROR))
        }
    }
}

/// The URL or folder of a source.
pub fn location(s: &GitSource) -> String {
    let spec = s.spec.clone().unwrap_or_default();
    match (spec.url, spec.path) {
        (Some(u), Some(p)) if !p.is_empty() => format!("{} ({p})", intake::source::git::redact(&u)),
        (Some(u), _) => intake::source::git::redact(&u),
        (None, Some(p)) => p,
        _ => String::new(),
    }
}

fn ready_of(st: &GitSourceStatus) -> (String, String) {
    match intake::status::ready(st) {
        Some(c) => (c.status.clone(), c.message.clone()),
        None => ("Unknown".into(), "not synced yet".into()),
    }
}

fn pad(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == r.len() {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// Runs `korral sources`.
pub fn run(args: Args) -> ExitCode {
    let rt = match runtime("sources") {
        Ok(r) => r,
        Err(c) => return c,
    };
    rt.block_on(async move {
        let client = match client("sources", args.kubeconfig.as_deref()) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let ns = if args.all_namespaces {
            None
        } else {
            Some(
                args.namespace
                    .clone()
                    .unwrap_or_else(|| client.default_namespace().to_string()),
            )
        };
        let sources = match client
            .api::<GitSource>(ns.as_deref())
            .list_all(&ListParams::default())
            .await
        {
            Ok(l) => l.items,
            Err(e) => {
                eprintln!("korral sources: {e}");
                return ExitCode::from(output::ERROR);
            }
        };
        let reports = client
            .api::<DriftReport>(ns.as_deref())
            .list_all(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let drift_of = |s: &GitSource| -> Option<usize> {
            let r = reports.iter().find(|r| {
                r.metadata.name_str() == s.metadata.name_str()
                    && r.metadata.namespace_str() == s.metadata.namespace_str()
            })?;
            let st = r.status.as_ref()?;
            Some(
                st.modified.as_ref().map_or(0, Vec::len)
                    + st.missing.as_ref().map_or(0, Vec::len)
                    + st.extra.as_ref().map_or(0, Vec::len),
            )
        };
        let all_ready = sources
            .iter()
            .all(|s| s.status.as_ref().is_some_and(|st| ready_of(st).0 == "True"));
        match args.output {
            Format::Json => {
                let items: Vec<_> = sources
                    .iter()
                    .map(|s| {
                        let st = s.status.clone().unwrap_or_default();
                        let (ready, message) = ready_of(&st);
                        json!({
                            "namespace": s.metadata.namespace_str(),
                            "name": s.metadata.name_str(),
                            "source": location(s),
                            "ready": ready,
                            "health": intake::status::health_column(&st),
                            "message": message,
                            "lastFetchedRevision": st.last_fetched_revision,
                            "lastAppliedRevision": st.last_applied_revision,
                            "lastSyncTime": st.last_sync_time,
                            "objects": st.inventory.as_ref().map_or(0, Vec::len),
                            "applied": st.applied,
                            "unchanged": st.unchanged,
                            "pruned": st.pruned,
                            "driftedObjects": drift_of(s),
                            "lastError": st.last_error,
                        })
                    })
                    .collect();
                let printed = output::print_json(&json!({ "sources": items }));
                if printed != ExitCode::SUCCESS {
                    return printed;
                }
            }
            Format::Text => {
                if sources.is_empty() {
                    println!(
                        "No GitSources found{}.",
                        ns.map(|n| format!(" in namespace {n}")).unwrap_or_default()
                    );
                    return ExitCode::SUCCESS;
                }
                let mut rows = vec![vec![
                    "NAMESPACE".to_string(),
                    "NAME".into(),
                    "SOURCE".into(),
                    "REVISION".into(),
                    "READY".into(),
                    "HEALTH".into(),
                    "OBJECTS".into(),
                    "DRIFT".into(),
                    "SYNCED".into(),
                    "MESSAGE".into(),
                ]];
                for s in &sources {
                    let st = s.status.clone().unwrap_or_default();
                    let (ready, message) = ready_of(&st);
                    rows.push(vec![
                        s.metadata.namespace_str().to_string(),
                        s.metadata.name_str().to_string(),
                        location(s),
                        st.last_applied_revision
                            .as_deref()
                            .map(short_revision)
                            .unwrap_or_else(|| "-".into()),
                        ready,
                        intake::status::health_column(&st).to_string(),
                        st.inventory.as_ref().map_or(0, Vec::len).to_string(),
                        drift_of(s).map_or("-".into(), |d| d.to_string()),
                        st.last_sync_time
                            .as_ref()
                            .map(ago)
                            .unwrap_or_else(|| "never".into()),
                        message,
                    ]);
                }
                print!("{}", pad(&rows));
            }
        }
        ExitCode::from(if all_ready { output::OK } else { output::FOUND })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let t = pad(&[
            vec!["A".into(), "BB".into(), "x".into()],
            vec!["ccc".into(), "d".into(), "long message".into()],
        ]);
        assert_eq!(t, "A     BB   x\nccc   d    long message\n");
    }
}
