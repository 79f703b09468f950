//! How fast an HPA may move, after kube's `horizontal.go`: the recent
//! recommendations of each autoscaler (stabilisation windows: a scale-down
//! applies the highest recommendation of the window, a scale-up the lowest),
//! the scale events of each direction (rate policies: at most N pods or N %
//! per period, the policy chosen by `selectPolicy`), and the older rules for
//! autoscalers without `behavior` (a 5-minute down-scale window, at most
//! double or +4 up). Pure apart from the clock the caller passes in.

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::autoscaling::v2::HPAScalingRules;

/// A condition the normalisation sets: (reason, message).
pub type Reason = (&'static str, &'static str);

/// Within range (`ScalingLimited=False`).
pub const WITHIN_RANGE: Reason = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const TOO_FEW: Reason = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);
const TOO_MANY: Reason = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const UP_LIMIT: Reason = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const DOWN_LIMIT: Reason = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);
/// The recommendation was not changed by stabilisation (`AbleToScale=True`).
pub const READY: Reason = ("ReadyForNewScale", "recommended size matches current size");
const DOWN_STABILIZED: Reason = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const UP_STABILIZED: Reason = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);

#[derive(Clone, Copy, Debug)]
struct Event {
    at: DateTime<Utc>,
    change: i32,
}

/// What one autoscaler remembers between syncs.
#[derive(Clone, Debug, Default)]
pub struct History {
    recommendations: Vec<(DateTime<Utc>, i32)>,
    ups: Vec<Event>,
    downs: Vec<Event>,
}

/// The outcome of normalising a raw recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Normalized {
    /// The replicas to set.
    pub replicas: i32,
    /// `AbleToScale` reason and message (stabilisation).
    pub able: Reason,
    /// `ScalingLimited` reason and message, and whether it limited.
    pub limited: (Reason, bool),
}

/// The inputs of one normalisation.
#[derive(Clone, Copy, Debug)]
pub struct Bounds<'a> {
    /// Replicas now (the target's `spec.replicas`).
    pub current: i32,
    /// `minReplicas`.
    pub min: i32,
    /// `maxReplicas`.
    pub max: i32,
    /// `behavior.scaleUp`, when the autoscaler has a behavior.
    pub up: Option<&'a HPAScalingRules>,
    /// `behavior.scaleDown`, when the autoscaler has a behavior.
    pub down: Option<&'a HPAScalingRules>,
    /// The down-scale window of autoscalers without one (5 minutes).
    pub default_down_window: Duration,
}

impl History {
    /// Normalises `desired` for an autoscaler, recording it.
    pub fn normalize(&mut self, now: DateTime<Utc>, desired: i32, b: &Bounds) -> Normalized {
        match (b.up, b.down) {
            (Some(up), Some(down)) => self.with_behavior(now, desired, b, up, down),
            _ => self.without_behavior(now, desired, b),
        }
    }

    fn without_behavior(&mut self, now: DateTime<Utc>, desired: i32, b: &Bounds) -> Normalized {
        let cutoff = now - b.default_down_window;
        let highest = self
            .recommendations
            .iter()
            .filter(|(at, _)| *at >= cutoff)
            .map(|(_, r)| *r)
            .fold(desired, i32::max);
        self.record(now, desired, cutoff);
        let able = if highest != desired {
            DOWN_STABILIZED
        } else {
            READY
        };
        let up_limit = (2 * b.current).max(4);
        let (ceiling, reason) = if b.max > up_limit {
            (up_limit, UP_LIMIT)
        } else {
            (b.max, TOO_MANY)
        };
        let (replicas, why) = if highest < b.min {
            (b.min, TOO_FEW)
        } else if highest > ceiling {
            (ceiling, reason)
        } else {
            (highest, WITHIN_RANGE)
        };
        Normalized {
            replicas,
            able,
            limited: (why, replicas != highest),
        }
    }

