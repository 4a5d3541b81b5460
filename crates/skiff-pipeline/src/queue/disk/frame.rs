//! The record format of segment files, and a reader that finds its way past damage.
//!
//! Every record is one frame:
//!
//! ```text
//! magic (4 bytes: F5 'S' 'Q' version) | length (u32 LE) | crc32 (u32 LE, of length bytes + payload) | payload
//! ```
//!
//! The magic lets a reader resynchronise after a damaged record: it searches for the next magic
//! whose frame checks out, so one bad record never hides the good ones after it. `0xF5` never
//! occurs in UTF-8 text; in the binary fields of format 2 it may, and such a false marker is
//! rejected by its checksum like any other damage.
//!
//! Format 2 (written since the binary encoding; version byte `02`), payloads by first byte:
//! * `1` shared fields: `id (u32 LE) | JSON object`. An event's fields shared with every event of
//!   its source (`agent`, `host`, `log.file.path`, ...) are written once per segment and
//!   referred to by id, as in memory (the `Arc` is shared again after a replay).
//! * `2` event: `seq (u64 LE) | shared id (u32 LE) | queued at, ms since the epoch (u64 LE) |
//!   @timestamp ns (i64 LE) | flags (u8) | [log.offset u64 LE] | [message: len u32 LE + UTF-8] |
//!   [fields: len u32 LE + JSON] | [@metadata: len u32 LE + JSON]`, each bracketed part present
//!   when its flag bit (1 offset, 2 message, 4 fields, 8 @metadata) is set. A plain log line is
//!   a copy of its message and a few integers: no JSON on either side.
//!
//! Format 1 (version byte `01`, written before) is read as well, so a queue left by an older
//! skiff is replayed after an upgrade: the same frames, with an event's body after the queued-at
//! time as JSON `{t, m, o, f, x}` (timestamp in ns, message, log.offset, fields, @metadata).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use skiff_event::{Event, Map, Timestamp};

/// The format written: version byte of [`MAGIC`].
pub(crate) const VERSION: u8 = 2;
/// Starts every frame written now.
pub(crate) const MAGIC: [u8; 4] = [0xF5, b'S', b'Q', VERSION];
/// Format 1, read for queues written by an older skiff.
const VERSION_1: u8 = 1;
/// magic + length + crc.
pub(crate) const HEADER: usize = 12;
/// The largest payload accepted: a larger event is refused when pushed, and a length field
/// larger than this is damage.
pub(crate) const MAX_PAYLOAD: usize = 64 << 20;

const KIND_SHARED: u8 = 1;
const KIND_EVENT: u8 = 2;

const HAS_OFFSET: u8 = 1;
const HAS_MESSAGE: u8 = 2;
const HAS_FIELDS: u8 = 4;
const HAS_META: u8 = 8;

/// A frame marker of a format this build reads.
fn is_magic(m: &[u8]) -> bool {
    m.len() == 4 && m[..3] == MAGIC[..3] && (m[3] == VERSION || m[3] == VERSION_1)
}

/// Format 1's event body.
#[derive(Deserialize)]
struct BodyV1 {
    t: i64,
    #[serde(default)]
    m: Option<String>,
    #[serde(default)]
    o: Option<u64>,
    #[serde(default)]
    f: Map,
    #[serde(default)]
    x: Map,
}

fn frame(
    out: &mut Vec<u8>,
    write_payload: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; 8]);
    if let Err(e) = write_payload(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - HEADER;
    if len > MAX_PAYLOAD {
        out.truncate(start);
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the event is {len} bytes encoded, more than the disk queue's limit of {MAX_PAYLOAD}"
            ),
        ));
    }
    let len_le = (len as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len_le);
    h.update(&out[start + HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&len_le);
    out[start + 8..start + 12].copy_from_slice(&h.finalize().to_le_bytes());
    Ok(())
}

/// Appends a shared-fields frame.
pub(crate) fn put_shared(out: &mut Vec<u8>, id: u32, map: &Map) -> io::Result<()> {
    frame(out, |o| {
        o.push(KIND_SHARED);
        o.extend_from_slice(&id.to_le_bytes());
        serde_json::to_writer(&mut *o, map).map_err(io::Error::other)
    })
}

