//! Memcache text and binary protocols over TCP and UDP, as Packetbeat's `memcache` protocol.
//!
//! Hand-written (both protocols are a few lines of framing): binary messages are a 24-byte
//! header (magic 0x80/0x81, opcode, key/extras/body lengths, status or vbucket, opaque, CAS)
//! and a body; text requests are a command line plus, for storage commands, a data block of
//! the announced length; text replies a line, or `VALUE`/`STAT` lines up to `END`. Over UDP
//! every datagram starts with an 8-byte frame header whose request id pairs request and
//! reply. Binary requests pair with replies by opaque; quiet requests (`...Q`) that never get
//! a reply are published, without one, when a later reply shows the server went past them.
//! Text requests pair FIFO; `noreply` requests are published at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use skiff_config::ConfigError;
use skiff_event::{Map, Timestamp, Value};

use crate::protocol::{
    BuildArgs, CloseReason, Cx, Dir, Protocol, ProtocolPlugin, Session, StreamBuf, Transaction,
    Transport, expired,
};
use crate::protocols::common::Common;

/// `type: memcache`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "memcache",
    tcp: true,
    udp: true,
    default_ports: &[11211],
    build,
};

/// The `memcache` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemcacheConfig {
    /// `parseunknown` (default false): accept unknown text commands (as a line, no data).
    #[serde(default)]
    pub parseunknown: bool,
    /// `maxvalues` (default 0): values shown per message, base64; -1 all, 0 none.
    #[serde(default)]
    pub maxvalues: i64,
    /// `maxbytespervalue` (default unlimited): bytes shown per value.
    #[serde(default)]
    pub maxbytespervalue: Option<usize>,
    /// `udptransactiontimeout` (default 10s, the 8.x built-in): how long a UDP request waits.
    #[serde(default)]
    pub udptransactiontimeout: Option<skiff_config::Duration>,
}

struct Settings {
    cfg: MemcacheConfig,
    common: Common,
    udp_timeout: Duration,
}

struct Memcache {
    cfg: Arc<Settings>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let cfg: MemcacheConfig = args.own.deserialize()?;
    let udp_timeout = cfg
        .udptransactiontimeout
        .map_or(Duration::from_secs(10), |d| d.0);
    Ok(Arc::new(Memcache {
        cfg: Arc::new(Settings {
            cfg,
            common: Common::of(args, &PLUGIN),
            udp_timeout,
        }),
    }))
}

impl Protocol for Memcache {
    fn session(&self, t: Transport) -> Box<dyn Session> {
        Box::new(McSession {
            cfg: self.cfg.clone(),
            transport: t,
            pending: VecDeque::new(),
        })
    }
}

/// Requests waiting per session.
const MAX_PENDING: usize = 1024;
/// The largest value memcached stores by default is 1 MB; allow some slack.
const MAX_VALUE: usize = 2 << 20;
/// The longest text line accepted.
const MAX_LINE: usize = 8 << 10;

/// A parsed message, request or response.
#[derive(Default, Clone)]
struct Msg {
    ts: Timestamp,
    clock: Timestamp,
    bytes: u64,
    binary: bool,
    /// Pairing key: the opaque (binary) or the UDP request id.
    id: Option<u32>,
    quiet: bool,
    command: String,
    kind: &'static str,
    fields: Map,
    values: Vec<Vec<u8>>,
    keys: Vec<String>,
    status_code: Option<u16>,
    /// A text error reply (`ERROR`, `CLIENT_ERROR ...`, `SERVER_ERROR ...`).
    text_error: Option<(&'static str, String)>,
    /// Stats entries (name, value), for a stats reply.
    stats: Vec<(String, String)>,
    /// A binary stats reply goes on until the entry with an empty key.
    more: bool,
    /// Bytes of the stats entries gathered so far (on the request).
    gathered: u64,
}

struct McSession {
    cfg: Arc<Settings>,
    transport: Transport,
    pending: VecDeque<Msg>,
}

fn cmd_type(command: &str) -> &'static str {
    match command {
        "get" | "gets" | "gat" | "gats" => "Load",
        "set" | "add" | "replace" | "append" | "prepend" | "cas" => "Store",
        "delete" => "Delete",
        "incr" | "decr" => "Counter",
        "touch" => "Touch",
        "stats" => "Stats",
        "version" | "verbosity" | "noop" | "quit" => "Info",
        "flush_all" => "Flush",
        "sasl_list_mechs" | "sasl_auth" | "sasl_step" => "Auth",
        _ => "Unknown",
    }
}

