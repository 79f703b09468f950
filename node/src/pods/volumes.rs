//! Pod volumes on the node: emptyDir (a directory), hostPath (checked or
//! created per its type), persistentVolumeClaim and generic ephemeral
//! volumes (the bound volume's directory of the claim, `storage.rs`), and configMap / secret / downwardAPI / projected
//! (with ServiceAccount tokens, renewed before they expire) written like the kubelet's atomic writer — files in a timestamped
//! directory, a `..data` symlink swapped atomically on change, and one
//! relative symlink per top-level entry — with the requested file modes.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{KeyToPath, Pod, Volume};
use reconcilers::controllers::persistentvolume::ephemeral;
use schemas::MetaExt;
use schemas::object::volume_sources;

use crate::pods::downward::{self, Facts};
use crate::pods::sources::{Data, Sources};

/// Files to project: relative path → (contents, mode).
pub type Files = BTreeMap<String, (Vec<u8>, u32)>;

const DEFAULT_MODE: u32 = 0o644;
/// A `serviceAccountToken` source's lifetime when it names none (the API's default).
const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// The directory holding the pod's volumes.
pub fn volumes_dir(pod_dir: &Path) -> PathBuf {
    pod_dir.join("volumes")
}

fn mode_of(m: Option<i32>, default: u32) -> u32 {
    m.and_then(|m| u32::try_from(m).ok())
        .map(|m| m & 0o7777)
        .unwrap_or(default)
}

fn safe_rel(p: &str) -> Result<(), String> {
    let path = Path::new(p);
    if p.is_empty()
        || path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        || p.starts_with("..")
    {
        return Err(format!(
            "volume path {p:?} must be relative and must not contain '..'"
        ));
    }
    Ok(())
}

fn project(
    files: &mut Files,
    what: &str,
    data: &Data,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
    mode: u32,
) -> Result<(), String> {
    let Some(data) = data else {
        return if optional {
            Ok(())
        } else {
            Err(format!("{what} not found"))
        };
    };
    match items {
        None => {
            for (k, v) in data {
                files.insert(k.clone(), (v.clone(), mode));
            }
        }
        Some(items) => {
            for it in items {
                safe_rel(&it.path)?;
                match data.get(&it.key) {
                    Some(v) => {
                        files.insert(it.path.clone(), (v.clone(), mode_of(it.mode, mode)));
                    }
                    None if optional => {}
                    None => return Err(format!("{what}: key {:?} not found", it.key)),
                }
            }
        }
    }
    Ok(())
}

/// The files a configMap / secret / downwardAPI / projected volume should hold
/// (`None` for other volume types).
pub async fn desired_files(
    pod: &Pod,
    v: &Volume,
    facts: &Facts,
    sources: &mut Sources<'_>,
) -> Result<Option<Files>, String> {
    let mut files = Files::new();
    if let Some(cm) = &v.config_map {
        let name = cm.name.clone();
        let data = sources.config_map(&name).await?.clone();
        let mode = mode_of(cm.default_mode, DEFAULT_MODE);
        project(
            &mut files,
            &format!("configmap {name:?}"),
            &data,
            cm.items.as_ref(),
            cm.optional.unwrap_or(false),
            mode,
        )?;
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = sources.secret(&name).await?.clone();
        let mode = mode_of(s.default_mode, DEFAULT_MODE);
        project(
            &mut files,
            &format!("secret {name:?}"),
            &data,
            s.items.as_ref(),
            s.optional.unwrap_or(false),
            mode,
        )?;
    } else if let Some(d) = &v.downward_api {
        let mode = mode_of(d.default_mode, DEFAULT_MODE);
        downward_files(
            pod,
            &mut files,
            d.items.as_deref().unwrap_or(&[]),
            mode,
            facts,
        )?;
    } else if let Some(p) = &v.projected {
        let mode = mode_of(p.default_mode, DEFAULT_MODE);
        for src in p.sources.iter().flatten() {
            if let Some(cm) = &src.config_map {
                let name = cm.name.clone();
                let data = sources.config_map(&name).await?.clone();
                project(
                    &mut files,
                    &format!("configmap {name:?}"),
                    &data,
                    cm.items.as_ref(),
                    cm.optional.unwrap_or(false),
                    mode,
                )?;
            }
            if let Some(s) = &src.secret {
                let name = s.name.clone();
                let data = sources.secret(&name).await?.clone();
                project(
                    &mut files,
                    &format!("secret {name:?}"),
                    &data,
                    s.items.as_ref(),
                    s.optional.unwrap_or(false),
                    mode,
                )?;
            }
            if let Some(d) = &src.downward_api {
                downward_files(
                    pod,
                    &mut files,
                    d.items.as_deref().unwrap_or(&[]),
                    mode,
                    facts,
                )?;
            }
            if let Some(t) = &src.service_account_token {
                safe_rel(&t.path)?;
                let seconds = t.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS);
                let token = sources.token(pod, t.audience.as_deref(), seconds).await?;
                files.insert(t.path.clone(), (token.into_bytes(), mode));
            }
        }
    } else {
        return Ok(None);
    }
    Ok(Some(files))
}