/// Appends `len u32 LE | bytes`; the frame limit is checked on the whole payload afterwards,
/// a part that cannot even be described by a `u32` is refused here.
fn put_bytes(o: &mut Vec<u8>, b: &[u8]) -> io::Result<()> {
    let len = u32::try_from(b.len()).map_err(|_| io::Error::other("a field too large"))?;
    o.extend_from_slice(&len.to_le_bytes());
    o.extend_from_slice(b);
    Ok(())
}

/// Appends `len u32 LE | JSON of map`.
fn put_map(o: &mut Vec<u8>, map: &Map) -> io::Result<()> {
    let at = o.len();
    o.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut *o, map).map_err(io::Error::other)?;
    let len = u32::try_from(o.len() - at - 4).map_err(|_| io::Error::other("a field too large"))?;
    o[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Appends an event frame.
pub(crate) fn put_event(
    out: &mut Vec<u8>,
    seq: u64,
    shared: u32,
    queued_ms: u64,
    ev: &Event,
) -> io::Result<()> {
    frame(out, |o| {
        let flags = if ev.offset.is_some() { HAS_OFFSET } else { 0 }
            | if ev.message.is_some() { HAS_MESSAGE } else { 0 }
            | if ev.fields.is_empty() { 0 } else { HAS_FIELDS }
            | if ev.meta.is_empty() { 0 } else { HAS_META };
        o.reserve(38 + ev.message.as_ref().map_or(0, String::len));
        o.push(KIND_EVENT);
        o.extend_from_slice(&seq.to_le_bytes());
        o.extend_from_slice(&shared.to_le_bytes());
        o.extend_from_slice(&queued_ms.to_le_bytes());
        o.extend_from_slice(&ev.timestamp.0.to_le_bytes());
        o.push(flags);
        if let Some(off) = ev.offset {
            o.extend_from_slice(&off.to_le_bytes());
        }
        if let Some(m) = &ev.message {
            put_bytes(o, m.as_bytes())?;
        }
        if !ev.fields.is_empty() {
            put_map(o, &ev.fields)?;
        }
        if !ev.meta.is_empty() {
            put_map(o, &ev.meta)?;
        }
        Ok(())
    })
}

/// A decoded payload.
pub(crate) enum Record {
    /// Shared fields `id` of the current segment.
    Shared(u32, Map),
    /// An event; its shared fields are to be looked up by id.
    Event {
        seq: u64,
        shared: u32,
        queued_ms: u64,
        event: Event,
    },
}

/// The sequence number of an event payload without decoding the rest (same place in both
/// formats).
pub(crate) fn event_seq(payload: &[u8]) -> Option<u64> {
    if payload.first() != Some(&KIND_EVENT) {
        return None;
    }
    Some(u64::from_le_bytes(payload.get(1..9)?.try_into().ok()?))
}

/// Decodes a payload of format `version` whose checksum was good. An error here means a bug or
/// a foreign file; never a panic, whatever the bytes.
pub(crate) fn decode(version: u8, payload: &[u8]) -> Result<Record, String> {
    match payload.first() {
        Some(&KIND_SHARED) => {
            let id = u32::from_le_bytes(le(payload, 1)?);
            let map = serde_json::from_slice(&payload[5..]).map_err(|e| e.to_string())?;
            Ok(Record::Shared(id, map))
        }
        Some(&KIND_EVENT) => {
            let seq = u64::from_le_bytes(le(payload, 1)?);
            let shared = u32::from_le_bytes(le(payload, 9)?);
            let queued_ms = u64::from_le_bytes(le(payload, 13)?);
            let event = match version {
                VERSION_1 => decode_body_v1(&payload[21..])?,
                _ => decode_body(payload, 21)?,
            };
            Ok(Record::Event {
                seq,
                shared,
                queued_ms,
                event,
            })
        }
        k => Err(format!("unknown record kind {k:?}")),
    }
}

fn decode_body_v1(body: &[u8]) -> Result<Event, String> {
    let b: BodyV1 = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(event(Timestamp(b.t), b.m, b.o, b.f, b.x))
}

fn event(t: Timestamp, message: Option<String>, offset: Option<u64>, f: Map, x: Map) -> Event {
    Event {
        timestamp: t,
        message,
        offset,
        fields: f,
        meta: x,
        shared: Arc::new(Map::new()),
        ack: None,
    }
}

fn decode_body(p: &[u8], at: usize) -> Result<Event, String> {
    let t = i64::from_le_bytes(le(p, at)?);
    let flags = *p.get(at + 8).ok_or("record too short")?;
    if flags & !(HAS_OFFSET | HAS_MESSAGE | HAS_FIELDS | HAS_META) != 0 {
        return Err(format!("unknown event flags {flags:#x}"));
    }
    let mut at = at + 9;
    let offset = if flags & HAS_OFFSET != 0 {
        at += 8;
        Some(u64::from_le_bytes(le(p, at - 8)?))
    } else {
        None
    };
    let message = if flags & HAS_MESSAGE != 0 {
        let b = part(p, &mut at)?;
        Some(
            std::str::from_utf8(b)
                .map_err(|e| format!("message: {e}"))?
                .to_owned(),
        )
    } else {
        None
    };
    let mut map = |bit: u8| -> Result<Map, String> {
        if flags & bit == 0 {
            return Ok(Map::new());
        }
        serde_json::from_slice(part(p, &mut at)?).map_err(|e| e.to_string())
    };
    let fields = map(HAS_FIELDS)?;
    let meta = map(HAS_META)?;
    if at != p.len() {
        return Err("trailing bytes after an event".into());
    }
    Ok(event(Timestamp(t), message, offset, fields, meta))
}

/// The `len u32 LE | bytes` part at `*at`, moving `*at` past it.
fn part<'a>(p: &'a [u8], at: &mut usize) -> Result<&'a [u8], String> {
    let len = u32::from_le_bytes(le(p, *at)?) as usize;
    let start = *at + 4;
    let b = p
        .get(start..start.saturating_add(len))
        .ok_or("a field length past the end of the record")?;
    *at = start + len;
    Ok(b)
}

