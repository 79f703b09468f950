//! Lease-based leader election, as client-go's: acquire the Lease when it is
//! free or its holder stopped renewing for a lease duration (judged by when
//! *we* last saw it change, so clocks need not agree), renew every retry
//! period, give up if renewal fails for the renew deadline, release on
//! clean shutdown. Writes use the Lease's resourceVersion, so two candidates
//! never both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::runtime::client::{Api, ClientError, WriteParams};

/// Timing of an election (client-go's defaults: 15 s, 10 s, 2 s).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up.
    pub renew_deadline: Duration,
    /// How often candidates retry and the leader renews.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// One candidate in one election.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    observed: Option<(String, Instant)>,
}

/// Whether `spec` is held by someone other than `me` whose renewal we saw recently.
fn held_by_other(spec: &LeaseSpec, me: &str, observed_at: Instant, duration: Duration) -> bool {
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    !holder.is_empty() && holder != me && observed_at.elapsed() < duration
}

impl LeaderElector {
    /// A candidate `identity` for the Lease `name` (in `api`'s namespace).
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timing: Timing) -> Self {
        LeaderElector {
            api,
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            observed: None,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn spec(&self, acquire: bool, old: Option<&LeaseSpec>) -> LeaseSpec {
        let now = schemas::time::micro_now();
        let transitions = old.and_then(|o| o.lease_transitions).unwrap_or(0);
        let was_mine =
            old.and_then(|o| o.holder_identity.as_deref()) == Some(self.identity.as_str());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(15),
            ),
            acquire_time: if acquire && !was_mine {
                Some(now.clone())
            } else {
                old.and_then(|o| o.acquire_time.clone())
                    .or(Some(now.clone()))
            },
            renew_time: Some(now),
            lease_transitions: Some(if acquire && !was_mine && old.is_some() {
                transitions + 1
            } else {
                transitions
            }),
            ..Default::default()
        }
    }

    /// One attempt to acquire or renew; `Ok(true)` when we hold the lease.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, ClientError> {
        let current = self.api.get_opt(&self.name).await?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(true, None)),
            };
            return match self.api.create(&lease, &WriteParams::default()).await {
                Ok(_) => Ok(true),
                Err(e) if e.is_already_exists() => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        // track when we last saw the record change
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let observed_at = match &self.observed {
            Some((seen, at)) if *seen == rv => *at,
            _ => {
                let now = Instant::now();
                self.observed = Some((rv, now));
                now
            }
        };
        let duration = spec
            .lease_duration_seconds
            .map_or(self.timing.lease_duration, |s| {
                Duration::from_secs(u64::try_from(s.max(1)).unwrap_or(15))
            });
        if held_by_other(&spec, &self.identity, observed_at, duration) {
            return Ok(false);
        }
        lease.spec = Some(self.spec(true, Some(&spec)));
        match self
            .api
            .replace(&self.name, &lease, &WriteParams::default())
            .await
        {
            Ok(updated) => {
                self.observed = updated
                    .metadata
                    .resource_version
                    .clone()
                    .map(|rv| (rv, Instant::now()));
                Ok(true)
            }
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this candidate leads.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "leader election: cannot reach the lease")
                }
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews until renewal fails for the renew deadline; returns then (leadership lost).
    pub async fn hold(&mut self) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!(lease = %self.name, identity = %self.identity, "lost the lease to another candidate");
                    return;
                }
                Err(e) => tracing::warn!(lease = %self.name, error = %e, "cannot renew the lease"),
            }
            if last_renewed.elapsed() >= self.timing.renew_deadline {
                tracing::warn!(lease = %self.name, "renew deadline passed; giving up leadership");
                return;
            }
        }
    }

    /// Releases the lease if we hold it, so a standby takes over at once.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            renew_time: Some(schemas::time::micro_now()),
            ..spec
        });
        match self
            .api
            .replace(&self.name, &lease, &WriteParams::default())
            .await
        {
            Ok(_) => {
                tracing::info!(lease = %self.name, identity = %self.identity, "released the lease")
            }
            Err(e) => tracing::warn!(lease = %self.name, error = %e, "cannot release the lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_holder_blocks_and_an_expired_one_does_not() {
        let spec = LeaseSpec {
            holder_identity: Some("other".into()),
            ..Default::default()
        };
        assert!(held_by_other(
            &spec,
            "me",
            Instant::now(),
            Duration::from_secs(15)
        ));
        assert!(!held_by_other(
            &spec,
            "other",
            Instant::now(),
            Duration::from_secs(15)
        ));
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(20))
            .unwrap_or_else(Instant::now);
        assert!(!held_by_other(
            &spec,
            "me",
            long_ago,
            Duration::from_secs(15)
        ));
        let released = LeaseSpec {
            holder_identity: Some(String::new()),
            ..Default::default()
        };
        assert!(!held_by_other(
            &released,
            "me",
            Instant::now(),
            Duration::from_secs(15)
        ));
    }
}
