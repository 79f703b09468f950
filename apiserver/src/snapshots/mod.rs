//! Cluster snapshots (`korral snapshot`, issue 21): the whole store copied
//! into a file while the server keeps serving, kept in a directory
//! (`<data-dir>/snapshots` by default), taken on demand (the admin-only
//! `/korral/v1/snapshots` endpoint, `http/snapshots.rs`) or on a schedule
//! with retention ([`schedule`]), and restored into a fresh data directory
//! ([`restore`]).
//!
//! In the directory, snapshot `NAME` is the file `NAME` (see [`file`] for
//! the two formats) beside `NAME.json`, its [`SnapshotInfo`]. Files are
//! written as `.NAME.partial` and renamed when complete, so a snapshot that
//! is listed is whole. Snapshots without their `.json` (copied in by hand)
//! are listed from the file itself.

pub mod file;
pub mod restore;
pub mod schedule;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::store::{Store, StoreError};

/// One snapshot, as `korral snapshot ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    /// The snapshot's name (its file name in the directory).
    pub name: String,
    /// Where it is on the server's machine.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// When it was taken (RFC 3339, UTC).
    pub created: String,
    /// The store revision it holds (`None`: unknown, for a file copied in).
    pub revision: Option<i64>,
    /// `embedded` or `etcd` (`None`: not recognisable).
    pub store: Option<String>,
    /// Taken by the schedule (only those are pruned by retention).
    #[serde(default)]
    pub scheduled: bool,
    /// The file is gzip-compressed.
    #[serde(default)]
    pub compressed: bool,
}

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A name that cannot be a snapshot's.
    #[error("invalid snapshot name {name:?}: {why}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        why: String,
    },
    /// `save NAME` when NAME exists.
    #[error("snapshot {0:?} already exists")]
    Exists(String),
    /// No such snapshot.
    #[error("snapshot {0:?} not found")]
    NotFound(String),
    /// The directory or a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store could not write it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks a snapshot name: 1 to 200 of `A-Z a-z 0-9 . _ -`, not starting with
