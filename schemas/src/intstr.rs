//! `IntOrString`: a field that holds either an integer or a string
//! (`targetPort: 8080` or `targetPort: http`, `maxSurge: 25%`).

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// An integer or a string, serialised as whichever it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number, e.g. a port or an absolute count.
    Int(i32),
    /// A string, e.g. a port name or a percentage like `25%`.
    String(String),
}

impl IntOrString {
    /// Resolves an absolute count or a percentage of `total`, rounding up or down
    /// as the caller asks (Kubernetes rounds maxSurge up and maxUnavailable down).
    pub fn scaled_value(&self, total: i32, round_up: bool) -> Result<i32, String> {
        match self {
            IntOrString::Int(i) => Ok(*i),
            IntOrString::String(s) => {
                let pct = s
                    .strip_suffix('%')
                    .and_then(|p| p.parse::<i64>().ok())
                    .ok_or_else(|| {
                        format!(
                            "invalid value {s:?}: must be an integer or a percentage like \"25%\""
                        )
                    })?;
                let num = pct * i64::from(total);
                let v = if round_up {
                    (num + 99).div_euclid(100)
                } else {
                    num.div_euclid(100)
                };
                i32::try_from(v).map_err(|_| format!("value {s:?} of {total} is out of range"))
            }
        }
    }
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

impl JsonSchema for IntOrString {
    fn schema_name() -> Cow<'static, str> {
        "IntOrString".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An integer or a string.",
            "anyOf": [
                {"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX},
                {"type": "string"}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_forms() {
        let i: IntOrString = serde_json::from_str("8080").expect("int");
        assert_eq!(i, IntOrString::Int(8080));
        let s: IntOrString = serde_json::from_str("\"http\"").expect("string");
        assert_eq!(s, IntOrString::String("http".into()));
        assert_eq!(serde_json::to_string(&i).expect("ser"), "8080");
        assert_eq!(serde_json::to_string(&s).expect("ser"), "\"http\"");
    }

    #[test]
    fn percentages_scale_with_rounding() {
        let p = IntOrString::String("25%".into());
        assert_eq!(p.scaled_value(10, true), Ok(3));
        assert_eq!(p.scaled_value(10, false), Ok(2));
        assert_eq!(IntOrString::Int(4).scaled_value(10, false), Ok(4));
        assert!(
            IntOrString::String("x%".into())
                .scaled_value(10, true)
                .is_err()
        );
    }
}