fn downward_files(
    pod: &Pod,
    files: &mut Files,
    items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile],
    mode: u32,
    facts: &Facts,
) -> Result<(), String> {
    for it in items {
        safe_rel(&it.path)?;
        let value = if let Some(f) = &it.field_ref {
            downward::field(pod, f, facts)?
        } else if let Some(r) = &it.resource_field_ref {
            let own = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .cloned()
                .unwrap_or_default();
            downward::resource(pod, &own, r, facts)?
        } else {
            continue;
        };
        files.insert(
            it.path.clone(),
            (value.into_bytes(), mode_of(it.mode, mode)),
        );
    }
    Ok(())
}

fn io(path: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

fn current_files(dir: &Path) -> Option<Files> {
    let data = dir.join("..data");
    let target = std::fs::read_link(&data).ok()?;
    let root = dir.join(target);
    let mut out = Files::new();
    fn walk(root: &Path, rel: &Path, out: &mut Files) -> Option<()> {
        for e in std::fs::read_dir(root.join(rel)).ok()? {
            let e = e.ok()?;
            let r = rel.join(e.file_name());
            let meta = e.metadata().ok()?;
            if meta.is_dir() {
                walk(root, &r, out)?;
            } else {
                let bytes = std::fs::read(root.join(&r)).ok()?;
                out.insert(
                    r.to_string_lossy().into_owned(),
                    (bytes, meta.permissions().mode() & 0o7777),
                );
            }
        }
        Some(())
    }
    walk(&root, Path::new(""), &mut out)?;
    Some(out)
}

/// Writes `files` into `dir` atomically (kubelet's layout); returns whether anything changed.
pub fn write_atomic(dir: &Path, files: &Files) -> Result<bool, String> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    if current_files(dir).as_ref() == Some(files) {
        return Ok(false);
    }
    let stamp = format!("..{}", chrono::Utc::now().format("%Y_%m_%d_%H_%M_%S.%9f"));
    let ts_dir = dir.join(&stamp);
    std::fs::create_dir_all(&ts_dir).map_err(|e| io(&ts_dir, e))?;
    for (rel, (bytes, mode)) in files {
        let p = ts_dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&p, bytes).map_err(|e| io(&p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
            .map_err(|e| io(&p, e))?;
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, dir.join("..data")).map_err(|e| io(dir, e))?;
    // one symlink per top-level entry, through ..data
    let mut top: Vec<String> = files
        .keys()
        .map(|k| k.split('/').next().unwrap_or(k).to_string())
        .collect();
    top.dedup();
    for t in &top {
        let link = dir.join(t);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{t}"), &link).map_err(|e| io(&link, e))?;
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !top.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Some(old) = old
        && old != Path::new(&stamp)
    {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

/// A hostPath's node path, checked or created per its `type`.
pub(crate) fn host_path(
    v: &k8s_openapi::api::core::v1::HostPathVolumeSource,
) -> Result<PathBuf, String> {
    let p = PathBuf::from(&v.path);
    let meta = std::fs::metadata(&p);
    use std::os::unix::fs::FileTypeExt;
    match v.type_.as_deref().unwrap_or("") {
        "" => {}
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(&p).map_err(|e| io(&p, e))?;
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
            }
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
                }
                std::fs::write(&p, b"").map_err(|e| io(&p, e))?;
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644));
            }
        }
        t => {
            let m =
                meta.map_err(|_| format!("hostPath type check failed: {} is not a {t}", v.path))?;
            let ft = m.file_type();
            let ok = match t {
                "Directory" => ft.is_dir(),
                "File" => ft.is_file(),
                "Socket" => ft.is_socket(),
                "CharDevice" => ft.is_char_device(),
                "BlockDevice" => ft.is_block_device(),
                other => return Err(format!("unknown hostPath type {other:?}")),
            };
            if !ok {
                return Err(format!(
                    "hostPath type check failed: {} is not a {t}",
                    v.path
                ));
            }
        }
    }
    Ok(p)
}

