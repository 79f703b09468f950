//! Proxying `pods/log` (and `pods/exec`, `pods/attach`) to the node daemon that runs the
//! pod, like the API server proxies to the kubelet. The node is found from
//! its Node object: address (`InternalIP`), port
//! (`status.daemonEndpoints.kubeletEndpoint.Port`), and the SHA-256 of its
//! self-signed serving certificate (annotation
//! `korral.dev/serving-cert-sha256`, which only the node itself or an admin
//! can write) — the TLS connection must present exactly that certificate.
//! The API server authenticates with its kubelet-client certificate, signed
//! by the cluster CA, which the node requires.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::Value;

use crate::errors::{ApiError, ApiResult};
use crate::http::App;

/// The annotation with the node's serving certificate fingerprint.
pub const SERVING_CERT_ANNOTATION: &str = "korral.dev/serving-cert-sha256";

/// Where a node daemon is and which certificate it must present.
#[derive(Clone, Debug)]
pub struct NodeEndpoint {
    /// `https://ip:port`.
    pub base: String,
    /// Lowercase hex SHA-256 of the serving certificate.
    pub sha256: String,
}

/// Finds a node's endpoint from its Node object.
pub async fn endpoint(app: &App, node: &str) -> ApiResult<NodeEndpoint> {
    let info = schemas::lookup("v1", "Node").map_err(|e| ApiError::internal(e.to_string()))?;
    let obj = app.registry.get(info, None, node).await?;
    endpoint_of(node, &obj)
}

/// A node's endpoint from its Node object `obj`, already read.
pub fn endpoint_of(node: &str, obj: &Value) -> ApiResult<NodeEndpoint> {
    let port = obj
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_i64)
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::unavailable(format!("node {node:?} publishes no daemon endpoint (status.daemonEndpoints.kubeletEndpoint.Port)")))?;
    let addresses = obj
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let address = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|t| {
            addresses
                .iter()
                .find(|a| a.get("type").and_then(Value::as_str) == Some(t))
                .and_then(|a| a.get("address").and_then(Value::as_str))
        })
        .ok_or_else(|| ApiError::unavailable(format!("node {node:?} publishes no address")))?;
    let sha256 = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(SERVING_CERT_ANNOTATION))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "node {node:?} publishes no serving certificate fingerprint ({SERVING_CERT_ANNOTATION})"
            ))
        })?
        .to_ascii_lowercase();
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    };
    Ok(NodeEndpoint {
        base: format!("https://{host}:{port}"),
        sha256,
    })
}

/// Accepts exactly one certificate, by fingerprint.
#[derive(Debug)]
struct Pinned {
    sha256: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the node's certificate does not match the fingerprint on its Node".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An HTTPS client that trusts only `ep`'s certificate and presents the API server's client certificate.
pub fn client(app: &App, ep: &NodeEndpoint) -> ApiResult<reqwest::Client> {
    let (cert_pem, key_pem) = app.node_client.as_ref().ok_or_else(|| {
        ApiError::unavailable("this API server has no client certificate for node daemons")
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::internal(format!("kubelet client certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| ApiError::internal(format!("kubelet client key: {e}")))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiError::internal(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            sha256: ep.sha256.clone(),
            provider,
        }))
        .with_client_auth_cert(chain, key)
        .map_err(|e| ApiError::internal(format!("kubelet client certificate: {e}")))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The log query parameters passed through to the node.
const LOG_PARAMS: &[&str] = &[
    "follow",
    "previous",
    "tailLines",
    "limitBytes",
    "timestamps",
    "sinceSeconds",
    "sinceTime",
];

/// The `container` query parameter (the last one given).
pub fn requested_container(query: &[(String, String)]) -> Option<&str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.as_str())
}

/// Which container a log or exec request is for: `container=`, else the
/// only one, else the `kubectl.kubernetes.io/default-container` annotation.
pub fn pick_container(pod: &Value, requested: Option<&str>) -> ApiResult<String> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let names: Vec<&str> = ["/spec/initContainers", "/spec/containers"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let main: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    if let Some(c) = requested.filter(|c| !c.is_empty()) {
        return if names.contains(&c) {
            Ok(c.to_string())
        } else {
            Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        };
    }
    if main.len() == 1 {
        return Ok(main[0].to_string());
    }
    if let Some(d) = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str)
        .filter(|d| main.contains(d))
    {
        return Ok(d.to_string());
    }
    Err(ApiError::bad_request(format!(
        "a container name must be specified for pod {name}, choose one of: [{}]",
        main.join(" ")
    )))
}

/// A pod's namespace and name.
pub fn namespace_and_name(pod: &Value) -> (&str, &str) {
    let field = |p: &str| pod.pointer(p).and_then(Value::as_str);
    (
        field("/metadata/namespace").unwrap_or("default"),
        field("/metadata/name").unwrap_or(""),
    )
}

/// Proxies a log request for `pod` (running on `node`).
pub async fn logs(
    app: &App,
    pod: &Value,
    node: &str,
    query: &[(String, String)],
) -> ApiResult<Response> {
    let container = pick_container(pod, requested_container(query))?;
    let ep = endpoint(app, node).await?;
    let (ns, name) = namespace_and_name(pod);
    let forwarded: Vec<(&str, &str)> = query
        .iter()
        .filter(|(k, _)| LOG_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let url = format!("{}/containerLogs/{ns}/{name}/{container}", ep.base);
    let resp = client(app, &ep)?
        .get(&url)
        .query(&forwarded)
        .send()
        .await
        .map_err(|e| {
            ApiError::unavailable(format!("cannot reach node {node:?} at {}: {e}", ep.base))
        })?;
    let code = resp.status();
    if !code.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(match code.as_u16() {
            404 => ApiError::bad_request(text),
            400 => ApiError::bad_request(text),
            _ => ApiError::unavailable(format!("node {node:?}: {code}: {text}")),
        });
    }
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(resp.bytes_stream()),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_is_picked_like_kubernetes_does() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(pick_container(&one, None).expect("only"), "a");
        assert!(pick_container(&one, Some("b")).is_err());
        let two = json!({"metadata": {"name": "p", "annotations": {"kubectl.kubernetes.io/default-container": "b"}},
                          "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(pick_container(&two, None).expect("default"), "b");
        assert_eq!(pick_container(&two, Some("init")).expect("init"), "init");
        let plain = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let e = pick_container(&plain, None).expect_err("ambiguous");
        assert!(e.message.contains("choose one of: [a b]"), "{}", e.message);
    }
}
