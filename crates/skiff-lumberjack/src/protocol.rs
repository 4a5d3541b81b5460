//! The Lumberjack v2 wire format: frames, an encoder for windows of events and a bounded decoder.
//!
//! Every frame starts with a version byte (`'2'`; `'1'` for the legacy protocol) and a type byte;
//! integers are unsigned 32-bit big-endian:
//!
//! | frame | sent by | payload |
//! |---|---|---|
//! | `W` window size | client | `count`: events the client sends before it waits for an ACK |
//! | `J` JSON data | client | `seq`, `len`, `len` bytes of one JSON document |
//! | `D` data (v1) | client | `seq`, `pairs`, then `pairs` x (`klen`, key, `vlen`, value) |
//! | `C` compressed | client | `len`, `len` bytes of zlib holding whole frames |
//! | `A` ACK | server | `seq`: every frame up to `seq` of the current window is processed |
//!
//! A client (Beats' go-lumber, skiff's output) sends `W n` then frames with `seq` 1..=n, usually
//! inside one `C` frame, and reads ACKs until one carries `n`. A server may ACK part of a window
//! (a partial ACK) and, while it is still busy, repeats its last ACK (Logstash sends `A 0`) as a
//! keep-alive. An empty window (`W 0`) is answered by Logstash with `A 0`.
//!
//! The decoder is the part that faces untrusted bytes: it never allocates more than the
//! configured [`Limits`] (lengths are checked before anything is buffered, and decompression
//! stops at `max_decompressed`), never panics, and names what was wrong.

use std::collections::VecDeque;
use std::io::{Read, Write};

use bytes::{Buf, Bytes, BytesMut};

/// The protocol version byte of Lumberjack v2.
pub const VERSION_2: u8 = b'2';
/// The protocol version byte of Lumberjack v1 (accepted on input for `D` frames).
pub const VERSION_1: u8 = b'1';
/// Frame type: window size.
pub const WINDOW: u8 = b'W';
/// Frame type: JSON data frame.
pub const JSON: u8 = b'J';
/// Frame type: legacy key/value data frame.
pub const DATA: u8 = b'D';
/// Frame type: compressed frames.
pub const COMPRESSED: u8 = b'C';
/// Frame type: acknowledgement.
pub const ACK: u8 = b'A';

/// The size of an ACK frame on the wire.
pub const ACK_LEN: usize = 6;

/// How much a decoder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest payload of one data frame (`J` document, or all of a `D` frame's pairs).
    pub max_payload: usize,
    /// The largest decompressed content of one `C` frame (and the largest compressed one).
    pub max_decompressed: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload: 10 << 20,
            max_decompressed: 64 << 20,
        }
    }
}

/// One decoded frame (compressed frames are opened by the decoder and never returned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `W`: the client will send this many data frames before waiting for an ACK.
    Window(u32),
    /// `J`: one JSON document.
    Json {
        /// The frame's sequence number within its window.
        seq: u32,
        /// The document (not yet parsed).
        payload: Bytes,
    },
    /// `D`: one legacy event of string pairs.
    Data {
        /// The frame's sequence number within its window.
        seq: u32,
        /// Key/value pairs (invalid UTF-8 replaced).
        pairs: Vec<(String, String)>,
    },
    /// `A`: the server processed every frame up to `seq`.
    Ack(u32),
}

/// Why a byte stream is not Lumberjack, or not one we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The first byte of a frame is not a known version.
    #[error(
        "not a lumberjack frame: version byte {:#04x} ({}) where '1' or '2' was expected; is the peer speaking lumberjack (Beats/Logstash) on this port, with the same TLS setting?",
        .0,
        printable(*.0)
    )]
    Version(u8),
    /// The frame type byte is unknown.
    #[error("unknown lumberjack frame type {:#04x} ({})", .0, printable(*.0))]
    FrameType(u8),
    /// A frame announces more bytes than allowed.
    #[error("{what} of {size} bytes is larger than the limit of {max} bytes ({setting})")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its announced size.
        size: u64,
        /// The limit.
        max: usize,
        /// The setting that raises the limit.
        setting: &'static str,
    },
    /// A length field is zero where the protocol needs content.
    #[error("{0} has length 0")]
    Empty(&'static str),
    /// A compressed frame cannot be decompressed.
    #[error("compressed frame is not valid zlib data: {0}")]
    Zlib(String),
    /// A compressed frame holds a cut-off frame.
    #[error("compressed frame ends in the middle of a frame")]
    TruncatedInCompressed,
    /// A compressed frame inside a compressed frame.
    #[error("compressed frame nested in a compressed frame (no lumberjack client does this)")]
    Nested,
    /// The server sent a frame that only clients send, or the other way around.
    #[error("unexpected {0} frame from the {1}")]
    Unexpected(&'static str, &'static str),
}