/// Binary opcode: name, text command, quiet.
fn opcode(op: u8) -> (&'static str, &'static str, bool) {
    match op {
        0x00 => ("Get", "get", false),
        0x01 => ("Set", "set", false),
        0x02 => ("Add", "add", false),
        0x03 => ("Replace", "replace", false),
        0x04 => ("Delete", "delete", false),
        0x05 => ("Increment", "incr", false),
        0x06 => ("Decrement", "decr", false),
        0x07 => ("Quit", "quit", false),
        0x08 => ("Flush", "flush_all", false),
        0x09 => ("GetQ", "get", true),
        0x0a => ("No-op", "noop", false),
        0x0b => ("Version", "version", false),
        0x0c => ("GetK", "get", false),
        0x0d => ("GetKQ", "get", true),
        0x0e => ("Append", "append", false),
        0x0f => ("Prepend", "prepend", false),
        0x10 => ("Stat", "stats", false),
        0x11 => ("SetQ", "set", true),
        0x12 => ("AddQ", "add", true),
        0x13 => ("ReplaceQ", "replace", true),
        0x14 => ("DeleteQ", "delete", true),
        0x15 => ("IncrementQ", "incr", true),
        0x16 => ("DecrementQ", "decr", true),
        0x17 => ("QuitQ", "quit", true),
        0x18 => ("FlushQ", "flush_all", true),
        0x19 => ("AppendQ", "append", true),
        0x1a => ("PrependQ", "prepend", true),
        0x1b => ("Verbosity", "verbosity", false),
        0x1c => ("Touch", "touch", false),
        0x1d => ("GAT", "gat", false),
        0x1e => ("GATQ", "gat", true),
        0x20 => ("SASL list mechs", "sasl_list_mechs", false),
        0x21 => ("SASL Auth", "sasl_auth", false),
        0x22 => ("SASL Step", "sasl_step", false),
        _ => ("Unknown", "unknown", false),
    }
}

fn status_name(s: u16) -> &'static str {
    match s {
        0x00 => "Success",
        0x01 => "Key not found",
        0x02 => "Key exists",
        0x03 => "Value too large",
        0x04 => "Invalid arguments",
        0x05 => "Item not stored",
        0x06 => "Incr/Decr on non-numeric value",
        0x07 => "The vbucket belongs to another server",
        0x08 => "Authentication error",
        0x09 => "Authentication continue",
        0x20 => "Authentication required",
        0x81 => "Unknown command",
        0x82 => "Out of memory",
        0x83 => "Not supported",
        0x84 => "Internal error",
        0x85 => "Busy",
        0x86 => "Temporary failure",
        _ => "Unknown",
    }
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0, |a, x| (a << 8) | u64::from(*x))
}

enum Parsed {
    Done(Box<Msg>, usize),
    Incomplete,
    Invalid,
}

