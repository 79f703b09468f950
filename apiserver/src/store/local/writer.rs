//! LocalStore's writer: one OS thread that owns every redb write transaction.
//!
//! Requests arrive on a channel; the thread takes all that are waiting (up to
//! [`MAX_BATCH`]) and applies them in order in one transaction, each bumping
//! the revision and appending to history, then commits once (group commit:
//! one fsync for the batch), and only then publishes the events to watchers
//! and answers the callers. A caller is never told "done" before its write is
//! durable. The same thread runs the periodic compaction, so compaction never
//! races a write.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use redb::{ReadableTable, Table};
use tokio::sync::{broadcast, oneshot};

use super::codec::{Change, decode_stored, encode_change, encode_stored};
use super::tables::{HISTORY, KV, META, META_COMPACTED, META_REVISION, db_err};
use super::{CompactionPolicy, Shared};
use crate::store::{Deleted, Event, KeyValue, Revision, StoreError};

/// Most requests applied in one transaction.
pub(super) const MAX_BATCH: usize = 256;
/// Longest wait for the rest of a group of writers (well below one fsync).
const LINGER: Duration = Duration::from_micros(200);

/// A write.
pub(super) enum Op {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact(Revision),
}

/// What a successful write returns.
pub(super) enum Reply {
    Kv(KeyValue),
    Deleted(Deleted),
    Compacted,
}

/// A write and where to send its outcome.
pub(super) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Reply, StoreError>>,
}

/// The state the writer thread owns.
pub(super) struct Writer {
    pub shared: Arc<Shared>,
    pub requests: Receiver<Request>,
    pub events: broadcast::Sender<Arc<Event>>,
    pub compaction: Option<CompactionPolicy>,
}

impl Writer {
    /// Serves requests until every sender is gone.
    pub fn run(self) {
        let mut next_compaction = self
            .compaction
            .as_ref()
            .map(|p| Instant::now() + p.interval);
        // The revision that was current at the previous periodic run.
        let mut previous_run: Option<Revision> = None;
        let mut last_batch = 1;
        loop {
            // Compaction is due whether or not writes keep coming.
            if let Some(at) = next_compaction
                && Instant::now() >= at
            {
                self.periodic_compaction(&mut previous_run);
                next_compaction = self
                    .compaction
                    .as_ref()
                    .map(|p| Instant::now() + p.interval);
            }
            let received = match next_compaction {
                Some(at) => self
                    .requests
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
                None => self
                    .requests
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            let first = match received {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let batch = self.gather(first, last_batch);
            last_batch = batch.len();
            self.apply_batch(batch);
        }
        tracing::debug!("store writer stopped");
    }

    /// The batch that starts with `first`: whatever else is waiting, and,
    /// when the previous batch had several writers, up to [`LINGER`] more for
    /// them to send their next writes (they were answered together, so they
    /// come back together; without the wait every other batch would hold
    /// only the quickest of them). A lone writer never waits.
    fn gather(&self, first: Request, last_batch: usize) -> Vec<Request> {
        let mut batch = vec![first];
        let linger_until = Instant::now() + LINGER;
        while batch.len() < MAX_BATCH {
            match self.requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(TryRecvError::Empty) if batch.len() < last_batch => {
                    let left = linger_until.saturating_duration_since(Instant::now());
                    match self.requests.recv_timeout(left) {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                Err(_) => break,
            }
        }
        batch
    }

    /// Kubernetes-style: compact to the revision that was current one interval
    /// ago, and further if history holds more than the configured maximum.
    fn periodic_compaction(&self, previous_run: &mut Option<Revision>) {
        let Some(policy) = &self.compaction else {
            return;
        };
        let current = self.shared.revision.load(Ordering::Acquire);
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        let mut target = previous_run.unwrap_or(0);
        target = target.max(current - policy.max_revisions).min(current);
        *previous_run = Some(current);
        if target <= compacted {
            return;
        }
        let (reply, outcome) = oneshot::channel();
        self.apply_batch(vec![Request {
            op: Op::Compact(target),
            reply,
        }]);
        match outcome.blocking_recv() {
            Ok(Ok(_)) => tracing::info!(revision = target, current, "compacted store history"),
            Ok(Err(e)) => {
                tracing::warn!(revision = target, error = %e, "periodic compaction failed")
            }
            Err(_) => tracing::warn!(revision = target, "periodic compaction got no answer"),
        }
    }

    /// Applies a batch in one transaction and answers every request.
    fn apply_batch(&self, batch: Vec<Request>) {
        let (results, events, revision, compacted) =
            match self.apply_in_transaction(batch.iter().map(|r| &r.op)) {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(error = %e, "store write transaction failed");
                    for r in batch {
                        let _ = r.reply.send(Err(e.clone()));
                    }
                    return;
                }
            };
        self.shared.revision.store(revision, Ordering::Release);
        self.shared.compacted.store(compacted, Ordering::Release);
        for ev in events {
            // No receivers is fine: nobody watches.
            let _ = self.events.send(Arc::new(ev));
        }
        for (r, res) in batch.into_iter().zip(results) {
            // The caller may have given up (e.g. its request was cancelled);
            // the write stands regardless, as in etcd.
            let _ = r.reply.send(res);
        }
    }

    /// Runs the ops in one write transaction and commits it. Ops that fail a
    /// precondition leave no trace; any storage failure fails the whole batch.
    #[allow(clippy::type_complexity)]
    fn apply_in_transaction<'a>(
        &self,
        ops: impl Iterator<Item = &'a Op>,
    ) -> Result<
        (
            Vec<Result<Reply, StoreError>>,
            Vec<Event>,
            Revision,
            Revision,
        ),
        StoreError,
    > {
        let txn = self.shared.db.begin_write().map_err(db_err)?;
        let mut results = Vec::new();
        let mut events = Vec::new();
        let (revision, compacted);
        {
            let mut t = Tables {
                kv: txn.open_table(KV).map_err(db_err)?,
                history: txn.open_table(HISTORY).map_err(db_err)?,
                revision: 0,
                compacted: 0,
            };
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let read = |name: &str| -> Result<Revision, StoreError> {
                meta.get(name)
                    .map_err(db_err)?
                    .map(|v| v.value())
                    .ok_or_else(|| {
                        StoreError::Internal(format!("embedded store: meta {name:?} is missing"))
                    })
            };
            t.revision = read(META_REVISION)?;
            t.compacted = read(META_COMPACTED)?;
            for op in ops {
                let outcome = t.apply(op)?;
                if let Ok((_, Some(ev))) = &outcome {
                    events.push(ev.clone());
                }
                results.push(outcome.map(|(reply, _)| reply));
            }
            meta.insert(META_REVISION, t.revision).map_err(db_err)?;
            meta.insert(META_COMPACTED, t.compacted).map_err(db_err)?;
            revision = t.revision;
            compacted = t.compacted;
        }
        txn.commit().map_err(db_err)?;
        Ok((results, events, revision, compacted))
    }
}

/// The open tables of one write transaction and its running revisions.
struct Tables<'txn> {
    kv: Table<'txn, &'static str, &'static [u8]>,
    history: Table<'txn, i64, &'static [u8]>,
    revision: Revision,
    compacted: Revision,
}

