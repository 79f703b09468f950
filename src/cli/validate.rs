//! `korral validate PATH...`: decode and validate manifests on all cores and
//! report every problem with file, line, document, object and field path.
//! Custom resources are checked against the CustomResourceDefinitions in
//! the input, in `--crds` files and folders, and, with `--kubeconfig`, in a
//! cluster. A folder holding a `kustomization.yaml` is built with
//! kustomize first; its objects are reported under the kustomization.

use std::path::PathBuf;
use std::process::ExitCode;

use intake::kustomize::BuildOptions;
use intake::source::SourceFile;
use intake::validate::{load_definitions, validate_files_with, validate_texts_with};
use schemas::Registry;

use crate::cli::output::{self, Format};
use crate::cli::sources::{client, runtime};

const AFTER_HELP: &str = "\
Custom resources are validated against their CustomResourceDefinition's schema
(types, formats, enums, patterns, bounds, required fields, list types and CEL
rules), as the API server would. The definitions come from:
  - the input itself: every CustomResourceDefinition among PATH..., in any file
    (a custom resource in a.yaml is checked against its definition in z.yaml);
  - --crds PATH (repeatable): files or folders of definitions, e.g. an
    operator's crds/ folder. They are checked too, but not counted as
    validated objects; other objects there are ignored;
  - --kubeconfig FILE: the definitions installed in that cluster, read
    through its API (nothing is written).
A definition in the input takes precedence over one of the same name from
--crds or the cluster. An object whose kind has no definition is reported,
with how to provide one.

Examples:
  korral validate deploy/
  korral validate deploy/ --crds vendor/cert-manager/crds --crds monitoring/crds
  korral validate deploy/ --kubeconfig ~/.kube/config -o json";

/// Arguments of `korral validate`.
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Files or folders; folders are searched recursively for *.yaml, *.yml and *.json.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Namespace of namespaced objects that name none (for the duplicate check).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Worker threads (default: all cores).
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    /// CustomResourceDefinitions to check custom resources against: a file or
    /// a folder (searched recursively); repeatable.
    #[arg(long = "crds", value_name = "PATH")]
    crds: Vec<PathBuf>,
    /// Let kustomizations fetch remote resources, bases and components.
    #[arg(long)]
    allow_remote_bases: bool,
    /// Also read the CustomResourceDefinitions installed in the cluster of
    /// this kubeconfig (read only; $KUBECONFIG is not used unless given here).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
}

/// Where custom kinds came from besides the input.
#[derive(Default)]
struct Sources {
    /// Definitions read from `--crds`.
    files: usize,
    /// Definitions read from the cluster.
    cluster: usize,
}

/// Reads the cluster's definitions into `registry`; the number registered.
fn read_cluster(kubeconfig: &std::path::Path, registry: &Registry) -> Result<usize, ExitCode> {
    let rt = runtime("validate")?;
    rt.block_on(async {
        let client = client("validate", Some(kubeconfig))?;
        match intake::definitions::list(&client).await {
            Ok(crds) => Ok(intake::definitions::register(registry, &crds)),
            Err(e) => {
                eprintln!(
                    "korral validate: reading the CustomResourceDefinitions of the cluster in {}: {e}",
                    kubeconfig.display()
                );
                Err(ExitCode::from(output::ERROR))
            }
        }
    })
}

