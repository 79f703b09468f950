//! The API server's TLS: the serving certificate, and client certificates
//! signed by the cluster CA as a way to authenticate (as kube-apiserver's
//! `--client-ca-file`): a verified certificate's subject travels with every
//! request of its connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use crate::pki::ServerPki;

/// The subject of a verified client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// The common name: the user name.
    pub common_name: String,
    /// The organizations: the groups.
    pub organizations: Vec<String>,
    /// When it expires (seconds since the Unix epoch): a connection may
    /// outlive its certificate, so every request checks this again, as
    /// kube-apiserver verifies the certificate per request.
    pub not_after: i64,
}

impl ClientCert {
    /// Whether the certificate has expired by now.
    pub fn expired(&self) -> bool {
        chrono::Utc::now().timestamp() > self.not_after
    }
}

impl ClientCert {
    /// The subject of a DER certificate, if it parses.
    pub fn from_der(der: &[u8]) -> Option<ClientCert> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let text =
            |a: &x509_parser::x509::AttributeTypeAndValue<'_>| a.as_str().ok().map(str::to_string);
        Some(ClientCert {
            common_name: subject.iter_common_name().next().and_then(text)?,
            organizations: subject.iter_organization().filter_map(text).collect(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// The server's TLS configuration: its certificate, HTTP/2 and HTTP/1.1,
/// and client certificates verified against the cluster CA when presented
/// (tokens remain the other way in).
pub fn server_config(pki: &ServerPki) -> io::Result<RustlsConfig> {
    let certs = CertificateDer::pem_slice_iter(pki.serving_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid("the serving certificate does not parse"))?;
    let key = PrivateKeyDer::from_pem_slice(pki.serving_key_pem.as_bytes())
        .map_err(|_| invalid("the serving key does not parse"))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pki.ca_cert_pem.as_bytes()) {
        roots
            .add(ca.map_err(|_| invalid("the CA certificate does not parse"))?)
            .map_err(|e| invalid(&format!("the CA certificate: {e}")))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| invalid(&format!("client certificate verifier: {e}")))?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| invalid(&format!("the serving certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

/// TLS that also hands each connection's verified client certificate to
/// its requests (as a request extension).
#[derive(Clone)]
pub struct ClientCertAcceptor(pub RustlsAcceptor);

impl<I, S> Accept<I, S> for ClientCertAcceptor
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    type Stream = TlsStream<I>;
    type Service = WithClientCert<S>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let handshake = self.0.accept(stream, service);
        Box::pin(async move {
            let (stream, inner) = handshake.await?;
            let cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|der| ClientCert::from_der(der))
                .map(Arc::new);
            Ok((stream, WithClientCert { inner, cert }))
        })
    }
}

/// A connection's service that tags requests with its client certificate.
#[derive(Clone)]
pub struct WithClientCert<S> {
    inner: S,
    cert: Option<Arc<ClientCert>>,
}

impl<S, B> tower_service::Service<axum::http::Request<B>> for WithClientCert<S>
where
    S: tower_service::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: axum::http::Request<B>) -> Self::Future {
        // only the handshake's certificate: never anything from the client's headers
        req.extensions_mut().remove::<Arc<ClientCert>>();
        if let Some(cert) = &self.cert {
            req.extensions_mut().insert(cert.clone());
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed client certificate for `alice` in `dev` valid until `year`.
    fn client_cert_until(year: i32) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "dev");
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn a_client_certificate_carries_its_subject_and_expiry() {
        let valid = ClientCert::from_der(&client_cert_until(2999)).expect("parses");
        assert_eq!(valid.common_name, "alice");
        assert_eq!(valid.organizations, vec!["dev".to_string()]);
        assert!(!valid.expired());
        let old = ClientCert::from_der(&client_cert_until(2001)).expect("parses");
        assert!(old.expired());
    }
}