/// One binary message at the start of `b`.
fn binary(b: &[u8]) -> Parsed {
    if b.len() < 24 {
        return Parsed::Incomplete;
    }
    let request = match b[0] {
        0x80 => true,
        0x81 => false,
        _ => return Parsed::Invalid,
    };
    let keylen = be(&b[2..4]) as usize;
    let extlen = usize::from(b[4]);
    let body = be(&b[8..12]) as usize;
    if body > MAX_VALUE + 1024 || keylen + extlen > body {
        return Parsed::Invalid;
    }
    if b.len() < 24 + body {
        return Parsed::Incomplete;
    }
    let (name, command, quiet) = opcode(b[1]);
    let extras = &b[24..24 + extlen];
    let key = &b[24 + extlen..24 + extlen + keylen];
    let value = &b[24 + extlen + keylen..24 + body];
    let mut m = Msg {
        binary: true,
        id: Some(be(&b[12..16]) as u32),
        quiet,
        command: command.into(),
        kind: cmd_type(command),
        ..Msg::default()
    };
    let f = &mut m.fields;
    f.insert("opcode".into(), name.into());
    f.insert("opcode_value".into(), b[1].into());
    f.insert("opaque".into(), be(&b[12..16]).into());
    let cas = be(&b[16..24]);
    if cas != 0 {
        f.insert("cas_unique".into(), cas.into());
    }
    if !key.is_empty() {
        m.keys.push(String::from_utf8_lossy(key).into_owned());
    }
    if request {
        f.insert("vbucket".into(), be(&b[6..8]).into());
        f.insert("quiet".into(), quiet.into());
        match (command, extras.len()) {
            ("set" | "add" | "replace", 8) => {
                f.insert("flags".into(), be(&extras[..4]).into());
                f.insert("exptime".into(), be(&extras[4..8]).into());
            }
            ("incr" | "decr", 20) => {
                f.insert("delta".into(), be(&extras[..8]).into());
                f.insert("initial".into(), be(&extras[8..16]).into());
                f.insert("exptime".into(), be(&extras[16..20]).into());
            }
            ("touch" | "gat" | "flush_all", 4) => {
                f.insert("exptime".into(), be(extras).into());
            }
            ("verbosity", 4) => {
                f.insert("verbosity".into(), be(extras).into());
            }
            _ => {}
        }
        if !value.is_empty() || m.kind == "Store" {
            m.values.push(value.to_vec());
        }
    } else {
        let status = be(&b[6..8]) as u16;
        m.status_code = Some(status);
        f.insert("status".into(), status_name(status).into());
        f.insert("status_code".into(), status.into());
        if extras.len() == 4 {
            f.insert("flags".into(), be(extras).into());
        }
        match command {
            "stats" => {
                if !key.is_empty() {
                    m.stats.push((
                        String::from_utf8_lossy(key).into_owned(),
                        String::from_utf8_lossy(value).into_owned(),
                    ));
                    m.more = true;
                }
                m.keys.clear();
            }
            "incr" | "decr" if status == 0 && value.len() == 8 => {
                f.insert("value".into(), be(value).into());
            }
            "version" if status == 0 => {
                f.insert(
                    "version".into(),
                    String::from_utf8_lossy(value).into_owned().into(),
                );
            }
            _ if status == 0 && !value.is_empty() => m.values.push(value.to_vec()),
            _ if status != 0 && !value.is_empty() => {
                f.insert(
                    "error_msg".into(),
                    String::from_utf8_lossy(value).into_owned().into(),
                );
            }
            _ => {}
        }
    }
    Parsed::Done(Box::new(m), 24 + body)
}

fn line(b: &[u8]) -> Option<(&str, usize)> {
    let n = b.windows(2).position(|w| w == b"\r\n")?;
    Some((std::str::from_utf8(&b[..n]).ok()?, n + 2))
}

