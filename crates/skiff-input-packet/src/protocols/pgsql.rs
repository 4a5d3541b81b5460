//! PostgreSQL frontend/backend protocol v3, as Packetbeat's `pgsql` protocol: one event per
//! statement, simple and extended query protocol alike.
//!
//! Framing is hand-written (a type byte and a 4-byte big-endian length that counts itself;
//! the startup, SSL and cancel requests have no type byte; the answer to an SSL request is
//! one byte). Requests wait per connection in a FIFO:
//! * a simple query (`Q`) is split into its statements (`;` outside quotes), one request
//!   each, as Packetbeat does;
//! * in the extended protocol each `Execute` is one request, its text found through the
//!   portal's `Bind` and the statement's `Parse` (named statements are remembered, so a
//!   driver re-executing a cached statement is still named). Statements starting with
//!   `SET ` are not reported (drivers send them at connect), as in Packetbeat.
//!
//! A response is its `RowDescription`, `DataRow`s and `CommandComplete` (or an
//! `ErrorResponse`/`EmptyQueryResponse`); the bytes and the end time count from its first
//! message, as Packetbeat counts them, and other backend messages (`ParseComplete`,
//! `BindComplete`, notices, ...) are skipped. `ReadyForQuery` ends a query cycle: requests
//! of that cycle still waiting (the statements after an error) are dropped, so one error
//! does not shift every later answer onto the wrong request.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::Deserialize;
use skiff_config::ConfigError;
use skiff_event::Timestamp;

use crate::protocol::{
    BuildArgs, Cx, Dir, GapAction, Protocol, ProtocolPlugin, Session, StreamBuf, Transaction,
    Transport, expired,
};
use crate::protocols::common::Common;
use crate::protocols::resultset::{ResultText, statement_method};

/// `type: pgsql`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "pgsql",
    tcp: true,
    udp: false,
    default_ports: &[5432],
    build,
};

/// The `pgsql` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgsqlConfig {
    /// `max_rows` (default 10): rows kept for the `response` text.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// `max_row_length` (default 1024): bytes kept per row for the `response` text.
    #[serde(default = "default_max_row_length")]
    pub max_row_length: usize,
}

fn default_max_rows() -> usize {
    10
}
fn default_max_row_length() -> usize {
    1024
}

struct Settings {
    cfg: PgsqlConfig,
    common: Common,
}

struct Pgsql {
    cfg: Arc<Settings>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let cfg: PgsqlConfig = args.own.deserialize()?;
    Ok(Arc::new(Pgsql {
        cfg: Arc::new(Settings {
            cfg,
            common: Common::of(args, &PLUGIN),
        }),
    }))
}

impl Protocol for Pgsql {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(PgsqlSession {
            cfg: self.cfg.clone(),
            tls: false,
            expect_ssl_answer: false,
            skip: [0; 2],
            queue: VecDeque::new(),
            cycle: 0,
            group: None,
            statements: HashMap::new(),
            portals: HashMap::new(),
            response: None,
        })
    }
}

/// The largest message accepted (PostgreSQL's own limit is 1 GiB).
const MAX_MESSAGE: usize = 1 << 30;
/// Requests waiting per connection.
const MAX_QUEUE: usize = 1024;
/// Named statements and portals remembered per connection.
const MAX_NAMES: usize = 1024;
/// Bytes of a statement's text kept.
const MAX_QUERY: usize = 1 << 20;

struct Request {
    ts: Timestamp,
    clock: Timestamp,
    bytes: u64,
    query: String,
    method: String,
    /// Not reported (`SET` in the extended protocol): its answer is consumed silently.
    hidden: bool,
    /// The query cycle (up to `ReadyForQuery`) it belongs to.
    cycle: u64,
}

/// An extended-protocol group being read (up to `Sync`).
struct Group {
    ts: Timestamp,
    clock: Timestamp,
    /// Bytes since the last `Execute`.
    bytes: u64,
    /// Requests of the group, queued at `Sync`.
    requests: Vec<Request>,
}

#[derive(Default)]
struct Response {
    ts: Option<Timestamp>,
    bytes: u64,
    num_fields: u64,
    num_rows: u64,
    binary: Vec<bool>,
    text: ResultText,
    error: Option<(String, String, String)>,
}

