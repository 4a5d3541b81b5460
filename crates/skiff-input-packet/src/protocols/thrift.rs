//! Apache Thrift RPC, as Packetbeat's `thrift` protocol: one event per call and reply, over
//! the socket (unframed) or framed transport, in the binary (strict or old) and compact
//! protocols.
//!
//! Hand-written: the `thrift` crate decodes into generated types, not the self-describing
//! walk a capture needs (field id, type, value). Values render as Packetbeat renders them:
//! `(1: 1, 2: "x")` for structs and parameter lists, `[..]` lists, `{..}` sets and maps,
//! strings quoted and cut at `string_max_size`, collections cut at `collection_max_size`.
//! One call is outstanding per connection: a call that is replaced before its reply is
//! published as a oneway call (no response), as in Packetbeat.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use skiff_config::ConfigError;
use skiff_event::Timestamp;

use crate::protocol::{
    BuildArgs, CloseReason, Cx, Dir, Protocol, ProtocolPlugin, Session, StreamBuf, Transaction,
    Transport, expired,
};
use crate::protocols::common::Common;

/// `type: thrift`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "thrift",
    tcp: true,
    udp: false,
    default_ports: &[9090],
    build,
};

/// The `thrift` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThriftConfig {
    /// `transport_type` (default `socket`): `socket` or `framed` (both are recognised either
    /// way; this says which to try first).
    #[serde(default = "socket")]
    pub transport_type: String,
    /// `protocol_type` (default `binary`): `binary` or `compact` (both are recognised).
    #[serde(default = "binary")]
    pub protocol_type: String,
    /// `idl_files` (default none): Thrift IDL files whose services name the parameters and
    /// exceptions of their functions (`path`, `thrift.service`).
    #[serde(default)]
    pub idl_files: Vec<String>,
    /// `string_max_size` (default 200): characters shown per string.
    #[serde(default = "default_string_max")]
    pub string_max_size: usize,
    /// `collection_max_size` (default 15): elements shown per collection.
    #[serde(default = "default_collection_max")]
    pub collection_max_size: usize,
    /// `capture_reply` (default true): decode replies (false: only the method name).
    #[serde(default = "yes")]
    pub capture_reply: bool,
    /// `obfuscate_strings` (default false): strings show as `"*"`.
    #[serde(default)]
    pub obfuscate_strings: bool,
    /// `drop_after_n_struct_fields` (default 500): a struct with more fields drops the
    /// message.
    #[serde(default = "default_struct_fields")]
    pub drop_after_n_struct_fields: usize,
}

fn socket() -> String {
    "socket".into()
}
fn binary() -> String {
    "binary".into()
}
fn yes() -> bool {
    true
}
fn default_string_max() -> usize {
    200
}
fn default_collection_max() -> usize {
    15
}
fn default_struct_fields() -> usize {
    500
}

struct Settings {
    cfg: ThriftConfig,
    common: Common,
    idl: HashMap<String, Function>,
}

/// A function of an IDL service: its service, parameter and exception names by field id.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Function {
    /// The service declaring it.
    pub service: String,
    /// Parameter names by id.
    pub params: HashMap<i16, String>,
    /// Exception names by id.
    pub throws: HashMap<i16, String>,
}

/// Removes `//`, `#` and `/* */` comments.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |x| x.1);
        } else if rest.starts_with("//") || rest.starts_with('#') {
            rest = rest.split_once('\n').map_or("", |x| x.1);
            out.push('\n');
        } else if rest.starts_with('"') {
            let end = rest[1..].find('"').map_or(rest.len(), |i| i + 2);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// `1: required i32 name = 3, 2: map<a, b> other` as ids and names.
fn fields_of(list: &str) -> HashMap<i16, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in list.char_indices() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            ',' | ';' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    let mut out = HashMap::new();
    for p in parts {
        let p = p.split('=').next().unwrap_or("");
        let Some((id, decl)) = p.split_once(':') else {
            continue;
        };
        let (Ok(id), Some(name)) = (id.trim().parse::<i16>(), decl.split_whitespace().last())
        else {
            continue;
        };
        out.insert(id, name.to_owned());
    }
    out
}

