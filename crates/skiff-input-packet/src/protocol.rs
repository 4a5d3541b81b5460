//! The protocol trait: what a protocol parser implements, for TCP and UDP alike.
//!
//! Packetbeat asks a TCP protocol for `Parse`, `ReceivedFin`, `GapInStream` and
//! `ConnectionTimeout` over an opaque per-connection state, and a UDP one for `ParseUdp`, and
//! registering one touches five places. Here a protocol is one [`ProtocolPlugin`] line in
//! [`crate::protocols::ALL`] whose `build` returns a [`Protocol`]; the engine asks it for one
//! [`Session`] per connection (TCP) or per address pair (UDP) and calls that session with the
//! bytes of either direction:
//!
//! * TCP: [`Session::parse`] gets the direction's [`StreamBuf`], to which the engine appended
//!   the new in-order bytes. The session parses as many whole messages as it can,
//!   [`StreamBuf::consume`]s them, and leaves a partial message for the next call. So several
//!   messages per segment and messages across segments are the same case.
//! * UDP: the same call, one datagram in a fresh buffer (`cx.transport == Udp`).
//! * Missing bytes: [`Session::gap`] says how many; the session absorbs them (inside a body of
//!   known length) or answers [`GapAction::Drop`] and gets a fresh session.
//! * [`Session::fin`] when a direction closes, [`Session::tick`] about once a second (for
//!   transaction timeouts), [`Session::close`] when the connection ends for any reason.
//!
//! A session pairs requests with responses itself and pushes [`Transaction`]s into
//! [`Cx::out`]; the engine adds every common field (addresses, community ID, `event.*`, ...).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use skiff_config::{ConfigError, Node};
use skiff_event::{Map, Timestamp, Value};

use crate::config::ProtocolCommon;

/// Which way bytes travel, relative to the first packet seen of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the endpoint that sent the first packet (the SYN for TCP).
    Orig,
    /// Towards it.
    Reply,
}

impl Dir {
    /// The other direction.
    pub fn flip(self) -> Dir {
        match self {
            Dir::Orig => Dir::Reply,
            Dir::Reply => Dir::Orig,
        }
    }
    /// 0 for `Orig`, 1 for `Reply` (index into per-direction arrays).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The transport a session runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A byte stream: messages need framing.
    Tcp,
    /// Datagrams: each `parse` call is one message.
    Udp,
}

/// The endpoints of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The endpoint that sent the first packet.
    pub orig: (IpAddr, u16),
    /// The other one.
    pub reply: (IpAddr, u16),
    /// TCP or UDP.
    pub transport: Transport,
}

impl ConnInfo {
    /// The endpoint that sends in direction `dir`.
    pub fn sender(&self, dir: Dir) -> (IpAddr, u16) {
        match dir {
            Dir::Orig => self.orig,
            Dir::Reply => self.reply,
        }
    }
}

/// What a session gets with every call.
pub struct Cx<'a> {
    /// The capture time of the packet being handled (event times come from it); on a tick or
    /// a close, the time of the connection's last packet.
    pub now: Timestamp,
    /// The analyzer's clock (wall-clock time of processing): timeouts compare against it, as
    /// Packetbeat runs every timeout on the wall clock, so a fast replay of an old capture
    /// expires nothing that the recording's own gaps would.
    pub clock: Timestamp,
    /// The connection.
    pub conn: &'a ConnInfo,
    /// Where finished transactions go.
    pub out: &'a mut Vec<Transaction>,
}

impl Cx<'_> {
    /// TCP or UDP.
    pub fn transport(&self) -> Transport {
        self.conn.transport
    }
    /// Publishes a transaction.
    pub fn emit(&mut self, tx: Transaction) {
        self.out.push(tx);
    }
}

/// A direction's bytes not yet consumed by the session.
#[derive(Debug, Default)]
pub struct StreamBuf {
    data: Vec<u8>,
    start: usize,
}

impl StreamBuf {
    /// The unconsumed bytes.
    pub fn data(&self) -> &[u8] {
        &self.data[self.start..]
    }
    /// How many unconsumed bytes there are.
    pub fn len(&self) -> usize {
        self.data.len() - self.start
    }
    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Marks the first `n` bytes as parsed (all of them if `n` is larger).
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.data.len());
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        }
    }
    /// Drops everything.
    pub fn clear(&mut self) {
        self.data.clear();
        self.start = 0;
    }
    /// Appends bytes (the engine's job; tests use it too).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.data.len() / 2 {
            self.data.drain(..self.start);
            self.start = 0;
        }
        self.data.extend_from_slice(bytes);
    }
    /// Bytes of memory this buffer holds.
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }
    /// Gives back memory a large message left behind.
    pub fn shrink(&mut self) {
        if self.data.is_empty() && self.data.capacity() > 64 << 10 {
            self.data = Vec::new();
        }
    }
}

/// What a session wants after bytes went missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapAction {
    /// The session accounted for the missing bytes: go on with the same session.
    Continue,
    /// Drop the connection's application state: the next bytes go to a fresh session (a
    /// protocol that can resynchronise does so there).
    Drop,
}

/// Why a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both directions sent FIN, or one sent RST.
    Closed,
    /// No packets for the protocol's idle timeout: report what never got an answer, as
    /// Packetbeat does when a connection expires.
    Timeout,
    /// Evicted to stay within the memory budget.
    Evicted,
    /// The capture file ended: publish what is complete (a message delimited by the end of the
    /// connection, a per-connection summary); requests still waiting for their answer are
    /// dropped, as Packetbeat's replay ends before their timeout.
    EndOfInput,
}

