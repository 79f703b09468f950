//! `LocalStore`: the embedded backend, one redb file, the default.
//!
//! - Writes go to one writer thread ([`writer`]) that group-commits them:
//!   each write bumps the global revision by one and appends the change (with
//!   the value before it) to the `history` table in the same transaction as
//!   the new value, so history and data can never disagree, even after kill -9.
//! - Reads run on tokio's blocking pool against a redb snapshot; a list at an
//!   older revision is the current data with later history undone ([`tables`]).
//! - Watches are fed from memory (a broadcast of committed events) and replay
//!   from history when they start behind or fall behind ([`watch`]).
//! - Compaction drops history below a revision; a periodic compactor keeps it
//!   bounded ([`CompactionPolicy`]).
//! - Snapshots copy one read transaction's data into a new file while
//!   writes go on ([`snapshot`]).

mod codec;
pub mod snapshot;
mod tables;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::{broadcast, mpsc, oneshot};

use self::tables::{FORMAT, HISTORY, KV, META, META_COMPACTED, META_FORMAT, META_REVISION, db_err};
use self::writer::{Op, Reply, Request, Writer};
use crate::store::{
    Deleted, Event, KeyValue, ListRequest, ListResponse, Result, Revision, SnapshotWritten, Store,
    StoreError, WatchStream,
};

/// When the embedded store drops old history by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// How often the compactor runs. Each run compacts to the revision that
    /// was current at the previous run, so history always covers at least the
    /// last interval (Kubernetes compacts etcd this way, every 5 minutes).
    pub interval: Duration,
    /// Each run also compacts enough to keep at most this many revisions of
    /// history, however recent.
    pub max_revisions: i64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            interval: Duration::from_secs(5 * 60),
            max_revisions: 100_000,
        }
    }
}

/// How to open a [`LocalStore`].
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// The store file (created, with its directory, if missing).
    pub path: PathBuf,
    /// Periodic compaction; `None` keeps all history until `compact` is called.
    pub compaction: Option<CompactionPolicy>,
    /// A watch that delivered nothing for this long sends `Progress`.
    pub progress_interval: Duration,
    /// Committed events kept in memory for watchers; a watcher further behind
    /// re-reads history from the file instead.
    pub watch_buffer: usize,
}

impl LocalOptions {
    /// The defaults for a store at `path`: compaction every 5 minutes,
    /// progress every 5 seconds, 4096 events buffered for watchers.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LocalOptions {
            path: path.into(),
            compaction: Some(CompactionPolicy::default()),
            progress_interval: Duration::from_secs(5),
            watch_buffer: 4096,
        }
    }
}

/// What the writer thread, the readers and the watchers share.
pub(crate) struct Shared {
    db: Database,
    /// The revision of the last commit (updated after commit, before its
    /// events are published).
    revision: AtomicI64,
    /// The compacted revision, likewise.
    compacted: AtomicI64,
}

/// The embedded store: one redb file, one writer thread.
pub struct LocalStore {
    shared: Arc<Shared>,
    requests: std_mpsc::Sender<Request>,
    events: broadcast::Sender<Arc<Event>>,
    writer: JoinHandle<()>,
    path: PathBuf,
    progress_interval: Duration,
}

