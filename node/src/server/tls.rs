//! TLS of the node's endpoint. The node makes itself a self-signed serving
//! certificate (kept in `DATA/pki/`) and publishes its SHA-256 on the Node
//! (annotation `korral.dev/serving-cert-sha256`, writable only by the node
//! itself and admins), which the API server pins. Callers must present a
//! client certificate for TLS client authentication signed by the cluster
//! CA (from the node's kubeconfig): only the API server has one.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// The node's serving identity.
pub struct ServingCert {
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Key (PEM).
    pub key_pem: String,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub sha256: String,
}

/// SHA-256 of a DER certificate, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn fp_of_pem(pem: &str) -> Result<String, String> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("serving certificate: {e}"))?;
    Ok(fingerprint(&der))
}

/// Loads the serving certificate from `dir`, or makes one for `sans`.
pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<ServingCert, String> {
    let (cp, kp, sp) = (
        dir.join("node.crt"),
        dir.join("node.key"),
        dir.join("node.sans"),
    );
    let wanted = sans.join(",");
    if let (Ok(c), Ok(k), Ok(s)) = (
        std::fs::read_to_string(&cp),
        std::fs::read_to_string(&kp),
        std::fs::read_to_string(&sp),
    ) && s.trim() == wanted
    {
        let sha256 = fp_of_pem(&c)?;
        return Ok(ServingCert {
            cert_pem: c,
            key_pem: k,
            sha256,
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ck = rcgen::generate_simple_self_signed(sans.to_vec())
        .map_err(|e| format!("generating the node certificate: {e}"))?;
    let (c, k) = (ck.cert.pem(), ck.signing_key.serialize_pem());
    for (p, body, mode) in [(&kp, &k, 0o600), (&cp, &c, 0o644), (&sp, &wanted, 0o644)] {
        std::fs::write(p, body).map_err(|e| format!("{}: {e}", p.display()))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    }
    let sha256 = fingerprint(ck.cert.der());
    Ok(ServingCert {
        cert_pem: c,
        key_pem: k,
        sha256,
    })
}

/// The rustls server configuration: our certificate, client certificates required and verified against `ca_pem`.
pub fn server_config(
    cert: &ServingCert,
    ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let c = c.map_err(|e| format!("cluster CA: {e}"))?;
        roots.add(c).map_err(|e| format!("cluster CA: {e}"))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("client verifier: {e}"))?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("serving certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
        .map_err(|e| format!("serving key: {e}"))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("serving certificate: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_kept_and_fingerprinted() {
        let dir = tempfile::tempdir().expect("tmp");
        let sans = vec!["node-a".to_string(), "127.0.0.1".to_string()];
        let a = load_or_create(dir.path(), &sans).expect("create");
        assert_eq!(a.sha256.len(), 64);
        let b = load_or_create(dir.path(), &sans).expect("reload");
        assert_eq!(a.sha256, b.sha256, "reused across restarts");
        let c = load_or_create(dir.path(), &["other".to_string()]).expect("reissue");
        assert_ne!(a.sha256, c.sha256, "new names, new certificate");
        let ca = rcgen::generate_simple_self_signed(vec!["ca".to_string()]).expect("ca");
        assert!(server_config(&a, &ca.cert.pem()).is_ok());
        assert!(server_config(&a, "not a pem").is_err());
    }
}
