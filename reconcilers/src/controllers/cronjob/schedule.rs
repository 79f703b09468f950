//! When a CronJob runs, computed as kube's cronjob controller computes it
//! with robfig/cron v3: the schedule is parsed by `schemas::cron` (the same
//! parse the API server validates with, robfig's grammar and messages), and
//! `next` is robfig's `SpecSchedule.Next` — field by field in the schedule's
//! time zone, hours and minutes added as absolute durations (so a time that
//! a daylight-saving jump skips is skipped, and one it repeats runs twice, as
//! on a cluster) — or `ConstantDelaySchedule.Next` for `@every`. On top of
//! it, `most_recent` is `mostRecentScheduleTime` (missed runs, the
//! `startingDeadlineSeconds` window, the "more than 100 missed" guard) and
//! `requeue_after` is `nextScheduleTimeDuration`.

use std::time::Duration;

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// A parsed schedule in its time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct CronSchedule {
    kind: Kind,
    tz: Tz,
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Spec {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
        /// Day of month or day of week was `*`/`?` without a step above 1:
        /// then both must match, otherwise either.
        star: bool,
    },
    Every(i64),
}

/// Whether a day field sets robfig's star bit: a `*` or `?` part whose step is at most 1.
fn is_star(field: &str) -> bool {
    field.split(',').any(|part| {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let low = range.split('-').next().unwrap_or("");
        (low == "*" || low == "?") && step.is_none_or(|s| s.parse::<u32>().is_ok_and(|v| v <= 1))
    })
}

/// Parses `schedule` as `cron.ParseStandard` does; the zone is the
/// schedule's own `TZ=`/`CRON_TZ=` prefix, else `time_zone`, else UTC.
pub fn parse(schedule: &str, time_zone: Option<Tz>) -> Result<CronSchedule, String> {
    let parsed = schemas::cron::parse(schedule).map_err(|e| e.0)?;
    let mut text = schedule.trim();
    let mut tz = time_zone.unwrap_or(chrono_tz::UTC);
    if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
        let (prefix, rest) = text.split_once(' ').unwrap_or((text, ""));
        let name = prefix.split_once('=').map_or("", |(_, n)| n);
        tz = name
            .parse::<Tz>()
            .map_err(|_| format!("provided bad location {name}: unknown time zone {name}"))?;
        text = rest.trim();
    }
    let kind = match parsed {
        schemas::cron::Schedule::Every(secs) => {
            Kind::Every(i64::try_from(secs).unwrap_or(i64::MAX))
        }
        schemas::cron::Schedule::Spec {
            minute,
            hour,
            dom,
            month,
            dow,
            ..
        } => {
            let fields: Vec<&str> = text.split_whitespace().collect();
            let star = text.starts_with('@')
                || fields.get(2).is_some_and(|f| is_star(f))
                || fields.get(4).is_some_and(|f| is_star(f));
            Kind::Spec {
                minute,
                hour,
                dom,
                month,
                dow,
                star,
            }
        }
    };
    Ok(CronSchedule { kind, tz })
}

/// A local wall time in `tz`, resolved as Go's `time.Date` does in practice:
/// the earlier of two, and for one a jump skips, the offset before the jump.
fn local(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Tz>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t),
        LocalResult::Ambiguous(a, _) => Some(a),
        LocalResult::None => {
            let before = tz.offset_from_utc_datetime(&(naive - chrono::Duration::days(1)));
            use chrono::Offset;
            let utc = naive - chrono::Duration::seconds(i64::from(before.fix().local_minus_utc()));
            Some(Utc.from_utc_datetime(&utc).with_timezone(&tz))
        }
    }
}

fn midnight(d: NaiveDate) -> Option<NaiveDateTime> {
    d.and_hms_opt(0, 0, 0)
}

