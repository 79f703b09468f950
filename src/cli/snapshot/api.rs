//! The client side of the server's `/korral/v1/snapshots` endpoint: requests
//! with the kubeconfig's server, CA and credentials (client certificate or
//! token), errors as the server's Status message.

use std::path::Path;

use reconcilers::runtime::kubeconfig::{KubeConfig, resolve_path};
use serde_json::Value;

/// The endpoint's path on the server.
pub const PATH: &str = "/korral/v1/snapshots";

/// A connection to one server, as a kubeconfig describes it.
pub struct Api {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
}

impl Api {
    /// The server and credentials of the kubeconfig at `path` (default:
    /// `$KUBECONFIG`, then `./.korral/kubeconfig.yaml`).
    pub fn new(kubeconfig: Option<&Path>) -> Result<Api, String> {
        let path = resolve_path(kubeconfig);
        let kc = KubeConfig::load(&path).map_err(|e| e.to_string())?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder()
            .user_agent("korral-cli")
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(ca) = &kc.ca_pem {
            let cert = reqwest::Certificate::from_pem(ca.as_bytes())
                .map_err(|e| format!("{}: the CA certificate: {e}", path.display()))?;
            b = b.add_root_certificate(cert);
        }
        if kc.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some(pem) = &kc.identity_pem {
            let id = reqwest::Identity::from_pem(pem.as_bytes())
                .map_err(|e| format!("{}: the client certificate: {e}", path.display()))?;
            b = b.identity(id);
        }
        Ok(Api {
            http: b.build().map_err(|e| e.to_string())?,
            server: kc.server.trim_end_matches('/').to_string(),
            token: kc.token,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.server));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends a request and returns its JSON body, or the server's message.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let mut r = self.request(method, path);
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.server))?;
        let code = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("{}: {e}", self.server))?;
        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
        if code.is_success() {
            return value.ok_or_else(|| format!("{}{path}: the answer is not JSON", self.server));
        }
        Err(message(code.as_u16(), value.as_ref(), &bytes))
    }

    /// Streams `GET path` into the new file `dest` (written as `dest.partial`,
    /// renamed when complete); returns the bytes written.
    pub async fn download(&self, path: &str, dest: &Path) -> Result<u64, String> {
        use futures_util::StreamExt;
        use std::io::Write;
        let resp = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.server))?;
        let code = resp.status();
        if !code.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            let value: Option<Value> = serde_json::from_slice(&bytes).ok();
            return Err(message(code.as_u16(), value.as_ref(), &bytes));
        }
        let partial = dest.with_extension("partial");
        let mut file = apiserver::snapshots::file::create_private(&partial)
            .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
        let mut written = 0u64;
        let mut stream = resp.bytes_stream();
        let result: Result<(), String> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| format!("{}{path}: {e}", self.server))?;
                file.write_all(&chunk)
                    .map_err(|e| format!("{}: {e}", partial.display()))?;
                written += chunk.len() as u64;
            }
            file.sync_all()
                .map_err(|e| format!("{}: {e}", partial.display()))?;
            if dest.exists() {
                return Err(format!("{} exists; not overwritten", dest.display()));
            }
            std::fs::rename(&partial, dest)
                .map_err(|e| format!("cannot rename to {}: {e}", dest.display()))
        }
        .await;
        if let Err(e) = result {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        Ok(written)
    }
}

fn message(code: u16, value: Option<&Value>, bytes: &[u8]) -> String {
    let text = value
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).trim().to_string());
    format!("the server answered {code}: {text}")
}
