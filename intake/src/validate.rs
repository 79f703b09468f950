//! Validating manifest files on all cores: read, decode and check each file
//! in parallel, then look for objects defined twice across all of them.

use std::path::PathBuf;

use rayon::prelude::*;
use schemas::kinds::Kinds;
use schemas::{Class, Diagnostic, Registry, Valid, check::duplicates, decode_file};

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
    let kinds = Registry::builtin().snapshot();
    let per_file: Vec<FileVerdict> = files
        .par_iter()
        .map(|path| {
            let name = path.display().to_string();
            match std::fs::read(path) {
                Ok(bytes) => check_text(&name, &bytes, &kinds),
                Err(e) => FileVerdict::failed(io_diag(&name, format!("cannot read: {e}"))),
            }
        })
        .collect();
    combine(per_file, default_namespace)
}

/// Decodes and validates files already in memory (a Git tree, a folder
/// snapshot): `(name, contents)` pairs, checked on all cores.
pub fn validate_texts(files: &[(&str, &[u8])], default_namespace: &str) -> Report {
    let kinds = Registry::builtin().snapshot();
    let per_file: Vec<FileVerdict> = files
        .par_iter()
        .map(|(name, bytes)| check_text(name, bytes, &kinds))
        .collect();
    combine(per_file, default_namespace)
}

/// What one file yielded.
struct FileVerdict {
    objects: usize,
    valid: Vec<Valid>,
    diagnostics: Vec<Diagnostic>,
}

impl FileVerdict {
    fn failed(d: Diagnostic) -> Self {
        FileVerdict {
            objects: 0,
            valid: Vec::new(),
            diagnostics: vec![d],
        }
    }
}

fn check_text(name: &str, bytes: &[u8], kinds: &Kinds) -> FileVerdict {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return FileVerdict::failed(io_diag(
                name,
                format!(
                    "not UTF-8 text (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            ));
        }
    };
    let decoded = decode_file(name, text);
    let mut diagnostics = decoded.errors;
    let objects = decoded.manifests.len() + diagnostics.len();
    let mut valid = Vec::new();
    for m in decoded.manifests {
        match schemas::check_manifest(m, kinds) {
            Ok(v) => valid.push(v),
            Err(d) => diagnostics.extend(d),
        }
    }
    FileVerdict {
        objects,
        valid,
        diagnostics,
    }
}

fn combine(per_file: Vec<FileVerdict>, default_namespace: &str) -> Report {
    let mut report = Report {
        files: per_file.len(),
        ..Default::default()
    };
    for f in per_file {
        report.objects += f.objects;
        report.valid.extend(f.valid);
        report.diagnostics.extend(f.diagnostics);
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
