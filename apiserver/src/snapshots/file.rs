//! Snapshot files and their integrity checks.
//!
//! Two formats, told apart by their first bytes:
//! - **embedded** (the redb store): a redb file holding the store's data at
//!   one revision, followed by a 40-byte trailer: [`TRAILER_MAGIC`] and the
//!   SHA-256 of everything before the trailer;
//! - **etcd**: etcd's own snapshot (a bbolt file followed by the SHA-256 of
//!   it, as etcd streams it), so `etcdctl snapshot restore` reads it as is.
//!
//! [`verify`] checks either completely before anything is restored from it: a
//! truncated or altered file is refused with the file's name and the reason.
//!
//! Either may be gzip-compressed as a whole (`--snapshot-compress`, as k3s's
//! `--etcd-snapshot-compress`): [`compress`] and [`decompress`]; restore
//! decompresses first and then verifies.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The first bytes of every redb file.
pub const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
/// bbolt's meta page magic (`0xED0CDAED`, little-endian) at offset 16 of an etcd snapshot.
pub const BOLT_MAGIC: [u8; 4] = [0xED, 0xDA, 0x0C, 0xED];
/// The first bytes of a gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The start of an embedded snapshot's trailer.
pub const TRAILER_MAGIC: &[u8; 8] = b"KORRALS1";
const HASH_LEN: u64 = 32;
/// Bytes of an embedded snapshot's trailer (magic + SHA-256).
pub const TRAILER_LEN: u64 = TRAILER_MAGIC.len() as u64 + HASH_LEN;

/// Which store a snapshot file is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The embedded (redb) store.
    Embedded,
    /// etcd.
    Etcd,
}

impl Kind {
    /// `embedded` or `etcd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Embedded => "embedded",
            Kind::Etcd => "etcd",
        }
    }
}

/// A snapshot file whose checksum matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Its format.
    pub kind: Kind,
    /// Bytes of the store's data (the file without its hash or trailer).
    pub payload_len: u64,
}

/// Why a snapshot file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It cannot be read.
    #[error("snapshot {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not a whole snapshot.
    #[error("snapshot {}: {why}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// What the first bytes, the length and the last bytes of a file say it
/// is: its kind and where its checksum is, or why it is no snapshot. `head`
/// holds up to the first 20 bytes, `tail` up to the last 40.
pub fn classify(head: &[u8], len: u64, tail: &[u8]) -> Result<(Kind, u64), String> {
    if head.starts_with(&REDB_MAGIC) {
        let body_min = REDB_MAGIC.len() as u64;
        if len < body_min + TRAILER_LEN || !tail.starts_with(TRAILER_MAGIC) {
            return Err(format!(
                "an embedded-store snapshot without its korral trailer ({len} bytes): \
                 the file is truncated or was not written by `korral snapshot save`"
            ));
        }
        return Ok((Kind::Embedded, len - TRAILER_LEN));
    }
    if is_gzip(head) {
        return Err(
            "a gzip-compressed snapshot: decompress it first (korral snapshot restore does)".into(),
        );
    }
    if is_bolt(head) {
        // etcd's rule (etcdutl): a snapshot with its hash is 512·k + 32 bytes
        if len % 512 != HASH_LEN {
            return Err(format!(
                "an etcd snapshot without its sha256 hash ({len} bytes is not 512·k + 32): \
                 the file is truncated"
            ));
        }
        return Ok((Kind::Etcd, len - HASH_LEN));
    }
    Err(format!(
        "not a snapshot: it starts with neither redb's nor etcd's (bbolt's) magic bytes ({len} bytes)"
    ))
}

/// Whether a file's first bytes are a gzip stream's.
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&GZIP_MAGIC)
}

/// The first bytes of a file (up to 20).
pub fn head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(20);
    std::fs::File::open(path)?.take(20).read_to_end(&mut head)?;
    Ok(head)
}

/// Gzips `from` into the new private file `to` (synced).
pub fn compress(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut source = std::fs::File::open(from)?;
    let mut encoder =
        flate2::write::GzEncoder::new(create_private(to)?, flate2::Compression::default());
    std::io::copy(&mut source, &mut encoder)?;
    encoder.finish()?.sync_all()
}

/// Gunzips `from` into the new private file `to` (synced); a truncated or
/// damaged stream is an error.
pub fn decompress(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut decoder = flate2::read::GzDecoder::new(std::fs::File::open(from)?);
    let mut out = create_private(to)?;
    std::io::copy(&mut decoder, &mut out)?;
    out.sync_all()
}

/// Whether a file's first bytes are a bbolt (etcd) database's.
pub fn is_bolt(head: &[u8]) -> bool {
    head.get(16..20) == Some(&BOLT_MAGIC[..])
}

/// Checks a snapshot file: its kind, and that the SHA-256 it carries is
/// the SHA-256 of its data.
pub fn verify(path: &Path) -> Result<Verified, FileError> {
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = vec![0u8; 20.min(len) as usize];
    file.read_exact(&mut head).map_err(io)?;
    let tail_len = TRAILER_LEN.min(len);
    let mut tail = vec![0u8; tail_len as usize];
    file.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    file.read_exact(&mut tail).map_err(io)?;
    let (kind, payload_len) = classify(&head, len, &tail).map_err(|why| FileError::Corrupt {
        path: path.to_path_buf(),
        why,
    })?;
    let stored = &tail[tail.len() - HASH_LEN as usize..];
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let actual = sha256_of(&mut file, payload_len).map_err(io)?;
    if actual.as_slice() != stored {
        return Err(FileError::Corrupt {
            path: path.to_path_buf(),
            why: format!(
                "checksum mismatch: the {} snapshot says sha256 {}, its data has {}: the file is corrupt",
                kind.as_str(),
                hex(stored),
                hex(&actual)
            ),
        });
    }
    Ok(Verified { kind, payload_len })
}

