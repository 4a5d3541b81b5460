//! MySQL/MariaDB client/server protocol, as Packetbeat's `mysql` protocol, plus what its users
//! forked it for: prepared statements and the compressed protocol.
//!
//! Framing is hand-written (no crate parses captured, possibly partial, MySQL streams): a
//! packet is a 3-byte little-endian length, a sequence number and the payload; a payload of
//! 0xffffff bytes continues in the next packet. A client packet with sequence 0 is a command;
//! COM_QUERY, COM_STMT_PREPARE and COM_STMT_EXECUTE wait for their response (one outstanding
//! per connection), COM_STMT_CLOSE forgets a statement, other commands are skipped, as is the
//! connection handshake — except that the handshake response is read for its capability
//! flags: `CLIENT_SSL` (the rest is TLS: the connection is ignored), `CLIENT_COMPRESS` (after
//! the server's OK every packet travels in compressed frames — a 7-byte header and, when the
//! uncompressed length is not 0, a zlib payload inflated by `flate2`) and
//! `CLIENT_DEPRECATE_EOF` (result sets end without the EOF after the column definitions).
//!
//! A prepared statement's text is kept per connection (for `statement_timeout`) from its
//! PREPARE response; each EXECUTE then gets that text as `query` and its binary parameters,
//! decoded by type, as `params`. Byte counts are those of the MySQL packets (headers
//! included, uncompressed).

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use skiff_config::ConfigError;
use skiff_event::Timestamp;

use crate::protocol::{
    BuildArgs, Cx, Dir, GapAction, Protocol, ProtocolPlugin, Session, StreamBuf, Transaction,
    Transport, expired,
};
use crate::protocols::common::Common;
use crate::protocols::resultset::{ResultText, statement_method};

/// `type: mysql`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "mysql",
    tcp: true,
    udp: false,
    default_ports: &[3306, 3307],
    build,
};

/// The `mysql` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// `max_rows` (default 10): rows kept for the `response` text.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// `max_row_length` (default 1024): bytes kept per row for the `response` text.
    #[serde(default = "default_max_row_length")]
    pub max_row_length: usize,
    /// `statement_timeout` (default 1h): how long a prepared statement is remembered after
    /// its last use.
    #[serde(default)]
    pub statement_timeout: Option<skiff_config::Duration>,
}

fn default_max_rows() -> usize {
    10
}
fn default_max_row_length() -> usize {
    1024
}

struct Settings {
    cfg: MysqlConfig,
    common: Common,
    statement_timeout: Duration,
}

struct Mysql {
    cfg: Arc<Settings>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let cfg: MysqlConfig = args.own.deserialize()?;
    let statement_timeout = cfg
        .statement_timeout
        .map_or(Duration::from_secs(3600), |d| d.0);
    Ok(Arc::new(Mysql {
        cfg: Arc::new(Settings {
            cfg,
            common: Common::of(args, &PLUGIN),
            statement_timeout,
        }),
    }))
}

impl Protocol for Mysql {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(MysqlSession::new(self.cfg.clone()))
    }
}

/// The largest payload of one packet; a packet this long continues in the next one.
const MAX_PAYLOAD: usize = 0xff_ffff;
/// Prepared statements remembered per connection.
const MAX_STATEMENTS: usize = 1024;
/// Bytes of a statement's text kept.
const MAX_QUERY: usize = 1 << 20;

const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_CLOSE: u8 = 0x19;