impl CronSchedule {
    /// The time zone the schedule is read in.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The first activation strictly after `after`, or `None` when there is
    /// none within five years (robfig's zero time).
    pub fn next(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(secs) => {
                let whole = after.with_nanosecond(0)?;
                Some(whole + chrono::Duration::seconds(*secs))
            }
            Kind::Spec {
                minute,
                hour,
                dom,
                month,
                dow,
                star,
            } => {
                let tz = self.tz;
                let day_matches = |t: &DateTime<Tz>| {
                    let d = dom & (1 << t.day()) != 0;
                    let w = dow & (1 << t.weekday().num_days_from_sunday()) != 0;
                    if *star { d && w } else { d || w }
                };
                // the upcoming whole second
                let mut t =
                    after.with_timezone(&tz).with_nanosecond(0)? + chrono::Duration::seconds(1);
                let mut added = false;
                let year_limit = t.year() + 5;
                'wrap: loop {
                    if t.year() > year_limit {
                        return None;
                    }
                    while month & (1 << t.month()) == 0 {
                        if !added {
                            added = true;
                            t = local(
                                tz,
                                midnight(NaiveDate::from_ymd_opt(t.year(), t.month(), 1)?)?,
                            )?;
                        }
                        // AddDate(0, 1, 0): the same wall time a month on
                        let (y, m) = if t.month() == 12 {
                            (t.year() + 1, 1)
                        } else {
                            (t.year(), t.month() + 1)
                        };
                        let day = NaiveDate::from_ymd_opt(y, m, t.day())
                            .or_else(|| NaiveDate::from_ymd_opt(y, m, 1))?;
                        t = local(tz, day.and_time(t.time()))?;
                        if t.month() == 1 {
                            continue 'wrap;
                        }
                    }
                    while !day_matches(&t) {
                        if !added {
                            added = true;
                            t = local(tz, midnight(t.date_naive())?)?;
                        }
                        t = local(tz, t.date_naive().succ_opt()?.and_time(t.time()))?;
                        // midnight may not exist (a DST jump): back to it
                        let h = i64::from(t.hour());
                        if h != 0 {
                            t = if h > 12 {
                                t + chrono::Duration::hours(24 - h)
                            } else {
                                t - chrono::Duration::hours(h)
                            };
                        }
                        if t.day() == 1 {
                            continue 'wrap;
                        }
                    }
                    while hour & (1 << t.hour()) == 0 {
                        if !added {
                            added = true;
                            t = local(tz, t.date_naive().and_hms_opt(t.hour(), 0, 0)?)?;
                        }
                        t += chrono::Duration::hours(1);
                        if t.hour() == 0 {
                            continue 'wrap;
                        }
                    }
                    while minute & (1 << t.minute()) == 0 {
                        if !added {
                            added = true;
                            t = truncate(t, 60)?;
                        }
                        t += chrono::Duration::minutes(1);
                        if t.minute() == 0 {
                            continue 'wrap;
                        }
                    }
                    // standard schedules fire at second 0
                    while t.second() != 0 {
                        if !added {
                            added = true;
                            t = truncate(t, 1)?;
                        }
                        t += chrono::Duration::seconds(1);
                        if t.second() == 0 {
                            continue 'wrap;
                        }
                    }
                    return Some(t.with_timezone(&Utc));
                }
            }
        }
    }
}

/// Rounds down to a multiple of `secs` since the epoch (Go's `Truncate`).
fn truncate(t: DateTime<Tz>, secs: i64) -> Option<DateTime<Tz>> {
    let ts = t.timestamp();
    let down = ts - ts.rem_euclid(secs);
    Some(DateTime::<Utc>::from_timestamp(down, 0)?.with_timezone(&t.timezone()))
}

/// How many start times were missed (kube's `missedSchedulesType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    /// None.
    None,
    /// Some, at most 100.
    Few,
    /// More than 100: the `TooManyMissedTimes` warning.
    Many,
}

/// What `most_recent` found.
#[derive(Clone, Debug, PartialEq)]
pub struct Recent {
    /// The last schedule time, else the creation time (moved up to the
    /// starting deadline when that is asked for).
    pub earliest: DateTime<Utc>,
    /// The latest start time at or before now, if any since `earliest`.
    pub most_recent: Option<DateTime<Utc>>,
    /// How many were missed.
    pub missed: Missed,
}

/// The invalid-schedule error kube reports for schedules that never fire
/// twice (e.g. `59 23 31 2 *`).
pub const NEVER_TWICE: &str = "time difference between two schedules is less than 1 second";

