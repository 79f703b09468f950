//! Finding the cluster CA without trusting the network, as kubeadm's token
//! discovery does: read `kube-public/cluster-info` (anonymous, over a
//! connection whose certificate is not checked yet) and keep its CA only if
//! it has the hash the join token names.

use base64::Engine;
use serde_json::Value;

use crate::tls_bootstrap::token;

/// Why the CA could not be had.
#[derive(Debug, PartialEq, Eq)]
pub enum DiscoveryError {
    /// The server did not answer (yet): worth trying again.
    Unreachable(String),
    /// The answer was wrong (a hash mismatch, no cluster-info): final.
    Refused(String),
}

impl std::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiscoveryError::Unreachable(m) | DiscoveryError::Refused(m) => f.write_str(m),
        }
    }
}

/// [`fetch_ca`], tried again while the server does not answer, up to `timeout`
/// (a node may start before its server, as kubeadm's discovery retries).
pub async fn fetch_ca_retrying(
    server: &str,
    expected_hash: &str,
    timeout: std::time::Duration,
) -> Result<String, String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = std::time::Duration::from_millis(500);
    loop {
        match fetch_ca(server, expected_hash).await {
            Ok(ca) => return Ok(ca),
            Err(DiscoveryError::Unreachable(m)) if std::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = %m, retry_in = ?pause, "the server does not answer yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(10));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Reads the CA (PEM) from the server's `cluster-info` and checks it against
/// `expected_hash`.
pub async fn fetch_ca(server: &str, expected_hash: &str) -> Result<String, DiscoveryError> {
    use DiscoveryError::{Refused, Unreachable};
    let http = reqwest::Client::builder()
        // nothing is trusted until the hash matches
        .danger_accept_invalid_certs(true)
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| Refused(format!("cannot make an HTTPS client: {e}")))?;
    let url = format!(
        "{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
        server.trim_end_matches('/')
    );
    let resp = http
        .get(&url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| Unreachable(format!("cannot reach {server}: {e}")))?;
    let code = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| Refused(format!("{url}: the answer is not JSON: {e}")))?;
    if code.is_server_error() {
        return Err(Unreachable(format!("{url}: {code}")));
    }
    if !code.is_success() {
        return Err(Refused(format!(
            "{url}: {code}: {} (is this a korral server, with --anonymous-auth on?)",
            body.get("message").and_then(Value::as_str).unwrap_or("")
        )));
    }
    let ca = ca_of(&body).map_err(Refused)?;
    token::verify_ca(&ca, expected_hash).map_err(Refused)?;
    tracing::info!(%server, "the server's CA matches the join token's hash");
    Ok(ca)
}

/// The CA (PEM) in a `cluster-info` ConfigMap's kubeconfig.
pub fn ca_of(config_map: &Value) -> Result<String, String> {
    let text = config_map
        .pointer("/data/kubeconfig")
        .and_then(Value::as_str)
        .ok_or("cluster-info has no data.kubeconfig")?;
    let kubeconfig: Value = serde_saphyr::from_str(text)
        .map_err(|e| format!("cluster-info's kubeconfig does not parse: {e}"))?;
    let data = kubeconfig
        .pointer("/clusters/0/cluster/certificate-authority-data")
        .and_then(Value::as_str)
        .ok_or("cluster-info's kubeconfig has no certificate-authority-data")?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("cluster-info's certificate-authority-data is not base64: {e}"))?;
    String::from_utf8(pem).map_err(|_| "cluster-info's CA is not PEM text".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_comes_out_of_the_kubeconfig() {
        let cm = serde_json::json!({"data": {"kubeconfig":
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: UEVN\n    server: https://x\n  name: \"\"\nkind: Config\n"}});
        assert_eq!(ca_of(&cm).expect("ca"), "PEM");
        assert!(ca_of(&serde_json::json!({"data": {}})).is_err());
    }
}
