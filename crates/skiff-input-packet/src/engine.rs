//! The analyzer: decoded packets in, events out.
//!
//! It picks the protocol of a TCP connection or UDP address pair by port (source port first,
//! then destination, as Packetbeat), keeps one [`Session`] per connection with two reassembled
//! directions, hands ICMP to the ICMP matcher and every packet to the flow table, expires idle
//! connections, and keeps everything it holds within `packetbeat.reassembly.max_bytes`: a
//! Budget stage (`packet.reassembly`) whose oldest connections are evicted first.
//!
//! It is synchronous and single-threaded: the input runs it on a blocking thread and the tests
//! call it directly, so a capture file gives the same events every time.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use skiff_config::{ConfigError, ConfigErrors};
use skiff_event::{Event, Map, Timestamp};
use skiff_metrics::{Counter, Gauge, names};
use skiff_pipeline::budget::Stage;
use skiff_pipeline::{BuildContext, InputCommon};

use crate::config::PacketbeatConfig;
use crate::decode::{Packet, Transport as L4};
use crate::direction::Directions;
use crate::flows::FlowTable;
use crate::protocol::{
    BuildArgs, CloseReason, ConnInfo, Cx, Dir, GapAction, Protocol, ProtocolPlugin, Session,
    StreamBuf, Transaction, Transport,
};
use crate::protocols::icmp::IcmpTracker;
use crate::tcp::{DirState, Step};
use crate::txevent::{Endpoints, EventBuilder};

/// What one connection costs besides its buffers (tables, tracker, session), for the budget.
const CONN_OVERHEAD: usize = 512;

/// A configured protocol.
struct Slot {
    plugin: &'static ProtocolPlugin,
    proto: Arc<dyn Protocol>,
    shared: Arc<Map>,
    timeout: Duration,
}

#[derive(Hash, PartialEq, Eq, Clone, Copy, Debug)]
struct Key {
    transport: Transport,
    a: (IpAddr, u16),
    b: (IpAddr, u16),
}

impl Key {
    fn new(transport: Transport, x: (IpAddr, u16), y: (IpAddr, u16)) -> Key {
        let (a, b) = if x <= y { (x, y) } else { (y, x) };
        Key { transport, a, b }
    }
}

struct Conn {
    info: ConnInfo,
    slot: usize,
    session: Box<dyn Session>,
    dirs: [DirState; 2],
    bufs: [StreamBuf; 2],
    /// Clock time of the last packet (idle timeout).
    last_seen: Timestamp,
    /// Capture time of the last packet.
    last_ts: Timestamp,
    generation: u64,
    accounted: usize,
}

/// Counters of the analyzer.
#[derive(Clone)]
struct Metrics {
    received: Counter,
    malformed: Counter,
    gaps: Counter,
    evicted: Counter,
    active: Gauge,
    published: Counter,
}

/// The analyzer of one capture.
pub struct Engine {
    slots: Vec<Slot>,
    tcp_ports: HashMap<u16, usize>,
    udp_ports: HashMap<u16, usize>,
    conns: HashMap<Key, Conn>,
    order: VecDeque<(Key, u64)>,
    generation: u64,
    icmp: Option<(IcmpTracker, Arc<Map>)>,
    flows: Option<FlowTable>,
    builder: EventBuilder,
    stage: Stage,
    used: usize,
    max_bytes: usize,
    max_stream: usize,
    max_early: usize,
    last_tick: Timestamp,
    metrics: Metrics,
    steps: Vec<Step>,
    txs: Vec<Transaction>,
}

/// The fields shared by the events of one protocol (`agent.*`, `host.*`, `fields`, `tags`,
/// `@metadata`), as the Beats stamp them, without Filebeat's `input.type`.
fn shared_for(
    ctx: &BuildContext,
    fields: &Map,
    under_root: bool,
    tags: &[String],
    index: &Option<String>,
) -> Arc<Map> {
    let common = InputCommon {
        fields: fields.clone(),
        fields_under_root: under_root,
        tags: tags.to_vec(),
        index: index.clone(),
        ..InputCommon::default()
    };
    let mut m = ctx.shared_fields(&common, "packet", "packetbeat");
    m.remove("input");
    Arc::new(m)
}