/// kube's `mostRecentScheduleTime`.
pub fn most_recent(
    sched: &CronSchedule,
    created: DateTime<Utc>,
    last_schedule: Option<DateTime<Utc>>,
    starting_deadline_seconds: Option<i64>,
    now: DateTime<Utc>,
    include_deadline: bool,
) -> Result<Recent, String> {
    let mut earliest = last_schedule.unwrap_or(created);
    if include_deadline && let Some(d) = starting_deadline_seconds {
        let deadline = now - chrono::Duration::seconds(d);
        if deadline > earliest {
            earliest = deadline;
        }
    }
    let none = |most_recent, missed| Recent {
        earliest,
        most_recent,
        missed,
    };
    let Some(t1) = sched.next(earliest) else {
        return Err(NEVER_TWICE.into());
    };
    if now < t1 {
        return Ok(none(None, Missed::None));
    }
    let t2 = sched.next(t1);
    if let Some(t2) = t2
        && now < t2
    {
        return Ok(none(Some(t1), Missed::None));
    }
    let Some(t2) = t2 else {
        return Err(NEVER_TWICE.into());
    };
    // rounded to the second, as Go's Duration.Round(time.Second)
    let between_ms = (t2 - t1).num_milliseconds();
    let between = (between_ms + 500).div_euclid(1000);
    if between < 1 {
        return Err(NEVER_TWICE.into());
    }
    let elapsed = (now - t1).num_seconds();
    let missed_count = elapsed / between + 1;
    let potential = t1 + chrono::Duration::seconds((missed_count - 2) * between);
    let mut most = None;
    let mut t = sched.next(potential);
    while let Some(x) = t.filter(|x| *x <= now) {
        most = Some(x);
        t = sched.next(x);
    }
    let missed = if missed_count > 100 {
        Missed::Many
    } else if missed_count > 0 {
        Missed::Few
    } else {
        Missed::None
    };
    Ok(none(most, missed))
}

