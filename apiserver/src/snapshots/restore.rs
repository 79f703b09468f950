//! Restoring a snapshot into a fresh data directory (`korral snapshot
//! restore`), never into one in use: the file is verified whole first (its
//! SHA-256), everything is written under a staging folder in the target and
//! moved into place only when complete, and on any failure the target is
//! left as it was found (a folder this made is removed).
//!
//! - an embedded-store snapshot becomes `DIR/store.redb`, checked by
//!   reopening it (redb's integrity check, korral's format and counters);
//! - an etcd snapshot becomes an etcd member's data directory `DIR/etcd`,
//!   made by etcd's own tool (`etcdutl snapshot restore`, or `etcdctl
//!   snapshot restore` where etcdutl is missing, as with Debian's etcd 3.4),
//!   to be started with the same member name and peer URLs;
//! - a gzip-compressed snapshot is decompressed into the staging folder
//!   first, then treated as above;
//! - optionally the old cluster's identity (`pki/` and `tokens.csv`) is
//!   copied from its data directory, so kubeconfigs, node certificates and
//!   ServiceAccount tokens issued before stay valid.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::file::{self, Kind};

/// The etcd member a restored etcd data directory is for (etcd's
/// `--name`, `--initial-advertise-peer-urls`, `--initial-cluster`,
/// `--initial-cluster-token`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdMember {
    /// The member's name.
    pub name: String,
    /// Its peer URL.
    pub peer_url: String,
    /// The whole cluster (`NAME=URL,...`); default: this member alone.
    pub initial_cluster: Option<String>,
    /// The cluster token.
    pub cluster_token: String,
}

impl Default for EtcdMember {
    fn default() -> Self {
        EtcdMember {
            name: "default".into(),
            peer_url: "http://localhost:2380".into(),
            initial_cluster: None,
            cluster_token: "etcd-cluster".into(),
        }
    }
}

/// What to restore where.
#[derive(Clone, Debug)]
pub struct Options {
    /// The snapshot file.
    pub file: PathBuf,
    /// The data directory to restore into (absent or empty).
    pub data_dir: PathBuf,
    /// Copy `pki/` and `tokens.csv` from this (the old cluster's) data directory.
    pub pki_from: Option<PathBuf>,
    /// For etcd snapshots: the member to restore.
    pub etcd: EtcdMember,
}

impl Options {
    /// Restore `file` into `data_dir`, etcd defaults, no identity copied.
    pub fn new(file: PathBuf, data_dir: PathBuf) -> Self {
        Options {
            file,
            data_dir,
            pki_from: None,
            etcd: EtcdMember::default(),
        }
    }
}

/// What a restore made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The snapshot's format.
    pub kind: Kind,
    /// `DIR/store.redb` or `DIR/etcd`.
    pub path: PathBuf,
    /// The revision restored (for etcd: as `snapshot status` reports it).
    pub revision: Option<i64>,
    /// Keys restored (for etcd: all of etcd's, korral's and others').
    pub keys: Option<usize>,
}

/// Why a restore failed; the text names the file or directory.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RestoreError(pub String);

const STAGING: &str = ".korral-restore.partial";

/// Restores `options.file` into `options.data_dir` (see the module docs).
pub fn restore(options: &Options) -> Result<Restored, RestoreError> {
    let dir = &options.data_dir;
    let created = prepare_dir(dir)?;
    let staging = dir.join(STAGING);
    let outcome = restore_into(options, &staging).and_then(|restored| {
        publish(&staging, dir)?;
        Ok(restored)
    });
    if outcome.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        if created {
            let _ = std::fs::remove_dir(dir);
        }
    }
    outcome
}

/// Refuses a non-empty directory; creates a missing one (returns true then).
fn prepare_dir(dir: &Path) -> Result<bool, RestoreError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(RestoreError(format!(
                    "data directory {} is not empty: restore only into a new or empty directory \
                     (this never overwrites a cluster's state)",
                    dir.display()
                )));
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| {
                RestoreError(format!(
                    "cannot create data directory {}: {e}",
                    dir.display()
                ))
            })?;
            Ok(true)
        }
        Err(e) => Err(RestoreError(format!(
            "data directory {}: {e}",
            dir.display()
        ))),
    }
}

/// The staged, decompressed copy of a compressed snapshot (removed before
/// the staging folder is published).
const DECOMPRESSED: &str = ".snapshot.decompressed";