/// Appends the embedded format's trailer (magic + SHA-256 of the file as it
/// is) to a finished redb file and syncs it.
pub fn append_trailer(path: &Path) -> std::io::Result<()> {
    let mut file = std::fs::File::options()
        .read(true)
        .append(true)
        .open(path)?;
    let len = file.metadata()?.len();
    let hash = sha256_of(&mut file, len)?;
    file.write_all(TRAILER_MAGIC)?;
    file.write_all(&hash)?;
    file.sync_all()
}

/// Creates the new file `path` readable by its owner only (snapshots hold
/// every Secret; etcd writes its snapshots 0600 too).
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Copies the first `len` bytes of `from` into `to` (created private, synced).
pub fn copy_prefix(from: &Path, len: u64, to: &Path) -> std::io::Result<()> {
    let source = std::fs::File::open(from)?;
    let mut out = create_private(to)?;
    let copied = std::io::copy(&mut source.take(len), &mut out)?;
    if copied != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} ended after {copied} of {len} bytes", from.display()),
        ));
    }
    out.sync_all()
}

fn sha256_of(reader: &mut impl Read, len: u64) -> std::io::Result<Vec<u8>> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut reader = reader.take(len);
    let mut buf = vec![0u8; 1 << 16];
    let mut seen = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        seen += n as u64;
    }
    if seen != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the file ended after {seen} of {len} bytes"),
        ));
    }
    Ok(ctx.finish().as_ref().to_vec())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bolt_head() -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[16..20].copy_from_slice(&BOLT_MAGIC);
        h
    }

    #[test]
    fn the_first_bytes_tell_the_format_and_the_length_where_its_hash_is() {
        let mut trailer = TRAILER_MAGIC.to_vec();
        trailer.extend([0u8; 32]);
        assert_eq!(
            classify(&REDB_MAGIC, 4096 + TRAILER_LEN, &trailer),
            Ok((Kind::Embedded, 4096))
        );
        assert_eq!(
            classify(&bolt_head(), 2 * 512 + 32, &[0; 40]),
            Ok((Kind::Etcd, 1024))
        );
        // a redb file cut short has lost its trailer
        let err = classify(&REDB_MAGIC, 4000, &[7; 40]).expect_err("truncated");
        assert!(err.contains("truncated"), "{err}");
        // an etcd snapshot cut short is no longer 512·k + 32 bytes
        let err = classify(&bolt_head(), 1000, &[0; 40]).expect_err("truncated");
        assert!(err.contains("truncated"), "{err}");
        let err = classify(b"hello world, not a db", 21, b"").expect_err("not a snapshot");
        assert!(err.contains("not a snapshot"), "{err}");
        assert!(classify(b"", 0, b"").is_err());
    }

    #[test]
    fn a_trailer_makes_an_embedded_snapshot_that_verifies_and_any_change_is_caught() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("snap");
        let mut body = REDB_MAGIC.to_vec();
        body.extend((0..5000u32).map(|i| (i % 251) as u8));
        std::fs::write(&path, &body).expect("write");
        append_trailer(&path).expect("trailer");
        assert_eq!(
            verify(&path).expect("verifies"),
            Verified {
                kind: Kind::Embedded,
                payload_len: body.len() as u64
            }
        );
        // flip one byte of the data
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[100] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let err = verify(&path).expect_err("corrupt").to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        // cut it short
        std::fs::write(&path, &bytes[..3000]).expect("write");
        let err = verify(&path).expect_err("truncated").to_string();
        assert!(err.contains("truncated"), "{err}");
        // copy_prefix takes the data back out
        bytes[100] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let out = dir.path().join("out");
        copy_prefix(&path, body.len() as u64, &out).expect("copy");
        assert_eq!(std::fs::read(&out).expect("read"), body);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn compressed_snapshots_come_back_whole_or_not_at_all() {
        let dir = tempfile::tempdir().expect("temp dir");
        let raw = dir.path().join("raw");
        let mut body = REDB_MAGIC.to_vec();
        body.extend(std::iter::repeat_n(b"{\"kind\":\"ConfigMap\"}".as_slice(), 2000).flatten());
        std::fs::write(&raw, &body).expect("write");
        let gz = dir.path().join("gz");
        compress(&raw, &gz).expect("compress");
        let packed = std::fs::read(&gz).expect("read");
        assert!(is_gzip(&packed) && packed.len() < body.len() / 10);
        let back = dir.path().join("back");
        decompress(&gz, &back).expect("decompress");
        assert_eq!(std::fs::read(&back).expect("read"), body);
        // cut short: an error, not a shorter file taken for whole
        std::fs::write(&gz, &packed[..packed.len() / 2]).expect("write");
        assert!(decompress(&gz, &dir.path().join("half")).is_err());
        let err = classify(&packed, packed.len() as u64, b"").expect_err("gzip");
        assert!(err.contains("decompress"), "{err}");
    }

    #[test]
    fn an_etcd_snapshot_carries_the_sha256_of_its_data() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("etcd.db");
        let mut body = bolt_head();
        body.resize(1024, 3);
        let hash = ring::digest::digest(&ring::digest::SHA256, &body);
        let mut file = body.clone();
        file.extend(hash.as_ref());
        std::fs::write(&path, &file).expect("write");
        assert_eq!(verify(&path).expect("verifies").kind, Kind::Etcd);
        file[500] ^= 0xff;
        std::fs::write(&path, &file).expect("write");
        assert!(verify(&path).is_err());
    }
}
