//! Finding manifest files: the given files, and `*.yaml`, `*.yml`, `*.json`
//! under given folders (recursively, hidden entries skipped), in a stable order.

use std::path::{Path, PathBuf};

/// A path that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct FileError {
    /// The path.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Whether a file name has a manifest extension.
pub fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Expands files and folders into the manifest files they name, sorted within
/// each folder. A file given explicitly is taken whatever its extension.
pub fn collect(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, FileError> {
    let mut out = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|source| FileError {
            path: input.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(input, &mut out)?;
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), FileError> {
    let err = |source| FileError {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    entries.sort();
    for path in entries {
        if is_hidden(&path) {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|source| FileError {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(&path, out)?;
        } else if is_manifest(&path) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_folders_recursively_in_order_skipping_hidden_and_other_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for f in [
            "b.yaml",
            "a.yml",
            "c.json",
            "notes.txt",
            ".hidden.yaml",
            "sub/d.yaml",
            ".git/e.yaml",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, "").expect("write");
        }
        let found = collect(&[root.to_path_buf()]).expect("collect");
        let names: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(root).expect("prefix").display().to_string())
            .collect();
        assert_eq!(names, vec!["a.yml", "b.yaml", "c.json", "sub/d.yaml"]);
        assert!(collect(&[root.join("missing")]).is_err());
    }
}
