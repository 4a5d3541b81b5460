//! MongoDB wire protocol, as Packetbeat's `mongodb` protocol: the legacy opcodes and
//! OP_MSG (body and document-sequence sections), OP_COMPRESSED with the noop, snappy
//! (`snap`) and zlib (`flate2`) compressors.
//!
//! The framing (a 16-byte little-endian header: length, request id, response-to, opcode) is
//! hand-written; documents are decoded by the `bson` crate and shown as relaxed extended
//! JSON. OP_QUERY, OP_GET_MORE and OP_MSG without `moreToCome` wait for the reply whose
//! `responseTo` names their request id; other requests are events at once, without a
//! response. A reply seen before its request (capture order) waits for it.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Arc;

use bson::{Bson, Document};
use serde::Deserialize;
use skiff_config::ConfigError;
use skiff_event::Timestamp;

use crate::protocol::{
    BuildArgs, Cx, Dir, Protocol, ProtocolPlugin, Session, StreamBuf, Transaction, Transport,
    expired,
};
use crate::protocols::common::Common;

/// `type: mongodb`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "mongodb",
    tcp: true,
    udp: false,
    default_ports: &[27017],
    build,
};

/// The `mongodb` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongodbConfig {
    /// `max_docs` (default 10): documents kept for the `response` text (0: all).
    #[serde(default = "default_max_docs")]
    pub max_docs: usize,
    /// `max_doc_length` (default 5000): characters kept per document (0: all).
    #[serde(default = "default_max_doc_length")]
    pub max_doc_length: usize,
}

fn default_max_docs() -> usize {
    10
}
fn default_max_doc_length() -> usize {
    5000
}

struct Settings {
    cfg: MongodbConfig,
    common: Common,
}

struct Mongodb {
    cfg: Arc<Settings>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let cfg: MongodbConfig = args.own.deserialize()?;
    Ok(Arc::new(Mongodb {
        cfg: Arc::new(Settings {
            cfg,
            common: Common::of(args, &PLUGIN),
        }),
    }))
}

impl Protocol for Mongodb {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(MongoSession {
            cfg: self.cfg.clone(),
            requests: HashMap::new(),
            early: HashMap::new(),
        })
    }
}

/// The largest message MongoDB sends (48 MB).
const MAX_MESSAGE: usize = 48_000_000;
/// Requests (or early replies) waiting per connection.
const MAX_WAITING: usize = 1024;

const OP_REPLY: i32 = 1;
const OP_UPDATE: i32 = 2001;
const OP_INSERT: i32 = 2002;
const OP_QUERY: i32 = 2004;
const OP_GET_MORE: i32 = 2005;
const OP_DELETE: i32 = 2006;
const OP_KILL_CURSORS: i32 = 2007;
const OP_COMPRESSED: i32 = 2012;
const OP_MSG: i32 = 2013;

/// A decoded message, reduced to what the event needs.
#[derive(Default)]
struct Msg {
    ts: Timestamp,
    clock: Timestamp,
    bytes: u64,
    request_id: i32,
    response_to: i32,
    opcode: i32,
    method: String,
    resource: String,
    /// The parameters shown in `query`.
    params: String,
    fields: Vec<(&'static str, Bson)>,
    docs: Vec<Document>,
    /// Whether a reply is expected (requests).
    wants_reply: bool,
    error: Option<String>,
    notes: Vec<String>,
}

struct MongoSession {
    cfg: Arc<Settings>,
    requests: HashMap<i32, Msg>,
    early: HashMap<i32, Msg>,
}

/// Little-endian reader over a message body.
struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn i32(&mut self) -> Option<i32> {
        let v = i32::from_le_bytes(self.b.get(self.at..self.at + 4)?.try_into().ok()?);
        self.at += 4;
        Some(v)
    }
    fn i64(&mut self) -> Option<i64> {
        let v = i64::from_le_bytes(self.b.get(self.at..self.at + 8)?.try_into().ok()?);
        self.at += 8;
        Some(v)
    }
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }
    fn cstr(&mut self) -> Option<String> {
        let rest = self.b.get(self.at..)?;
        let n = rest.iter().position(|&c| c == 0)?;
        self.at += n + 1;
        Some(String::from_utf8_lossy(&rest[..n]).into_owned())
    }
    fn doc(&mut self) -> Option<Document> {
        let len = usize::try_from(i32::from_le_bytes(
            self.b.get(self.at..self.at + 4)?.try_into().ok()?,
        ))
        .ok()?;
        let raw = self.b.get(self.at..self.at.checked_add(len)?)?;
        if !shallow(raw) {
            return None;
        }
        let d = Document::from_reader(raw).ok()?;
        self.at += len;
        Some(d)
    }
    fn rest(&self) -> bool {
        self.at < self.b.len()
    }
}

