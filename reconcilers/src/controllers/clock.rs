//! The controllers' notion of "now": the system clock in production, and a
//! clock tests can move forward (an offset added to the system time) so a
//! CronJob's next minute, or a Job's deadline, arrives without waiting for
//! it. Moving it notifies the controllers that schedule by it, so they look
//! again at once.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

struct Inner {
    /// Milliseconds added to the system clock (0 in production).
    offset_ms: AtomicI64,
    /// Bumped on every move.
    moved: watch::Sender<u64>,
}

/// A clock shared by every controller of a process (cheap to clone).
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock")
            .field("offset_ms", &self.inner.offset_ms.load(Ordering::Relaxed))
            .finish()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        let (moved, _) = watch::channel(0);
        Clock {
            inner: Arc::new(Inner {
                offset_ms: AtomicI64::new(0),
                moved,
            }),
        }
    }

    /// The current time by this clock.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.inner.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `by` (tests only: production never moves it)
    /// and wakes the controllers that schedule by it.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.inner.offset_ms.fetch_add(ms, Ordering::Relaxed);
        self.inner.moved.send_modify(|n| *n += 1);
    }

    /// Resolves each time the clock is moved.
    pub fn moves(&self) -> watch::Receiver<u64> {
        self.inner.moved.subscribe()
    }

    /// How long from now until `t` by this clock (zero if it has passed).
    pub fn until(&self, t: DateTime<Utc>) -> Duration {
        (t - self.now()).to_std().unwrap_or(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_and_notifies() {
        let c = Clock::system();
        let rx = c.moves();
        let before = c.now();
        c.advance(Duration::from_secs(120));
        assert!(c.now() - before >= chrono::Duration::seconds(120));
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!(c.until(before), Duration::ZERO);
    }
}
