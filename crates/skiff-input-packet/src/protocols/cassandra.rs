//! Cassandra native protocol (CQL binary protocol v3/v4, and the v5 frames that keep the v4
//! layout), as Packetbeat's `cassandra` protocol: one event per request and response frame.
//!
//! The frame header (version with the direction bit, flags, stream id, opcode, length) and
//! the bodies are read by hand: no maintained crate parses captured CQL frames without a
//! connection of its own. Compressed bodies are inflated with `snap` (snappy) or `lz4_flex`
//! (lz4, a 4-byte uncompressed length first), as `compressor` says, or by trying both when
//! it is unset. Requests wait by stream id; an `EVENT` frame (stream -1) is an event alone
//! with `cassandra.no_request: true`. The statement of a PREPARE is remembered by its
//! prepared id, so an EXECUTE shows it.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use skiff_config::ConfigError;
use skiff_event::{Map, Timestamp, Value};

use crate::protocol::{
    BuildArgs, Cx, Dir, Protocol, ProtocolPlugin, Session, StreamBuf, Transaction, Transport,
    expired,
};
use crate::protocols::common::Common;

/// `type: cassandra`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "cassandra",
    tcp: true,
    udp: false,
    default_ports: &[9042],
    build,
};

/// The `cassandra` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CassandraConfig {
    /// `send_request_header` (default true): add `cassandra.request.headers`.
    #[serde(default = "yes")]
    pub send_request_header: bool,
    /// `send_response_header` (default true): add `cassandra.response.headers`.
    #[serde(default = "yes")]
    pub send_response_header: bool,
    /// `ignored_ops` (default none): request opcodes (`OPTIONS`, `REGISTER`, ...) whose
    /// exchanges are not reported.
    #[serde(default)]
    pub ignored_ops: Vec<String>,
    /// `compressor` (default: detect): `snappy` or `lz4`, for frames with the compress flag.
    #[serde(default)]
    pub compressor: Option<String>,
}

fn yes() -> bool {
    true
}

struct Settings {
    cfg: CassandraConfig,
    common: Common,
    ignored: Vec<u8>,
}

struct Cassandra {
    cfg: Arc<Settings>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let cfg: CassandraConfig = args.own.deserialize()?;
    let mut ignored = Vec::new();
    for name in &cfg.ignored_ops {
        match (0u8..=0x10).find(|op| op_name(*op).eq_ignore_ascii_case(name)) {
            Some(op) => ignored.push(op),
            None => {
                return Err(ConfigError::new(
                    &args.own.path,
                    args.own.mark.clone(),
                    format!("ignored_ops: unknown opcode {name}"),
                ));
            }
        }
    }
    if let Some(c) = &cfg.compressor
        && c != "snappy"
        && c != "lz4"
    {
        return Err(ConfigError::new(
            &args.own.path,
            args.own.mark.clone(),
            format!("compressor: {c} is neither snappy nor lz4"),
        ));
    }
    Ok(Arc::new(Cassandra {
        cfg: Arc::new(Settings {
            cfg,
            common: Common::of(args, &PLUGIN),
            ignored,
        }),
    }))
}

impl Protocol for Cassandra {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(CqlSession {
            cfg: self.cfg.clone(),
            waiting: HashMap::new(),
            prepared: HashMap::new(),
        })
    }
}

/// Cassandra's default frame size limit (256 MB).
const MAX_FRAME: usize = 256 << 20;
/// Requests (and prepared statements) remembered per connection.
const MAX_WAITING: usize = 1024;

fn op_name(op: u8) -> &'static str {
    match op {
        0x00 => "ERROR",
        0x01 => "STARTUP",
        0x02 => "READY",
        0x03 => "AUTHENTICATE",
        0x05 => "OPTIONS",
        0x06 => "SUPPORTED",
        0x07 => "QUERY",
        0x08 => "RESULT",
        0x09 => "PREPARE",
        0x0a => "EXECUTE",
        0x0b => "REGISTER",
        0x0c => "EVENT",
        0x0d => "BATCH",
        0x0e => "AUTH_CHALLENGE",
        0x0f => "AUTH_RESPONSE",
        0x10 => "AUTH_SUCCESS",
        _ => "UNKNOWN",
    }
}