/// Nesting deeper than this is refused before `bson` (which recurses) sees the document.
const MAX_NESTING: usize = 100;

/// Whether a raw document nests at most [`MAX_NESTING`] levels (walked without recursion).
fn shallow(raw: &[u8]) -> bool {
    let Ok(top) = bson::RawDocument::from_bytes(raw) else {
        return false;
    };
    let mut stack = vec![(top, 0usize)];
    while let Some((d, depth)) = stack.pop() {
        if depth > MAX_NESTING {
            return false;
        }
        for el in d.iter() {
            let Ok((_, v)) = el else { return false };
            match v {
                bson::RawBsonRef::Document(inner) => stack.push((inner, depth + 1)),
                bson::RawBsonRef::Array(a) => match bson::RawDocument::from_bytes(a.as_bytes()) {
                    Ok(inner) => stack.push((inner, depth + 1)),
                    Err(_) => return false,
                },
                bson::RawBsonRef::JavaScriptCodeWithScope(c) => stack.push((c.scope, depth + 1)),
                _ => {}
            }
        }
    }
    true
}

fn json(d: &Document) -> String {
    Bson::Document(d.clone()).into_relaxed_extjson().to_string()
}

/// The command of a command document: its first key, and the collection it names (when the
/// value is a string).
fn command(d: &Document) -> Option<(String, Option<String>)> {
    let (k, v) = d.iter().next()?;
    Some((k.clone(), v.as_str().map(str::to_owned)))
}

/// An error a reply document reports (`$err`, or `ok: 0` with `errmsg`).
fn doc_error(d: &Document) -> Option<String> {
    if let Ok(e) = d.get_str("$err") {
        return Some(e.to_owned());
    }
    let ok = match d.get("ok") {
        Some(Bson::Double(f)) => *f != 0.0,
        Some(Bson::Int32(i)) => *i != 0,
        Some(Bson::Int64(i)) => *i != 0,
        Some(Bson::Boolean(b)) => *b,
        _ => true,
    };
    if !ok {
        return Some(d.get_str("errmsg").unwrap_or("ok: 0").to_owned());
    }
    // A write command answers ok: 1 with the failed writes listed.
    if let Ok(errs) = d.get_array("writeErrors")
        && let Some(Bson::Document(first)) = errs.first()
    {
        return Some(first.get_str("errmsg").unwrap_or("write error").to_owned());
    }
    None
}

