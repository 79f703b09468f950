//! Timestamps as Kubernetes writes them: k8s-openapi's `Time` (RFC 3339,
//! whole seconds) and `MicroTime` (microseconds), made from and read as
//! `chrono` times, which the rest of korral computes with.

use chrono::{DateTime, SubsecRound, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};

/// The current time, in whole seconds.
pub fn now() -> Time {
    from_utc(Utc::now())
}

/// The current time as Kubernetes writes it in metadata (`2024-01-02T15:04:05Z`).
pub fn now_text() -> String {
    now().text()
}

/// The current time with microseconds (`2024-01-02T15:04:05.123456Z`).
pub fn micro_now_text() -> String {
    micro_now().text()
}

/// The current time, in microseconds.
pub fn micro_now() -> MicroTime {
    micro_from_utc(Utc::now())
}

fn to_jiff(t: DateTime<Utc>) -> jiff::Timestamp {
    jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn to_chrono(t: jiff::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

/// A `Time` from a chrono time (sub-seconds dropped).
pub fn from_utc(t: DateTime<Utc>) -> Time {
    Time(to_jiff(t.trunc_subsecs(0)))
}

/// A `MicroTime` from a chrono time (below microseconds dropped).
pub fn micro_from_utc(t: DateTime<Utc>) -> MicroTime {
    MicroTime(to_jiff(t.trunc_subsecs(6)))
}

/// Reading k8s-openapi timestamps as chrono times.
pub trait TimeExt {
    /// The timestamp in UTC.
    fn utc(&self) -> DateTime<Utc>;
    /// The RFC 3339 text Kubernetes writes for it.
    fn text(&self) -> String;
}

impl TimeExt for Time {
    fn utc(&self) -> DateTime<Utc> {
        to_chrono(self.0)
    }

    fn text(&self) -> String {
        self.utc().format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}

impl TimeExt for MicroTime {
    fn utc(&self) -> DateTime<Utc> {
        to_chrono(self.0)
    }

    fn text(&self) -> String {
        self.utc().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

/// Parses an RFC 3339 timestamp as Kubernetes accepts it.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_writes_whole_seconds_in_utc() {
        let t: Time = serde_json::from_str("\"2024-01-02T17:04:05.789+02:00\"").expect("parse");
        assert_eq!(
            serde_json::to_string(&t).expect("ser"),
            "\"2024-01-02T15:04:05Z\""
        );
        assert_eq!(t.text(), "2024-01-02T15:04:05Z");
    }

    #[test]
    fn micro_time_keeps_microseconds() {
        let t = micro_from_utc(parse("2024-01-02T15:04:05.123456789Z").expect("parse"));
        assert_eq!(t.text(), "2024-01-02T15:04:05.123456Z");
        assert_eq!(t.utc().timestamp_subsec_micros(), 123_456);
    }

    #[test]
    fn round_trips_through_chrono() {
        let before = Utc::now().timestamp();
        let t = now().utc().timestamp();
        assert!((before..=before + 1).contains(&t), "{t} vs {before}");
    }
}
