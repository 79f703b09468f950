//! The node's registry configuration, in the format of k3s's
//! `registries.yaml` (`korral node --registry-config FILE`): `mirrors` name,
//! per registry host (or `"*"` for every host), the endpoints tried before
//! the registry itself; `configs` give, per endpoint host, TLS settings
//! (`ca_file`, `insecure_skip_verify`) and credentials (`auth`). An endpoint
//! written `http://host:port` is spoken to in plain HTTP.
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["https://mirror.internal:5000"]
//! configs:
//!   mirror.internal:5000:
//!     auth: {username: puller, password: secret}
//!     tls: {ca_file: /etc/ssl/mirror-ca.pem}
//! ```
//!
//! Not supported (refused when given): `rewrite`, client certificates
//! (`cert_file`/`key_file`), endpoints with a path.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::runtime::auth::Credential;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    mirrors: BTreeMap<String, MirrorFile>,
    #[serde(default)]
    configs: BTreeMap<String, ConfigFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorFile {
    #[serde(default)]
    endpoint: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    auth: Option<AuthFile>,
    tls: Option<TlsFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    username: Option<String>,
    password: Option<String>,
    auth: Option<String>,
    identity_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

/// Where an image is fetched from: a registry host and how to speak to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]`.
    pub host: String,
    /// Plain HTTP (the endpoint was written `http://...`).
    pub plain_http: bool,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.plain_http { "http" } else { "https" };
        write!(f, "{scheme}://{}", self.host)
    }
}

/// TLS and credentials of one endpoint host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// Extra CA certificates (PEM) to trust besides the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// Skip certificate verification.
    pub insecure_skip_verify: bool,
    /// Credentials for this host (after the pod's pull secrets).
    pub auth: Option<Credential>,
}

/// A parsed registry configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    mirrors: BTreeMap<String, Vec<Endpoint>>,
    hosts: BTreeMap<String, HostConfig>,
}

fn endpoint(raw: &str) -> Result<Endpoint, String> {
    let (plain_http, rest) = if let Some(r) = raw.strip_prefix("http://") {
        (true, r)
    } else {
        (false, raw.strip_prefix("https://").unwrap_or(raw))
    };
    let rest = rest.trim_end_matches('/');
    let rest = rest.strip_suffix("/v2").unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') {
        return Err(format!(
            "endpoint {raw:?}: give scheme://host[:port] (paths are not supported)"
        ));
    }
    Ok(Endpoint {
        host: rest.to_string(),
        plain_http,
    })
}

impl RegistryConfig {
    /// Reads a `registries.yaml` (CA files are read now, so mistakes show at start).
    pub fn load(path: &Path) -> Result<RegistryConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        RegistryConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a `registries.yaml` text.
    pub fn parse(text: &str) -> Result<RegistryConfig, String> {
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| e.to_string())?
        };
        let mut out = RegistryConfig::default();
        for (host, m) in file.mirrors {
            let eps = m
                .endpoint
                .iter()
                .map(|e| endpoint(e))
                .collect::<Result<Vec<_>, _>>()?;
            out.mirrors.insert(host, eps);
        }
        for (host, c) in file.configs {
            let mut hc = HostConfig::default();
            if let Some(tls) = c.tls {
                if tls.cert_file.is_some() || tls.key_file.is_some() {
                    return Err(format!(
                        "configs.{host}.tls: client certificates (cert_file, key_file) are not supported"
                    ));
                }
                hc.insecure_skip_verify = tls.insecure_skip_verify;
                if let Some(ca) = tls.ca_file {
                    hc.ca_pem = Some(
                        std::fs::read(&ca)
                            .map_err(|e| format!("configs.{host}.tls.ca_file {ca}: {e}"))?,
                    );
                }
            }
            if let Some(a) = c.auth {
                hc.auth = match (a.username, a.password, a.auth, a.identity_token) {
                    (_, _, _, Some(t)) => Some(Credential::Bearer(t)),
                    (Some(username), Some(password), _, _) => {
                        Some(Credential::Basic { username, password })
                    }
                    (_, _, Some(encoded), _) => {
                        let mut k = crate::runtime::auth::Keyring::new();
                        let body = serde_json::json!({ "auths": { "x": { "auth": encoded } } });
                        k.add_docker_config(body.to_string().as_bytes())?;
                        k.lookup("x", "").into_iter().next()
                    }
                    _ => {
                        return Err(format!(
                            "configs.{host}.auth: give username and password, auth, or identity_token"
                        ));
                    }
                };
            }
            let key = endpoint(&host)?.host;
            out.hosts.insert(key, hc);
        }
        Ok(out)
    }

    /// The endpoints to try for an image on `host`, in order: its mirrors
    /// (or the `"*"` mirrors), then the registry itself over HTTPS.
    pub fn endpoints(&self, host: &str) -> Vec<Endpoint> {
        let mut out = self
            .mirrors
            .get(host)
            .or_else(|| self.mirrors.get("*"))
            .cloned()
            .unwrap_or_default();
        let own = Endpoint {
            host: host.to_string(),
            plain_http: false,
        };
        if !out.iter().any(|e| e.host == own.host) {
            out.push(own);
        }
        out
    }

    /// The TLS settings and credentials of an endpoint host.
    pub fn host(&self, host: &str) -> HostConfig {
        self.hosts.get(host).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_then_the_registry_and_per_host_settings() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "PEM").expect("ca");
        let yaml = format!(
            r#"
mirrors:
  example.invalid:
    endpoint: ["http://127.0.0.1:5001", "https://127.0.0.1:5000/v2"]
  "*":
    endpoint: ["mirror.local"]
configs:
  "127.0.0.1:5000":
    auth: {{username: u, password: p}}
    tls: {{ca_file: {}, insecure_skip_verify: true}}
"#,
            ca.display()
        );
        let c = RegistryConfig::parse(&yaml).expect("parse");
        let eps: Vec<String> = c
            .endpoints("example.invalid")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            eps,
            [
                "http://127.0.0.1:5001",
                "https://127.0.0.1:5000",
                "https://example.invalid"
            ]
        );
        let eps: Vec<String> = c
            .endpoints("quay.io")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(eps, ["https://mirror.local", "https://quay.io"]);
        let h = c.host("127.0.0.1:5000");
        assert_eq!(h.ca_pem.as_deref(), Some(&b"PEM"[..]));
        assert!(h.insecure_skip_verify);
        assert_eq!(
            h.auth,
            Some(Credential::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(c.host("other"), HostConfig::default());
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        for bad in [
            "mirrors: {a: {endpoint: [\"https://h/prefix\"]}}",
            "mirrors: {a: {rewrite: {x: y}}}",
            "configs: {h: {tls: {cert_file: /c}}}",
            "configs: {h: {auth: {}}}",
        ] {
            assert!(RegistryConfig::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            RegistryConfig::parse("").expect("empty"),
            RegistryConfig::default()
        );
    }
}
