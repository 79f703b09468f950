//! Timestamps as Kubernetes writes them: `Time` (RFC 3339, whole seconds, UTC)
//! and `MicroTime` (microseconds), used by metadata, conditions, leases and events.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! timestamp {
    ($name:ident, $doc:literal, $format:expr, $round:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub DateTime<Utc>);

        impl $name {
            /// The current time at this type's precision.
            pub fn now() -> Self {
                Self::from(Utc::now())
            }
        }

        impl From<DateTime<Utc>> for $name {
            fn from(t: DateTime<Utc>) -> Self {
                let round: fn(DateTime<Utc>) -> DateTime<Utc> = $round;
                $name(round(t))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0.to_rfc3339_opts($format, true))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                DateTime::parse_from_rfc3339(&s)
                    .map(|t| $name::from(t.with_timezone(&Utc)))
                    .map_err(|e| {
                        serde::de::Error::custom(format!(
                            "invalid timestamp {s:?}: {e}; expected RFC 3339, e.g. 2024-01-02T15:04:05Z"
                        ))
                    })
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "description": $doc,
                    "type": "string",
                    "format": "date-time"
                })
            }
        }
    };
}

timestamp!(
    Time,
    "An RFC 3339 timestamp with whole seconds, e.g. 2024-01-02T15:04:05Z.",
    SecondsFormat::Secs,
    |t| t.trunc_subsecs(0)
);
timestamp!(
    MicroTime,
    "An RFC 3339 timestamp with microseconds, e.g. 2024-01-02T15:04:05.000000Z.",
    SecondsFormat::Micros,
    |t| t.trunc_subsecs(6)
);

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
    }

    #[test]
    fn micro_time_keeps_microseconds() {
        let t: MicroTime =
            serde_json::from_str("\"2024-01-02T15:04:05.123456789Z\"").expect("parse");
        assert_eq!(
            serde_json::to_string(&t).expect("ser"),
            "\"2024-01-02T15:04:05.123456Z\""
        );
    }

    #[test]
    fn rejects_non_rfc3339() {
        let e = serde_json::from_str::<Time>("\"yesterday\"").expect_err("must fail");
        assert!(e.to_string().contains("RFC 3339"), "{e}");
    }
}