/// Decodes a message body (after the 16-byte header) of `opcode`.
fn decode_body(m: &mut Msg, opcode: i32, body: &[u8], depth: u8) -> Option<()> {
    let mut r = Rd { b: body, at: 0 };
    m.opcode = opcode;
    match opcode {
        OP_REPLY => {
            let _flags = r.i32()?;
            let cursor = r.i64()?;
            let starting = r.i32()?;
            let returned = r.i32()?;
            m.fields.push(("cursorId", Bson::Int64(cursor)));
            m.fields.push(("startingFrom", Bson::Int32(starting)));
            m.fields.push(("numberReturned", Bson::Int32(returned)));
            while r.rest() {
                m.docs.push(r.doc()?);
            }
            m.error = m.docs.first().and_then(doc_error);
        }
        OP_QUERY => {
            let _flags = r.i32()?;
            let name = r.cstr()?;
            let skip = r.i32()?;
            let ret = r.i32()?;
            let query = r.doc()?;
            m.fields
                .push(("fullCollectionName", Bson::String(name.clone())));
            m.fields.push(("numberToSkip", Bson::Int32(skip)));
            m.fields.push(("numberToReturn", Bson::Int32(ret)));
            m.fields.push(("query", Bson::String(json(&query))));
            if r.rest()
                && let Some(sel) = r.doc()
            {
                m.fields
                    .push(("returnFieldsSelector", Bson::String(json(&sel))));
            }
            match name.strip_suffix(".$cmd") {
                Some(db) => {
                    let (cmd, coll) = command(&query).unwrap_or_default();
                    m.method = cmd;
                    m.resource = match coll {
                        Some(c) => format!("{db}.{c}"),
                        None => name.clone(),
                    };
                }
                None => {
                    m.method = "find".into();
                    m.resource = name;
                }
            }
            m.params = json(&query);
            m.wants_reply = true;
        }
        OP_GET_MORE => {
            let _zero = r.i32()?;
            let name = r.cstr()?;
            let ret = r.i32()?;
            let cursor = r.i64()?;
            m.fields
                .push(("fullCollectionName", Bson::String(name.clone())));
            m.fields.push(("numberToReturn", Bson::Int32(ret)));
            m.fields.push(("cursorId", Bson::Int64(cursor)));
            m.method = "getMore".into();
            m.resource = name;
            m.wants_reply = true;
        }
        OP_INSERT => {
            let _flags = r.i32()?;
            let name = r.cstr()?;
            let mut n = 0;
            while r.rest() {
                r.doc()?;
                n += 1;
            }
            m.fields
                .push(("fullCollectionName", Bson::String(name.clone())));
            m.method = "insert".into();
            m.params = format!("{n} documents");
            m.resource = name;
        }
        OP_UPDATE | OP_DELETE => {
            let _zero = r.i32()?;
            let name = r.cstr()?;
            let _flags = r.i32()?;
            let selector = r.doc()?;
            m.fields
                .push(("fullCollectionName", Bson::String(name.clone())));
            m.fields.push(("selector", Bson::String(json(&selector))));
            m.params = json(&selector);
            if opcode == OP_UPDATE {
                let update = r.doc()?;
                m.fields.push(("update", Bson::String(json(&update))));
                m.method = "update".into();
            } else {
                m.method = "delete".into();
            }
            m.resource = name;
        }
        OP_KILL_CURSORS => {
            let _zero = r.i32()?;
            let n = r.i32()?;
            let mut ids = Vec::new();
            for _ in 0..n.clamp(0, 1024) {
                ids.push(Bson::Int64(r.i64()?));
            }
            m.fields.push(("cursorId", Bson::Array(ids)));
            m.method = "killCursors".into();
        }
        OP_MSG => {
            let flags = r.i32()? as u32;
            let end = if flags & 1 != 0 {
                body.len().checked_sub(4)?
            } else {
                body.len()
            };
            let mut body_doc = None;
            while r.at < end {
                match r.u8()? {
                    0 => body_doc = Some(r.doc()?),
                    1 => {
                        let start = r.at;
                        let size = usize::try_from(r.i32()?).ok()?;
                        let stop = start.checked_add(size)?;
                        if stop > end {
                            return None;
                        }
                        let id = r.cstr()?;
                        let mut seq = Vec::new();
                        while r.at < stop {
                            seq.push(Bson::Document(r.doc()?));
                        }
                        if let Some(d) = &mut body_doc {
                            d.insert(id, Bson::Array(seq));
                        } else {
                            m.docs.extend(seq.into_iter().filter_map(|b| match b {
                                Bson::Document(d) => Some(d),
                                _ => None,
                            }));
                        }
                    }
                    _ => return None,
                }
            }
            let body_doc = body_doc?;
            let (cmd, coll) = command(&body_doc).unwrap_or_default();
            let db = body_doc.get_str("$db").unwrap_or("").to_owned();
            m.method = cmd;
            m.resource = match coll {
                Some(c) if !db.is_empty() => format!("{db}.{c}"),
                Some(c) => c,
                None => db,
            };
            m.params = json(&body_doc);
            m.error = doc_error(&body_doc);
            m.wants_reply = flags & 2 == 0;
            m.docs.insert(0, body_doc);
        }
        OP_COMPRESSED if depth == 0 => {
            let original = r.i32()?;
            let size = usize::try_from(r.i32()?).ok()?;
            if size > MAX_MESSAGE {
                return None;
            }
            let id = r.u8()?;
            let data = body.get(r.at..)?;
            let plain = match id {
                0 => data.to_vec(),
                1 => {
                    // Snappy expands at most ~32 times: a larger claim is a lie.
                    if snap::raw::decompress_len(data).ok()? != size
                        || size > data.len().saturating_mul(32) + 64
                    {
                        return None;
                    }
                    snap::raw::Decoder::new().decompress_vec(data).ok()?
                }
                2 => {
                    let mut out = Vec::with_capacity(size.min(1 << 20));
                    flate2::read::ZlibDecoder::new(data)
                        .take(size as u64)
                        .read_to_end(&mut out)
                        .ok()?;
                    out
                }
                _ => {
                    m.opcode = original;
                    m.notes
                        .push(format!("OP_COMPRESSED with compressor {id} is not decoded"));
                    return Some(());
                }
            };
            return decode_body(m, original, &plain, depth + 1);
        }
        // Unknown opcodes are skipped (framing is kept), as Packetbeat skips them.
        _ => return None,
    }
    Some(())
}

