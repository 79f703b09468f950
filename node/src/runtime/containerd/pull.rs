//! Image pulls from registries into containerd (1.6: no transfer service, so
//! the node fetches and containerd stores): the reference is resolved to a
//! manifest (by tag or digest; from an index, the entry for this node's
//! platform), the manifest, config and layers are written into containerd's
//! content store (layers streamed, several at once, skipped when present),
//! and the image record points at what was resolved; unpacking is the
//! runtime's usual path ([`super::image::unpack`]) at container start.
//!
//! The registry protocol is the `oci-client` crate's (the OCI distribution
//! client of the ORAS project: manifests, blobs, the anonymous, basic and
//! bearer token flows). Each pull tries the endpoints of the node's
//! [`RegistryConfig`] in order (mirrors, then the registry) and, on each,
//! the credentials of the pod's pull secrets that match, then the
//! endpoint's own, then none. Concurrent pulls of the same image with the
//! same credentials share one fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

use crate::runtime::auth::{Credential, Keyring};
use crate::runtime::containerd::api::Api;
use crate::runtime::containerd::busybox::normalize;
use crate::runtime::containerd::image::{
    DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, platform_manifest, put_image,
};
use crate::runtime::containerd::registry_config::{Endpoint, HostConfig, RegistryConfig};
use containerd_client::types::Descriptor;

/// The system's trust roots (the client has no built-in roots: the
/// workspace's reqwest is built with manual roots only).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Layers fetched at once.
const PARALLEL_LAYERS: usize = 3;

/// What a pull brought: the image's id and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    /// The digest of the platform's manifest (the image id pods report).
    pub id: String,
    /// Manifest, config and layers, in bytes as stored (compressed).
    pub size: u64,
}

type PullFuture = Shared<BoxFuture<'static, Result<Pulled, String>>>;

/// Pulls images into one containerd namespace.
pub struct Puller {
    api: Api,
    config: RegistryConfig,
    roots: Vec<Certificate>,
    inflight: Mutex<HashMap<String, PullFuture>>,
}

/// Splits a PEM bundle into its certificates.
fn pem_certificates(bundle: &[u8]) -> Vec<Certificate> {
    const END: &str = "-----END CERTIFICATE-----";
    String::from_utf8_lossy(bundle)
        .split_inclusive(END)
        .filter(|c| c.contains("-----BEGIN CERTIFICATE-----") && c.contains(END))
        .map(|c| Certificate {
            encoding: CertificateEncoding::Pem,
            data: c.trim().as_bytes().to_vec(),
        })
        .collect()
}

/// The client's form of a credential (`None`: anonymous).
pub fn auth(c: Option<&Credential>) -> RegistryAuth {
    match c {
        None => RegistryAuth::Anonymous,
        Some(Credential::Basic { username, password }) => {
            RegistryAuth::Basic(username.clone(), password.clone())
        }
        Some(Credential::Bearer(t)) => RegistryAuth::Bearer(t.clone()),
    }
}

/// A registry error in words close to containerd's (the registry's own text kept).
pub fn describe(e: &OciDistributionError) -> String {
    match e {
        OciDistributionError::UnauthorizedError { url } => format!("{url}: 401 Unauthorized"),
        OciDistributionError::RegistryError { envelope, url } => {
            let msgs: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect();
            format!("{url}: {}", msgs.join("; "))
        }
        OciDistributionError::ServerError { code, url, message } => {
            format!("{url}: {code}: {}", message.trim())
        }
        OciDistributionError::RequestError(r) => {
            // reqwest's Display hides the cause (a refused connection, a bad certificate)
            let mut s = r.to_string();
            let mut src = std::error::Error::source(r);
            while let Some(cause) = src {
                s.push_str(&format!(": {cause}"));
                src = cause.source();
            }
            s
        }
        other => other.to_string(),
    }
}

fn is_auth_error(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                oci_client::errors::OciErrorCode::Unauthorized
                    | oci_client::errors::OciErrorCode::Denied
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 401 || *code == 403,
        _ => false,
    }
}

/// The media type of a manifest body (its `mediaType`, else by shape).
fn media_type(body: &Value) -> String {
    body["mediaType"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            if body.get("manifests").is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        })
}