/// How long until the next start (plus kube's 100 ms for clock skew), from
/// `nextScheduleTimeDuration`; `None` when the schedule has no next time.
pub fn requeue_after(
    sched: &CronSchedule,
    created: DateTime<Utc>,
    last_schedule: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let base = match most_recent(sched, created, last_schedule, None, now, false) {
        Err(_) => now,
        Ok(r) => match r.most_recent {
            Some(t) => t,
            None if r.missed == Missed::None => r.earliest,
            None => now,
        },
    };
    let next = sched.next(base)? + chrono::Duration::milliseconds(100);
    Some((next - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn next(s: &str, tz: Option<Tz>, from: &str) -> Option<String> {
        parse(s, tz)
            .expect("parse")
            .next(at(from))
            .map(|t| t.to_rfc3339())
    }

    #[test]
    fn fields_and_macros() {
        assert_eq!(
            next("*/1 * * * *", None, "2026-03-01T10:00:30Z").as_deref(),
            Some("2026-03-01T10:01:00+00:00")
        );
        assert_eq!(
            next("*/1 * * * *", None, "2026-03-01T10:00:00Z").as_deref(),
            Some("2026-03-01T10:01:00+00:00")
        );
        assert_eq!(
            next("30 2 * * *", None, "2026-03-01T03:00:00Z").as_deref(),
            Some("2026-03-02T02:30:00+00:00")
        );
        assert_eq!(
            next("@hourly", None, "2026-03-01T10:15:00Z").as_deref(),
            Some("2026-03-01T11:00:00+00:00")
        );
        assert_eq!(
            next("@daily", None, "2026-03-01T10:15:00Z").as_deref(),
            Some("2026-03-02T00:00:00+00:00")
        );
        // 2026-03-01 is a Sunday
        assert_eq!(
            next("@weekly", None, "2026-03-01T10:15:00Z").as_deref(),
            Some("2026-03-08T00:00:00+00:00")
        );
        assert_eq!(
            next("@monthly", None, "2026-03-01T10:15:00Z").as_deref(),
            Some("2026-04-01T00:00:00+00:00")
        );
        assert_eq!(
            next("@yearly", None, "2026-03-01T10:15:00Z").as_deref(),
            Some("2027-01-01T00:00:00+00:00")
        );
        assert_eq!(
            next("@every 90s", None, "2026-03-01T10:15:00.700Z").as_deref(),
            Some("2026-03-01T10:16:30+00:00")
        );
        assert_eq!(
            next("0 0 29 2 *", None, "2026-03-01T00:00:00Z").as_deref(),
            Some("2028-02-29T00:00:00+00:00")
        );
        assert_eq!(next("59 23 31 2 *", None, "2026-03-01T00:00:00Z"), None);
    }

    #[test]
    fn day_of_month_or_week_as_robfig() {
        // both restricted: either matches (Monday 2026-03-02, or the 15th)
        assert_eq!(
            next("0 0 15 * 1", None, "2026-03-01T00:00:00Z").as_deref(),
            Some("2026-03-02T00:00:00+00:00")
        );
        // a star: both must match (the other alone)
        assert_eq!(
            next("0 0 * * 1", None, "2026-03-03T00:00:00Z").as_deref(),
            Some("2026-03-09T00:00:00+00:00")
        );
        // */2 is no star for robfig: odd days OR Mondays
        assert_eq!(
            next("0 0 */2 * 1", None, "2026-03-03T12:00:00Z").as_deref(),
            Some("2026-03-05T00:00:00+00:00")
        );
        assert!(is_star("*") && is_star("?") && is_star("*/1") && is_star("1,*"));
        assert!(!is_star("*/2") && !is_star("1-5"));
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        let ny: Tz = "America/New_York".parse().expect("tz");
        // 09:00 in New York is 14:00 UTC in winter
        assert_eq!(
            next("0 9 * * *", Some(ny), "2026-01-10T12:00:00Z").as_deref(),
            Some("2026-01-10T14:00:00+00:00")
        );
        // 2026-03-08: 02:30 does not exist in New York; robfig skips that day
        assert_eq!(
            next("30 2 * * *", Some(ny), "2026-03-08T05:00:00Z").as_deref(),
            Some("2026-03-09T06:30:00+00:00")
        );
        // a TZ= prefix wins
        assert_eq!(
            next("TZ=Asia/Tokyo 0 9 * * *", None, "2026-01-10T12:00:00Z").as_deref(),
            Some("2026-01-11T00:00:00+00:00")
        );
        assert!(parse("TZ=Mars/Olympus 0 9 * * *", None).is_err());
    }

    #[test]
    fn missed_runs_as_kube_counts_them() {
        let s = parse("*/1 * * * *", None).expect("parse");
        let created = at("2026-03-01T10:00:30Z");
        // before the first run
        let r = most_recent(&s, created, None, None, at("2026-03-01T10:00:50Z"), true).expect("ok");
        assert_eq!((r.most_recent, r.missed), (None, Missed::None));
        // the first run is due
        let r = most_recent(&s, created, None, None, at("2026-03-01T10:01:10Z"), true).expect("ok");
        assert_eq!(
            (r.most_recent, r.missed),
            (Some(at("2026-03-01T10:01:00Z")), Missed::None)
        );
        // down for a while: only the latest missed one runs
        let r = most_recent(&s, created, None, None, at("2026-03-01T10:10:10Z"), true).expect("ok");
        assert_eq!(
            (r.most_recent, r.missed),
            (Some(at("2026-03-01T10:10:00Z")), Missed::Few)
        );
        // more than 100
        let r = most_recent(&s, created, None, None, at("2026-03-01T12:00:10Z"), true).expect("ok");
        assert_eq!(
            (r.most_recent, r.missed),
            (Some(at("2026-03-01T12:00:00Z")), Missed::Many)
        );
        // a starting deadline bounds how far back to look
        let r = most_recent(
            &s,
            created,
            None,
            Some(30),
            at("2026-03-01T12:00:10Z"),
            true,
        )
        .expect("ok");
        assert_eq!(
            (r.most_recent, r.missed),
            (Some(at("2026-03-01T12:00:00Z")), Missed::None)
        );
        let r =
            most_recent(&s, created, None, Some(5), at("2026-03-01T12:00:10Z"), true).expect("ok");
        assert_eq!(r.most_recent, None);
        // the last schedule time counts from itself
        let r = most_recent(
            &s,
            created,
            Some(at("2026-03-01T10:01:00Z")),
            None,
            at("2026-03-01T10:01:40Z"),
            true,
        )
        .expect("ok");
        assert_eq!(r.most_recent, None);
        let never = parse("59 23 31 2 *", None).expect("parse");
        assert_eq!(
            most_recent(
                &never,
                created,
                None,
                None,
                at("2026-03-01T10:01:40Z"),
                true
            ),
            Err(NEVER_TWICE.to_string())
        );
    }

    #[test]
    fn requeue_aims_past_the_next_run() {
        let s = parse("*/1 * * * *", None).expect("parse");
        let created = at("2026-03-01T10:00:30Z");
        let d = requeue_after(&s, created, None, at("2026-03-01T10:00:40Z")).expect("next");
        assert_eq!(d, Duration::from_millis(20_100));
        let d = requeue_after(
            &s,
            created,
            Some(at("2026-03-01T10:01:00Z")),
            at("2026-03-01T10:01:00.500Z"),
        )
        .expect("next");
        assert_eq!(d, Duration::from_millis(59_600));
    }
}
