//! A protobuf message to the JSON object Go's encoding/json would write for
//! the same Go value, driven by the message table in [`super::descriptors`].

use base64::Engine as _;
use serde_json::{Map, Value};

use super::ProtobufError;
use super::descriptors::{Field, Message, Rule, Shape, Ty};
use super::special;
use super::wire::{self, Fields, WireType};

/// Messages nest at most this deep (the table's own depth is far less).
const MAX_DEPTH: usize = 64;

/// Decodes `buf` as `message`. `None` means the Go value's JSON is `null`
/// (an unset `Time`, empty raw JSON), i.e. the member is left out.
pub fn message(
    message: &'static Message,
    buf: &[u8],
    depth: usize,
) -> Result<Option<Value>, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::malformed(format!(
            "messages nest deeper than {MAX_DEPTH} levels"
        )));
    }
    match message.shape {
        Shape::Struct => object(message, buf, depth).map(|o| Some(Value::Object(o))),
        shape => special::decode(shape, message, buf),
    }
}

/// Decodes a [`Shape::Struct`] message into a JSON object.
fn object(
    message: &'static Message,
    buf: &[u8],
    depth: usize,
) -> Result<Map<String, Value>, ProtobufError> {
    let mut out = Map::new();
    for item in Fields::new(buf) {
        let (number, value) = item?;
        let Some(field) = message.field(number) else {
            unknown_field(message, number, &value)?;
            continue;
        };
        member(field, value, depth, &mut out).map_err(|e| e.within(field.json))?;
    }
    Ok(out)
}

/// Applies one wire field to the object being built.
fn member(
    field: &'static Field,
    value: wire::Value<'_>,
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    if let Ty::Map(entry) = field.ty {
        let (key, v) = map_entry(entry, bytes_of(value)?, depth)?;
        let map = out
            .entry(field.json)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(map) = map {
            map.insert(key, v);
        }
        return Ok(());
    }
    match field.rule {
        Rule::Repeated => {
            let list = out
                .entry(field.json)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = list {
                let index = list.len();
                let items = repeated(field.ty, value, depth)
                    .map_err(|e| e.within(&format!("[{index}]")))?;
                list.extend(items);
            }
        }
        Rule::Inline => {
            let Ty::Message(inner) = field.ty else {
                return Err(ProtobufError::malformed(
                    "an inlined field is not a message",
                ));
            };
            if let Some(Value::Object(members)) = message(inner, bytes_of(value)?, depth + 1)? {
                merge(out, members);
            }
        }
        Rule::OmitZero if value.is_zero() => {
            // Go's JSON leaves the zero value of an `omitempty` field out.
            out.remove(field.json);
        }
        Rule::Keep | Rule::OmitZero => match single(field.ty, value, depth)? {
            Some(Value::Object(members)) => match out.get_mut(field.json) {
                // A message field seen twice merges, as proto decoding does.
                Some(Value::Object(existing)) => merge(existing, members),
                _ => {
                    out.insert(field.json.to_string(), Value::Object(members));
                }
            },
            Some(v) => {
                out.insert(field.json.to_string(), v);
            }
            None => {
                out.remove(field.json);
            }
        },
    }
    Ok(())
}

fn merge(into: &mut Map<String, Value>, members: Map<String, Value>) {
    for (k, v) in members {
        into.insert(k, v);
    }
}

/// A field the table does not know: Go's decoder skips it. A zero value is
/// what a newer client writes for a field it has not set, so it is skipped
/// too; anything else carries data korral would lose, so it is an error.
pub fn unknown_field(
    message: &'static Message,
    number: u32,
    value: &wire::Value<'_>,
) -> Result<(), ProtobufError> {
    if value.is_zero() {
        Ok(())
    } else {
        Err(ProtobufError::UnknownField {
            path: String::new(),
            message: message.name,
            number,
        })
    }
}