impl Engine {
    /// Builds the analyzer: every protocol's options are validated here.
    pub fn new(cfg: &PacketbeatConfig, ctx: &BuildContext) -> Result<Engine, ConfigErrors> {
        let mut errors = Vec::new();
        let mut slots = Vec::new();
        let mut tcp_ports = HashMap::new();
        let mut udp_ports = HashMap::new();
        let mut icmp = None;
        for entry in &cfg.protocols {
            let Some(plugin) = crate::protocols::find(&entry.common.kind) else {
                continue;
            };
            let c = &entry.common;
            let shared = shared_for(ctx, &c.fields, c.fields_under_root, &c.tags, &c.index);
            if plugin.name == "icmp" {
                icmp = Some((
                    IcmpTracker::new(c.timeout(), c.send_request, c.send_response),
                    shared,
                ));
                continue;
            }
            let proto = match (plugin.build)(&BuildArgs {
                own: &entry.own,
                common: c,
            }) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let idx = slots.len();
            let ports = c
                .ports
                .clone()
                .unwrap_or_else(|| plugin.default_ports.to_vec());
            for port in ports {
                for (on, table) in [(plugin.tcp, &mut tcp_ports), (plugin.udp, &mut udp_ports)] {
                    if !on {
                        continue;
                    }
                    if let Some(&other) = table.get(&port) {
                        let other: &Slot = &slots[other];
                        errors.push(ConfigError::new(
                            &entry.node.path,
                            entry.node.mark.clone(),
                            format!(
                                "duplicate port {port}: already used by protocol `{}`",
                                other.plugin.name
                            ),
                        ));
                    } else {
                        table.insert(port, idx);
                    }
                }
            }
            slots.push(Slot {
                plugin,
                proto,
                shared,
                timeout: c.timeout(),
            });
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let flows = cfg.flows.as_ref().map(|f| {
            let shared = shared_for(ctx, &f.fields, f.fields_under_root, &f.tags, &f.index);
            FlowTable::new(f, shared)
        });
        let internal = cfg
            .interfaces
            .first()
            .map(|i| i.internal_networks.clone())
            .unwrap_or_default();
        let max_bytes = cfg.reassembly.max_bytes.0.min(usize::MAX as u64) as usize;
        let m = &ctx.metrics;
        Ok(Engine {
            slots,
            tcp_ports,
            udp_ports,
            conns: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
            icmp,
            flows,
            builder: EventBuilder::new(Directions::new(&internal)),
            stage: ctx.budget.stage("packet.reassembly", max_bytes as u64),
            used: 0,
            max_bytes,
            max_stream: cfg.reassembly.max_stream_bytes.0.min(usize::MAX as u64) as usize,
            max_early: cfg.reassembly.max_out_of_order,
            last_tick: Timestamp(0),
            metrics: Metrics {
                received: m.counter(&names::PACKET_RECEIVED),
                malformed: m.counter(&names::PACKET_MALFORMED),
                gaps: m.counter(&names::PACKET_TCP_GAPS),
                evicted: m.counter(&names::PACKET_TCP_EVICTED),
                active: m.gauge(&names::PACKET_CONNECTIONS),
                published: m.counter(&names::PACKET_TRANSACTIONS),
            },
            steps: Vec::new(),
            txs: Vec::new(),
        })
    }

    /// The BPF filter Packetbeat would generate for these protocols (None when flows are on:
    /// then everything is captured).
    pub fn bpf_filter(&self, with_vlans: bool) -> Option<String> {
        if self.flows.is_some() {
            return None;
        }
        let mut parts: Vec<String> = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let mut ports: Vec<u16> = self
                .tcp_ports
                .iter()
                .chain(self.udp_ports.iter())
                .filter(|(_, v)| **v == i)
                .map(|(p, _)| *p)
                .collect();
            ports.sort_unstable();
            ports.dedup();
            let kind = match (s.plugin.tcp, s.plugin.udp) {
                (true, false) => "tcp port",
                (false, true) => "udp port",
                _ => "port",
            };
            parts.extend(ports.into_iter().map(|p| format!("{kind} {p}")));
        }
        if self.icmp.is_some() {
            parts.push("icmp".into());
            parts.push("icmp6".into());
        }
        if parts.is_empty() {
            return None;
        }
        let f = parts.join(" or ");
        Some(if with_vlans {
            format!("{f} or (vlan and ({f}))")
        } else {
            f
        })
    }

