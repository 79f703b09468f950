//! Failover across etcd members: one client per endpoint, a preferred member,
//! and retries on the next member when one cannot be reached.
//!
//! etcd-client balances over its endpoints but fails a request routed to a
//! dead one instead of avoiding it (its issue 39), so a 3-member cluster with
//! one member down would fail a share of requests. Here each member has its
//! own client; a request goes to the preferred member and, if that member is
//! unreachable, to the next, which then becomes preferred. Reads retry on any
//! unavailability. Writes retry only when the request cannot have reached
//! etcd (no connection could be made, or the member had no leader and
//! refused it), so a write is never applied twice.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use etcd_client::{Client, ConnectOptions, Error};
use tokio::sync::Mutex;

/// Whether a request may be sent again after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Retry {
    /// Reads: retry on any unavailability.
    Read,
    /// Writes: retry only if the request was surely not applied.
    Write,
}

/// One member.
struct Member {
    endpoint: String,
    /// Connected on first use (connecting with a password needs the member up).
    client: Mutex<Option<Client>>,
}

/// The members and which one is preferred.
pub(super) struct Pool {
    members: Vec<Member>,
    preferred: AtomicUsize,
    options: ConnectOptions,
}

impl Pool {
    /// A pool over these endpoints; nothing is connected yet.
    pub fn new(endpoints: &[String], options: ConnectOptions) -> Pool {
        Pool {
            members: endpoints
                .iter()
                .map(|e| Member {
                    endpoint: e.clone(),
                    client: Mutex::new(None),
                })
                .collect(),
            preferred: AtomicUsize::new(0),
            options,
        }
    }

    /// The endpoint of member `i`.
    pub fn endpoint(&self, i: usize) -> &str {
        self.members.get(i).map_or("", |m| m.endpoint.as_str())
    }

    /// The index of the preferred member.
    pub fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Acquire) % self.members.len().max(1)
    }

    /// Makes another member preferred after `failed` failed (no-op if
    /// someone already moved on).
    pub fn fail_over(&self, failed: usize) {
        let next = (failed + 1) % self.members.len().max(1);
        if self
            .preferred
            .compare_exchange(failed, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && self.members.len() > 1
        {
            tracing::warn!(
                from = %self.members[failed].endpoint,
                to = %self.members[next].endpoint,
                "etcd member unreachable; switching members"
            );
        }
    }

    /// The client of member `i`, connecting it if needed.
    pub async fn client(&self, i: usize) -> Result<Client, Error> {
        let member = &self.members[i];
        let mut slot = member.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let client =
            Client::connect([member.endpoint.as_str()], Some(self.options.clone())).await?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Runs `op` on the preferred member, then on the others while the
    /// failure allows a retry. Returns the last error if all fail.
    pub async fn call<T, F, Fut>(&self, retry: Retry, mut op: F) -> Result<T, Error>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let n = self.members.len();
        let start = self.preferred();
        let mut last = None;
        for attempt in 0..n {
            let i = (start + attempt) % n;
            let outcome = match self.client(i).await {
                Ok(client) => op(client).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(e) if may_retry(&e, retry) => {
                    self.fail_over(i);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::InvalidArgs("no etcd endpoints".into())))
    }
}

/// Whether a request failed because its member was unavailable (for a
/// write: it may or may not have been applied).
pub(super) fn unavailable(e: &Error) -> bool {
    may_retry(e, Retry::Read)
}

/// Whether a failed request may go to another member.
fn may_retry(e: &Error, retry: Retry) -> bool {
    use tonic::Code;
    // Failures that happen before a request leaves the client, or that etcd
    // returns before proposing it.
    let never_sent = |msg: &str| {
        let msg = msg.to_ascii_lowercase();
        [
            "tcp connect error",
            "error trying to connect",
            "connection refused",
            "dns error",
            "no leader",
        ]
        .iter()
        .any(|m| msg.contains(m))
    };
    // the causes matter: a transport error's own text is just "transport
    // error", and etcd-client's error does not chain to what it wraps, so
    // the chain is read from the wrapped error itself
    match e {
        Error::TransportError(t) => {
            retry == Retry::Read || never_sent(&super::convert::with_causes(t))
        }
        Error::IoError(io) => retry == Retry::Read || never_sent(&super::convert::with_causes(io)),
        Error::GRpcStatus(s) => match s.code() {
            Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Cancelled => {
                retry == Retry::Read
                    || never_sent(s.message())
                    || never_sent(&super::convert::with_causes(s))
            }
            _ => false,
        },
        _ => false,
    }
}