impl LocalStore {
    /// Opens (or creates) the store file and starts its writer thread.
    pub async fn open(options: LocalOptions) -> Result<LocalStore> {
        let path = options.path.clone();
        let (db, revision, compacted) = tokio::task::spawn_blocking(move || open_db(&path))
            .await
            .map_err(|e| StoreError::Internal(format!("opening the store failed: {e}")))??;
        let shared = Arc::new(Shared {
            db,
            revision: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
        });
        let (requests, rx) = std_mpsc::channel();
        let (events, _) = broadcast::channel(options.watch_buffer.max(1));
        let writer = Writer {
            shared: shared.clone(),
            requests: rx,
            events: events.clone(),
            compaction: options.compaction.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("korral-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| {
                StoreError::Internal(format!("cannot start the store writer thread: {e}"))
            })?;
        tracing::info!(path = %options.path.display(), revision, compacted, "opened embedded store");
        Ok(LocalStore {
            shared,
            requests,
            events,
            writer,
            path: options.path,
            progress_interval: options.progress_interval,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the writer after the writes already submitted and waits for it,
    /// so the file can be reopened. Watches end once they notice.
    pub async fn close(self) {
        let LocalStore {
            shared,
            requests,
            events,
            writer,
            ..
        } = self;
        drop(requests);
        drop(events);
        drop(shared);
        let joined = tokio::task::spawn_blocking(move || writer.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::error!("the store writer thread panicked");
        }
    }

    async fn submit(&self, op: Op) -> Result<Reply> {
        let (reply, outcome) = oneshot::channel();
        self.requests
            .send(Request { op, reply })
            .map_err(|_| StoreError::Unavailable("the store's writer thread has stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Unavailable("the store's writer thread has stopped".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let txn = shared.db.begin_read().map_err(db_err)?;
            f(&txn)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("store read task failed: {e}")))?
    }
}

/// Opens the file, creating the tables and counters of a fresh store, and
/// returns the current and compacted revisions.
fn open_db(path: &Path) -> Result<(Database, Revision, Revision)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Internal(format!(
                "cannot create store directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let db = Database::create(path).map_err(|e| {
        let hint = match e {
            redb::DatabaseError::DatabaseAlreadyOpen => " (is another korral server using it?)",
            _ => "",
        };
        StoreError::Internal(format!(
            "cannot open store file {}: {e}{hint}",
            path.display()
        ))
    })?;
    let txn = db.begin_write().map_err(db_err)?;
    let (revision, compacted) = {
        txn.open_table(KV).map_err(db_err)?;
        let history = txn.open_table(HISTORY).map_err(db_err)?;
        let mut meta = txn.open_table(META).map_err(db_err)?;
        let format = meta.get(META_FORMAT).map_err(db_err)?.map(|v| v.value());
        match format {
            None => {
                // A fresh store starts at revision 1, like etcd.
                meta.insert(META_FORMAT, FORMAT).map_err(db_err)?;
                meta.insert(META_REVISION, 1).map_err(db_err)?;
                meta.insert(META_COMPACTED, 0).map_err(db_err)?;
            }
            Some(FORMAT) => {}
            Some(other) => {
                return Err(StoreError::Internal(format!(
                    "store file {} has format {other}; this korral reads format {FORMAT}",
                    path.display()
                )));
            }
        }
        let get = |name: &str| -> Result<Revision> {
            meta.get(name)
                .map_err(db_err)?
                .map(|v| v.value())
                .ok_or_else(|| StoreError::Internal(format!("store meta {name:?} is missing")))
        };
        let (revision, compacted) = (get(META_REVISION)?, get(META_COMPACTED)?);
        let last = history.last().map_err(db_err)?.map(|(k, _)| k.value());
        if let Some(last) = last
            && last != revision
        {
            return Err(StoreError::Internal(format!(
                "store file {} is inconsistent: revision {revision} but history ends at {last}",
                path.display()
            )));
        }
        (revision, compacted)
    };
    txn.commit().map_err(db_err)?;
    Ok((db, revision, compacted))
}

#[async_trait]
impl Store for LocalStore {
    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.revision.load(Ordering::Acquire))
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.compacted.load(Ordering::Acquire))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        // a point read is a few microseconds on redb's page cache: done on
        // the caller's thread, as handing it to the blocking pool costs more
        // (a thread wake-up and two context switches) than the read itself
        let txn = self.shared.db.begin_read().map_err(db_err)?;
        tables::get(&txn, key)
    }

    async fn list(&self, req: ListRequest) -> Result<ListResponse> {
        self.read(move |txn| tables::list(txn, &req)).await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        match self
            .submit(Op::Create {
                key: key.to_string(),
                value,
            })
            .await?
        {
            Reply::Kv(kv) => Ok(kv),
            _ => Err(StoreError::Internal("create got the wrong reply".into())),
        }
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        match self
            .submit(Op::Update {
                key: key.to_string(),
                value,
                expected,
            })
            .await?
        {
            Reply::Kv(kv) => Ok(kv),
            _ => Err(StoreError::Internal("update got the wrong reply".into())),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        match self
            .submit(Op::Delete {
                key: key.to_string(),
                expected,
            })
            .await?
        {
            Reply::Deleted(d) => Ok(d),
            _ => Err(StoreError::Internal("delete got the wrong reply".into())),
        }
    }

    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream> {
        // Subscribe before anything is read: see `watch`'s module docs.
        let live = self.events.subscribe();
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        let next = if start <= 0 {
            self.shared.revision.load(Ordering::Acquire) + 1
        } else {
            start
        };
        if next < compacted {
            return Err(StoreError::Compacted {
                requested: next,
                compacted,
            });
        }
        let (out, rx) = mpsc::channel(256);
        let task = watch::WatchTask {
            shared: Arc::downgrade(&self.shared),
            live,
            prefix: prefix.to_string(),
            next,
            out,
            progress_interval: self.progress_interval,
        };
        tokio::spawn(task.run());
        Ok(WatchStream::new(rx))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.submit(Op::Compact(revision)).await? {
            Reply::Compacted => Ok(()),
            _ => Err(StoreError::Internal("compact got the wrong reply".into())),
        }
    }

    async fn snapshot(&self, dest: &Path) -> Result<SnapshotWritten> {
        let shared = self.shared.clone();
        let dest = dest.to_path_buf();
        let revision = tokio::task::spawn_blocking(move || snapshot::write(&shared, &dest))
            .await
            .map_err(|e| StoreError::Internal(format!("the snapshot task failed: {e}")))??;
        Ok(SnapshotWritten {
            revision,
            backend: "embedded",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WatchItem;

    /// The hand-over race made deterministic: the live receiver already holds
    /// every event that history replay will deliver, and must skip them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hand_over_from_history_to_live_delivers_each_event_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = LocalOptions::new(dir.path().join("store.redb"));
        options.compaction = None;
        let store = LocalStore::open(options).await.expect("open");
        let live = store.events.subscribe();
        for i in 0..10 {
            store
                .create(&format!("k/{i}"), b"v".to_vec())
                .await
                .expect("create");
        }
        let (out, mut rx) = mpsc::channel(64);
        let task = watch::WatchTask {
            shared: Arc::downgrade(&store.shared),
            live,
            prefix: "k/".into(),
            next: 2,
            out,
            progress_interval: Duration::from_secs(60),
        };
        tokio::spawn(task.run());
        let mut revisions = Vec::new();
        let mut extra_written = false;
        while revisions.len() < 11 {
            let item = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("the watch answers")
                .expect("the watch goes on")
                .expect("no error");
            match item {
                WatchItem::Event(ev) => revisions.push(ev.revision()),
                WatchItem::Progress(p) => {
                    // Caught up: everything replayed, then one live write.
                    assert_eq!(p, 11);
                    assert!(!extra_written);
                    extra_written = true;
                    store.create("k/x", b"v".to_vec()).await.expect("create");
                }
            }
        }
        assert_eq!(revisions, (2..=12).collect::<Vec<_>>());
    }
}
