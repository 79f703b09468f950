//! Asking the cluster for a node client certificate, as the kubelet does:
//! a fresh ECDSA P-256 key made here (it never leaves the node), a PKCS#10
//! request for `CN=system:node:NAME, O=system:nodes`, a
//! CertificateSigningRequest for the `kubernetes.io/kube-apiserver-client-kubelet`
//! signer with usages `digital signature` and `client auth`, then waiting
//! until it is approved and signed (or denied, or failed).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use reconcilers::runtime::{Api, Client, ClientError, ListParams, WatchEvent, WriteParams};

use crate::tls_bootstrap::files;

/// The kubelet client certificates' signer.
pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The usages of an ECDSA node client certificate.
pub const USAGES: [&str; 2] = ["digital signature", "client auth"];

/// A signed certificate and the key it certifies (PEM).
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
    /// The CertificateSigningRequest's name.
    pub csr_name: String,
}

/// How the request is named: bootstrap requests get the kubelet's
/// `node-csr-<digest>`, renewals client-go's `csr-<random>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// `node-csr-` and a digest of the request.
    Bootstrap,
    /// `generateName: csr-`.
    Renewal,
}

/// Makes a key and a request for node `node`, submits it with `client` and
/// waits (up to `timeout`) for the certificate.
pub async fn request_certificate(
    client: &Client,
    node: &str,
    naming: Naming,
    timeout: Duration,
) -> Result<Issued, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "system:nodes");
    dn.push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params.distinguished_name = dn;
    let request = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| format!("cannot make the certificate request: {e}"))?;
    let mut metadata = ObjectMeta::default();
    match naming {
        Naming::Bootstrap => {
            let digest = ring::digest::digest(&ring::digest::SHA256, request.as_bytes());
            let hex: String = digest.as_ref()[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            metadata.name = Some(format!("node-csr-{hex}"));
        }
        Naming::Renewal => metadata.generate_name = Some("csr-".into()),
    }
    let csr = CertificateSigningRequest {
        metadata,
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: SIGNER.into(),
            usages: Some(USAGES.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        ..Default::default()
    };
    let api = client.api::<CertificateSigningRequest>(None);
    let wp = WriteParams {
        field_manager: Some("korral-node".into()),
        ..Default::default()
    };
    let why = |e: ClientError| explain(naming, e);
    let created = api.create(&csr, &wp).await.map_err(why)?;
    let name = created.metadata.name.clone().unwrap_or_default();
    tracing::info!(csr = %name, node, "requested a client certificate; waiting for approval and signing");
    let deadline = Instant::now() + timeout;
    let mut current = created;
    let cert_pem = loop {
        if let Some(pem) = outcome(&name, &current)? {
            break pem;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "CertificateSigningRequest {name} was not approved and signed within {timeout:?} \
                 (are the csrapproving and csrsigning controllers running? `kubectl certificate approve {name}` approves it by hand)"
            ));
        }
        let rv = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        match tokio::time::timeout(left, next_version(&api, &name, &rv)).await {
            // the deadline: reported above
            Err(_) => {}
            Ok(Ok(c)) => current = c,
            // a server restarting (or failing over) meanwhile: keep waiting
            Ok(Err(e)) if e.code() == 0 || e.code() >= 500 => {
                tracing::warn!(csr = %name, error = %e, "cannot follow the request; trying again");
                tokio::time::sleep(RETRY_AFTER).await;
            }
            Ok(Err(e)) => return Err(why(e)),
        }
    };
    let info = files::cert_info(&cert_pem)?;
    if info.public_key_der != rcgen::PublicKeyData::subject_public_key_info(&key) {
        return Err(format!(
            "CertificateSigningRequest {name}: the issued certificate is not for the key requested"
        ));
    }
    Ok(Issued {
        cert_pem,
        key_pem: key.serialize_pem(),
        csr_name: name,
    })
}

/// Turns an API error into a message that says what to do.
fn explain(naming: Naming, e: ClientError) -> String {
    match (naming, e.code()) {
        (Naming::Bootstrap, 401) => format!(
            "the API server refused the credentials (401 Unauthorized: {e}): a bootstrap token that is \
             wrong, expired or deleted; make a new one with `korral token create --bootstrap`"
        ),
        (Naming::Bootstrap, 403) => format!(
            "the API server forbids it (403: {e}): the token's group needs the system:node-bootstrapper \
             role (tokens of `korral token create --bootstrap` have it)"
        ),
        (Naming::Renewal, 401) => format!(
            "the API server refused the node's certificate (401 Unauthorized: {e}): if it has expired, \
             remove the node's kubeconfig and join again with a new token"
        ),
        _ => e.to_string(),
    }
}

/// The pause before following a request again after the server did not answer.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// A watch of one request is re-opened when nothing (not even a bookmark) came for this long.
const WATCH_IDLE: Duration = Duration::from_secs(60);

/// The certificate of a signed request, `None` while it waits, an error
/// once it is denied or failed.
fn outcome(name: &str, csr: &CertificateSigningRequest) -> Result<Option<String>, String> {
    let Some(status) = csr.status.as_ref() else {
        return Ok(None);
    };
    for c in status.conditions.iter().flatten() {
        if c.status == "True" && (c.type_ == "Denied" || c.type_ == "Failed") {
            return Err(format!(
                "CertificateSigningRequest {name} was {}: {} {}",
                c.type_.to_lowercase(),
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            ));
        }
    }
    match status.certificate.as_ref().filter(|c| !c.0.is_empty()) {
        Some(cert) => String::from_utf8(cert.0.clone())
            .map(Some)
            .map_err(|_| format!("CertificateSigningRequest {name}: the certificate is not PEM")),
        None => Ok(None),
    }
}

/// The request's next version after `rv`, from a watch of it alone; where
/// the watch cannot tell (it ended, or the revision is gone) the request as
/// it is now.
async fn next_version(
    api: &Api<CertificateSigningRequest>,
    name: &str,
    rv: &str,
) -> Result<CertificateSigningRequest, ClientError> {
    let params = ListParams {
        field_selector: Some(format!("metadata.name={name}")),
        ..Default::default()
    };
    let stream = match api.watch(&params, rv, WATCH_IDLE).await {
        Ok(s) => s,
        Err(e) if e.is_gone() => return api.get(name).await,
        Err(e) => return Err(e),
    };
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        match ev? {
            WatchEvent::Added(c) | WatchEvent::Modified(c) => return Ok(c),
            WatchEvent::Bookmark(_) => {}
            // deleted (the read answers 404) or an error event
            WatchEvent::Deleted(_) | WatchEvent::Error(_) => break,
        }
    }
    api.get(name).await
}