    /// A frame that did not decode.
    pub fn malformed(&mut self) {
        self.metrics.received.inc();
        self.metrics.malformed.inc();
    }

    /// A frame that decoded to nothing to analyse (ARP, a held fragment).
    pub fn skipped(&mut self) {
        self.metrics.received.inc();
    }

    /// Handles one packet processed at `clock` (the wall clock, or a test's clock); events go
    /// to `out`.
    pub fn packet(&mut self, p: &Packet<'_>, clock: Timestamp, out: &mut Vec<Event>) {
        self.metrics.received.inc();
        if let Some(f) = &mut self.flows {
            f.packet(p, clock);
        }
        match p.transport {
            L4::Tcp {
                src_port,
                dst_port,
                seq,
                flags,
            } => self.tcp(p, clock, src_port, dst_port, seq, flags, out),
            L4::Udp { src_port, dst_port } => self.udp(p, clock, src_port, dst_port, out),
            L4::Icmp {
                v6,
                icmp_type,
                code,
                id,
                seq,
            } => {
                if let Some((tracker, shared)) = &mut self.icmp {
                    let mut evs = Vec::new();
                    tracker.message(p, clock, v6, icmp_type, code, id, seq, &mut evs);
                    for e in evs {
                        out.push(self.builder.icmp(e, shared));
                    }
                }
            }
            L4::Other(_) => {}
        }
        if clock.0.saturating_sub(self.last_tick.0) >= 1_000_000_000 {
            self.tick(clock, out);
        }
        self.metrics.published.add(out.len() as u64);
    }

    fn slot_for(&self, t: Transport, src_port: u16, dst_port: u16) -> Option<usize> {
        let table = match t {
            Transport::Tcp => &self.tcp_ports,
            Transport::Udp => &self.udp_ports,
        };
        table
            .get(&src_port)
            .or_else(|| table.get(&dst_port))
            .copied()
    }

    /// The connection of this packet, created if its ports select a protocol; and the
    /// packet's direction in it.
    fn conn_for(
        &mut self,
        t: Transport,
        p: &Packet<'_>,
        clock: Timestamp,
        src_port: u16,
        dst_port: u16,
        create: bool,
    ) -> Option<(Key, Dir)> {
        let src = (p.src, src_port);
        let dst = (p.dst, dst_port);
        let key = Key::new(t, src, dst);
        if let Some(c) = self.conns.get_mut(&key) {
            c.last_seen = clock;
            c.last_ts = p.ts;
            let dir = if c.info.orig == src {
                Dir::Orig
            } else {
                Dir::Reply
            };
            return Some((key, dir));
        }
        if !create {
            return None;
        }
        let slot = self.slot_for(t, src_port, dst_port)?;
        self.generation += 1;
        let conn = Conn {
            info: ConnInfo {
                orig: src,
                reply: dst,
                transport: t,
            },
            slot,
            session: self.slots[slot].proto.session(t),
            dirs: Default::default(),
            bufs: Default::default(),
            last_seen: clock,
            last_ts: p.ts,
            generation: self.generation,
            accounted: 0,
        };
        self.conns.insert(key, conn);
        self.order.push_back((key, self.generation));
        self.metrics.active.set(self.conns.len() as i64);
        Some((key, Dir::Orig))
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        p: &Packet<'_>,
        clock: Timestamp,
        src_port: u16,
        dst_port: u16,
        seq: u32,
        flags: crate::decode::TcpFlags,
        out: &mut Vec<Event>,
    ) {
        // A connection starts with its SYN (which tells who the client is) or, when the capture
        // began later, with its first payload. A closed connection stays in the table until it
        // idles out, so late retransmissions are recognised as such; a SYN with a new initial
        // sequence number on the same ports is a new connection.
        let syn_only = flags.syn && !flags.ack;
        let create = syn_only || !p.payload.is_empty();
        let Some((mut key, mut dir)) =
            self.conn_for(Transport::Tcp, p, clock, src_port, dst_port, create)
        else {
            return;
        };
        if syn_only
            && let Some(c) = self.conns.get(&key)
            && c.dirs[dir.index()].isn.is_some_and(|isn| isn != seq)
        {
            let evs = self.close(key, clock, CloseReason::Closed);
            out.extend(evs);
            match self.conn_for(Transport::Tcp, p, clock, src_port, dst_port, true) {
                Some((k, d)) => (key, dir) = (k, d),
                None => return,
            }
        }
        let max_early = self.max_early;
        let mut steps = std::mem::take(&mut self.steps);
        steps.clear();
        if let Some(c) = self.conns.get_mut(&key) {
            c.dirs[dir.index()]
                .segment(seq, flags.syn, flags.fin, &p.payload, max_early, &mut steps);
        }
        for step in steps.drain(..) {
            self.step(key, dir, step, p.ts, clock);
        }
        self.steps = steps;
        self.account(key);
        self.drain_txs(key, out);
        self.evict(clock, out);
    }

