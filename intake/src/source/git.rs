//! Git sources: a bare mirror per URL under the cache folder, fetched
//! shallowly where the transport allows (libgit2's local transport does
//! not: file:// and plain paths fetch in full), and manifest files read
//! straight from the tree at a commit, without a checkout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use git2::{
    AutotagOption, FetchOptions, ObjectType, Oid, RemoteCallbacks, Repository, TreeWalkMode,
};
use git2::{Cred, TreeWalkResult};
use ring::digest::{SHA256, digest};

use crate::files::is_manifest;
use crate::kustomize::{self, BuildKey, BuildOptions, KUSTOMIZATION_FILES};
use crate::owner::hex;
use crate::source::{FetchError, GitReference, Snapshot, SourceFile, is_hidden};

/// A bare mirror of one repository.
pub struct Mirror {
    dir: PathBuf,
    url: String,
    lock: Arc<Mutex<()>>,
}

fn git_err(e: git2::Error) -> FetchError {
    FetchError::Git(e.message().to_string())
}

/// One lock per mirror folder: two sources with the same URL share a mirror,
/// and libgit2 does not serialise concurrent fetches into one repository.
fn lock_for(dir: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.entry(dir.to_path_buf()).or_default().clone()
}

/// The URL with any password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    match split_userinfo(url) {
        Some((user, Some(_), rest)) => {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            format!("{scheme}://{user}:***@{rest}")
        }
        _ => url.to_string(),
    }
}

/// `https://user:pass@host/x` → (`user`, `Some(pass)`, `host/x`).
fn split_userinfo(url: &str) -> Option<(&str, Option<&str>, &str)> {
    let after = url.split_once("://")?.1;
    let (userinfo, rest) = after.split_once('@')?;
    if userinfo.contains('/') {
        return None;
    }
    Some(match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p), rest),
        None => (userinfo, None, rest),
    })
}

