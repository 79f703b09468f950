//! `korral validate PATH...`: decode and validate manifests on all cores and
//! report every problem with file, line, document, object and field path.

use std::path::PathBuf;
use std::process::ExitCode;

use intake::validate::validate_files;

use crate::cli::output::{self, Format};

/// Arguments of `korral validate`.
#[derive(clap::Args)]
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
    let files = match intake::files::collect(&args.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("korral validate: {e}");
            return ExitCode::from(output::ERROR);
        }
    };
    let report = validate_files(&files, &args.namespace);
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
            if report.diagnostics.is_empty() {
                println!("{files}, {objects}: all valid");
            } else {
                println!(
                    "{files}, {objects}: {} invalid, {}",
                    invalid_objects,
                    plural(report.diagnostics.len(), "error", "errors")
                );
            }
        }
    }
    ExitCode::from(code)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