/// The functions of the services of an IDL text, by name.
pub fn parse_idl(text: &str) -> HashMap<String, Function> {
    let text = strip_comments(text);
    let mut out = HashMap::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("service") {
        let after = &rest[i + 7..];
        let boundary = rest[..i]
            .chars()
            .last()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_');
        if !boundary || !after.starts_with(char::is_whitespace) {
            rest = after;
            continue;
        }
        let service = after.split_whitespace().next().unwrap_or("").to_owned();
        let Some(open) = after.find('{') else { break };
        // The service's closing brace (defaults like `= {}` nest).
        let mut depth = 0;
        let mut close = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        if close == after.len() {
            break;
        }
        let mut body = &after[open + 1..close];
        while let Some(p) = body.find('(') {
            let name = body[..p]
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .rfind(|w| !w.is_empty())
                .unwrap_or("")
                .to_owned();
            let Some(end) = body[p..].find(')').map(|e| p + e) else {
                break;
            };
            let mut f = Function {
                service: service.clone(),
                params: fields_of(&body[p + 1..end]),
                throws: HashMap::new(),
            };
            body = &body[end + 1..];
            let t = body.trim_start();
            if let Some(t) = t.strip_prefix("throws")
                && let Some(o) = t.find('(')
                && let Some(c) = t.find(')')
                && o < c
            {
                f.throws = fields_of(&t[o + 1..c]);
                body = &t[c + 1..];
            }
            if !name.is_empty() {
                out.insert(name, f);
            }
        }
        rest = &after[close + 1..];
    }
    out
}

struct Thrift {
    cfg: Arc<Settings>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let cfg: ThriftConfig = args.own.deserialize()?;
    for (key, v, ok) in [
        ("transport_type", &cfg.transport_type, ["socket", "framed"]),
        ("protocol_type", &cfg.protocol_type, ["binary", "compact"]),
    ] {
        if !ok.contains(&v.as_str()) {
            return Err(ConfigError::new(
                &args.own.path,
                args.own.mark.clone(),
                format!("{key}: {v} is not one of {ok:?}"),
            ));
        }
    }
    let mut idl = HashMap::new();
    for f in &cfg.idl_files {
        let text = std::fs::read_to_string(f).map_err(|e| {
            ConfigError::new(
                &args.own.path,
                args.own.mark.clone(),
                format!("idl_files: {f}: {e}"),
            )
        })?;
        idl.extend(parse_idl(&text));
    }
    Ok(Arc::new(Thrift {
        cfg: Arc::new(Settings {
            cfg,
            common: Common::of(args, &PLUGIN),
            idl,
        }),
    }))
}

impl Protocol for Thrift {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(ThriftSession {
            cfg: self.cfg.clone(),
            call: None,
        })
    }
}

/// The largest message accepted.
const MAX_MESSAGE: usize = 16 << 20;
/// Nesting deeper than this is refused.
const MAX_DEPTH: usize = 64;

/// A decoded message.
struct Msg {
    ts: Timestamp,
    clock: Timestamp,
    bytes: u64,
    name: String,
    kind: u8,
    /// The rendered argument struct (calls) or the reply's fields.
    fields: Vec<(i16, String)>,
}

struct ThriftSession {
    cfg: Arc<Settings>,
    call: Option<Msg>,
}

enum Out<T> {
    Done(T),
    Incomplete,
    Invalid,
}

