//! Validating manifest files on all cores: read, decode and check each file
//! in parallel, then look for objects defined twice across all of them.

use std::path::PathBuf;

use rayon::prelude::*;
use schemas::{Class, Diagnostic, Valid, check::duplicates, decode_file};

/// The verdict on a set of files.
#[derive(Debug, Default)]
pub struct Report {
    /// Files read.
    pub files: usize,
    /// Objects found (valid or not).
    pub objects: usize,
    /// Objects that passed.
    pub valid: Vec<Valid>,
    /// Every problem, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// Whether any file could not be read.
    pub fn has_io_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.class == Class::Io)
    }
}

/// Reads, decodes and validates files; `default_namespace` places namespaced
/// objects that name none (for the duplicate check).
pub fn validate_files(files: &[PathBuf], default_namespace: &str) -> Report {
    let per_file: Vec<(usize, Vec<Valid>, Vec<Diagnostic>)> = files
        .par_iter()
        .map(|path| {
            let name = path.display().to_string();
            let text = match std::fs::read(path) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(t) => t,
                    Err(e) => {
                        return (
                            0,
                            Vec::new(),
                            vec![io_diag(
                                &name,
                                format!(
                                    "not UTF-8 text (invalid byte at offset {})",
                                    e.utf8_error().valid_up_to()
                                ),
                            )],
                        );
                    }
                },
                Err(e) => {
                    return (
                        0,
                        Vec::new(),
                        vec![io_diag(&name, format!("cannot read: {e}"))],
                    );
                }
            };
            let decoded = decode_file(&name, &text);
            let mut diags = decoded.errors;
            let objects = decoded.manifests.len() + diags.len();
            let mut valid = Vec::new();
            for m in decoded.manifests {
                match schemas::check_manifest(m) {
                    Ok(v) => valid.push(v),
                    Err(d) => diags.extend(d),
                }
            }
            (objects, valid, diags)
        })
        .collect();
    let mut report = Report {
        files: files.len(),
        ..Default::default()
    };
    for (objects, valid, diags) in per_file {
        report.objects += objects;
        report.valid.extend(valid);
        report.diagnostics.extend(diags);
    }
    report
        .diagnostics
        .extend(duplicates(&report.valid, default_namespace));
    report
}

fn io_diag(file: &str, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_string(),
        line: 0,
        column: 0,
        document: None,
        object: None,
        path: None,
        class: Class::Io,
        message,
    }
}
