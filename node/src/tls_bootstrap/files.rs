//! The node's credentials on disk: one kubeconfig (`DATA_DIR/kubeconfig.yaml`)
//! with the server, the CA and the node's client certificate and key
//! embedded, written atomically (owner-only) so a restart or a rotation never
//! sees half of it; and what the rest of the bootstrap reads from a
//! certificate (validity, serial, subject).

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

/// What a node authenticates with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// `https://host:port`.
    pub server: String,
    /// The cluster CA (PEM).
    pub ca_pem: String,
    /// The node's client certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
}

impl Credentials {
    /// Certificate and key, as the API client takes them.
    pub fn identity_pem(&self) -> String {
        format!("{}\n{}", self.cert_pem.trim_end(), self.key_pem)
    }
}

/// The kubeconfig's path in a node's data directory.
pub fn kubeconfig_path(data_dir: &Path) -> PathBuf {
    data_dir.join("kubeconfig.yaml")
}

/// Writes the kubeconfig (mode 0600, through a temporary file and a rename).
pub fn write(path: &Path, node: &str, c: &Credentials) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let user = format!("system:node:{node}");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: korral\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: {user}@korral\n  context:\n    cluster: korral\n    user: {user}\ncurrent-context: {user}@korral\n",
        server = c.server,
        ca = b64(&c.ca_pem),
        cert = b64(&c.cert_pem),
        key = b64(&c.key_pem),
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let io = |e: std::io::Error| format!("{}: {e}", tmp.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a kubeconfig this module wrote (`None` when there is none).
pub fn read(path: &Path) -> Result<Option<Credentials>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let v: Value = serde_saphyr::from_str(&text)
        .map_err(|e| format!("{}: not a kubeconfig: {e}", path.display()))?;
    let field = |p: &str| -> Result<String, String> {
        v.pointer(p)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{}: no {p}", path.display()))
    };
    let decoded = |p: &str| -> Result<String, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(field(p)?.trim())
            .map_err(|e| format!("{}: {p}: {e}", path.display()))?;
        String::from_utf8(bytes).map_err(|_| format!("{}: {p} is not PEM", path.display()))
    };
    Ok(Some(Credentials {
        server: field("/clusters/0/cluster/server")?,
        ca_pem: decoded("/clusters/0/cluster/certificate-authority-data")?,
        cert_pem: decoded("/users/0/user/client-certificate-data")?,
        key_pem: decoded("/users/0/user/client-key-data")?,
    }))
}

/// What the bootstrap and the rotation read from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Start of validity (Unix seconds).
    pub not_before: i64,
    /// End of validity (Unix seconds).
    pub not_after: i64,
    /// The serial number, hex.
    pub serial: String,
    /// The subject's common name.
    pub common_name: String,
    /// The DER of the certificate's public key (SubjectPublicKeyInfo).
    pub public_key_der: Vec<u8>,
}

/// Reads a certificate (PEM).
pub fn cert_info(pem: &str) -> Result<CertInfo, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&block.contents)
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    Ok(CertInfo {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        serial: cert.raw_serial_as_string(),
        common_name: cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_string(),
        public_key_der: cert.tbs_certificate.subject_pki.raw.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_through_the_kubeconfig() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = kubeconfig_path(dir.path());
        assert_eq!(read(&path).expect("none"), None);
        let c = Credentials {
            server: "https://127.0.0.1:6443".into(),
            ca_pem: "CA\n".into(),
            cert_pem: "CERT\n".into(),
            key_pem: "KEY\n".into(),
        };
        write(&path, "a", &c).expect("write");
        assert_eq!(read(&path).expect("read"), Some(c));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // the API client's reader takes it too
        let kc = reconcilers::runtime::kubeconfig::KubeConfig::load(&path).expect("load");
        assert_eq!(kc.server, "https://127.0.0.1:6443");
        assert_eq!(kc.identity_pem.as_deref(), Some("CERT\n\nKEY\n"));
    }
}
