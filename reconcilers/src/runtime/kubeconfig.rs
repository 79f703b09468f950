//! Reading kubeconfig files: the current context's server, CA and bearer
//! token, found via `--kubeconfig`, `$KUBECONFIG`, or `./.korral/kubeconfig.yaml`.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

/// What a client needs from a kubeconfig.
#[derive(Clone, Debug)]
pub struct KubeConfig {
    /// `https://host:port`.
    pub server: String,
    /// The CA certificate (PEM), if the file names one.
    pub ca_pem: Option<String>,
    /// Skip server certificate verification.
    pub insecure: bool,
    /// The bearer token.
    pub token: Option<String>,
    /// A client certificate and its key (PEM, concatenated).
    pub identity_pem: Option<String>,
    /// The context's default namespace.
    pub namespace: String,
}

/// Why a kubeconfig could not be used.
#[derive(Debug, thiserror::Error)]
#[error("kubeconfig {path}: {message}")]
pub struct KubeConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(default)]
    current_context: String,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: User,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    #[serde(default)]
    certificate_authority_data: Option<String>,
    #[serde(default)]
    certificate_authority: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    client_certificate: Option<PathBuf>,
    #[serde(default)]
    client_key_data: Option<String>,
    #[serde(default)]
    client_key: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// The kubeconfig to use: `explicit`, else `$KUBECONFIG` (first entry), else `./.korral/kubeconfig.yaml`.
pub fn resolve_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(env) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty())
        && let Some(first) = std::env::split_paths(&env).next()
    {
        return first;
    }
    PathBuf::from(".korral/kubeconfig.yaml")
}

impl KubeConfig {
    /// Reads a kubeconfig file and resolves its current context.
    pub fn load(path: &Path) -> Result<KubeConfig, KubeConfigError> {
        let err = |message: String| KubeConfigError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let file: File =
            serde_saphyr::from_str(&text).map_err(|e| err(format!("not a kubeconfig: {e}")))?;
        let ctx_name = if file.current_context.is_empty() {
            file.contexts
                .first()
                .map(|c| c.name.clone())
                .unwrap_or_default()
        } else {
            file.current_context.clone()
        };
        let ctx = file
            .contexts
            .iter()
            .find(|c| c.name == ctx_name)
            .map(|c| &c.context)
            .ok_or_else(|| err(format!("context {ctx_name:?} not found")))?;
        let cluster = file
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .map(|c| &c.cluster)
            .ok_or_else(|| err(format!("cluster {:?} not found", ctx.cluster)))?;
        let user = file
            .users
            .iter()
            .find(|u| u.name == ctx.user)
            .map(|u| &u.user);
        let base = path.parent().unwrap_or(Path::new("."));
        let ca_pem = match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(data), _) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| err("certificate-authority-data is not base64 PEM".into()))?,
            ),
            (None, Some(file)) => Some(
                std::fs::read_to_string(base.join(file))
                    .map_err(|e| err(format!("certificate-authority {}: {e}", file.display())))?,
            ),
            (None, None) => None,
        };
        let token = match user {
            Some(User { token: Some(t), .. }) => Some(t.clone()),
            Some(User {
                token_file: Some(f),
                ..
            }) => Some(
                std::fs::read_to_string(base.join(f))
                    .map_err(|e| err(format!("token-file {}: {e}", f.display())))?
                    .trim()
                    .to_string(),
            ),
            _ => None,
        };
        // a client certificate and key, inline (base64 PEM) or in files
        let pem = |data: &Option<String>,
                   file: &Option<PathBuf>,
                   what: &str|
         -> Result<Option<String>, KubeConfigError> {
            match (data, file) {
                (Some(d), _) => base64::engine::general_purpose::STANDARD
                    .decode(d.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .map(Some)
                    .ok_or_else(|| err(format!("{what}-data is not base64 PEM"))),
                (None, Some(f)) => std::fs::read_to_string(base.join(f))
                    .map(Some)
                    .map_err(|e| err(format!("{what} {}: {e}", f.display()))),
                (None, None) => Ok(None),
            }
        };
        let identity_pem = match user {
            Some(u) => match (
                pem(
                    &u.client_certificate_data,
                    &u.client_certificate,
                    "client-certificate",
                )?,
                pem(&u.client_key_data, &u.client_key, "client-key")?,
            ) {
                (Some(cert), Some(key)) => Some(format!("{cert}\n{key}")),
                (None, None) => None,
                _ => {
                    return Err(err(
                        "a client certificate needs both client-certificate and client-key".into(),
                    ));
                }
            },
            None => None,
        };
        Ok(KubeConfig {
            server: cluster.server.trim_end_matches('/').to_string(),
            ca_pem,
            insecure: cluster.insecure_skip_tls_verify,
            token,
            identity_pem,
            namespace: ctx.namespace.clone().unwrap_or_else(|| "default".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_current_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kc.yaml");
        let ca =
            base64::engine::general_purpose::STANDARD.encode("-----BEGIN CERTIFICATE-----\nX\n");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: https://10.0.0.1:6443/\n    certificate-authority-data: {ca}\n- name: b\n  cluster:\n    server: https://b\nusers:\n- name: u\n  user:\n    token: t0k\ncontexts:\n- name: other\n  context:\n    cluster: b\n- name: main\n  context:\n    cluster: a\n    user: u\n    namespace: team\ncurrent-context: main\n"
            ),
        )
        .expect("write");
        let kc = KubeConfig::load(&path).expect("load");
        assert_eq!(kc.server, "https://10.0.0.1:6443");
        assert_eq!(kc.token.as_deref(), Some("t0k"));
        assert_eq!(kc.namespace, "team");
        assert!(
            kc.ca_pem
                .as_deref()
                .is_some_and(|c| c.starts_with("-----BEGIN"))
        );
        assert!(KubeConfig::load(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn reads_a_client_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kc.yaml");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &path,
            format!(
                "clusters:\n- name: a\n  cluster:\n    server: https://k\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: m\n  context:\n    cluster: a\n    user: u\ncurrent-context: m\n",
                b64("CERT"),
                b64("KEY")
            ),
        )
        .expect("write");
        let kc = KubeConfig::load(&path).expect("load");
        assert_eq!(kc.identity_pem.as_deref(), Some("CERT\nKEY"));
        assert_eq!(kc.token, None);
        std::fs::write(
            &path,
            "clusters:\n- name: a\n  cluster:\n    server: https://k\nusers:\n- name: u\n  user:\n    client-certificate: c.pem\ncontexts:\n- name: m\n  context:\n    cluster: a\n    user: u\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("c.pem"), "CERT").expect("cert");
        let e = KubeConfig::load(&path).expect_err("no key");
        assert!(
            e.to_string()
                .contains("needs both client-certificate and client-key"),
            "{e}"
        );
    }
}
