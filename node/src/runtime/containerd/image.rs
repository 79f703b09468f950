//! Images in containerd without a registry: import an OCI layout or
//! docker-archive tarball into the content store and image records (the
//! content and images services; containerd 1.6 has no transfer service),
//! resolve an image to its config, and unpack its layers into committed
//! snapshots named by chain ID (the snapshots and diff services).

use std::collections::BTreeMap;

use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, GetImageRequest, Image, UpdateImageRequest,
    diff_client::DiffClient,
};
use containerd_client::types::Descriptor;
use serde_json::Value;

use crate::runtime::containerd::api::{Api, err, not_found};
use crate::runtime::containerd::archive;
use crate::runtime::containerd::busybox::{digest, normalize};

/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// A docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// What a container needs from its image.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// The manifest digest (the image id shown in pod status).
    pub id: String,
    /// The chain ID of the top layer (the snapshot parent), once unpacked.
    pub chain_id: String,
    /// Layers: (media type, digest, size, diff id).
    pub layers: Vec<(String, String, i64, String)>,
    /// `Env` of the image config.
    pub env: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `User`.
    pub user: String,
    /// Every blob the image is made of here, with its size: the index (if
    /// any), the manifest, the config and the layers.
    pub blobs: Vec<(String, u64)>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Chain IDs of a list of diff IDs (OCI image spec).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => digest(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The content of an image archive: blobs by digest and the images it names.
#[derive(Debug, Default)]
pub struct Archive {
    /// Every blob, by digest.
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// Image names (normalised) and the descriptors they point at.
    pub images: Vec<(String, Descriptor)>,
}

/// Reads an OCI layout or `docker save` tarball (for docker archives, a
/// schema 2 manifest is made from the config and uncompressed layers).
pub fn read_archive(tar: &[u8]) -> Result<Archive, String> {
    let files = archive::read_files(tar)?;
    let mut out = Archive::default();
    if let Some(index) = files.get("index.json") {
        let index: Value = serde_json::from_slice(index).map_err(|e| format!("index.json: {e}"))?;
        for (path, body) in &files {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                out.blobs.insert(format!("sha256:{hex}"), body.clone());
            }
        }
        for m in index["manifests"].as_array().into_iter().flatten() {
            let ann = &m["annotations"];
            let name = ann["io.containerd.image.name"]
                .as_str()
                .map(str::to_string)
                .or_else(|| ann["org.opencontainers.image.ref.name"].as_str().map(normalize))
                .ok_or("index.json: a manifest without io.containerd.image.name or org.opencontainers.image.ref.name")?;
            out.images.push((
                name,
                Descriptor {
                    media_type: m["mediaType"].as_str().unwrap_or(OCI_MANIFEST).to_string(),
                    digest: m["digest"].as_str().unwrap_or("").to_string(),
                    size: m["size"].as_i64().unwrap_or(0),
                    annotations: Default::default(),
                },
            ));
        }
    } else if let Some(manifest) = files.get("manifest.json") {
        // docker save: config and uncompressed layers by path; build a schema 2 manifest
        let list: Value =
            serde_json::from_slice(manifest).map_err(|e| format!("manifest.json: {e}"))?;
        for entry in list.as_array().into_iter().flatten() {
            let config_path = entry["Config"].as_str().ok_or("manifest.json: no Config")?;
            let config = files
                .get(config_path)
                .ok_or_else(|| format!("{config_path} missing"))?;
            let config_digest = digest(config);
            out.blobs.insert(config_digest.clone(), config.clone());
            let mut layers = Vec::new();
            for l in strings(&entry["Layers"]) {
                let body = files.get(&l).ok_or_else(|| format!("{l} missing"))?;
                let d = digest(body);
                out.blobs.insert(d.clone(), body.clone());
                layers.push(serde_json::json!({"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "digest": d, "size": body.len()}));
            }
            let m = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config.len()},
                "layers": layers}))
            .map_err(|e| e.to_string())?;
            let md = digest(&m);
            let size = i64::try_from(m.len()).unwrap_or(0);
            out.blobs.insert(md.clone(), m);
            for tag in strings(&entry["RepoTags"]) {
                out.images.push((
                    normalize(&tag),
                    Descriptor {
                        media_type: DOCKER_MANIFEST.into(),
                        digest: md.clone(),
                        size,
                        annotations: Default::default(),
                    },
                ));
            }
        }
    } else {
        return Err("not an image archive: neither index.json (OCI layout) nor manifest.json (docker save) found".into());
    }
    if out.images.is_empty() {
        return Err("the archive names no image".into());
    }
    Ok(out)
}

