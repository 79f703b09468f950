//! One LocalStore watch: replay from history, then live events from memory,
//! falling back to history whenever the live feed lags.
//!
//! The hand-over is race-free because the broadcast receiver is subscribed
//! *before* history is read: every event committed after the history snapshot
//! is broadcast after the subscription, so it arrives live, and live events
//! at or below the last replayed revision are skipped. The writer publishes
//! every revision in order, so a live event past the next expected revision
//! (or an explicit `Lagged`) means events were missed: the watcher re-reads
//! them from history and only fails, with `Compacted`, if they are gone.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redb::ReadableDatabase;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio::time::MissedTickBehavior;

use super::{Shared, tables};
use crate::store::{Event, Revision, StoreError, WatchItem};

/// Most events read from history per read transaction.
const REPLAY_CHUNK: usize = 1024;

/// Why a watch stops.
enum Stop {
    /// The consumer dropped the stream or the store closed: end quietly.
    Done,
    /// End the stream with this error.
    Failed(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Failed(e)
    }
}

/// The state of one watch.
pub(super) struct WatchTask {
    pub shared: Weak<Shared>,
    pub live: broadcast::Receiver<Arc<Event>>,
    pub prefix: String,
    /// The next revision to deliver: everything below it has been handled.
    pub next: Revision,
    pub out: mpsc::Sender<Result<WatchItem, StoreError>>,
    pub progress_interval: Duration,
}

impl WatchTask {
    /// Runs the watch until the consumer goes away, the store closes, or an
    /// error ends it (sent as the stream's last item).
    pub async fn run(mut self) {
        if let Err(Stop::Failed(e)) = self.serve().await {
            tracing::debug!(prefix = %self.prefix, error = %e, "watch ended with an error");
            let _ = self.out.send(Err(e)).await;
        }
    }

    async fn serve(&mut self) -> Result<(), Stop> {
        self.catch_up().await?;
        self.progress().await?;
        let mut ticker = tokio::time::interval(self.progress_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut idle = true;
        loop {
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(ev) => {
                        let rev = ev.revision();
                        if rev < self.next {
                            continue;
                        }
                        if rev > self.next {
                            tracing::debug!(expected = self.next, got = rev, "live feed skipped revisions; replaying");
                            self.catch_up().await?;
                            continue;
                        }
                        self.next = rev + 1;
                        if ev.kv.key.starts_with(&self.prefix) {
                            self.send(WatchItem::Event((*ev).clone())).await?;
                            idle = false;
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, prefix = %self.prefix, "slow watcher lagged; replaying from history");
                        self.catch_up().await?;
                    }
                    Err(RecvError::Closed) => return Err(Stop::Done),
                },
                _ = ticker.tick() => {
                    if idle {
                        self.progress().await?;
                    }
                    idle = true;
                }
                () = self.out.closed() => return Err(Stop::Done),
            }
        }
    }

    /// Delivers history from `next` up to the current revision, in chunks.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let shared = self.shared.upgrade().ok_or(Stop::Done)?;
            let prefix = self.prefix.clone();
            let from = self.next;
            let replay = tokio::task::spawn_blocking(move || {
                let txn = shared.db.begin_read().map_err(tables::db_err)?;
                tables::replay(&txn, &prefix, from, REPLAY_CHUNK)
            })
            .await
            .map_err(|e| StoreError::Internal(format!("watch replay task failed: {e}")))??;
            for ev in replay.events {
                self.send(WatchItem::Event(ev)).await?;
            }
            self.next = self.next.max(replay.scanned_to + 1);
            if replay.scanned_to >= replay.current {
                return Ok(());
            }
        }
    }

    /// Sends `Progress` for everything handled so far, unless the watch
    /// starts in the future (there is nothing true to promise yet).
    async fn progress(&mut self) -> Result<(), Stop> {
        let shared = self.shared.upgrade().ok_or(Stop::Done)?;
        let done = self.next - 1;
        if done >= 1 && done <= shared.revision.load(Ordering::Acquire) {
            drop(shared);
            self.send(WatchItem::Progress(done)).await?;
        }
        Ok(())
    }

    async fn send(&mut self, item: WatchItem) -> Result<(), Stop> {
        self.out.send(Ok(item)).await.map_err(|_| Stop::Done)
    }
}