impl Mirror {
    /// Opens (creating if needed) the mirror of `url` under `cache_dir/git/`.
    pub fn open(cache_dir: &Path, url: &str) -> Result<Mirror, FetchError> {
        let hash = hex(digest(&SHA256, url.as_bytes()).as_ref());
        let tail: String = url
            .trim_end_matches('/')
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("repo")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(40)
            .collect();
        let dir =
            cache_dir
                .join("git")
                .join(format!("{}-{}", &hash[..16], tail.trim_start_matches('.')));
        let lock = lock_for(&dir);
        {
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            if Repository::open_bare(&dir).is_err() {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| FetchError::Io(format!("{}: {e}", dir.display())))?;
                Repository::init_bare(&dir).map_err(git_err)?;
            }
        }
        Ok(Mirror {
            dir,
            url: url.to_string(),
            lock,
        })
    }

    /// The mirror's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn repo(&self) -> Result<Repository, FetchError> {
        Repository::open_bare(&self.dir).map_err(git_err)
    }

    fn callbacks(&self) -> RemoteCallbacks<'static> {
        let mut cb = RemoteCallbacks::new();
        let userinfo =
            split_userinfo(&self.url).map(|(u, p, _)| (u.to_string(), p.map(str::to_string)));
        cb.credentials(move |_url, username, allowed| {
            if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT)
                && let Some((user, Some(pass))) = &userinfo
            {
                return Cred::userpass_plaintext(user, pass);
            }
            if allowed.contains(git2::CredentialType::USERNAME) {
                return Cred::username(username.unwrap_or("git"));
            }
            Cred::default()
        });
        cb
    }

    /// Fetches `refspecs`, shallowly when `shallow` (falling back to a full
    /// fetch when the transport cannot), and never downloading other tags.
    fn fetch_refspecs(
        &self,
        repo: &Repository,
        refspecs: &[String],
        shallow: bool,
    ) -> Result<(), FetchError> {
        let run = |depth: Option<i32>| -> Result<(), git2::Error> {
            let mut remote = repo.remote_anonymous(&self.url)?;
            let mut fo = FetchOptions::new();
            fo.remote_callbacks(self.callbacks());
            fo.download_tags(AutotagOption::None);
            fo.update_fetchhead(false);
            if let Some(d) = depth {
                fo.depth(d);
            }
            let specs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
            remote.fetch(&specs, Some(&mut fo), None)
        };
        if shallow {
            match run(Some(1)) {
                Ok(()) => return Ok(()),
                Err(e) if e.message().to_ascii_lowercase().contains("shallow") => {
                    tracing::debug!(url = %redact(&self.url), "shallow fetch not supported here; fetching in full");
                }
                Err(e) => return Err(git_err(e)),
            }
        }
        // a full fetch into a shallow mirror must deepen it
        let depth = repo.is_shallow().then_some(i32::MAX);
        run(depth).map_err(git_err)
    }

    /// Fetches `reference` and returns the commit it points at.
    pub fn fetch(&self, reference: &GitReference) -> Result<Oid, FetchError> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let repo = self.repo()?;
        let (refspec, local) = match reference {
            GitReference::Branch(b) => (
                format!("+refs/heads/{b}:refs/heads/{b}"),
                format!("refs/heads/{b}"),
            ),
            GitReference::Tag(t) => (
                format!("+refs/tags/{t}:refs/tags/{t}"),
                format!("refs/tags/{t}"),
            ),
            GitReference::Commit(c) => {
                drop(repo);
                drop(_held);
                return self.ensure_commit(c);
            }
        };
        self.fetch_refspecs(&repo, &[refspec], true).map_err(|e| {
            FetchError::Git(format!(
                "fetching {reference} from {}: {}",
                redact(&self.url),
                strip(&e)
            ))
        })?;
        let r = repo.find_reference(&local).map_err(|_| {
            FetchError::Git(format!("{reference} not found in {}", redact(&self.url)))
        })?;
        let commit = r.peel_to_commit().map_err(git_err)?;
        Ok(commit.id())
    }

    /// Makes sure the mirror has `sha` (a full or abbreviated commit SHA):
    /// already there, fetched by id, or found after fetching every branch and tag.
    pub fn ensure_commit(&self, sha: &str) -> Result<Oid, FetchError> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let repo = self.repo()?;
        let find = |repo: &Repository| -> Option<Oid> {
            repo.revparse_single(sha)
                .ok()
                .and_then(|o| o.peel_to_commit().ok())
                .map(|c| c.id())
        };
        if let Some(oid) = find(&repo) {
            return Ok(oid);
        }
        if sha.len() == 40 {
            let by_id = self.fetch_refspecs(&repo, &[format!("+{sha}:refs/korral/fetched")], true);
            if by_id.is_ok()
                && let Some(oid) = find(&repo)
            {
                return Ok(oid);
            }
        }
        self.fetch_refspecs(
            &repo,
            &[
                "+refs/heads/*:refs/heads/*".to_string(),
                "+refs/tags/*:refs/tags/*".to_string(),
            ],
            false,
        )
        .map_err(|e| FetchError::Git(format!("fetching {}: {}", redact(&self.url), strip(&e))))?;
        find(&repo).ok_or_else(|| {
            FetchError::Git(format!("commit {sha} not found in {}", redact(&self.url)))
        })
    }

    /// The tree of `commit` at `sub` (the root tree for "").
    fn tree_at<'r>(
        &self,
        repo: &'r Repository,
        commit: &Oid,
        sub: &str,
    ) -> Result<git2::Tree<'r>, FetchError> {
        let c = repo.find_commit(*commit).map_err(git_err)?;
        let root = c.tree().map_err(git_err)?;
        if sub.is_empty() {
            return Ok(root);
        }
        let entry = root.get_path(Path::new(sub)).map_err(|_| {
            FetchError::Git(format!("path {sub:?} does not exist at commit {commit}"))
        })?;
        if entry.kind() != Some(ObjectType::Tree) {
            return Err(FetchError::Git(format!(
                "path {sub:?} is not a folder at commit {commit}"
            )));
        }
        repo.find_tree(entry.id()).map_err(git_err)
    }

    /// The name of the kustomization file in the tree of `commit` at `sub`, if any.
    pub fn kustomization(&self, commit: &Oid, sub: &str) -> Result<Option<String>, FetchError> {
        let repo = self.repo()?;
        let tree = self.tree_at(&repo, commit, sub)?;
        Ok(KUSTOMIZATION_FILES
            .iter()
            .find(|n| {
                tree.get_name(n)
                    .is_some_and(|e| e.kind() == Some(ObjectType::Blob))
            })
            .map(|n| n.to_string()))
    }

    /// Writes every file of the tree of `commit` under `dest` (what a
    /// kustomize build reads); symlinks and submodules are skipped.
    pub fn checkout(&self, commit: &Oid, dest: &Path) -> Result<(), FetchError> {
        let repo = self.repo()?;
        let tree = self.tree_at(&repo, commit, "")?;
        let mut blobs: Vec<(String, Oid, i32)> = Vec::new();
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            let name = entry.name().unwrap_or("");
            if name == ".git" || name.is_empty() {
                return TreeWalkResult::Skip;
            }
            if entry.kind() == Some(ObjectType::Blob) && entry.filemode() != 0o120000 {
                blobs.push((format!("{dir}{name}"), entry.id(), entry.filemode()));
            }
            TreeWalkResult::Ok
        })
        .map_err(git_err)?;
        for (path, id, mode) in blobs {
            let blob = repo.find_blob(id).map_err(git_err)?;
            let target = dest.join(&path);
            let io = |e: std::io::Error| FetchError::Io(format!("writing {path}: {e}"));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&target, blob.content()).map_err(io)?;
            if mode == 0o100755 {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                    .map_err(io)?;
            }
        }
        Ok(())
    }

    /// The source at `commit`: the kustomization at `sub` built (in a
    /// checkout of the commit under `work`, removed afterwards) when there
    /// is one, else the manifest files under `sub`.
    pub fn read(
        &self,
        commit: &Oid,
        sub: &str,
        work: &Path,
        build: &BuildOptions,
    ) -> Result<Snapshot, FetchError> {
        if self.kustomization(commit, sub)?.is_none() {
            return self.snapshot(commit, sub);
        }
        let run = || {
            std::fs::create_dir_all(work)
                .map_err(|e| FetchError::Io(format!("{}: {e}", work.display())))?;
            let checkout = tempfile::Builder::new()
                .prefix("build-")
                .tempdir_in(work)
                .map_err(|e| FetchError::Io(format!("{}: {e}", work.display())))?;
            self.checkout(commit, checkout.path())?;
            kustomize::build(checkout.path(), sub, build).map_err(|errors| FetchError::Build {
                revision: commit.to_string(),
                errors,
            })
        };
        // remote bases may change under a fixed commit: those builds are not kept
        let files = if build.allow_remote {
            run()?
        } else {
            let key = BuildKey {
                repository: self.dir.display().to_string(),
                commit: commit.to_string(),
                path: sub.to_string(),
                tool: build.tool,
            };
            kustomize::cached(key, run)?
        };
        Ok(Snapshot {
            revision: commit.to_string(),
            files,
        })
    }

    /// The manifest files under `sub` in the tree of `commit`, read from the
    /// object database (no checkout); hidden entries and symlinks are skipped.
    pub fn snapshot(&self, commit: &Oid, sub: &str) -> Result<Snapshot, FetchError> {
        let repo = self.repo()?;
        let tree = self.tree_at(&repo, commit, sub)?;
        let prefix = if sub.is_empty() {
            String::new()
        } else {
            format!("{sub}/")
        };
        let mut blobs: Vec<(String, Oid)> = Vec::new();
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            let name = entry.name().unwrap_or("");
            if is_hidden(name) {
                return TreeWalkResult::Skip;
            }
            if entry.kind() == Some(ObjectType::Blob)
                && entry.filemode() != 0o120000
                && is_manifest(Path::new(name))
            {
                blobs.push((format!("{prefix}{dir}{name}"), entry.id()));
            }
            TreeWalkResult::Ok
        })
        .map_err(git_err)?;
        blobs.sort();
        let mut files = Vec::with_capacity(blobs.len());
        for (path, id) in blobs {
            let blob = repo.find_blob(id).map_err(git_err)?;
            files.push(SourceFile {
                path,
                data: blob.content().to_vec(),
            });
        }
        Ok(Snapshot {
            revision: commit.to_string(),
            files,
        })
    }
}

