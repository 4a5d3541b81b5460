//! A [`Transaction`] becomes an event: the fields every Packetbeat transaction carries.
//!
//! `@timestamp`, `type`, `status`, `event.*` (kind, category, type, dataset, start, end,
//! duration), `source.*`/`destination.*` (the requester is the source, whatever the ports say)
//! with their `client.*`/`server.*` copies, `network.*` (type, transport, protocol, bytes,
//! community ID, direction), `related.ip` and `error.message`. Zero values of these typed fields
//! are left out, as Packetbeat leaves them out.

use std::net::IpAddr;
use std::sync::Arc;

use skiff_event::{Event, Map, Timestamp, Value};

use crate::direction::Directions;
use crate::protocol::{ConnInfo, Dir, Transaction, Transport, duration_nanos, insert_dotted};
use crate::protocols::icmp::IcmpTx;

/// Who requested and who answered.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    /// The requester.
    pub src: (IpAddr, u16),
    /// The responder.
    pub dst: (IpAddr, u16),
    /// TCP or UDP.
    pub transport: Transport,
}

impl Endpoints {
    /// The endpoints of `conn` when the request travelled in `request_dir`.
    pub fn of(conn: &ConnInfo, request_dir: Dir) -> Endpoints {
        Endpoints {
            src: conn.sender(request_dir),
            dst: conn.sender(request_dir.flip()),
            transport: conn.transport,
        }
    }
}

/// Builds events (holds what every event needs: the direction rules).
pub struct EventBuilder {
    directions: Directions,
}

/// `network.type` of an address.
pub fn ip_type(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "ipv4" } else { "ipv6" }
}

fn set(m: &mut Map, path: &str, v: impl Into<Value>) {
    insert_dotted(m, path, v.into());
}

/// Community ID v1, seed 0, of a flow (ports are ICMP type/code for ICMP).
pub fn community_id(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, proto: u8) -> Option<String> {
    community_id::calculate_community_id(0, src, dst, Some(sport), Some(dport), proto, false).ok()
}

fn new_event(ts: Timestamp, fields: Map, shared: &Arc<Map>) -> Event {
    Event {
        timestamp: ts,
        message: None,
        offset: None,
        fields,
        meta: Map::new(),
        shared: shared.clone(),
        ack: None,
    }
}

impl EventBuilder {
    /// A builder with these direction rules.
    pub fn new(directions: Directions) -> EventBuilder {
        EventBuilder { directions }
    }

    /// The common part of a transaction of `proto_name` between `src` and `dst`.
    #[allow(clippy::too_many_arguments)]
    fn common(
        &self,
        m: &mut Map,
        tx: &Transaction,
        src: IpAddr,
        dst: IpAddr,
        ports: Option<(u16, u16)>,
        transport: &str,
        cid: Option<String>,
    ) {
        set(m, "type", tx.protocol);
        set(m, "status", tx.status);
        set(m, "event.kind", "event");
        set(m, "event.category", vec!["network"]);
        set(m, "event.type", vec!["connection", "protocol"]);
        set(m, "event.dataset", tx.protocol);
        if let Some(s) = tx.start {
            set(
                m,
                "event.start",
                s.to_chrono().to_rfc3339_opts(chrono_secs(), true),
            );
        }
        if let Some(e) = tx.end {
            set(
                m,
                "event.end",
                e.to_chrono().to_rfc3339_opts(chrono_secs(), true),
            );
        }
        if let (Some(s), Some(e)) = (tx.start, tx.end)
            && let Some(d) = duration_nanos(s, e)
        {
            set(m, "event.duration", d);
        }
        for (side, ip, port, bytes, domain) in [
            ("source", src, ports.map(|p| p.0), tx.request_bytes, None),
            (
                "destination",
                dst,
                ports.map(|p| p.1),
                tx.response_bytes,
                tx.destination_domain.clone(),
            ),
        ] {
            let copy = if side == "source" { "client" } else { "server" };
            for name in [side, copy] {
                set(m, &format!("{name}.ip"), ip.to_string());
                if let Some(p) = port.filter(|p| *p != 0) {
                    set(m, &format!("{name}.port"), p);
                }
                if let Some(b) = bytes.filter(|b| *b != 0) {
                    set(m, &format!("{name}.bytes"), b);
                }
                if let Some(d) = &domain {
                    set(m, &format!("{name}.domain"), d.clone());
                }
            }
        }
        set(m, "network.type", ip_type(&src));
        set(m, "network.transport", transport);
        let total = tx.request_bytes.unwrap_or(0) + tx.response_bytes.unwrap_or(0);
        if total > 0 {
            set(m, "network.bytes", total);
        }
        if let Some(c) = cid {
            set(m, "network.community_id", c);
        }
        set(m, "network.direction", self.directions.of(src, dst));
        let mut related: Vec<String> = Vec::new();
        for ip in [src, dst].iter().chain(&tx.related_ips) {
            let s = ip.to_string();
            if !related.contains(&s) {
                related.push(s);
            }
        }
        set(m, "related.ip", related);
        match tx.notes.len() {
            0 => {}
            1 => set(m, "error.message", tx.notes[0].clone()),
            _ => set(m, "error.message", tx.notes.clone()),
        }
    }

    /// The event of a TCP/UDP transaction.
    pub fn transaction(
        &self,
        tx: Transaction,
        ends: &Endpoints,
        shared: &Arc<Map>,
    ) -> Option<Event> {
        let ts = tx.start.or(tx.end)?;
        let mut m = Map::new();
        let (transport, proto) = match ends.transport {
            Transport::Tcp => ("tcp", 6),
            Transport::Udp => ("udp", 17),
        };
        let cid = community_id(ends.src.0, ends.dst.0, ends.src.1, ends.dst.1, proto);
        self.common(
            &mut m,
            &tx,
            ends.src.0,
            ends.dst.0,
            Some((ends.src.1, ends.dst.1)),
            transport,
            cid,
        );
        set(&mut m, "network.protocol", tx.protocol);
        for (k, v) in tx.fields {
            insert_dotted(&mut m, &k, v);
        }
        Some(new_event(ts, m, shared))
    }

    /// The event of an ICMP exchange.
    pub fn icmp(&self, t: IcmpTx, shared: &Arc<Map>) -> Event {
        let ts = t.tx.start.or(t.tx.end).unwrap_or(Timestamp(0));
        let mut m = Map::new();
        let (transport, proto) = if t.v6 { ("ipv6-icmp", 58) } else { ("icmp", 1) };
        let cid = community_id(t.src, t.dst, t.icmp_type as u16, t.icmp_code as u16, proto);
        self.common(&mut m, &t.tx, t.src, t.dst, None, transport, cid);
        set(&mut m, "event.type", vec!["connection"]);
        for (k, v) in t.tx.fields {
            insert_dotted(&mut m, &k, v);
        }
        new_event(ts, m, shared)
    }
}

/// `event.start`/`event.end` keep the capture's precision (microseconds or nanoseconds, as
/// Packetbeat's `timestamp.precision` shows them); `@timestamp` keeps skiff's milliseconds.
fn chrono_secs() -> chrono::SecondsFormat {
    chrono::SecondsFormat::AutoSi
}