const ACCEPT: [&str; 4] = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// The system's trust roots, one certificate each.
pub fn system_roots() -> Vec<Certificate> {
    std::fs::read(SYSTEM_ROOTS)
        .map(|b| pem_certificates(&b))
        .unwrap_or_default()
}

/// A distribution client for one registry host: the system's roots (`roots`)
/// plus the host's CA, its certificate checks, HTTPS or plain HTTP.
pub fn registry_client(hc: &HostConfig, plain_http: bool, roots: &[Certificate]) -> Client {
    let mut roots = roots.to_vec();
    if let Some(ca) = &hc.ca_pem {
        roots.extend(pem_certificates(ca));
    }
    Client::new(ClientConfig {
        protocol: if plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: hc.insecure_skip_verify,
        extra_root_certificates: roots,
        max_concurrent_download: PARALLEL_LAYERS,
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_timeout: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    })
}

impl Puller {
    /// A puller for `api`'s namespace with the node's registry configuration.
    pub fn new(api: Api, config: RegistryConfig) -> Self {
        let roots = system_roots();
        Puller {
            api,
            config,
            roots,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// Pulls `image` with the credentials `keyring` holds for it. A pull of the
    /// same image with the same credentials already under way is joined.
    pub async fn pull(self: &Arc<Self>, image: &str, keyring: &Keyring) -> Result<Pulled, String> {
        let name = normalize(image);
        let reference: Reference = name
            .parse()
            .map_err(|e| format!("invalid image reference {image:?}: {e}"))?;
        let creds = keyring.lookup(reference.registry(), reference.repository());
        let key = format!(
            "{name}\n{}",
            creds
                .iter()
                .map(Credential::fingerprint)
                .collect::<Vec<_>>()
                .join(",")
        );
        let fut = {
            let mut inflight = self
                .inflight
                .lock()
                .map_err(|_| "pull table poisoned".to_string())?;
            inflight
                .entry(key.clone())
                .or_insert_with(|| {
                    let me = self.clone();
                    let (name, keyring) = (name.clone(), keyring.clone());
                    async move {
                        let r = me.fetch(&name, &reference, &keyring).await;
                        if let Ok(mut m) = me.inflight.lock() {
                            m.remove(&key);
                        }
                        r
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        fut.await
    }

    fn client(&self, ep: &Endpoint) -> Client {
        registry_client(&self.config.host(&ep.host), ep.plain_http, &self.roots)
    }

    /// Tries each endpoint; the errors of all of them when none has the image.
    async fn fetch(
        &self,
        name: &str,
        reference: &Reference,
        keyring: &Keyring,
    ) -> Result<Pulled, String> {
        let mut errors = Vec::new();
        for ep in self.config.endpoints(reference.registry()) {
            let on_ep = match (reference.tag(), reference.digest()) {
                (_, Some(d)) => Reference::with_digest(
                    ep.host.clone(),
                    reference.repository().to_string(),
                    d.to_string(),
                ),
                (tag, None) => Reference::with_tag(
                    ep.host.clone(),
                    reference.repository().to_string(),
                    tag.unwrap_or("latest").to_string(),
                ),
            };
            let mut creds: Vec<Option<Credential>> = keyring
                .lookup(&ep.host, reference.repository())
                .into_iter()
                .map(Some)
                .collect();
            if ep.host != reference.registry() {
                // a mirror: the pod's credentials for the image's registry do not go elsewhere
                creds.clear();
            }
            if let Some(own) = self.config.host(&ep.host).auth {
                creds.push(Some(own));
            }
            if creds.is_empty() {
                creds.push(None);
            }
            match self.fetch_from(&ep, &on_ep, name, &creds).await {
                Ok(p) => return Ok(p),
                Err(e) => {
                    tracing::debug!(image = name, endpoint = %ep, error = %e, "pull from endpoint failed");
                    errors.push(e);
                }
            }
        }
        Err(format!(
            "failed to pull and unpack image {name:?}: {}",
            errors.join("; ")
        ))
    }

    /// Fetches from one endpoint, trying the credentials in turn while the registry refuses them.
    async fn fetch_from(
        &self,
        ep: &Endpoint,
        reference: &Reference,
        name: &str,
        creds: &[Option<Credential>],
    ) -> Result<Pulled, String> {
        let mut last = String::new();
        for (i, c) in creds.iter().enumerate() {
            // a client keeps the first credentials it was given for a registry: one per try
            let client = self.client(ep);
            let a = auth(c.as_ref());
            match client.pull_manifest_raw(reference, &a, &ACCEPT).await {
                Ok((body, digest)) => {
                    return self
                        .store(&client, reference, name, body, digest)
                        .await
                        .map_err(|e| format!("{ep}: {e}"));
                }
                Err(e) => {
                    last = format!("failed to resolve reference {name:?}: {}", describe(&e));
                    if !is_auth_error(&e) || i + 1 == creds.len() {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    /// Stores what a resolved manifest (or index) names and points the image record at it.
    async fn store(
        &self,
        client: &Client,
        reference: &Reference,
        name: &str,
        body: Vec<u8>,
        digest: String,
    ) -> Result<Pulled, String> {
        let top: Value =
            serde_json::from_slice(&body).map_err(|e| format!("manifest {digest}: {e}"))?;
        let top_type = media_type(&top);
        let top_size = body.len();
        let mut size = top_size as u64;
        self.api.write_blob(&digest, body).await?;
        let (manifest, manifest_digest) = if top_type == OCI_INDEX || top_type == DOCKER_LIST {
            let entry = platform_manifest(&top).ok_or_else(|| {
                format!(
                    "no match for platform linux/{} in manifest {digest}: not found",
                    crate::runtime::containerd::image::architecture()
                )
            })?;
            let d = entry["digest"]
                .as_str()
                .ok_or("an index entry without a digest")?
                .to_string();
            let (mbody, md) = client
                .pull_manifest_raw(
                    &reference.clone_with_digest(d),
                    &RegistryAuth::Anonymous,
                    &ACCEPT,
                )
                .await
                .map_err(|e| describe(&e))?;
            size += mbody.len() as u64;
            let m: Value =
                serde_json::from_slice(&mbody).map_err(|e| format!("manifest {md}: {e}"))?;
            self.api.write_blob(&md, mbody).await?;
            (m, md)
        } else {
            (top, digest.clone())
        };
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .ok_or_else(|| format!("manifest {manifest_digest} has no config"))?
            .to_string();
        let mut blobs: Vec<(String, i64)> = vec![(
            config_digest,
            manifest["config"]["size"].as_i64().unwrap_or(0),
        )];
        for l in manifest["layers"].as_array().into_iter().flatten() {
            let d = l["digest"].as_str().ok_or("a layer without a digest")?;
            blobs.push((d.to_string(), l["size"].as_i64().unwrap_or(0)));
        }
        size += blobs
            .iter()
            .map(|(_, s)| u64::try_from(*s).unwrap_or(0))
            .sum::<u64>();
        futures_util::stream::iter(blobs.into_iter().map(|(d, s)| async move {
            if self.api.has_blob(&d).await {
                return Ok(());
            }
            let stream = client
                .pull_blob_stream(reference, d.as_str())
                .await
                .map_err(|e| format!("fetching {d}: {}", describe(&e)))?;
            let body = stream.stream.map_err(|e| e.to_string());
            self.api.write_stream(&d, s, body).await
        }))
        .buffer_unordered(PARALLEL_LAYERS)
        .try_collect::<Vec<()>>()
        .await?;
        put_image(
            &self.api,
            name,
            Descriptor {
                media_type: top_type,
                digest,
                size: i64::try_from(top_size).unwrap_or(0),
                annotations: Default::default(),
            },
        )
        .await?;
        Ok(Pulled {
            id: manifest_digest,
            size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_pem_bundles_and_types_manifests() {
        let one = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n";
        let bundle = format!("# comment\n{one}{one}trailing");
        assert_eq!(pem_certificates(bundle.as_bytes()).len(), 2);
        assert_eq!(media_type(&serde_json::json!({"manifests": []})), OCI_INDEX);
        assert_eq!(
            media_type(&serde_json::json!({"mediaType": DOCKER_MANIFEST})),
            DOCKER_MANIFEST
        );
        let e = OciDistributionError::UnauthorizedError {
            url: "https://r/v2/x/manifests/1".into(),
        };
        assert!(is_auth_error(&e));
        assert_eq!(describe(&e), "https://r/v2/x/manifests/1: 401 Unauthorized");
    }
}