/// One text request at the start of `b`.
fn text_request(b: &[u8], parseunknown: bool) -> Parsed {
    let Some((l, n)) = line(b) else {
        return if b.len() > MAX_LINE {
            Parsed::Invalid
        } else {
            Parsed::Incomplete
        };
    };
    let words: Vec<&str> = l.split_ascii_whitespace().collect();
    let Some(&command) = words.first() else {
        return Parsed::Invalid;
    };
    let command = command.to_ascii_lowercase();
    let kind = cmd_type(&command);
    if kind == "Unknown" && !parseunknown {
        return Parsed::Invalid;
    }
    let args = &words[1..];
    let mut m = Msg {
        command: command.clone(),
        kind,
        ..Msg::default()
    };
    let noreply = args.last() == Some(&"noreply");
    let f = &mut m.fields;
    f.insert("line".into(), l.into());
    f.insert("raw_args".into(), args.join(" ").into());
    f.insert("noreply".into(), noreply.into());
    let num = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    let mut used = n;
    match command.as_str() {
        "set" | "add" | "replace" | "append" | "prepend" | "cas" => {
            let (Some(key), Some(flags), Some(exptime), Some(bytes)) =
                (args.first(), num(1), num(2), num(3))
            else {
                return Parsed::Invalid;
            };
            let bytes = bytes as usize;
            if bytes > MAX_VALUE {
                return Parsed::Invalid;
            }
            if b.len() < n + bytes + 2 {
                return Parsed::Incomplete;
            }
            m.keys.push((*key).to_owned());
            f.insert("flags".into(), flags.into());
            f.insert("exptime".into(), exptime.into());
            if command == "cas"
                && let Some(c) = num(4)
            {
                f.insert("cas_unique".into(), c.into());
            }
            m.values.push(b[n..n + bytes].to_vec());
            used = n + bytes + 2;
        }
        "get" | "gets" => m.keys = args.iter().map(|s| (*s).to_owned()).collect(),
        "gat" | "gats" => {
            if let Some(e) = num(0) {
                f.insert("exptime".into(), e.into());
            }
            m.keys = args.iter().skip(1).map(|s| (*s).to_owned()).collect();
        }
        "delete" => {
            m.keys = args
                .first()
                .map(|k| vec![(*k).to_owned()])
                .unwrap_or_default()
        }
        "incr" | "decr" => {
            m.keys = args
                .first()
                .map(|k| vec![(*k).to_owned()])
                .unwrap_or_default();
            if let Some(d) = num(1) {
                f.insert("delta".into(), d.into());
            }
        }
        "touch" => {
            m.keys = args
                .first()
                .map(|k| vec![(*k).to_owned()])
                .unwrap_or_default();
            if let Some(e) = num(1) {
                f.insert("exptime".into(), e.into());
            }
        }
        "verbosity" => {
            if let Some(v) = num(0) {
                f.insert("verbosity".into(), v.into());
            }
        }
        "flush_all" => {
            if let Some(v) = num(0) {
                f.insert("exptime".into(), v.into());
            }
        }
        _ => {}
    }
    // `quit` is never answered either.
    m.quiet = noreply || command == "quit";
    Parsed::Done(Box::new(m), used)
}

