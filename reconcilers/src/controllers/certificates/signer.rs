//! The csrsigning controller, after kube-controller-manager's: an approved
//! CertificateSigningRequest of the `kubernetes.io/kube-apiserver-client-kubelet`
//! or `kubernetes.io/kube-apiserver-client` signer is signed with the
//! cluster CA and the certificate written to `status.certificate`. A
//! request the signer may not sign (a kubelet one with the wrong subject or
//! usages, an unreadable one) gets a `Failed` condition, reason
//! `SignerValidationFailure`. Validity: from now minus a backdate (kube's
//! 5 minutes, at most a tenth of a short certificate's life) to now plus
//! `--cluster-signing-duration`, shortened by `spec.expirationSeconds`,
//! never past the CA's own end.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use serde_json::{Value, json};

use crate::controllers::Context;
use crate::controllers::certificates::request::{self, CLIENT_SIGNER, KUBELET_CLIENT_SIGNER};
use crate::controllers::options::SigningCa;
use crate::runtime::{Action, Cache, ClientError, Controller, ObjectRef, Patch, WriteParams};

const MANAGER: &str = "csrsigning";
/// kube's backdate of `NotBefore`, for clocks a little behind.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Certificates living less than this are short: their end is not backdated.
const SHORT: Duration = Duration::from_secs(8 * 3600);

struct State {
    ctx: Context,
    ca: Arc<SigningCa>,
    csrs: Cache<CertificateSigningRequest>,
}