/// A reader for either protocol; `None` means the bytes ran out.
struct Rd<'a> {
    b: &'a [u8],
    at: usize,
    compact: bool,
    cfg: &'a ThriftConfig,
    last_id: Vec<i16>,
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
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift.min(63);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn zigzag(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }
    fn i16(&mut self) -> Option<i16> {
        if self.compact {
            return Some(self.zigzag()? as i16);
        }
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        if self.compact {
            return Some(self.zigzag()? as i32);
        }
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        if self.compact {
            return self.zigzag();
        }
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn double(&mut self) -> Option<f64> {
        let b: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(if self.compact {
            f64::from_le_bytes(b)
        } else {
            f64::from_be_bytes(b)
        })
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = if self.compact {
            usize::try_from(self.varint()?).ok()?
        } else {
            usize::try_from(i32::from_be_bytes(self.take(4)?.try_into().ok()?)).ok()?
        };
        self.take(n)
    }

    fn string(&mut self) -> Option<String> {
        let b = self.bytes()?;
        if self.cfg.obfuscate_strings {
            return Some("\"*\"".into());
        }
        let s = String::from_utf8_lossy(b);
        let max = self.cfg.string_max_size;
        Some(if s.chars().count() > max {
            format!("\"{}...\"", s.chars().take(max).collect::<String>())
        } else {
            format!("\"{s}\"")
        })
    }

    /// Reads a value of (binary-protocol) type `t`, rendered.
    fn value(&mut self, t: u8, depth: usize) -> Option<Result<String, ()>> {
        if depth > MAX_DEPTH {
            return Some(Err(()));
        }
        Some(Ok(match t {
            2 => (self.u8()? != 0).to_string(),
            3 => (self.u8()? as i8).to_string(),
            4 => {
                let d = self.double()?;
                format!("{d}")
            }
            6 => self.i16()?.to_string(),
            8 => self.i32()?.to_string(),
            10 => self.i64()?.to_string(),
            11 => self.string()?,
            12 => match self.fields(depth + 1)? {
                Ok(f) => render_fields(&f),
                Err(()) => return Some(Err(())),
            },
            13 => {
                let (n, kt, vt) = if self.compact {
                    let n = self.varint()?;
                    if n == 0 {
                        (0, 0, 0)
                    } else {
                        let kv = self.u8()?;
                        (n, compact_type(kv >> 4), compact_type(kv & 0x0f))
                    }
                } else {
                    let kt = self.u8()?;
                    let vt = self.u8()?;
                    (self.i32()?.max(0) as u64, kt, vt)
                };
                let mut parts = Vec::new();
                for i in 0..n {
                    if self.at >= self.b.len() {
                        return None;
                    }
                    let k = match self.value(kt, depth + 1)? {
                        Ok(k) => k,
                        Err(()) => return Some(Err(())),
                    };
                    let v = match self.value(vt, depth + 1)? {
                        Ok(v) => v,
                        Err(()) => return Some(Err(())),
                    };
                    if (i as usize) < self.cfg.collection_max_size {
                        parts.push(format!("{k}: {v}"));
                    } else if i as usize == self.cfg.collection_max_size {
                        parts.push("...".into());
                    }
                }
                format!("{{{}}}", parts.join(", "))
            }
            14 | 15 => {
                let (n, et) = if self.compact {
                    let h = self.u8()?;
                    let n = if h >> 4 == 0x0f {
                        self.varint()?
                    } else {
                        u64::from(h >> 4)
                    };
                    (n, compact_type(h & 0x0f))
                } else {
                    let et = self.u8()?;
                    (self.i32()?.max(0) as u64, et)
                };
                let mut parts = Vec::new();
                for i in 0..n {
                    if self.at >= self.b.len() {
                        return None;
                    }
                    let v = match self.value(et, depth + 1)? {
                        Ok(v) => v,
                        Err(()) => return Some(Err(())),
                    };
                    if (i as usize) < self.cfg.collection_max_size {
                        parts.push(v);
                    } else if i as usize == self.cfg.collection_max_size {
                        parts.push("...".into());
                    }
                }
                let (o, c) = if t == 15 { ('[', ']') } else { ('{', '}') };
                format!("{o}{}{c}", parts.join(", "))
            }
            _ => return Some(Err(())),
        }))
    }

    /// Reads a struct's fields up to STOP.
    fn fields(&mut self, depth: usize) -> Option<Result<Vec<(i16, String)>, ()>> {
        let mut out = Vec::new();
        self.last_id.push(0);
        loop {
            let h = self.u8()?;
            if h == 0 {
                break;
            }
            let (t, id) = if self.compact {
                let delta = h >> 4;
                let t = h & 0x0f;
                let id = if delta == 0 {
                    self.i16()?
                } else {
                    self.last_id.last().copied().unwrap_or(0) + i16::from(delta)
                };
                if let Some(l) = self.last_id.last_mut() {
                    *l = id;
                }
                // Booleans carry their value in the type.
                if t == 1 || t == 2 {
                    out.push((id, (t == 1).to_string()));
                    continue;
                }
                (compact_type(t), id)
            } else {
                (h, self.i16()?)
            };
            let v = match self.value(t, depth)? {
                Ok(v) => v,
                Err(()) => return Some(Err(())),
            };
            if out.len() >= self.cfg.drop_after_n_struct_fields {
                return Some(Err(()));
            }
            out.push((id, v));
        }
        self.last_id.pop();
        Some(Ok(out))
    }
}