fn le<const N: usize>(p: &[u8], at: usize) -> Result<[u8; N], String> {
    p.get(at..at.saturating_add(N))
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| "record too short".to_string())
}

/// What [`FrameReader::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A good frame starting at this offset; its payload is in the scratch buffer.
    Frame(u64),
    /// Damage at this offset.
    Bad(u64, &'static str),
    /// The readable end.
    End,
}

/// Reads frames of one segment file sequentially, never past a given end.
pub(crate) struct FrameReader {
    r: BufReader<File>,
    pos: u64,
    /// The format of the last good frame.
    version: u8,
}

impl FrameReader {
    /// Opens `path` positioned at `pos`.
    pub(crate) fn open(path: &Path, pos: u64) -> io::Result<Self> {
        let f = File::open(path)?;
        let mut r = BufReader::with_capacity(256 << 10, f);
        r.seek(SeekFrom::Start(pos))?;
        Ok(FrameReader {
            r,
            pos,
            version: VERSION,
        })
    }

    /// The format version of the last frame [`next`](Self::next) returned.
    pub(crate) fn version(&self) -> u8 {
        self.version
    }

    /// The offset of the next frame.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Reads the next frame ending at or before `end`. After `Bad`, call [`resync`](Self::resync).
    pub(crate) fn next(&mut self, end: u64, scratch: &mut Vec<u8>) -> io::Result<Next> {
        let at = self.pos;
        if at >= end {
            return Ok(Next::End);
        }
        if end - at < HEADER as u64 {
            return Ok(Next::Bad(at, "a record header cut short"));
        }
        let mut h = [0u8; HEADER];
        self.r.read_exact(&mut h)?;
        self.pos += HEADER as u64;
        if !is_magic(&h[..4]) {
            return Ok(Next::Bad(at, "no record marker"));
        }
        let len_le: [u8; 4] = [h[4], h[5], h[6], h[7]];
        let len = u32::from_le_bytes(len_le) as usize;
        if len > MAX_PAYLOAD || len as u64 > end - self.pos {
            return Ok(Next::Bad(
                at,
                "a record length past the end (record cut short)",
            ));
        }
        scratch.clear();
        scratch.resize(len, 0);
        self.r.read_exact(scratch)?;
        self.pos += len as u64;
        let mut c = crc32fast::Hasher::new();
        c.update(&len_le);
        c.update(scratch);
        if c.finalize().to_le_bytes() != [h[8], h[9], h[10], h[11]] {
            return Ok(Next::Bad(at, "a checksum mismatch"));
        }
        self.version = h[3];
        Ok(Next::Frame(at))
    }

