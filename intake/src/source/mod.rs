//! Sources of manifests: where a GitSource points (a Git repository at a
//! ref, or a local folder) and the snapshot of its manifest files at one
//! revision.

pub mod folder;
pub mod git;
pub mod watch;

use std::path::{Path, PathBuf};

use schemas::Diagnostic;
use schemas::korral::GitSourceSpec;

use crate::kustomize::BuildOptions;

/// One manifest file of a snapshot.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path reported in errors: relative to the repository root (Git) or the folder.
    pub path: String,
    /// The contents.
    pub data: Vec<u8>,
}

/// All manifest files of a source at one revision.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// A commit SHA (Git) or `sha256:…` of the contents (folder).
    pub revision: String,
    /// The files, in path order.
    pub files: Vec<SourceFile>,
}

/// A Git reference to follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GitReference {
    /// The tip of a branch.
    Branch(String),
    /// A tag.
    Tag(String),
    /// A fixed commit (full or abbreviated SHA).
    Commit(String),
}

impl std::fmt::Display for GitReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitReference::Branch(b) => write!(f, "branch {b}"),
            GitReference::Tag(t) => write!(f, "tag {t}"),
            GitReference::Commit(c) => write!(f, "commit {c}"),
        }
    }
}

/// Where a source reads from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A Git repository.
    Git {
        /// https://, file://, or a local path.
        url: String,
        /// What to follow.
        reference: GitReference,
        /// A sub-folder of the repository ("" for the whole tree).
        path: String,
    },
    /// A local folder.
    Folder {
        /// The folder.
        path: PathBuf,
    },
}

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The spec names no usable source.
    #[error("{0}")]
    Spec(String),
    /// Git failed.
    #[error("git: {0}")]
    Git(String),
    /// The folder could not be read.
    #[error("{0}")]
    Io(String),
    /// A kustomization did not build (or was refused): every problem, located.
    #[error("{}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Build {
        /// The revision that did not build.
        revision: String,
        /// Every problem.
        errors: Vec<Diagnostic>,
    },
}

impl Location {
    /// The location a GitSource's spec names (defaults as the API server applies them).
    pub fn from_spec(spec: &GitSourceSpec) -> Result<Location, FetchError> {
        let path = spec.path.clone().unwrap_or_default();
        match spec.url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => {
                let r = spec.ref_.clone().unwrap_or_default();
                let reference = if let Some(c) = r.commit.filter(|c| !c.is_empty()) {
                    GitReference::Commit(c)
                } else if let Some(t) = r.tag.filter(|t| !t.is_empty()) {
                    GitReference::Tag(t)
                } else {
                    GitReference::Branch(
                        r.branch
                            .filter(|b| !b.is_empty())
                            .unwrap_or_else(|| "main".into()),
                    )
                };
                let sub = path.trim_matches('/').to_string();
                if sub.split('/').any(|s| s == "..") {
                    return Err(FetchError::Spec(format!(
                        "spec.path {path:?} must stay inside the repository"
                    )));
                }
                Ok(Location::Git {
                    url: url.to_string(),
                    reference,
                    path: sub,
                })
            }
            None if !path.is_empty() => Ok(Location::Folder {
                path: PathBuf::from(path),
            }),
            None => Err(FetchError::Spec(
                "the source has neither spec.url nor spec.path".into(),
            )),
        }
    }

    /// A short description for messages: the URL and ref, or the folder.
    pub fn describe(&self) -> String {
        match self {
            Location::Git {
                url,
                reference,
                path,
            } if path.is_empty() => format!("{url} ({reference})"),
            Location::Git {
                url,
                reference,
                path,
            } => format!("{url} ({reference}, path {path})"),
            Location::Folder { path } => path.display().to_string(),
        }
    }
}

/// Where checkouts for kustomize builds go under the cache folder.
fn build_dir(cache_dir: &Path) -> std::path::PathBuf {
    cache_dir.join("builds")
}

/// Reads the current revision of a source: fetches a Git repository into its
/// mirror under `cache_dir` (blocking; run it off the async workers). A
/// path holding a kustomization is built with `build`.
pub fn fetch(
    location: &Location,
    cache_dir: &Path,
    build: &BuildOptions,
) -> Result<Snapshot, FetchError> {
    match location {
        Location::Git {
            url,
            reference,
            path,
        } => {
            let mirror = git::Mirror::open(cache_dir, url)?;
            let commit = mirror.fetch(reference)?;
            mirror.read(&commit, path, &build_dir(cache_dir), build)
        }
        Location::Folder { path } => folder::read(path, build),
    }
}

/// Reads a source at a given revision (for drift against the last applied
/// revision): a Git commit from the mirror (fetched if missing); a folder
/// only if its contents still have that digest.
pub fn fetch_revision(
    location: &Location,
    cache_dir: &Path,
    revision: &str,
    build: &BuildOptions,
) -> Result<Snapshot, FetchError> {
    match location {
        Location::Git { url, path, .. } => {
            let mirror = git::Mirror::open(cache_dir, url)?;
            let commit = mirror.ensure_commit(revision)?;
            mirror.read(&commit, path, &build_dir(cache_dir), build)
        }
        Location::Folder { path } => {
            let s = folder::read(path, build)?;
            if s.revision == revision {
                Ok(s)
            } else {
                Err(FetchError::Io(format!(
                    "the folder {} changed since revision {revision} was applied",
                    path.display()
                )))
            }
        }
    }
}

/// Whether a path component is hidden (`.git`, `.editor-swap.yaml`).
pub(crate) fn is_hidden(component: &str) -> bool {
    component.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::korral::GitRef;

    #[test]
    fn locations_from_specs() {
        let spec = GitSourceSpec {
            url: Some("file:///r.git".into()),
            path: Some("/deploy/".into()),
            ..Default::default()
        };
        assert_eq!(
            Location::from_spec(&spec).expect("git"),
            Location::Git {
                url: "file:///r.git".into(),
                reference: GitReference::Branch("main".into()),
                path: "deploy".into()
            }
        );
        let spec = GitSourceSpec {
            url: Some("https://x/r.git".into()),
            ref_: Some(GitRef {
                tag: Some("v1".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            Location::from_spec(&spec).expect("tag"),
            Location::Git { reference: GitReference::Tag(t), .. } if t == "v1"
        ));
        let spec = GitSourceSpec {
            path: Some("/srv/manifests".into()),
            ..Default::default()
        };
        assert_eq!(
            Location::from_spec(&spec).expect("folder"),
            Location::Folder {
                path: "/srv/manifests".into()
            }
        );
        assert!(Location::from_spec(&GitSourceSpec::default()).is_err());
        let escape = GitSourceSpec {
            url: Some("file:///r.git".into()),
            path: Some("a/../../etc".into()),
            ..Default::default()
        };
        assert!(Location::from_spec(&escape).is_err());
    }
}
