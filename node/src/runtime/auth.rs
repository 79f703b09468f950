//! Registry credentials as the kubelet reads them: docker config files
//! (`kubernetes.io/dockerconfigjson` Secrets, `{"auths": {...}}`, and the
//! legacy `kubernetes.io/dockercfg`, the same map without `auths`), keyed by
//! registry host with an optional path prefix and `*` globs per host label,
//! and looked up for an image's host and repository — every matching entry
//! in turn, the most specific first (the kubelet's keyring).

use base64::Engine;
use serde_json::Value;

/// One registry credential.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// HTTP basic (or sent to the registry's token endpoint in the bearer token flow).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// An identity or registry token, sent as a bearer token.
    Bearer(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credential::Bearer(_) => write!(f, "Bearer(<redacted>)"),
        }
    }
}

impl Credential {
    /// A digest of the credential (to tell credentials apart without keeping them).
    pub fn fingerprint(&self) -> String {
        let text = match self {
            Credential::Basic { username, password } => format!("basic\0{username}\0{password}"),
            Credential::Bearer(t) => format!("bearer\0{t}"),
        };
        let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A keyring: credentials by registry key (`host[:port][/path]`, host labels may be `*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keyring {
    entries: Vec<(String, Credential)>,
}

/// The host (with port) and path of a docker config key: `https://index.docker.io/v1/`
/// is `index.docker.io` with no path (the `/v1/` and `/v2/` of old keys are API paths).
fn split_key(key: &str) -> (String, String) {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let (host, path) = k.split_once('/').unwrap_or((k, ""));
    let path = path.trim_end_matches('/');
    let path = if path == "v1" || path == "v2" {
        ""
    } else {
        path
    };
    (canonical_host(host), path.to_string())
}

/// docker.io's several names as one.
fn canonical_host(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        h => h.to_ascii_lowercase(),
    }
}

/// Whether a key's host pattern (labels may be `*`) matches `host`; ports must agree.
fn host_matches(pattern: &str, host: &str) -> bool {
    let (pp, hp) = (pattern.rsplit_once(':'), host.rsplit_once(':'));
    let port = |p: Option<(&str, &str)>| {
        p.filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map(|(_, port)| port.to_string())
    };
    if port(pp) != port(hp) {
        return false;
    }
    let strip = |s: &'_ str| -> String {
        match s.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
            _ => s.to_string(),
        }
    };
    let (p, h) = (strip(pattern), strip(host));
    let (pl, hl): (Vec<&str>, Vec<&str>) = (p.split('.').collect(), h.split('.').collect());
    pl.len() == hl.len() && pl.iter().zip(&hl).all(|(a, b)| *a == "*" || a == b)
}

fn credential(entry: &Value) -> Option<Credential> {
    let s = |k: &str| {
        entry[k]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    if let Some(t) = s("identitytoken").or_else(|| s("registrytoken")) {
        return Some(Credential::Bearer(t));
    }
    if let (Some(username), Some(password)) = (s("username"), s("password")) {
        return Some(Credential::Basic { username, password });
    }
    let auth = s("auth")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(Credential::Basic {
        username: username.to_string(),
        password: password.to_string(),
    })
}

impl Keyring {
    /// An empty keyring (anonymous pulls).
    pub fn new() -> Self {
        Keyring::default()
    }

    /// Adds one credential for a registry key.
    pub fn add(&mut self, key: &str, credential: Credential) {
        self.entries.push((key.to_string(), credential));
    }

    /// Adds the entries of a docker config: `.dockerconfigjson` (`{"auths": {...}}`)
    /// or `.dockercfg` (the bare map). Entries without usable credentials are skipped.
    pub fn add_docker_config(&mut self, body: &[u8]) -> Result<(), String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("not a docker config: {e}"))?;
        let map = v.get("auths").unwrap_or(&v);
        let map = map
            .as_object()
            .ok_or("not a docker config: not a JSON object")?;
        for (key, entry) in map {
            if let Some(c) = credential(entry) {
                self.add(key, c);
            }
        }
        Ok(())
    }

    /// Whether it holds no credential.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The credentials for an image in repository `repository` on `host`
    /// (`host[:port]`), the most specific key first; empty: pull anonymously.
    pub fn lookup(&self, host: &str, repository: &str) -> Vec<Credential> {
        let host = canonical_host(host);
        let mut found: Vec<(usize, usize, &Credential)> = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, (key, c))| {
                let (kh, kp) = split_key(key);
                let path_ok =
                    kp.is_empty() || repository == kp || repository.starts_with(&format!("{kp}/"));
                (host_matches(&kh, &host) && path_ok).then_some((kh.len() + kp.len(), i, c))
            })
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut out: Vec<Credential> = Vec::new();
        for (_, _, c) in found {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> Credential {
        Credential::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn reads_dockerconfigjson_and_legacy_dockercfg() {
        let mut k = Keyring::new();
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:s3cret");
        let json = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}}, "reg.example:5000": {{"username": "u", "password": "p"}}}}}}"#
        );
        k.add_docker_config(json.as_bytes()).expect("config");
        k.add_docker_config(br#"{"legacy.example": {"identitytoken": "tok"}}"#)
            .expect("legacy");
        assert_eq!(
            k.lookup("docker.io", "library/busybox"),
            vec![basic("bob", "s3cret")]
        );
        assert_eq!(k.lookup("reg.example:5000", "a/b"), vec![basic("u", "p")]);
        assert!(
            k.lookup("reg.example", "a/b").is_empty(),
            "ports must agree"
        );
        assert_eq!(
            k.lookup("legacy.example", "x"),
            vec![Credential::Bearer("tok".into())]
        );
        assert!(k.add_docker_config(b"[1]").is_err());
    }

    #[test]
    fn globs_and_paths_most_specific_first() {
        let mut k = Keyring::new();
        k.add("*.example.com", basic("any", "1"));
        k.add("reg.example.com/team", basic("team", "2"));
        k.add("reg.example.com/other", basic("other", "3"));
        assert_eq!(
            k.lookup("reg.example.com", "team/app"),
            vec![basic("team", "2"), basic("any", "1")]
        );
        assert_eq!(
            k.lookup("reg.example.com", "teamx/app"),
            vec![basic("any", "1")]
        );
        assert!(
            k.lookup("a.b.example.com", "x").is_empty(),
            "one label per *"
        );
        assert_eq!(
            format!("{:?}", basic("u", "secret")),
            "Basic(u, <redacted>)"
        );
    }
}
