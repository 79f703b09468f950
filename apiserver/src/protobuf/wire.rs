//! The protobuf wire format, read-only: varints, field keys and
//! length-delimited payloads over a byte slice, with every bound checked.

use super::ProtobufError;

/// How a field's payload is laid out on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireType {
    /// A base-128 varint (int32, int64, uint32, uint64, bool, enum).
    Varint,
    /// Eight little-endian bytes (fixed64, sfixed64, double).
    Fixed64,
    /// A varint length, then that many bytes (string, bytes, messages, packed repeated).
    Len,
    /// Four little-endian bytes (fixed32, sfixed32, float).
    Fixed32,
}

/// One field as it appears on the wire, its payload not yet interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// A varint's value.
    Varint(u64),
    /// A fixed64's bits.
    Fixed64(u64),
    /// A length-delimited payload.
    Len(&'a [u8]),
    /// A fixed32's bits.
    Fixed32(u32),
}

impl Value<'_> {
    /// The wire type this value was read with.
    pub fn wire_type(&self) -> WireType {
        match self {
            Value::Varint(_) => WireType::Varint,
            Value::Fixed64(_) => WireType::Fixed64,
            Value::Len(_) => WireType::Len,
            Value::Fixed32(_) => WireType::Fixed32,
        }
    }

    /// Whether the payload is the zero value of its wire type (0, or empty bytes).
    pub fn is_zero(&self) -> bool {
        match self {
            Value::Varint(v) | Value::Fixed64(v) => *v == 0,
            Value::Fixed32(v) => *v == 0,
            Value::Len(b) => b.is_empty(),
        }
    }
}

/// Reads the fields of one message in order; an iterator of `(number, value)`.
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    /// Starts reading the message encoded in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn next_field(&mut self) -> Result<(u32, Value<'a>), ProtobufError> {
        let key = read_varint(self.buf, &mut self.pos)?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| (1..=536_870_911).contains(n))
            .ok_or_else(|| {
                ProtobufError::malformed(format!("invalid field number {}", key >> 3))
            })?;
        let value = match key & 7 {
            0 => Value::Varint(read_varint(self.buf, &mut self.pos)?),
            1 => Value::Fixed64(u64::from_le_bytes(self.take_array()?)),
            2 => {
                let len = read_varint(self.buf, &mut self.pos)?;
                let len = usize::try_from(len)
                    .map_err(|_| ProtobufError::malformed(format!("length {len} is too large")))?;
                Value::Len(self.take(len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.take_array()?)),
            3 | 4 => {
                return Err(ProtobufError::malformed(format!(
                    "field {number} uses a deprecated group wire type"
                )));
            }
            w => {
                return Err(ProtobufError::malformed(format!(
                    "field {number} has invalid wire type {w}"
                )));
            }
        };
        Ok((number, value))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ProtobufError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| {
                ProtobufError::malformed(format!(
                    "a field of {len} bytes runs past the end of its message ({} bytes left)",
                    self.buf.len() - self.pos
                ))
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], ProtobufError> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), ProtobufError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let item = self.next_field();
        if item.is_err() {
            // Stop after the first error: the rest cannot be framed.
            self.pos = self.buf.len();
        }
        Some(item)
    }
}

/// Reads one base-128 varint at `*pos`, advancing it.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtobufError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let byte = *buf
            .get(*pos)
            .ok_or_else(|| ProtobufError::malformed("a varint runs past the end of its message"))?;
        *pos += 1;
        if i == 9 && byte > 1 {
            return Err(ProtobufError::malformed("a varint is longer than 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(ProtobufError::malformed("a varint is longer than 10 bytes"))
}

/// Reads a packed run of varints (a `repeated` scalar field in packed form).
pub fn packed_varints(buf: &[u8]) -> Result<Vec<u64>, ProtobufError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        out.push(read_varint(buf, &mut pos)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_varints_and_lengths() {
        // field 1 varint 150, field 2 "hi", field 3 fixed32 1, field 4 fixed64 2
        let buf = [
            0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x1d, 1, 0, 0, 0, 0x21, 2, 0, 0, 0, 0, 0, 0,
            0,
        ];
        let fields: Vec<_> = Fields::new(&buf).collect::<Result<_, _>>().expect("valid");
        assert_eq!(
            fields,
            vec![
                (1, Value::Varint(150)),
                (2, Value::Len(b"hi")),
                (3, Value::Fixed32(1)),
                (4, Value::Fixed64(2)),
            ]
        );
    }

    #[test]
    fn rejects_truncated_and_oversized_input() {
        assert!(Fields::new(&[0x12, 0x05, b'a']).any(|f| f.is_err()));
        assert!(Fields::new(&[0x08]).any(|f| f.is_err()));
        assert!(
            Fields::new(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ])
            .any(|f| f.is_err())
        );
        assert!(
            Fields::new(&[0x0b]).any(|f| f.is_err()),
            "groups are rejected"
        );
        assert!(
            Fields::new(&[0x00, 0x00]).any(|f| f.is_err()),
            "field 0 is invalid"
        );
        let huge_len = [0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(Fields::new(&huge_len).any(|f| f.is_err()));
    }

    #[test]
    fn reads_packed_varints_and_max_u64() {
        assert_eq!(
            packed_varints(&[1, 0x96, 0x01, 0]).expect("packed"),
            vec![1, 150, 0]
        );
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&max, &mut 0).expect("max"), u64::MAX);
    }
}