    fn step(&mut self, key: Key, dir: Dir, step: Step, now: Timestamp, clock: Timestamp) {
        let max_stream = self.max_stream;
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let mut cx = Cx {
            now,
            clock,
            conn: &c.info,
            out: &mut self.txs,
        };
        let d = dir.index();
        match step {
            Step::Data(bytes) => {
                c.bufs[d].push(&bytes);
                c.session.parse(&mut cx, dir, &mut c.bufs[d]);
                if c.bufs[d].len() > max_stream {
                    // A message larger than the stream cap: drop what is held and tell the
                    // session, as if those bytes had never been captured.
                    let n = c.bufs[d].len() as u64;
                    c.bufs[d].clear();
                    self.metrics.gaps.inc();
                    if c.session.gap(&mut cx, dir, n, &mut c.bufs[d]) == GapAction::Drop {
                        c.session = self.slots[c.slot].proto.session(Transport::Tcp);
                        c.bufs = Default::default();
                    }
                }
                c.bufs[d].shrink();
            }
            Step::Gap(n) => {
                self.metrics.gaps.inc();
                if c.session.gap(&mut cx, dir, n, &mut c.bufs[d]) == GapAction::Drop {
                    c.session = self.slots[c.slot].proto.session(Transport::Tcp);
                    c.bufs = Default::default();
                }
            }
            Step::Fin => c.session.fin(&mut cx, dir, &mut c.bufs[d]),
        }
    }

