//! The frames the API server and the node daemons exchange on exec and
//! attach streams (`apiserver/src/http/exec.rs`, `node/src/server/exec.rs`):
//! a kind byte, the payload's length (4 bytes, big-endian), the payload —
//! written by [`encode`], cut from a stream however it arrives by
//! [`FrameSplitter`]. What each kind means is the two sides' business.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

/// One frame's bytes.
pub fn encode(kind: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(kind);
    // payloads are output or input chunks (32 KiB) or short messages, far below 4 GiB
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
    out.freeze()
}

/// Cuts a byte stream into frames as its bytes arrive, however they are split.
#[derive(Debug, Default)]
pub struct FrameSplitter {
    buf: BytesMut,
}

/// A frame longer than [`MAX_FRAME`]: the stream is not korral's frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Oversized(pub usize);

impl FrameSplitter {
    /// Adds bytes as they arrive.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame's kind and payload, `None` until one is.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Bytes)>, Oversized> {
        let Some((&kind, rest)) = self.buf.split_first() else {
            return Ok(None);
        };
        let Some(len) = rest.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > MAX_FRAME {
            return Err(Oversized(len));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        self.buf.advance(5);
        Ok(Some((kind, self.buf.split_to(len).freeze())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_whole_however_the_bytes_are_split() {
        let mut stream = encode(1, b"hello").to_vec();
        stream.extend_from_slice(&encode(3, &7i32.to_be_bytes()));
        stream.extend_from_slice(&encode(0, b""));
        let mut s = FrameSplitter::default();
        let mut got = Vec::new();
        for byte in stream {
            s.push(&[byte]);
            while let Some(f) = s.next_frame().expect("frames") {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            vec![
                (1, Bytes::from_static(b"hello")),
                (3, Bytes::copy_from_slice(&7i32.to_be_bytes())),
                (0, Bytes::new()),
            ]
        );
    }

    #[test]
    fn an_oversized_length_is_refused() {
        let mut s = FrameSplitter::default();
        s.push(&[1]);
        s.push(&u32::try_from(MAX_FRAME + 1).expect("fits").to_be_bytes());
        assert_eq!(s.next_frame(), Err(Oversized(MAX_FRAME + 1)));
    }
}
