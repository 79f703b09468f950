//! The csrcleaner controller, after kube-controller-manager's (`cleaner.go`):
//! CertificateSigningRequests do not pile up — each node renews its
//! certificate many times — so one is deleted once its certificate has
//! expired, an hour after it was issued, denied or failed, or a day after it
//! was made if nothing happened to it. Requests are requeued for their
//! deadline, never polled.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use schemas::TimeExt;

use crate::controllers::Context;
use crate::controllers::certificates::request;
use crate::runtime::{Action, Cache, ClientError, Controller, DeleteParams, ObjectRef};

/// How long an issued request stays after its approval.
const APPROVED: Duration = Duration::hours(1);
/// How long a denied or failed request stays.
const DENIED: Duration = Duration::hours(1);
/// How long a request nobody acted on stays.
const PENDING: Duration = Duration::hours(24);

struct State {
    ctx: Context,
    csrs: Cache<CertificateSigningRequest>,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let informer = ctx.informers.get::<CertificateSigningRequest>();
    let controller = Controller::new("csrcleaner", &informer).workers(1);
    let state = Arc::new(State {
        ctx: ctx.clone(),
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

/// When a condition of this type turned `True` (its update time, else its
/// transition time).
fn condition_time(csr: &CertificateSigningRequest, type_: &str) -> Option<DateTime<Utc>> {
    let c = csr
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")?;
    c.last_update_time
        .as_ref()
        .or(c.last_transition_time.as_ref())
        .map(TimeExt::utc)
}

/// When the certificate of an issued request expires.
fn certificate_end(csr: &CertificateSigningRequest) -> Option<DateTime<Utc>> {
    let pem = &csr.status.as_ref()?.certificate.as_ref()?.0;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).ok()?;
    DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
}

/// When the request is to be deleted, by kube's rules (`None`: never, e.g. a
/// request being deleted already).
pub fn deadline(csr: &CertificateSigningRequest) -> Option<DateTime<Utc>> {
    if csr.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let created = csr.metadata.creation_timestamp.as_ref().map(TimeExt::utc);
    let mut when: Vec<DateTime<Utc>> = Vec::new();
    if request::is_issued(csr) {
        when.extend(certificate_end(csr));
        when.extend(
            condition_time(csr, "Approved")
                .or(created)
                .map(|t| t + APPROVED),
        );
    }
    for t in ["Denied", "Failed"] {
        if request::has_condition(csr, t) {
            when.extend(condition_time(csr, t).or(created).map(|t| t + DENIED));
        }
    }
    let untouched = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_none_or(Vec::is_empty);
    if untouched {
        when.extend(created.map(|t| t + PENDING));
    }
    when.into_iter().min()
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let Some(csr) = state.csrs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let Some(due) = deadline(&csr) else {
        return Ok(Action::AwaitChange);
    };
    let now = Utc::now();
    if due > now {
        let wait = (due - now).to_std().unwrap_or_default();
        return Ok(Action::Requeue(wait + std::time::Duration::from_secs(1)));
    }
    tracing::info!(csr = %key.name, "deleting a CertificateSigningRequest past its time");
    let dp = DeleteParams {
        precondition_uid: csr.metadata.uid.clone(),
        ..Default::default()
    };
    match state
        .ctx
        .client
        .api::<CertificateSigningRequest>(None)
        .delete(&key.name, &dp)
        .await
    {
        Ok(()) => Ok(Action::AwaitChange),
        Err(e) if e.is_not_found() || e.is_conflict() => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequestCondition, CertificateSigningRequestStatus,
    };
    use schemas::time::from_utc;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("time") + Duration::minutes(minutes)
    }

    fn csr(conditions: &[(&str, i64)]) -> CertificateSigningRequest {
        let mut c = CertificateSigningRequest::default();
        c.metadata.creation_timestamp = Some(from_utc(at(0)));
        if !conditions.is_empty() {
            c.status = Some(CertificateSigningRequestStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, m)| CertificateSigningRequestCondition {
                            type_: t.to_string(),
                            status: "True".into(),
                            last_update_time: Some(from_utc(at(*m))),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            });
        }
        c
    }

    #[test]
    fn pending_requests_go_after_a_day_and_answered_ones_after_an_hour() {
        assert_eq!(deadline(&csr(&[])), Some(at(24 * 60)));
        assert_eq!(deadline(&csr(&[("Denied", 5)])), Some(at(65)));
        assert_eq!(deadline(&csr(&[("Failed", 10)])), Some(at(70)));
        // approved but not issued yet: the signer's turn, not the cleaner's
        assert_eq!(deadline(&csr(&[("Approved", 5)])), None);
        let mut gone = csr(&[]);
        gone.metadata.deletion_timestamp = Some(from_utc(at(1)));
        assert_eq!(deadline(&gone), None);
    }

    #[test]
    fn an_issued_request_goes_when_its_certificate_expires_or_an_hour_after_approval() {
        let mut params = rcgen::CertificateParams::default();
        params.not_before =
            time::OffsetDateTime::from_unix_timestamp(at(0).timestamp()).expect("time");
        params.not_after =
            time::OffsetDateTime::from_unix_timestamp(at(2).timestamp()).expect("time");
        let key = rcgen::KeyPair::generate().expect("key");
        let pem = params.self_signed(&key).expect("cert").pem();
        let mut issued = csr(&[("Approved", 1)]);
        if let Some(s) = issued.status.as_mut() {
            s.certificate = Some(k8s_openapi::ByteString(pem.into_bytes()));
        }
        assert_eq!(deadline(&issued), Some(at(2)));
    }
}