/// Compact type ids as binary-protocol type ids.
fn compact_type(t: u8) -> u8 {
    match t {
        1 | 2 => 2,
        3 => 3,
        4 => 6,
        5 => 8,
        6 => 10,
        7 => 4,
        8 => 11,
        9 => 15,
        10 => 14,
        11 => 13,
        12 => 12,
        _ => 0xff,
    }
}

fn render_fields(f: &[(i16, String)]) -> String {
    render_named(f, None)
}

/// Fields as `(name: value, ...)`, names from the IDL where it has them.
fn render_named(f: &[(i16, String)], names: Option<&HashMap<i16, String>>) -> String {
    let parts: Vec<String> = f
        .iter()
        .map(|(id, v)| match names.and_then(|n| n.get(id)) {
            Some(name) => format!("{name}: {v}"),
            None => format!("{id}: {v}"),
        })
        .collect();
    format!("({})", parts.join(", "))
}

/// A decoded message: name, type, fields, size.
type Decoded = (String, u8, Vec<(i16, String)>, usize);

/// One message at the start of `b` (no frame prefix): name, type and fields, and its size.
fn message(b: &[u8], cfg: &ThriftConfig, decode_fields: bool) -> Out<Decoded> {
    let compact = b.first() == Some(&0x82);
    let mut r = Rd {
        b,
        at: 0,
        compact,
        cfg,
        last_id: Vec::new(),
    };
    let head = (|| {
        if compact {
            r.u8()?;
            let vt = r.u8()?;
            if vt & 0x1f != 1 {
                return Some(Err(()));
            }
            let _seq = r.varint()?;
            let name = String::from_utf8_lossy(r.bytes()?).into_owned();
            Some(Ok((name, vt >> 5)))
        } else if b.first() == Some(&0x80) {
            let v = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
            if v & 0xffff_0000 != 0x8001_0000 {
                return Some(Err(()));
            }
            let name = String::from_utf8_lossy(r.bytes()?).into_owned();
            let _seq = r.take(4)?;
            Some(Ok((name, (v & 0xff) as u8)))
        } else {
            let n = i32::from_be_bytes(r.b.get(..4)?.try_into().ok()?);
            if !(1..=1024).contains(&n) {
                return Some(Err(()));
            }
            let name = String::from_utf8_lossy(r.bytes()?).into_owned();
            let t = r.u8()?;
            let _seq = r.take(4)?;
            Some(Ok((name, t)))
        }
    })();
    let (name, kind) = match head {
        None => return Out::Incomplete,
        Some(Err(())) => return Out::Invalid,
        Some(Ok(h)) => h,
    };
    if !(1..=4).contains(&kind) || name.chars().any(|c| c.is_control()) {
        return Out::Invalid;
    }
    match r.fields(0) {
        None => Out::Incomplete,
        Some(Err(())) => Out::Invalid,
        Some(Ok(f)) => Out::Done((name, kind, if decode_fields { f } else { Vec::new() }, r.at)),
    }
}

