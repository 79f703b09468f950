//! The cluster's certificates, like k3s: a self-signed CA made on first start
//! and a serving certificate for the API server signed by it, kept in the
//! data directory and reused on later starts.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Why certificates could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// rcgen failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// PEM-encoded certificates and keys the server needs.
#[derive(Clone, Debug)]
pub struct ServerPki {
    /// The CA certificate (PEM), for kubeconfigs and clients.
    pub ca_cert_pem: String,
    /// The serving certificate chain (PEM).
    pub serving_cert_pem: String,
    /// The serving certificate's private key (PEM).
    pub serving_key_pem: String,
    /// The client certificate the API server presents to node daemons (logs, exec) (PEM).
    pub kubelet_client_cert_pem: String,
    /// Its private key (PEM).
    pub kubelet_client_key_pem: String,
    /// The admin's client certificate (`CN=korral-admin`, `O=system:masters`) (PEM).
    pub admin_cert_pem: String,
    /// Its private key (PEM).
    pub admin_key_pem: String,
    /// The CA's private key (PEM), to sign node serving certificates.
    ca_key_pem: String,
}

fn read(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes a file readable only by its owner (keys, tokens).
pub fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "korral-ca");
    dn.push(DnType::OrganizationName, "korral");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // validity: rcgen's defaults (1975 to 4096), as a development cluster's CA may outlive anything
    params
}

/// Loads the PKI from `dir`, creating what is missing. The serving
/// certificate covers `localhost`, `127.0.0.1`, `::1`, `kubernetes`,
/// `kubernetes.default.svc` and the extra names and IPs given.
pub fn load_or_create(dir: &Path, extra_sans: &[String]) -> Result<ServerPki, PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca_cert_path = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    let (ca_cert_pem, ca_key_pem) = match (read(&ca_cert_path)?, read(&ca_key_path)?) {
        (Some(c), Some(k)) => (c, k),
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params().self_signed(&key)?;
            let (c, k) = (cert.pem(), key.serialize_pem());
            write_private(&ca_key_path, &k)?;
            write_private(&ca_cert_path, &c)?;
            tracing::info!(path = %ca_cert_path.display(), "generated cluster CA");
            (c, k)
        }
    };
    let mut sans: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
    ];
    for s in extra_sans {
        if !sans.contains(s) {
            sans.push(s.clone());
        }
    }
    let serving_cert_path = dir.join("server.crt");
    let serving_key_path = dir.join("server.key");
    let sans_path = dir.join("server.sans");
    let wanted = sans.join(",");
    let existing = (
        read(&serving_cert_path)?,
        read(&serving_key_path)?,
        read(&sans_path)?,
    );
    let (serving_cert_pem, serving_key_pem) = match existing {
        (Some(c), Some(k), Some(s)) if s.trim() == wanted => (c, k),
        _ => {
            let (c, k) = issue(&ca_key_pem, "korral-apiserver", &[], &sans, true)?;
            write_private(&serving_key_path, &k)?;
            write_private(&serving_cert_path, &c)?;
            write_private(&sans_path, &wanted)?;
            tracing::info!(sans = %wanted, "issued API server certificate");
            (c, k)
        }
    };
    // node daemons accept this client certificate and nothing else; to the
    // API server it is an ordinary user RBAC grants nothing to
    let (kubelet_client_cert_pem, kubelet_client_key_pem) = client_cert(
        dir,
        "kubelet-client",
        &ca_key_pem,
        "korral-apiserver-kubelet-client",
        &[],
    )?;
    // the admin's, for the kubeconfig (as kubeadm's, k3s's and kind's are)
    let (admin_cert_pem, admin_key_pem) = client_cert(
        dir,
        "admin",
        &ca_key_pem,
        "korral-admin",
        &["system:masters"],
    )?;
    Ok(ServerPki {
        ca_cert_pem,
        serving_cert_pem,
        serving_key_pem,
        kubelet_client_cert_pem,
        kubelet_client_key_pem,
        admin_cert_pem,
        admin_key_pem,
        ca_key_pem,
    })
}

/// A client certificate kept as `NAME.crt`/`NAME.key` in `dir`, issued on first use.
fn client_cert(
    dir: &Path,
    name: &str,
    ca_key_pem: &str,
    common_name: &str,
    organizations: &[&str],
) -> Result<(String, String), PkiError> {
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    match (read(&cert_path)?, read(&key_path)?) {
        (Some(c), Some(k)) => Ok((c, k)),
        _ => {
            let (c, k) = issue(ca_key_pem, common_name, organizations, &[], false)?;
            write_private(&key_path, &k)?;
            write_private(&cert_path, &c)?;
            Ok((c, k))
        }
    }
}

/// Issues a certificate signed by the CA whose key is `ca_key_pem`, for
/// `common_name` in `organizations`; returns (certificate PEM, key PEM).
fn issue(
    ca_key_pem: &str,
    common_name: &str,
    organizations: &[&str],
    sans: &[String],
    server: bool,
) -> Result<(String, String), PkiError> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => s.clone().try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    for o in organizations {
        dn.push(DnType::OrganizationName, *o);
    }
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = if server {
        vec![ExtendedKeyUsagePurpose::ServerAuth]
    } else {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    };
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl ServerPki {
    /// Issues a serving certificate for a node daemon (its logs/exec endpoint).
    pub fn issue_node_serving_cert(
        &self,
        node: &str,
        sans: &[String],
    ) -> Result<(String, String), PkiError> {
        let mut all = vec![node.to_string()];
        all.extend(sans.iter().cloned());
        issue(
            &self.ca_key_pem,
            &format!("system:node:{node}"),
            &[],
            &all,
            true,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_create(dir.path(), &[]).expect("create");
        assert!(a.ca_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(a.serving_key_pem.contains("PRIVATE KEY"));
        let b = load_or_create(dir.path(), &[]).expect("reload");
        assert_eq!(a.ca_cert_pem, b.ca_cert_pem);
        assert_eq!(a.serving_cert_pem, b.serving_cert_pem);
        // a new name re-issues the serving certificate under the same CA
        let c = load_or_create(dir.path(), &["10.1.2.3".into()]).expect("reissue");
        assert_eq!(a.ca_cert_pem, c.ca_cert_pem);
        assert_ne!(a.serving_cert_pem, c.serving_cert_pem);
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .expect("key")
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }
}