fn flag_names(f: u8) -> String {
    if f == 0 {
        return "Default".into();
    }
    let names = [
        (0x01, "Compress"),
        (0x02, "Tracing"),
        (0x04, "CustomPayload"),
        (0x08, "Warning"),
        (0x10, "UseBeta"),
    ];
    names
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join("|")
}

struct Frame {
    ts: Timestamp,
    clock: Timestamp,
    bytes: u64,
    version: u8,
    flags: u8,
    stream: i16,
    op: u8,
    length: u32,
    body: Vec<u8>,
}

struct CqlSession {
    cfg: Arc<Settings>,
    waiting: HashMap<i16, Frame>,
    prepared: HashMap<Vec<u8>, String>,
}

/// Big-endian reader over a frame body.
struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let v = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(v)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::from(self.u16()?);
        Some(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn long_string(&mut self) -> Option<String> {
        let n = usize::try_from(self.i32()?).ok()?;
        Some(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn short_bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let n = self.i32()?;
        if n < 0 {
            return Some(None);
        }
        Some(Some(self.take(n as usize)?))
    }
    fn string_list(&mut self) -> Option<Vec<String>> {
        let n = self.u16()?;
        (0..n).map(|_| self.string()).collect()
    }
    fn inet(&mut self) -> Option<(String, i32)> {
        let n = usize::from(self.u8()?);
        let a = self.take(n)?;
        let ip = match n {
            4 => std::net::IpAddr::from(<[u8; 4]>::try_from(a).ok()?).to_string(),
            16 => std::net::IpAddr::from(<[u8; 16]>::try_from(a).ok()?).to_string(),
            _ => return None,
        };
        Some((ip, self.i32()?))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn set(m: &mut Map, path: &str, v: impl Into<Value>) {
    crate::protocol::insert_dotted(m, path, v.into());
}

/// Skips a column type (`[option]`), nested types included.
fn skip_type(r: &mut Rd<'_>, depth: usize) -> Option<()> {
    if depth > 16 {
        return None;
    }
    match r.u16()? {
        0x0000 => {
            r.string()?;
        }
        0x0020 | 0x0022 => skip_type(r, depth + 1)?,
        0x0021 => {
            skip_type(r, depth + 1)?;
            skip_type(r, depth + 1)?;
        }
        0x0030 => {
            r.string()?;
            r.string()?;
            for _ in 0..r.u16()? {
                r.string()?;
                skip_type(r, depth + 1)?;
            }
        }
        0x0031 => {
            for _ in 0..r.u16()? {
                skip_type(r, depth + 1)?;
            }
        }
        _ => {}
    }
    Some(())
}

/// Rows/prepared metadata into `m` at `prefix`.
fn metadata(r: &mut Rd<'_>, m: &mut Map, prefix: &str, prepared: bool) -> Option<()> {
    let flags = r.i32()?;
    let cols = r.i32()?;
    set(m, &format!("{prefix}.flags"), metadata_flags(flags));
    set(m, &format!("{prefix}.col_count"), cols);
    if prepared {
        let pk = r.i32()?;
        set(m, &format!("{prefix}.pkey_columns"), {
            let mut v = Vec::new();
            for _ in 0..pk.clamp(0, 1024) {
                v.push(r.u16()?);
            }
            v
        });
    }
    if flags & 0x02 != 0
        && let Some(p) = r.bytes()?
    {
        set(m, &format!("{prefix}.paging_state"), hex(p));
    }
    if flags & 0x04 != 0 {
        return Some(());
    }
    let global = flags & 0x01 != 0;
    if global {
        set(m, &format!("{prefix}.keyspace"), r.string()?);
        set(m, &format!("{prefix}.table"), r.string()?);
    }
    for _ in 0..cols.clamp(0, 65535) {
        if !global {
            let ks = r.string()?;
            let t = r.string()?;
            set(m, &format!("{prefix}.keyspace"), ks);
            set(m, &format!("{prefix}.table"), t);
        }
        r.string()?;
        skip_type(r, 0)?;
    }
    Some(())
}

fn metadata_flags(f: i32) -> String {
    let names = [
        (0x01, "GlobalTableSpec"),
        (0x02, "HasMorePages"),
        (0x04, "NoMetadata"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "0".into()
    } else {
        v.join("|")
    }
}

fn error_type(code: i32) -> &'static str {
    match code {
        0x0000 => "Server error",
        0x000A => "Protocol error",
        0x0100 => "Authentication error",
        0x1000 => "Unavailable exception",
        0x1001 => "Overloaded",
        0x1002 => "Is_bootstrapping",
        0x1003 => "Truncate_error",
        0x1100 => "Write_timeout",
        0x1200 => "Read_timeout",
        0x1300 => "Read_failure",
        0x1400 => "Function_failure",
        0x1500 => "Write_failure",
        0x2000 => "Syntax_error",
        0x2100 => "Unauthorized",
        0x2200 => "Invalid",
        0x2300 => "Config_error",
        0x2400 => "Already_exists",
        0x2500 => "Unprepared",
        _ => "Unknown",
    }
}

fn schema_change(r: &mut Rd<'_>, m: &mut Map, prefix: &str) -> Option<()> {
    let change = r.string()?;
    let target = r.string()?;
    set(m, &format!("{prefix}.change"), change);
    set(m, &format!("{prefix}.target"), target.clone());
    set(m, &format!("{prefix}.keyspace"), r.string()?);
    match target.as_str() {
        "TABLE" => set(m, &format!("{prefix}.table"), r.string()?),
        "TYPE" => set(m, &format!("{prefix}.object"), r.string()?),
        "FUNCTION" | "AGGREGATE" => {
            set(m, &format!("{prefix}.name"), r.string()?);
            set(m, &format!("{prefix}.args"), r.string_list()?);
        }
        _ => {}
    }
    Some(())
}

impl CqlSession {
    /// The body of a frame, inflated when compressed.
    fn body(&self, f: &Frame) -> Option<Vec<u8>> {
        if f.flags & 0x01 == 0 {
            return Some(f.body.clone());
        }
        let snappy = |b: &[u8]| {
            let n = snap::raw::decompress_len(b).ok()?;
            // Snappy expands at most ~32 times.
            if n > b.len().saturating_mul(32) + 64 {
                return None;
            }
            snap::raw::Decoder::new().decompress_vec(b).ok()
        };
        let lz4 = |b: &[u8]| {
            let n = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
            if n > MAX_FRAME || n > b.len().saturating_mul(255) + 64 {
                return None;
            }
            lz4_flex::block::decompress(&b[4..], n).ok()
        };
        match self.cfg.cfg.compressor.as_deref() {
            Some("snappy") => snappy(&f.body),
            Some(_) => lz4(&f.body),
            None => lz4(&f.body).or_else(|| snappy(&f.body)),
        }
    }

    /// Reads the request body (query text) into `m`.
    fn request_fields(&mut self, f: &Frame, body: &[u8], m: &mut Map) {
        let mut r = Rd { b: body, at: 0 };
        if f.flags & 0x02 != 0 {
            // tracing flag on a request carries nothing before the body
        }
        if f.flags & 0x04 != 0 {
            // custom payload: [bytes map]
            if let Some(n) = r.u16() {
                for _ in 0..n {
                    if r.string().is_none() || r.bytes().is_none() {
                        return;
                    }
                }
            }
        }
        match f.op {
            0x07 | 0x09 => {
                if let Some(q) = r.long_string() {
                    set(m, "query", q);
                }
            }
            0x0a => {
                if let Some(id) = r.short_bytes() {
                    if let Some(q) = self.prepared.get(id) {
                        set(m, "query", q.clone());
                    }
                    set(m, "prepared_id", hex(id));
                }
            }
            0x0d => {
                let _kind = r.u8();
                let n = r.u16().unwrap_or(0);
                let mut qs = Vec::new();
                for _ in 0..n.min(1024) {
                    match r.u8() {
                        Some(0) => match r.long_string() {
                            Some(q) => qs.push(q),
                            None => break,
                        },
                        Some(1) => match r.short_bytes() {
                            Some(id) => qs.push(self.prepared.get(id).cloned().unwrap_or_default()),
                            None => break,
                        },
                        _ => break,
                    }
                    // values: [short] n, then [bytes] each
                    let Some(k) = r.u16() else { break };
                    if (0..k).any(|_| r.bytes().is_none()) {
                        break;
                    }
                }
                set(m, "query", qs.join("; "));
            }
            _ => {}
        }
    }

    /// Reads a response body into `m`; returns an error message when it is an ERROR.
    fn response_fields(
        &mut self,
        f: &Frame,
        body: &[u8],
        m: &mut Map,
        query: Option<&str>,
    ) -> Option<String> {
        let mut r = Rd { b: body, at: 0 };
        if f.flags & 0x02 != 0 {
            let _tracing_id = r.take(16);
        }
        if f.flags & 0x08 != 0
            && let Some(w) = r.string_list()
        {
            set(m, "warnings", w);
        }
        if f.flags & 0x04 != 0
            && let Some(n) = r.u16()
        {
            for _ in 0..n {
                if r.string().is_none() || r.bytes().is_none() {
                    return None;
                }
            }
        }
        match f.op {
            0x00 => {
                let code = r.i32()?;
                let msg = r.string().unwrap_or_default();
                set(m, "error.code", code);
                set(m, "error.msg", msg.clone());
                set(m, "error.type", error_type(code));
                return Some(msg);
            }
            0x06 => {
                let n = r.u16().unwrap_or(0);
                let mut sup = Map::new();
                for _ in 0..n.min(256) {
                    let (Some(k), Some(v)) = (r.string(), r.string_list()) else {
                        break;
                    };
                    sup.insert(k, v.into());
                }
                set(m, "supported", Value::Object(sup));
            }
            0x03 => {
                if let Some(c) = r.string() {
                    set(m, "authentication.class", c);
                }
            }
            0x08 => {
                let kind = r.i32()?;
                match kind {
                    1 => set(m, "result.type", "void"),
                    2 => {
                        set(m, "result.type", "rows");
                        metadata(&mut r, m, "result.rows.meta", false);
                        if let Some(n) = r.i32() {
                            set(m, "result.rows.num_rows", n);
                        }
                    }
                    3 => {
                        set(m, "result.type", "setKeyspace");
                        if let Some(k) = r.string() {
                            set(m, "result.keyspace", k);
                        }
                    }
                    4 => {
                        set(m, "result.type", "prepared");
                        if let Some(id) = r.short_bytes() {
                            set(m, "result.prepared.prepared_id", hex(id));
                            if let Some(q) = query
                                && (self.prepared.len() < MAX_WAITING
                                    || self.prepared.contains_key(id))
                            {
                                self.prepared.insert(id.to_vec(), q.to_owned());
                            }
                            if f.version >= 5 {
                                let _ = r.short_bytes();
                            }
                            metadata(&mut r, m, "result.prepared.req_meta", f.version >= 4);
                            metadata(&mut r, m, "result.prepared.resp_meta", false);
                        }
                    }
                    5 => {
                        set(m, "result.type", "schemaChanged");
                        schema_change(&mut r, m, "result.schema_change");
                    }
                    _ => set(m, "result.type", "unknown"),
                }
            }
            0x0c => {
                let t = r.string()?;
                set(m, "event.type", t.clone());
                match t.as_str() {
                    "TOPOLOGY_CHANGE" | "STATUS_CHANGE" => {
                        set(m, "event.change", r.string()?);
                        let (ip, port) = r.inet()?;
                        set(m, "event.host", ip);
                        set(m, "event.port", port);
                    }
                    "SCHEMA_CHANGE" => {
                        schema_change(&mut r, m, "event.schema_change");
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        None
    }

    fn headers(&self, f: &Frame, m: &mut Map) {
        set(m, "headers.version", (f.version & 0x7f).to_string());
        set(m, "headers.flags", flag_names(f.flags));
        set(m, "headers.stream", f.stream);
        set(m, "headers.op", op_name(f.op));
        set(m, "headers.length", f.length);
    }

    fn publish(&mut self, cx: &mut Cx<'_>, req: Option<Frame>, resp: Frame) {
        let mut tx = Transaction::new("cassandra", self.cfg.common.client_dir(cx.conn));
        let mut req_map = Map::new();
        let mut query = None;
        if let Some(q) = &req {
            tx.start = Some(q.ts);
            tx.request_bytes = Some(q.bytes);
            if let Some(body) = self.body(q) {
                self.request_fields(q, &body, &mut req_map);
            }
            query = req_map
                .get("query")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if self.cfg.cfg.send_request_header {
                self.headers(q, &mut req_map);
            }
        } else {
            tx.set("cassandra.no_request", true);
        }
        tx.end = Some(resp.ts);
        tx.response_bytes = Some(resp.bytes);
        let mut resp_map = Map::new();
        let error = match self.body(&resp) {
            Some(body) => self.response_fields(&resp, &body, &mut resp_map, query.as_deref()),
            None => {
                tx.note("The compressed body could not be inflated");
                None
            }
        };
        if self.cfg.cfg.send_response_header {
            self.headers(&resp, &mut resp_map);
        }
        if let Some(e) = error {
            tx.status = "Error";
            tx.note(e);
        }
        if self.cfg.common.send_request && !req_map.is_empty() {
            tx.set("cassandra.request", Value::Object(req_map));
        }
        if self.cfg.common.send_response && !resp_map.is_empty() {
            tx.set("cassandra.response", Value::Object(resp_map));
        }
        cx.emit(tx);
    }

    fn frame(&mut self, cx: &mut Cx<'_>, f: Frame) {
        let response = f.version & 0x80 != 0;
        if !response {
            if self.waiting.len() < MAX_WAITING || self.waiting.contains_key(&f.stream) {
                self.waiting.insert(f.stream, f);
            }
            return;
        }
        if f.op == 0x0c {
            self.publish(cx, None, f);
            return;
        }
        // As Packetbeat: a response without its request is dropped.
        let Some(req) = self.waiting.remove(&f.stream) else {
            return;
        };
        if self.cfg.ignored.contains(&req.op) {
            return;
        }
        self.publish(cx, Some(req), f);
    }
}

impl Session for CqlSession {
    fn parse(&mut self, cx: &mut Cx<'_>, _dir: Dir, buf: &mut StreamBuf) {
        loop {
            let d = buf.data();
            if d.len() < 9 {
                return;
            }
            let version = d[0];
            let len = u32::from_be_bytes([d[5], d[6], d[7], d[8]]) as usize;
            if !(3..=5).contains(&(version & 0x7f)) || len > MAX_FRAME || d[4] > 0x10 {
                buf.clear();
                return;
            }
            if d.len() < 9 + len {
                return;
            }
            let f = Frame {
                ts: cx.now,
                clock: cx.clock,
                bytes: (9 + len) as u64,
                version,
                flags: d[1],
                stream: i16::from_be_bytes([d[2], d[3]]),
                op: d[4],
                length: len as u32,
                body: d[9..9 + len].to_vec(),
            };
            buf.consume(9 + len);
            self.frame(cx, f);
        }
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        let t = self.cfg.common.timeout;
        self.waiting.retain(|_, f| !expired(f.clock, cx.clock, t));
    }

    fn held_bytes(&self) -> usize {
        self.waiting
            .values()
            .map(|f| f.body.len() + 64)
            .sum::<usize>()
            + self.prepared.values().map(|q| q.len() + 64).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Hostile bytes: no panic, memory within the input's size plus bounded state.
        #[test]
        fn hostile_bytes(chunks in crate::protocols::fuzzing::chunks(&[
            b"\x04\x00\x00\x14\x07\x00\x00\x00\x10\x00\x00\x00\x05hello",
            b"\x84\x00\x00\x14\x08\x00\x00\x00\x10\x00\x00\x00\x02",
            b"\x84\x00\x00\x14\x08\x00\x00\x00\x10\x00\x00\x00\x05\x00\x07CREATED",
            b"\x84\x01\x00\x14\x08\x00\x00\x00\x10\x00\x00\x00\x05",
            b"\x84\x00\xff\xff\x0c\x00\x00\x00\x10\x00\x0fTOPOLOGY_CHANGE",
        ])) {
            let p = crate::protocols::fuzzing::protocol(&PLUGIN, "{}");
            let total: usize = chunks.iter().map(|c| c.1.as_ref().map_or(0, Vec::len)).sum();
            let peak = crate::protocols::fuzzing::drive(&*p, Transport::Tcp, 9042, &chunks);
            proptest::prop_assert!(peak <= 4 * total + 64 * 1024, "peak {peak} for {total} bytes");
        }
    }
}
