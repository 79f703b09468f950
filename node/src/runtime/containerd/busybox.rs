//! Builds a tiny OCI image archive from Debian's `busybox-static`: one
//! uncompressed layer with `/bin/busybox`, a link per applet and any extra
//! files asked for (a static `kubectl` for the in-cluster client tests), a
//! config, a manifest, and an index naming the image
//! (`io.containerd.image.name`) — what `korral image build-busybox` writes
//! and the tests import.

use std::path::Path;

use serde_json::json;

use crate::runtime::containerd::archive::{Entry, Writer};

/// `sha256:<hex>` of some bytes.
pub fn digest(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Normalises an image reference the way containerd's CRI does:
/// `busybox` → `docker.io/library/busybox:latest`.
pub fn normalize(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let first = name.split('/').next().unwrap_or("");
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_domain {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or("");
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    match digest {
        Some(d) => format!("{full}@{d}"),
        None => full,
    }
}

/// A host file copied into the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraFile {
    /// The file on this machine (its permission bits are kept).
    pub source: std::path::PathBuf,
    /// Its absolute path in the image.
    pub dest: String,
}

impl std::str::FromStr for ExtraFile {
    type Err = String;

    /// `SOURCE:DEST`, DEST absolute.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some((source, dest))
                if !source.is_empty() && dest.starts_with('/') && dest.len() > 1 =>
            {
                Ok(ExtraFile {
                    source: source.into(),
                    dest: dest.to_string(),
                })
            }
            _ => Err(format!(
                "{s:?}: expected SOURCE:DEST with an absolute DEST (e.g. /usr/bin/kubectl:/usr/local/bin/kubectl)"
            )),
        }
    }
}

/// Builds the archive from the busybox binary at `busybox` plus `extra`
/// files (their parent directories made as needed), naming the image `tags`.
pub fn build(busybox: &Path, tags: &[String], extra: &[ExtraFile]) -> Result<Vec<u8>, String> {
    let bin = std::fs::read(busybox).map_err(|e| {
        format!(
            "{}: {e} (install Debian's busybox-static)",
            busybox.display()
        )
    })?;
    let list = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("{} --list: {e}", busybox.display()))?;
    if !list.status.success() {
        return Err(format!("{} --list failed", busybox.display()));
    }
    let applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| {
            !a.is_empty()
                && *a != "busybox"
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.[".contains(&b))
        })
        .map(str::to_string)
        .collect();
    let mut layer = Writer::default();
    let mut dirs: Vec<String> = Vec::new();
    for (d, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("tmp/", 0o1777),
        ("root/", 0o700),
        ("var/", 0o755),
        ("var/www/", 0o755),
        ("proc/", 0o555),
        ("sys/", 0o555),
        ("dev/", 0o755),
        ("run/", 0o755),
    ] {
        layer.add(Entry::Dir { path: d, mode })?;
        dirs.push(d.to_string());
    }
    layer.add(Entry::File {
        path: "bin/busybox",
        mode: 0o755,
        data: &bin,
    })?;
    for a in &applets {
        layer.add(Entry::Symlink {
            path: &format!("bin/{a}"),
            target: "busybox",
        })?;
    }
    layer.add(Entry::File {
        path: "etc/passwd",
        mode: 0o644,
        data:
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    })?;
    layer.add(Entry::File {
        path: "etc/group",
        mode: 0o644,
        data: b"root:x:0:\nnogroup:x:65534:\n",
    })?;
    for f in extra {
        add_extra(&mut layer, &mut dirs, f)?;
    }
    let layer = layer.finish();
    let layer_digest = digest(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "korral image build-busybox"}]
    }))
    .map_err(|e| e.to_string())?;
    let config_digest = digest(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}]
    }))
    .map_err(|e| e.to_string())?;
    let manifest_digest = digest(&manifest);
    let manifests: Vec<serde_json::Value> = tags
        .iter()
        .map(|t| {
            let name = normalize(t);
            let tag = name.rsplit(':').next().unwrap_or("latest").to_string();
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len(),
                   "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
                   "platform": {"architecture": "amd64", "os": "linux"}})
        })
        .collect();
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}))
        .map_err(|e| e.to_string())?;
    let mut out = Writer::default();
    out.add(Entry::File {
        path: "oci-layout",
        mode: 0o644,
        data: br#"{"imageLayoutVersion":"1.0.0"}"#,
    })?;
    out.add(Entry::File {
        path: "index.json",
        mode: 0o644,
        data: &index,
    })?;
    out.add(Entry::Dir {
        path: "blobs/",
        mode: 0o755,
    })?;
    out.add(Entry::Dir {
        path: "blobs/sha256/",
        mode: 0o755,
    })?;
    for (d, body) in [
        (&layer_digest, &layer),
        (&config_digest, &config),
        (&manifest_digest, &manifest),
    ] {
        let hex = d.trim_start_matches("sha256:");
        out.add(Entry::File {
            path: &format!("blobs/sha256/{hex}"),
            mode: 0o644,
            data: body,
        })?;
    }
    Ok(out.finish())
}