fn restore_into(options: &Options, staging: &Path) -> Result<Restored, RestoreError> {
    let original = &options.file;
    let head = file::head(original)
        .map_err(|e| RestoreError(format!("snapshot {}: {e}", original.display())))?;
    std::fs::create_dir(staging)
        .map_err(|e| RestoreError(format!("cannot create {}: {e}", staging.display())))?;
    let decompressed = staging.join(DECOMPRESSED);
    let snapshot: &Path = if file::is_gzip(&head) {
        file::decompress(original, &decompressed).map_err(|e| {
            RestoreError(format!(
                "snapshot {}: cannot decompress it (truncated or corrupt gzip): {e}",
                original.display()
            ))
        })?;
        &decompressed
    } else {
        original
    };
    // errors name the file the user gave, not the staged copy
    let verified = file::verify(snapshot).map_err(|e| match e {
        file::FileError::Corrupt { why, .. } => {
            RestoreError(format!("snapshot {}: {why}", original.display()))
        }
        file::FileError::Io { source, .. } => {
            RestoreError(format!("snapshot {}: {source}", original.display()))
        }
    })?;
    let restored = match verified.kind {
        Kind::Embedded => {
            let staged = staging.join("store.redb");
            file::copy_prefix(snapshot, verified.payload_len, &staged).map_err(|e| {
                RestoreError(format!(
                    "cannot copy snapshot {} to {}: {e}",
                    snapshot.display(),
                    staged.display()
                ))
            })?;
            let (revision, keys) = crate::store::local::snapshot::check_restored(&staged)
                .map_err(|why| RestoreError(format!("snapshot {}: {why}", original.display())))?;
            Restored {
                kind: Kind::Embedded,
                path: options.data_dir.join("store.redb"),
                revision: Some(revision),
                keys: Some(keys),
            }
        }
        Kind::Etcd => {
            let (revision, keys) = etcd_restore(snapshot, &staging.join("etcd"), &options.etcd)?;
            Restored {
                kind: Kind::Etcd,
                path: options.data_dir.join("etcd"),
                revision,
                keys,
            }
        }
    };
    if snapshot == decompressed.as_path() {
        std::fs::remove_file(&decompressed)
            .map_err(|e| RestoreError(format!("cannot remove {}: {e}", decompressed.display())))?;
    }
    if let Some(old) = &options.pki_from {
        copy_identity(old, staging)?;
    }
    Ok(restored)
}