impl MongoSession {
    fn publish(&self, cx: &mut Cx<'_>, req: Msg, resp: Option<Msg>) {
        let mut tx = Transaction::new("mongodb", self.cfg.common.client_dir(cx.conn));
        tx.start = Some(req.ts);
        tx.request_bytes = Some(req.bytes);
        tx.set("method", req.method.clone());
        tx.set("resource", req.resource.clone());
        let mut query = format!("{}.{}({})", req.resource, req.method, req.params);
        for (k, v) in &req.fields {
            if *k == "numberToSkip"
                && let Bson::Int32(n) = v
                && *n > 0
            {
                query.push_str(&format!(".skip({n})"));
            }
            if *k == "numberToReturn"
                && let Bson::Int32(n) = v
                && *n > 0
                && *n < i32::MAX
            {
                query.push_str(&format!(".limit({n})"));
            }
            tx.set(&format!("mongodb.{k}"), v.clone().into_relaxed_extjson());
        }
        tx.set("query", query.clone());
        tx.notes = req.notes;
        if self.cfg.common.send_request {
            tx.set("request", query);
        }
        if let Some(resp) = resp {
            // A reply seen before its request must not make the duration negative.
            tx.end = Some(resp.ts.max(req.ts));
            tx.response_bytes = Some(resp.bytes);
            for (k, v) in &resp.fields {
                tx.set(&format!("mongodb.{k}"), v.clone().into_relaxed_extjson());
            }
            tx.notes.extend(resp.notes);
            if let Some(e) = &resp.error {
                tx.status = "Error";
                tx.set("mongodb.error", e.clone());
            }
            if self.cfg.common.send_response {
                let (max_docs, max_len) = (self.cfg.cfg.max_docs, self.cfg.cfg.max_doc_length);
                let take = if max_docs == 0 { usize::MAX } else { max_docs };
                let lines: Vec<String> = resp
                    .docs
                    .iter()
                    .take(take)
                    .map(|d| {
                        let mut s = json(d);
                        if max_len > 0 && s.len() > max_len {
                            let mut cut = max_len;
                            while !s.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            s.truncate(cut);
                            s.push_str(" ...");
                        }
                        s
                    })
                    .collect();
                tx.set("response", lines.join("\n"));
            }
        }
        cx.emit(tx);
    }

