//! Exponential backoff with jitter, as client-go's watcher uses it: 0.8 s
//! doubling to 30 s, ±jitter, reset after 2 minutes of health.

use std::time::{Duration, Instant};

/// A backoff policy and its state.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: f64,
    jitter: f64,
    reset_after: Duration,
    current: Duration,
    healthy_since: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(
            Duration::from_millis(800),
            Duration::from_secs(30),
            2.0,
            1.0,
            Duration::from_secs(120),
        )
    }
}

impl Backoff {
    /// A policy: `initial` doubling by `factor` up to `max`, each delay
    /// stretched by up to `jitter` times itself, reset after `reset_after` of health.
    pub fn new(
        initial: Duration,
        max: Duration,
        factor: f64,
        jitter: f64,
        reset_after: Duration,
    ) -> Self {
        Backoff {
            initial,
            max,
            factor,
            jitter,
            reset_after,
            current: Duration::ZERO,
            healthy_since: None,
        }
    }

    /// Marks the start of a healthy period (e.g. a watch that opened).
    pub fn healthy(&mut self) {
        if self.healthy_since.is_none() {
            self.healthy_since = Some(Instant::now());
        }
    }

    /// The next delay after a failure.
    pub fn next_delay(&mut self) -> Duration {
        use rand::Rng;
        if self
            .healthy_since
            .is_some_and(|t| t.elapsed() >= self.reset_after)
        {
            self.current = Duration::ZERO;
        }
        self.healthy_since = None;
        self.current = if self.current.is_zero() {
            self.initial
        } else {
            self.current.mul_f64(self.factor).min(self.max)
        };
        let jitter = rand::rng().random_range(0.0..=self.jitter.max(0.0));
        self.current
            .mul_f64(1.0 + jitter)
            .min(self.max.mul_f64(1.0 + self.jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets_after_health() {
        let mut b = Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(400),
            2.0,
            0.0,
            Duration::ZERO,
        );
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        assert_eq!(b.next_delay(), Duration::from_millis(200));
        assert_eq!(b.next_delay(), Duration::from_millis(400));
        assert_eq!(b.next_delay(), Duration::from_millis(400));
        b.healthy();
        assert_eq!(
            b.next_delay(),
            Duration::from_millis(100),
            "reset after a healthy period"
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut b = Backoff::default();
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(800) && d <= Duration::from_secs(60),
                "{d:?}"
            );
        }
    }
}