/// One connection's (or one UDP address pair's) parser state.
pub trait Session: Send {
    /// New bytes in `buf` (direction `dir`): parse whole messages, consume them, emit
    /// transactions. UDP: `buf` holds exactly one datagram.
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf);

    /// `missing` bytes of `dir` were never captured; `buf` holds what came before them.
    fn gap(&mut self, cx: &mut Cx<'_>, dir: Dir, missing: u64, buf: &mut StreamBuf) -> GapAction {
        let _ = (cx, dir, missing, buf);
        GapAction::Drop
    }

    /// `dir` sent FIN (after its last bytes were parsed).
    fn fin(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        let _ = (cx, dir, buf);
    }

    /// Called about once a second: expire transactions older than the timeout.
    fn tick(&mut self, cx: &mut Cx<'_>) {
        let _ = cx;
    }

    /// The connection ends; the session is dropped afterwards.
    fn close(&mut self, cx: &mut Cx<'_>, why: CloseReason) {
        let _ = (cx, why);
    }

    /// Bytes this session holds beyond the stream buffers (pending transactions), for the
    /// memory budget.
    fn held_bytes(&self) -> usize {
        0
    }
}

/// A configured protocol: makes sessions.
pub trait Protocol: Send + Sync {
    /// A session for a new connection or UDP address pair.
    fn session(&self, transport: Transport) -> Box<dyn Session>;
}

/// What a protocol's `build` gets.
pub struct BuildArgs<'a> {
    /// The protocol's own options (common keys removed); deserialize with
    /// `deny_unknown_fields` so typos are located errors.
    pub own: &'a Node,
    /// The common options.
    pub common: &'a ProtocolCommon,
}

/// The descriptor of a protocol: one line in [`crate::protocols::ALL`].
pub struct ProtocolPlugin {
    /// The `type:` value.
    pub name: &'static str,
    /// Whether it runs over TCP.
    pub tcp: bool,
    /// Whether it runs over UDP.
    pub udp: bool,
    /// Ports used when `ports` is not configured (Packetbeat's reference configuration).
    pub default_ports: &'static [u16],
    /// Validates the options and builds the protocol.
    pub build: fn(&BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError>,
}

/// A finished exchange, before the engine adds the common fields.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The protocol: `type`, `event.dataset` and (unless changed) `network.protocol`.
    pub protocol: &'static str,
    /// The direction the request travelled (its sender is `source`/`client`).
    pub request_dir: Dir,
    /// The request's time (`@timestamp`, `event.start`); None for a response alone.
    pub start: Option<Timestamp>,
    /// The response's time (`event.end`).
    pub end: Option<Timestamp>,
    /// `status`: `OK` unless set.
    pub status: &'static str,
    /// `source.bytes`: the request's size in bytes.
    pub request_bytes: Option<u64>,
    /// `destination.bytes`: the response's size in bytes.
    pub response_bytes: Option<u64>,
    /// Protocol fields, by dotted path (nested on output).
    pub fields: Vec<(String, Value)>,
    /// `error.message` (one string, or an array when several).
    pub notes: Vec<String>,
    /// Extra `related.ip` entries after source and destination.
    pub related_ips: Vec<IpAddr>,
    /// `destination.domain` / `server.domain`.
    pub destination_domain: Option<String>,
}

impl Transaction {
    /// A transaction of `protocol` whose request travelled in `request_dir`.
    pub fn new(protocol: &'static str, request_dir: Dir) -> Transaction {
        Transaction {
            protocol,
            request_dir,
            start: None,
            end: None,
            status: "OK",
            request_bytes: None,
            response_bytes: None,
            fields: Vec::new(),
            notes: Vec::new(),
            related_ips: Vec::new(),
            destination_domain: None,
        }
    }

    /// Sets a protocol field (dotted path).
    pub fn set(&mut self, path: &str, value: impl Into<Value>) {
        self.fields.push((path.to_owned(), value.into()));
    }

    /// Sets a field only when `value` is Some.
    pub fn set_opt<V: Into<Value>>(&mut self, path: &str, value: Option<V>) {
        if let Some(v) = value {
            self.set(path, v);
        }
    }

    /// Adds a note (`error.message`).
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The protocol fields as a nested object (for tests and the engine).
    pub fn fields_map(&self) -> Map {
        let mut m = Map::new();
        for (k, v) in &self.fields {
            insert_dotted(&mut m, k, v.clone());
        }
        m
    }
}

/// Inserts `value` at dotted `path`, creating objects on the way.
pub fn insert_dotted(m: &mut Map, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            m.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let e = m
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !e.is_object() {
                *e = Value::Object(Map::new());
            }
            if let Value::Object(inner) = e {
                insert_dotted(inner, rest, value);
            }
        }
    }
}

/// Nanoseconds between two capture times (`event.duration`), when not negative.
pub fn duration_nanos(start: Timestamp, end: Timestamp) -> Option<i64> {
    let d = end.0.checked_sub(start.0)?;
    (d >= 0).then_some(d)
}

/// Whether `ts` is older than `timeout` at `now`.
pub fn expired(ts: Timestamp, now: Timestamp, timeout: Duration) -> bool {
    now.0.saturating_sub(ts.0) > timeout.as_nanos().min(i64::MAX as u128) as i64
}
