//! Scheduled snapshots, as k3s's `--etcd-snapshot-schedule-cron` and
//! `--etcd-snapshot-retention`: at each time of a cron schedule (five
//! fields, or `@every 30m`, `@daily`, ... — the CronJob parser, in UTC) the
//! server saves `scheduled-<time>`, then deletes scheduled snapshots beyond
//! the newest `retention` (on-demand ones are never pruned). A failed
//! snapshot is logged and the next time is tried.

use std::sync::Arc;
use std::time::Duration;

use schemas::cron::Schedule;

use super::Snapshots;

/// When and how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The schedule.
    pub schedule: Schedule,
    /// The schedule as written (for logs).
    pub spec: String,
    /// Scheduled snapshots kept (0: all).
    pub retention: usize,
}

/// Parses a schedule; `""`, `off` and `none` mean no scheduled snapshots.
pub fn parse(spec: &str) -> Result<Option<Schedule>, String> {
    let spec = spec.trim();
    if spec.is_empty() || spec.eq_ignore_ascii_case("off") || spec.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    schemas::cron::parse(spec)
        .map(Some)
        .map_err(|e| format!("snapshot schedule {spec:?}: {e}"))
}

/// How long until the schedule's next time after `now` (`None`: never).
pub fn wait_after(schedule: &Schedule, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let next = schedule.next_after(now, None)?;
    (next - now).to_std().ok()
}

/// Runs the schedule until the task is aborted.
pub fn start(snapshots: Arc<Snapshots>, policy: Policy) -> tokio::task::JoinHandle<()> {
    tracing::info!(
        schedule = %policy.spec,
        retention = policy.retention,
        dir = %snapshots.dir().display(),
        "scheduled snapshots on"
    );
    tokio::spawn(async move {
        loop {
            let Some(wait) = wait_after(&policy.schedule, chrono::Utc::now()) else {
                tracing::warn!(schedule = %policy.spec, "the snapshot schedule has no next time; scheduled snapshots stop");
                return;
            };
            // the schedule's own clock, not a synchronisation
            tokio::time::sleep(wait).await;
            match snapshots.save(None, true).await {
                Ok(info) => tracing::debug!(snapshot = %info.name, "scheduled snapshot saved"),
                Err(e) => {
                    tracing::error!(error = %e, "scheduled snapshot failed");
                    continue;
                }
            }
            match snapshots
                .prune(policy.retention, super::Selection::Scheduled)
                .await
            {
                Ok(pruned) if !pruned.is_empty() => {
                    tracing::info!(
                        ?pruned,
                        retention = policy.retention,
                        "pruned old snapshots"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "pruning snapshots failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        schemas::time::parse(s).expect("time")
    }

    #[test]
    fn schedules_are_cron_or_every_and_can_be_turned_off() {
        assert_eq!(parse("").expect("off"), None);
        assert_eq!(parse("off").expect("off"), None);
        assert_eq!(parse("@every 2s").expect("every"), Some(Schedule::Every(2)));
        // as robfig/cron: at least a second
        assert_eq!(parse("@every 0s").expect("every"), Some(Schedule::Every(1)));
        assert!(parse("@every soon").is_err());
        let err = parse("61 * * * *").expect_err("bad minute");
        assert!(err.contains("61 * * * *"), "{err}");
        // k3s's default: twice a day
        let twice = parse("0 */12 * * *").expect("cron").expect("on");
        assert_eq!(
            wait_after(&twice, at("2026-12-07T23:59:00Z")),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            wait_after(&twice, at("2026-12-08T00:00:00Z")),
            Some(Duration::from_secs(12 * 3600))
        );
        let every = parse("@every 2s").expect("every").expect("on");
        assert_eq!(
            wait_after(&every, at("2026-12-08T00:00:00Z")),
            Some(Duration::from_secs(2))
        );
    }
}