/// One text reply at the start of `b`, for a request of `kind`.
fn text_response(b: &[u8]) -> Parsed {
    let mut at = 0;
    let mut m = Msg::default();
    loop {
        let Some((l, n)) = line(&b[at..]) else {
            return if b.len() - at > MAX_LINE {
                Parsed::Invalid
            } else {
                Parsed::Incomplete
            };
        };
        let words: Vec<&str> = l.split_ascii_whitespace().collect();
        let first = words.first().copied().unwrap_or("");
        match first {
            "VALUE" => {
                let (Some(key), Some(flags), Some(len)) = (
                    words.get(1),
                    words.get(2).and_then(|w| w.parse::<u64>().ok()),
                    words.get(3).and_then(|w| w.parse::<usize>().ok()),
                ) else {
                    return Parsed::Invalid;
                };
                if len > MAX_VALUE {
                    return Parsed::Invalid;
                }
                let start = at + n;
                if b.len() < start + len + 2 {
                    return Parsed::Incomplete;
                }
                m.keys.push((*key).to_owned());
                m.fields.insert("flags".into(), flags.into());
                if let Some(c) = words.get(4).and_then(|w| w.parse::<u64>().ok()) {
                    m.fields.insert("cas_unique".into(), c.into());
                }
                m.values.push(b[start..start + len].to_vec());
                m.command = "VALUE".into();
                m.kind = "Load";
                at = start + len + 2;
            }
            "STAT" => {
                m.stats.push((
                    words.get(1).copied().unwrap_or("").to_owned(),
                    words.get(2..).map(|w| w.join(" ")).unwrap_or_default(),
                ));
                m.command = "STAT".into();
                m.kind = "Stats";
                at += n;
            }
            "END" => {
                if m.command.is_empty() {
                    m.command = "END".into();
                    m.kind = "Load";
                }
                return Parsed::Done(Box::new(m), at + n);
            }
            _ if !m.command.is_empty() => return Parsed::Invalid,
            _ => {
                m.command = first.to_owned();
                m.kind = match first {
                    "STORED" | "DELETED" | "TOUCHED" | "OK" => "Success",
                    "NOT_STORED" | "EXISTS" | "NOT_FOUND" => "Fail",
                    "VERSION" => "Info",
                    "ERROR" => {
                        m.text_error = Some(("Error", l.to_owned()));
                        "Fail"
                    }
                    "CLIENT_ERROR" => {
                        m.text_error = Some(("Client Error", l.to_owned()));
                        "Fail"
                    }
                    "SERVER_ERROR" => {
                        m.text_error = Some(("Server Error", l.to_owned()));
                        "Fail"
                    }
                    _ if first.parse::<u64>().is_ok() => {
                        m.command = "VALUE".into();
                        m.fields
                            .insert("value".into(), first.parse::<u64>().unwrap_or(0).into());
                        "Counter"
                    }
                    _ => return Parsed::Invalid,
                };
                if first == "VERSION" {
                    m.fields
                        .insert("version".into(), words.get(1).copied().unwrap_or("").into());
                }
                if let Some((_, text)) = &m.text_error {
                    m.fields.insert("error_msg".into(), text.clone().into());
                }
                return Parsed::Done(Box::new(m), at + n);
            }
        }
    }
}

impl McSession {
    fn values_field(&self, values: &[Vec<u8>]) -> Option<Value> {
        let max = self.cfg.cfg.maxvalues;
        if max == 0 || values.is_empty() {
            return None;
        }
        let n = if max < 0 { values.len() } else { max as usize };
        let per = self.cfg.cfg.maxbytespervalue.unwrap_or(usize::MAX);
        Some(Value::Array(
            values
                .iter()
                .take(n)
                .map(|v| base64::engine::general_purpose::STANDARD.encode(&v[..v.len().min(per)]))
                .map(Value::from)
                .collect(),
        ))
    }

    fn side(&self, tx: &mut Transaction, name: &str, m: &Msg) {
        for (k, v) in &m.fields {
            tx.set(&format!("memcache.{name}.{k}"), v.clone());
        }
        if !m.command.is_empty() {
            tx.set(&format!("memcache.{name}.command"), m.command.clone());
        }
        if !m.kind.is_empty() {
            tx.set(&format!("memcache.{name}.type"), m.kind);
        }
        if !m.keys.is_empty() {
            tx.set(&format!("memcache.{name}.keys"), m.keys.clone());
        }
        if !m.values.is_empty() {
            tx.set(&format!("memcache.{name}.count_values"), m.values.len());
            let bytes: usize = m.values.iter().map(Vec::len).sum();
            tx.set(&format!("memcache.{name}.bytes"), bytes);
            if let Some(v) = self.values_field(&m.values) {
                tx.set(&format!("memcache.{name}.values"), v);
            }
        }
        if !m.stats.is_empty() {
            let stats: Vec<Value> = m
                .stats
                .iter()
                .map(|(n, v)| serde_json::json!({"name": n, "value": v}))
                .collect();
            tx.set(&format!("memcache.{name}.stats"), stats);
        }
    }

