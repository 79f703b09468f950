//! The reverse of [`super::decode`]: an object's JSON to the protobuf message
//! kube-apiserver would write for it, driven by the same message table, for
//! clients that accept `application/vnd.kubernetes.protobuf`.
//!
//! Fields go out in number order, maps sorted by key (as gogo protobuf
//! writes them), repeated scalars unpacked (Kubernetes' `.proto` files are
//! proto2). A JSON member the table does not describe is left out; a value
//! of the wrong JSON type is an error naming its path, so the caller can
//! answer in JSON instead of sending something a client would misread.

use base64::Engine as _;
use chrono::DateTime;
use serde_json::{Map, Value};

use super::ProtobufError;
use super::descriptors::{Field, Message, Rule, Shape, Ty};

/// Messages nest at most this deep.
const MAX_DEPTH: usize = 64;

/// Encodes `value` (a JSON object for struct messages) as `message`.
pub fn message(message: &'static Message, value: &Value) -> Result<Vec<u8>, ProtobufError> {
    let mut out = Vec::new();
    write_message(message, value, 0, &mut out)?;
    Ok(out)
}

fn write_message(
    message: &'static Message,
    value: &Value,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::malformed(format!(
            "objects nest deeper than {MAX_DEPTH} levels"
        )));
    }
    match message.shape {
        Shape::Struct => {
            let Value::Object(members) = value else {
                return Err(ProtobufError::malformed("expected an object"));
            };
            for field in message.fields {
                write_field(field, members, depth, out).map_err(|e| e.within(field.json))?;
            }
            Ok(())
        }
        shape => special(shape, value, out),
    }
}

/// Writes one field of a struct message from the object's members.
fn write_field(
    field: &'static Field,
    members: &Map<String, Value>,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), ProtobufError> {
    if field.rule == Rule::Inline {
        // the embedded struct's members are the parent's own
        let Ty::Message(inner) = field.ty else {
            return Ok(());
        };
        let mut buf = Vec::new();
        write_message(inner, &Value::Object(members.clone()), depth + 1, &mut buf)?;
        len_field(field.number, &buf, out);
        return Ok(());
    }
    let Some(value) = members.get(field.json).filter(|v| !v.is_null()) else {
        return Ok(());
    };
    if let Ty::Map(entry) = field.ty {
        let Value::Object(map) = value else {
            return Err(ProtobufError::malformed("expected an object"));
        };
        let value_ty = entry
            .field(2)
            .map(|f| f.ty)
            .ok_or_else(|| ProtobufError::malformed("a map entry type has no value field"))?;
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for key in keys {
            let mut buf = Vec::new();
            len_field(1, key.as_bytes(), &mut buf);
            single(2, value_ty, &map[key.as_str()], depth, &mut buf).map_err(|e| e.within(key))?;
            len_field(field.number, &buf, out);
        }
        return Ok(());
    }
    if field.rule == Rule::Repeated {
        let Value::Array(items) = value else {
            return Err(ProtobufError::malformed("expected an array"));
        };
        for (i, item) in items.iter().enumerate() {
            single(field.number, field.ty, item, depth, out)
                .map_err(|e| e.within(&format!("[{i}]")))?;
        }
        return Ok(());
    }
    single(field.number, field.ty, value, depth, out)
}

/// Writes one value as field `number`.
fn single(
    number: u32,
    ty: Ty,
    value: &Value,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), ProtobufError> {
    let wrong = |what: &str| ProtobufError::malformed(format!("expected {what}, found {value}"));
    match ty {
        Ty::String => {
            let s = value.as_str().ok_or_else(|| wrong("a string"))?;
            len_field(number, s.as_bytes(), out);
        }
        Ty::Bytes => {
            let s = value.as_str().ok_or_else(|| wrong("base64 text"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| wrong("base64 text"))?;
            len_field(number, &bytes, out);
        }
        Ty::Bool => {
            let b = value.as_bool().ok_or_else(|| wrong("a boolean"))?;
            varint_field(number, u64::from(b), out);
        }
        Ty::Int32 | Ty::Int64 => {
            let i = integer(value).ok_or_else(|| wrong("an integer"))?;
            // negative int32s are sign-extended to ten bytes, as protobuf does
            varint_field(number, i as u64, out);
        }
        Ty::UInt32 | Ty::UInt64 => {
            let u = integer(value)
                .and_then(|i| u64::try_from(i).ok())
                .or_else(|| value.as_u64())
                .ok_or_else(|| wrong("an unsigned integer"))?;
            varint_field(number, u, out);
        }
        Ty::Double => {
            let f = value.as_f64().ok_or_else(|| wrong("a number"))?;
            key(number, 1, out);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Ty::Float => {
            let f = value.as_f64().ok_or_else(|| wrong("a number"))? as f32;
            key(number, 5, out);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Ty::Message(m) => {
            let mut buf = Vec::new();
            write_message(m, value, depth + 1, &mut buf)?;
            len_field(number, &buf, out);
        }
        Ty::Map(_) => return Err(ProtobufError::malformed("a map entry outside a map field")),
    }
    Ok(())
}

/// An integer, also when YAML or a client wrote it as a whole float (`444.0`).
fn integer(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i64)
    })
}

