//! TLS for the Ingress controller's HTTPS listener: the certificate is
//! chosen per connection by SNI from the current routing table (the
//! Ingresses' `kubernetes.io/tls` Secrets), else a self-signed default
//! certificate (ingress-nginx's "Fake Certificate"); ALPN offers h2 and
//! http/1.1.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::Shared;
use super::routes::certified_key_pem;

/// The subject of the default certificate.
pub const DEFAULT_CERT_NAME: &str = "Korral Ingress Controller Fake Certificate";

/// Picks the certificate for each handshake.
#[derive(Debug)]
pub struct Resolver {
    shared: Shared,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.shared.table();
        hello
            .server_name()
            .and_then(|sni| table.cert(sni))
            .or_else(|| Some(self.default.clone()))
    }
}

/// A self-signed certificate for connections naming no host we have a certificate for.
pub fn default_cert() -> Result<Arc<CertifiedKey>, String> {
    let mut params = rcgen::CertificateParams::new(vec!["ingress.local".to_string()])
        .map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, DEFAULT_CERT_NAME);
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    certified_key_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
}

/// The HTTPS listener's rustls configuration.
pub fn server_config(shared: Shared) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver {
            shared,
            default: default_cert()?,
        }));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
