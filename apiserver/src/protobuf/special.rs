//! The apimachinery messages with their own JSON form: Quantity, IntOrString,
//! Time, MicroTime, Duration, raw JSON (FieldsV1, RawExtension) and string lists.

use chrono::{DateTime, Datelike, SecondsFormat};
use serde_json::Value;

use super::ProtobufError;
use super::decode::{bytes_of, string_of, unknown_field};
use super::descriptors::{Message, Shape};
use super::wire::{self, Fields};

/// Decodes a message of a non-struct shape; `None` is Go's JSON `null`.
pub fn decode(
    shape: Shape,
    message: &'static Message,
    buf: &[u8],
) -> Result<Option<Value>, ProtobufError> {
    match shape {
        Shape::Struct => Err(ProtobufError::malformed(
            "a struct message has no special form",
        )),
        Shape::Quantity => {
            let mut s = None;
            read(message, buf, |n, v| {
                if n == 1 {
                    s = Some(string_of(v)?);
                }
                Ok(n == 1)
            })?;
            // An empty Quantity is zero, which Go writes as "0".
            Ok(Some(Value::String(
                s.filter(|s| !s.is_empty()).unwrap_or_else(|| "0".into()),
            )))
        }
        Shape::IntOrString => {
            let (mut kind, mut int_val, mut str_val) = (0u64, 0i32, String::new());
            read(message, buf, |n, v| {
                match (n, v) {
                    (1, wire::Value::Varint(k)) => kind = k,
                    // Truncation to 32 bits is how protobuf reads an int32 varint.
                    (2, wire::Value::Varint(i)) => int_val = i as i32,
                    (3, v) => str_val = string_of(v)?,
                    (1 | 2, v) => return Err(wrong_wire(n, v)),
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Ok(Some(if kind == 1 {
                Value::String(str_val)
            } else {
                Value::from(int_val)
            }))
        }
        Shape::Time | Shape::MicroTime => {
            let (mut seconds, mut nanos, mut any) = (0i64, 0i64, false);
            read(message, buf, |n, v| {
                match (n, v) {
                    (1, wire::Value::Varint(s)) => seconds = s as i64,
                    (2, wire::Value::Varint(ns)) => nanos = i64::from(ns as i32),
                    (1 | 2, v) => return Err(wrong_wire(n, v)),
                    _ => return Ok(false),
                }
                any = true;
                Ok(true)
            })?;
            if !any {
                // Go writes the zero time as an empty message; its JSON is null.
                return Ok(None);
            }
            timestamp(seconds, nanos, shape == Shape::MicroTime).map(Some)
        }
        Shape::Duration => {
            let mut ns = 0i64;
            read(message, buf, |n, v| match (n, v) {
                (1, wire::Value::Varint(d)) => {
                    ns = d as i64;
                    Ok(true)
                }
                (1, v) => Err(wrong_wire(n, v)),
                _ => Ok(false),
            })?;
            Ok(Some(Value::String(go_duration(ns))))
        }
        Shape::RawJson => {
            let mut raw: &[u8] = &[];
            read(message, buf, |n, v| {
                if n == 1 {
                    raw = bytes_of(v)?;
                }
                Ok(n == 1)
            })?;
            if raw.is_empty() {
                return Ok(None);
            }
            serde_json::from_slice(raw)
                .map(Some)
                .map_err(|e| ProtobufError::malformed(format!("raw JSON does not parse: {e}")))
        }
        Shape::StringList => {
            let mut items = Vec::new();
            read(message, buf, |n, v| {
                if n == 1 {
                    items.push(Value::String(string_of(v)?));
                }
                Ok(n == 1)
            })?;
            Ok(Some(Value::Array(items)))
        }
    }
}

/// Walks the fields; `visit` returns whether it knew the field.
fn read<'a>(
    message: &'static Message,
    buf: &'a [u8],
    mut visit: impl FnMut(u32, wire::Value<'a>) -> Result<bool, ProtobufError>,
) -> Result<(), ProtobufError> {
    for item in Fields::new(buf) {
        let (n, v) = item?;
        if !visit(n, v)? {
            unknown_field(message, n, &v)?;
        }
    }
    Ok(())
}

fn wrong_wire(number: u32, v: wire::Value<'_>) -> ProtobufError {
    ProtobufError::malformed(format!(
        "field {number} arrived with wire type {:?}",
        v.wire_type()
    ))
}

/// RFC 3339 in UTC as metav1.Time (whole seconds) or MicroTime (6 digits) write it.
fn timestamp(seconds: i64, nanos: i64, micro: bool) -> Result<Value, ProtobufError> {
    let t = u32::try_from(nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .and_then(|n| DateTime::from_timestamp(seconds, n))
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| {
            ProtobufError::malformed(format!(
                "timestamp {seconds}s {nanos}ns is outside years 0000 to 9999"
            ))
        })?;
    let format = if micro {
        SecondsFormat::Micros
    } else {
        SecondsFormat::Secs
    };
    Ok(Value::String(t.to_rfc3339_opts(format, true)))
}

/// Formats nanoseconds as Go's `time.Duration.String` does: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    const SECOND: u64 = 1_000_000_000;
    if u < SECOND {
        let (unit, scale, digits) = match u {
            0..1_000 => ("ns", 1, 0),
            1_000..1_000_000 => ("µs", 1_000, 3),
            _ => ("ms", 1_000_000, 6),
        };
        return format!("{sign}{}{unit}", fraction(u, scale, digits));
    }
    let hours = u / (3600 * SECOND);
    let minutes = u / (60 * SECOND) % 60;
    let secs = fraction(u % (60 * SECOND), SECOND, 9);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{secs}s"),
        (0, m) => format!("{sign}{m}m{secs}s"),
        (h, m) => format!("{sign}{h}h{m}m{secs}s"),
    }
}

/// `value / scale` with up to `digits` decimals, trailing zeros trimmed.
fn fraction(value: u64, scale: u64, digits: usize) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let frac = format!("{rest:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::super::descriptors::{intstr, meta_v1, resource};
    use super::*;

    #[test]
    fn durations_format_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1), "1ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(2_000_000), "2ms");
        assert_eq!(go_duration(1_000_000_000), "1s");
        assert_eq!(go_duration(90 * 1_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(-1_500_000_000), "-1.5s");
        assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn times_and_micro_times() {
        // 2024-01-02T15:04:05Z = 1704207845 s, nanos 123456789
        let buf = [
            0x08, 0xe5, 0xcb, 0xd0, 0xac, 0x06, 0x10, 0x95, 0x9a, 0xef, 0x3a,
        ];
        let t = decode(Shape::Time, &meta_v1::TIME, &buf).expect("time");
        assert_eq!(t, Some(Value::from("2024-01-02T15:04:05Z")));
        let m = decode(Shape::MicroTime, &meta_v1::MICRO_TIME, &buf).expect("micro");
        assert_eq!(m, Some(Value::from("2024-01-02T15:04:05.123456Z")));
        assert_eq!(
            decode(Shape::Time, &meta_v1::TIME, &[]).expect("zero"),
            None
        );
        // the Unix epoch is a real time, written with its fields
        let epoch = decode(Shape::Time, &meta_v1::TIME, &[0x08, 0x00, 0x10, 0x00]).expect("epoch");
        assert_eq!(epoch, Some(Value::from("1970-01-01T00:00:00Z")));
        let far = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(decode(Shape::Time, &meta_v1::TIME, &far).is_err());
    }

    #[test]
    fn int_or_string_and_quantity() {
        let int = decode(
            Shape::IntOrString,
            &intstr::INT_OR_STRING,
            &[0x08, 0x00, 0x10, 0x50, 0x1a, 0x00],
        );
        assert_eq!(int.expect("int"), Some(Value::from(80)));
        let s = decode(
            Shape::IntOrString,
            &intstr::INT_OR_STRING,
            &[0x08, 0x01, 0x10, 0x00, 0x1a, 0x03, b'2', b'5', b'%'],
        );
        assert_eq!(s.expect("str"), Some(Value::from("25%")));
        let q = decode(
            Shape::Quantity,
            &resource::QUANTITY,
            &[0x0a, 0x04, b'5', b'0', b'0', b'm'],
        );
        assert_eq!(q.expect("quantity"), Some(Value::from("500m")));
        assert_eq!(
            decode(Shape::Quantity, &resource::QUANTITY, &[]).expect("zero"),
            Some(Value::from("0"))
        );
    }

    #[test]
    fn raw_json_fields() {
        let raw = br#"{"f:metadata":{}}"#;
        let mut buf = vec![0x0a, raw.len() as u8];
        buf.extend_from_slice(raw);
        let v = decode(Shape::RawJson, &meta_v1::FIELDS_V1, &buf).expect("json");
        assert_eq!(v, Some(serde_json::json!({"f:metadata": {}})));
        assert!(decode(Shape::RawJson, &meta_v1::FIELDS_V1, &[0x0a, 0x01, b'{']).is_err());
    }
}