/// The apimachinery messages with their own JSON form (see `special.rs`).
fn special(shape: Shape, value: &Value, out: &mut Vec<u8>) -> Result<(), ProtobufError> {
    let wrong = |what: &str| ProtobufError::malformed(format!("expected {what}, found {value}"));
    match shape {
        Shape::Struct => {}
        Shape::Quantity => {
            let s = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(wrong("a quantity")),
            };
            len_field(1, s.as_bytes(), out);
        }
        Shape::IntOrString => match value {
            Value::String(s) => {
                varint_field(1, 1, out);
                len_field(3, s.as_bytes(), out);
            }
            Value::Number(n) => {
                let i = n.as_i64().ok_or_else(|| wrong("an integer or a string"))?;
                varint_field(1, 0, out);
                varint_field(2, i as u64, out);
            }
            _ => return Err(wrong("an integer or a string")),
        },
        Shape::Time | Shape::MicroTime => {
            let s = value.as_str().ok_or_else(|| wrong("a time"))?;
            let t = DateTime::parse_from_rfc3339(s).map_err(|_| wrong("an RFC 3339 time"))?;
            varint_field(1, t.timestamp() as u64, out);
            let nanos = t.timestamp_subsec_nanos();
            if nanos != 0 {
                varint_field(2, u64::from(nanos), out);
            }
        }
        Shape::Duration => {
            let s = value.as_str().ok_or_else(|| wrong("a duration"))?;
            let ns = parse_go_duration(s).ok_or_else(|| wrong("a Go duration"))?;
            varint_field(1, ns as u64, out);
        }
        Shape::RawJson => {
            let raw = crate::status::encode(value);
            // the encoder's trailing newline is not part of the raw JSON
            let raw = raw.strip_suffix(b"\n").unwrap_or(&raw);
            len_field(1, raw, out);
        }
        Shape::StringList => {
            let Value::Array(items) = value else {
                return Err(wrong("an array of strings"));
            };
            for item in items {
                let s = item.as_str().ok_or_else(|| wrong("an array of strings"))?;
                len_field(1, s.as_bytes(), out);
            }
        }
    }
    Ok(())
}

/// Parses Go's `time.Duration` text (`1h2m3.5s`, `300ms`, `-1.5µs`) to nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * scale;
    }
    let ns = total.round() as i64;
    Some(if negative { -ns } else { ns })
}

fn key(number: u32, wire_type: u8, out: &mut Vec<u8>) {
    varint((u64::from(number) << 3) | u64::from(wire_type), out);
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_field(number: u32, v: u64, out: &mut Vec<u8>) {
    key(number, 0, out);
    varint(v, out);
}

/// A length-delimited field.
pub fn len_field(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    key(number, 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("0s"), Some(0));
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(3_723_500_000_000));
        assert_eq!(parse_go_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_go_duration("-1.5µs"), Some(-1_500));
        assert_eq!(parse_go_duration("5d"), None);
        for ns in [1, 1_500, 2_000_000, 61_000_000_000, 3_723_500_000_000] {
            assert_eq!(
                parse_go_duration(&super::super::special::go_duration(ns)),
                Some(ns)
            );
        }
    }

    #[test]
    fn varints_match_protobuf() {
        let mut out = Vec::new();
        varint_field(2, (-1i64) as u64, &mut out);
        assert_eq!(
            out.len(),
            11,
            "a negative int is ten varint bytes after the key"
        );
        out.clear();
        varint(300, &mut out);
        assert_eq!(out, [0xac, 0x02]);
    }
}