/// a dot, not ending in `.json` or `.partial` (the directory's own files).
pub fn valid_name(name: &str) -> Result<(), SnapshotError> {
    let bad = |why: &str| {
        Err(SnapshotError::InvalidName {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    if name.is_empty() || name.len() > 200 {
        return bad("use 1 to 200 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("use only letters, digits, '.', '_' and '-'");
    }
    if name.starts_with('.') {
        return bad("it may not start with '.'");
    }
    if name.ends_with(".json") || name.ends_with(".partial") {
        return bad("it may not end in .json or .partial");
    }
    Ok(())
}

/// The name of an automatically named snapshot taken at `at`:
/// `PREFIX-20261208T001500Z`.
pub fn timestamped(prefix: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{prefix}-{}", at.format("%Y%m%dT%H%M%SZ"))
}

/// The prefix of scheduled snapshots' names.
pub const SCHEDULED_PREFIX: &str = "scheduled";
/// The prefix of on-demand snapshots saved without a name.
pub const ON_DEMAND_PREFIX: &str = "on-demand";

/// Which snapshots a prune considers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection<'a> {
    /// Those the schedule took (what retention prunes after each one).
    Scheduled,
    /// Those whose names start with this (`korral snapshot prune --prefix`).
    Prefix(&'a str),
}

impl Selection<'_> {
    fn picks(&self, s: &SnapshotInfo) -> bool {
        match self {
            Selection::Scheduled => s.scheduled,
            Selection::Prefix(p) => s.name.starts_with(p),
        }
    }
}

/// The snapshots a prune drops: of those `selection` picks, all but the
/// `retention` newest (0 keeps all). Scheduled pruning never touches
/// on-demand snapshots.
pub fn to_prune(
    snapshots: &[SnapshotInfo],
    retention: usize,
    selection: Selection<'_>,
) -> Vec<String> {
    if retention == 0 {
        return Vec::new();
    }
    let mut scheduled: Vec<&SnapshotInfo> =
        snapshots.iter().filter(|s| selection.picks(s)).collect();
    // newest first; RFC 3339 UTC times of one format sort as text
    scheduled.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    scheduled
        .into_iter()
        .skip(retention)
        .map(|s| s.name.clone())
        .collect()
}

/// The snapshots of one server: a directory and the store they are taken of.
pub struct Snapshots {
    dir: PathBuf,
    store: Arc<dyn Store>,
    /// Whether snapshots are gzip-compressed unless a request says otherwise.
    compress: bool,
    /// One save, delete or prune at a time.
    lock: tokio::sync::Mutex<()>,
}

impl Snapshots {
    /// Snapshots of `store` kept in `dir` (created when the first is saved).
    pub fn new(dir: impl Into<PathBuf>, store: Arc<dyn Store>) -> Self {
        Snapshots {
            dir: dir.into(),
            store,
            compress: false,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Gzip-compresses snapshots by default (`--snapshot-compress`).
    pub fn compressing(mut self, compress: bool) -> Self {
        self.compress = compress;
        self
    }

    /// Whether snapshots are compressed unless a request says otherwise.
    pub fn compresses(&self) -> bool {
        self.compress
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes a snapshot named `name` (default `on-demand-<time>`, or
    /// `scheduled-<time>` for the schedule's), compressed if the server
    /// compresses by default, and records it.
    pub async fn save(
        &self,
        name: Option<&str>,
        scheduled: bool,
    ) -> Result<SnapshotInfo, SnapshotError> {
        self.save_with(name, scheduled, self.compress).await
    }

    /// [`Snapshots::save`], gzip-compressed or not as `compress` says.
    pub async fn save_with(
        &self,
        name: Option<&str>,
        scheduled: bool,
        compress: bool,
    ) -> Result<SnapshotInfo, SnapshotError> {
        let _guard = self.lock.lock().await;
        let fresh = !self.dir.exists();
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(io(&self.dir))?;
        // a directory made here is the owner's only (one given may be shared on purpose)
        if fresh {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .await
                .map_err(io(&self.dir))?;
        }
        let now = chrono::Utc::now();
        let name = match name {
            Some(n) => {
                valid_name(n)?;
                if self.dir.join(n).exists() {
                    return Err(SnapshotError::Exists(n.to_string()));
                }
                n.to_string()
            }
            None => {
                let prefix = if scheduled {
                    SCHEDULED_PREFIX
                } else {
                    ON_DEMAND_PREFIX
                };
                let base = timestamped(prefix, now);
                let mut name = base.clone();
                let mut n = 1;
                while self.dir.join(&name).exists() {
                    name = format!("{base}-{n}");
                    n += 1;
                }
                name
            }
        };
        let partial = self.dir.join(format!(".{name}.partial"));
        let _ = tokio::fs::remove_file(&partial).await;
        let started = std::time::Instant::now();
        let written = match self.store.snapshot(&partial).await {
            Ok(w) => w,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e.into());
            }
        };
        let path = self.dir.join(&name);
        let finished = if compress {
            let packed = self.dir.join(format!(".{name}.gz.partial"));
            let _ = tokio::fs::remove_file(&packed).await;
            let (from, to) = (partial.clone(), packed.clone());
            let outcome = tokio::task::spawn_blocking(move || file::compress(&from, &to))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            let _ = tokio::fs::remove_file(&partial).await;
            if let Err(e) = outcome {
                let _ = tokio::fs::remove_file(&packed).await;
                return Err(io(&packed)(e));
            }
            packed
        } else {
            partial
        };
        tokio::fs::rename(&finished, &path)
            .await
            .map_err(io(&path))?;
        let size = tokio::fs::metadata(&path).await.map_err(io(&path))?.len();
        let info = SnapshotInfo {
            path: path.display().to_string(),
            name,
            size,
            created: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            revision: Some(written.revision),
            store: Some(written.backend.to_string()),
            scheduled,
            compressed: compress,
        };
        self.write_info(&info).await?;
        sync_dir(&self.dir);
        tracing::info!(
            snapshot = %info.name,
            path = %info.path,
            size = info.size,
            revision = written.revision,
            store = written.backend,
            compressed = compress,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "saved snapshot"
        );
        Ok(info)
    }

    async fn write_info(&self, info: &SnapshotInfo) -> Result<(), SnapshotError> {
        let path = self.dir.join(format!("{}.json", info.name));
        let partial = self.dir.join(format!(".{}.json.partial", info.name));
        let text = serde_json::to_vec_pretty(info).map_err(|e| SnapshotError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let _ = tokio::fs::remove_file(&partial).await;
        let mut file = file::create_private(&partial).map_err(io(&partial))?;
        std::io::Write::write_all(&mut file, &text).map_err(io(&partial))?;
        tokio::fs::rename(&partial, &path).await.map_err(io(&path))
    }

    /// Every snapshot in the directory, oldest first.
    pub async fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || list_dir(&dir))
            .await
            .map_err(|e| SnapshotError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other(e),
            })?
    }

    /// Deletes a snapshot (its file and record).
    pub async fn delete(&self, name: &str) -> Result<SnapshotInfo, SnapshotError> {
        valid_name(name)?;
        let _guard = self.lock.lock().await;
        self.remove(name).await
    }

    async fn remove(&self, name: &str) -> Result<SnapshotInfo, SnapshotError> {
        let path = self.dir.join(name);
        let info = self
            .list()
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| SnapshotError::NotFound(name.to_string()))?;
        tokio::fs::remove_file(&path).await.map_err(io(&path))?;
        let record = self.dir.join(format!("{name}.json"));
        match tokio::fs::remove_file(&record).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&record)(e)),
        }
        tracing::info!(snapshot = name, "deleted snapshot");
        Ok(info)
    }

    /// Deletes the snapshots `selection` picks beyond the `retention` newest;
    /// returns their names.
    pub async fn prune(
        &self,
        retention: usize,
        selection: Selection<'_>,
    ) -> Result<Vec<String>, SnapshotError> {
        let _guard = self.lock.lock().await;
        let doomed = to_prune(&self.list().await?, retention, selection);
        for name in &doomed {
            self.remove(name).await?;
        }
        Ok(doomed)
    }
}

