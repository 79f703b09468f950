//! `korral image push`: an image from containerd's content store or from
//! an archive (OCI layout or `docker save`) put into a registry — config and
//! layers (skipped when the registry has them), then the manifest under the
//! destination's tag; an index is pushed with every manifest it names that
//! the source holds. The registry protocol is the `oci-client` crate's, as
//! for pulls ([`super::pull`]).

use std::collections::BTreeMap;

use oci_client::Reference;
use oci_client::client::Client;
use oci_client::secrets::RegistryAuth;
use serde_json::Value;

use crate::runtime::containerd::api::Api;
use crate::runtime::containerd::busybox::normalize;
use crate::runtime::containerd::image::{DOCKER_LIST, OCI_INDEX};
use crate::runtime::containerd::pull::{auth, describe, registry_client, system_roots};
use crate::runtime::containerd::registry_config::HostConfig;

/// Where an image's blobs are read from.
pub enum Source<'a> {
    /// containerd's content store.
    Containerd(&'a Api),
    /// An archive's blobs, by digest.
    Archive(&'a BTreeMap<String, Vec<u8>>),
}

impl Source<'_> {
    async fn blob(&self, digest: &str) -> Result<Vec<u8>, String> {
        match self {
            Source::Containerd(api) => api.read_blob(digest).await,
            Source::Archive(blobs) => blobs
                .get(digest)
                .cloned()
                .ok_or_else(|| format!("the archive has no blob {digest}")),
        }
    }

    async fn has(&self, digest: &str) -> bool {
        match self {
            Source::Containerd(api) => api.has_blob(digest).await,
            Source::Archive(blobs) => blobs.contains_key(digest),
        }
    }
}

/// The registry to push to and how.
#[derive(Clone, Debug, Default)]
pub struct Destination {
    /// The destination reference (`host[:port]/repo[:tag]`).
    pub reference: String,
    /// CA, certificate checks and credentials.
    pub host: HostConfig,
    /// Plain HTTP.
    pub plain_http: bool,
}

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    /// The digest of the pushed manifest (or index).
    pub digest: String,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the registry already had.
    pub present: usize,
}

async fn push_blob(
    client: &Client,
    target: &Reference,
    source: &Source<'_>,
    digest: &str,
    out: &mut Pushed,
) -> Result<(), String> {
    let probe = target.clone_with_digest(digest.to_string());
    // a HEAD of the blob; an error (absent, refused) means: upload it
    if client
        .pull_blob_stream_partial(&probe, digest, 0, Some(1))
        .await
        .is_ok()
    {
        out.present += 1;
        return Ok(());
    }
    let data = source.blob(digest).await?;
    client
        .push_blob(target, &data, digest)
        .await
        .map_err(|e| format!("pushing {digest}: {}", describe(&e)))?;
    out.uploaded += 1;
    Ok(())
}

/// Pushes one manifest's config and layers, then the manifest under `target`.
async fn push_manifest(
    client: &Client,
    target: &Reference,
    source: &Source<'_>,
    media_type: &str,
    digest: &str,
    out: &mut Pushed,
) -> Result<(), String> {
    let body = source.blob(digest).await?;
    let m: Value = serde_json::from_slice(&body).map_err(|e| format!("manifest {digest}: {e}"))?;
    let mut blobs: Vec<&str> = Vec::new();
    if let Some(c) = m["config"]["digest"].as_str() {
        blobs.push(c);
    }
    for l in m["layers"].as_array().into_iter().flatten() {
        blobs.push(l["digest"].as_str().ok_or("a layer without a digest")?);
    }
    for b in blobs {
        push_blob(client, target, source, b, out).await?;
    }
    let content_type = media_type
        .parse()
        .map_err(|_| format!("bad media type {media_type:?}"))?;
    client
        .push_manifest_raw(target, body, content_type)
        .await
        .map_err(|e| format!("pushing manifest {digest}: {}", describe(&e)))?;
    Ok(())
}

/// Pushes the image `top` points at to `dest`.
pub async fn push(
    source: &Source<'_>,
    top: &containerd_client::types::Descriptor,
    dest: &Destination,
) -> Result<Pushed, String> {
    let target: Reference = normalize(&dest.reference)
        .parse()
        .map_err(|e| format!("invalid destination {:?}: {e}", dest.reference))?;
    let client = registry_client(&dest.host, dest.plain_http, &system_roots());
    let a = auth(dest.host.auth.as_ref());
    client
        .store_auth_if_needed(target.resolve_registry(), &a)
        .await;
    if !matches!(a, RegistryAuth::Anonymous) {
        client
            .auth(&target, &a, oci_client::RegistryOperation::Push)
            .await
            .map_err(|e| format!("authenticating to {}: {}", target.registry(), describe(&e)))?;
    }
    let mut out = Pushed {
        digest: top.digest.clone(),
        ..Default::default()
    };
    if top.media_type == OCI_INDEX || top.media_type == DOCKER_LIST {
        let body = source.blob(&top.digest).await?;
        let index: Value =
            serde_json::from_slice(&body).map_err(|e| format!("index {}: {e}", top.digest))?;
        for m in index["manifests"].as_array().into_iter().flatten() {
            let (Some(d), Some(t)) = (m["digest"].as_str(), m["mediaType"].as_str()) else {
                continue;
            };
            if !source.has(d).await {
                return Err(format!(
                    "the index names manifest {d}, which the source does not hold (only whole images are pushed)"
                ));
            }
            let by_digest = target.clone_with_digest(d.to_string());
            push_manifest(&client, &by_digest, source, t, d, &mut out).await?;
        }
        let content_type = top
            .media_type
            .parse()
            .map_err(|_| format!("bad media type {:?}", top.media_type))?;
        client
            .push_manifest_raw(&target, body, content_type)
            .await
            .map_err(|e| format!("pushing index {}: {}", top.digest, describe(&e)))?;
    } else {
        push_manifest(
            &client,
            &target,
            source,
            &top.media_type,
            &top.digest,
            &mut out,
        )
        .await?;
    }
    Ok(out)
}