    fn with_behavior(
        &mut self,
        now: DateTime<Utc>,
        desired: i32,
        b: &Bounds,
        up: &HPAScalingRules,
        down: &HPAScalingRules,
    ) -> Normalized {
        let up_cutoff = now - window(up, Duration::zero());
        let down_cutoff = now - window(down, b.default_down_window);
        let mut lowest = desired;
        let mut highest = desired;
        for (at, r) in &self.recommendations {
            if *at > up_cutoff {
                lowest = lowest.min(*r);
            }
            if *at > down_cutoff {
                highest = highest.max(*r);
            }
        }
        let stabilized = b.current.max(lowest).min(highest);
        self.record(now, desired, up_cutoff.min(down_cutoff));
        let able = if stabilized == desired {
            READY
        } else if desired >= b.current {
            UP_STABILIZED
        } else {
            DOWN_STABILIZED
        };
        let (replicas, why) = if stabilized > b.current {
            let limit = self.up_limit(now, b.current, up).max(b.current);
            let (ceiling, reason) = if b.max > limit {
                (limit, UP_LIMIT)
            } else {
                (b.max, TOO_MANY)
            };
            if stabilized > ceiling {
                (ceiling, reason)
            } else {
                (stabilized, WITHIN_RANGE)
            }
        } else if stabilized < b.current {
            let limit = self.down_limit(now, b.current, down).min(b.current);
            let (floor, reason) = if b.min < limit {
                (limit, DOWN_LIMIT)
            } else {
                (b.min, TOO_FEW)
            };
            if stabilized < floor {
                (floor, reason)
            } else {
                (stabilized, WITHIN_RANGE)
            }
        } else {
            (stabilized, WITHIN_RANGE)
        };
        Normalized {
            replicas,
            able,
            limited: (why, replicas != stabilized),
        }
    }

    /// Keeps `desired` as a recommendation, reusing a slot older than `cutoff`.
    fn record(&mut self, now: DateTime<Utc>, desired: i32, cutoff: DateTime<Utc>) {
        match self.recommendations.iter_mut().find(|(at, _)| *at < cutoff) {
            Some(slot) => *slot = (now, desired),
            None => self.recommendations.push((now, desired)),
        }
    }

