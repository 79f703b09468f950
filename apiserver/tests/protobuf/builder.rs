//! A protobuf writer for hand-built test bodies: field numbers are written
//! literally, as read from k8s.io/api's generated.proto, so the tests check
//! the decoder's table instead of reusing it.

/// One message being written.
#[derive(Clone, Default)]
pub struct Msg(pub Vec<u8>);

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

impl Msg {
    /// An empty message.
    pub fn new() -> Self {
        Msg(Vec::new())
    }

    /// A varint field (int32, int64, bool); negative numbers as ten-byte varints.
    pub fn int(mut self, field: u32, v: i64) -> Self {
        varint(&mut self.0, u64::from(field) << 3);
        varint(&mut self.0, v as u64);
        self
    }

    /// A bool field.
    pub fn bool(self, field: u32, v: bool) -> Self {
        self.int(field, i64::from(v))
    }

    /// A length-delimited field.
    pub fn bytes(mut self, field: u32, b: &[u8]) -> Self {
        varint(&mut self.0, (u64::from(field) << 3) | 2);
        varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    /// A string field.
    pub fn str(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }

    /// Several occurrences of a repeated string field.
    pub fn strs(self, field: u32, items: &[&str]) -> Self {
        items.iter().fold(self, |m, s| m.str(field, s))
    }

    /// A nested message field.
    pub fn msg(self, field: u32, m: Msg) -> Self {
        self.bytes(field, &m.0)
    }

    /// A `map<string, string>` entry.
    pub fn entry(self, field: u32, key: &str, value: &str) -> Self {
        self.msg(field, Msg::new().str(1, key).str(2, value))
    }

    /// A `map<string, bytes>` entry.
    pub fn entry_bytes(self, field: u32, key: &str, value: &[u8]) -> Self {
        self.msg(field, Msg::new().str(1, key).bytes(2, value))
    }

    /// A `map<string, Message>` entry.
    pub fn entry_msg(self, field: u32, key: &str, value: Msg) -> Self {
        self.msg(field, Msg::new().str(1, key).msg(2, value))
    }

    /// A packed repeated varint field.
    pub fn packed(self, field: u32, values: &[i64]) -> Self {
        let mut payload = Vec::new();
        for v in values {
            varint(&mut payload, *v as u64);
        }
        self.bytes(field, &payload)
    }
}

/// A request body: magic, then runtime.Unknown {1 typeMeta, 2 raw, 3 contentEncoding, 4 contentType}.
pub fn envelope(api_version: &str, kind: &str, raw: Msg) -> Vec<u8> {
    let unknown = Msg::new()
        .msg(1, Msg::new().str(1, api_version).str(2, kind))
        .msg(2, raw)
        .str(3, "")
        .str(4, "");
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.0);
    body
}

/// meta/v1 ObjectMeta as client-go writes it: every value field, zero or not.
pub fn object_meta(name: &str, namespace: &str) -> Msg {
    Msg::new()
        .str(1, name)
        .str(2, "")
        .str(3, namespace)
        .str(4, "")
        .str(5, "")
        .str(6, "")
        .int(7, 0)
        .msg(8, Msg::new())
}

/// resource.Quantity {1 string}.
pub fn quantity(s: &str) -> Msg {
    Msg::new().str(1, s)
}

/// intstr.IntOrString holding a number.
pub fn int_val(i: i64) -> Msg {
    Msg::new().int(1, 0).int(2, i).str(3, "")
}

/// intstr.IntOrString holding a string.
pub fn str_val(s: &str) -> Msg {
    Msg::new().int(1, 1).int(2, 0).str(3, s)
}

/// meta/v1 Time or MicroTime {1 seconds, 2 nanos}.
pub fn time(seconds: i64, nanos: i64) -> Msg {
    Msg::new().int(1, seconds).int(2, nanos)
}
