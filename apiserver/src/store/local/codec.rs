//! The byte layout of LocalStore's records: a key's current value with its
//! revisions, and one history entry (a change with the value before it).
//!
//! All integers are little-endian. A record that does not decode is reported
//! as `StoreError::Internal` naming what was being read, never a panic.

use crate::store::{Event, EventType, KeyValue, Revision, StoreError};

/// A key's value as stored in the `kv` table, without its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stored {
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: i64,
    pub value: Vec<u8>,
}

impl Stored {
    /// The full key-value, given its key.
    pub fn into_kv(self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
        }
    }
}

/// `create_revision`, `mod_revision`, `version` (8 bytes each), then the value.
pub(super) fn encode_stored(
    create: Revision,
    modr: Revision,
    version: i64,
    value: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + value.len());
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&modr.to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// Decodes a `kv` table record; `what` names it in the error.
pub(super) fn decode_stored(bytes: &[u8], what: &str) -> Result<Stored, StoreError> {
    let mut r = Reader::new(bytes, what);
    let create_revision = r.i64()?;
    let mod_revision = r.i64()?;
    let version = r.i64()?;
    Ok(Stored {
        create_revision,
        mod_revision,
        version,
        value: r.rest().to_vec(),
    })
}

/// One change as recorded in the `history` table under its revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Change {
    pub key: String,
    /// The key before the change (`None` if it was created).
    pub prev: Option<KeyValue>,
    /// The new value (`None` if the key was deleted).
    pub value: Option<Vec<u8>>,
}

impl Change {
    /// The event this change is, at `revision`.
    pub fn into_event(self, revision: Revision) -> Event {
        let (kind, kv) = match (&self.prev, self.value) {
            (_, None) => (
                EventType::Deleted,
                KeyValue {
                    key: self.key,
                    value: Vec::new(),
                    create_revision: 0,
                    mod_revision: revision,
                    version: 0,
                },
            ),
            (None, Some(value)) => (
                EventType::Added,
                KeyValue {
                    key: self.key,
                    value,
                    create_revision: revision,
                    mod_revision: revision,
                    version: 1,
                },
            ),
            (Some(prev), Some(value)) => (
                EventType::Modified,
                KeyValue {
                    key: self.key,
                    value,
                    create_revision: prev.create_revision,
                    mod_revision: revision,
                    version: prev.version + 1,
                },
            ),
        };
        Event {
            kind,
            kv,
            prev: self.prev,
        }
    }
}

const HAS_PREV: u8 = 1;
const HAS_VALUE: u8 = 2;

/// Flags byte, key (u32 length + bytes), then the previous key-value
/// (create, mod, version, u32 value length, value) if present, then the new
/// value (the rest) if present.
pub(super) fn encode_change(key: &str, prev: Option<&KeyValue>, value: Option<&[u8]>) -> Vec<u8> {
    let prev_len = prev.map_or(0, |p| 28 + p.value.len());
    let mut out = Vec::with_capacity(5 + key.len() + prev_len + value.map_or(0, <[u8]>::len));
    let mut flags = 0;
    if prev.is_some() {
        flags |= HAS_PREV;
    }
    if value.is_some() {
        flags |= HAS_VALUE;
    }
    out.push(flags);
    put_bytes(&mut out, key.as_bytes());
    if let Some(p) = prev {
        out.extend_from_slice(&p.create_revision.to_le_bytes());
        out.extend_from_slice(&p.mod_revision.to_le_bytes());
        out.extend_from_slice(&p.version.to_le_bytes());
        put_bytes(&mut out, &p.value);
    }
    if let Some(v) = value {
        out.extend_from_slice(v);
    }
    out
}

/// Only the key of a history record: enough to filter by prefix without
/// decoding the values.
pub(super) fn change_key<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, StoreError> {
    let mut r = Reader::new(bytes, what);
    r.u8()?;
    r.str()
}