    /// Remembers a scale from `from` to `to` replicas (autoscalers with a
    /// behavior), forgetting events older than the longest policy period.
    pub fn scaled(
        &mut self,
        now: DateTime<Utc>,
        from: i32,
        to: i32,
        up: Option<&HPAScalingRules>,
        down: Option<&HPAScalingRules>,
    ) {
        let (Some(up), Some(down)) = (up, down) else {
            return;
        };
        let (events, rules, change) = if to > from {
            (&mut self.ups, up, to - from)
        } else {
            (&mut self.downs, down, from - to)
        };
        let longest = rules
            .policies
            .iter()
            .flatten()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0);
        let cutoff = now - Duration::seconds(i64::from(longest));
        events.retain(|e| e.at >= cutoff);
        events.push(Event { at: now, change });
    }

    fn changes_within(events: &[Event], now: DateTime<Utc>, period_seconds: i32) -> i32 {
        let cutoff = now - Duration::seconds(i64::from(period_seconds));
        events
            .iter()
            .filter(|e| e.at > cutoff)
            .map(|e| e.change)
            .sum()
    }

    fn period_start(&self, now: DateTime<Utc>, current: i32, period: i32) -> i32 {
        current - Self::changes_within(&self.ups, now, period)
            + Self::changes_within(&self.downs, now, period)
    }

    fn up_limit(&self, now: DateTime<Utc>, current: i32, rules: &HPAScalingRules) -> i32 {
        let policy = rules.select_policy.as_deref().unwrap_or("Max");
        if policy == "Disabled" {
            return current;
        }
        let proposals = rules.policies.iter().flatten().map(|p| {
            let start = self.period_start(now, current, p.period_seconds);
            if p.type_ == "Pods" {
                start.saturating_add(p.value)
            } else {
                (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
            }
        });
        if policy == "Min" {
            proposals.min().unwrap_or(i32::MAX)
        } else {
            proposals.max().unwrap_or(i32::MIN)
        }
    }

    fn down_limit(&self, now: DateTime<Utc>, current: i32, rules: &HPAScalingRules) -> i32 {
        let policy = rules.select_policy.as_deref().unwrap_or("Max");
        if policy == "Disabled" {
            return current;
        }
        let proposals = rules.policies.iter().flatten().map(|p| {
            let start = self.period_start(now, current, p.period_seconds);
            if p.type_ == "Pods" {
                start.saturating_sub(p.value)
            } else {
                (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
            }
        });
        // "Max" allows the largest change, i.e. the lowest floor
        if policy == "Min" {
            proposals.max().unwrap_or(i32::MIN)
        } else {
            proposals.min().unwrap_or(i32::MAX)
        }
    }
}

fn window(rules: &HPAScalingRules, default: Duration) -> Duration {
    rules
        .stabilization_window_seconds
        .map(|s| Duration::seconds(i64::from(s)))
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

    fn t(s: i64) -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().expect("t") + Duration::seconds(s)
    }

    fn rules(window: Option<i32>, policies: &[(&str, i32, i32)]) -> HPAScalingRules {
        HPAScalingRules {
            stabilization_window_seconds: window,
            select_policy: Some("Max".into()),
            policies: Some(
                policies
                    .iter()
                    .map(|(ty, v, p)| HPAScalingPolicy {
                        type_: (*ty).into(),
                        value: *v,
                        period_seconds: *p,
                    })
                    .collect(),
            ),
            tolerance: None,
        }
    }

    fn bounds<'a>(
        current: i32,
        up: Option<&'a HPAScalingRules>,
        down: Option<&'a HPAScalingRules>,
    ) -> Bounds<'a> {
        Bounds {
            current,
            min: 1,
            max: 20,
            up,
            down,
            default_down_window: Duration::seconds(300),
        }
    }

    #[test]
    fn without_behavior_scale_down_waits_for_the_window_and_up_is_capped() {
        let mut h = History::default();
        let n = h.normalize(t(0), 12, &bounds(2, None, None));
        assert_eq!(n.replicas, 4, "at most double or 4: {n:?}");
        assert_eq!(n.limited, (UP_LIMIT, true));
        // the load went away at once: the window keeps the highest recent
        // recommendation (12), reached at most doubling
        let n = h.normalize(t(15), 1, &bounds(4, None, None));
        assert_eq!(n.replicas, 8, "{n:?}");
        assert_eq!(n.able, DOWN_STABILIZED);
        let n = h.normalize(t(301), 1, &bounds(12, None, None));
        assert_eq!(n.replicas, 1, "{n:?}");
        assert_eq!(n.limited, (WITHIN_RANGE, false));
    }

    #[test]
    fn behavior_windows_and_policies() {
        let up = rules(Some(0), &[("Pods", 4, 15), ("Percent", 100, 15)]);
        let down = rules(Some(30), &[("Percent", 100, 15)]);
        let mut h = History::default();
        // 1 → 10: Max of +4 and +100% → 5
        let n = h.normalize(t(0), 10, &bounds(1, Some(&up), Some(&down)));
        assert_eq!(n.replicas, 5);
        assert_eq!(n.limited, (UP_LIMIT, true));
        h.scaled(t(0), 1, 5, Some(&up), Some(&down));
        // 5 s later the same period: the period started at 1, so still 5
        let n = h.normalize(t(5), 10, &bounds(5, Some(&up), Some(&down)));
        assert_eq!(n.replicas, 5, "{n:?}");
        // after the period: 5 → 10
        let n = h.normalize(t(20), 10, &bounds(5, Some(&up), Some(&down)));
        assert_eq!(n.replicas, 10);
        h.scaled(t(20), 5, 10, Some(&up), Some(&down));
        // load gone: the down window (30 s) keeps 10 while recent recommendations were 10
        let n = h.normalize(t(25), 1, &bounds(10, Some(&up), Some(&down)));
        assert_eq!(n.replicas, 10);
        assert_eq!(n.able, DOWN_STABILIZED);
        // past the window: down to 1 (100% per 15 s allows it)
        let n = h.normalize(t(60), 1, &bounds(10, Some(&up), Some(&down)));
        assert_eq!(n.replicas, 1, "{n:?}");
    }

    #[test]
    fn disabled_and_min_policies() {
        let mut up = rules(Some(0), &[("Pods", 1, 60), ("Percent", 50, 60)]);
        up.select_policy = Some("Min".into());
        let mut down = rules(Some(0), &[("Pods", 1, 60)]);
        down.select_policy = Some("Disabled".into());
        let mut h = History::default();
        let n = h.normalize(t(0), 9, &bounds(4, Some(&up), Some(&down)));
        assert_eq!(n.replicas, 5, "Min of +1 and +50%");
        let n = h.normalize(t(1), 1, &bounds(4, Some(&up), Some(&down)));
        assert_eq!(n.replicas, 4, "scale-down disabled");
        assert_eq!(n.limited, (DOWN_LIMIT, true));
    }

    #[test]
    fn bounds_apply() {
        let up = rules(Some(0), &[("Pods", 100, 15)]);
        let down = rules(Some(0), &[("Percent", 100, 15)]);
        let mut h = History::default();
        let n = h.normalize(t(0), 50, &bounds(2, Some(&up), Some(&down)));
        assert_eq!((n.replicas, n.limited), (20, (TOO_MANY, true)));
        let n = h.normalize(t(1), 0, &bounds(3, Some(&up), Some(&down)));
        assert_eq!((n.replicas, n.limited), (1, (TOO_FEW, true)));
    }
}
