//! One EtcdStore watch: an etcd watch with `prev_kv` and progress
//! notifications that survives dropped connections.
//!
//! The task remembers the next revision it owes the consumer. When the gRPC
//! stream fails or ends (etcd restarted, a member went away, the network
//! blipped) it opens a new watch from that revision, after a backoff, so no
//! event is lost or repeated (events below it are skipped, in case etcd sends
//! them again). A compacted start revision ends the stream with
//! `StoreError::Compacted`. Progress notifications (etcd's empty responses)
//! become `WatchItem::Progress` and also move the resume point forward.

use std::time::Duration;

use std::sync::Arc;

use etcd_client::{WatchOptions, WatchResponse};
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};

use super::convert;
use super::pool::Pool;
use crate::store::{Revision, StoreError, WatchItem};

/// First and longest wait before re-opening a failed watch.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Why one watch session ended.
enum End {
    /// The consumer dropped the stream.
    Done,
    /// End the stream with this error.
    Failed(StoreError),
    /// The connection failed; open a new watch from `next`.
    Retry(String),
}

/// The state of one watch.
pub(super) struct EtcdWatch {
    pub pool: Arc<Pool>,
    /// The store's prefix, taken off keys.
    pub store_prefix: String,
    /// The full etcd prefix watched.
    pub watch_prefix: String,
    /// The next revision to deliver.
    pub next: Revision,
    pub out: mpsc::Sender<Result<WatchItem, StoreError>>,
    pub progress_request_interval: Option<Duration>,
    /// Resolves (with an error) when the store is dropped: the watch ends.
    pub shutdown: tokio::sync::watch::Receiver<()>,
}

impl EtcdWatch {
    /// Runs until the consumer goes away or an error ends the stream.
    pub async fn run(mut self) {
        let mut backoff = BACKOFF.0;
        loop {
            let mut delivered = false;
            match self.session(&mut delivered).await {
                End::Done => return,
                End::Failed(e) => {
                    tracing::debug!(prefix = %self.watch_prefix, error = %e, "etcd watch ended with an error");
                    let _ = self.out.send(Err(e)).await;
                    return;
                }
                End::Retry(why) => {
                    if delivered {
                        backoff = BACKOFF.0;
                    }
                    tracing::warn!(prefix = %self.watch_prefix, next = self.next, %why, retry_in = ?backoff, "etcd watch interrupted; resuming");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.out.closed() => return,
                        _ = self.shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
    }

    /// One etcd watch from `next`, until it fails or the consumer leaves.
    async fn session(&mut self, healthy: &mut bool) -> End {
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_progress_notify()
            .with_start_revision(self.next);
        let member = self.pool.preferred();
        let opened = async {
            let client = self.pool.client(member).await?;
            client
                .watch_client()
                .watch(self.watch_prefix.as_str(), Some(options))
                .await
        };
        let stream = tokio::select! {
            opened = opened => match opened {
                Ok(s) => s,
                Err(e) => {
                    self.pool.fail_over(member);
                    return End::Retry(format!("cannot open watch on {}: {e}", self.pool.endpoint(member)));
                }
            },
            () = self.out.closed() => return End::Done,
            _ = self.shutdown.changed() => return End::Done,
        };
        let (mut requests, mut responses) = stream.split();
        let mut ticker = self.progress_request_interval.map(|every| {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        loop {
            tokio::select! {
                msg = responses.message() => match msg {
                    Ok(Some(resp)) => {
                        match self.handle(resp).await {
                            Ok(()) => *healthy = true,
                            Err(end) => {
                                if matches!(end, End::Retry(_)) {
                                    // e.g. the member lost its leader.
                                    self.pool.fail_over(member);
                                }
                                return end;
                            }
                        }
                    }
                    Ok(None) => {
                        self.pool.fail_over(member);
                        return End::Retry("etcd closed the watch stream".into());
                    }
                    Err(e) => {
                        self.pool.fail_over(member);
                        return End::Retry(e.to_string());
                    }
                },
                () = tick(&mut ticker) => {
                    if let Err(e) = requests.request_progress().await {
                        return End::Retry(format!("cannot request progress: {e}"));
                    }
                }
                () = self.out.closed() => return End::Done,
                _ = self.shutdown.changed() => return End::Done,
            }
        }
    }

    async fn handle(&mut self, resp: WatchResponse) -> Result<(), End> {
        if resp.compact_revision() > 0 {
            return Err(End::Failed(StoreError::Compacted {
                requested: self.next,
                compacted: resp.compact_revision(),
            }));
        }
        if resp.canceled() {
            return Err(End::Retry(format!(
                "etcd cancelled the watch: {}",
                resp.cancel_reason()
            )));
        }
        if resp.created() {
            return Ok(());
        }
        if resp.events().is_empty() {
            // A progress notification: every event up to the header's
            // revision has been sent. Stale ones (below what was already
            // delivered) promise nothing new.
            let Some(rev) = resp.header().map(|h| h.revision()) else {
                return Ok(());
            };
            if rev >= self.next - 1 && rev >= 1 {
                self.next = rev + 1;
                self.send(WatchItem::Progress(rev)).await?;
            }
            return Ok(());
        }
        // All events of one revision come in one response, so skip by the
        // revision owed when the response arrived.
        let owed = self.next;
        for ev in resp.events() {
            let ev = convert::event(ev, &self.store_prefix).map_err(End::Failed)?;
            let rev = ev.revision();
            if rev < owed {
                continue;
            }
            self.next = self.next.max(rev + 1);
            self.send(WatchItem::Event(ev)).await?;
        }
        Ok(())
    }

    async fn send(&mut self, item: WatchItem) -> Result<(), End> {
        self.out.send(Ok(item)).await.map_err(|_| End::Done)
    }
}

/// The next tick, or never without a timer.
async fn tick(timer: &mut Option<Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
