//! Writing kubeconfig files that `kubectl --kubeconfig` (and korral's own
//! clients) use as they are: the cluster's address and CA, and a bearer token.

use std::path::Path;

use base64::Engine;

use crate::pki::{PkiError, write_private};

/// Renders a kubeconfig for `server` (an `https://` URL), trusting `ca_pem`,
/// authenticating as `user` with `token`.
pub fn render(server: &str, ca_pem: &str, user: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
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
    token: {token}
contexts:
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

/// Writes a kubeconfig file (mode 0600).
pub fn write(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    token: &str,
) -> Result<(), PkiError> {
    write_private(path, &render(server, ca_pem, user, token))
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
    }
}
