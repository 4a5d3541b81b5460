//! AMQP 0-9-1, as Packetbeat's `amqp` protocol: one event per synchronous method and its
//! `-ok`, or per asynchronous method (publish, deliver, return, ack, nack, reject, and
//! methods sent with `no-wait`), with the message body for content methods.
//!
//! Hand-written from the 0-9-1 specification (the AMQP crates are clients; none decodes both
//! sides of a captured connection): frames are a type, a channel, a length, the payload and
//! 0xCE; method arguments are read by a table of the specification's methods; field tables
//! (arguments, headers) become objects. A content method collects its header frame and
//! body frames (up to the announced size) before it is published.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use skiff_config::ConfigError;
use skiff_event::{Map, Timestamp, Value};

use crate::protocol::{
    BuildArgs, CloseReason, Cx, Dir, Protocol, ProtocolPlugin, Session, StreamBuf, Transaction,
    Transport, expired,
};
use crate::protocols::common::Common;

/// `type: amqp`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "amqp",
    tcp: true,
    udp: false,
    default_ports: &[5672],
    build,
};

/// The `amqp` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// `max_body_length` (default 1000): body bytes shown in `request`/`response`.
    #[serde(default = "default_body")]
    pub max_body_length: usize,
    /// `parse_headers` (default true): message headers as `amqp.headers`.
    #[serde(default = "yes")]
    pub parse_headers: bool,
    /// `parse_arguments` (default true): method arguments tables as `amqp.arguments`.
    #[serde(default = "yes")]
    pub parse_arguments: bool,
    /// `hide_connection_information` (default true): no events for `connection.*` and
    /// `channel.*` methods (except a close with an error code).
    #[serde(default = "yes")]
    pub hide_connection_information: bool,
}

fn yes() -> bool {
    true
}
fn default_body() -> usize {
    1000
}

struct Settings {
    cfg: AmqpConfig,
    common: Common,
}

struct Amqp {
    cfg: Arc<Settings>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let cfg: AmqpConfig = args.own.deserialize()?;
    Ok(Arc::new(Amqp {
        cfg: Arc::new(Settings {
            cfg,
            common: Common::of(args, &PLUGIN),
        }),
    }))
}

impl Protocol for Amqp {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(AmqpSession {
            cfg: self.cfg.clone(),
            waiting: HashMap::new(),
            content: HashMap::new(),
        })
    }
}

/// The frame size RabbitMQ accepts at most (128 KiB by default; allow more).
const MAX_FRAME: usize = 16 << 20;
/// Methods waiting per connection.
const MAX_WAITING: usize = 1024;
/// Nesting of field tables.
const MAX_DEPTH: usize = 16;

#[derive(Clone, Copy)]
enum Arg {
    Octet,
    Short,
    Long,
    LongLong,
    ShortStr,
    LongStr,
    Bit,
    Table,
}

use Arg::*;

/// A method of the specification: name, whether an `-ok` answers it, its arguments.
struct Spec {
    name: &'static str,
    sync: bool,
    args: &'static [(&'static str, Arg)],
}

