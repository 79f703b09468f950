//! The work queue, with client-go's semantics: a key is queued at most once,
//! never handed to two workers at once (re-added while in flight, it runs
//! again after), delayed adds, and rate-limited requeues combining per-key
//! exponential backoff (5 ms → 1000 s) with an overall token bucket (10/s,
//! burst 100).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Per-key exponential backoff and an overall token bucket.
#[derive(Debug)]
pub struct RateLimiter<K> {
    base: Duration,
    max: Duration,
    failures: HashMap<K, u32>,
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// client-go's defaults: 5 ms doubling to 1000 s per key; 10/s, burst 100 overall.
    pub fn new() -> Self {
        Self::with(
            Duration::from_millis(5),
            Duration::from_secs(1000),
            10.0,
            100.0,
        )
    }

    /// A limiter with these parameters.
    pub fn with(base: Duration, max: Duration, rate: f64, burst: f64) -> Self {
        RateLimiter {
            base,
            max,
            failures: HashMap::new(),
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// The delay before `key` may run again after another failure.
    pub fn when(&mut self, key: &K) -> Duration {
        let n = self.failures.entry(key.clone()).or_insert(0);
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(*n).unwrap_or(u32::MAX))
            .min(self.max);
        *n = n.saturating_add(1);
        // the bucket: take a token, or wait until one accrues
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        self.tokens -= 1.0;
        let bucket = if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        };
        exp.max(bucket)
    }

    /// How many times `key` has failed in a row.
    pub fn failures(&self, key: &K) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }

    /// Forgets `key`'s failures.
    pub fn forget(&mut self, key: &K) {
        self.failures.remove(key);
    }
}

impl<K: Hash + Eq + Clone> Default for RateLimiter<K> {
    fn default() -> Self {
        Self::new()
    }
}

struct State<K> {
    queue: VecDeque<K>,
    dirty: HashSet<K>,
    processing: HashSet<K>,
    limiter: RateLimiter<K>,
    shutdown: bool,
    adds: u64,
    retries: u64,
}

/// The queue (cheap to clone; clones share it).
pub struct Queue<K> {
    state: Arc<Mutex<State<K>>>,
    notify: Arc<Notify>,
}

impl<K> Clone for Queue<K> {
    fn clone(&self) -> Self {
        Queue {
            state: self.state.clone(),
            notify: self.notify.clone(),
        }
    }
}

impl<K: Hash + Eq + Clone + Send + 'static> Queue<K> {
    /// An empty queue with the default rate limiter.
    pub fn new() -> Self {
        Self::with_limiter(RateLimiter::new())
    }

    /// An empty queue with this rate limiter.
    pub fn with_limiter(limiter: RateLimiter<K>) -> Self {
        Queue {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                limiter,
                shutdown: false,
                adds: 0,
                retries: 0,
            })),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: K) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.shutdown || s.dirty.contains(&key) {
            return;
        }
        s.adds += 1;
        s.dirty.insert(key.clone());
        if !s.processing.contains(&key) {
            s.queue.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// Queues `key` after its rate-limited delay (a failed reconcile).
    pub fn add_rate_limited(&self, key: K) {
        let delay = {
            let Ok(mut s) = self.state.lock() else { return };
            s.retries += 1;
            s.limiter.when(&key)
        };
        self.add_after(key, delay);
    }

    /// Resets `key`'s backoff (a successful reconcile).
    pub fn forget(&self, key: &K) {
        if let Ok(mut s) = self.state.lock() {
            s.limiter.forget(key);
        }
    }

    /// Waits for the next key; `None` after shutdown.
    pub async fn get(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            {
                let Ok(mut s) = self.state.lock() else {
                    return None;
                };
                if s.shutdown {
                    return None;
                }
                if let Some(k) = s.queue.pop_front() {
                    s.dirty.remove(&k);
                    s.processing.insert(k.clone());
                    if !s.queue.is_empty() {
                        drop(s);
                        self.notify.notify_one();
                    }
                    return Some(k);
                }
            }
            notified.await;
        }
    }

    /// Marks `key` finished; if it was re-added meanwhile, queues it again.
    pub fn done(&self, key: &K) {
        let Ok(mut s) = self.state.lock() else { return };
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Stops the queue; waiting `get`s return `None`.
    pub fn shutdown(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.shutdown = true;
        }
        self.notify.notify_waiters();
    }

    /// Keys waiting (not in flight).
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.queue.len()).unwrap_or(0)
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (adds, retries) so far.
    pub fn counters(&self) -> (u64, u64) {
        self.state
            .lock()
            .map(|s| (s.adds, s.retries))
            .unwrap_or((0, 0))
    }
}

impl<K: Hash + Eq + Clone + Send + 'static> Default for Queue<K> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deduplicates_and_never_hands_out_a_key_twice_at_once() {
        let q: Queue<&str> = Queue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let first = q.get().await.expect("a");
        assert_eq!(first, "a");
        // re-added while in flight: not handed out until done
        q.add("a");
        assert_eq!(q.get().await, Some("b"));
        assert!(q.is_empty());
        q.done(&"a");
        assert_eq!(q.get().await, Some("a"));
        q.done(&"a");
        q.done(&"b");
        assert!(q.is_empty());
        assert_eq!(q.counters().0, 3, "a duplicate add is not counted");
    }

    #[tokio::test]
    async fn shutdown_releases_waiters() {
        let q: Queue<u32> = Queue::new();
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.get().await })
        };
        tokio::task::yield_now().await;
        q.shutdown();
        assert_eq!(waiter.await.expect("join"), None);
    }

    #[test]
    fn per_key_backoff_doubles_and_forget_resets() {
        let mut l: RateLimiter<&str> = RateLimiter::with(
            Duration::from_millis(5),
            Duration::from_secs(1000),
            1e9,
            1e9,
        );
        assert_eq!(l.when(&"k"), Duration::from_millis(5));
        assert_eq!(l.when(&"k"), Duration::from_millis(10));
        assert_eq!(l.when(&"k"), Duration::from_millis(20));
        assert_eq!(l.when(&"other"), Duration::from_millis(5));
        l.forget(&"k");
        assert_eq!(l.when(&"k"), Duration::from_millis(5));
        for _ in 0..40 {
            l.when(&"k");
        }
        assert_eq!(l.when(&"k"), Duration::from_secs(1000), "capped");
    }

    #[test]
    fn the_bucket_limits_bursts() {
        let mut l: RateLimiter<u32> =
            RateLimiter::with(Duration::ZERO, Duration::ZERO, 10.0, 100.0);
        for k in 0..100 {
            assert_eq!(l.when(&k), Duration::ZERO);
        }
        let d = l.when(&1000);
        assert!(
            d > Duration::from_millis(50) && d <= Duration::from_millis(110),
            "{d:?}"
        );
    }
}