/// Decodes one map entry (field 1 key, field 2 value).
fn map_entry(
    entry: &'static Message,
    buf: &[u8],
    depth: usize,
) -> Result<(String, Value), ProtobufError> {
    let value_ty = entry
        .field(2)
        .map(|f| f.ty)
        .ok_or_else(|| ProtobufError::malformed("a map entry type has no value field"))?;
    let mut key = String::new();
    let mut value = None;
    for item in Fields::new(buf) {
        let (number, v) = item?;
        match number {
            1 => key = string_of(v)?,
            2 => value = single(value_ty, v, depth).map_err(|e| e.within(&key))?,
            n => unknown_field(entry, n, &v)?,
        }
    }
    let value = match value {
        Some(v) => v,
        None => zero_value(value_ty, depth)?,
    };
    Ok((key, value))
}

/// The JSON of a value that is absent from the wire (a map entry without a value).
fn zero_value(ty: Ty, depth: usize) -> Result<Value, ProtobufError> {
    Ok(match ty {
        Ty::String | Ty::Bytes => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::Message(m) => message(m, &[], depth + 1)?.unwrap_or(Value::Null),
        Ty::Map(_) => Value::Object(Map::new()),
        _ => Value::from(0),
    })
}

/// Decodes the elements one occurrence of a repeated field contributes:
/// one, or several for a packed run of scalars.
fn repeated(ty: Ty, value: wire::Value<'_>, depth: usize) -> Result<Vec<Value>, ProtobufError> {
    match (ty, value) {
        (Ty::Bool | Ty::Int32 | Ty::Int64 | Ty::UInt32 | Ty::UInt64, wire::Value::Len(buf)) => {
            wire::packed_varints(buf)?
                .into_iter()
                .map(|v| scalar(ty, wire::Value::Varint(v)))
                .collect()
        }
        (Ty::Double, wire::Value::Len(buf)) => packed_fixed::<8>(buf)?
            .map(|b| scalar(ty, wire::Value::Fixed64(u64::from_le_bytes(b))))
            .collect(),
        (Ty::Float, wire::Value::Len(buf)) => packed_fixed::<4>(buf)?
            .map(|b| scalar(ty, wire::Value::Fixed32(u32::from_le_bytes(b))))
            .collect(),
        _ => Ok(vec![single(ty, value, depth)?.unwrap_or(Value::Null)]),
    }
}

fn packed_fixed<const N: usize>(
    buf: &[u8],
) -> Result<impl Iterator<Item = [u8; N]> + '_, ProtobufError> {
    if !buf.len().is_multiple_of(N) {
        return Err(ProtobufError::malformed(format!(
            "a packed run of {N}-byte values is {} bytes long",
            buf.len()
        )));
    }
    Ok(buf.chunks_exact(N).map(|c| {
        let mut out = [0; N];
        out.copy_from_slice(c);
        out
    }))
}

/// Decodes one non-repeated value.
fn single(ty: Ty, value: wire::Value<'_>, depth: usize) -> Result<Option<Value>, ProtobufError> {
    match ty {
        Ty::Message(m) => message(m, bytes_of(value)?, depth + 1),
        Ty::Map(_) => Err(ProtobufError::malformed("a map entry outside a map field")),
        _ => scalar(ty, value).map(Some),
    }
}