    fn message(&mut self, cx: &mut Cx<'_>, raw: &[u8]) {
        let mut m = Msg {
            ts: cx.now,
            clock: cx.clock,
            bytes: raw.len() as u64,
            request_id: i32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]),
            response_to: i32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]),
            ..Msg::default()
        };
        let opcode = i32::from_le_bytes([raw[12], raw[13], raw[14], raw[15]]);
        if decode_body(&mut m, opcode, &raw[16..], 0).is_none() {
            return;
        }
        let is_reply = m.opcode == OP_REPLY || (m.opcode == OP_MSG && m.response_to != 0);
        if is_reply {
            match self.requests.remove(&m.response_to) {
                Some(req) => self.publish(cx, req, Some(m)),
                None if self.early.len() < MAX_WAITING => {
                    self.early.insert(m.response_to, m);
                }
                None => {}
            }
            return;
        }
        if let Some(resp) = self.early.remove(&m.request_id) {
            self.publish(cx, m, Some(resp));
        } else if m.wants_reply {
            if self.requests.len() < MAX_WAITING {
                self.requests.insert(m.request_id, m);
            }
        } else {
            self.publish(cx, m, None);
        }
    }
}

impl Session for MongoSession {
    fn parse(&mut self, cx: &mut Cx<'_>, _dir: Dir, buf: &mut StreamBuf) {
        loop {
            let data = buf.data();
            if data.len() < 16 {
                return;
            }
            let len = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let Ok(len) = usize::try_from(len) else {
                buf.clear();
                return;
            };
            if !(16..=MAX_MESSAGE).contains(&len) {
                buf.clear();
                return;
            }
            if data.len() < len {
                return;
            }
            let raw = data[..len].to_vec();
            buf.consume(len);
            self.message(cx, &raw);
        }
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        let t = self.cfg.common.timeout;
        self.requests.retain(|_, m| !expired(m.clock, cx.clock, t));
        self.early.retain(|_, m| !expired(m.clock, cx.clock, t));
    }

    fn held_bytes(&self) -> usize {
        self.requests
            .values()
            .chain(self.early.values())
            .map(|m| m.bytes as usize * 2 + 256)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_msg_with_sequence() {
        let body = bson::doc! {"insert": "c", "$db": "d"};
        let mut b = Vec::new();
        body.to_writer(&mut b).unwrap();
        let one = bson::doc! {"x": 1};
        let mut seq = Vec::new();
        one.to_writer(&mut seq).unwrap();
        let mut p = 0u32.to_le_bytes().to_vec();
        p.push(0);
        p.extend(&b);
        p.push(1);
        p.extend(((4 + 10 + seq.len()) as i32).to_le_bytes());
        p.extend(b"documents\0");
        p.extend(&seq);
        let mut m = Msg::default();
        decode_body(&mut m, OP_MSG, &p, 0).unwrap();
        assert_eq!(m.method, "insert");
        assert_eq!(m.resource, "d.c");
        assert!(m.wants_reply);
        assert!(
            m.params.contains("\"documents\":[{\"x\":1}]"),
            "{}",
            m.params
        );
    }

    proptest::proptest! {
        /// Hostile bytes: no panic, memory within the input's size plus bounded state.
        #[test]
        fn hostile_bytes(chunks in crate::protocols::fuzzing::chunks(&[
            b"\x3a\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00",
            b"\x30\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00",
            b"\x30\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\xd4\x07\x00\x00\x00\x00\x00\x00a.$cmd\x00",
            b"\x30\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\xdc\x07\x00\x00\xdd\x07\x00\x00\x20\x00\x00\x00\x01",
        ])) {
            let p = crate::protocols::fuzzing::protocol(&PLUGIN, "{}");
            let total: usize = chunks.iter().map(|c| c.1.as_ref().map_or(0, Vec::len)).sum();
            let peak = crate::protocols::fuzzing::drive(&*p, Transport::Tcp, 27017, &chunks);
            proptest::prop_assert!(peak <= 4 * total + 64 * 1024, "peak {peak} for {total} bytes");
        }
    }
}
