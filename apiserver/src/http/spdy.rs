//! SPDY/3.1 framing as Kubernetes' streaming protocols use it (the
//! `moby/spdystream` connections of `kubectl port-forward`, whether over a
//! raw upgraded connection or tunnelled in WebSocket messages): control
//! frames (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY,
//! HEADERS, WINDOW_UPDATE) and data frames, with header blocks compressed by
//! one zlib stream per direction primed with SPDY/3's dictionary. No flow
//! control (spdystream has none). Hand-written: no maintained Rust crate
//! speaks SPDY, which only Kubernetes still uses.

use std::sync::OnceLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// A data frame's or control frame's FIN flag: the sender's half is closed.
pub const FLAG_FIN: u8 = 0x01;

/// The largest frame accepted (spdystream's data frames are at most 32 KiB;
/// header blocks are small).
pub const MAX_FRAME: usize = 1 << 20;

/// RST_STREAM status: the stream was refused.
pub const RST_REFUSED_STREAM: u32 = 3;
/// RST_STREAM status: the sender cancels the stream.
pub const RST_CANCEL: u32 = 5;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// Header names and values (names lowercase, as SPDY/3 requires).
pub type Headers = Vec<(String, String)>;

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A new stream from the peer.
    SynStream {
        /// The stream (odd from a client).
        stream_id: u32,
        /// FIN / UNIDIRECTIONAL.
        flags: u8,
        /// Its headers.
        headers: Headers,
    },
    /// The answer to a SYN_STREAM.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// FIN when the stream is refused.
        flags: u8,
        /// Headers (none in Kubernetes' protocols).
        headers: Headers,
    },
    /// The stream ends abnormally.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why.
        status: u32,
    },
    /// Session settings (ignored).
    Settings,
    /// A liveness probe, echoed when the peer sent it.
    Ping {
        /// Its id (odd from a client).
        id: u32,
    },
    /// The peer goes away.
    GoAway {
        /// The last stream it handled.
        last_good: u32,
        /// Why.
        status: u32,
    },
    /// More headers on a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// FIN.
        flags: u8,
        /// The headers.
        headers: Headers,
    },
    /// Flow control credit (ignored: spdystream does not do flow control).
    WindowUpdate,
    /// Bytes on a stream.
    Data {
        /// The stream.
        stream_id: u32,
        /// FIN.
        flags: u8,
        /// The payload.
        data: Bytes,
    },
}

/// SPDY/3's header compression dictionary (the words of its section 2.6.10.1).
fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
            "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
            "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
            "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
            "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=",
            "iso-8859-1,utf-,*,enq=0.",
        );
        let mut d = Vec::new();
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

/// One side of a SPDY session: parses what the peer sends (bytes in any
/// split) and encodes what we send, each with its own zlib stream.
pub struct Codec {
    input: BytesMut,
    inflate: Decompress,
    deflate: Compress,
    deflate_primed: bool,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

impl Codec {
    /// A codec at the start of a session.
    pub fn new() -> Codec {
        Codec {
            input: BytesMut::new(),
            inflate: Decompress::new(true),
            deflate: Compress::new(Compression::default(), true),
            deflate_primed: false,
        }
    }

    /// Adds bytes received from the peer.
    pub fn push(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
    }