    fn udp(
        &mut self,
        p: &Packet<'_>,
        clock: Timestamp,
        src_port: u16,
        dst_port: u16,
        out: &mut Vec<Event>,
    ) {
        if p.payload.is_empty() {
            return;
        }
        let Some((key, dir)) = self.conn_for(Transport::Udp, p, clock, src_port, dst_port, true)
        else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&key) {
            let mut buf = StreamBuf::default();
            buf.push(&p.payload);
            let mut cx = Cx {
                now: p.ts,
                clock,
                conn: &c.info,
                out: &mut self.txs,
            };
            c.session.parse(&mut cx, dir, &mut buf);
        }
        self.account(key);
        self.drain_txs(key, out);
        self.evict(clock, out);
    }

    fn drain_txs(&mut self, key: Key, out: &mut Vec<Event>) {
        if self.txs.is_empty() {
            return;
        }
        let Some(c) = self.conns.get(&key) else {
            self.txs.clear();
            return;
        };
        let slot = &self.slots[c.slot];
        for tx in self.txs.drain(..) {
            let ends = Endpoints::of(&c.info, tx.request_dir);
            if let Some(e) = self.builder.transaction(tx, &ends, &slot.shared) {
                out.push(e);
            }
        }
    }

    /// Re-accounts a connection after it changed.
    fn account(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let now = CONN_OVERHEAD
            + c.bufs[0].capacity()
            + c.bufs[1].capacity()
            + c.dirs[0].held_bytes()
            + c.dirs[1].held_bytes()
            + c.session.held_bytes();
        if now >= c.accounted {
            self.stage.add(now - c.accounted);
            self.used += now - c.accounted;
        } else {
            self.stage.sub(c.accounted - now);
            self.used -= c.accounted - now;
        }
        c.accounted = now;
    }

    fn close(&mut self, key: Key, clock: Timestamp, why: CloseReason) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(mut c) = self.conns.remove(&key) else {
            return events;
        };
        let mut steps = Vec::new();
        let mut cx = Cx {
            now: c.last_ts,
            clock,
            conn: &c.info,
            out: &mut self.txs,
        };
        for dir in [Dir::Orig, Dir::Reply] {
            c.dirs[dir.index()].flush(&mut steps);
            for s in steps.drain(..) {
                match s {
                    Step::Data(b) => {
                        c.bufs[dir.index()].push(&b);
                        c.session.parse(&mut cx, dir, &mut c.bufs[dir.index()]);
                    }
                    Step::Gap(n) => {
                        let _ = c.session.gap(&mut cx, dir, n, &mut c.bufs[dir.index()]);
                    }
                    Step::Fin => c.session.fin(&mut cx, dir, &mut c.bufs[dir.index()]),
                }
            }
        }
        c.session.close(&mut cx, why);
        self.stage.sub(c.accounted);
        self.used -= c.accounted;
        self.metrics.active.set(self.conns.len() as i64);
        let slot = &self.slots[c.slot];
        for tx in self.txs.drain(..) {
            let ends = Endpoints::of(&c.info, tx.request_dir);
            if let Some(e) = self.builder.transaction(tx, &ends, &slot.shared) {
                events.push(e);
            }
        }
        events
    }

    /// Evicts the oldest connections while over the budget.
    fn evict(&mut self, clock: Timestamp, out: &mut Vec<Event>) {
        while self.used > self.max_bytes {
            let Some((key, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .conns
                .get(&key)
                .is_some_and(|c| c.generation == generation)
            {
                self.metrics.evicted.inc();
                let evs = self.close(key, clock, CloseReason::Evicted);
                out.extend(evs);
            }
        }
        // Entries of connections that are gone are dropped lazily; compact now and then.
        if self.order.len() > 2 * self.conns.len() + 64 {
            let conns = &self.conns;
            self.order
                .retain(|(k, g)| conns.get(k).is_some_and(|c| c.generation == *g));
        }
    }

    /// The clock moved (about once a second): expire idle connections, let sessions time out
    /// transactions, report flows.
    pub fn tick(&mut self, clock: Timestamp, out: &mut Vec<Event>) {
        self.last_tick = clock;
        let idle: Vec<Key> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                crate::protocol::expired(c.last_seen, clock, self.slots[c.slot].timeout)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in idle {
            let evs = self.close(k, clock, CloseReason::Timeout);
            out.extend(evs);
        }
        let keys: Vec<Key> = self.conns.keys().copied().collect();
        for k in keys {
            if let Some(c) = self.conns.get_mut(&k) {
                let mut cx = Cx {
                    now: c.last_ts,
                    clock,
                    conn: &c.info,
                    out: &mut self.txs,
                };
                c.session.tick(&mut cx);
            }
            self.drain_txs(k, out);
        }
        if let Some((tracker, shared)) = &mut self.icmp {
            let mut evs = Vec::new();
            tracker.expire(clock, &mut evs);
            for e in evs {
                out.push(self.builder.icmp(e, shared));
            }
        }
        if let Some(f) = &mut self.flows {
            f.tick(clock, out);
        }
    }

    /// The end of the capture: every connection is closed (`EndOfInput`), final flows reported.
    pub fn finish(&mut self, clock: Timestamp, out: &mut Vec<Event>) {
        let before = out.len();
        let keys: Vec<Key> = self.conns.keys().copied().collect();
        for k in keys {
            let evs = self.close(k, clock, CloseReason::EndOfInput);
            out.extend(evs);
        }
        self.order.clear();
        if let Some(f) = &mut self.flows {
            f.finish(clock, out);
        }
        self.metrics.published.add((out.len() - before) as u64);
    }

    /// Bytes accounted now (connections and their buffers).
    pub fn used_bytes(&self) -> usize {
        self.used
    }

    /// Connections tracked now.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The names of the configured port-based protocols.
    pub fn protocols(&self) -> Vec<&'static str> {
        self.slots.iter().map(|s| s.plugin.name).collect()
    }
}