struct PgsqlSession {
    cfg: Arc<Settings>,
    tls: bool,
    expect_ssl_answer: bool,
    /// Bytes of the current message still to skip, per direction.
    skip: [usize; 2],
    queue: VecDeque<Request>,
    cycle: u64,
    group: Option<Group>,
    statements: HashMap<Vec<u8>, String>,
    portals: HashMap<Vec<u8>, String>,
    response: Option<Response>,
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// A NUL-terminated string at `at`: bytes and the offset after the NUL.
fn cstr(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = b.get(at..)?;
    let n = rest.iter().position(|&c| c == 0)?;
    Some((&rest[..n], at + n + 1))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(MAX_QUERY)]).into_owned()
}

fn frontend_type(t: u8) -> bool {
    b"QPBDESHCFXpdcf".contains(&t)
}

fn backend_type(t: u8) -> bool {
    b"RSKZTDCIEN12AnstGHWVcdv3".contains(&t)
}

/// The statements of a simple query: split on `;` outside quotes, blanks trimmed, empty
/// ones left out.
fn split_statements(q: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in q.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, ';') => {
                out.push(&q[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&q[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// `(severity, SQLSTATE, message)` of an ErrorResponse body.
fn error_fields(body: &[u8]) -> (String, String, String) {
    let (mut sev, mut code, mut msg) = (String::new(), String::new(), String::new());
    let mut at = 0;
    while let Some(&t) = body.get(at) {
        if t == 0 {
            break;
        }
        let Some((v, next)) = cstr(body, at + 1) else {
            break;
        };
        match t {
            b'S' => sev = lossy(v),
            b'C' => code = lossy(v),
            b'M' => msg = lossy(v),
            _ => {}
        }
        at = next;
    }
    (sev, code, msg)
}

/// Column names and binary flags of a RowDescription body.
fn row_description(body: &[u8]) -> Option<(Vec<String>, Vec<bool>)> {
    let n = usize::from(be_u16(body, 0)?);
    let mut at = 2;
    let mut names = Vec::with_capacity(n.min(1024));
    let mut binary = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let (name, next) = cstr(body, at)?;
        // table oid (4), column (2), type oid (4), size (2), modifier (4), format (2)
        let format = be_u16(body, next + 16)?;
        names.push(lossy(name));
        binary.push(format == 1);
        at = next + 18;
    }
    Some((names, binary))
}

/// The cells of a DataRow body (NULL as `NULL`, binary cells as `\x` hex).
fn data_row(body: &[u8], binary: &[bool]) -> Vec<Vec<u8>> {
    let n = be_u16(body, 0).map_or(0, usize::from);
    let mut at = 2;
    let mut cells = Vec::new();
    for i in 0..n {
        let Some(len) = be_u32(body, at) else { break };
        at += 4;
        if len == u32::MAX {
            cells.push(b"NULL".to_vec());
            continue;
        }
        let Some(v) = body.get(at..at.saturating_add(len as usize)) else {
            break;
        };
        at += v.len();
        if binary.get(i).copied().unwrap_or(false) {
            let mut hex = b"\\x".to_vec();
            for b in v.iter().take(512) {
                hex.extend(format!("{b:02x}").as_bytes());
            }
            cells.push(hex);
        } else {
            cells.push(v.to_vec());
        }
    }
    cells
}

impl PgsqlSession {
    fn request(&self, cx: &Cx<'_>, ts: Timestamp, query: &str, hidden: bool) -> Request {
        let (query, method) = statement_method(query);
        Request {
            ts,
            clock: cx.clock,
            bytes: 0,
            hidden: hidden || query.starts_with("SET "),
            query,
            method,
            cycle: self.cycle,
        }
    }

    fn enqueue(&mut self, r: Request) {
        if self.queue.len() >= MAX_QUEUE {
            self.queue.pop_front();
        }
        self.queue.push_back(r);
    }

    fn frontend(&mut self, cx: &mut Cx<'_>, typ: u8, body: &[u8], total: usize) {
        match typ {
            b'Q' => {
                let text = lossy(cstr(body, 0).map_or(body, |s| s.0));
                for stmt in split_statements(&text) {
                    let mut r = self.request(cx, cx.now, stmt, false);
                    r.hidden = false;
                    r.bytes = total as u64;
                    self.enqueue(r);
                }
                self.cycle += 1;
            }
            b'S' => {
                if let Some(mut g) = self.group.take() {
                    if let Some(last) = g.requests.last_mut() {
                        last.bytes += g.bytes + total as u64;
                    }
                    for r in g.requests {
                        self.enqueue(r);
                    }
                }
                self.cycle += 1;
            }
            _ => {
                let g = self.group.get_or_insert(Group {
                    ts: cx.now,
                    clock: cx.clock,
                    bytes: 0,
                    requests: Vec::new(),
                });
                g.bytes += total as u64;
                let (ts, clock) = (g.ts, g.clock);
                match typ {
                    b'P' => {
                        if let Some((name, next)) = cstr(body, 0)
                            && let Some((q, _)) = cstr(body, next)
                            && (self.statements.len() < MAX_NAMES
                                || self.statements.contains_key(name))
                        {
                            self.statements.insert(name.to_vec(), lossy(q));
                        }
                    }
                    b'B' => {
                        if let Some((portal, next)) = cstr(body, 0)
                            && let Some((stmt, _)) = cstr(body, next)
                            && let Some(q) = self.statements.get(stmt)
                            && (self.portals.len() < MAX_NAMES || self.portals.contains_key(portal))
                        {
                            self.portals.insert(portal.to_vec(), q.clone());
                        }
                    }
                    b'E' => {
                        let q = cstr(body, 0)
                            .and_then(|(p, _)| self.portals.get(p))
                            .cloned();
                        let mut r = self.request(cx, ts, q.as_deref().unwrap_or("EXECUTE"), false);
                        r.clock = clock;
                        if let Some(g) = &mut self.group {
                            r.bytes = std::mem::take(&mut g.bytes);
                            if g.requests.len() < MAX_QUEUE {
                                g.requests.push(r);
                            }
                        }
                    }
                    b'C' => {
                        // Close of a statement ('S') or portal ('P').
                        if let Some((name, _)) = cstr(body, 1) {
                            match body.first() {
                                Some(b'S') => self.statements.remove(name),
                                _ => self.portals.remove(name),
                            };
                        }
                    }
                    b'X' => self.group = None,
                    _ => {}
                }
            }
        }
    }

    fn backend(&mut self, cx: &mut Cx<'_>, typ: u8, body: &[u8], total: usize) {
        match typ {
            b'T' => {
                let r = self.response.get_or_insert_with(Response::default);
                r.ts.get_or_insert(cx.now);
                r.bytes += total as u64;
                if let Some((names, binary)) = row_description(body) {
                    r.num_fields = names.len() as u64;
                    r.text.columns = names;
                    r.binary = binary;
                }
            }
            b'D' => {
                let r = self.response.get_or_insert_with(Response::default);
                r.ts.get_or_insert(cx.now);
                r.bytes += total as u64;
                r.num_rows += 1;
                if r.text.wants_rows(self.cfg.cfg.max_rows) {
                    let cells = data_row(body, &r.binary);
                    r.text
                        .push_row(cells, self.cfg.cfg.max_rows, self.cfg.cfg.max_row_length);
                }
            }
            b'C' | b'E' | b'I' => {
                let mut r = self.response.take().unwrap_or_default();
                r.ts.get_or_insert(cx.now);
                r.bytes += total as u64;
                if typ == b'E' {
                    r.error = Some(error_fields(body));
                }
                self.finish(cx, r);
            }
            b'Z' => {
                self.response = None;
                // The cycle is over: whatever of it still waits got no answer.
                if let Some(c) = self.queue.front().map(|r| r.cycle) {
                    while self.queue.front().is_some_and(|r| r.cycle == c) {
                        self.queue.pop_front();
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, cx: &mut Cx<'_>, r: Response) {
        let Some(req) = self.queue.pop_front() else {
            return;
        };
        if req.hidden {
            return;
        }
        let mut tx = Transaction::new("pgsql", self.cfg.common.client_dir(cx.conn));
        tx.start = Some(req.ts);
        tx.end = r.ts;
        tx.request_bytes = Some(req.bytes);
        tx.response_bytes = Some(r.bytes);
        tx.set("method", req.method);
        tx.set("query", req.query.clone());
        tx.set("pgsql.num_rows", r.num_rows);
        tx.set("pgsql.num_fields", r.num_fields);
        if let Some((sev, code, msg)) = r.error {
            tx.status = "Error";
            tx.set("pgsql.error_code", code);
            tx.set("pgsql.error_message", msg);
            tx.set("pgsql.error_severity", sev);
        }
        if self.cfg.common.send_request {
            tx.set("request", req.query);
        }
        if self.cfg.common.send_response {
            tx.set("response", r.text.csv());
        }
        cx.emit(tx);
    }

    fn messages(&mut self, cx: &mut Cx<'_>, dir: Dir, b: &mut StreamBuf) {
        let client = dir == self.cfg.common.client_dir(cx.conn);
        let d = dir.index();
        loop {
            if self.skip[d] > 0 {
                let n = self.skip[d].min(b.len());
                b.consume(n);
                self.skip[d] -= n;
                if self.skip[d] > 0 {
                    return;
                }
            }
            let data = b.data();
            let Some(&typ) = data.first() else { return };
            if !client && self.expect_ssl_answer {
                self.expect_ssl_answer = false;
                if typ == b'S' {
                    // TLS from here on: nothing more to read.
                    self.tls = true;
                    b.clear();
                    return;
                }
                if typ == b'N' {
                    b.consume(1);
                    continue;
                }
            }
            if data.len() < 8 && (typ == 0 || data.len() < 5) {
                return;
            }
            if client && typ == 0 {
                // Startup, SSL or cancel request: length and code, no type byte.
                let len = be_u32(data, 0).unwrap_or(0) as usize;
                if !(8..=10_000).contains(&len) {
                    b.clear();
                    return;
                }
                if be_u32(data, 4) == Some(80_877_103) {
                    self.expect_ssl_answer = true;
                }
                self.skip[d] = len;
                continue;
            }
            let len = be_u32(data, 1).unwrap_or(0) as usize;
            let valid = if client {
                frontend_type(typ)
            } else {
                backend_type(typ)
            };
            if !valid || !(4..=MAX_MESSAGE).contains(&len) {
                // Not a message start: the stream is lost until a segment starts cleanly.
                b.clear();
                return;
            }
            let total = 1 + len;
            // Rows past `max_rows` are counted from their header and skipped.
            if !client
                && typ == b'D'
                && let Some(r) = &mut self.response
                && !r.text.wants_rows(self.cfg.cfg.max_rows)
            {
                r.num_rows += 1;
                r.bytes += total as u64;
                self.skip[d] = total;
                continue;
            }
            if data.len() < total {
                return;
            }
            let body = data[5..total].to_vec();
            b.consume(total);
            if client {
                self.frontend(cx, typ, &body, total);
            } else {
                self.backend(cx, typ, &body, total);
            }
        }
    }
}

impl Session for PgsqlSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        if self.tls {
            buf.clear();
            return;
        }
        self.messages(cx, dir, buf);
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Dir, missing: u64, buf: &mut StreamBuf) -> GapAction {
        let _ = buf;
        let d = dir.index();
        if (self.skip[d] as u64) >= missing {
            self.skip[d] -= missing as usize;
            if let Some(r) = &mut self.response
                && dir != self.cfg.common.client_dir(cx.conn)
            {
                r.bytes += missing;
            }
            return GapAction::Continue;
        }
        GapAction::Drop
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        // As Packetbeat: requests without an answer are dropped.
        let t = self.cfg.common.timeout;
        self.queue.retain(|r| !expired(r.clock, cx.clock, t));
    }

    fn held_bytes(&self) -> usize {
        self.queue.iter().map(|r| r.query.len() + 64).sum::<usize>()
            + self
                .statements
                .values()
                .chain(self.portals.values())
                .map(|q| q.len() + 64)
                .sum::<usize>()
            + self.response.as_ref().map_or(0, |r| r.text.held_bytes())
            + self
                .group
                .as_ref()
                .map_or(0, |g| g.requests.iter().map(|r| r.query.len() + 64).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes() {
        assert_eq!(
            split_statements("select ';'; insert into t values (\"a;b\") ;  ;"),
            vec!["select ';'", "insert into t values (\"a;b\")"]
        );
    }

    #[test]
    fn error_fields_read() {
        let body = b"SERROR\0C23505\0Mduplicate key\0\0";
        assert_eq!(
            error_fields(body),
            ("ERROR".into(), "23505".into(), "duplicate key".into())
        );
    }

    proptest::proptest! {
        /// Hostile bytes: no panic, memory within the input's size plus bounded state.
        #[test]
        fn hostile_bytes(chunks in crate::protocols::fuzzing::chunks(&[
            b"Q\x00\x00\x00\x0dselect 1\x00",
            b"P\x00\x00\x00\x0c\x00select\x00\x00\x00B\x00\x00\x00\x0c\x00\x00\x00\x00\x00\x00\x00\x00E\x00\x00\x00\x09\x00\x00\x00\x00\x00S\x00\x00\x00\x04",
            b"T\x00\x00\x00\x1b\x00\x01a\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00",
            b"D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x01x",
            b"C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I",
            b"\x00\x00\x00\x08\x04\xd2\x16/",
        ])) {
            let p = crate::protocols::fuzzing::protocol(&PLUGIN, "{}");
            let total: usize = chunks.iter().map(|c| c.1.as_ref().map_or(0, Vec::len)).sum();
            let peak = crate::protocols::fuzzing::drive(&*p, Transport::Tcp, 5432, &chunks);
            proptest::prop_assert!(peak <= 4 * total + 64 * 1024, "peak {peak} for {total} bytes");
        }
    }
}
