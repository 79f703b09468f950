//! Writing kubeconfig files that `kubectl --kubeconfig` (and korral's own
//! clients) use as they are: the cluster's address and CA, and a bearer
//! token or a client certificate.

use std::path::Path;

use base64::Engine;

use crate::pki::{PkiError, write_private};

/// How a kubeconfig's user authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Credentials<'a> {
    /// A bearer token.
    Token(&'a str),
    /// A client certificate signed by the cluster CA, and its key (PEM).
    ClientCert {
        /// The certificate.
        cert_pem: &'a str,
        /// Its private key.
        key_pem: &'a str,
    },
}

/// Renders a kubeconfig for `server` (an `https://` URL), trusting `ca_pem`,
/// authenticating as `user` with `credentials`.
pub fn render_as(server: &str, ca_pem: &str, user: &str, credentials: Credentials<'_>) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let ca = b64(ca_pem);
    let auth = match credentials {
        Credentials::Token(token) => format!("    token: {token}\n"),
        Credentials::ClientCert { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(cert_pem),
            b64(key_pem)
        ),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: korral
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
{auth}contexts:
- name: korral
  context:
    cluster: korral
    user: {user}
    namespace: default
current-context: korral
preferences: {{}}
"
    )
}

/// Renders a kubeconfig authenticating with a bearer token.
pub fn render(server: &str, ca_pem: &str, user: &str, token: &str) -> String {
    render_as(server, ca_pem, user, Credentials::Token(token))
}

/// Writes a kubeconfig file (mode 0600) with `credentials`.
pub fn write_as(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    credentials: Credentials<'_>,
) -> Result<(), PkiError> {
    write_private(path, &render_as(server, ca_pem, user, credentials))
}

/// Writes a kubeconfig file (mode 0600) authenticating with a bearer token.
pub fn write(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    token: &str,
) -> Result<(), PkiError> {
    write_as(path, server, ca_pem, user, Credentials::Token(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_kubeconfig_kubectl_reads() {
        let k = render(
            "https://127.0.0.1:6443",
            "-----BEGIN CERTIFICATE-----\n",
            "admin",
            "t0k",
        );
        assert!(k.contains("server: https://127.0.0.1:6443"));
        assert!(k.contains("token: t0k"));
        assert!(k.contains("current-context: korral"));
        // it is YAML a generic parser accepts
        let v: serde_json::Value = serde_saphyr::from_str(&k).expect("yaml");
        assert_eq!(v["users"][0]["user"]["token"], "t0k");
        let c = render_as(
            "https://127.0.0.1:6443",
            "ca",
            "admin",
            Credentials::ClientCert {
                cert_pem: "cert",
                key_pem: "key",
            },
        );
        let v: serde_json::Value = serde_saphyr::from_str(&c).expect("yaml");
        assert_eq!(v["users"][0]["user"]["client-certificate-data"], "Y2VydA==");
        assert_eq!(v["users"][0]["user"]["client-key-data"], "a2V5");
    }
}