fn printable(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        "not a letter".to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Appends a window-size frame.
pub fn write_window(out: &mut Vec<u8>, count: u32) {
    out.extend_from_slice(&[VERSION_2, WINDOW]);
    out.extend_from_slice(&count.to_be_bytes());
}

/// Appends an ACK frame.
pub fn write_ack(out: &mut Vec<u8>, seq: u32) {
    out.extend_from_slice(&ack_frame(seq));
}

/// An ACK frame as bytes.
pub fn ack_frame(seq: u32) -> [u8; ACK_LEN] {
    ack_frame_v(VERSION_2, seq)
}

/// An ACK frame of protocol `version` (a v1 client expects `'1'`, as Logstash answers it).
pub fn ack_frame_v(version: u8, seq: u32) -> [u8; ACK_LEN] {
    let s = seq.to_be_bytes();
    [version, ACK, s[0], s[1], s[2], s[3]]
}

/// Appends a JSON data frame whose payload `write` appends (the length is patched after).
pub fn write_json_frame(out: &mut Vec<u8>, seq: u32, write: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(&[VERSION_2, JSON]);
    out.extend_from_slice(&seq.to_be_bytes());
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out);
    patch_len(out, at);
}

/// Writes the length of what follows `at + 4` into `out[at..at + 4]`.
fn patch_len(out: &mut [u8], at: usize) {
    // A frame larger than 4 GiB cannot be written; events are far smaller (bounded by the
    // inputs' max_bytes), so saturating is only a guard.
    let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Encodes windows: `W count`, then the data frames, compressed into one `C` frame when the
/// level is above 0 (as Beats do). Buffers are reused from one window to the next.
#[derive(Debug, Default)]
pub struct WindowEncoder {
    level: u32,
    frames: Vec<u8>,
}

impl WindowEncoder {
    /// An encoder compressing at zlib `level` (0: no compression, 1 fastest .. 9 smallest).
    pub fn new(level: u32) -> Self {
        WindowEncoder {
            level: level.min(9),
            frames: Vec::new(),
        }
    }

    /// Appends one window of `count` events to `out`; `payload(i, buf)` appends the JSON of the
    /// `i`-th event (sequence numbers are `1..=count`).
    pub fn encode(
        &mut self,
        out: &mut Vec<u8>,
        count: u32,
        mut payload: impl FnMut(usize, &mut Vec<u8>),
    ) {
        write_window(out, count);
        if self.level == 0 {
            for i in 0..count {
                write_json_frame(out, i + 1, |b| payload(i as usize, b));
            }
            return;
        }
        self.frames.clear();
        for i in 0..count {
            write_json_frame(&mut self.frames, i + 1, |b| payload(i as usize, b));
        }
        out.extend_from_slice(&[VERSION_2, COMPRESSED]);
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut z =
            flate2::write::ZlibEncoder::new(&mut *out, flate2::Compression::new(self.level));
        // Writing into a Vec cannot fail.
        let _ = z.write_all(&self.frames);
        let _ = z.finish();
        patch_len(out, at);
        // Do not keep a huge scratch buffer after an unusually large window.
        if self.frames.capacity() > 16 << 20 {
            self.frames = Vec::new();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// A streaming decoder: feed it the bytes read so far, take frames out.
///
/// Decoding is linear in the bytes received however they are split: a frame with a length
/// field (`W`, `A`, `J`, `C`) is parsed once its whole length is buffered (an incomplete one
/// costs a look at its fixed-size header), and a legacy `D` frame, which has no total length,
/// is taken out of the buffer string by string into [`Decoder`]'s own state, so no byte of it
/// is looked at twice. [`Decoder::bytes_examined`] counts the work, for tests.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// Frames taken out of a compressed frame and not yet returned.
    pending: VecDeque<Frame>,
    /// A `D` frame whose header and first strings are already consumed.
    data: Option<DataFrame>,
    /// Bytes read by the parser (headers looked at while waiting included).
    examined: u64,
}

/// A legacy data frame being received.
#[derive(Debug)]
struct DataFrame {
    seq: u32,
    /// Strings (keys and values) still to come.
    left: u64,
    pairs: Vec<(String, String)>,
    /// The key of the pair being received, once it is complete.
    key: Option<String>,
    /// Payload bytes so far, against `max_payload`.
    total: u64,
}

/// Where a frame parse stands.
enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A frame, and how many bytes it used.
    Frame(Frame, usize),
    /// A JSON frame whose payload is at `10..used` (taken out without copying by the caller).
    Json { seq: u32, used: usize },
    /// A compressed frame's payload at `start..start + len`, and the bytes it used.
    Compressed { start: usize, len: usize },
    /// The 10-byte header of a `D` frame: its strings follow.
    Data(DataFrame),
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

impl Decoder {
    /// A decoder accepting at most `limits`.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            pending: VecDeque::new(),
            data: None,
            examined: 0,
        }
    }

    /// The decoder's limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes the next frame out of `buf` (consuming its bytes), `Ok(None)` when `buf` does not
    /// yet hold a whole frame. After an error the stream cannot be resynchronised: close it.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if let Some(f) = self.pending.pop_front() {
            return Ok(Some(f));
        }
        if let Some(mut d) = self.data.take() {
            let done = d.take_from(buf, &self.limits, &mut self.examined)?;
            return Ok(self.data_step(done, d));
        }
        match parse(buf, &self.limits, false, &mut self.examined)? {
            Parsed::Incomplete => Ok(None),
            Parsed::Frame(f, used) => {
                buf.advance(used);
                Ok(Some(f))
            }
            Parsed::Json { seq, used } => {
                let payload = buf.split_to(used).freeze().slice(10..);
                Ok(Some(Frame::Json { seq, payload }))
            }
            Parsed::Compressed { start, len } => {
                let content = inflate(&buf[start..start + len], self.limits.max_decompressed)?;
                buf.advance(start + len);
                self.open_compressed(content)?;
                Ok(self.pending.pop_front())
            }
            Parsed::Data(mut d) => {
                buf.advance(10);
                let done = d.take_from(buf, &self.limits, &mut self.examined)?;
                Ok(self.data_step(done, d))
            }
        }
    }

    /// Returns the finished `D` frame, or keeps it for the next call.
    fn data_step(&mut self, done: bool, d: DataFrame) -> Option<Frame> {
        if done {
            return Some(d.finish());
        }
        self.data = Some(d);
        None
    }

    /// Whether frames taken out of a compressed frame are waiting.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether part of a frame was taken out of the buffer already (a stream ending now is
    /// cut in the middle of a frame even if the buffer is empty).
    pub fn in_frame(&self) -> bool {
        self.data.is_some()
    }

    /// Bytes the parser has read so far, counting the headers it looked at while a frame was
    /// incomplete: linear decoding keeps this below a small multiple of the bytes received plus
    /// a constant per call.
    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }

    fn open_compressed(&mut self, content: Vec<u8>) -> Result<(), ProtocolError> {
        // Payloads are slices of the one decompressed buffer: no copy per event.
        let content = Bytes::from(content);
        let mut at = 0;
        while at < content.len() {
            match parse(&content[at..], &self.limits, true, &mut self.examined)? {
                Parsed::Incomplete => return Err(ProtocolError::TruncatedInCompressed),
                Parsed::Compressed { .. } => return Err(ProtocolError::Nested),
                Parsed::Frame(f, used) => {
                    at += used;
                    self.pending.push_back(f);
                }
                Parsed::Json { seq, used } => {
                    let payload = content.slice(at + 10..at + used);
                    at += used;
                    self.pending.push_back(Frame::Json { seq, payload });
                }
                Parsed::Data(mut d) => {
                    at += 10;
                    let mut rest = &content[at..];
                    let before = rest.len();
                    if !d.take_from(&mut rest, &self.limits, &mut self.examined)? {
                        return Err(ProtocolError::TruncatedInCompressed);
                    }
                    at += before - rest.len();
                    self.pending.push_back(d.finish());
                }
            }
        }
        Ok(())
    }
}