    /// After damage at `bad`, finds the next good frame before `end` and positions there.
    /// `None`: no good frame follows (the rest is a torn tail).
    pub(crate) fn resync(
        &mut self,
        bad: u64,
        end: u64,
        scratch: &mut Vec<u8>,
    ) -> io::Result<Option<u64>> {
        let mut from = bad + 1;
        let mut chunk = vec![0u8; 64 << 10];
        while from + (HEADER as u64) <= end {
            self.seek_hard(from)?;
            let want = ((end - from) as usize).min(chunk.len());
            self.r.read_exact(&mut chunk[..want])?;
            self.pos += want as u64;
            let hits: Vec<u64> = chunk[..want]
                .windows(4)
                .enumerate()
                .filter(|(_, w)| is_magic(w))
                .map(|(i, _)| from + i as u64)
                .collect();
            for q in hits {
                self.seek_hard(q)?;
                if let Next::Frame(_) = self.next(end, scratch)? {
                    self.seek_hard(q)?;
                    return Ok(Some(q));
                }
            }
            if want < chunk.len() {
                break;
            }
            // Overlap so that a marker across the chunk boundary is seen.
            from += (want - 3) as u64;
        }
        Ok(None)
    }

    /// Positions at `pos`, the start of a frame.
    pub(crate) fn seek(&mut self, pos: u64) -> io::Result<()> {
        self.seek_hard(pos)
    }