/// Decodes a scalar, checking the wire type.
fn scalar(ty: Ty, value: wire::Value<'_>) -> Result<Value, ProtobufError> {
    use wire::Value as W;
    Ok(match (ty, value) {
        (Ty::String, W::Len(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
        (Ty::Bytes, W::Len(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Ty::Bool, W::Varint(v)) => Value::Bool(v != 0),
        // Truncation to 32 bits is how protobuf reads an int32 varint.
        (Ty::Int32, W::Varint(v)) => Value::from(v as i32),
        (Ty::Int64, W::Varint(v)) => Value::from(v as i64),
        (Ty::UInt32, W::Varint(v)) => Value::from(v as u32),
        (Ty::UInt64, W::Varint(v)) => Value::from(v),
        (Ty::Double, W::Fixed64(bits)) => number(f64::from_bits(bits))?,
        (Ty::Float, W::Fixed32(bits)) => number(f64::from(f32::from_bits(bits)))?,
        (ty, v) => {
            return Err(ProtobufError::malformed(format!(
                "a {ty:?} field arrived with wire type {:?}",
                v.wire_type()
            )));
        }
    })
}

fn number(f: f64) -> Result<Value, ProtobufError> {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| ProtobufError::malformed(format!("{f} has no JSON form")))
}

/// The payload of a length-delimited field.
pub fn bytes_of<'a>(value: wire::Value<'a>) -> Result<&'a [u8], ProtobufError> {
    match value {
        wire::Value::Len(b) => Ok(b),
        v => Err(ProtobufError::malformed(format!(
            "expected wire type {:?}, found {:?}",
            WireType::Len,
            v.wire_type()
        ))),
    }
}

/// The payload of a string field.
pub fn string_of(value: wire::Value<'_>) -> Result<String, ProtobufError> {
    Ok(String::from_utf8_lossy(bytes_of(value)?).into_owned())
}

#[cfg(test)]
mod tests {
    use super::super::descriptors::{apps_v1, core_v1};
    use super::*;

    fn decode(m: &'static Message, buf: &[u8]) -> Value {
        message(m, buf, 0).expect("decodes").expect("an object")
    }

    #[test]
    fn pointer_zero_is_kept_and_omitempty_zero_is_dropped() {
        // DeploymentSpec: replicas (*int32) = 0, minReadySeconds (int32, omitempty) = 0, paused = false
        let v = decode(
            &apps_v1::DEPLOYMENT_SPEC,
            &[0x08, 0x00, 0x28, 0x00, 0x38, 0x00],
        );
        assert_eq!(v, serde_json::json!({"replicas": 0}));
    }

    #[test]
    fn packed_and_unpacked_repeated_scalars_decode_alike() {
        // PodSecurityContext.supplementalGroups = field 4, repeated int64
        let packed = decode(
            &core_v1::POD_SECURITY_CONTEXT,
            &[0x22, 0x03, 0x01, 0x02, 0x03],
        );
        let unpacked = decode(
            &core_v1::POD_SECURITY_CONTEXT,
            &[0x20, 0x01, 0x20, 0x02, 0x20, 0x03],
        );
        assert_eq!(packed, serde_json::json!({"supplementalGroups": [1, 2, 3]}));
        assert_eq!(packed, unpacked);
    }

    #[test]
    fn negative_int32_and_wrong_wire_types() {
        // ContainerStateTerminated.exitCode = field 1 int32 -1 (ten-byte varint)
        let mut buf = vec![0x08];
        buf.extend([0xff; 9]);
        buf.push(0x01);
        let v = decode(&core_v1::CONTAINER_STATE_TERMINATED, &buf);
        assert_eq!(v["exitCode"], -1);
        // exitCode sent as a string
        let err =
            message(&core_v1::CONTAINER_STATE_TERMINATED, &[0x0a, 0x00], 0).expect_err("wire type");
        assert!(err.to_string().contains("exitCode"), "{err}");
    }

    #[test]
    fn unknown_fields_are_skipped_when_zero_and_rejected_otherwise() {
        // ConfigMap has no field 99
        assert_eq!(
            decode(&core_v1::CONFIG_MAP, &[0x9a, 0x06, 0x00]),
            serde_json::json!({})
        );
        let err = message(&core_v1::CONFIG_MAP, &[0x98, 0x06, 0x01], 0).expect_err("unknown");
        assert!(
            err.to_string().contains("k8s.io.api.core.v1.ConfigMap"),
            "{err}"
        );
        assert!(err.to_string().contains("99"), "{err}");
    }
}
