//! Redis serialization protocol (RESP2 and RESP3), as Packetbeat's `redis` protocol: one
//! event per command and reply, pipelining included, plus pub/sub messages.
//!
//! The RESP parser is hand-written (the crates that parse RESP are client libraries that
//! expect well-formed replies to their own commands, not arbitrary captured streams): a
//! value is parsed only when it is complete in the buffer, with counts checked against the
//! bytes present (a hostile `*999999999` allocates nothing) and nesting limited. Commands
//! (arrays of bulk strings, or inline commands) wait per connection in a FIFO bounded by
//! `queue_max_messages` and `queue_max_bytes` (the oldest goes when full, as Packetbeat).
//! Replies pair with the oldest command. Pub/sub: in subscribed mode (or for a RESP3 push,
//! `>`) a `message`/`pmessage`/`smessage` push is an event of its own without a request,
//! and a (P/S)SUBSCRIBE of n channels takes its n confirmations.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Deserialize;
use skiff_config::ConfigError;
use skiff_event::Timestamp;

use crate::protocol::{
    BuildArgs, Cx, Dir, Protocol, ProtocolPlugin, Session, StreamBuf, Transaction, Transport,
    expired,
};
use crate::protocols::common::Common;

/// `type: redis`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "redis",
    tcp: true,
    udp: false,
    default_ports: &[6379],
    build,
};

/// The `redis` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `queue_max_bytes` (default 1048576): bytes of commands waiting per connection.
    #[serde(default = "default_queue_bytes")]
    pub queue_max_bytes: usize,
    /// `queue_max_messages` (default 20000): commands waiting per connection.
    #[serde(default = "default_queue_messages")]
    pub queue_max_messages: usize,
}

fn default_queue_bytes() -> usize {
    1 << 20
}
fn default_queue_messages() -> usize {
    20000
}

struct Settings {
    cfg: RedisConfig,
    common: Common,
}

struct Redis {
    cfg: Arc<Settings>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let cfg: RedisConfig = args.own.deserialize()?;
    Ok(Arc::new(Redis {
        cfg: Arc::new(Settings {
            cfg,
            common: Common::of(args, &PLUGIN),
        }),
    }))
}

impl Protocol for Redis {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(RedisSession {
            cfg: self.cfg.clone(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            subscribed: false,
            swallow: 0,
        })
    }
}

/// Nesting deeper than this is not Redis.
const MAX_DEPTH: usize = 32;
/// Characters of a rendered value kept.
const MAX_TEXT: usize = 64 << 10;

/// A parsed RESP value.
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    /// `+`, `$`, `=`, `,`, `(`: text.
    Str(Vec<u8>),
    /// `:`.
    Int(i64),
    /// `-`, `!`.
    Error(Vec<u8>),
    /// `$-1`, `*-1`, `_`.
    Nil,
    /// `#`.
    Bool(bool),
    /// `*`, `~`, `>` (the flag: a push).
    Array(Vec<Resp>, bool),
    /// `%`.
    Map(Vec<(Resp, Resp)>),
}

/// The outcome of parsing at the start of a buffer.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A value and its size in bytes.
    Done(Resp, usize),
    /// More bytes are needed.
    Incomplete,
    /// Not RESP.
    Invalid,
}

fn line(b: &[u8]) -> Option<(&[u8], usize)> {
    let n = b.windows(2).position(|w| w == b"\r\n")?;
    Some((&b[..n], n + 2))
}

fn number(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Parses one value (a command or a reply) at the start of `b`.
pub fn parse(b: &[u8]) -> Parsed {
    parse_at(b, 0)
}

fn parse_at(b: &[u8], depth: usize) -> Parsed {
    use Parsed::*;
    if depth > MAX_DEPTH {
        return Invalid;
    }
    let Some(&t) = b.first() else {
        return Incomplete;
    };
    let Some((head, hn)) = line(&b[1..]) else {
        // A line longer than any sane header is not RESP.
        return if b.len() > 64 << 10 && !matches!(t, b'+' | b'-') {
            Invalid
        } else {
            Incomplete
        };
    };
    let used = 1 + hn;
    let count = || number(head);
    match t {
        b'+' | b',' | b'(' => Done(Resp::Str(head.to_vec()), used),
        b'-' => Done(Resp::Error(head.to_vec()), used),
        b':' => match count() {
            Some(n) => Done(Resp::Int(n), used),
            None => Invalid,
        },
        b'_' => Done(Resp::Nil, used),
        b'#' => Done(Resp::Bool(head == b"t"), used),
        b'$' | b'!' | b'=' => {
            let Some(n) = count() else { return Invalid };
            if n < 0 {
                return Done(Resp::Nil, used);
            }
            let n = n as usize;
            let Some(end) = used.checked_add(n).and_then(|e| e.checked_add(2)) else {
                return Invalid;
            };
            if b.len() < end {
                return Incomplete;
            }
            if &b[end - 2..end] != b"\r\n" {
                return Invalid;
            }
            let mut body = &b[used..used + n];
            if t == b'=' && body.len() >= 4 {
                body = &body[4..]; // "txt:" of a verbatim string
            }
            let v = if t == b'!' {
                Resp::Error(body.to_vec())
            } else {
                Resp::Str(body.to_vec())
            };
            Done(v, end)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some(n) = count() else { return Invalid };
            if n < 0 {
                return Done(Resp::Nil, used);
            }
            let pairs = matches!(t, b'%' | b'|');
            let n = n as usize;
            let items = if pairs { n.saturating_mul(2) } else { n };
            // Every element takes at least 3 bytes: a count beyond that waits for bytes that
            // will make it true, and reserves nothing meanwhile.
            if items > (b.len() - used) / 3 {
                return if items > (512 << 20) {
                    Invalid
                } else {
                    Incomplete
                };
            }
            let mut at = used;
            let mut vals = Vec::with_capacity(items);
            for _ in 0..items {
                match parse_at(&b[at..], depth + 1) {
                    Done(v, k) => {
                        vals.push(v);
                        at += k;
                    }
                    other => return other,
                }
            }
            match t {
                b'%' => {
                    let mut it = vals.into_iter();
                    let mut m = Vec::with_capacity(n);
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        m.push((k, v));
                    }
                    Done(Resp::Map(m), at)
                }
                // An attribute annotates the value after it: report that value.
                b'|' => match parse_at(&b[at..], depth + 1) {
                    Done(v, k) => Done(v, at + k),
                    other => other,
                },
                _ => Done(Resp::Array(vals, t == b'>'), at),
            }
        }
        _ => Invalid,
    }
}