    fn publish(&self, cx: &mut Cx<'_>, req: Option<Msg>, resp: Option<Msg>, note: Option<&str>) {
        let mut tx = Transaction::new("memcache", self.cfg.common.client_dir(cx.conn));
        let binary = req.as_ref().or(resp.as_ref()).is_some_and(|m| m.binary);
        tx.set(
            "memcache.protocol_type",
            if binary { "binary" } else { "text" },
        );
        if let Some(r) = &req {
            tx.start = Some(r.ts);
            tx.request_bytes = Some(r.bytes);
            self.side(&mut tx, "request", r);
        }
        if let Some(r) = &resp {
            tx.end = Some(r.ts);
            tx.response_bytes = Some(r.bytes);
            self.side(&mut tx, "response", r);
            tx.status = match (r.status_code, &r.text_error) {
                (Some(0), _) | (None, None) => "OK",
                (Some(s), _) if s >= 0x80 => "Server Error",
                (Some(_), _) => "Error",
                (None, Some((s, _))) => s,
            };
        }
        if req.is_none() {
            tx.status = "Client Error";
            tx.note("Invalid transaction. Request missing");
        }
        if let Some(n) = note {
            tx.note(n);
            if resp.is_none() && !req.as_ref().is_some_and(|r| r.quiet) {
                tx.status = "Server Error";
            }
        }
        cx.emit(tx);
    }

    fn request(&mut self, cx: &mut Cx<'_>, m: Msg) {
        if !m.binary && m.quiet {
            // noreply: no answer will come.
            self.publish(cx, Some(m), None, None);
            return;
        }
        if self.pending.len() >= MAX_PENDING
            && let Some(old) = self.pending.pop_front()
        {
            self.publish(cx, Some(old), None, Some("Unfinished transaction"));
        }
        self.pending.push_back(m);
    }

    fn response(&mut self, cx: &mut Cx<'_>, m: Msg) {
        let pos = match m.id {
            Some(id) if m.binary || self.transport == Transport::Udp => {
                self.pending.iter().position(|r| r.id == Some(id))
            }
            _ => (!self.pending.is_empty()).then_some(0),
        };
        let Some(pos) = pos else {
            self.publish(cx, None, Some(m), None);
            return;
        };
        // Quiet requests sent before this one got no answer: that was their answer.
        for _ in 0..pos {
            if let Some(q) = self.pending.pop_front() {
                if q.quiet {
                    self.publish(cx, Some(q), None, None);
                } else {
                    self.publish(
                        cx,
                        Some(q),
                        None,
                        Some("Missing response for non-quiet request"),
                    );
                }
            }
        }
        if m.more {
            // A binary stats entry: gather until the closing empty one.
            if let Some(r) = self.pending.front_mut() {
                let stats = r.stats.len();
                if stats < 4096 {
                    r.stats.extend(m.stats);
                }
                r.gathered += m.bytes;
            }
            return;
        }
        let Some(mut req) = self.pending.pop_front() else {
            return;
        };
        let mut resp = m;
        resp.bytes += req.gathered;
        if !req.stats.is_empty() {
            resp.stats = std::mem::take(&mut req.stats);
        }
        self.publish(cx, Some(req), Some(resp), None);
    }

    fn message(
        &mut self,
        cx: &mut Cx<'_>,
        client: bool,
        b: &[u8],
        udp_id: Option<u32>,
    ) -> Option<usize> {
        let parsed = if b.first().is_some_and(|&c| c == 0x80 || c == 0x81) {
            binary(b)
        } else if client {
            text_request(b, self.cfg.cfg.parseunknown)
        } else {
            text_response(b)
        };
        match parsed {
            Parsed::Done(mut m, n) => {
                m.ts = cx.now;
                m.clock = cx.clock;
                m.bytes = n as u64;
                if let Some(id) = udp_id {
                    m.id = Some(id);
                }
                let request = if m.binary { b[0] == 0x80 } else { client };
                if request {
                    self.request(cx, *m);
                } else {
                    self.response(cx, *m);
                }
                Some(n)
            }
            Parsed::Incomplete => None,
            Parsed::Invalid => Some(usize::MAX),
        }
    }
}

