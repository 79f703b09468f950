//! `korral drift SOURCE`: compare what a GitSource declares (at the revision
//! last applied) with the cluster now; print each drifted field with the
//! manager that changed it, and update the source's DriftReport.
//! Exit status: 0 no drift, 1 drift, 2 error.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use intake::engine::Engine;

use crate::cli::output::{self, Format};
use crate::cli::sources::{cache_dir, client, get_source, runtime, split_source};

/// Arguments of `korral drift`.
#[derive(clap::Args)]
pub struct Args {
    /// The GitSource: NAME or NAMESPACE/NAME.
    source: String,
    /// Its namespace (default: the kubeconfig's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    output: Format,
    /// The kubeconfig to use (default: $KUBECONFIG, then ./.korral/kubeconfig.yaml).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Where Git mirrors are kept (default: ~/.cache/korral).
    #[arg(long, env = "KORRAL_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

/// Runs `korral drift`.
pub fn run(args: Args) -> ExitCode {
    let rt = match runtime("drift") {
        Ok(r) => r,
        Err(c) => return c,
    };
    rt.block_on(async move {
        let client = match client("drift", args.kubeconfig.as_deref()) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let (ns, name) = split_source(&args.source, args.namespace.as_deref(), &client);
        let source = match get_source("drift", &client, &ns, &name).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        let Some(revision) = source.status.as_ref().and_then(|s| s.last_applied_revision.clone()) else {
            eprintln!("korral drift: {ns}/{name} has not been synced yet (no applied revision to compare with)");
            return ExitCode::from(output::ERROR);
        };
        let engine = Engine::new(client.clone(), cache_dir(args.cache_dir.clone()));
        let snapshot = match engine.snapshot(&source, Some(&revision)).await {
            Ok(s) => s,
            Err(e) => {
                // a folder that changed since: compare with what it holds now
                match engine.snapshot(&source, None).await {
                    Ok(s) if matches!(Engine::location(&source), Ok(intake::source::Location::Folder { .. })) => {
                        eprintln!("korral drift: note: {e}; comparing with its current contents");
                        s
                    }
                    _ => {
                        eprintln!("korral drift: reading revision {revision}: {e}");
                        return ExitCode::from(output::ERROR);
                    }
                }
            }
        };
        let desired = match engine.render(&source, snapshot).await {
            Ok(d) => d,
            Err(errors) => {
                for d in &errors {
                    eprintln!("{d}");
                }
                eprintln!("korral drift: the source does not render ({} errors)", errors.len());
                return ExitCode::from(output::ERROR);
            }
        };
        let drift = match engine.check(&source, &desired, true).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("korral drift: reading the cluster: {e}");
                return ExitCode::from(output::ERROR);
            }
        };
        let label = format!("{ns}/{name}");
        match args.output {
            Format::Json => {
                let mut v = serde_json::to_value(drift.to_status()).unwrap_or_default();
                v["source"] = json!(label);
                v["objects"] = json!(drift.objects);
                // which kustomization each drifted object was built from
                let from: std::collections::BTreeMap<String, String> = drift
                    .modified
                    .iter()
                    .map(|m| &m.key)
                    .chain(drift.missing.iter().map(|(_, k)| k))
                    .filter_map(|k| Some((k.to_string(), drift.built_from.get(k)?.clone())))
                    .collect();
                if !from.is_empty() {
                    v["builtFrom"] = json!(from);
                }
                let printed = output::print_json(&v);
                if printed != ExitCode::SUCCESS {
                    return printed;
                }
            }
            Format::Text => print!("{}", intake::drift::text::render(&drift, &ns, &label)),
        }
        ExitCode::from(if drift.is_clean() { output::OK } else { output::FOUND })
    })
}