    fn seek_hard(&mut self, pos: u64) -> io::Result<()> {
        self.r.seek(SeekFrom::Start(pos))?;
        self.pos = pos;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ev(i: u64) -> Event {
        let mut e = Event::new(Arc::new(Map::new()), format!("line {i} \"quoted\" \u{e9}"));
        e.offset = Some(i);
        e.timestamp = Timestamp(1_700_000_000_123_456_789 + i as i64);
        e.insert("json.level", serde_json::json!("warn"));
        e.insert("@metadata.pipeline", serde_json::json!("p1"));
        e
    }

    fn read_all(path: &Path, end: u64) -> (Vec<u64>, usize) {
        let mut r = FrameReader::open(path, 0).unwrap();
        let mut s = Vec::new();
        let (mut seqs, mut bad) = (Vec::new(), 0);
        loop {
            match r.next(end, &mut s).unwrap() {
                Next::Frame(_) => {
                    if let Some(q) = event_seq(&s) {
                        seqs.push(q)
                    }
                }
                Next::Bad(at, _) => {
                    bad += 1;
                    if r.resync(at, end, &mut s).unwrap().is_none() {
                        break;
                    }
                }
                Next::End => break,
            }
        }
        (seqs, bad)
    }

    #[test]
    fn round_trip_and_resync_past_a_flipped_byte() {
        let mut buf = Vec::new();
        let mut shared = Map::new();
        shared.insert("host".into(), serde_json::json!({"name": "h"}));
        put_shared(&mut buf, 7, &shared).unwrap();
        let mut starts = Vec::new();
        for i in 1..=5 {
            starts.push(buf.len());
            put_event(&mut buf, i, 7, 99, &ev(i)).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::File::create(&p).unwrap().write_all(&buf).unwrap();
        let end = buf.len() as u64;
        assert_eq!(read_all(&p, end), (vec![1, 2, 3, 4, 5], 0));
        // Decode one.
        let mut r = FrameReader::open(&p, starts[2] as u64).unwrap();
        let mut s = Vec::new();
        assert_eq!(r.next(end, &mut s).unwrap(), Next::Frame(starts[2] as u64));
        match decode(VERSION, &s).unwrap() {
            Record::Event {
                seq,
                event,
                queued_ms,
                shared,
            } => {
                assert_eq!((seq, queued_ms, shared), (3, 99, 7));
                assert_eq!(event.message.as_deref(), Some("line 3 \"quoted\" \u{e9}"));
                assert_eq!(event.offset, Some(3));
                assert_eq!(event.timestamp, Timestamp(1_700_000_000_123_456_792));
                assert_eq!(event.fields, ev(3).fields);
                assert_eq!(event.meta, ev(3).meta);
            }
            _ => panic!("not an event"),
        }
        // Flip a byte inside record 3: 1, 2, 4, 5 survive.
        let mut bad = buf.clone();
        bad[starts[2] + 20] ^= 0x40;
        std::fs::write(&p, &bad).unwrap();
        assert_eq!(read_all(&p, end), (vec![1, 2, 4, 5], 1));
        // Damage the length field of record 2.
        let mut bad = buf.clone();
        bad[starts[1] + 6] = 0xff;
        std::fs::write(&p, &bad).unwrap();
        assert_eq!(read_all(&p, end), (vec![1, 3, 4, 5], 1));
    }

    mod fuzz {
        use super::super::*;
        use super::ev;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Checked frames can still hold anything (a foreign file, a bug): decoding them is
            /// an error, never a panic or a huge allocation.
            #[test]
            fn decoding_any_payload_never_panics(
                version in 0u8..4,
                kind in 0u8..4,
                rest in proptest::collection::vec(any::<u8>(), 0..96),
            ) {
                let mut p = vec![kind];
                p.extend_from_slice(&rest);
                let _ = decode(version, &p);
            }

            /// Same, for damaged copies of a real event payload (lengths and flags off).
            #[test]
            fn decoding_a_mangled_event_never_panics(at in 0usize..200, byte in any::<u8>()) {
                let mut buf = Vec::new();
                put_event(&mut buf, 9, 1, 2, &ev(3)).unwrap();
                let mut p = buf[HEADER..].to_vec();
                let at = at % p.len();
                p[at] = byte;
                let _ = decode(VERSION, &p);
                let _ = decode(VERSION, &p[..at]);
            }

            /// Every event comes back as it was written.
            #[test]
            fn events_round_trip(
                message in proptest::option::of(".{0,40}"),
                offset in proptest::option::of(any::<u64>()),
                t in any::<i64>(),
                field in proptest::option::of(".{0,8}"),
                meta in proptest::option::of(any::<u32>()),
                seq in any::<u64>(),
            ) {
                let mut e = Event::new(Arc::new(Map::new()), String::new());
                e.message = message.clone();
                e.offset = offset;
                e.timestamp = Timestamp(t);
                if let Some(f) = &field {
                    e.insert("a.b", serde_json::json!(f));
                }
                if let Some(m) = meta {
                    e.insert("@metadata.m", serde_json::json!(m));
                }
                let mut buf = Vec::new();
                put_event(&mut buf, seq, 5, 6, &e).unwrap();
                match decode(VERSION, &buf[HEADER..]).unwrap() {
                    Record::Event { seq: s, shared, queued_ms, event } => {
                        prop_assert_eq!((s, shared, queued_ms), (seq, 5, 6));
                        prop_assert_eq!(event.message, message);
                        prop_assert_eq!(event.offset, offset);
                        prop_assert_eq!(event.timestamp, Timestamp(t));
                        prop_assert_eq!(&event.fields, &e.fields);
                        prop_assert_eq!(&event.meta, &e.meta);
                    }
                    Record::Shared(..) => prop_assert!(false, "not an event"),
                }
            }
        }
    }
}