/// Adds one extra file and the parent directories not written yet.
fn add_extra(layer: &mut Writer, dirs: &mut Vec<String>, f: &ExtraFile) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let dest = f.dest.trim_start_matches('/');
    if dest.is_empty()
        || dest
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!("{:?} is not a plain absolute path", f.dest));
    }
    let data = std::fs::read(&f.source).map_err(|e| format!("{}: {e}", f.source.display()))?;
    let mode = std::fs::metadata(&f.source)
        .map_err(|e| format!("{}: {e}", f.source.display()))?
        .permissions()
        .mode()
        & 0o7777;
    let mut parent = String::new();
    let components: Vec<&str> = dest.split('/').collect();
    for c in &components[..components.len() - 1] {
        parent.push_str(c);
        parent.push('/');
        if !dirs.contains(&parent) {
            layer.add(Entry::Dir {
                path: &parent,
                mode: 0o755,
            })?;
            dirs.push(parent.clone());
        }
    }
    layer.add(Entry::File {
        path: dest,
        mode,
        data: &data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_like_containerd() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(normalize("team/app"), "docker.io/team/app:latest");
        assert_eq!(
            normalize("registry.local:5000/app:v1"),
            "registry.local:5000/app:v1"
        );
        assert_eq!(normalize("localhost/app"), "localhost/app:latest");
    }

    #[test]
    fn builds_an_oci_layout_from_busybox() {
        let busybox = Path::new("/bin/busybox");
        let tar = build(
            busybox,
            &["busybox:latest".into(), "busybox:1.36".into()],
            &[],
        )
        .expect("build (needs busybox-static)");
        let files = crate::runtime::containerd::archive::read_files(&tar).expect("read");
        let index: serde_json::Value =
            serde_json::from_slice(files.get("index.json").expect("index")).expect("json");
        assert_eq!(index["manifests"].as_array().map(Vec::len), Some(2));
        let m = index["manifests"][0]["digest"].as_str().expect("digest");
        let manifest = files
            .get(&format!("blobs/sha256/{}", m.trim_start_matches("sha256:")))
            .expect("manifest blob");
        assert_eq!(digest(manifest), m, "blobs are content-addressed");
    }

    #[test]
    fn extra_files_land_in_the_layer_with_their_parents_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let tool = dir.path().join("tool");
        std::fs::write(&tool, b"#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        let extra: ExtraFile = format!("{}:/usr/local/bin/tool", tool.display())
            .parse()
            .expect("SOURCE:DEST");
        let tar = build(Path::new("/bin/busybox"), &["busybox:x".into()], &[extra])
            .expect("build (needs busybox-static)");
        let files = crate::runtime::containerd::archive::read_files(&tar).expect("read");
        let index: serde_json::Value =
            serde_json::from_slice(files.get("index.json").expect("index")).expect("json");
        let blob = |d: &str| {
            files
                .get(&format!("blobs/sha256/{}", d.trim_start_matches("sha256:")))
                .expect("blob")
        };
        let manifest: serde_json::Value = serde_json::from_slice(blob(
            index["manifests"][0]["digest"].as_str().expect("digest"),
        ))
        .expect("manifest");
        let layer = blob(manifest["layers"][0]["digest"].as_str().expect("layer"));
        let layer_files = crate::runtime::containerd::archive::read_files(layer).expect("layer");
        assert_eq!(
            layer_files.get("usr/local/bin/tool").map(Vec::as_slice),
            Some(&b"#!/bin/sh\n"[..])
        );
        // the header records the mode (bytes 100..108, octal) and the parents come first
        let at = layer
            .windows(18)
            .position(|w| w == b"usr/local/bin/tool")
            .expect("entry");
        assert_eq!(&layer[at + 100..at + 107], b"0000750");
        for parent in ["usr/", "usr/local/", "usr/local/bin/"] {
            let p = layer
                .windows(parent.len())
                .position(|w| w == parent.as_bytes())
                .expect("parent directory entry");
            assert!(p < at, "{parent} before the file");
        }
        assert!(
            "x:relative".parse::<ExtraFile>().is_err() && "nocolon".parse::<ExtraFile>().is_err()
        );
        let bad = ExtraFile {
            source: tool,
            dest: "/usr/../etc/x".into(),
        };
        assert!(build(Path::new("/bin/busybox"), &[], &[bad]).is_err());
    }
}
