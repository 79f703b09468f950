//! Renewing the node's client certificate before it expires, as client-go's
//! certificate manager does: at a jittered 70–90 % of its lifetime a new key
//! and CertificateSigningRequest are made as the node itself (approved as a
//! `selfnodeclient` renewal), the kubeconfig is rewritten and the API client
//! presents the new certificate on its next connections — no restart.
//! Failures are retried with back-off (5 s doubling to 5 min).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use reconcilers::runtime::Client;

use crate::tls_bootstrap::csr::{self, Naming};
use crate::tls_bootstrap::files::{self, CertInfo, Credentials};

/// When to renew a certificate (Unix seconds): `NotBefore` plus
/// `0.7 + 0.2 × jitter` of its lifetime (`jitter` in `[0, 1)`).
pub fn deadline(info: &CertInfo, jitter: f64) -> i64 {
    let total = (info.not_after - info.not_before).max(0) as f64;
    let fraction = 0.7 + 0.2 * jitter.clamp(0.0, 1.0);
    info.not_before + (total * fraction).round() as i64
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// What the rotation loop needs.
pub struct Rotation {
    /// The node's API client (its identity is swapped on renewal).
    pub client: Client,
    /// The Node's name.
    pub node: String,
    /// The kubeconfig holding the credentials.
    pub kubeconfig: PathBuf,
    /// The credentials in use.
    pub credentials: Credentials,
    /// How long to wait for a renewal's certificate.
    pub csr_timeout: Duration,
}

impl Rotation {
    /// Renews the certificate whenever its deadline comes, until `stop`.
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut backoff = Duration::from_secs(5);
        loop {
            let info = match files::cert_info(&self.credentials.cert_pem) {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the node's certificate: no rotation");
                    return;
                }
            };
            let when = deadline(&info, rand::random::<f64>());
            let wait = Duration::from_secs(u64::try_from(when - now_unix()).unwrap_or(0));
            tracing::info!(serial = %info.serial, expires = info.not_after, renew_in = ?wait, "node client certificate");
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(wait) => {}
            }
            loop {
                let renewed = tokio::select! {
                    _ = &mut stop => return,
                    r = csr::request_certificate(&self.client, &self.node, Naming::Renewal, self.csr_timeout) => r,
                };
                match renewed.and_then(|issued| self.swap(issued)) {
                    Ok(()) => {
                        backoff = Duration::from_secs(5);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "cannot renew the node's client certificate");
                        tokio::select! {
                            _ = &mut stop => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(300));
                    }
                }
            }
        }
    }

    /// Stores the new certificate and makes the client use it.
    fn swap(&mut self, issued: csr::Issued) -> Result<(), String> {
        let mut next = self.credentials.clone();
        next.cert_pem = issued.cert_pem;
        next.key_pem = issued.key_pem;
        files::write(&self.kubeconfig, &self.node, &next)?;
        self.client
            .set_identity(&next.identity_pem())
            .map_err(|e| e.to_string())?;
        let serial = files::cert_info(&next.cert_pem)
            .map(|i| i.serial)
            .unwrap_or_default();
        tracing::info!(csr = %issued.csr_name, %serial, "rotated the node's client certificate");
        self.credentials = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_between_70_and_90_percent_of_the_life() {
        let info = CertInfo {
            not_before: 1000,
            not_after: 2000,
            serial: String::new(),
            common_name: String::new(),
            public_key_der: Vec::new(),
        };
        assert_eq!(deadline(&info, 0.0), 1700);
        assert_eq!(deadline(&info, 0.5), 1800);
        assert_eq!(deadline(&info, 0.25), 1750);
        assert_eq!(deadline(&info, 7.0), 1900);
    }
}