impl ThriftSession {
    fn publish(&self, cx: &mut Cx<'_>, call: Msg, reply: Option<Msg>) {
        let mut tx = Transaction::new("thrift", self.cfg.common.client_dir(cx.conn));
        tx.start = Some(call.ts);
        tx.request_bytes = Some(call.bytes);
        let idl = self.cfg.idl.get(&call.name);
        let params = render_named(&call.fields, idl.map(|f| &f.params));
        let query = format!("{}{params}", call.name);
        if let Some(f) = idl {
            tx.set("path", f.service.clone());
            tx.set("thrift.service", f.service.clone());
        }
        tx.set("method", call.name.clone());
        tx.set("query", query.clone());
        tx.set("thrift.params", params);
        if self.cfg.common.send_request {
            tx.set("request", query);
        }
        if let Some(r) = reply {
            tx.end = Some(r.ts);
            tx.response_bytes = Some(r.bytes);
            let text = if r.kind == 3 {
                // TApplicationException: 1: message, 2: type.
                tx.status = "Error";
                let text = render_fields(&r.fields);
                tx.set("thrift.exceptions", text.clone());
                format!("Exceptions: {text}")
            } else {
                let ret = r
                    .fields
                    .iter()
                    .find(|(id, _)| *id == 0)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let exc: Vec<(i16, String)> = r
                    .fields
                    .iter()
                    .filter(|(id, _)| *id != 0)
                    .cloned()
                    .collect();
                if exc.is_empty() {
                    tx.set("thrift.return_value", ret.clone());
                    ret
                } else {
                    tx.status = "Error";
                    let text = render_named(&exc, idl.map(|f| &f.throws));
                    tx.set("thrift.exceptions", text.clone());
                    format!("Exceptions: {text}")
                }
            };
            if self.cfg.common.send_response {
                tx.set("response", text);
            }
        }
        cx.emit(tx);
    }

    fn handle(&mut self, cx: &mut Cx<'_>, m: Msg) {
        match m.kind {
            1 | 4 => {
                if let Some(old) = self.call.take() {
                    self.publish(cx, old, None);
                }
                if m.kind == 4 {
                    self.publish(cx, m, None);
                } else {
                    self.call = Some(m);
                }
            }
            _ => {
                // As Packetbeat: a reply without its call is dropped.
                if let Some(call) = self.call.take() {
                    self.publish(cx, call, Some(m));
                }
            }
        }
    }
}