impl Resp {
    /// The text Packetbeat shows for a reply (`redis.return_value`).
    pub fn render(&self, out: &mut String) {
        if out.len() > MAX_TEXT {
            return;
        }
        match self {
            Resp::Str(s) | Resp::Error(s) => out.push_str(&String::from_utf8_lossy(s)),
            Resp::Int(n) => out.push_str(&n.to_string()),
            Resp::Nil => out.push_str("nil"),
            Resp::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Resp::Array(items, _) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.render(out);
                }
                out.push(']');
            }
            Resp::Map(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.render(out);
                    out.push_str(": ");
                    v.render(out);
                }
                out.push('}');
            }
        }
        if out.len() > MAX_TEXT {
            let mut cut = MAX_TEXT;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
        }
    }

    fn text(&self) -> String {
        let mut s = String::new();
        self.render(&mut s);
        s
    }
}

struct Command {
    ts: Timestamp,
    clock: Timestamp,
    bytes: usize,
    args: Vec<String>,
}

struct RedisSession {
    cfg: Arc<Settings>,
    queue: VecDeque<Command>,
    queued_bytes: usize,
    subscribed: bool,
    /// Confirmations of a multi-channel (P/S)SUBSCRIBE still to take.
    swallow: usize,
}

/// The words of an inline command.
fn inline(b: &[u8]) -> Option<(Vec<String>, usize)> {
    let (l, n) = line(b)?;
    let words = String::from_utf8_lossy(l)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Some((words, n))
}

impl RedisSession {
    fn command(&mut self, cx: &Cx<'_>, args: Vec<String>, bytes: usize) {
        let max = &self.cfg.cfg;
        while !self.queue.is_empty()
            && (self.queue.len() >= max.queue_max_messages
                || self.queued_bytes + bytes > max.queue_max_bytes)
        {
            if let Some(old) = self.queue.pop_front() {
                self.queued_bytes -= old.bytes;
            }
        }
        self.queued_bytes += bytes;
        self.queue.push_back(Command {
            ts: cx.now,
            clock: cx.clock,
            bytes,
            args,
        });
    }

    fn reply(&mut self, cx: &mut Cx<'_>, v: Resp, bytes: usize) {
        let push_kind = match &v {
            Resp::Array(items, push) if *push || self.subscribed => match items.first() {
                Some(Resp::Str(k)) => Some(String::from_utf8_lossy(k).to_ascii_lowercase()),
                _ => None,
            },
            _ => None,
        };
        if let (Some(kind), Resp::Array(items, _)) = (&push_kind, &v)
            && matches!(kind.as_str(), "message" | "pmessage" | "smessage")
        {
            let mut tx = Transaction::new("redis", self.cfg.common.client_dir(cx.conn));
            tx.end = Some(cx.now);
            tx.response_bytes = Some(bytes as u64);
            tx.set("method", kind.to_uppercase());
            tx.set("event.action", format!("redis.{kind}"));
            if let Some(ch) = items.get(1) {
                tx.set("resource", ch.text());
            }
            tx.set("redis.return_value", v.text());
            if self.cfg.common.send_response {
                tx.set("response", v.text());
            }
            cx.emit(tx);
            return;
        }
        if self.swallow > 0 {
            self.swallow -= 1;
            return;
        }
        let Some(cmd) = self.queue.pop_front() else {
            // As Packetbeat: a reply without its command is dropped.
            return;
        };
        self.queued_bytes -= cmd.bytes;
        let method = cmd
            .args
            .first()
            .map(|m| m.to_uppercase())
            .unwrap_or_default();
        match method.as_str() {
            "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" => {
                self.subscribed = true;
                self.swallow = cmd.args.len().saturating_sub(2);
            }
            "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE" => {
                if let Resp::Array(items, _) = &v
                    && items.get(2) == Some(&Resp::Int(0))
                {
                    self.subscribed = false;
                }
                self.swallow = cmd.args.len().saturating_sub(2);
            }
            _ => {}
        }
        let mut tx = Transaction::new("redis", self.cfg.common.client_dir(cx.conn));
        tx.start = Some(cmd.ts);
        tx.end = Some(cx.now);
        tx.request_bytes = Some(cmd.bytes as u64);
        tx.response_bytes = Some(bytes as u64);
        tx.set("event.action", format!("redis.{}", method.to_lowercase()));
        tx.set("method", method);
        if let Some(r) = cmd.args.get(1) {
            tx.set("resource", r.clone());
        }
        let query = cmd.args.join(" ");
        tx.set("query", query.clone());
        if let Resp::Error(e) = &v {
            tx.status = "Error";
            tx.set("event.outcome", "failure");
            tx.set("redis.error", String::from_utf8_lossy(e).into_owned());
        } else {
            tx.set("redis.return_value", v.text());
        }
        if self.cfg.common.send_request {
            tx.set("request", query);
        }
        if self.cfg.common.send_response {
            tx.set("response", v.text());
        }
        cx.emit(tx);
    }
}