fn strip(e: &FetchError) -> String {
    match e {
        FetchError::Git(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let o = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@korral.invalid",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git");
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    #[test]
    fn fetches_branches_tags_and_commits_and_reads_trees_without_a_checkout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("deploy/.hidden")).expect("mkdir");
        git(&work, &["init", "-q"]);
        std::fs::write(work.join("deploy/a.yaml"), "a: 1\n").expect("write");
        std::fs::write(work.join("deploy/.hidden/x.yaml"), "x").expect("write");
        std::fs::write(work.join("deploy/notes.md"), "x").expect("write");
        std::fs::write(work.join("top.yaml"), "t: 1\n").expect("write");
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "one"]);
        let first = git(&work, &["rev-parse", "HEAD"]);
        git(&work, &["tag", "v1"]);
        std::fs::write(work.join("deploy/a.yaml"), "a: 2\n").expect("write");
        git(&work, &["commit", "-q", "-am", "two"]);
        let second = git(&work, &["rev-parse", "HEAD"]);
        let url = format!("file://{}", work.display());
        let cache = dir.path().join("cache");

        let m = Mirror::open(&cache, &url).expect("mirror");
        let head = m
            .fetch(&GitReference::Branch("main".into()))
            .expect("branch");
        assert_eq!(head.to_string(), second);
        let s = m.snapshot(&head, "deploy").expect("tree");
        let names: Vec<&str> = s.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            names,
            vec!["deploy/a.yaml"],
            "hidden and non-manifest files skipped"
        );
        assert_eq!(s.files[0].data, b"a: 2\n");
        assert_eq!(s.revision, second);
        assert_eq!(m.snapshot(&head, "").expect("root").files.len(), 2);
        assert!(m.snapshot(&head, "missing").is_err());

        let tagged = m.fetch(&GitReference::Tag("v1".into())).expect("tag");
        assert_eq!(tagged.to_string(), first);
        let old = m.snapshot(&tagged, "deploy").expect("old tree");
        assert_eq!(old.files[0].data, b"a: 1\n");
        let again = Mirror::open(&cache, &url).expect("reopen");
        assert_eq!(
            again
                .ensure_commit(&first[..10])
                .expect("short sha")
                .to_string(),
            first
        );
        assert!(m.fetch(&GitReference::Branch("nope".into())).is_err());
        assert!(
            m.ensure_commit("0123456789abcdef0123456789abcdef01234567")
                .is_err()
        );
        // no working tree in the mirror
        assert!(!m.dir().join("deploy").exists());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("https://bot:s3cret@git.example/team/app.git"),
            "https://bot:***@git.example/team/app.git"
        );
        assert_eq!(
            redact("https://git.example/team/app.git"),
            "https://git.example/team/app.git"
        );
        assert_eq!(redact("/srv/repo"), "/srv/repo");
    }
}