/// Imports an image archive; returns the image names created.
pub async fn import(api: &Api, tar: &[u8]) -> Result<Vec<String>, String> {
    let archive = read_archive(tar)?;
    for (d, body) in archive.blobs {
        api.write_blob(&d, body).await?;
    }
    let mut out = Vec::new();
    for (name, target) in archive.images {
        put_image(api, &name, target).await?;
        out.push(name);
    }
    Ok(out)
}

/// The descriptor an image record points at (`None`: no such image).
pub async fn target(api: &Api, reference: &str) -> Result<Option<Descriptor>, String> {
    let name = normalize(reference);
    let mut images = ImagesClient::new(api.channel.clone());
    match images
        .get(api.req(GetImageRequest { name: name.clone() }))
        .await
    {
        Ok(r) => Ok(r.into_inner().image.and_then(|i| i.target)),
        Err(s) if not_found(&s) => Ok(None),
        Err(s) => Err(err(&format!("image {name}"), s)),
    }
}

/// Creates (or points anew) the image record `name` at `target`.
pub async fn put_image(api: &Api, name: &str, target: Descriptor) -> Result<(), String> {
    let mut images = ImagesClient::new(api.channel.clone());
    let image = Image {
        name: name.to_string(),
        labels: Default::default(),
        target: Some(target),
        created_at: None,
        updated_at: None,
    };
    let created = images
        .create(api.req(CreateImageRequest {
            image: Some(image.clone()),
            ..Default::default()
        }))
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(s) if s.code() == containerd_client::tonic::Code::AlreadyExists => images
            .update(api.req(UpdateImageRequest {
                image: Some(image),
                update_mask: None,
                ..Default::default()
            }))
            .await
            .map(|_| ())
            .map_err(|s| err(&format!("updating image {name}"), s)),
        Err(s) => Err(err(&format!("creating image {name}"), s)),
    }
}

/// The GOARCH name of this machine's architecture (OCI platforms use Go's names).
pub fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The entry of an index (OCI index or docker manifest list) for this
/// node's platform: `linux` and this machine's architecture.
pub fn platform_manifest(index: &Value) -> Option<&Value> {
    index["manifests"]
        .as_array()?
        .iter()
        .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == architecture())
}

/// Resolves an image by reference to its manifest and config.
pub async fn resolve(api: &Api, reference: &str) -> Result<Option<Resolved>, String> {
    let name = normalize(reference);
    let Some(target) = target(api, reference).await? else {
        return Ok(None);
    };
    let size = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut blobs = vec![(target.digest.clone(), size(target.size))];
    let mut desc = (target.media_type, target.digest);
    if desc.0 == OCI_INDEX || desc.0 == DOCKER_LIST {
        let index: Value = serde_json::from_slice(&api.read_blob(&desc.1).await?)
            .map_err(|e| format!("index {}: {e}", desc.1))?;
        let ms = index["manifests"].as_array().cloned().unwrap_or_default();
        let pick = platform_manifest(&index)
            .or_else(|| ms.first())
            .ok_or_else(|| format!("image {name}: empty index"))?;
        desc = (
            pick["mediaType"]
                .as_str()
                .unwrap_or(OCI_MANIFEST)
                .to_string(),
            pick["digest"].as_str().unwrap_or("").to_string(),
        );
        blobs.push((desc.1.clone(), size(pick["size"].as_i64().unwrap_or(0))));
    }
    let manifest: Value = serde_json::from_slice(&api.read_blob(&desc.1).await?)
        .map_err(|e| format!("manifest {}: {e}", desc.1))?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or("manifest without config")?;
    blobs.push((
        config_digest.to_string(),
        size(manifest["config"]["size"].as_i64().unwrap_or(0)),
    ));
    let config: Value = serde_json::from_slice(&api.read_blob(config_digest).await?)
        .map_err(|e| format!("config: {e}"))?;
    let diff_ids = strings(&config["rootfs"]["diff_ids"]);
    let layers_json = manifest["layers"].as_array().cloned().unwrap_or_default();
    if diff_ids.len() != layers_json.len() {
        return Err(format!(
            "image {name}: {} layers but {} diff ids",
            layers_json.len(),
            diff_ids.len()
        ));
    }
    let layers = layers_json
        .iter()
        .zip(&diff_ids)
        .map(|(l, d)| {
            (
                l["mediaType"].as_str().unwrap_or("").to_string(),
                l["digest"].as_str().unwrap_or("").to_string(),
                l["size"].as_i64().unwrap_or(0),
                d.clone(),
            )
        })
        .collect::<Vec<(String, String, i64, String)>>();
    blobs.extend(layers.iter().map(|l| (l.1.clone(), size(l.2))));
    let c = &config["config"];
    Ok(Some(Resolved {
        id: desc.1,
        chain_id: chain_ids(&diff_ids).last().cloned().unwrap_or_default(),
        layers,
        env: strings(&c["Env"]),
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        working_dir: c["WorkingDir"].as_str().unwrap_or("").to_string(),
        user: c["User"].as_str().unwrap_or("").to_string(),
        blobs,
    }))
}

