//! The cluster store: a revisioned key-value `Store` modelled on etcd v3, with
//! two backends, `local` (embedded redb, the default) and `etcd`. Only the API
//! server uses it.
//!
//! Semantics every backend keeps (the conformance suite in `tests/store_conformance.rs`
//! checks them against both):
//! - One global revision, bumped by exactly one on every successful write
//!   (create, update, delete); reads never bump it. A fresh store is at revision 1
//!   (etcd's starting point) or later.
//! - Each key has `create_revision` (the revision that created it, reset when
//!   it is deleted and created again), `mod_revision` (the revision of its last
//!   write) and `version` (writes since creation, 1 after create).
//! - Writes are compare-and-swap: `create` fails if the key exists, `update`
//!   and `delete` fail with `Conflict` unless the key's `mod_revision` is the
//!   expected one, and with `NotFound` if the key is absent.
//! - `list` reads a prefix at one revision (the latest, or an older one not yet
//!   compacted), in key order, paginated with `limit` and `start_after`.
//! - `watch` delivers every change under a prefix with revision ≥ the start
//!   revision, in revision order, each exactly once, with the previous value;
//!   interleaved `Progress(rev)` items promise that every change up to `rev`
//!   has been delivered. Starting below the compacted revision is `Compacted`.
//! - `compact(rev)` drops history older than `rev`; reads and watches at
//!   older revisions then fail with `Compacted`.

use std::fmt;
use std::path::Path;

use async_trait::async_trait;

pub mod etcd;
pub mod local;

pub use etcd::{EtcdAuth, EtcdOptions, EtcdStore, EtcdTls};
pub use local::{CompactionPolicy, LocalOptions, LocalStore};

/// A store revision (etcd's `revision`, Kubernetes' `resourceVersion`).
pub type Revision = i64;

/// A key with its value and revisions.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, without the backend's prefix (e.g. `pods/default/web`).
    pub key: String,
    /// The value (korral stores JSON).
    pub value: Vec<u8>,
    /// The revision that created the key.
    pub create_revision: Revision,
    /// The revision of the key's last write.
    pub mod_revision: Revision,
    /// Writes since creation (1 after create).
    pub version: i64,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value", &String::from_utf8_lossy(&self.value))
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .field("version", &self.version)
            .finish()
    }
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The key was created.
    Added,
    /// The key's value was replaced.
    Modified,
    /// The key was deleted.
    Deleted,
}

/// One change, as a watch delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// The key after the change. For `Deleted`: the key, an empty value,
    /// `mod_revision` = the revision of the deletion, `create_revision` and
    /// `version` 0.
    pub kv: KeyValue,
    /// The key before the change (`None` for `Added`).
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision of the change.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// What a watch yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    /// A change.
    Event(Event),
    /// Every change under the watched prefix up to this revision has been delivered.
    Progress(Revision),
}

/// A list request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Keys starting with this (e.g. `pods/default/`); "" for all.
    pub prefix: String,
    /// Read at this revision; `None` for the latest.
    pub revision: Option<Revision>,
    /// At most this many keys; `None` for all.
    pub limit: Option<usize>,
    /// Start after this key (exclusive), to continue a paginated list.
    pub start_after: Option<String>,
}

/// A page of a list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListResponse {
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// The revision the list was read at (pass it back to read the next page at the same revision).
    pub revision: Revision,
    /// Whether keys remain after this page.
    pub more: bool,
}

/// The result of a delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The key as it was before the delete.
    pub prev: KeyValue,
    /// The revision of the delete.
    pub revision: Revision,
}

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// `create` of a key that exists.
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// `update`/`delete` of a key that does not exist.
    #[error("key {key:?} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// `update`/`delete` with a stale `mod_revision`.
    #[error("key {key:?} was modified: expected mod revision {expected}, found {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key's current mod revision.
        actual: Revision,
    },
    /// A read or watch at a revision older than the compacted one.
    #[error("revision {requested} has been compacted (oldest available: {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compacted revision.
        compacted: Revision,
    },
    /// A read at a revision newer than the store's current one.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// The backend cannot be reached or failed; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (corruption, a bug).
    #[error("store error: {0}")]
    Internal(String),
}

/// A `Result` with a [`StoreError`].
pub type Result<T> = std::result::Result<T, StoreError>;

/// A stream of watch items. Ends (`None`) when the store shuts down; an
/// `Err` item (e.g. `Compacted` after a long disconnect) is the last one.
pub struct WatchStream {
    rx: tokio::sync::mpsc::Receiver<Result<WatchItem>>,
}

impl WatchStream {
    /// A stream fed by a channel (backends create these).
    pub fn new(rx: tokio::sync::mpsc::Receiver<Result<WatchItem>>) -> Self {
        WatchStream { rx }
    }

    /// The next item, or `None` when the watch has ended.
    pub async fn next(&mut self) -> Option<Result<WatchItem>> {
        self.rx.recv().await
    }
}

/// What [`Store::snapshot`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotWritten {
    /// The store revision the snapshot holds. For etcd: the revision read
    /// just before the snapshot began (writes racing its start may be in it
    /// too).
    pub revision: Revision,
    /// Which backend wrote it: `embedded` or `etcd`.
    pub backend: &'static str,
}

/// The revisioned key-value store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The latest revision.
    async fn current_revision(&self) -> Result<Revision>;
    /// The revision history starts after (0 when nothing was compacted).
    async fn compacted_revision(&self) -> Result<Revision>;
    /// The latest value of a key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;
    /// A page of keys under a prefix at one revision.
    async fn list(&self, req: ListRequest) -> Result<ListResponse>;
    /// How many keys `req` would list with no limit (a paginated list's
    /// `remainingItemCount`). Backends that can count without reading
    /// values override this.
    async fn count(&self, req: ListRequest) -> Result<usize> {
        let req = ListRequest { limit: None, ..req };
        Ok(self.list(req).await?.kvs.len())
    }
    /// Creates a key; `AlreadyExists` if present.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue>;
    /// Replaces a key's value if its `mod_revision` is `expected`.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue>;
    /// Deletes a key, if its `mod_revision` is `expected` when given.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted>;
    /// Watches a prefix from `start` (events with revision ≥ `start`; 0 or
    /// `current + 1` for "from now").
    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream>;
    /// Drops history before `revision`.
    async fn compact(&self, revision: Revision) -> Result<()>;
    /// Writes a consistent copy of the whole store into the new file `dest`
    /// while the store keeps serving: the embedded store's data at one read
    /// transaction (korral's snapshot format, see `crate::snapshots::file`),
    /// etcd's own snapshot (restorable with `etcdctl snapshot restore`).
    async fn snapshot(&self, dest: &Path) -> Result<SnapshotWritten> {
        Err(StoreError::Internal(format!(
            "this store cannot write snapshots (asked for {})",
            dest.display()
        )))
    }
}