const CLIENT_COMPRESS: u32 = 0x20;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Compress {
    Off,
    /// Asked for in the handshake: starts after the server's OK.
    Pending,
    On,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ReqKind {
    Query,
    Prepare,
    Execute,
}

struct Request {
    ts: Timestamp,
    clock: Timestamp,
    bytes: u64,
    kind: ReqKind,
    query: String,
    method: String,
    params: Vec<String>,
    notes: Vec<String>,
    raw: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    ColumnDefs(u64),
    ColumnsEof,
    Rows,
    PrepParams(u64),
    PrepParamsEof,
    PrepCols(u64),
    PrepColsEof,
}

#[derive(Default)]
struct Response {
    /// When its first packet arrived (`event.end`, as Packetbeat).
    ts: Timestamp,
    bytes: u64,
    num_fields: u64,
    num_rows: u64,
    affected_rows: u64,
    insert_id: u64,
    error: Option<(u16, String)>,
    tables: String,
    text: ResultText,
    /// Statement id, columns and parameters of a PREPARE's answer.
    prepared: Option<(u32, u16, u16)>,
}

struct Statement {
    query: String,
    params: usize,
    /// Parameter types (type, unsigned) as the last EXECUTE bound them.
    types: Vec<(u8, bool)>,
    used: Timestamp,
}

struct MysqlSession {
    cfg: Arc<Settings>,
    compress: Compress,
    tls: bool,
    deprecate_eof: bool,
    handshake_seen: bool,
    /// Inflated bytes per direction (compressed protocol).
    inner: [StreamBuf; 2],
    /// Bytes of the current packet still to skip, per direction.
    skip: [usize; 2],
    /// The next packet continues a 0xffffff-byte one.
    cont: [bool; 2],
    request: Option<Request>,
    response: Option<(State, Response)>,
    statements: HashMap<u32, Statement>,
}

/// A length-encoded integer at the start of `b`: value and size.
fn lenenc(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let le = |n: usize| -> Option<(u64, usize)> {
        let bytes = b.get(1..1 + n)?;
        let mut v = 0u64;
        for (i, x) in bytes.iter().enumerate() {
            v |= u64::from(*x) << (8 * i);
        }
        Some((v, 1 + n))
    };
    match first {
        0xfc => le(2),
        0xfd => le(3),
        0xfe => le(8),
        0xfb | 0xff => None,
        n => Some((u64::from(n), 1)),
    }
}

/// A length-encoded string at the start of `b`: bytes and total size.
fn lenenc_str(b: &[u8]) -> Option<(&[u8], usize)> {
    let (len, n) = lenenc(b)?;
    let len = usize::try_from(len).ok()?;
    let s = b.get(n..n.checked_add(len)?)?;
    Some((s, n + len))
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u24(b: &[u8]) -> usize {
    usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16
}

fn lossy(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

/// Whether a packet is an EOF packet (0xfe and short).
fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xfe) && p.len() < 9
}

/// The parameters of a COM_STMT_EXECUTE payload (after the command byte), decoded with the
/// statement's parameter count and types; new types are stored in `stmt`. None when the
/// payload does not hold them.
fn execute_params(p: &[u8], stmt: &mut Statement) -> Option<Vec<String>> {
    let n = stmt.params;
    if n == 0 {
        return Some(Vec::new());
    }
    // stmt id (4), flags (1), iteration count (4)
    let mut at = 9;
    let bitmap = p.get(at..at + n.div_ceil(8))?;
    at += bitmap.len();
    let bound = *p.get(at)?;
    at += 1;
    if bound == 1 {
        let types = p.get(at..at.checked_add(n.checked_mul(2)?)?)?;
        stmt.types = types
            .chunks_exact(2)
            .map(|t| (t[0], t[1] & 0x80 != 0))
            .collect();
        at += types.len();
    }
    if stmt.types.len() != n {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for (i, &(typ, unsigned)) in stmt.types.iter().enumerate() {
        if bitmap[i / 8] & (1 << (i % 8)) != 0 {
            out.push("NULL".to_owned());
            continue;
        }
        let (text, used) = binary_value(p.get(at..)?, typ, unsigned)?;
        out.push(text);
        at += used;
    }
    Some(out)
}

/// One value of the binary protocol: its text and its size.
fn binary_value(b: &[u8], typ: u8, unsigned: bool) -> Option<(String, usize)> {
    let fixed = |n: usize| b.get(..n);
    Some(match typ {
        0x06 => ("NULL".to_owned(), 0),
        0x01 => {
            let v = fixed(1)?[0];
            let t = if unsigned {
                v.to_string()
            } else {
                (v as i8).to_string()
            };
            (t, 1)
        }
        0x02 | 0x0d => {
            let v = le_u16(b, 0)?;
            let t = if unsigned || typ == 0x0d {
                v.to_string()
            } else {
                (v as i16).to_string()
            };
            (t, 2)
        }
        0x03 | 0x09 => {
            let v = le_u32(b, 0)?;
            let t = if unsigned {
                v.to_string()
            } else {
                (v as i32).to_string()
            };
            (t, 4)
        }
        0x08 => {
            let v = u64::from_le_bytes(fixed(8)?.try_into().ok()?);
            let t = if unsigned {
                v.to_string()
            } else {
                (v as i64).to_string()
            };
            (t, 8)
        }
        0x04 => (
            f32::from_le_bytes(fixed(4)?.try_into().ok()?).to_string(),
            4,
        ),
        0x05 => (
            f64::from_le_bytes(fixed(8)?.try_into().ok()?).to_string(),
            8,
        ),
        // DATE, DATETIME, TIMESTAMP: length, year (2), month, day, [h, m, s, [micros (4)]].
        0x07 | 0x0a | 0x0c => {
            let len = usize::from(*b.first()?);
            let d = b.get(1..1 + len)?;
            let mut t = String::new();
            if len >= 4 {
                t = format!("{:04}-{:02}-{:02}", le_u16(d, 0)?, d[2], d[3]);
            }
            if len >= 7 {
                t.push_str(&format!(" {:02}:{:02}:{:02}", d[4], d[5], d[6]));
            }
            let micros = if len >= 11 { le_u32(d, 7)? } else { 0 };
            if micros > 0 {
                t.push_str(&format!(".{micros:06}"));
            }
            (t, 1 + len)
        }
        // TIME: length, negative, days (4), h, m, s, [micros (4)].
        0x0b => {
            let len = usize::from(*b.first()?);
            let d = b.get(1..1 + len)?;
            let mut t = String::from("00:00:00");
            if len >= 8 {
                let hours = le_u32(d, 1)?.saturating_mul(24) + u32::from(d[5]);
                let sign = if d[0] == 1 { "-" } else { "" };
                t = format!("{sign}{hours:02}:{:02}:{:02}", d[6], d[7]);
            }
            let micros = if len >= 12 { le_u32(d, 8)? } else { 0 };
            if micros > 0 {
                t.push_str(&format!(".{micros:06}"));
            }
            (t, 1 + len)
        }
        // Strings, decimals, blobs, enums, sets, JSON, geometry, bits: length-encoded.
        0x0f | 0x10 | 0xf5..=0xff => {
            let (s, used) = lenenc_str(b)?;
            (lossy(s, MAX_QUERY), used)
        }
        _ => return None,
    })
}

impl MysqlSession {
    fn new(cfg: Arc<Settings>) -> MysqlSession {
        MysqlSession {
            cfg,
            compress: Compress::Off,
            tls: false,
            deprecate_eof: false,
            handshake_seen: false,
            inner: [StreamBuf::default(), StreamBuf::default()],
            skip: [0; 2],
            cont: [false; 2],
            request: None,
            response: None,
            statements: HashMap::new(),
        }
    }

    /// Parses the packets in `b`. Returns true when compression switched on in the middle
    /// (the rest of `b` is compressed frames).
    fn packets(&mut self, cx: &mut Cx<'_>, dir: Dir, b: &mut StreamBuf) -> bool {
        let client = dir == self.cfg.common.client_dir(cx.conn);
        let d = dir.index();
        loop {
            if self.skip[d] > 0 {
                let n = self.skip[d].min(b.len());
                b.consume(n);
                self.skip[d] -= n;
                if self.skip[d] > 0 {
                    return false;
                }
            }
            let data = b.data();
            if data.len() < 4 {
                return false;
            }
            let len = u24(data);
            let seq = data[3];
            let total = 4 + len;
            let continued = len == MAX_PAYLOAD;
            if self.cont[d] {
                self.cont[d] = continued;
                self.add_bytes(client, total);
                self.skip[d] = total;
                continue;
            }
            // Rows past `max_rows` are counted from their first byte and skipped.
            let skippable = !client
                && matches!(&self.response, Some((State::Rows, r)) if !r.text.wants_rows(self.cfg.cfg.max_rows));
            if skippable && data.len() >= 5 && !matches!(data[4], 0xfe | 0xff) {
                if let Some((_, r)) = &mut self.response {
                    r.bytes += total as u64;
                    r.num_rows += 1;
                }
                self.cont[d] = continued;
                self.skip[d] = total;
                continue;
            }
            if data.len() < total {
                return false;
            }
            let payload = data[4..total].to_vec();
            b.consume(total);
            self.cont[d] = continued;
            if client {
                self.client_packet(cx, seq, &payload, total);
            } else if self.server_packet(cx, &payload, total) {
                return true;
            }
        }
    }

    fn add_bytes(&mut self, client: bool, n: usize) {
        if client {
            if let Some(r) = &mut self.request {
                r.bytes += n as u64;
            }
        } else if let Some((_, r)) = &mut self.response {
            r.bytes += n as u64;
        }
    }

    fn client_packet(&mut self, cx: &mut Cx<'_>, seq: u8, p: &[u8], total: usize) {
        if seq == 1 && !self.handshake_seen && self.request.is_none() {
            if let Some(caps) = le_u32(p, 0) {
                self.handshake_seen = true;
                if caps & CLIENT_SSL != 0 && p.len() == 32 {
                    self.tls = true;
                }
                if caps & CLIENT_COMPRESS != 0 {
                    self.compress = Compress::Pending;
                }
                self.deprecate_eof = caps & CLIENT_DEPRECATE_EOF != 0;
            }
            return;
        }
        if seq != 0 {
            return;
        }
        let Some((&cmd, rest)) = p.split_first() else {
            return;
        };
        let kind = match cmd {
            COM_QUERY => ReqKind::Query,
            COM_STMT_PREPARE => ReqKind::Prepare,
            COM_STMT_EXECUTE => ReqKind::Execute,
            COM_STMT_CLOSE => {
                if let Some(id) = le_u32(rest, 0) {
                    self.statements.remove(&id);
                }
                return;
            }
            _ => return,
        };
        // A request without an answer to the one before: the old one is dropped.
        self.response = None;
        let mut req = Request {
            ts: cx.now,
            clock: cx.clock,
            bytes: total as u64,
            kind,
            query: String::new(),
            method: String::new(),
            params: Vec::new(),
            notes: Vec::new(),
            raw: String::new(),
        };
        if kind == ReqKind::Execute {
            let stmt = le_u32(rest, 0).and_then(|id| self.statements.get_mut(&id));
            match stmt {
                Some(stmt) => {
                    stmt.used = cx.clock;
                    (req.query, req.method) = statement_method(&stmt.query);
                    match execute_params(rest, stmt) {
                        Some(params) => req.params = params,
                        None => req.notes.push("The parameters could not be decoded".into()),
                    }
                }
                None => {
                    req.query = "Request Execute Statement".into();
                    req.method = "EXECUTE".into();
                    req.notes
                        .push("The actual query being used is unknown".into());
                }
            }
            req.raw = req.query.clone();
        } else {
            let text = lossy(rest, MAX_QUERY);
            (req.query, req.method) = statement_method(&text);
            req.raw = text;
        }
        self.request = Some(req);
    }

    /// Returns true when this packet switched the compressed protocol on.
    fn server_packet(&mut self, cx: &mut Cx<'_>, p: &[u8], total: usize) -> bool {
        let Some(&first) = p.first() else {
            return false;
        };
        let Some((state, mut r)) = self.response.take() else {
            if self.request.is_none() {
                // The handshake (or an answer to a command skipped): only the OK that ends
                // the handshake matters, it turns compression on.
                if first == 0x00 && self.compress == Compress::Pending {
                    self.compress = Compress::On;
                    return true;
                }
                return false;
            }
            let mut r = Response {
                ts: cx.now,
                bytes: total as u64,
                ..Response::default()
            };
            let prepare = self.request.as_ref().map(|q| q.kind) == Some(ReqKind::Prepare);
            match first {
                0x00 if prepare && p.len() >= 12 => {
                    let id = le_u32(p, 1).unwrap_or(0);
                    let cols = le_u16(p, 5).unwrap_or(0);
                    let params = le_u16(p, 7).unwrap_or(0);
                    r.num_fields = u64::from(cols);
                    r.prepared = Some((id, cols, params));
                    if params > 0 {
                        self.response = Some((State::PrepParams(u64::from(params)), r));
                    } else if cols > 0 {
                        self.response = Some((State::PrepCols(u64::from(cols)), r));
                    } else {
                        self.finish(cx, r);
                    }
                }
                0x00 => {
                    if let Some((a, n)) = lenenc(&p[1..]) {
                        r.affected_rows = a;
                        r.insert_id = lenenc(&p[1 + n..]).map_or(0, |x| x.0);
                    }
                    self.finish(cx, r);
                }
                0xff => {
                    r.error = Some(error_packet(p));
                    self.finish(cx, r);
                }
                0xfe if p.len() < 9 => self.finish(cx, r),
                _ => match lenenc(p) {
                    Some((n, _)) if n > 0 => {
                        r.num_fields = n;
                        self.response = Some((State::ColumnDefs(n), r));
                    }
                    _ => self.finish(cx, r),
                },
            }
            return false;
        };
        r.bytes += total as u64;
        let next = match state {
            State::ColumnDefs(n) => {
                if let Some((table, name)) = column_def(p) {
                    if !table.is_empty() && !r.tables.split(", ").any(|t| t == table) {
                        if !r.tables.is_empty() {
                            r.tables.push_str(", ");
                        }
                        r.tables.push_str(&table);
                    }
                    r.text.columns.push(name);
                }
                if n > 1 {
                    Some(State::ColumnDefs(n - 1))
                } else if self.deprecate_eof {
                    Some(State::Rows)
                } else {
                    Some(State::ColumnsEof)
                }
            }
            State::ColumnsEof if is_eof(p) => Some(State::Rows),
            State::ColumnsEof | State::Rows => {
                if first == 0xfe && p.len() < MAX_PAYLOAD {
                    None
                } else if first == 0xff {
                    r.error = Some(error_packet(p));
                    None
                } else {
                    r.num_rows += 1;
                    if r.text.wants_rows(self.cfg.cfg.max_rows) {
                        r.text.push_row(
                            text_row(p),
                            self.cfg.cfg.max_rows,
                            self.cfg.cfg.max_row_length,
                        );
                    }
                    Some(State::Rows)
                }
            }
            State::PrepParams(n) => {
                if n > 1 {
                    Some(State::PrepParams(n - 1))
                } else if self.deprecate_eof {
                    prep_cols(&r)
                } else {
                    Some(State::PrepParamsEof)
                }
            }
            State::PrepParamsEof => prep_cols(&r),
            State::PrepCols(n) => {
                if n > 1 {
                    Some(State::PrepCols(n - 1))
                } else if self.deprecate_eof {
                    None
                } else {
                    Some(State::PrepColsEof)
                }
            }
            State::PrepColsEof => None,
        };
        match next {
            Some(s) => self.response = Some((s, r)),
            None => self.finish(cx, r),
        }
        false
    }

    fn finish(&mut self, cx: &mut Cx<'_>, r: Response) {
        let Some(req) = self.request.take() else {
            return;
        };
        let mut tx = Transaction::new("mysql", self.cfg.common.client_dir(cx.conn));
        tx.start = Some(req.ts);
        tx.end = Some(r.ts);
        tx.request_bytes = Some(req.bytes);
        tx.response_bytes = Some(r.bytes);
        tx.set("method", req.method.clone());
        let mut notes = req.notes;
        let mut query = req.query;
        if let Some((id, _, params)) = r.prepared {
            if self.statements.len() >= MAX_STATEMENTS && !self.statements.contains_key(&id) {
                notes.push("Too many prepared statements: this one is not remembered".into());
            } else {
                self.statements.insert(
                    id,
                    Statement {
                        query: query.clone(),
                        params: usize::from(params),
                        types: Vec::new(),
                        used: cx.clock,
                    },
                );
            }
            notes.insert(0, query);
            query = "Request Prepare Statement".into();
        }
        tx.set("query", query);
        tx.set("mysql.affected_rows", r.affected_rows);
        tx.set("mysql.insert_id", r.insert_id);
        tx.set("mysql.num_rows", r.num_rows);
        tx.set("mysql.num_fields", r.num_fields);
        if let Some((code, msg)) = r.error {
            tx.status = "Error";
            tx.set("mysql.error_code", code);
            tx.set("mysql.error_message", msg);
        }
        if !r.tables.is_empty() {
            tx.set("path", r.tables);
        }
        if !req.params.is_empty() {
            tx.set("params", req.params);
        }
        if self.cfg.common.send_request {
            tx.set("request", req.raw);
        }
        if self.cfg.common.send_response {
            tx.set("response", r.text.csv());
        }
        tx.notes = notes;
        cx.emit(tx);
    }

    /// Inflates the compressed frames of `buf` into the direction's inner buffer. Returns
    /// false when a frame is malformed (the stream is lost).
    fn inflate(&mut self, dir: Dir, buf: &mut StreamBuf) -> bool {
        loop {
            let data = buf.data();
            if data.len() < 7 {
                return true;
            }
            let clen = u24(data);
            let ulen = u24(&data[4..]);
            if data.len() < 7 + clen {
                return true;
            }
            let payload = &data[7..7 + clen];
            let inner = &mut self.inner[dir.index()];
            if ulen == 0 {
                inner.push(payload);
            } else {
                let mut out = Vec::with_capacity(ulen.min(1 << 20));
                let z = flate2::read::ZlibDecoder::new(payload);
                // The header says how long the inflated payload is: never more.
                if z.take(ulen as u64).read_to_end(&mut out).is_err() || out.len() != ulen {
                    return false;
                }
                inner.push(&out);
            }
            buf.consume(7 + clen);
        }
    }
}

fn prep_cols(r: &Response) -> Option<State> {
    match r.prepared {
        Some((_, cols, _)) if cols > 0 => Some(State::PrepCols(u64::from(cols))),
        _ => None,
    }
}

/// `(code, "SQLSTATE: message")` of an ERR packet.
fn error_packet(p: &[u8]) -> (u16, String) {
    let code = le_u16(p, 1).unwrap_or(0);
    let rest = p.get(3..).unwrap_or(&[]);
    let text = match rest.split_first() {
        Some((b'#', r)) if r.len() >= 5 => {
            format!("{}: {}", lossy(&r[..5], 5), lossy(&r[5..], MAX_QUERY))
        }
        _ => lossy(rest, MAX_QUERY),
    };
    (code, text)
}

/// `(db.table, column name)` of a column definition (protocol 4.1).
fn column_def(p: &[u8]) -> Option<(String, String)> {
    let mut at = 0;
    let mut next = || -> Option<&[u8]> {
        let (s, n) = lenenc_str(p.get(at..)?)?;
        at += n;
        Some(s)
    };
    let _catalog = next()?;
    let db = next()?;
    let table = next()?;
    let _org_table = next()?;
    let name = next()?;
    let table = if db.is_empty() && table.is_empty() {
        String::new()
    } else {
        format!("{}.{}", lossy(db, 256), lossy(table, 256))
    };
    Some((table, lossy(name, 256)))
}

/// The cells of a text-protocol row (NULL as `NULL`); stops at a malformed cell.
fn text_row(p: &[u8]) -> Vec<&[u8]> {
    let mut cells = Vec::new();
    let mut at = 0;
    while at < p.len() {
        if p[at] == 0xfb {
            cells.push(&b"NULL"[..]);
            at += 1;
            continue;
        }
        match lenenc_str(&p[at..]) {
            Some((s, n)) => {
                cells.push(s);
                at += n;
            }
            None => break,
        }
    }
    cells
}

impl Session for MysqlSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        if self.tls {
            buf.clear();
            return;
        }
        // When compression switches on, it starts right after the packet just parsed.
        if self.compress != Compress::On && !self.packets(cx, dir, buf) {
            return;
        }
        if !self.inflate(dir, buf) {
            buf.clear();
            self.inner[dir.index()].clear();
            self.tls = true; // nothing more can be understood on this connection
            return;
        }
        let mut inner = std::mem::take(&mut self.inner[dir.index()]);
        self.packets(cx, dir, &mut inner);
        self.inner[dir.index()] = inner;
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Dir, missing: u64, buf: &mut StreamBuf) -> GapAction {
        let _ = buf;
        let client = dir == self.cfg.common.client_dir(cx.conn);
        let d = dir.index();
        // Inside a skipped row: the gap is only bytes not looked at.
        if self.compress != Compress::On && (self.skip[d] as u64) >= missing {
            self.skip[d] -= missing as usize;
            self.add_bytes(client, missing as usize);
            return GapAction::Continue;
        }
        if !client
            && let Some((State::ColumnDefs(_) | State::ColumnsEof | State::Rows, mut r)) =
                self.response.take()
        {
            r.bytes += missing;
            if let Some(q) = &mut self.request {
                q.notes
                    .push("Packet loss while capturing the response".into());
            }
            self.finish(cx, r);
        }
        GapAction::Drop
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        if self
            .request
            .as_ref()
            .is_some_and(|r| expired(r.clock, cx.clock, self.cfg.common.timeout))
        {
            // As Packetbeat: a request without an answer is dropped silently.
            self.request = None;
            self.response = None;
        }
        let t = self.cfg.statement_timeout;
        self.statements.retain(|_, s| !expired(s.used, cx.clock, t));
    }

    fn held_bytes(&self) -> usize {
        self.inner.iter().map(StreamBuf::capacity).sum::<usize>()
            + self
                .request
                .as_ref()
                .map_or(0, |r| r.query.len() + r.raw.len())
            + self
                .response
                .as_ref()
                .map_or(0, |(_, r)| r.text.held_bytes() + r.tables.len())
            + self
                .statements
                .values()
                .map(|s| s.query.len() + 64)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_forms() {
        assert_eq!(lenenc(&[5]), Some((5, 1)));
        assert_eq!(lenenc(&[0xfc, 1, 2]), Some((0x201, 3)));
        assert_eq!(lenenc(&[0xfd, 1, 2, 3]), Some((0x030201, 4)));
        assert_eq!(lenenc(&[0xfe, 1, 0, 0, 0, 0, 0, 0, 0]), Some((1, 9)));
        assert_eq!(lenenc(&[0xfe, 1]), None);
        assert_eq!(lenenc(&[0xfb]), None);
    }

    #[test]
    fn execute_params_decode_by_type() {
        let mut st = Statement {
            query: "select ?, ?, ?".into(),
            params: 3,
            types: Vec::new(),
            used: Timestamp(0),
        };
        // id, flags, iterations, null bitmap (2nd is NULL), bound, types, values.
        let mut p = vec![1, 0, 0, 0, 0, 1, 0, 0, 0, 0b010, 1];
        p.extend([0xfd, 0, 0x03, 0, 0x08, 0x80]);
        p.extend([3, b'a', b'b', b'c']);
        p.extend(u64::MAX.to_le_bytes());
        assert_eq!(
            execute_params(&p, &mut st),
            Some(vec!["abc".into(), "NULL".into(), u64::MAX.to_string()])
        );
        // A later execute reuses the bound types.
        let mut p2 = vec![1, 0, 0, 0, 0, 1, 0, 0, 0, 0b110, 0, 1, b'z'];
        p2.truncate(13);
        assert_eq!(
            execute_params(&p2, &mut st),
            Some(vec!["z".into(), "NULL".into(), "NULL".into()])
        );
    }

    #[test]
    fn error_packet_text() {
        let mut p = vec![0xff, 0x16, 0x04, b'#'];
        p.extend(b"3D000No database selected");
        assert_eq!(
            error_packet(&p),
            (1046, "3D000: No database selected".to_owned())
        );
    }

    proptest::proptest! {
        /// Hostile bytes: no panic, memory within the input's size plus bounded state.
        #[test]
        fn hostile_bytes(chunks in crate::protocols::fuzzing::chunks(&[
            b"\x21\x00\x00\x00\x03select 1",
            b"\x01\x00\x00\x01\x02",
            b"\x07\x00\x00\x01\x00\x01\x00\x02\x00\x00\x00",
            b"\x0c\x00\x00\x00\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00",
            b"\x0c\x00\x00\x01\x00\x01\x00\x00\x00\x01\x00\x02\x00",
            b"\x20\x00\x00\x01\x25\x00\x00\x00",
        ])) {
            let p = crate::protocols::fuzzing::protocol(&PLUGIN, "{}");
            let total: usize = chunks.iter().map(|c| c.1.as_ref().map_or(0, Vec::len)).sum();
            let peak = crate::protocols::fuzzing::drive(&*p, Transport::Tcp, 3306, &chunks);
            proptest::prop_assert!(peak <= 2 * total + 64 * 1024, "peak {peak} for {total} bytes");
        }
    }
}
