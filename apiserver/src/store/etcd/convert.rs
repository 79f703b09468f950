//! Translations between etcd's answers and the store's types: key-values and
//! events under the prefix, errors, and prefix range ends.

use crate::store::{Event, EventType, KeyValue, StoreError};

/// An etcd key-value as a store key-value, with the prefix taken off its key.
pub(super) fn kv(kv: &etcd_client::KeyValue, prefix: &str) -> Result<KeyValue, StoreError> {
    Ok(KeyValue {
        key: strip(kv.key(), prefix)?,
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
    })
}

fn strip(key: &[u8], prefix: &str) -> Result<String, StoreError> {
    let key = std::str::from_utf8(key).map_err(|_| {
        StoreError::Internal(format!(
            "etcd key {} is not UTF-8",
            String::from_utf8_lossy(key)
        ))
    })?;
    key.strip_prefix(prefix).map(str::to_string).ok_or_else(|| {
        StoreError::Internal(format!(
            "etcd returned key {key:?} outside prefix {prefix:?}"
        ))
    })
}

/// A watch event. etcd marks a deletion with a tombstone (version 0) and a
/// creation with version 1.
pub(super) fn event(ev: &etcd_client::Event, prefix: &str) -> Result<Event, StoreError> {
    let cur = ev
        .kv()
        .ok_or_else(|| StoreError::Internal("etcd sent a watch event without its key".into()))?;
    let prev = ev.prev_kv().map(|p| kv(p, prefix)).transpose()?;
    let key = strip(cur.key(), prefix)?;
    Ok(match cur.version() {
        0 => Event {
            kind: EventType::Deleted,
            kv: KeyValue {
                key,
                value: Vec::new(),
                create_revision: 0,
                mod_revision: cur.mod_revision(),
                version: 0,
            },
            prev,
        },
        version => Event {
            kind: if version == 1 {
                EventType::Added
            } else {
                EventType::Modified
            },
            kv: KeyValue {
                key,
                value: cur.value().to_vec(),
                create_revision: cur.create_revision(),
                mod_revision: cur.mod_revision(),
                version,
            },
            prev: if version == 1 { None } else { prev },
        },
    })
}

fn status(e: &etcd_client::Error) -> Option<&tonic::Status> {
    match e {
        etcd_client::Error::GRpcStatus(s) => Some(s),
        _ => None,
    }
}

/// etcd's "required revision has been compacted".
pub(super) fn is_compacted(e: &etcd_client::Error) -> bool {
    status(e).is_some_and(|s| s.message().contains("required revision has been compacted"))
}

/// etcd's "required revision is a future revision".
pub(super) fn is_future(e: &etcd_client::Error) -> bool {
    status(e).is_some_and(|s| {
        s.message()
            .contains("required revision is a future revision")
    })
}

/// An error with its causes (`transport error: … : tcp connect error: …`):
/// tonic's transport errors say nothing more on their own.
pub(super) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// Any other etcd failure: `Unavailable` when retrying may help, `Internal`
/// otherwise; `what` says what was being done.
pub(super) fn map_err(e: etcd_client::Error, what: &str) -> StoreError {
    use tonic::Code;
    match &e {
        etcd_client::Error::GRpcStatus(s) => match s.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::ResourceExhausted
            // the causes say whether the request could have reached etcd
            | Code::Unknown => StoreError::Unavailable(format!("{what}: etcd: {}", with_causes(s))),
            Code::Unauthenticated | Code::PermissionDenied => StoreError::Internal(format!(
                "{what}: etcd refused: {} (check the etcd user and password or client certificate)",
                s.message()
            )),
            _ => StoreError::Internal(format!("{what}: etcd: {}", s.message())),
        },
        // etcd-client's error does not chain to what it wraps
        etcd_client::Error::TransportError(t) => {
            StoreError::Unavailable(format!("{what}: transport error: {}", with_causes(t)))
        }
        etcd_client::Error::IoError(io) => {
            StoreError::Unavailable(format!("{what}: io error: {}", with_causes(io)))
        }
        _ => StoreError::Internal(format!("{what}: {e}")),
    }
}

/// The end of the range of keys starting with `prefix` (etcd's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff bumped.
pub(super) fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the keyspace.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_end_bumps_the_last_byte() {
        assert_eq!(prefix_range_end(b"/registry/"), b"/registry0".to_vec());
        assert_eq!(prefix_range_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_range_end(b"\xff"), vec![0]);
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("transport error")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn errors_carry_their_causes() {
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "tcp connect error: Connection refused",
        ));
        assert_eq!(
            with_causes(&e),
            "transport error: tcp connect error: Connection refused"
        );
    }
}