/// An op's outcome: `Err` outside is a storage failure (abort the batch),
/// `Err` inside is the op's own failure (it changed nothing).
type Applied = Result<Result<(Reply, Option<Event>), StoreError>, StoreError>;

impl Tables<'_> {
    fn current(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let Some(v) = self.kv.get(key).map_err(db_err)? else {
            return Ok(None);
        };
        Ok(Some(decode_stored(v.value(), key)?.into_kv(key)))
    }

    /// Records a change at the next revision and returns its event.
    fn record(
        &mut self,
        key: &str,
        prev: Option<KeyValue>,
        value: Option<Vec<u8>>,
    ) -> Result<Event, StoreError> {
        self.revision += 1;
        let rev = self.revision;
        match &value {
            Some(v) => {
                let (create, version) = match &prev {
                    Some(p) => (p.create_revision, p.version + 1),
                    None => (rev, 1),
                };
                let stored = encode_stored(create, rev, version, v);
                self.kv.insert(key, stored.as_slice()).map_err(db_err)?;
            }
            None => {
                self.kv.remove(key).map_err(db_err)?;
            }
        }
        let change = encode_change(key, prev.as_ref(), value.as_deref());
        self.history
            .insert(rev, change.as_slice())
            .map_err(db_err)?;
        Ok(Change {
            key: key.to_string(),
            prev,
            value,
        }
        .into_event(rev))
    }

    fn apply(&mut self, op: &Op) -> Applied {
        match op {
            Op::Create { key, value } => {
                if self.current(key)?.is_some() {
                    return Ok(Err(StoreError::AlreadyExists { key: key.clone() }));
                }
                let ev = self.record(key, None, Some(value.clone()))?;
                Ok(Ok((Reply::Kv(ev.kv.clone()), Some(ev))))
            }
            Op::Update {
                key,
                value,
                expected,
            } => {
                let Some(cur) = self.current(key)? else {
                    return Ok(Err(StoreError::NotFound { key: key.clone() }));
                };
                if cur.mod_revision != *expected {
                    return Ok(Err(StoreError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        actual: cur.mod_revision,
                    }));
                }
                let ev = self.record(key, Some(cur), Some(value.clone()))?;
                Ok(Ok((Reply::Kv(ev.kv.clone()), Some(ev))))
            }
            Op::Delete { key, expected } => {
                let Some(cur) = self.current(key)? else {
                    return Ok(Err(StoreError::NotFound { key: key.clone() }));
                };
                if let Some(expected) = expected
                    && cur.mod_revision != *expected
                {
                    return Ok(Err(StoreError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        actual: cur.mod_revision,
                    }));
                }
                let ev = self.record(key, Some(cur.clone()), None)?;
                let deleted = Deleted {
                    prev: cur,
                    revision: ev.kv.mod_revision,
                };
                Ok(Ok((Reply::Deleted(deleted), Some(ev))))
            }
            Op::Compact(target) => {
                if *target > self.revision {
                    return Ok(Err(StoreError::FutureRevision {
                        requested: *target,
                        current: self.revision,
                    }));
                }
                if *target > self.compacted {
                    self.history
                        .retain_in(..*target, |_, _| false)
                        .map_err(db_err)?;
                    self.compacted = *target;
                }
                Ok(Ok((Reply::Compacted, None)))
            }
        }
    }
}