impl DataFrame {
    /// Consumes every complete key and value at the start of `b`; true once the frame is whole.
    fn take_from<B: Buf>(
        &mut self,
        b: &mut B,
        limits: &Limits,
        examined: &mut u64,
    ) -> Result<bool, ProtocolError> {
        while self.left > 0 {
            let chunk = b.chunk();
            let Some(len) = be32(chunk, 0) else {
                // `BytesMut` and slices are contiguous: a short chunk means more bytes are needed.
                return Ok(false);
            };
            *examined += 4;
            self.total += 4 + u64::from(len);
            if self.total > limits.max_payload as u64 {
                return Err(ProtocolError::TooLarge {
                    what: "data frame",
                    size: self.total,
                    max: limits.max_payload,
                    setting: "max_message_size",
                });
            }
            let end = 4 + len as usize;
            if chunk.len() < end {
                // Not consumed: the length is read again (4 bytes) when more arrives.
                self.total -= 4 + u64::from(len);
                return Ok(false);
            }
            *examined += u64::from(len);
            let text = String::from_utf8_lossy(&chunk[4..end]).into_owned();
            b.advance(end);
            self.left -= 1;
            match self.key.take() {
                None => self.key = Some(text),
                Some(k) => self.pairs.push((k, text)),
            }
        }
        Ok(true)
    }