impl Session for ThriftSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        let client = dir == self.cfg.common.client_dir(cx.conn);
        loop {
            let d = buf.data();
            if d.len() < 4 {
                return;
            }
            // Framed: a length, then the message; socket: the message itself.
            let frame = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
            let framed = d[0] == 0
                && frame > 0
                && frame <= MAX_MESSAGE
                && d.get(4).is_some_and(|&b| b == 0x80 || b == 0x82 || b == 0);
            let decode = client || self.cfg.cfg.capture_reply;
            let (body, skip) = if framed {
                if d.len() < 4 + frame {
                    return;
                }
                (&d[4..4 + frame], 4)
            } else {
                (d, 0)
            };
            match message(body, &self.cfg.cfg, decode) {
                Out::Done((name, kind, fields, n)) => {
                    let used = if framed { 4 + frame } else { skip + n };
                    let m = Msg {
                        ts: cx.now,
                        clock: cx.clock,
                        bytes: used as u64,
                        name,
                        kind,
                        fields,
                    };
                    buf.consume(used);
                    self.handle(cx, m);
                }
                Out::Incomplete if !framed && d.len() < MAX_MESSAGE => return,
                _ => {
                    buf.clear();
                    return;
                }
            }
        }
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        if self
            .call
            .as_ref()
            .is_some_and(|c| expired(c.clock, cx.clock, self.cfg.common.timeout))
        {
            self.call = None;
        }
    }

    fn close(&mut self, cx: &mut Cx<'_>, why: CloseReason) {
        let _ = why;
        // A call left without reply when the connection ends was a oneway call.
        if let Some(c) = self.call.take() {
            self.publish(cx, c, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ThriftConfig {
        serde_json::from_str("{}").unwrap()
    }

    #[test]
    fn idl_names_parameters_and_exceptions() {
        let idl = parse_idl(
            "# comment\nnamespace py tutorial\nservice Calculator extends shared.SharedService {\n\
             void ping(), // c\n  i32 add(1:i32 num1, 2:i32 num2),\n\
             i32 calculate(1:i32 logid, 2:Work w) throws (1:InvalidOperation ouch),\n\
             /* x */ oneway void zip(), map<string, list<i32>> m(1: map<string,i32> a = {}, 2: optional string b)\n}",
        );
        assert_eq!(idl["add"].service, "Calculator");
        assert_eq!(idl["add"].params[&2], "num2");
        assert_eq!(idl["calculate"].throws[&1], "ouch");
        assert!(idl["zip"].params.is_empty());
        assert_eq!(idl["m"].params[&1], "a");
        assert_eq!(idl["m"].params[&2], "b");
        assert_eq!(
            render_named(
                &[(1, "1".into()), (3, "x".into())],
                Some(&idl["add"].params)
            ),
            "(num1: 1, 3: x)"
        );
    }

    #[test]
    fn binary_call_renders() {
        // strict binary call add(1: 1, 2: 1)
        let mut b = vec![0x80, 0x01, 0x00, 0x01, 0, 0, 0, 3];
        b.extend(b"add");
        b.extend([0, 0, 0, 1]);
        b.extend([8, 0, 1, 0, 0, 0, 1, 8, 0, 2, 0, 0, 0, 1, 0]);
        let Out::Done((name, kind, fields, n)) = message(&b, &cfg(), true) else {
            panic!("not parsed")
        };
        assert_eq!((name.as_str(), kind, n), ("add", 1, b.len()));
        assert_eq!(render_fields(&fields), "(1: 1, 2: 1)");
    }

    #[test]
    fn compact_call_renders() {
        // compact call echo(1: "hi", 2: [1, 2], 3: true)
        let mut b = vec![0x82, 0x21, 0x01, 4];
        b.extend(b"echo");
        b.extend([0x18, 2, b'h', b'i', 0x19, 0x25, 2, 4, 0x11, 0]);
        let Out::Done((name, _, fields, _)) = message(&b, &cfg(), true) else {
            panic!("not parsed")
        };
        assert_eq!(name, "echo");
        assert_eq!(render_fields(&fields), "(1: \"hi\", 2: [1, 2], 3: true)");
    }

    proptest::proptest! {
        /// Hostile bytes: no panic, memory within the input's size plus bounded state.
        #[test]
        fn hostile_bytes(chunks in crate::protocols::fuzzing::chunks(&[
            b"\x80\x01\x00\x01\x00\x00\x00\x03add\x00\x00\x00\x01",
            b"\x80\x01\x00\x02\x00\x00\x00\x03add\x00\x00\x00\x01\x08\x00\x00",
            b"\x00\x00\x00\x20\x80\x01\x00\x01\x00\x00\x00\x04ping",
            b"\x82\x21\x01\x04echo\x19",
            b"\x0f\x00\x01\x0c\x7f\xff\xff\xff",
        ])) {
            let p = crate::protocols::fuzzing::protocol(&PLUGIN, "{}");
            let total: usize = chunks.iter().map(|c| c.1.as_ref().map_or(0, Vec::len)).sum();
            let peak = crate::protocols::fuzzing::drive(&*p, Transport::Tcp, 9090, &chunks);
            proptest::prop_assert!(peak <= 4 * total + 64 * 1024, "peak {peak} for {total} bytes");
        }
    }
}
