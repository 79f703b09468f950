//! LocalStore's snapshots: the data of one read transaction (a consistent
//! view while writes go on) copied into a fresh redb file, history left out
//! (the snapshot is compacted at its revision), then the korral trailer
//! appended (`crate::snapshots::file`). Restoring reopens such a file as a
//! store ([`check_restored`]).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::Shared;
use super::tables::{
    FORMAT, HISTORY, KV, META, META_COMPACTED, META_FORMAT, META_REVISION, db_err, revisions,
};
use crate::store::{Revision, StoreError};

/// Writes the snapshot file `dest` (which must not exist); returns its revision.
/// Blocking: run it off tokio's worker threads.
pub(super) fn write(shared: &Shared, dest: &Path) -> Result<Revision, StoreError> {
    let txn = shared.db.begin_read().map_err(db_err)?;
    let (revision, _) = revisions(&txn)?;
    let named =
        |e: redb::Error| StoreError::Internal(format!("writing snapshot {}: {e}", dest.display()));
    if dest.exists() {
        return Err(StoreError::Internal(format!(
            "writing snapshot {}: the file exists",
            dest.display()
        )));
    }
    // an empty file made private first: redb initialises an empty file
    crate::snapshots::file::create_private(dest)
        .map_err(|e| StoreError::Internal(format!("writing snapshot {}: {e}", dest.display())))?;
    let out = Database::create(dest).map_err(|e| named(e.into()))?;
    let write = out.begin_write().map_err(|e| named(e.into()))?;
    let mut keys = 0usize;
    {
        let from = txn.open_table(KV).map_err(db_err)?;
        let mut to = write.open_table(KV).map_err(|e| named(e.into()))?;
        for entry in from.iter().map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            to.insert(k.value(), v.value())
                .map_err(|e| named(e.into()))?;
            keys += 1;
        }
        write.open_table(HISTORY).map_err(|e| named(e.into()))?;
        let mut meta = write.open_table(META).map_err(|e| named(e.into()))?;
        for (name, value) in [
            (META_FORMAT, FORMAT),
            (META_REVISION, revision),
            // no history in a snapshot: reads and watches start at its revision
            (META_COMPACTED, revision),
        ] {
            meta.insert(name, value).map_err(|e| named(e.into()))?;
        }
    }
    write.commit().map_err(|e| named(e.into()))?;
    drop(txn);
    drop(out);
    crate::snapshots::file::append_trailer(dest)
        .map_err(|e| StoreError::Internal(format!("writing snapshot {}: {e}", dest.display())))?;
    tracing::info!(path = %dest.display(), revision, keys, "wrote embedded store snapshot");
    Ok(revision)
}

/// Opens a restored store file (the snapshot's redb data, trailer removed)
/// and checks it is a whole korral store: redb's integrity check, the format,
/// the revision counters. Returns its revision and number of keys.
pub fn check_restored(path: &Path) -> Result<(Revision, usize), String> {
    let mut db = Database::open(path).map_err(|e| format!("not a redb store: {e}"))?;
    match db.check_integrity() {
        Ok(true) => {}
        Ok(false) => return Err("redb repaired it on open: the data was damaged".into()),
        Err(e) => return Err(format!("redb's integrity check failed: {e}")),
    }
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let meta = txn
        .open_table(META)
        .map_err(|e| format!("no korral meta table: {e}"))?;
    let format = meta
        .get(META_FORMAT)
        .map_err(|e| e.to_string())?
        .map(|v| v.value());
    if format != Some(FORMAT) {
        return Err(format!(
            "store format {format:?}; this korral reads format {FORMAT}"
        ));
    }
    let (revision, _) = revisions(&txn).map_err(|e| e.to_string())?;
    let keys = txn
        .open_table(KV)
        .map_err(|e| format!("no korral kv table: {e}"))?
        .len()
        .map_err(|e| e.to_string())?;
    Ok((revision, usize::try_from(keys).unwrap_or(usize::MAX)))
}
