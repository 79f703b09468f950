//! LocalStore's redb tables and the reads over them: a key, a page of a
//! prefix at any uncompacted revision (rebuilt from history), and a run of
//! history for watch replay.
//!
//! Tables:
//! - `kv`: key → current value with its revisions (`codec::encode_stored`);
//! - `history`: revision → the change made at that revision, with the value
//!   before it (`codec::encode_change`); entries below the compacted revision
//!   are dropped by compaction;
//! - `meta`: `revision` (the current one), `compacted` (history starts there).

use std::collections::BTreeMap;
use std::ops::Bound;

use redb::{ReadTransaction, TableDefinition};

use super::codec::{Stored, change_key, decode_change, decode_stored};
use crate::store::{Event, KeyValue, ListRequest, ListResponse, Revision, StoreError};

/// key → current value and revisions.
pub(super) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// revision → change.
pub(super) const HISTORY: TableDefinition<i64, &[u8]> = TableDefinition::new("history");
/// store-wide counters.
pub(super) const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

/// `meta` key of the current revision.
pub(super) const META_REVISION: &str = "revision";
/// `meta` key of the compacted revision.
pub(super) const META_COMPACTED: &str = "compacted";
/// `meta` key of the on-disk format version.
pub(super) const META_FORMAT: &str = "format";
/// The on-disk format this code writes.
pub(super) const FORMAT: i64 = 1;

/// A redb failure as a store error.
pub(super) fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Internal(format!("embedded store: {}", e.into()))
}

/// The current and compacted revisions as a snapshot sees them.
pub(super) fn revisions(txn: &ReadTransaction) -> Result<(Revision, Revision), StoreError> {
    let meta = txn.open_table(META).map_err(db_err)?;
    let get = |name: &str| -> Result<Revision, StoreError> {
        meta.get(name)
            .map_err(db_err)?
            .map(|v| v.value())
            .ok_or_else(|| {
                StoreError::Internal(format!("embedded store: meta {name:?} is missing"))
            })
    };
    Ok((get(META_REVISION)?, get(META_COMPACTED)?))
}

/// The latest value of a key.
pub(super) fn get(txn: &ReadTransaction, key: &str) -> Result<Option<KeyValue>, StoreError> {
    let kv = txn.open_table(KV).map_err(db_err)?;
    let Some(v) = kv.get(key).map_err(db_err)? else {
        return Ok(None);
    };
    Ok(Some(decode_stored(v.value(), key)?.into_kv(key)))
}

/// A page of a prefix at the requested revision, read from one snapshot.
pub(super) fn list(txn: &ReadTransaction, req: &ListRequest) -> Result<ListResponse, StoreError> {
    let (current, compacted) = revisions(txn)?;
    let revision = match req.revision {
        Some(r) if r > 0 => r,
        _ => current,
    };
    if revision > current {
        return Err(StoreError::FutureRevision {
            requested: revision,
            current,
        });
    }
    if revision < compacted {
        return Err(StoreError::Compacted {
            requested: revision,
            compacted,
        });
    }
    let prefix = req.prefix.as_str();
    // Keys strictly after `start_after` (when it is inside the prefix range).
    let after = req
        .start_after
        .as_deref()
        .filter(|s| *s >= prefix)
        .map(str::to_string);
    let in_range = |key: &str| key.starts_with(prefix) && after.as_deref().is_none_or(|a| key > a);
    let limit = req.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);

    // The keys changed after `revision`, with their state at `revision`: the
    // value before the first later change (`None`: absent then).
    let mut overlay: BTreeMap<String, Option<KeyValue>> = BTreeMap::new();
    if revision < current {
        let history = txn.open_table(HISTORY).map_err(db_err)?;
        for entry in history.range(revision + 1..=current).map_err(db_err)? {
            let (rev, bytes) = entry.map_err(db_err)?;
            let what = format!("history revision {}", rev.value());
            let key = change_key(bytes.value(), &what)?;
            if !in_range(key) || overlay.contains_key(key) {
                continue;
            }
            let change = decode_change(bytes.value(), &what)?;
            overlay.insert(change.key, change.prev);
        }
    }

    let kv = txn.open_table(KV).map_err(db_err)?;
    let lower = match &after {
        Some(a) => Bound::Excluded(a.as_str()),
        None => Bound::Included(prefix),
    };
    let mut current_iter = kv
        .range::<&str>((lower, Bound::Unbounded))
        .map_err(db_err)?
        .map(|entry| -> Result<(String, Stored), StoreError> {
            let (k, v) = entry.map_err(db_err)?;
            let key = k.value().to_string();
            let stored = decode_stored(v.value(), &key)?;
            Ok((key, stored))
        })
        .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
        .peekable();
    let mut overlay_iter = overlay.into_iter().peekable();

    let mut kvs = Vec::new();
    let mut more = false;
    loop {
        // Merge the two key-ordered streams; the overlay wins on equal keys.
        let next_current = match current_iter.peek() {
            Some(Ok((k, _))) => Some(k.clone()),
            Some(Err(e)) => return Err(e.clone()),
            None => None,
        };
        let next_overlay = overlay_iter.peek().map(|(k, _)| k.clone());
        let item = match (next_current, next_overlay) {
            (None, None) => break,
            (Some(c), Some(o)) if o <= c => {
                if o == c {
                    current_iter.next();
                }
                overlay_iter.next().and_then(|(_, v)| v)
            }
            (Some(_), _) => match current_iter.next() {
                Some(Ok((k, s))) => Some(s.into_kv(&k)),
                Some(Err(e)) => return Err(e),
                None => None,
            },
            (None, Some(_)) => overlay_iter.next().and_then(|(_, v)| v),
        };
        if let Some(item) = item {
            if kvs.len() == limit {
                more = true;
                break;
            }
            kvs.push(item);
        }
    }
    Ok(ListResponse {
        kvs,
        revision,
        more,
    })
}

/// A run of history for watch replay.
pub(super) struct Replay {
    /// The matching events, in revision order.
    pub events: Vec<Event>,
    /// Every revision up to this one has been scanned.
    pub scanned_to: Revision,
    /// The snapshot's current revision (replay is done when `scanned_to` reaches it).
    pub current: Revision,
}

/// Events under `prefix` from revision `from` on, at most `max` of them.
pub(super) fn replay(
    txn: &ReadTransaction,
    prefix: &str,
    from: Revision,
    max: usize,
) -> Result<Replay, StoreError> {
    let (current, compacted) = revisions(txn)?;
    if from < compacted {
        return Err(StoreError::Compacted {
            requested: from,
            compacted,
        });
    }
    let mut events = Vec::new();
    let mut scanned_to = from - 1;
    if from <= current {
        let history = txn.open_table(HISTORY).map_err(db_err)?;
        for entry in history.range(from..=current).map_err(db_err)? {
            let (rev, bytes) = entry.map_err(db_err)?;
            let rev = rev.value();
            let what = format!("history revision {rev}");
            if change_key(bytes.value(), &what)?.starts_with(prefix) {
                events.push(decode_change(bytes.value(), &what)?.into_event(rev));
            }
            scanned_to = rev;
            if events.len() >= max {
                break;
            }
        }
        if events.len() < max {
            scanned_to = current;
        }
    }
    Ok(Replay {
        events,
        scanned_to,
        current,
    })
}