const fn m(name: &'static str, sync: bool, args: &'static [(&'static str, Arg)]) -> Spec {
    Spec { name, sync, args }
}

fn spec(class: u16, method: u16) -> Option<Spec> {
    Some(match (class, method) {
        (10, 10) => m(
            "connection.start",
            true,
            &[
                ("version-major", Octet),
                ("version-minor", Octet),
                ("server-properties", Table),
                ("mechanisms", LongStr),
                ("locales", LongStr),
            ],
        ),
        (10, 11) => m(
            "connection.start-ok",
            false,
            &[
                ("client-properties", Table),
                ("mechanism", ShortStr),
                ("response", LongStr),
                ("locale", ShortStr),
            ],
        ),
        (10, 20) => m("connection.secure", true, &[]),
        (10, 21) => m("connection.secure-ok", false, &[]),
        (10, 30) => m(
            "connection.tune",
            true,
            &[
                ("channel-max", Short),
                ("frame-max", Long),
                ("heartbeat", Short),
            ],
        ),
        (10, 31) => m(
            "connection.tune-ok",
            false,
            &[
                ("channel-max", Short),
                ("frame-max", Long),
                ("heartbeat", Short),
            ],
        ),
        (10, 40) => m("connection.open", true, &[("virtual-host", ShortStr)]),
        (10, 41) => m("connection.open-ok", false, &[]),
        (10, 50) => m(
            "connection.close",
            true,
            &[
                ("reply-code", Short),
                ("reply-text", ShortStr),
                ("class-id", Short),
                ("method-id", Short),
            ],
        ),
        (10, 51) => m("connection.close-ok", false, &[]),
        (10, 60) => m("connection.blocked", false, &[("reason", ShortStr)]),
        (10, 61) => m("connection.unblocked", false, &[]),
        (20, 10) => m("channel.open", true, &[]),
        (20, 11) => m("channel.open-ok", false, &[]),
        (20, 20) => m("channel.flow", true, &[("active", Bit)]),
        (20, 21) => m("channel.flow-ok", false, &[("active", Bit)]),
        (20, 40) => m(
            "channel.close",
            true,
            &[
                ("reply-code", Short),
                ("reply-text", ShortStr),
                ("class-id", Short),
                ("method-id", Short),
            ],
        ),
        (20, 41) => m("channel.close-ok", false, &[]),
        (40, 10) => m(
            "exchange.declare",
            true,
            &[
                ("ticket", Short),
                ("exchange", ShortStr),
                ("exchange-type", ShortStr),
                ("passive", Bit),
                ("durable", Bit),
                ("auto-delete", Bit),
                ("internal", Bit),
                ("no-wait", Bit),
                ("arguments", Table),
            ],
        ),
        (40, 11) => m("exchange.declare-ok", false, &[]),
        (40, 20) => m(
            "exchange.delete",
            true,
            &[
                ("ticket", Short),
                ("exchange", ShortStr),
                ("if-unused", Bit),
                ("no-wait", Bit),
            ],
        ),
        (40, 21) => m("exchange.delete-ok", false, &[]),
        (40, 30) => m(
            "exchange.bind",
            true,
            &[
                ("ticket", Short),
                ("destination", ShortStr),
                ("source", ShortStr),
                ("routing-key", ShortStr),
                ("no-wait", Bit),
                ("arguments", Table),
            ],
        ),
        (40, 31) => m("exchange.bind-ok", false, &[]),
        (40, 40) => m(
            "exchange.unbind",
            true,
            &[
                ("ticket", Short),
                ("destination", ShortStr),
                ("source", ShortStr),
                ("routing-key", ShortStr),
                ("no-wait", Bit),
                ("arguments", Table),
            ],
        ),
        (40, 51) => m("exchange.unbind-ok", false, &[]),
        (50, 10) => m(
            "queue.declare",
            true,
            &[
                ("ticket", Short),
                ("queue", ShortStr),
                ("passive", Bit),
                ("durable", Bit),
                ("exclusive", Bit),
                ("auto-delete", Bit),
                ("no-wait", Bit),
                ("arguments", Table),
            ],
        ),
        (50, 11) => m(
            "queue.declare-ok",
            false,
            &[
                ("queue", ShortStr),
                ("message-count", Long),
                ("consumer-count", Long),
            ],
        ),
        (50, 20) => m(
            "queue.bind",
            true,
            &[
                ("ticket", Short),
                ("queue", ShortStr),
                ("exchange", ShortStr),
                ("routing-key", ShortStr),
                ("no-wait", Bit),
                ("arguments", Table),
            ],
        ),
        (50, 21) => m("queue.bind-ok", false, &[]),
        (50, 30) => m(
            "queue.purge",
            true,
            &[("ticket", Short), ("queue", ShortStr), ("no-wait", Bit)],
        ),
        (50, 31) => m("queue.purge-ok", false, &[("message-count", Long)]),
        (50, 40) => m(
            "queue.delete",
            true,
            &[
                ("ticket", Short),
                ("queue", ShortStr),
                ("if-unused", Bit),
                ("if-empty", Bit),
                ("no-wait", Bit),
            ],
        ),
        (50, 41) => m("queue.delete-ok", false, &[("message-count", Long)]),
        (50, 50) => m(
            "queue.unbind",
            true,
            &[
                ("ticket", Short),
                ("queue", ShortStr),
                ("exchange", ShortStr),
                ("routing-key", ShortStr),
                ("arguments", Table),
            ],
        ),
        (50, 51) => m("queue.unbind-ok", false, &[]),
        (60, 10) => m(
            "basic.qos",
            true,
            &[
                ("prefetch-size", Long),
                ("prefetch-count", Short),
                ("global", Bit),
            ],
        ),
        (60, 11) => m("basic.qos-ok", false, &[]),
        (60, 20) => m(
            "basic.consume",
            true,
            &[
                ("ticket", Short),
                ("queue", ShortStr),
                ("consumer-tag", ShortStr),
                ("no-local", Bit),
                ("no-ack", Bit),
                ("exclusive", Bit),
                ("no-wait", Bit),
                ("arguments", Table),
            ],
        ),
        (60, 21) => m("basic.consume-ok", false, &[("consumer-tag", ShortStr)]),
        (60, 30) => m(
            "basic.cancel",
            true,
            &[("consumer-tag", ShortStr), ("no-wait", Bit)],
        ),
        (60, 31) => m("basic.cancel-ok", false, &[("consumer-tag", ShortStr)]),
        (60, 40) => m(
            "basic.publish",
            false,
            &[
                ("ticket", Short),
                ("exchange", ShortStr),
                ("routing-key", ShortStr),
                ("mandatory", Bit),
                ("immediate", Bit),
            ],
        ),
        (60, 50) => m(
            "basic.return",
            false,
            &[
                ("reply-code", Short),
                ("reply-text", ShortStr),
                ("exchange", ShortStr),
                ("routing-key", ShortStr),
            ],
        ),
        (60, 60) => m(
            "basic.deliver",
            false,
            &[
                ("consumer-tag", ShortStr),
                ("delivery-tag", LongLong),
                ("redelivered", Bit),
                ("exchange", ShortStr),
                ("routing-key", ShortStr),
            ],
        ),
        (60, 70) => m(
            "basic.get",
            true,
            &[("ticket", Short), ("queue", ShortStr), ("no-ack", Bit)],
        ),
        (60, 71) => m(
            "basic.get-ok",
            false,
            &[
                ("delivery-tag", LongLong),
                ("redelivered", Bit),
                ("exchange", ShortStr),
                ("routing-key", ShortStr),
                ("message-count", Long),
            ],
        ),
        (60, 72) => m("basic.get-empty", false, &[]),
        (60, 80) => m(
            "basic.ack",
            false,
            &[("delivery-tag", LongLong), ("multiple", Bit)],
        ),
        (60, 90) => m(
            "basic.reject",
            false,
            &[("delivery-tag", LongLong), ("requeue", Bit)],
        ),
        (60, 100) => m("basic.recover-async", false, &[("requeue", Bit)]),
        (60, 110) => m("basic.recover", true, &[("requeue", Bit)]),
        (60, 111) => m("basic.recover-ok", false, &[]),
        (60, 120) => m(
            "basic.nack",
            false,
            &[
                ("delivery-tag", LongLong),
                ("multiple", Bit),
                ("requeue", Bit),
            ],
        ),
        (85, 10) => m("confirm.select", true, &[("no-wait", Bit)]),
        (85, 11) => m("confirm.select-ok", false, &[]),
        (90, 10) => m("tx.select", true, &[]),
        (90, 11) => m("tx.select-ok", false, &[]),
        (90, 20) => m("tx.commit", true, &[]),
        (90, 21) => m("tx.commit-ok", false, &[]),
        (90, 30) => m("tx.rollback", true, &[]),
        (90, 31) => m("tx.rollback-ok", false, &[]),
        _ => return None,
    })
}

/// Big-endian reader.
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
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn short_str(&mut self) -> Option<String> {
        let n = usize::from(self.u8()?);
        Some(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn long_str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        Some(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn table(&mut self, depth: usize) -> Option<Map> {
        let n = self.u32()? as usize;
        let body = self.take(n)?;
        let mut r = Rd { b: body, at: 0 };
        let mut m = Map::new();
        while r.at < body.len() {
            let k = r.short_str()?;
            let v = r.field(depth)?;
            m.insert(k, v);
        }
        Some(m)
    }
    fn field(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(match self.u8()? {
            b't' => (self.u8()? != 0).into(),
            b'b' => (self.u8()? as i8).into(),
            b'B' => self.u8()?.into(),
            b's' | b'U' => (self.u16()? as i16).into(),
            b'u' => self.u16()?.into(),
            b'I' => (self.u32()? as i32).into(),
            b'i' => self.u32()?.into(),
            b'l' | b'L' => (self.u64()? as i64).into(),
            b'f' => f64::from(f32::from_bits(self.u32()?)).into(),
            b'd' => f64::from_bits(self.u64()?).into(),
            b'D' => {
                let scale = self.u8()?;
                let v = self.u32()? as i32;
                (f64::from(v) / 10f64.powi(i32::from(scale))).into()
            }
            b'S' | b'x' => self.long_str()?.into(),
            b'T' => self.u64()?.into(),
            b'F' => Value::Object(self.table(depth + 1)?),
            b'A' => {
                let n = self.u32()? as usize;
                let body = self.take(n)?;
                let mut r = Rd { b: body, at: 0 };
                let mut v = Vec::new();
                while r.at < body.len() {
                    v.push(r.field(depth + 1)?);
                }
                Value::Array(v)
            }
            b'V' => Value::Null,
            _ => return None,
        })
    }
}

/// A method with what followed it.
struct Method {
    ts: Timestamp,
    clock: Timestamp,
    bytes: u64,
    dir: Dir,
    name: &'static str,
    sync: bool,
    args: Map,
    /// Content: (announced body size, header properties, body).
    content: Option<(u64, Map, Vec<u8>)>,
}

struct AmqpSession {
    cfg: Arc<Settings>,
    /// Synchronous methods waiting for their `-ok`, per channel.
    waiting: HashMap<u16, Method>,
    /// Content methods collecting their header and body, per direction and channel.
    content: HashMap<(Dir, u16), Method>,
}

fn decode_args(spec: &Spec, r: &mut Rd<'_>, cfg: &AmqpConfig) -> Option<Map> {
    let mut m = Map::new();
    let mut bits: Option<(u8, u8)> = None;
    for (name, t) in spec.args {
        if !matches!(t, Bit) {
            bits = None;
        }
        let v: Value = match t {
            Octet => r.u8()?.into(),
            Short => r.u16()?.into(),
            Long => r.u32()?.into(),
            LongLong => r.u64()?.into(),
            ShortStr => r.short_str()?.into(),
            LongStr => r.long_str()?.into(),
            Bit => {
                let (byte, n) = match bits {
                    Some((b, n)) if n < 8 => (b, n),
                    _ => (r.u8()?, 0),
                };
                bits = Some((byte, n + 1));
                (byte & (1 << n) != 0).into()
            }
            Table => {
                let t = r.table(0)?;
                if !cfg.parse_arguments || t.is_empty() {
                    continue;
                }
                Value::Object(t)
            }
        };
        if *name == "ticket" {
            continue;
        }
        m.insert((*name).to_owned(), v);
    }
    Some(m)
}

/// The properties of a content header (after class, weight and size).
fn properties(r: &mut Rd<'_>, cfg: &AmqpConfig) -> Option<Map> {
    let flags = r.u16()?;
    let mut m = Map::new();
    let names: [(&str, u8); 14] = [
        ("content-type", b's'),
        ("content-encoding", b's'),
        ("headers", b'F'),
        ("delivery-mode", b'o'),
        ("priority", b'o'),
        ("correlation-id", b's'),
        ("reply-to", b's'),
        ("expiration", b's'),
        ("message-id", b's'),
        ("timestamp", b'T'),
        ("type", b's'),
        ("user-id", b's'),
        ("app-id", b's'),
        ("cluster-id", b's'),
    ];
    for (i, (name, t)) in names.iter().enumerate() {
        if flags & (1 << (15 - i)) == 0 {
            continue;
        }
        let v: Value = match t {
            b's' => r.short_str()?.into(),
            b'o' => r.u8()?.into(),
            b'T' => r.u64()?.into(),
            _ => {
                let t = r.table(0)?;
                if !cfg.parse_headers {
                    continue;
                }
                Value::Object(t)
            }
        };
        m.insert((*name).to_owned(), v);
    }
    Some(m)
}

impl AmqpSession {
    fn hidden(&self, name: &str, args: &Map) -> bool {
        let code_ok = args
            .get("reply-code")
            .and_then(Value::as_u64)
            .is_none_or(|c| c == 200);
        self.cfg.cfg.hide_connection_information
            && (name.starts_with("connection.") || name.starts_with("channel."))
            && code_ok
    }

    fn publish(&self, cx: &mut Cx<'_>, req: Method, resp: Option<Method>, note: Option<&str>) {
        self.publish_as(cx, req, resp, note, false);
    }

    fn publish_as(
        &self,
        cx: &mut Cx<'_>,
        req: Method,
        resp: Option<Method>,
        note: Option<&str>,
        error: bool,
    ) {
        if self.hidden(req.name, &req.args) {
            return;
        }
        let client = self.cfg.common.client_dir(cx.conn);
        // Server-sent methods (deliver, return, a server's close) are "requests" from the
        // server; the event keeps the client as source, as Packetbeat does.
        let mut tx = Transaction::new("amqp", client);
        tx.start = Some(req.ts);
        tx.set("method", req.name);
        tx.set("event.action", format!("amqp.{}", req.name));
        let from_client = req.dir == client;
        if from_client {
            tx.request_bytes = Some(req.bytes);
        } else {
            tx.response_bytes = Some(req.bytes);
        }
        if let Some(code) = req.args.get("reply-code").and_then(Value::as_u64)
            && code >= 300
        {
            tx.status = "Error";
        }
        for (k, v) in &req.args {
            tx.set(&format!("amqp.{k}"), v.clone());
        }
        if let Some((_, props, body)) = &req.content {
            for (k, v) in props {
                tx.set(&format!("amqp.{k}"), v.clone());
            }
            let max = self.cfg.cfg.max_body_length;
            let text = String::from_utf8_lossy(&body[..body.len().min(max)]).into_owned();
            if from_client && self.cfg.common.send_request {
                tx.set("request", text);
            } else if !from_client && self.cfg.common.send_response {
                tx.set("response", text);
            }
        }
        if let Some(r) = resp {
            tx.end = Some(r.ts);
            if r.dir == client {
                tx.request_bytes = Some(tx.request_bytes.unwrap_or(0) + r.bytes);
            } else {
                tx.response_bytes = Some(tx.response_bytes.unwrap_or(0) + r.bytes);
            }
            for (k, v) in r.args {
                tx.set(&format!("amqp.{k}"), v);
            }
        }
        if let Some(n) = note {
            tx.note(n);
        }
        if error {
            tx.status = "Error";
        }
        cx.emit(tx);
    }

    fn method(&mut self, cx: &mut Cx<'_>, dir: Dir, channel: u16, payload: &[u8], bytes: u64) {
        let mut r = Rd { b: payload, at: 0 };
        let (Some(class), Some(id)) = (r.u16(), r.u16()) else {
            return;
        };
        let Some(spec) = spec(class, id) else { return };
        let Some(args) = decode_args(&spec, &mut r, &self.cfg.cfg) else {
            return;
        };
        let m = Method {
            ts: cx.now,
            clock: cx.clock,
            bytes,
            dir,
            name: spec.name,
            sync: spec.sync,
            args,
            content: None,
        };
        if matches!(
            spec.name,
            "basic.publish" | "basic.deliver" | "basic.return" | "basic.get-ok"
        ) {
            if spec.name == "basic.get-ok" {
                // The answer to basic.get, with content: published when the body is in.
                if let Some(mut get) = self.waiting.remove(&channel) {
                    get.content = Some((0, Map::new(), Vec::new()));
                    get.args.extend(m.args);
                    get.bytes += bytes;
                    get.dir = dir;
                    self.content.insert((dir, channel), get);
                }
                return;
            }
            if self.content.len() < MAX_WAITING {
                let mut m = m;
                m.content = Some((0, Map::new(), Vec::new()));
                self.content.insert((dir, channel), m);
            }
            return;
        }
        let no_wait = m.args.get("no-wait").and_then(Value::as_bool) == Some(true);
        if m.name.ends_with("-ok") || m.name == "basic.get-empty" {
            if let Some(req) = self.waiting.remove(&channel) {
                self.publish(cx, req, Some(m), None);
            }
            return;
        }
        if m.sync && !no_wait {
            if let Some(old) = self.waiting.remove(&channel) {
                if m.name.ends_with(".close") && old.dir != m.dir {
                    // The peer closed the channel instead of answering: that is the answer.
                    let text = m
                        .args
                        .get("reply-text")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    self.publish_as(cx, old, None, text.as_deref(), true);
                } else {
                    self.publish(cx, old, None, Some("Method was not answered"));
                }
            }
            if self.waiting.len() < MAX_WAITING {
                self.waiting.insert(channel, m);
            }
            return;
        }
        self.publish(cx, m, None, None);
    }

    fn header(&mut self, cx: &mut Cx<'_>, dir: Dir, channel: u16, payload: &[u8], bytes: u64) {
        let Some(m) = self.content.get_mut(&(dir, channel)) else {
            return;
        };
        let mut r = Rd { b: payload, at: 0 };
        let (Some(_class), Some(_weight), Some(size)) = (r.u16(), r.u16(), r.u64()) else {
            return;
        };
        m.bytes += bytes;
        let props = properties(&mut r, &self.cfg.cfg).unwrap_or_default();
        m.content = Some((size, props, Vec::new()));
        if size == 0
            && let Some(m) = self.content.remove(&(dir, channel))
        {
            self.publish(cx, m, None, None);
        }
    }

    fn body(&mut self, cx: &mut Cx<'_>, dir: Dir, channel: u16, payload: &[u8], bytes: u64) {
        let max = self.cfg.cfg.max_body_length;
        let done = match self.content.get_mut(&(dir, channel)) {
            Some(Method {
                content: Some((size, _, body)),
                bytes: b,
                ..
            }) => {
                *b += bytes;
                let keep = max.saturating_sub(body.len()).min(payload.len());
                body.extend_from_slice(&payload[..keep]);
                *size = size.saturating_sub(payload.len() as u64);
                *size == 0
            }
            _ => false,
        };
        if done && let Some(m) = self.content.remove(&(dir, channel)) {
            self.publish(cx, m, None, None);
        }
    }
}

impl Session for AmqpSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        loop {
            let d = buf.data();
            if d.len() >= 8 && d.starts_with(b"AMQP") {
                buf.consume(8);
                continue;
            }
            if d.len() < 7 {
                return;
            }
            let typ = d[0];
            let channel = u16::from_be_bytes([d[1], d[2]]);
            let size = u32::from_be_bytes([d[3], d[4], d[5], d[6]]) as usize;
            if !matches!(typ, 1 | 2 | 3 | 8) || size > MAX_FRAME {
                buf.clear();
                return;
            }
            if d.len() < 8 + size {
                return;
            }
            if d[7 + size] != 0xce {
                buf.clear();
                return;
            }
            let payload = d[7..7 + size].to_vec();
            let bytes = (8 + size) as u64;
            buf.consume(8 + size);
            match typ {
                1 => self.method(cx, dir, channel, &payload, bytes),
                2 => self.header(cx, dir, channel, &payload, bytes),
                3 => self.body(cx, dir, channel, &payload, bytes),
                _ => {}
            }
        }
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        let t = self.cfg.common.timeout;
        let old: Vec<u16> = self
            .waiting
            .iter()
            .filter(|(_, m)| expired(m.clock, cx.clock, t))
            .map(|(c, _)| *c)
            .collect();
        for c in old {
            if let Some(m) = self.waiting.remove(&c)
                && m.name.ends_with(".close")
            {
                // As Packetbeat: only a close left unanswered is reported.
                self.publish(cx, m, None, Some("Close-ok method not received by sender"));
            }
        }
        self.content.retain(|_, m| !expired(m.clock, cx.clock, t));
    }

    fn close(&mut self, cx: &mut Cx<'_>, why: CloseReason) {
        let _ = why;
        let closes: Vec<u16> = self
            .waiting
            .iter()
            .filter(|(_, m)| m.name.ends_with(".close"))
            .map(|(c, _)| *c)
            .collect();
        for c in closes {
            if let Some(m) = self.waiting.remove(&c) {
                self.publish(cx, m, None, Some("Close-ok method not received by sender"));
            }
        }
    }

    fn held_bytes(&self) -> usize {
        self.waiting.len() * 256
            + self
                .content
                .values()
                .map(|m| 256 + m.content.as_ref().map_or(0, |c| c.2.len()))
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_pack_into_octets() {
        let s = spec(50, 10).unwrap();
        let cfg: AmqpConfig = serde_json::from_str("{}").unwrap();
        // ticket, "q", bits durable+no-wait, empty table
        let b = [0, 0, 1, b'q', 0b10010, 0, 0, 0, 0];
        let m = decode_args(&s, &mut Rd { b: &b, at: 0 }, &cfg).unwrap();
        assert_eq!(m["queue"], "q");
        assert_eq!(m["durable"], true);
        assert_eq!(m["no-wait"], true);
        assert_eq!(m["passive"], false);
    }

    proptest::proptest! {
        /// Hostile bytes: no panic, memory within the input's size plus bounded state.
        #[test]
        fn hostile_bytes(chunks in crate::protocols::fuzzing::chunks(&[
            b"AMQP\x00\x00\x09\x01",
            b"\x01\x00\x01\x00\x00\x00\x10\x00\x32\x00\x0a\x00\x00\x05hello",
            b"\x01\x00\x01\x00\x00\x00\x0d\x00\x3c\x00\x28\x00\x00\x00\x05hello\x00",
            b"\x02\x00\x01\x00\x00\x00\x0e\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05",
            b"\x03\x00\x01\x00\x00\x00\x05hello\xce",
            b"\x01\x00\x01\x00\x00\x00\x20\x00\x28\x00\x0a\x00\x00\x04logs\x06fanout\x02\xff\xff\xff\xff",
        ])) {
            let p = crate::protocols::fuzzing::protocol(&PLUGIN, "{}");
            let total: usize = chunks.iter().map(|c| c.1.as_ref().map_or(0, Vec::len)).sum();
            let peak = crate::protocols::fuzzing::drive(&*p, Transport::Tcp, 5672, &chunks);
            proptest::prop_assert!(peak <= 4 * total + 300 * 1024, "peak {peak} for {total} bytes");
        }
    }
}