/// Prepares (or refreshes) every volume of the pod; returns each volume's
/// node path by name.
pub async fn prepare(
    pod: &Pod,
    pod_dir: &Path,
    facts: &Facts,
    sources: &mut Sources<'_>,
) -> Result<HashMap<String, PathBuf>, String> {
    let mut out = HashMap::new();
    let base = volumes_dir(pod_dir);
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = base.join(&v.name);
        if let Some(hp) = &v.host_path {
            out.insert(v.name.clone(), host_path(hp)?);
        } else if let Some(claim) = &v.persistent_volume_claim {
            let path =
                crate::storage::claim_path(sources.client(), pod, &claim.claim_name, false).await?;
            out.insert(v.name.clone(), path);
        } else if v.ephemeral.is_some() {
            let claim = ephemeral::claim_name(pod, v);
            let path = crate::storage::claim_path(sources.client(), pod, &claim, true).await?;
            out.insert(v.name.clone(), path);
        } else if v.empty_dir.is_some() {
            if !dir.exists() {
                std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
            }
            out.insert(v.name.clone(), dir);
        } else if let Some(files) = desired_files(pod, v, facts, sources).await? {
            if write_atomic(&dir, &files)? {
                tracing::debug!(pod = pod.metadata.name_str(), volume = %v.name, "volume contents written");
            }
            out.insert(v.name.clone(), dir);
        } else {
            return Err(format!(
                "volume {:?}: {} volumes are not supported by korral's node daemon",
                v.name,
                volume_sources(v).join(", ")
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writer_swaps_contents_and_keeps_modes() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().join("cfg");
        let mut files = Files::new();
        files.insert("a.txt".into(), (b"one".to_vec(), 0o644));
        files.insert("sub/b".into(), (b"two".to_vec(), 0o400));
        assert!(write_atomic(&d, &files).expect("write"));
        assert_eq!(std::fs::read(d.join("a.txt")).expect("read a"), b"one");
        assert_eq!(std::fs::read(d.join("sub/b")).expect("read b"), b"two");
        let mode = std::fs::metadata(d.join("sub/b"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        // unchanged contents are not rewritten
        assert!(!write_atomic(&d, &files).expect("rewrite"));
        // a change swaps ..data; a removed key disappears
        files.remove("sub/b");
        files.insert("a.txt".into(), (b"three".to_vec(), 0o600));
        assert!(write_atomic(&d, &files).expect("update"));
        assert_eq!(std::fs::read(d.join("a.txt")).expect("read a"), b"three");
        assert!(!d.join("sub").exists());
        let stamps = std::fs::read_dir(&d)
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("..2"))
            .count();
        assert_eq!(stamps, 1, "the old timestamped directory is removed");
    }

    #[test]
    fn paths_must_stay_inside() {
        assert!(safe_rel("a/b").is_ok());
        assert!(safe_rel("../x").is_err());
        assert!(safe_rel("/etc/passwd").is_err());
        assert!(safe_rel("a/../../x").is_err());
    }
}
