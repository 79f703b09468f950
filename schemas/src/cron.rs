//! CronJob schedules as Kubernetes reads them (robfig/cron v3's
//! `ParseStandard`): five fields (minute, hour, day of month, month, day of
//! week) with lists, ranges, steps, `*`/`?`, month and weekday names, or a
//! descriptor (`@hourly`, `@every 5m`, ...). Hand-written because the
//! validation messages must be robfig's, word for word; the CronJob
//! controller computes next run times from the same parse.

use std::fmt;

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Bit sets of the allowed values of each field.
    Spec {
        /// Minutes 0–59.
        minute: u64,
        /// Hours 0–23.
        hour: u64,
        /// Days of month 1–31.
        dom: u64,
        /// Months 1–12.
        month: u64,
        /// Days of week 0–6 (Sunday = 0).
        dow: u64,
        /// Whether day of month or day of week was `*` (then both must match).
        star_dom_or_dow: bool,
    },
    /// `@every <duration>`: a fixed interval, in seconds.
    Every(u64),
}

/// Why a schedule does not parse; the text is robfig/cron's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError(pub String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Whether the schedule names a time zone (`TZ=` / `CRON_TZ=`), which
/// Kubernetes refuses in favour of `spec.timeZone`.
pub fn mentions_time_zone(spec: &str) -> bool {
    spec.contains("TZ")
}

/// Parses a schedule as `cron.ParseStandard` does.
pub fn parse(spec: &str) -> Result<Schedule, CronError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(CronError("empty spec string".into()));
    }
    let mut spec = spec.to_string();
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let (tz, rest) = spec.split_once(' ').unwrap_or((spec.as_str(), ""));
        let name = tz.split_once('=').map_or("", |(_, n)| n);
        if chrono_tz_valid(name).is_none() {
            return Err(CronError(format!(
                "provided bad location {name}: unknown time zone {name}"
            )));
        }
        spec = rest.trim().to_string();
    }
    if spec.starts_with('@') {
        return descriptor(&spec);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(CronError(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        )));
    }
    let minute = field(fields[0], &MINUTES)?;
    let hour = field(fields[1], &HOURS)?;
    let dom = field(fields[2], &DOM)?;
    let month = field(fields[3], &MONTHS)?;
    let dow = field(fields[4], &DOW)?;
    let star = |f: &str| f.starts_with('*') || f.starts_with('?');
    Ok(Schedule::Spec {
        minute,
        hour,
        dom,
        month,
        dow,
        star_dom_or_dow: star(fields[2]) || star(fields[4]),
    })
}

fn chrono_tz_valid(name: &str) -> Option<()> {
    name.parse::<chrono_tz::Tz>().ok().map(|_| ())
}

fn bits(min: u32, max: u32, step: u32) -> u64 {
    let mut b = 0u64;
    let mut i = min;
    while i <= max {
        b |= 1 << i;
        i += step;
    }
    b
}