    fn finish(self) -> Frame {
        Frame::Data {
            seq: self.seq,
            pairs: self.pairs,
        }
    }
}

/// Parses one frame at the start of `b` without consuming it.
fn parse(
    b: &[u8],
    limits: &Limits,
    nested: bool,
    examined: &mut u64,
) -> Result<Parsed, ProtocolError> {
    let (Some(&version), Some(&kind)) = (b.first(), b.get(1)) else {
        if let Some(&v) = b.first()
            && v != VERSION_1
            && v != VERSION_2
        {
            return Err(ProtocolError::Version(v));
        }
        return Ok(Parsed::Incomplete);
    };
    if version != VERSION_1 && version != VERSION_2 {
        return Err(ProtocolError::Version(version));
    }
    // The fixed-size header is looked at on every call until the frame is whole; a payload is
    // looked at once, when the frame is taken out.
    *examined += b.len().min(10) as u64;
    match kind {
        WINDOW | ACK => {
            let Some(n) = be32(b, 2) else {
                return Ok(Parsed::Incomplete);
            };
            let f = if kind == WINDOW {
                Frame::Window(n)
            } else {
                Frame::Ack(n)
            };
            Ok(Parsed::Frame(f, 6))
        }
        JSON => {
            let (Some(seq), Some(len)) = (be32(b, 2), be32(b, 6)) else {
                return Ok(Parsed::Incomplete);
            };
            if len == 0 {
                return Err(ProtocolError::Empty("JSON data frame"));
            }
            check(
                len,
                limits.max_payload,
                "JSON data frame",
                "max_message_size",
            )?;
            let end = 10 + len as usize;
            if b.len() < end {
                return Ok(Parsed::Incomplete);
            }
            *examined += u64::from(len);
            Ok(Parsed::Json { seq, used: end })
        }
        DATA => {
            let (Some(seq), Some(count)) = (be32(b, 2), be32(b, 6)) else {
                return Ok(Parsed::Incomplete);
            };
            // Each pair needs at least 8 bytes of lengths: refuse impossible counts at once.
            check(
                count.saturating_mul(8),
                limits.max_payload,
                "data frame",
                "max_message_size",
            )?;
            Ok(Parsed::Data(DataFrame {
                seq,
                left: u64::from(count) * 2,
                pairs: Vec::with_capacity((count as usize).min(1024)),
                key: None,
                total: 0,
            }))
        }
        COMPRESSED => {
            if nested {
                return Err(ProtocolError::Nested);
            }
            let Some(len) = be32(b, 2) else {
                return Ok(Parsed::Incomplete);
            };
            if len == 0 {
                return Err(ProtocolError::Empty("compressed frame"));
            }
            check(
                len,
                limits.max_decompressed,
                "compressed frame",
                "max_batch_size",
            )?;
            let len = len as usize;
            if b.len() < 6 + len {
                return Ok(Parsed::Incomplete);
            }
            *examined += len as u64;
            Ok(Parsed::Compressed { start: 6, len })
        }
        other => Err(ProtocolError::FrameType(other)),
    }
}