/// Runs the controller until shutdown (idle, with a warning, without a CA key).
pub async fn run(ctx: Context) {
    let Some(ca) = ctx.options.cluster_signing.clone() else {
        tracing::warn!(
            "csrsigning: no --cluster-signing-cert-file/--cluster-signing-key-file: approved \
             CertificateSigningRequests stay unsigned"
        );
        ctx.stopped().await;
        return;
    };
    let informer = ctx.informers.get::<CertificateSigningRequest>();
    let controller = Controller::new("csrsigning", &informer).workers(2);
    let state = Arc::new(State {
        ctx: ctx.clone(),
        ca,
        csrs: informer.cache(),
    });
    let shutdown = ctx.stopped();
    controller
        .run(
            move |key| reconcile(state.clone(), key),
            ctx.metrics.clone(),
            shutdown,
        )
        .await;
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(csr) = state.csrs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let signer = csr.spec.signer_name.as_str();
    if !(signer == KUBELET_CLIENT_SIGNER || signer == CLIENT_SIGNER)
        || !request::has_condition(&csr, "Approved")
        || request::has_condition(&csr, "Denied")
        || request::has_condition(&csr, "Failed")
        || request::is_issued(&csr)
    {
        return Ok(Action::AwaitChange);
    }
    let duration = lifetime(
        state.ctx.options.cluster_signing_duration,
        csr.spec.expiration_seconds,
    );
    let status = match sign(&state.ca, &csr, duration, chrono::Utc::now()) {
        Ok(pem) => {
            tracing::info!(csr = %key.name, requester = ?csr.spec.username, ?duration, "signed");
            json!({"certificate": base64_encode(pem.as_bytes())})
        }
        Err(Refusal::Invalid(why)) => {
            tracing::info!(csr = %key.name, reason = %why, "refusing to sign");
            json!({"conditions": with_failed(&csr, &why)})
        }
        Err(Refusal::Internal(why)) => {
            tracing::error!(csr = %key.name, error = %why, "cannot sign");
            return Ok(Action::Requeue(Duration::from_secs(30)));
        }
    };
    let patch = json!({
        "metadata": {"resourceVersion": csr.metadata.resource_version},
        "status": status,
    });
    let wp = WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    match state
        .ctx
        .client
        .api::<CertificateSigningRequest>(None)
        .patch_status(&key.name, &Patch::Merge(patch), &wp)
        .await
    {
        Ok(_) => Ok(Action::AwaitChange),
        Err(e) if e.is_not_found() => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn with_failed(csr: &CertificateSigningRequest, why: &str) -> Vec<Value> {
    let mut conditions: Vec<Value> = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    conditions.push(json!({
        "type": "Failed", "status": "True", "reason": "SignerValidationFailure",
        "message": why, "lastUpdateTime": now, "lastTransitionTime": now,
    }));
    conditions
}

/// How long a certificate lives: the signer's duration, shortened by the
/// request's `expirationSeconds` (kube: `min(expirationSeconds, certTTL)`).
pub fn lifetime(signing_duration: Duration, expiration_seconds: Option<i32>) -> Duration {
    match expiration_seconds.and_then(|s| u64::try_from(s).ok()) {
        Some(s) => signing_duration.min(Duration::from_secs(s)),
        None => signing_duration,
    }
}

/// `NotBefore` and `NotAfter` of a certificate issued at `now` for
/// `lifetime` by a CA that ends at `ca_not_after` (kube's
/// `PermissiveSigningPolicy`, with the backdate capped at a tenth of a
/// short life so that a short `--cluster-signing-duration` keeps its
/// meaning).
pub fn validity(
    now: chrono::DateTime<chrono::Utc>,
    lifetime: Duration,
    ca_not_after: chrono::DateTime<chrono::Utc>,
) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let chrono_of = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let backdate = if lifetime < SHORT {
        BACKDATE.min(lifetime / 10)
    } else {
        BACKDATE
    };
    let not_before = now - chrono_of(backdate);
    let not_after = if lifetime < SHORT {
        now + chrono_of(lifetime)
    } else {
        now + chrono_of(lifetime) - chrono_of(backdate)
    };
    (not_before, not_after.min(ca_not_after))
}

/// Why a request was not signed.
#[derive(Debug)]
pub enum Refusal {
    /// The request is not one this signer signs (becomes a `Failed` condition).
    Invalid(String),
    /// The CA could not be used (retried).
    Internal(String),
}

/// Signs `csr` with `ca` for `lifetime` from `now`; returns the certificate (PEM).
pub fn sign(
    ca: &SigningCa,
    csr: &CertificateSigningRequest,
    lifetime: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, Refusal> {
    let pem = std::str::from_utf8(&csr.spec.request.0)
        .map_err(|_| Refusal::Invalid("spec.request is not PEM text".into()))?;
    let subject = request::parse(pem.as_bytes()).map_err(Refusal::Invalid)?;
    let usages = request::usages(csr);
    if csr.spec.signer_name == KUBELET_CLIENT_SIGNER {
        if let Some(problem) = request::kubelet_client_problem(&subject, &usages) {
            return Err(Refusal::Invalid(problem));
        }
    } else {
        let allowed = ["digital signature", "key encipherment", "client auth"];
        if !usages.iter().any(|u| u == "client auth")
            || usages.iter().any(|u| !allowed.contains(&u.as_str()))
        {
            return Err(Refusal::Invalid(format!(
                "usages must include client auth and be within {allowed:?}: {usages:?}"
            )));
        }
    }
    let parsed = rcgen::CertificateSigningRequestParams::from_pem(pem)
        .map_err(|e| Refusal::Invalid(format!("spec.request: {e}")))?;
    let ca_key = rcgen::KeyPair::from_pem(&ca.key_pem)
        .map_err(|e| Refusal::Internal(format!("the CA key: {e}")))?;
    let ca_not_after = ca_not_after(&ca.cert_pem).map_err(Refusal::Internal)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)
        .map_err(|e| Refusal::Internal(format!("the CA certificate: {e}")))?;
    let (not_before, not_after) = validity(now, lifetime, ca_not_after);
    if not_after <= now {
        return Err(Refusal::Internal(format!(
            "the CA expired at {ca_not_after}"
        )));
    }
    let to_time = |t: chrono::DateTime<chrono::Utc>| {
        time::OffsetDateTime::from_unix_timestamp(t.timestamp())
            .map_err(|e| Refusal::Internal(format!("certificate time {t}: {e}")))
    };
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = parsed.params.distinguished_name.clone();
    params.subject_alt_names = parsed.params.subject_alt_names.clone();
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.not_before = to_time(not_before)?;
    params.not_after = to_time(not_after)?;
    params.serial_number = Some(random_serial());
    params.key_usages = usages
        .iter()
        .filter_map(|u| match u.as_str() {
            "digital signature" | "signing" => Some(rcgen::KeyUsagePurpose::DigitalSignature),
            "key encipherment" => Some(rcgen::KeyUsagePurpose::KeyEncipherment),
            _ => None,
        })
        .collect();
    params.extended_key_usages = usages
        .iter()
        .filter_map(|u| (u == "client auth").then_some(rcgen::ExtendedKeyUsagePurpose::ClientAuth))
        .collect();
    params.use_authority_key_identifier_extension = true;
    let request = rcgen::CertificateSigningRequestParams {
        params,
        public_key: parsed.public_key,
    };
    let cert = request
        .signed_by(&issuer)
        .map_err(|e| Refusal::Internal(format!("signing: {e}")))?;
    Ok(cert.pem())
}

/// A random positive 128-bit serial number.
fn random_serial() -> rcgen::SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    rcgen::SerialNumber::from_slice(&bytes)
}