/// Runs the command and returns its exit status.
pub fn run(args: Args) -> ExitCode {
    if let Some(j) = args.jobs
        && let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(j)
            .build_global()
    {
        eprintln!("korral validate: cannot start {j} workers: {e}");
        return ExitCode::from(output::ERROR);
    }
    let collect = |paths: &[PathBuf]| {
        intake::files::collect(paths).map_err(|e| {
            eprintln!("korral validate: {e}");
            ExitCode::from(output::ERROR)
        })
    };
    // folders holding a kustomization are built; the rest are read as files
    let (kustomizations, plain): (Vec<PathBuf>, Vec<PathBuf>) = args
        .paths
        .iter()
        .cloned()
        .partition(|p| p.is_dir() && intake::kustomize::kustomization_in(p).is_some());
    let files = match collect(&plain) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let crd_files = match collect(&args.crds) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let registry = Registry::builtin();
    let mut sources = Sources::default();
    if let Some(kc) = &args.kubeconfig {
        match read_cluster(kc, &registry) {
            Ok(n) => sources.cluster = n,
            Err(code) => return code,
        }
    }
    let definitions = load_definitions(&crd_files, &registry);
    sources.files = definitions.loaded;
    let mut report = if kustomizations.is_empty() {
        validate_files_with(&files, &args.namespace, &registry)
    } else {
        let build = BuildOptions {
            allow_remote: args.allow_remote_bases,
            ..Default::default()
        };
        match built_and_read(&kustomizations, &files, &build) {
            Ok((texts, mut build_errors)) => {
                let inputs: Vec<(&str, &[u8])> = texts
                    .iter()
                    .map(|f| (f.path.as_str(), f.data.as_slice()))
                    .collect();
                let mut r = validate_texts_with(&inputs, &args.namespace, &registry);
                build_errors.append(&mut r.diagnostics);
                r.diagnostics = build_errors;
                r
            }
            Err(e) => {
                eprintln!("korral validate: {e}");
                return ExitCode::from(output::ERROR);
            }
        }
    };
    // broken definitions first: they explain the errors of their objects
    let mut diagnostics = definitions.diagnostics;
    diagnostics.append(&mut report.diagnostics);
    report.diagnostics = diagnostics;

    let invalid_objects = report.objects - report.valid.len();
    let code = if report.has_io_errors() {
        output::ERROR
    } else if report.diagnostics.is_empty() {
        output::OK
    } else {
        output::FOUND
    };
    match args.output {
        Format::Json => {
            let v = serde_json::json!({
                "valid": report.diagnostics.is_empty(),
                "files": report.files,
                "objects": report.objects,
                "invalidObjects": invalid_objects,
                "definitions": {
                    "fromFiles": sources.files,
                    "fromCluster": sources.cluster,
                },
                "errors": report.diagnostics,
            });
            let printed = output::print_json(&v);
            if printed != ExitCode::SUCCESS {
                return printed;
            }
        }
        Format::Text => {
            for d in &report.diagnostics {
                println!("{d}");
            }
            let files = plural(report.files, "file", "files");
            let objects = plural(report.objects, "object", "objects");
            let mut extra = Vec::new();
            if !args.crds.is_empty() {
                extra.push(format!(
                    "{} from --crds",
                    plural(sources.files, "definition", "definitions")
                ));
            }
            if args.kubeconfig.is_some() {
                extra.push(format!(
                    "{} from the cluster",
                    plural(sources.cluster, "definition", "definitions")
                ));
            }
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(" (with {})", extra.join(" and "))
            };
            if report.diagnostics.is_empty() {
                println!("{files}, {objects}: all valid{extra}");
            } else {
                println!(
                    "{files}, {objects}: {} invalid, {}{extra}",
                    invalid_objects,
                    plural(report.diagnostics.len(), "error", "errors")
                );
            }
        }
    }
    ExitCode::from(code)
}

/// The objects each kustomization builds (reported under the
/// kustomization's path) and the plain files' contents; build errors are
/// returned beside them, located at the kustomization.
fn built_and_read(
    kustomizations: &[PathBuf],
    files: &[PathBuf],
    build: &BuildOptions,
) -> Result<(Vec<SourceFile>, Vec<schemas::Diagnostic>), String> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for dir in kustomizations {
        match intake::kustomize::build(dir, "", build) {
            Ok(built) => out.extend(built.into_iter().map(|mut f| {
                f.path = dir.join(&f.path).display().to_string();
                f
            })),
            Err(mut e) => {
                for d in &mut e {
                    d.file = dir.join(&d.file).display().to_string();
                }
                errors.append(&mut e);
            }
        }
    }
    for f in files {
        let data = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
        out.push(SourceFile {
            path: f.display().to_string(),
            data,
        });
    }
    Ok((out, errors))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
