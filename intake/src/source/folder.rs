//! Folder sources: every manifest file under a local folder (recursively,
//! hidden entries skipped), with a digest of names and contents as the
//! revision, so an unchanged folder is recognised without applying anything.

use std::path::Path;

use rayon::prelude::*;
use ring::digest::{Context, SHA256};

use crate::files::collect;
use crate::kustomize::{self, BuildOptions};
use crate::owner::hex;
use crate::source::{FetchError, Snapshot, SourceFile};

/// Reads a folder source: the kustomization in `dir` built with `build`
/// when there is one (the revision is then the digest of the build's
/// output, so a changed base or generator input is a new revision), else
/// the manifest files under it.
pub fn read(dir: &Path, build: &BuildOptions) -> Result<Snapshot, FetchError> {
    if kustomize::kustomization_in(dir).is_none() {
        return snapshot(dir);
    }
    let files = kustomize::build(dir, "", build).map_err(|errors| FetchError::Build {
        // the folder's own files name the revision that failed
        revision: snapshot(dir).map(|s| s.revision).unwrap_or_default(),
        errors,
    })?;
    Ok(Snapshot {
        revision: digest_of(&files),
        files,
    })
}

/// Reads the manifest files under `dir`; paths are reported relative to it.
pub fn snapshot(dir: &Path) -> Result<Snapshot, FetchError> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| FetchError::Io(format!("the folder {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(FetchError::Io(format!("{} is not a folder", dir.display())));
    }
    let paths = collect(&[dir.to_path_buf()]).map_err(|e| FetchError::Io(e.to_string()))?;
    let files: Vec<SourceFile> = paths
        .par_iter()
        .map(|p| {
            let data =
                std::fs::read(p).map_err(|e| FetchError::Io(format!("{}: {e}", p.display())))?;
            let rel = p.strip_prefix(dir).unwrap_or(p);
            Ok(SourceFile {
                path: rel.to_string_lossy().into_owned(),
                data,
            })
        })
        .collect::<Result<_, FetchError>>()?;
    Ok(Snapshot {
        revision: digest_of(&files),
        files,
    })
}

/// `sha256:` of every file's path and contents, in order.
pub fn digest_of(files: &[SourceFile]) -> String {
    let mut ctx = Context::new(&SHA256);
    for f in files {
        ctx.update(&(f.path.len() as u64).to_le_bytes());
        ctx.update(f.path.as_bytes());
        ctx.update(&(f.data.len() as u64).to_le_bytes());
        ctx.update(&f.data);
    }
    format!("sha256:{}", &hex(ctx.finish().as_ref())[..40])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_follows_contents_and_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("a.yaml"), "a: 1\n").expect("write");
        std::fs::write(dir.path().join("sub/b.yml"), "b: 1\n").expect("write");
        std::fs::write(dir.path().join(".swap.yaml"), "x").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "x").expect("write");
        let s1 = snapshot(dir.path()).expect("snapshot");
        let names: Vec<&str> = s1.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, vec!["a.yaml", "sub/b.yml"]);
        assert_eq!(snapshot(dir.path()).expect("again").revision, s1.revision);
        std::fs::write(dir.path().join("a.yaml"), "a: 2\n").expect("write");
        assert_ne!(snapshot(dir.path()).expect("changed").revision, s1.revision);
        assert!(snapshot(&dir.path().join("missing")).is_err());
    }
}
