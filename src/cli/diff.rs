//! `korral diff PATH`: what syncing the manifests at PATH (a folder or a
//! file) would change in the cluster, before committing them: server-side
//! dry runs compared with the live objects. With `--source NAME` the
//! objects are that source's and what would be pruned is listed too.
//! Custom resources are checked against the definitions in PATH and in the
//! cluster; those of definitions not yet applied show as created.
//! A folder holding a `kustomization.yaml` is built first (as the source
//! would build it), and `--source`'s post-build substitution applied.
//! Exit status: 0 no change, 1 changes, 2 error (including invalid manifests).

use std::path::PathBuf;
use std::process::ExitCode;

use intake::engine::{default_namespace, owner_of};
use intake::kustomize::BuildOptions;
use intake::source::{FetchError, Snapshot, SourceFile};
use schemas::MetaExt;

use crate::cli::output::{self, Format};
use crate::cli::sources::{client, get_source, runtime, split_source};

/// Arguments of `korral diff`.
#[derive(clap::Args)]
pub struct Args {
    /// A folder (searched recursively for *.yaml, *.yml, *.json) or a file.
    path: PathBuf,
    /// Namespace of namespaced objects that name none (default: the source's, else the kubeconfig's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The GitSource these manifests belong to (NAME or NAMESPACE/NAME).
    #[arg(long)]
    source: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Let a kustomization at PATH fetch remote bases (as the source's
    /// `spec.kustomize.allowRemoteBases`).
    #[arg(long)]
    allow_remote_bases: bool,
    /// The kubeconfig to use (default: $KUBECONFIG, then ./.korral/kubeconfig.yaml).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

fn read(path: &PathBuf, build: &BuildOptions) -> Result<Snapshot, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        return intake::source::folder::read(path, build).map_err(|e| match e {
            FetchError::Build { errors, .. } => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                format!(
                    "{}\nthe kustomization does not build: a sync would apply nothing",
                    lines.join("\n")
                )
            }
            other => other.to_string(),
        });
    }
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let files = vec![SourceFile {
        path: path.display().to_string(),
        data,
    }];
    Ok(Snapshot {
        revision: intake::source::folder::digest_of(&files),
        files,
    })
}

/// Runs `korral diff`.
pub fn run(args: Args) -> ExitCode {
    let rt = match runtime("diff") {
        Ok(r) => r,
        Err(c) => return c,
    };
    rt.block_on(async move {
        let client = match client("diff", args.kubeconfig.as_deref()) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let source = match &args.source {
            Some(s) => {
                let (ns, name) = split_source(s, args.namespace.as_deref(), &client);
                match get_source("diff", &client, &ns, &name).await {
                    Ok(src) => Some(src),
                    Err(code) => return code,
                }
            }
            None => None,
        };
        // a kustomization is built as the source would build it
        let spec = source
            .as_ref()
            .and_then(|s| s.spec.clone())
            .unwrap_or_default();
        let mut build = BuildOptions::from_spec(&spec);
        build.allow_remote |= args.allow_remote_bases;
        let mut snapshot = match tokio::task::spawn_blocking({
            let path = args.path.clone();
            move || read(&path, &build)
        })
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                eprintln!("korral diff: {e}");
                return ExitCode::from(output::ERROR);
            }
            Err(e) => {
                eprintln!("korral diff: the read task failed: {e}");
                return ExitCode::from(output::ERROR);
            }
        };
        if let (Some(src), Some(pb)) = (&source, spec.post_build.as_ref()) {
            match intake::substitute::variables(&client, src.metadata.namespace_str(), pb).await {
                Ok(vars) => intake::substitute::substitute_files(&mut snapshot.files, &vars),
                Err(e) => {
                    eprintln!("korral diff: postBuild: {e}");
                    return ExitCode::from(output::ERROR);
                }
            }
        }
        let owner = source.as_ref().map(owner_of);
        let ns = match (&args.namespace, &source) {
            (Some(n), _) => n.clone(),
            (None, Some(s)) => default_namespace(s),
            (None, None) => client.default_namespace().to_string(),
        };
        // custom resources are checked against the cluster's definitions too
        let registry = match intake::definitions::cluster_registry(&client).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("korral diff: reading the cluster's CustomResourceDefinitions: {e}");
                return ExitCode::from(output::ERROR);
            }
        };
        let desired = match tokio::task::spawn_blocking({
            let owner = owner.clone();
            move || intake::render::render_with(&snapshot, owner.as_ref(), &ns, &registry)
        })
        .await
        {
            Ok(Ok(d)) => d,
            Ok(Err(errors)) => {
                for d in &errors {
                    println!("{d}");
                }
                eprintln!(
                    "korral diff: {} error{} in the manifests: a sync would apply nothing",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                );
                return ExitCode::from(output::ERROR);
            }
            Err(e) => {
                eprintln!("korral diff: {e}");
                return ExitCode::from(output::ERROR);
            }
        };
        let (inventory, prune) = source
            .as_ref()
            .map(|s| {
                (
                    s.status
                        .as_ref()
                        .and_then(|st| st.inventory.clone())
                        .unwrap_or_default(),
                    s.spec.as_ref().and_then(|sp| sp.prune).unwrap_or(false),
                )
            })
            .unwrap_or_default();
        let plan =
            match intake::diff::plan(&client, owner.as_ref(), &desired, &inventory, prune).await {
                Ok(p) => p,
                Err(errors) => {
                    for d in &errors {
                        println!("{d}");
                    }
                    eprintln!(
                        "korral diff: the API server refused {} object(s) in the dry run",
                        errors.len()
                    );
                    return ExitCode::from(output::ERROR);
                }
            };
        match args.output {
            Format::Json => {
                let v = serde_json::to_value(&plan).unwrap_or_default();
                let printed = output::print_json(&v);
                if printed != ExitCode::SUCCESS {
                    return printed;
                }
            }
            Format::Text => print!("{}", intake::diff::render_text(&plan)),
        }
        ExitCode::from(if plan.changes_anything() {
            output::FOUND
        } else {
            output::OK
        })
    })
}
