//! The images of a containerd node as the image garbage collector sees
//! them: listed by id (a manifest's digest, all names of it together) with
//! their size, the image filesystem (the snapshotter's root, from
//! containerd's introspection service), and removal. korral's content and
//! snapshots hang off one permanent lease ([`super::api::LEASE`]), so
//! removing an image deletes its names, then the layer snapshots (top
//! first) and blobs no other image uses, and finally runs containerd's
//! garbage collection synchronously so the disk space is free when it returns.

use std::collections::{BTreeMap, HashSet};

use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::introspection_client::IntrospectionClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::RemoveSnapshotRequest;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::{
    CreateRequest, DeleteContentRequest, DeleteImageRequest, DeleteRequest, ListImagesRequest,
    PluginsRequest, content_client::ContentClient,
};
use containerd_client::tonic::{Code, Request};

use crate::runtime::containerd::api::{Api, err, not_found};
use crate::runtime::containerd::image::{chain_ids, resolve};
use crate::runtime::{ImageFs, ImageInfo};

/// One image (all its names) and what it is made of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredImage {
    /// The manifest digest.
    pub id: String,
    /// Its names.
    pub names: Vec<String>,
    /// Its blobs (index, manifest, config, layers) with their sizes.
    pub blobs: Vec<(String, u64)>,
    /// The chain ids of its unpacked layers, bottom first.
    pub chains: Vec<String>,
}

impl StoredImage {
    /// The image as the garbage collector sees it.
    pub fn info(&self) -> ImageInfo {
        ImageInfo {
            id: self.id.clone(),
            names: self.names.clone(),
            size: self.blobs.iter().map(|b| b.1).sum(),
        }
    }
}

/// Every image in the namespace, by id. An image that cannot be read
/// (missing blobs) is left out, with a warning.
pub async fn list(api: &Api) -> Result<Vec<StoredImage>, String> {
    let records = ImagesClient::new(api.channel.clone())
        .list(api.req(ListImagesRequest::default()))
        .await
        .map_err(|s| err("listing images", s))?
        .into_inner()
        .images;
    let mut by_id: BTreeMap<String, StoredImage> = BTreeMap::new();
    for rec in records {
        let resolved = match resolve(api, &rec.name).await {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(image = %rec.name, error = %e, "an image that cannot be read");
                continue;
            }
        };
        let entry = by_id
            .entry(resolved.id.clone())
            .or_insert_with(|| StoredImage {
                id: resolved.id.clone(),
                chains: chain_ids(
                    &resolved
                        .layers
                        .iter()
                        .map(|l| l.3.clone())
                        .collect::<Vec<_>>(),
                ),
                ..Default::default()
            });
        entry.names.push(rec.name);
        for b in resolved.blobs {
            if !entry.blobs.iter().any(|(d, _)| *d == b.0) {
                entry.blobs.push(b);
            }
        }
    }
    Ok(by_id.into_values().collect())
}

/// The image filesystem: where the snapshotter keeps unpacked layers, and its usage.
pub async fn image_fs(api: &Api, snapshotter: &str) -> Result<ImageFs, String> {
    let plugins = IntrospectionClient::new(api.channel.clone())
        .plugins(api.req(PluginsRequest {
            filters: vec![format!(
                "type==io.containerd.snapshotter.v1,id=={snapshotter}"
            )],
        }))
        .await
        .map_err(|s| err("introspecting the snapshotter", s))?
        .into_inner()
        .plugins;
    let root = plugins
        .iter()
        .find_map(|p| p.exports.get("root"))
        .ok_or_else(|| format!("containerd's {snapshotter} snapshotter exports no root"))?;
    let path = std::path::PathBuf::from(root);
    let (total, avail) = crate::machine::disk(&path)
        .ok_or_else(|| format!("cannot read the filesystem of {}", path.display()))?;
    Ok(ImageFs {
        path,
        capacity_bytes: u64::try_from(total).unwrap_or(0),
        available_bytes: u64::try_from(avail).unwrap_or(0),
    })
}

/// Removes the image `id`: its names, then its snapshots and blobs that no
/// other image shares, then containerd collects the garbage.
pub async fn remove(api: &Api, snapshotter: &str, id: &str) -> Result<(), String> {
    let all = list(api).await?;
    let Some(victim) = all.iter().find(|i| i.id == id) else {
        return Ok(());
    };
    let others = all.iter().filter(|i| i.id != id);
    let keep_blobs: HashSet<&str> = others
        .clone()
        .flat_map(|i| i.blobs.iter().map(|b| b.0.as_str()))
        .collect();
    let keep_chains: HashSet<&str> = others
        .flat_map(|i| i.chains.iter().map(String::as_str))
        .collect();
    let mut images = ImagesClient::new(api.channel.clone());
    for name in &victim.names {
        match images
            .delete(api.req(DeleteImageRequest {
                name: name.clone(),
                sync: false,
                target: None,
            }))
            .await
        {
            Ok(_) => {}
            Err(s) if not_found(&s) => {}
            Err(s) => return Err(err(&format!("deleting image {name}"), s)),
        }
    }
    let mut snaps = SnapshotsClient::new(api.channel.clone());
    for chain in victim.chains.iter().rev() {
        if keep_chains.contains(chain.as_str()) {
            continue;
        }
        let removed = snaps
            .remove(api.req(RemoveSnapshotRequest {
                snapshotter: snapshotter.into(),
                key: chain.clone(),
            }))
            .await;
        match removed {
            Ok(_) => {}
            Err(s) if not_found(&s) => {}
            // a container's snapshot still sits on it: it and its parents stay
            Err(s) if s.code() == Code::FailedPrecondition => {
                tracing::debug!(snapshot = %chain, "snapshot still in use");
                break;
            }
            Err(s) => return Err(err(&format!("removing snapshot {chain}"), s)),
        }
    }
    let mut content = ContentClient::new(api.channel.clone());
    for (digest, _) in &victim.blobs {
        if keep_blobs.contains(digest.as_str()) {
            continue;
        }
        match content
            .delete(api.req(DeleteContentRequest {
                digest: digest.clone(),
            }))
            .await
        {
            Ok(_) => {}
            Err(s) if not_found(&s) => {}
            Err(s) => return Err(err(&format!("deleting blob {digest}"), s)),
        }
    }
    collect_garbage(api).await
}

/// A request in the namespace without korral's lease.
fn unleased<T>(api: &Api, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    if let Ok(v) = api.namespace.parse() {
        r.metadata_mut().insert("containerd-namespace", v);
    }
    r
}

/// Runs containerd's garbage collection and waits for it: a lease of our
/// own created, then deleted with `sync`.
async fn collect_garbage(api: &Api) -> Result<(), String> {
    let mut leases = LeasesClient::new(api.channel.clone());
    let id = format!("korral-gc-{:016x}", rand::random::<u64>());
    leases
        .create(unleased(
            api,
            CreateRequest {
                id: id.clone(),
                labels: Default::default(),
            },
        ))
        .await
        .map_err(|s| err("creating a lease", s))?;
    leases
        .delete(unleased(api, DeleteRequest { id, sync: true }))
        .await
        .map_err(|s| err("collecting garbage", s))?;
    Ok(())
}