/// Makes renames in `dir` durable (best effort).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn list_dir(dir: &Path) -> Result<Vec<SnapshotInfo>, SnapshotError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if valid_name(&name).is_err() || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let meta = entry.metadata().map_err(io(&path))?;
        let record = dir.join(format!("{name}.json"));
        let recorded = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice::<SnapshotInfo>(&b).ok())
            .filter(|i| i.name == name);
        let info = match recorded {
            Some(mut i) => {
                i.size = meta.len();
                i.path = path.display().to_string();
                i
            }
            None => SnapshotInfo {
                name,
                path: path.display().to_string(),
                size: meta.len(),
                created: meta
                    .modified()
                    .map(chrono::DateTime::<chrono::Utc>::from)
                    .unwrap_or_else(|_| chrono::Utc::now())
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                revision: None,
                store: sniff(&path).map(|k| k.as_str().to_string()),
                scheduled: false,
                compressed: file::head(&path).is_ok_and(|h| file::is_gzip(&h)),
            },
        };
        out.push(info);
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// The format a file's first bytes announce (no checksum check).
fn sniff(path: &Path) -> Option<file::Kind> {
    use std::io::Read;
    let mut head = [0u8; 20];
    let mut f = std::fs::File::open(path).ok()?;
    f.read_exact(&mut head).ok()?;
    if head.starts_with(&file::REDB_MAGIC) {
        Some(file::Kind::Embedded)
    } else if file::is_bolt(&head) {
        Some(file::Kind::Etcd)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LocalOptions, LocalStore};

    fn info(name: &str, created: &str, scheduled: bool) -> SnapshotInfo {
        SnapshotInfo {
            name: name.into(),
            path: String::new(),
            size: 1,
            created: created.into(),
            revision: Some(1),
            store: Some("embedded".into()),
            scheduled,
            compressed: false,
        }
    }

    #[test]
    fn names_are_plain_file_names() {
        for ok in ["nightly", "on-demand-20261208T001500Z", "a.b_c-1"] {
            assert!(valid_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "../etc",
            "a/b",
            "x.json",
            "x.partial",
            "sp ace",
            &"x".repeat(201),
        ] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-08T00:15:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        assert_eq!(timestamped("scheduled", at), "scheduled-20261208T001500Z");
    }

    #[test]
    fn retention_keeps_the_newest_scheduled_snapshots_and_every_on_demand_one() {
        let all = vec![
            info("scheduled-1", "2026-12-08T00:00:01Z", true),
            info("mine", "2026-12-08T00:00:02Z", false),
            info("scheduled-3", "2026-12-08T00:00:03Z", true),
            info("scheduled-4", "2026-12-08T00:00:04Z", true),
            info("scheduled-2", "2026-12-08T00:00:02Z", true),
        ];
        let s = Selection::Scheduled;
        assert_eq!(to_prune(&all, 2, s), vec!["scheduled-2", "scheduled-1"]);
        assert_eq!(to_prune(&all, 4, s), Vec::<String>::new());
        assert_eq!(to_prune(&all, 0, s), Vec::<String>::new());
        assert_eq!(to_prune(&all, 1, s).len(), 3);
        // by name prefix, on-demand ones included
        // (at equal times, the name breaks the tie: scheduled-2 is newer than mine)
        assert_eq!(
            to_prune(&all, 3, Selection::Prefix("")),
            vec!["mine", "scheduled-1"]
        );
        assert_eq!(
            to_prune(&all, 1, Selection::Prefix("mi")),
            Vec::<String>::new()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_embedded_snapshot_holds_the_data_of_its_moment_and_restores() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = LocalOptions::new(dir.path().join("store.redb"));
        options.compaction = None;
        let store = Arc::new(LocalStore::open(options).await.expect("open"));
        for i in 0..50 {
            store
                .create(
                    &format!("configmaps/default/c{i}"),
                    format!("{i}").into_bytes(),
                )
                .await
                .expect("create");
        }
        let snapshots = Snapshots::new(dir.path().join("snapshots"), store.clone());
        let saved = snapshots.save(Some("first"), false).await.expect("save");
        assert_eq!(saved.revision, Some(51));
        assert_eq!(saved.store.as_deref(), Some("embedded"));
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &str| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode(&saved.path), 0o600, "a snapshot holds every Secret");
            assert_eq!(mode(&format!("{}", snapshots.dir().display())), 0o700);
        }
        store
            .create("configmaps/default/later", b"x".to_vec())
            .await
            .expect("create");
        assert!(matches!(
            snapshots.save(Some("first"), false).await,
            Err(SnapshotError::Exists(_))
        ));
        let listed = snapshots.list().await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0], saved);

        let target = dir.path().join("restored");
        let restored = restore::restore(&restore::Options::new(
            PathBuf::from(&saved.path),
            target.clone(),
        ))
        .expect("restore");
        assert_eq!(restored.revision, Some(51));
        assert_eq!(restored.keys, Some(50));
        let reopened = LocalStore::open(LocalOptions::new(target.join("store.redb")))
            .await
            .expect("reopen");
        assert_eq!(reopened.current_revision().await.expect("revision"), 51);
        assert!(
            reopened
                .get("configmaps/default/later")
                .await
                .expect("get")
                .is_none()
        );
        let kv = reopened
            .get("configmaps/default/c7")
            .await
            .expect("get")
            .expect("present");
        assert_eq!(kv.value, b"7");
        // the restored store takes writes from its revision on
        let next = reopened
            .create("configmaps/default/new", b"n".to_vec())
            .await
            .expect("create");
        assert_eq!(next.mod_revision, 52);
        reopened.close().await;

        // a non-empty data directory is refused, and left as it was
        let err = restore::restore(&restore::Options::new(
            PathBuf::from(&saved.path),
            target.clone(),
        ))
        .expect_err("not empty");
        assert!(err.to_string().contains("not empty"), "{err}");

        let deleted = snapshots.delete("first").await.expect("delete");
        assert_eq!(deleted.name, "first");
        assert!(snapshots.list().await.expect("list").is_empty());
        assert!(matches!(
            snapshots.delete("first").await,
            Err(SnapshotError::NotFound(_))
        ));
    }

    /// Snapshots taken while a writer goes on each hold exactly the writes
    /// up to their revision: a point in time, never a torn copy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshots_taken_during_writes_are_points_in_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = LocalOptions::new(dir.path().join("store.redb"));
        options.compaction = None;
        let store = Arc::new(LocalStore::open(options).await.expect("open"));
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..2000 {
                    store
                        .create(&format!("k/{i:05}"), vec![b'x'; 200])
                        .await
                        .expect("create");
                }
            })
        };
        let snapshots = Snapshots::new(dir.path().join("snapshots"), store.clone());
        let mut taken = Vec::new();
        while !writer.is_finished() && taken.len() < 5 {
            taken.push(snapshots.save(None, true).await.expect("save"));
        }
        writer.await.expect("writer");
        assert!(
            taken
                .iter()
                .any(|i| matches!(i.revision, Some(r) if r > 1 && r < 2001)),
            "a snapshot taken while writes went on: {taken:?}"
        );
        for (i, info) in taken.iter().enumerate() {
            let target = dir.path().join(format!("restored-{i}"));
            let restored =
                restore::restore(&restore::Options::new(PathBuf::from(&info.path), target))
                    .expect("restore");
            let revision = restored.revision.expect("revision");
            assert_eq!(Some(revision), info.revision);
            // a fresh store is at revision 1; each create adds one key and one revision
            assert_eq!(
                restored.keys,
                Some(usize::try_from(revision - 1).expect("revision")),
                "{info:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_compressed_snapshot_is_smaller_and_restores_the_same() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(
            LocalStore::open(LocalOptions::new(dir.path().join("store.redb")))
                .await
                .expect("open"),
        );
        for i in 0..200 {
            let value = format!("{{\"kind\":\"ConfigMap\",\"data\":{{\"n\":\"{i}\"}}}}");
            store
                .create(&format!("configmaps/default/c{i}"), value.into_bytes())
                .await
                .expect("create");
        }
        let snapshots =
            Snapshots::new(dir.path().join("snapshots"), store.clone()).compressing(true);
        let packed = snapshots.save(Some("packed"), false).await.expect("save");
        let plain = snapshots
            .save_with(Some("plain"), false, false)
            .await
            .expect("save");
        assert!(packed.compressed && !plain.compressed);
        assert!(packed.size * 4 < plain.size, "{packed:?} vs {plain:?}");
        let from_packed = restore::restore(&restore::Options::new(
            PathBuf::from(&packed.path),
            dir.path().join("a"),
        ))
        .expect("restore packed");
        let from_plain = restore::restore(&restore::Options::new(
            PathBuf::from(&plain.path),
            dir.path().join("b"),
        ))
        .expect("restore plain");
        assert_eq!(from_packed.revision, from_plain.revision);
        assert_eq!(from_packed.keys, Some(200));
        // no decompressed leftovers beside the store
        let names: Vec<String> = std::fs::read_dir(dir.path().join("a"))
            .expect("read")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        assert_eq!(names, ["store.redb"]);
        // a truncated compressed file is refused, naming it
        let bytes = std::fs::read(&packed.path).expect("read");
        let cut = dir.path().join("cut.gz");
        std::fs::write(&cut, &bytes[..bytes.len() - 50]).expect("write");
        let err = restore::restore(&restore::Options::new(cut.clone(), dir.path().join("c")))
            .expect_err("truncated")
            .to_string();
        assert!(err.contains("cut.gz"), "{err}");
        assert!(!dir.path().join("c").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_truncated_snapshot_restores_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(
            LocalStore::open(LocalOptions::new(dir.path().join("store.redb")))
                .await
                .expect("open"),
        );
        store.create("k", b"v".to_vec()).await.expect("create");
        let snapshots = Snapshots::new(dir.path().join("snapshots"), store.clone());
        let saved = snapshots.save(None, false).await.expect("save");
        assert!(saved.name.starts_with("on-demand-"), "{}", saved.name);
        let bytes = std::fs::read(&saved.path).expect("read");
        let cut = dir.path().join("cut");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
        let target = dir.path().join("restored");
        let err = restore::restore(&restore::Options::new(cut.clone(), target.clone()))
            .expect_err("truncated")
            .to_string();
        assert!(err.contains(&cut.display().to_string()), "{err}");
        assert!(err.contains("truncated"), "{err}");
        assert!(!target.exists(), "nothing is left behind");
    }
}