fn check(
    len: u32,
    max: usize,
    what: &'static str,
    setting: &'static str,
) -> Result<(), ProtocolError> {
    if u64::from(len) > max as u64 {
        return Err(ProtocolError::TooLarge {
            what,
            size: u64::from(len),
            max,
            setting,
        });
    }
    Ok(())
}

/// Decompresses a zlib stream, refusing to produce more than `max` bytes.
fn inflate(data: &[u8], max: usize) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(max));
    let mut z = flate2::read::ZlibDecoder::new(data).take(max as u64 + 1);
    z.read_to_end(&mut out)
        .map_err(|e| ProtocolError::Zlib(e.to_string()))?;
    if out.len() > max {
        return Err(ProtocolError::TooLarge {
            what: "decompressed content of a compressed frame",
            size: out.len() as u64,
            max,
            setting: "max_batch_size",
        });
    }
    Ok(out)
}

/// Parses a server's reply as an ACK frame.
pub fn parse_ack(b: &[u8; ACK_LEN]) -> Result<u32, ProtocolError> {
    if b[0] != VERSION_2 && b[0] != VERSION_1 {
        return Err(ProtocolError::Version(b[0]));
    }
    if b[1] != ACK {
        return match b[1] {
            WINDOW | JSON | DATA | COMPRESSED => {
                Err(ProtocolError::Unexpected(frame_name(b[1]), "server"))
            }
            k => Err(ProtocolError::FrameType(k)),
        };
    }
    Ok(u32::from_be_bytes([b[2], b[3], b[4], b[5]]))
}

