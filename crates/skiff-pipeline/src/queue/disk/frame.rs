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
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, LazyLock};

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

/// The shared fields of a decoded event until the reader puts its source's in: one map for all,
/// so that decoding allocates nothing for it.
static NO_SHARED: LazyLock<Arc<Map>> = LazyLock::new(|| Arc::new(Map::new()));

fn event(t: Timestamp, message: Option<String>, offset: Option<u64>, f: Map, x: Map) -> Event {
    Event {
        timestamp: t,
        message,
        offset,
        fields: f,
        meta: x,
        shared: NO_SHARED.clone(),
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
    /// A good frame starting at this offset; its payload is [`FrameReader::payload`].
    Frame(u64),
    /// Damage at this offset.
    Bad(u64, &'static str),
    /// The readable end.
    End,
}

/// The read buffer's size: the file is read in chunks of this (or up to the readable end), and a
/// frame is checked and decoded where it lies in the buffer, without copying its payload out.
const CHUNK: usize = 256 << 10;
/// Bytes scanned at a time for the next frame marker after damage.
const SCAN: usize = 64 << 10;

/// Reads frames of one segment file sequentially, never past a given end.
pub(crate) struct FrameReader {
    file: File,
    /// Bytes read ahead: `buf[lo..hi]` is the file from `pos` on. `CHUNK` long, longer only while
    /// a frame larger than that is being read (at most [`MAX_PAYLOAD`] + [`HEADER`]).
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    /// The offset of the next frame (of `buf[lo]`).
    pos: u64,
    /// The payload of the last good frame in `buf`.
    payload: std::ops::Range<usize>,
    /// The format of the last good frame.
    version: u8,
}

impl FrameReader {
    /// Opens `path` positioned at `pos`.
    pub(crate) fn open(path: &Path, pos: u64) -> io::Result<Self> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(pos))?;
        Ok(FrameReader {
            file,
            buf: vec![0; CHUNK],
            lo: 0,
            hi: 0,
            pos,
            payload: 0..0,
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

    /// The payload of the frame the last [`next`](Self::next) returned as `Frame` (empty after
    /// anything else).
    pub(crate) fn payload(&self) -> &[u8] {
        self.buf.get(self.payload.clone()).unwrap_or_default()
    }

    /// Makes `need` bytes from `pos` available in `buf[lo..hi]`, reading no further than `end`
    /// (what the writer made visible; bytes past it may be a write in progress). The caller
    /// checked that `pos + need <= end`; a file shorter than that is an error, as `read_exact`'s.
    fn fill(&mut self, need: usize, end: u64) -> io::Result<()> {
        if self.hi - self.lo >= need {
            return Ok(());
        }
        // Keep the unread part (the start of a frame), at the front.
        self.buf.copy_within(self.lo..self.hi, 0);
        self.hi -= self.lo;
        self.lo = 0;
        if need > self.buf.len() {
            self.buf.resize(need, 0);
        } else if self.buf.len() > CHUNK && need <= CHUNK && self.hi <= CHUNK {
            // Past a large frame: back to the usual size.
            self.buf.truncate(CHUNK);
            self.buf.shrink_to_fit();
        }
        while self.hi < need {
            let file_at = self.pos + self.hi as u64;
            let limit = usize::try_from(end.saturating_sub(file_at)).unwrap_or(usize::MAX);
            let want = (self.buf.len() - self.hi).min(limit);
            if want == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            match self.file.read(&mut self.buf[self.hi..self.hi + want]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.hi += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves past `n` buffered bytes.
    fn consume(&mut self, n: usize) {
        self.lo += n;
        self.pos += n as u64;
    }

    /// Reads the next frame ending at or before `end`. After `Bad`, call [`resync`](Self::resync).
    pub(crate) fn next(&mut self, end: u64) -> io::Result<Next> {
        self.payload = 0..0;
        let at = self.pos;
        if at >= end {
            return Ok(Next::End);
        }
        if end - at < HEADER as u64 {
            return Ok(Next::Bad(at, "a record header cut short"));
        }
        self.fill(HEADER, end)?;
        let mut h = [0u8; HEADER];
        h.copy_from_slice(&self.buf[self.lo..self.lo + HEADER]);
        self.consume(HEADER);
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
        self.fill(len, end)?;
        let payload = self.lo..self.lo + len;
        self.consume(len);
        let mut c = crc32fast::Hasher::new();
        c.update(&len_le);
        c.update(&self.buf[payload.clone()]);
        if c.finalize().to_le_bytes() != [h[8], h[9], h[10], h[11]] {
            return Ok(Next::Bad(at, "a checksum mismatch"));
        }
        self.payload = payload;
        self.version = h[3];
        Ok(Next::Frame(at))
    }

    /// After damage at `bad`, finds the next good frame before `end` and positions there.
    /// `None`: no good frame follows (the rest is a torn tail).
    pub(crate) fn resync(&mut self, bad: u64, end: u64) -> io::Result<Option<u64>> {
        let mut from = bad + 1;
        while from + (HEADER as u64) <= end {
            self.seek(from)?;
            let want = usize::try_from(end - from).unwrap_or(usize::MAX).min(SCAN);
            self.fill(want, end)?;
            let hits: Vec<u64> = self.buf[self.lo..self.lo + want]
                .windows(4)
                .enumerate()
                .filter(|(_, w)| is_magic(w))
                .map(|(i, _)| from + i as u64)
                .collect();
            for q in hits {
                self.seek(q)?;
                if let Next::Frame(_) = self.next(end)? {
                    self.seek(q)?;
                    return Ok(Some(q));
                }
            }
            if want < SCAN {
                break;
            }
            // Overlap so that a marker across the chunk boundary is seen.
            from += (want - 3) as u64;
        }
        Ok(None)
    }

    /// Positions at `pos`, the start of a frame: within what is buffered without reading again.
    pub(crate) fn seek(&mut self, pos: u64) -> io::Result<()> {
        self.payload = 0..0;
        let buffered = (self.hi - self.lo) as u64;
        if pos >= self.pos && pos - self.pos <= buffered {
            self.consume((pos - self.pos) as usize);
            return Ok(());
        }
        self.file.seek(SeekFrom::Start(pos))?;
        self.pos = pos;
        self.lo = 0;
        self.hi = 0;
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
        let (mut seqs, mut bad) = (Vec::new(), 0);
        loop {
            match r.next(end).unwrap() {
                Next::Frame(_) => {
                    if let Some(q) = event_seq(r.payload()) {
                        seqs.push(q)
                    }
                }
                Next::Bad(at, _) => {
                    bad += 1;
                    if r.resync(at, end).unwrap().is_none() {
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
        assert_eq!(r.next(end).unwrap(), Next::Frame(starts[2] as u64));
        match decode(VERSION, r.payload()).unwrap() {
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

    /// Frames across read-buffer boundaries, one larger than the buffer, and a file that grows
    /// while it is read (the reader never reads past the end it is given, so bytes written later
    /// are read when the end moves, not taken from a stale buffer).
    #[test]
    fn reads_across_chunks_large_frames_and_a_growing_file() {
        let mut buf = Vec::new();
        let mut messages = Vec::new();
        for i in 1..=3000u64 {
            let len = if i == 1500 {
                3 * CHUNK
            } else {
                100 + (i as usize * 37) % 400
            };
            let m: String = (0..len)
                .map(|j| (b'a' + ((i as usize + j) % 26) as u8) as char)
                .collect();
            let mut e = Event::new(Arc::new(Map::new()), m.clone());
            e.offset = Some(i);
            put_event(&mut buf, i, 0, 0, &e).unwrap();
            messages.push(m);
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        // First only part of it, cut inside a frame: the reader stops at the given end.
        let cut = buf.len() / 3 + 5;
        std::fs::File::create(&p)
            .unwrap()
            .write_all(&buf[..cut])
            .unwrap();
        let mut r = FrameReader::open(&p, 0).unwrap();
        let mut got = 0usize;
        let mut visible = 0u64;
        let read_to = |r: &mut FrameReader, end: u64, got: &mut usize| loop {
            match r.next(end).unwrap() {
                Next::Frame(_) => {
                    let Record::Event { seq, event, .. } = decode(VERSION, r.payload()).unwrap()
                    else {
                        panic!("not an event")
                    };
                    *got += 1;
                    assert_eq!(seq, *got as u64);
                    assert_eq!(event.message.as_deref(), Some(messages[*got - 1].as_str()));
                }
                Next::End => return,
                Next::Bad(at, why) => panic!("bad frame at {at}: {why}"),
            }
        };
        // The end the writer would publish: the last whole frame before the cut.
        let mut at = 0usize;
        while at < cut {
            let len = u32::from_le_bytes(buf[at + 4..at + 8].try_into().unwrap()) as usize;
            if at + HEADER + len > cut {
                break;
            }
            at += HEADER + len;
            visible = at as u64;
        }
        read_to(&mut r, visible, &mut got);
        assert!(got > 0 && got < 3000, "read {got}");
        assert_eq!(r.pos(), visible);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(&buf[cut..])
            .unwrap();
        read_to(&mut r, buf.len() as u64, &mut got);
        assert_eq!(got, 3000);
        // Seeking back (outside the buffer) and forward (inside it) lands on frames.
        let end = buf.len() as u64;
        r.seek(0).unwrap();
        assert_eq!(r.next(end).unwrap(), Next::Frame(0));
        assert_eq!(event_seq(r.payload()), Some(1));
        r.next(end).unwrap();
        let third = r.pos();
        r.seek(0).unwrap();
        r.next(end).unwrap();
        r.seek(third).unwrap();
        assert_eq!(r.next(end).unwrap(), Next::Frame(third));
        assert_eq!(event_seq(r.payload()), Some(3));
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