fn descriptor(spec: &str) -> Result<Schedule, CronError> {
    let all = |b: &Bounds| bits(b.min, b.max, 1);
    let spec_of = |minute, hour, dom, month, dow| Schedule::Spec {
        minute,
        hour,
        dom,
        month,
        dow,
        star_dom_or_dow: true,
    };
    Ok(match spec {
        "@yearly" | "@annually" => spec_of(1, 1, 1 << 1, 1 << 1, all(&DOW)),
        "@monthly" => spec_of(1, 1, 1 << 1, all(&MONTHS), all(&DOW)),
        "@weekly" => spec_of(1, 1, all(&DOM), all(&MONTHS), 1),
        "@daily" | "@midnight" => spec_of(1, 1, all(&DOM), all(&MONTHS), all(&DOW)),
        "@hourly" => spec_of(1, all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        _ => match spec.strip_prefix("@every ") {
            Some(d) => {
                let secs = crate::duration::parse_duration(d.trim()).map_err(|_| {
                    CronError(format!(
                        "failed to parse duration {spec}: time: invalid duration \"{}\"",
                        d.trim()
                    ))
                })?;
                Schedule::Every(secs.as_secs().max(1))
            }
            None => return Err(CronError(format!("unrecognized descriptor: {spec}"))),
        },
    })
}

fn field(text: &str, b: &Bounds) -> Result<u64, CronError> {
    let mut out = 0u64;
    for part in text.split(',') {
        out |= range(part, b)?;
    }
    Ok(out)
}

fn value(text: &str, b: &Bounds) -> Result<u32, CronError> {
    let lower = text.to_ascii_lowercase();
    if let Some((_, v)) = b.names.iter().find(|(n, _)| *n == lower) {
        return Ok(*v);
    }
    text.parse::<u32>().map_err(|_| {
        CronError(format!(
            "failed to parse int from {text}: strconv.Atoi: parsing {text:?}: invalid syntax"
        ))
    })
}

fn range(text: &str, b: &Bounds) -> Result<u64, CronError> {
    let (range_part, step_part) = match text.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (text, None),
    };
    let (start, end, star) = if range_part == "*" || range_part == "?" {
        (b.min, b.max, true)
    } else {
        match range_part.split_once('-') {
            Some((lo, hi)) => (value(lo, b)?, value(hi, b)?, false),
            None => {
                let v = value(range_part, b)?;
                (v, v, false)
            }
        }
    };
    let step = match step_part {
        None => 1,
        Some(s) => {
            if s.contains('/') {
                return Err(CronError(format!("too many slashes: {text}")));
            }
            let step = s.parse::<u32>().map_err(|_| {
                CronError(format!(
                    "failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax"
                ))
            })?;
            if step == 0 {
                return Err(CronError(format!(
                    "step of range should be a positive number: {text}"
                )));
            }
            step
        }
    };
    // a single value with a step means "from it to the max", as robfig reads `5/10`
    let end = if step_part.is_some() && !star && !range_part.contains('-') {
        b.max
    } else {
        end
    };
    if start < b.min {
        return Err(CronError(format!(
            "beginning of range ({start}) below minimum ({}): {text}",
            b.min
        )));
    }
    if end > b.max {
        return Err(CronError(format!(
            "end of range ({end}) above maximum ({}): {text}",
            b.max
        )));
    }
    if start > end {
        return Err(CronError(format!(
            "beginning of range ({start}) beyond end of range ({end}): {text}"
        )));
    }
    Ok(bits(start, end, step))
}

impl Schedule {
    /// The first time strictly after `after` (whole minutes), in the time
    /// zone whose offset `offset` gives, or `None` within five years.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
        tz: Option<chrono_tz::Tz>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        use chrono::{Datelike, Duration, TimeZone, Timelike};
        match self {
            Schedule::Every(secs) => Some(after + Duration::seconds(*secs as i64)),
            Schedule::Spec {
                minute,
                hour,
                dom,
                month,
                dow,
                star_dom_or_dow,
            } => {
                let tz = tz.unwrap_or(chrono_tz::UTC);
                let mut t = after.with_timezone(&tz) + Duration::minutes(1);
                t = t.with_second(0)?.with_nanosecond(0)?;
                let limit = t + Duration::days(5 * 366);
                while t < limit {
                    let day_ok = {
                        let d = dom & (1 << t.day()) != 0;
                        let w = dow & (1 << t.weekday().num_days_from_sunday()) != 0;
                        if *star_dom_or_dow { d && w } else { d || w }
                    };
                    if month & (1 << t.month()) == 0 || !day_ok {
                        let next_day = t.date_naive().succ_opt()?.and_hms_opt(0, 0, 0)?;
                        t = tz.from_local_datetime(&next_day).earliest()?;
                        continue;
                    }
                    if hour & (1 << t.hour()) == 0 {
                        t = (t + Duration::hours(1)).with_minute(0)?;
                        continue;
                    }
                    if minute & (1 << t.minute()) == 0 {
                        t += Duration::minutes(1);
                        continue;
                    }
                    return Some(t.with_timezone(&chrono::Utc));
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_what_kubernetes_accepts() {
        for ok in [
            "*/5 * * * *",
            "0 3 * * 1-5",
            "30 2 1,15 * *",
            "0 0 * jan,jul sun",
            "@hourly",
            "@every 90s",
            "0 */6 ? * *",
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok));
        }
    }

    #[test]
    fn errors_are_robfigs() {
        assert_eq!(
            parse("foo").expect_err("one field").0,
            "expected exactly 5 fields, found 1: [foo]"
        );
        assert_eq!(
            parse("0-60 * * * *").expect_err("range").0,
            "end of range (60) above maximum (59): 0-60"
        );
        assert!(parse("@fortnightly").is_err());
    }

    #[test]
    fn next_runs_follow_the_fields() {
        let s = parse("30 2 * * *").expect("parse");
        let from = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 3, 0, 0).unwrap();
        assert_eq!(
            s.next_after(from, None),
            Some(chrono::Utc.with_ymd_and_hms(2026, 1, 2, 2, 30, 0).unwrap())
        );
        let s = parse("*/15 * * * *").expect("parse");
        assert_eq!(
            s.next_after(from, None),
            Some(chrono::Utc.with_ymd_and_hms(2026, 1, 1, 3, 15, 0).unwrap())
        );
    }
}
