//! Tar files, just enough for OCI image archives: a reader (ustar, GNU long
//! names, pax path records) for `korral image import`, and a writer for the
//! busybox image builder.

use std::collections::BTreeMap;

/// One entry to write.
pub enum Entry<'a> {
    /// A directory.
    Dir { path: &'a str, mode: u32 },
    /// A regular file.
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
    /// A symbolic link.
    Symlink { path: &'a str, target: &'a str },
}

fn octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    let bytes = s.as_bytes();
    let start = bytes.len().saturating_sub(width);
    field[..width].copy_from_slice(&bytes[start..]);
    field[width] = 0;
}

/// Writes tar entries (ustar; paths must fit in 100 bytes).
#[derive(Default)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// Appends an entry.
    pub fn add(&mut self, e: Entry<'_>) -> Result<(), String> {
        let (path, mode, typ, data, link): (&str, u32, u8, &[u8], &str) = match e {
            Entry::Dir { path, mode } => (path, mode, b'5', &[], ""),
            Entry::File { path, mode, data } => (path, mode, b'0', data, ""),
            Entry::Symlink { path, target } => (path, 0o777, b'2', &[], target),
        };
        if path.len() > 100 || link.len() > 100 {
            return Err(format!("tar: path too long: {path}"));
        }
        let mut h = [0u8; 512];
        h[..path.len()].copy_from_slice(path.as_bytes());
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], u64::try_from(data.len()).unwrap_or(0));
        octal(&mut h[136..148], 0);
        h[148..156].copy_from_slice(b"        ");
        h[156] = typ;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
        Ok(())
    }

    /// The archive bytes (with the two zero blocks at the end).
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend(std::iter::repeat_n(0u8, 1024));
        self.out
    }
}

fn parse_octal(f: &[u8]) -> Result<u64, String> {
    let s: String = f
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| char::from(*b))
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| format!("tar: bad number {s:?}"))
}

fn cstr(f: &[u8]) -> String {
    String::from_utf8_lossy(&f[..f.iter().position(|b| *b == 0).unwrap_or(f.len())]).into_owned()
}

/// Reads the regular files of a tar archive: path (without a leading `./`) → contents.
pub fn read_files(data: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    let mut pos = 0usize;
    let mut long_name: Option<String> = None;
    let mut ended = false;
    while pos + 512 <= data.len() {
        let h = &data[pos..pos + 512];
        if h.iter().all(|b| *b == 0) {
            ended = true;
            break;
        }
        let size = usize::try_from(parse_octal(&h[124..136])?)
            .map_err(|_| "tar: entry too large".to_string())?;
        let typ = h[156];
        let body_start = pos + 512;
        let body_end = body_start
            .checked_add(size)
            .filter(|e| *e <= data.len())
            .ok_or("tar: truncated archive")?;
        let body = &data[body_start..body_end];
        let mut name = cstr(&h[0..100]);
        let prefix = cstr(&h[345..500]);
        if &h[257..262] == b"ustar" && !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
        if let Some(l) = long_name.take() {
            name = l;
        }
        match typ {
            b'L' => long_name = Some(cstr(body)),
            b'x' => {
                // pax extended header: "LEN key=value\n" records; only `path` matters here
                let text = String::from_utf8_lossy(body);
                for rec in text.split('\n') {
                    if let Some((_, kv)) = rec.split_once(' ')
                        && let Some(p) = kv.strip_prefix("path=")
                    {
                        long_name = Some(p.to_string());
                    }
                }
            }
            b'0' | 0 => {
                let clean = name.trim_start_matches("./").to_string();
                out.insert(clean, body.to_vec());
            }
            _ => {}
        }
        pos = body_start + size.div_ceil(512) * 512;
    }
    if !ended && pos != data.len() {
        return Err("tar: truncated archive".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut w = Writer::default();
        w.add(Entry::Dir {
            path: "bin/",
            mode: 0o755,
        })
        .expect("dir");
        w.add(Entry::File {
            path: "bin/busybox",
            mode: 0o755,
            data: b"ELF...",
        })
        .expect("file");
        w.add(Entry::Symlink {
            path: "bin/sh",
            target: "busybox",
        })
        .expect("link");
        w.add(Entry::File {
            path: "./blobs/sha256/abc",
            mode: 0o644,
            data: &[7u8; 1000],
        })
        .expect("file");
        let tar = w.finish();
        assert_eq!(tar.len() % 512, 0);
        let files = read_files(&tar).expect("read");
        assert_eq!(
            files.get("bin/busybox").map(Vec::as_slice),
            Some(&b"ELF..."[..])
        );
        assert_eq!(files.get("blobs/sha256/abc").map(Vec::len), Some(1000));
        assert!(!files.contains_key("bin/sh"));
        assert!(read_files(&tar[..700]).is_err());
    }

    #[test]
    fn reads_what_gnu_tar_writes() {
        let dir = tempfile::tempdir().expect("tmp");
        let long = "d".repeat(120);
        std::fs::create_dir_all(dir.path().join("src")).expect("mkdir");
        std::fs::write(dir.path().join("src").join(&long), b"long name").expect("write");
        let out = std::process::Command::new("tar")
            .arg("-C")
            .arg(dir.path().join("src"))
            .args(["-cf", "-", "."])
            .output()
            .expect("tar");
        assert!(out.status.success());
        let files = read_files(&out.stdout).expect("read");
        assert_eq!(files.get(&long).map(Vec::as_slice), Some(&b"long name"[..]));
    }
}