impl Session for RedisSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        let client = dir == self.cfg.common.client_dir(cx.conn);
        loop {
            let data = buf.data();
            if data.is_empty() {
                return;
            }
            if client && data[0] != b'*' {
                // An inline command (telnet style).
                match inline(data) {
                    Some((args, n)) => {
                        buf.consume(n);
                        if !args.is_empty() {
                            self.command(cx, args, n);
                        }
                        continue;
                    }
                    None if data.len() > 64 << 10 => {
                        buf.clear();
                        return;
                    }
                    None => return,
                }
            }
            match parse(data) {
                Parsed::Done(v, n) => {
                    buf.consume(n);
                    if client {
                        let args = match v {
                            Resp::Array(items, _) => items.iter().map(Resp::text).collect(),
                            other => vec![other.text()],
                        };
                        self.command(cx, args, n);
                    } else {
                        self.reply(cx, v, n);
                    }
                }
                Parsed::Incomplete => return,
                Parsed::Invalid => {
                    buf.clear();
                    return;
                }
            }
        }
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        let t = self.cfg.common.timeout;
        while self
            .queue
            .front()
            .is_some_and(|c| expired(c.clock, cx.clock, t))
        {
            if let Some(c) = self.queue.pop_front() {
                self.queued_bytes -= c.bytes;
            }
        }
    }

    fn held_bytes(&self) -> usize {
        self.queue
            .iter()
            .map(|c| c.args.iter().map(String::len).sum::<usize>() + 64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp3_types() {
        let b = b"%2\r\n+a\r\n:1\r\n#t\r\n~2\r\n_\r\n,1.5\r\n";
        let Parsed::Done(v, n) = parse(b) else {
            panic!("{:?}", parse(b))
        };
        assert_eq!(n, b.len());
        assert_eq!(v.text(), "{a: 1, true: [nil, 1.5]}");
        assert_eq!(
            parse(b"|1\r\n+ttl\r\n:3\r\n$2\r\nok\r\n"),
            Parsed::Done(Resp::Str(b"ok".to_vec()), 22)
        );
        assert_eq!(
            parse(b"=8\r\ntxt:abcd\r\n"),
            Parsed::Done(Resp::Str(b"abcd".to_vec()), 14)
        );
        assert_eq!(
            parse(b"!3\r\nERR\r\n"),
            Parsed::Done(Resp::Error(b"ERR".to_vec()), 9)
        );
    }

    #[test]
    fn huge_counts_wait_without_allocating() {
        assert_eq!(parse(b"*99999999\r\n"), Parsed::Incomplete);
        assert_eq!(parse(b"*9999999999\r\n"), Parsed::Invalid);
        assert_eq!(parse(b"$5\r\nab"), Parsed::Incomplete);
        assert_eq!(parse(b"$2\r\nabcd"), Parsed::Invalid);
    }

    proptest::proptest! {
        /// Hostile bytes: no panic, memory within the input's size plus bounded state.
        #[test]
        fn hostile_bytes(chunks in crate::protocols::fuzzing::chunks(&[
            b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n",
            b"*2\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n",
            b"+OK\r\n",
            b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$",
            b">3\r\n$7\r\nmessage\r\n",
            b"%1\r\n*",
        ])) {
            let p = crate::protocols::fuzzing::protocol(&PLUGIN, "{}");
            let total: usize = chunks.iter().map(|c| c.1.as_ref().map_or(0, Vec::len)).sum();
            let peak = crate::protocols::fuzzing::drive(&*p, Transport::Tcp, 6379, &chunks);
            proptest::prop_assert!(peak <= 4 * total + 64 * 1024, "peak {peak} for {total} bytes");
        }
    }
}