/// Moves everything staged into the data directory, then removes the staging folder.
fn publish(staging: &Path, dir: &Path) -> Result<(), RestoreError> {
    let entries = std::fs::read_dir(staging)
        .map_err(|e| RestoreError(format!("{}: {e}", staging.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| RestoreError(format!("{}: {e}", staging.display())))?;
        let to = dir.join(entry.file_name());
        std::fs::rename(entry.path(), &to).map_err(|e| {
            RestoreError(format!(
                "cannot move {} to {}: {e}",
                entry.path().display(),
                to.display()
            ))
        })?;
    }
    std::fs::remove_dir(staging)
        .map_err(|e| RestoreError(format!("cannot remove {}: {e}", staging.display())))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Copies `OLD/pki/*` and `OLD/tokens.csv` into `to`.
fn copy_identity(old: &Path, to: &Path) -> Result<(), RestoreError> {
    let pki = old.join("pki");
    let entries = std::fs::read_dir(&pki).map_err(|e| {
        RestoreError(format!(
            "--pki-from {}: cannot read {}: {e}",
            old.display(),
            pki.display()
        ))
    })?;
    let target = to.join("pki");
    std::fs::create_dir(&target)
        .map_err(|e| RestoreError(format!("cannot create {}: {e}", target.display())))?;
    let copy = |from: &Path, dest: &Path| {
        std::fs::copy(from, dest).map(|_| ()).map_err(|e| {
            RestoreError(format!(
                "cannot copy {} to {}: {e}",
                from.display(),
                dest.display()
            ))
        })
    };
    for entry in entries {
        let entry = entry.map_err(|e| RestoreError(format!("{}: {e}", pki.display())))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            copy(&entry.path(), &target.join(entry.file_name()))?;
        }
    }
    let tokens = old.join("tokens.csv");
    if tokens.exists() {
        copy(&tokens, &to.join("tokens.csv"))?;
    }
    Ok(())
}

/// The etcd tool that restores snapshots: `etcdutl` (etcd ≥ 3.5), else `etcdctl`.
pub fn etcd_tool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["etcdutl", "etcdctl"].iter().find_map(|tool| {
        std::env::split_paths(&path)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// The arguments of `etcdutl`/`etcdctl snapshot restore` for this member.
pub fn etcd_restore_args(snapshot: &Path, data_dir: &Path, member: &EtcdMember) -> Vec<String> {
    let initial_cluster = member
        .initial_cluster
        .clone()
        .unwrap_or_else(|| format!("{}={}", member.name, member.peer_url));
    vec![
        "snapshot".into(),
        "restore".into(),
        snapshot.display().to_string(),
        format!("--data-dir={}", data_dir.display()),
        format!("--name={}", member.name),
        format!("--initial-cluster={initial_cluster}"),
        format!("--initial-cluster-token={}", member.cluster_token),
        format!("--initial-advertise-peer-urls={}", member.peer_url),
    ]
}

/// The revision and key count in `snapshot status -w json`'s answer.
pub fn parse_etcd_status(json: &[u8]) -> Option<(i64, usize)> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let revision = v.get("revision")?.as_i64()?;
    let keys = usize::try_from(v.get("totalKey")?.as_u64()?).ok()?;
    Some((revision, keys))
}

/// Restores an etcd snapshot with etcd's tool; returns what `snapshot
/// status` says of it (`None`s when the tool does not say).
fn etcd_restore(
    snapshot: &Path,
    data_dir: &Path,
    member: &EtcdMember,
) -> Result<(Option<i64>, Option<usize>), RestoreError> {
    let tool = etcd_tool().ok_or_else(|| {
        RestoreError(format!(
            "snapshot {} is an etcd snapshot: restoring it needs etcdutl or etcdctl on PATH \
             (Debian: the etcd-client package)",
            snapshot.display()
        ))
    })?;
    let out = Command::new(&tool)
        .args(etcd_restore_args(snapshot, data_dir, member))
        .env("ETCDCTL_API", "3")
        .output()
        .map_err(|e| RestoreError(format!("cannot run {}: {e}", tool.display())))?;
    if !out.status.success() {
        return Err(RestoreError(format!(
            "{} snapshot restore {} failed ({}): {}",
            tool.display(),
            snapshot.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    tracing::info!(tool = %tool.display(), snapshot = %snapshot.display(), data_dir = %data_dir.display(), "restored etcd snapshot");
    let status = Command::new(&tool)
        .args(["snapshot", "status"])
        .arg(snapshot)
        .args(["-w", "json"])
        .env("ETCDCTL_API", "3")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| parse_etcd_status(&o.stdout));
    Ok((status.map(|s| s.0), status.map(|s| s.1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_etcd_restore_names_the_member_it_makes() {
        let args = etcd_restore_args(
            Path::new("/s/snap"),
            Path::new("/d/etcd"),
            &EtcdMember {
                name: "m1".into(),
                peer_url: "http://127.0.0.1:2380".into(),
                initial_cluster: None,
                cluster_token: "t".into(),
            },
        );
        assert_eq!(
            args,
            [
                "snapshot",
                "restore",
                "/s/snap",
                "--data-dir=/d/etcd",
                "--name=m1",
                "--initial-cluster=m1=http://127.0.0.1:2380",
                "--initial-cluster-token=t",
                "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            ]
        );
    }

    #[test]
    fn etcds_status_gives_the_revision_and_keys() {
        let out = br#"{"hash":3542345,"revision":57,"totalKey":61,"totalSize":159744}"#;
        assert_eq!(parse_etcd_status(out), Some((57, 61)));
        assert_eq!(parse_etcd_status(b"Error: no such file"), None);
    }

    #[test]
    fn garbage_is_refused_naming_the_file_and_the_directory_stays_as_found() {
        let dir = tempfile::tempdir().expect("temp dir");
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"this is not a snapshot at all").expect("write");
        let existing = dir.path().join("empty");
        std::fs::create_dir(&existing).expect("mkdir");
        let err = restore(&Options::new(junk.clone(), existing.clone()))
            .expect_err("junk")
            .to_string();
        assert!(
            err.contains("junk.db") && err.contains("not a snapshot"),
            "{err}"
        );
        assert!(existing.exists(), "a directory that was there stays");
        assert_eq!(std::fs::read_dir(&existing).expect("read").count(), 0);
    }
}