impl Session for McSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        let client = dir == self.cfg.common.client_dir(cx.conn);
        if self.transport == Transport::Udp {
            let data = buf.data().to_vec();
            buf.clear();
            // Frame header: request id, sequence, datagram count, reserved.
            if data.len() < 8 {
                return;
            }
            let id = u32::from(u16::from_be_bytes([data[0], data[1]])) | 1 << 16;
            let mut at = 8;
            while at < data.len() {
                match self.message(cx, client, &data[at..], Some(id)) {
                    Some(n) if n != usize::MAX => at += n,
                    _ => break,
                }
            }
            return;
        }
        loop {
            if buf.is_empty() {
                return;
            }
            let data = buf.data().to_vec();
            match self.message(cx, client, &data, None) {
                Some(usize::MAX) => {
                    buf.clear();
                    return;
                }
                Some(n) => buf.consume(n),
                None => return,
            }
        }
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        let t = if self.transport == Transport::Udp {
            self.cfg.udp_timeout
        } else {
            self.cfg.common.timeout
        };
        while self
            .pending
            .front()
            .is_some_and(|m| expired(m.clock, cx.clock, t))
        {
            if let Some(m) = self.pending.pop_front() {
                let note = (!m.quiet).then_some("Missing response for non-quiet request");
                self.publish(cx, Some(m), None, note);
            }
        }
    }

    fn close(&mut self, cx: &mut Cx<'_>, why: CloseReason) {
        while let Some(m) = self.pending.pop_front() {
            if m.quiet {
                self.publish(cx, Some(m), None, None);
            } else if why != CloseReason::EndOfInput {
                self.publish(cx, Some(m), None, Some("Unfinished transaction"));
            }
        }
    }

    fn held_bytes(&self) -> usize {
        self.pending
            .iter()
            .map(|m| m.values.iter().map(Vec::len).sum::<usize>() + 256)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reply_with_values() {
        let b = b"VALUE k1 0 2\r\nab\r\nVALUE k2 0 1\r\nc\r\nEND\r\n";
        let Parsed::Done(m, n) = text_response(b) else {
            panic!("not parsed")
        };
        assert_eq!(n, b.len());
        assert_eq!(m.keys, vec!["k1", "k2"]);
        assert_eq!(m.values.len(), 2);
        assert!(matches!(
            text_response(b"VALUE k1 0 2\r\na"),
            Parsed::Incomplete
        ));
    }

    proptest::proptest! {
        /// Hostile bytes: no panic, memory within the input's size plus bounded state.
        #[test]
        fn hostile_bytes(udp: bool, chunks in crate::protocols::fuzzing::chunks(&[
            b"set k 0 0 3\r\nabc\r\n",
            b"get a b\r\n",
            b"VALUE a 0 1\r\n",
            b"\x80\x0d\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05",
            b"\x81\x10\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x05",
            b"\x00\x01\x00\x00\x00\x01\x00\x00get a\r\n",
        ])) {
            let p = crate::protocols::fuzzing::protocol(&PLUGIN, "{maxvalues: -1}");
            let t = if udp { Transport::Udp } else { Transport::Tcp };
            let total: usize = chunks.iter().map(|c| c.1.as_ref().map_or(0, Vec::len)).sum();
            let peak = crate::protocols::fuzzing::drive(&*p, t, 11211, &chunks);
            proptest::prop_assert!(peak <= 4 * total + 300 * 1024, "peak {peak} for {total} bytes");
        }
    }
}