/// Decodes a history record; `what` names it in the error.
pub(super) fn decode_change(bytes: &[u8], what: &str) -> Result<Change, StoreError> {
    let mut r = Reader::new(bytes, what);
    let flags = r.u8()?;
    let key = r.str()?.to_string();
    let prev = if flags & HAS_PREV != 0 {
        let create_revision = r.i64()?;
        let mod_revision = r.i64()?;
        let version = r.i64()?;
        let value = r.bytes()?.to_vec();
        Some(KeyValue {
            key: key.clone(),
            value,
            create_revision,
            mod_revision,
            version,
        })
    } else {
        None
    };
    let value = (flags & HAS_VALUE != 0).then(|| r.rest().to_vec());
    if value.is_none() && !r.rest().is_empty() {
        return Err(r.corrupt("trailing bytes after a deletion"));
    }
    Ok(Change { key, prev, value })
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Keys and values are far below 4 GiB (etcd's limit is 1.5 MiB per request).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over a record that reports truncation as corruption.
struct Reader<'a, 'w> {
    bytes: &'a [u8],
    pos: usize,
    what: &'w str,
}

impl<'a, 'w> Reader<'a, 'w> {
    fn new(bytes: &'a [u8], what: &'w str) -> Self {
        Reader {
            bytes,
            pos: 0,
            what,
        }
    }

    fn corrupt(&self, why: &str) -> StoreError {
        StoreError::Internal(format!(
            "corrupt record ({}) at byte {}: {why}",
            self.what, self.pos
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.corrupt(&format!("truncated: wanted {n} more bytes")))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64, StoreError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let b = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        let len = usize::try_from(u32::from_le_bytes(a))
            .map_err(|_| self.corrupt("length does not fit in memory"))?;
        self.take(len)
    }

    fn str(&mut self) -> Result<&'a str, StoreError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.corrupt("key is not UTF-8"))
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, c: i64, m: i64, v: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: c,
            mod_revision: m,
            version: v,
        }
    }

    #[test]
    fn stored_round_trips() {
        let bytes = encode_stored(3, 7, 2, b"{\"a\":1}");
        let s = decode_stored(&bytes, "test").expect("decodes");
        assert_eq!(s.into_kv("k"), kv("k", "{\"a\":1}", 3, 7, 2));
    }

    #[test]
    fn changes_round_trip_as_events() {
        let added = encode_change("pods/a", None, Some(b"v1"));
        let ev = decode_change(&added, "t").expect("decodes").into_event(5);
        assert_eq!(ev.kind, EventType::Added);
        assert_eq!(ev.kv, kv("pods/a", "v1", 5, 5, 1));
        assert_eq!(ev.prev, None);

        let prev = kv("pods/a", "v1", 5, 5, 1);
        let modified = encode_change("pods/a", Some(&prev), Some(b"v2"));
        assert_eq!(change_key(&modified, "t").expect("key"), "pods/a");
        let ev = decode_change(&modified, "t")
            .expect("decodes")
            .into_event(6);
        assert_eq!(ev.kind, EventType::Modified);
        assert_eq!(ev.kv, kv("pods/a", "v2", 5, 6, 2));
        assert_eq!(ev.prev, Some(prev.clone()));

        let deleted = encode_change("pods/a", Some(&prev), None);
        let ev = decode_change(&deleted, "t").expect("decodes").into_event(7);
        assert_eq!(ev.kind, EventType::Deleted);
        assert_eq!(ev.kv, kv("pods/a", "", 0, 7, 0));
        assert_eq!(ev.prev, Some(prev));
    }

    #[test]
    fn truncated_records_are_errors() {
        let bytes = encode_change("pods/a", Some(&kv("pods/a", "v1", 1, 1, 1)), None);
        for cut in 0..bytes.len() {
            let err = decode_change(&bytes[..cut], "history 9").expect_err("truncated");
            assert!(err.to_string().contains("history 9"), "{err}");
        }
        assert!(decode_stored(&[1, 2, 3], "kv").is_err());
    }
}