fn ca_not_after(cert_pem: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| format!("the CA certificate is not PEM: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&block.contents)
        .map_err(|e| format!("the CA certificate: {e}"))?;
    let t = cert.validity().not_after.timestamp();
    chrono::DateTime::from_timestamp(t, 0).ok_or_else(|| format!("the CA's end {t} is no time"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;

    fn ca() -> SigningCa {
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test-ca");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("ca");
        SigningCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn kubelet_csr(cn: &str, org: &str) -> CertificateSigningRequest {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, org);
        let key = rcgen::KeyPair::generate().expect("key");
        let pem = params
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem");
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: KUBELET_CLIENT_SIGNER.into(),
                usages: Some(vec!["digital signature".into(), "client auth".into()]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn expiration_seconds_only_shortens() {
        let year = Duration::from_secs(8760 * 3600);
        assert_eq!(lifetime(year, None), year);
        assert_eq!(lifetime(year, Some(600)), Duration::from_secs(600));
        let minute = Duration::from_secs(60);
        assert_eq!(lifetime(minute, Some(3600)), minute);
    }

    #[test]
    fn short_lives_are_backdated_a_little_and_long_ones_five_minutes() {
        let now = chrono::Utc::now();
        let far = now + chrono::Duration::days(10_000);
        let (nb, na) = validity(now, Duration::from_secs(60), far);
        assert_eq!(now - nb, chrono::Duration::seconds(6));
        assert_eq!(na - now, chrono::Duration::seconds(60));
        let (nb, na) = validity(now, Duration::from_secs(8760 * 3600), far);
        assert_eq!(now - nb, chrono::Duration::minutes(5));
        assert_eq!(
            na - now,
            chrono::Duration::hours(8760) - chrono::Duration::minutes(5)
        );
        // never past the CA
        let soon = now + chrono::Duration::seconds(30);
        assert_eq!(validity(now, Duration::from_secs(60), soon).1, soon);
    }

    #[test]
    fn signs_a_kubelet_request_with_its_subject_and_client_auth() {
        let ca = ca();
        let csr = kubelet_csr("system:node:a", "system:nodes");
        let now = chrono::Utc::now();
        let pem = sign(&ca, &csr, Duration::from_secs(3600), now).expect("signed");
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
        let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).expect("cert");
        let cn = cert.subject().iter_common_name().next().map(|a| a.as_str());
        assert_eq!(cn, Some(Ok("system:node:a")));
        let o: Vec<_> = cert
            .subject()
            .iter_organization()
            .filter_map(|a| a.as_str().ok())
            .collect();
        assert_eq!(o, ["system:nodes"]);
        assert_eq!(
            cert.validity().not_after.timestamp() - now.timestamp(),
            3600
        );
        let eku = cert
            .extended_key_usage()
            .expect("eku")
            .map(|e| e.value.client_auth);
        assert_eq!(eku, Some(true));
        assert_eq!(
            cert.issuer().iter_common_name().next().map(|a| a.as_str()),
            Some(Ok("test-ca"))
        );
    }

    #[test]
    fn a_kubelet_request_for_masters_is_refused_not_signed() {
        let csr = kubelet_csr("system:node:a", "system:masters");
        let r = sign(&ca(), &csr, Duration::from_secs(60), chrono::Utc::now());
        assert!(matches!(r, Err(Refusal::Invalid(ref why)) if why.contains("organization")));
    }
}