fn frame_name(kind: u8) -> &'static str {
    match kind {
        WINDOW => "window",
        JSON => "JSON data",
        DATA => "data",
        COMPRESSED => "compressed",
        ACK => "ACK",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits {
            max_payload: 1024,
            max_decompressed: 8192,
        }
    }

    fn decode_all(bytes: &[u8], limits: Limits) -> Result<Vec<Frame>, ProtocolError> {
        let mut d = Decoder::new(limits);
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = d.decode(&mut buf)? {
            out.push(f);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(out)
    }

    fn window(level: u32, docs: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        WindowEncoder::new(level).encode(&mut out, docs.len() as u32, |i, b| {
            b.extend_from_slice(docs[i].as_bytes())
        });
        out
    }

    #[test]
    fn plain_and_compressed_windows_round_trip() {
        for level in [0, 1, 3, 9] {
            let frames = decode_all(&window(level, &[r#"{"a":1}"#, r#"{"b":2}"#]), lim()).unwrap();
            assert_eq!(
                frames,
                vec![
                    Frame::Window(2),
                    Frame::Json {
                        seq: 1,
                        payload: Bytes::from_static(br#"{"a":1}"#)
                    },
                    Frame::Json {
                        seq: 2,
                        payload: Bytes::from_static(br#"{"b":2}"#)
                    },
                ],
                "level {level}"
            );
        }
    }

    #[test]
    fn byte_by_byte_feeding_gives_the_same_frames() {
        let bytes = window(3, &[r#"{"a":1}"#, r#"{"message":"x"}"#]);
        let mut d = Decoder::new(lim());
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in bytes {
            buf.extend_from_slice(&[b]);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 3);
    }

    #[test]
    fn legacy_data_frames_decode() {
        let mut b = vec![VERSION_1, DATA];
        b.extend_from_slice(&7u32.to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        for s in ["line", "hello", "host", "h\u{e9}"] {
            b.extend_from_slice(&(s.len() as u32).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        let frames = decode_all(&b, lim()).unwrap();
        assert_eq!(
            frames,
            vec![Frame::Data {
                seq: 7,
                pairs: vec![
                    ("line".into(), "hello".into()),
                    ("host".into(), "h\u{e9}".into())
                ]
            }]
        );
    }

    /// `inner` in one `C` frame.
    fn compressed(inner: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(inner).unwrap();
        let packed = z.finish().unwrap();
        let mut b = vec![VERSION_2, COMPRESSED];
        b.extend_from_slice(&(packed.len() as u32).to_be_bytes());
        b.extend_from_slice(&packed);
        b
    }

    fn data_frame(seq: u32, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut b = vec![VERSION_1, DATA];
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
        for (k, v) in pairs {
            for s in [k, v] {
                b.extend_from_slice(&(s.len() as u32).to_be_bytes());
                b.extend_from_slice(s.as_bytes());
            }
        }
        b
    }

    /// Regression guard for the quadratic re-walk of a `D` frame from byte 0 after every read:
    /// a 1 MiB frame of 20,000 pairs trickled one byte at a time is decoded once, and the
    /// parser reads each byte about once (plus a constant per call).
    #[test]
    fn a_large_data_frame_trickled_byte_by_byte_is_decoded_in_linear_work() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("key-{i}")).collect();
        let values: Vec<String> = (0..20_000).map(|i| format!("{i:0>40}")).collect();
        let pairs: Vec<(&str, &str)> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let bytes = data_frame(9, &pairs);
        assert!(bytes.len() > 1 << 20);
        let limits = Limits {
            max_payload: 4 << 20,
            max_decompressed: 4 << 20,
        };
        let mut d = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut calls = 0u64;
        for &b in &bytes {
            buf.extend_from_slice(&[b]);
            calls += 1;
            if let Some(f) = d.decode(&mut buf).unwrap() {
                frames.push(f);
            }
            assert!(buf.len() <= 64, "whole strings are taken out of the buffer");
        }
        assert!(!d.in_frame() && buf.is_empty());
        let [Frame::Data { seq: 9, pairs: got }] = &frames[..] else {
            panic!("{frames:?}");
        };
        assert_eq!(got.len(), 20_000);
        assert_eq!(got[19_999], ("key-19999".into(), values[19_999].clone()));
        // The old decoder read the frame from its start on every call: about n^2/2 bytes here.
        let work = d.bytes_examined();
        let bound = 2 * bytes.len() as u64 + 10 * calls;
        assert!(work <= bound, "examined {work} bytes, more than {bound}");
    }

    #[test]
    fn data_frames_inside_compressed_frames_and_cut_ones() {
        let mut inner = data_frame(1, &[("line", "a"), ("host", "b")]);
        inner.extend_from_slice(&data_frame(2, &[("line", "c")]));
        let mut b = vec![VERSION_2, WINDOW, 0, 0, 0, 2];
        b.extend_from_slice(&compressed(&inner));
        let frames = decode_all(&b, lim()).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(
            frames[2],
            Frame::Data {
                seq: 2,
                pairs: vec![("line".into(), "c".into())]
            }
        );
        // A compressed frame ending inside a D frame's strings.
        assert_eq!(
            decode_all(&compressed(&inner[..inner.len() - 3]), lim()).unwrap_err(),
            ProtocolError::TruncatedInCompressed
        );
        // On the wire, a frame cut after its first string leaves the decoder inside a frame.
        let whole = data_frame(3, &[("line", "hello")]);
        let mut d = Decoder::new(lim());
        let mut buf = BytesMut::from(&whole[..whole.len() - 2]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert!(d.in_frame());
        buf.extend_from_slice(&whole[whole.len() - 2..]);
        assert!(matches!(
            d.decode(&mut buf).unwrap(),
            Some(Frame::Data { seq: 3, .. })
        ));
        assert!(!d.in_frame());
    }

    #[test]
    fn a_data_frame_growing_past_the_limit_is_refused_as_it_arrives() {
        let big = "x".repeat(600);
        let bytes = data_frame(1, &[("a", &big), ("b", &big)]);
        let mut d = Decoder::new(lim());
        let mut buf = BytesMut::new();
        let mut err = None;
        for chunk in bytes.chunks(100) {
            buf.extend_from_slice(chunk);
            match d.decode(&mut buf) {
                Ok(f) => assert_eq!(f, None),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert!(
            matches!(
                err,
                Some(ProtocolError::TooLarge {
                    what: "data frame",
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn oversize_frames_are_refused_before_buffering() {
        let mut b = vec![VERSION_2, JSON];
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&4096u32.to_be_bytes());
        // Only the header is there: the length alone is enough to refuse.
        let err = decode_all(&b, lim()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "JSON data frame of 4096 bytes is larger than the limit of 1024 bytes (max_message_size)"
        );
        let mut b = vec![VERSION_2, COMPRESSED];
        b.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_all(&b, lim()),
            Err(ProtocolError::TooLarge { .. })
        ));
        let mut b = vec![VERSION_1, DATA, 0, 0, 0, 1];
        b.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_all(&b, lim()),
            Err(ProtocolError::TooLarge { .. })
        ));
    }

    #[test]
    fn zip_bombs_stop_at_the_limit() {
        // 1 MiB of zeros compresses to about 1 KiB, well under the compressed limit.
        let mut frames = Vec::new();
        write_json_frame(&mut frames, 1, |b| b.resize(b.len() + (1 << 20), b'0'));
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&frames).unwrap();
        let packed = z.finish().unwrap();
        assert!(packed.len() < 8192);
        let mut b = vec![VERSION_2, COMPRESSED];
        b.extend_from_slice(&(packed.len() as u32).to_be_bytes());
        b.extend_from_slice(&packed);
        let err = decode_all(&b, lim()).unwrap_err();
        assert!(
            err.to_string()
                .contains("decompressed content of a compressed frame")
                && err.to_string().contains("max_batch_size"),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_named() {
        assert_eq!(
            decode_all(b"GET / HTTP/1.1\r\n", lim()).unwrap_err(),
            ProtocolError::Version(b'G')
        );
        assert_eq!(
            decode_all(b"2X", lim()).unwrap_err(),
            ProtocolError::FrameType(b'X')
        );
        let mut b = vec![VERSION_2, COMPRESSED, 0, 0, 0, 4];
        b.extend_from_slice(b"junk");
        assert!(matches!(decode_all(&b, lim()), Err(ProtocolError::Zlib(_))));
        // A compressed frame holding half a frame.
        assert_eq!(
            decode_all(&compressed(&[VERSION_2, JSON, 0, 0]), lim()).unwrap_err(),
            ProtocolError::TruncatedInCompressed
        );
        assert!(
            ProtocolError::Version(b'G')
                .to_string()
                .contains("is the peer speaking lumberjack")
        );
    }

    #[test]
    fn nested_compression_is_refused() {
        let inner = window(1, &["{}"]);
        assert_eq!(
            decode_all(&compressed(&inner[6..]), lim()).unwrap_err(),
            ProtocolError::Nested
        );
    }

    #[test]
    fn acks() {
        assert_eq!(parse_ack(&ack_frame(42)), Ok(42));
        let mut v = Vec::new();
        write_ack(&mut v, 7);
        assert_eq!(decode_all(&v, lim()).unwrap(), vec![Frame::Ack(7)]);
        assert!(matches!(
            parse_ack(b"HTTP/1"),
            Err(ProtocolError::Version(b'H'))
        ));
        assert!(matches!(
            parse_ack(&[VERSION_2, WINDOW, 0, 0, 0, 1]),
            Err(ProtocolError::Unexpected("window", "server"))
        ));
    }
}