    /// The next complete frame received, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        if self.input.len() < 8 {
            return Ok(None);
        }
        let len = (usize::from(self.input[5]) << 16)
            | (usize::from(self.input[6]) << 8)
            | usize::from(self.input[7]);
        if len > MAX_FRAME {
            return Err(format!("SPDY frame of {len} bytes is too large"));
        }
        if self.input.len() < 8 + len {
            return Ok(None);
        }
        let mut head = self.input.split_to(8);
        let body = self.input.split_to(len).freeze();
        let first = head.get_u32();
        let flags = head.get_u8();
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: first & 0x7fff_ffff,
                flags,
                data: body,
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(format!("SPDY version {version} is not supported (only 3)"));
        }
        let kind = (first & 0xffff) as u16;
        let mut b = body;
        let need = |b: &Bytes, n: usize| {
            if b.len() < n {
                Err(format!("SPDY control frame type {kind} is truncated"))
            } else {
                Ok(())
            }
        };
        Ok(Some(match kind {
            SYN_STREAM => {
                need(&b, 10)?;
                let stream_id = b.get_u32() & 0x7fff_ffff;
                let _associated = b.get_u32();
                let _priority_and_slot = b.get_u16();
                let headers = self.headers(&b)?;
                Frame::SynStream {
                    stream_id,
                    flags,
                    headers,
                }
            }
            SYN_REPLY | HEADERS => {
                need(&b, 4)?;
                let stream_id = b.get_u32() & 0x7fff_ffff;
                let headers = self.headers(&b)?;
                if kind == SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            RST_STREAM => {
                need(&b, 8)?;
                Frame::RstStream {
                    stream_id: b.get_u32() & 0x7fff_ffff,
                    status: b.get_u32(),
                }
            }
            PING => {
                need(&b, 4)?;
                Frame::Ping { id: b.get_u32() }
            }
            GOAWAY => {
                need(&b, 8)?;
                Frame::GoAway {
                    last_good: b.get_u32() & 0x7fff_ffff,
                    status: b.get_u32(),
                }
            }
            SETTINGS => Frame::Settings,
            WINDOW_UPDATE => Frame::WindowUpdate,
            // unknown control frames are ignored, as SPDY/3 asks
            _ => Frame::Settings,
        }))
    }

    /// Inflates and parses a header block.
    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, String> {
        let mut out = Vec::with_capacity(256);
        let mut input = compressed;
        loop {
            out.reserve(1024);
            let before_in = self.inflate.total_in();
            match self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    let consumed = (self.inflate.total_in() - before_in) as usize;
                    input = &input[consumed.min(input.len())..];
                    self.inflate
                        .set_dictionary(dictionary())
                        .map_err(|e| format!("SPDY header dictionary: {e}"))?;
                    continue;
                }
                Err(e) => return Err(format!("SPDY header block does not inflate: {e}")),
            }
            let consumed = (self.inflate.total_in() - before_in) as usize;
            input = &input[consumed.min(input.len())..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if consumed == 0 && out.len() < out.capacity() {
                return Err("SPDY header block is truncated".into());
            }
            if out.len() > MAX_FRAME {
                return Err("SPDY header block is too large".into());
            }
        }
        parse_headers(&out)
    }

    /// Encodes a frame to send.
    pub fn encode(&mut self, frame: &Frame) -> Result<Bytes, String> {
        let mut out = BytesMut::new();
        let control = |out: &mut BytesMut, kind: u16, flags: u8, body: &[u8]| {
            out.put_u16(0x8000 | VERSION);
            out.put_u16(kind);
            out.put_u8(flags);
            let len = body.len() as u32;
            out.put_u8((len >> 16) as u8);
            out.put_u16((len & 0xffff) as u16);
            out.put_slice(body);
        };
        match frame {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if data.len() > MAX_FRAME {
                    return Err("SPDY data frame too large".into());
                }
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u8(*flags);
                let len = data.len() as u32;
                out.put_u8((len >> 16) as u8);
                out.put_u16((len & 0xffff) as u16);
                out.put_slice(data);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                let mut body = BytesMut::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_slice(&self.compress(headers)?);
                control(&mut out, SYN_REPLY, *flags, &body);
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let mut body = BytesMut::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_slice(&self.compress(headers)?);
                control(&mut out, HEADERS, *flags, &body);
            }
            Frame::SynStream {
                stream_id,
                flags,
                headers,
            } => {
                let mut body = BytesMut::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(0);
                body.put_u16(0);
                body.put_slice(&self.compress(headers)?);
                control(&mut out, SYN_STREAM, *flags, &body);
            }
            Frame::RstStream { stream_id, status } => {
                let mut body = BytesMut::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(*status);
                control(&mut out, RST_STREAM, 0, &body);
            }
            Frame::Ping { id } => control(&mut out, PING, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => {
                let mut body = BytesMut::new();
                body.put_u32(*last_good);
                body.put_u32(*status);
                control(&mut out, GOAWAY, 0, &body);
            }
            Frame::Settings | Frame::WindowUpdate => {
                return Err("korral does not send SETTINGS or WINDOW_UPDATE frames".into());
            }
        }
        Ok(out.freeze())
    }

    /// A header block, deflated on this session's stream.
    fn compress(&mut self, headers: &Headers) -> Result<Vec<u8>, String> {
        if !self.deflate_primed {
            self.deflate
                .set_dictionary(dictionary())
                .map_err(|e| format!("SPDY header dictionary: {e}"))?;
            self.deflate_primed = true;
        }
        let mut plain = BytesMut::new();
        plain.put_u32(headers.len() as u32);
        for (k, v) in headers {
            plain.put_u32(k.len() as u32);
            plain.put_slice(k.as_bytes());
            plain.put_u32(v.len() as u32);
            plain.put_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input: &[u8] = &plain;
        loop {
            out.reserve(256);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| format!("SPDY header block does not deflate: {e}"))?;
            let consumed = (self.deflate.total_in() - before) as usize;
            input = &input[consumed.min(input.len())..];
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

fn parse_headers(mut b: &[u8]) -> Result<Headers, String> {
    let bad = || "SPDY header block is malformed".to_string();
    let take = |b: &mut &[u8]| -> Result<Vec<u8>, String> {
        if b.len() < 4 {
            return Err(bad());
        }
        let n = b.get_u32() as usize;
        if b.len() < n {
            return Err(bad());
        }
        let v = b[..n].to_vec();
        b.advance(n);
        Ok(v)
    };
    if b.len() < 4 {
        return Err(bad());
    }
    let count = b.get_u32();
    let mut out = Vec::new();
    for _ in 0..count {
        let k = String::from_utf8(take(&mut b)?).map_err(|_| bad())?;
        let v = String::from_utf8(take(&mut b)?).map_err(|_| bad())?;
        for part in v.split('\0') {
            out.push((k.to_ascii_lowercase(), part.to_string()));
        }
    }
    Ok(out)
}

/// The first value of header `name`.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert!(d.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(d.ends_with(b"utf-,*,enq=0."));
    }

    #[test]
    fn frames_round_trip_however_their_bytes_are_split() {
        let mut client = Codec::new();
        let mut server = Codec::new();
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                flags: 0,
                headers: vec![
                    ("streamtype".into(), "error".into()),
                    ("port".into(), "8080".into()),
                    ("requestid".into(), "0".into()),
                ],
            },
            Frame::SynStream {
                stream_id: 3,
                flags: 0,
                headers: vec![
                    ("streamtype".into(), "data".into()),
                    ("port".into(), "8080".into()),
                    ("requestid".into(), "0".into()),
                ],
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
            },
            Frame::Ping { id: 1 },
            Frame::RstStream {
                stream_id: 3,
                status: RST_CANCEL,
            },
        ];
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend_from_slice(&client.encode(f).expect("encode"));
        }
        let mut got = Vec::new();
        for chunk in wire.chunks(5) {
            server.push(chunk);
            while let Some(f) = server.next_frame().expect("frame") {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert_eq!(
            match &got[1] {
                Frame::SynStream { headers, .. } => header(headers, "streamType"),
                _ => None,
            },
            Some("data")
        );
        // the other direction has its own compression stream
        let reply = server
            .encode(&Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![],
            })
            .expect("reply");
        client.push(&reply);
        assert_eq!(
            client.next_frame().expect("frame"),
            Some(Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![]
            })
        );
    }

    #[test]
    fn garbage_is_refused() {
        let mut c = Codec::new();
        c.push(&[0x80, 0x02, 0x00, 0x01, 0, 0, 0, 0]);
        assert!(c.next_frame().is_err(), "SPDY/2 is not spoken");
        let mut c = Codec::new();
        c.push(&[0x80, 0x03, 0x00, 0x01, 0, 0, 0, 4, 0, 0, 0, 1]);
        assert!(c.next_frame().is_err(), "a truncated SYN_STREAM");
        let mut c = Codec::new();
        c.push(&[
            0x80, 0x03, 0x00, 0x01, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2,
        ]);
        assert!(c.next_frame().is_err(), "a header block that is not zlib");
    }
}
