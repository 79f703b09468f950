//! Crash-loop back-off per container, as the kubelet does it: the first
//! restart is immediate, then the delay starts at a base (10 s) and doubles
//! up to a maximum (5 min); a container that ran long enough (10 min) starts
//! over.

use std::time::Duration;

/// One container's back-off.
#[derive(Clone, Debug, Default)]
pub struct CrashBackoff {
    /// Restarts since the back-off was last reset.
    pub consecutive: u32,
}

impl CrashBackoff {
    /// The delay before the next restart, given how long the last run lasted.
    pub fn delay(
        &mut self,
        ran_for: Duration,
        base: Duration,
        max: Duration,
        reset: Duration,
    ) -> Duration {
        if ran_for >= reset {
            self.consecutive = 0;
        }
        if self.consecutive == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(self.consecutive - 1).unwrap_or(u32::MAX);
        base.saturating_mul(factor).min(max)
    }

    /// Records that the container is being restarted.
    pub fn restarted(&mut self) {
        self.consecutive = self.consecutive.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets_after_a_long_run() {
        let (base, max, reset) = (
            Duration::from_secs(10),
            Duration::from_secs(300),
            Duration::from_secs(600),
        );
        let mut b = CrashBackoff::default();
        let short = Duration::from_secs(1);
        let mut seen = Vec::new();
        for _ in 0..8 {
            seen.push(b.delay(short, base, max, reset).as_secs());
            b.restarted();
        }
        assert_eq!(seen, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(
            b.delay(Duration::from_secs(601), base, max, reset),
            Duration::ZERO
        );
    }
}