/// Unpacks the image's layers into committed snapshots (idempotent).
pub async fn unpack(api: &Api, snapshotter: &str, image: &Resolved) -> Result<(), String> {
    let mut snaps = SnapshotsClient::new(api.channel.clone());
    let mut diff = DiffClient::new(api.channel.clone());
    let diff_ids: Vec<String> = image.layers.iter().map(|l| l.3.clone()).collect();
    let chains = chain_ids(&diff_ids);
    for (i, (layer, chain)) in image.layers.iter().zip(&chains).enumerate() {
        let exists = snaps
            .stat(api.req(StatSnapshotRequest {
                snapshotter: snapshotter.into(),
                key: chain.clone(),
            }))
            .await;
        match exists {
            Ok(_) => continue,
            Err(s) if not_found(&s) => {}
            Err(s) => return Err(err("stat snapshot", s)),
        }
        let key = format!("extract-{:016x}-{chain}", rand::random::<u64>());
        let parent = if i == 0 {
            String::new()
        } else {
            chains[i - 1].clone()
        };
        let mounts = snaps
            .prepare(api.req(PrepareSnapshotRequest {
                snapshotter: snapshotter.into(),
                key: key.clone(),
                parent,
                labels: Default::default(),
            }))
            .await
            .map_err(|s| err("preparing a layer snapshot", s))?
            .into_inner()
            .mounts;
        let applied = diff
            .apply(api.req(ApplyRequest {
                diff: Some(Descriptor {
                    media_type: layer.0.clone(),
                    digest: layer.1.clone(),
                    size: layer.2,
                    annotations: Default::default(),
                }),
                mounts,
                payloads: Default::default(),
                ..Default::default()
            }))
            .await;
        if let Err(s) = applied {
            let _ = snaps
                .remove(api.req(RemoveSnapshotRequest {
                    snapshotter: snapshotter.into(),
                    key: key.clone(),
                }))
                .await;
            return Err(err(&format!("applying layer {}", layer.1), s));
        }
        let mut labels = BTreeMap::new();
        labels.insert("containerd.io/snapshot.ref".to_string(), chain.clone());
        let committed = snaps
            .commit(api.req(CommitSnapshotRequest {
                snapshotter: snapshotter.into(),
                name: chain.clone(),
                key: key.clone(),
                labels: labels.into_iter().collect(),
            }))
            .await;
        match committed {
            Ok(_) => {}
            Err(s) if s.code() == containerd_client::tonic::Code::AlreadyExists => {
                let _ = snaps
                    .remove(api.req(RemoveSnapshotRequest {
                        snapshotter: snapshotter.into(),
                        key,
                    }))
                    .await;
            }
            Err(s) => return Err(err("committing a layer snapshot", s)),
        }
    }
    Ok(())
}

/// The normalised name of an image reference (what containerd's image records are called).
pub fn normalize_ref(reference: &str) -> String {
    normalize(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let d = vec!["sha256:a".to_string(), "sha256:b".to_string()];
        let c = chain_ids(&d);
        assert_eq!(c[0], "sha256:a");
        assert_eq!(c[1], digest(b"sha256:a sha256:b"));
    }
}
