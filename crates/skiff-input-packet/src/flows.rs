//! Network flows (`packetbeat.flows`): packets and bytes per direction of every conversation,
//! reported every `period` and once more, as final, after `timeout` without packets or at the
//! end of the capture.
//!
//! Key: the MAC pair (unless `allow_mismatched_eth`), the VLAN ids, the address pair, and the
//! port pair or the ICMP id. Bytes are whole captured frames. The endpoint that sent the first
//! packet is the flow's `source`. Times are the packets' times (capture time in a `-t`
//! replay, the current time live), so a replayed file gives meaningful `event.start`/`end`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use skiff_event::{Event, Map, Timestamp, Value};

use crate::config::FlowsConfig;
use crate::decode::{Packet, Transport};
use crate::protocol::insert_dotted;
use crate::txevent::{community_id, ip_type};

#[derive(Hash, PartialEq, Eq, Clone, Debug)]
struct FlowKey {
    macs: Option<([u8; 6], [u8; 6])>,
    vlans: Vec<u16>,
    ips: (IpAddr, IpAddr),
    ports: (u16, u16),
    proto: u8,
}

#[derive(Debug)]
struct Flow {
    id: String,
    src_mac: Option<[u8; 6]>,
    dst_mac: Option<[u8; 6]>,
    vlans: Vec<u16>,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    proto: u8,
    icmp: Option<(u8, u8)>,
    start: Timestamp,
    last: Timestamp,
    /// Clock time of the last packet (the idle timeout).
    seen: Timestamp,
    stats: [(u64, u64); 2],
}

/// The most flows tracked at once: past it the oldest is reported as final and dropped.
const MAX_FLOWS: usize = 1 << 18;

/// The flow table.
pub struct FlowTable {
    flows: HashMap<FlowKey, Flow>,
    timeout: Duration,
    period: Option<Duration>,
    delta: bool,
    mismatched_eth: bool,
    last_report: Option<Timestamp>,
    shared: Arc<Map>,
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join("-")
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

impl FlowTable {
    /// A table configured by `packetbeat.flows`.
    pub fn new(cfg: &FlowsConfig, shared: Arc<Map>) -> FlowTable {
        FlowTable {
            flows: HashMap::new(),
            timeout: cfg.timeout(),
            period: cfg.period(),
            delta: cfg.enable_delta_flow_reports,
            mismatched_eth: cfg.allow_mismatched_eth,
            last_report: None,
            shared,
        }
    }

    /// Counts one packet, processed at `clock`.
    pub fn packet(&mut self, p: &Packet<'_>, clock: Timestamp) {
        let (ports, proto, icmp) = match p.transport {
            Transport::Tcp {
                src_port, dst_port, ..
            } => ((src_port, dst_port), 6u8, None),
            Transport::Udp { src_port, dst_port } => ((src_port, dst_port), 17, None),
            Transport::Icmp {
                v6,
                icmp_type,
                code,
                id,
                ..
            } => ((id, id), if v6 { 58 } else { 1 }, Some((icmp_type, code))),
            Transport::Other(n) => ((0, 0), n, None),
        };
        let macs = if self.mismatched_eth { None } else { p.macs };
        let a = (p.src, ports.0, macs.map(|m| m.0));
        let b = (p.dst, ports.1, macs.map(|m| m.1));
        let forward = a <= b;
        let (lo, hi) = if forward { (a, b) } else { (b, a) };
        let key = FlowKey {
            macs: lo.2.zip(hi.2),
            vlans: p.vlans.clone(),
            ips: (lo.0, hi.0),
            ports: (lo.1, hi.1),
            proto,
        };
        if !self.flows.contains_key(&key) && self.flows.len() >= MAX_FLOWS {
            return;
        }
        let flow = self.flows.entry(key.clone()).or_insert_with(|| {
            let mut raw = Vec::new();
            if let Some((x, y)) = key.macs {
                raw.extend_from_slice(&x);
                raw.extend_from_slice(&y);
            }
            for v in &key.vlans {
                raw.extend_from_slice(&v.to_be_bytes());
            }
            raw.extend(ip_bytes(&key.ips.0));
            raw.extend(ip_bytes(&key.ips.1));
            raw.extend_from_slice(&key.ports.0.to_be_bytes());
            raw.extend_from_slice(&key.ports.1.to_be_bytes());
            raw.push(key.proto);
            Flow {
                id: base64::engine::general_purpose::STANDARD_NO_PAD.encode(&raw),
                src_mac: p.macs.map(|m| m.0),
                dst_mac: p.macs.map(|m| m.1),
                vlans: p.vlans.clone(),
                src: (p.src, ports.0),
                dst: (p.dst, ports.1),
                proto,
                icmp: None,
                start: p.ts,
                last: p.ts,
                seen: clock,
                stats: [(0, 0); 2],
            }
        });
        let dir = usize::from(flow.src.0 != p.src || flow.src.1 != ports.0);
        flow.stats[dir].0 += 1;
        flow.stats[dir].1 += p.frame_len as u64;
        flow.last = flow.last.max(p.ts);
        flow.seen = clock;
        if dir == 0 && flow.icmp.is_none() {
            flow.icmp = icmp.filter(|(t, c)| *t != 0 || *c != 0);
        }
    }

    fn event(&self, f: &Flow, now: Timestamp, last: bool) -> Event {
        let mut m = Map::new();
        let mut set = |k: &str, v: Value| insert_dotted(&mut m, k, v);
        let fmt = |t: Timestamp| {
            Value::from(
                t.to_chrono()
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            )
        };
        set("type", "flow".into());
        set("event.kind", "event".into());
        set("event.category", serde_json::json!(["network"]));
        set("event.action", "network_flow".into());
        set(
            "event.type",
            if last {
                serde_json::json!(["connection", "end"])
            } else {
                serde_json::json!(["connection"])
            },
        );
        set("event.dataset", "flow".into());
        set("event.start", fmt(f.start));
        set("event.end", fmt(f.last));
        set("event.duration", (f.last.0 - f.start.0).max(0).into());
        set("flow.id", f.id.clone().into());
        set("flow.final", last.into());
        match f.vlans.as_slice() {
            [] => {}
            [one] => set("flow.vlan", (*one).into()),
            many => set("flow.vlan", serde_json::json!(many)),
        }
        let with_ports = matches!(f.proto, 6 | 17);
        for (side, (ip, port), mac_addr, (packets, bytes)) in [
            ("source", f.src, f.src_mac, f.stats[0]),
            ("destination", f.dst, f.dst_mac, f.stats[1]),
        ] {
            set(&format!("{side}.ip"), ip.to_string().into());
            if with_ports {
                set(&format!("{side}.port"), port.into());
            }
            if let Some(m) = mac_addr {
                set(&format!("{side}.mac"), mac(m).into());
            }
            if packets > 0 {
                set(&format!("{side}.packets"), packets.into());
                set(&format!("{side}.bytes"), bytes.into());
            }
        }
        set("network.type", ip_type(&f.src.0).into());
        let transport = match f.proto {
            6 => Some("tcp"),
            17 => Some("udp"),
            1 => Some("icmp"),
            58 => Some("ipv6-icmp"),
            _ => None,
        };
        if let Some(t) = transport {
            set("network.transport", t.into());
        }
        set("network.bytes", (f.stats[0].1 + f.stats[1].1).into());
        set("network.packets", (f.stats[0].0 + f.stats[1].0).into());
        let cid = match (f.proto, f.icmp) {
            (6 | 17, _) => community_id(f.src.0, f.dst.0, f.src.1, f.dst.1, f.proto),
            (1 | 58, Some((t, c))) => community_id(f.src.0, f.dst.0, t.into(), c.into(), f.proto),
            (1 | 58, None) => None,
            (p, _) => {
                community_id::calculate_community_id(0, f.src.0, f.dst.0, None, None, p, false).ok()
            }
        };
        if let Some(c) = cid {
            set("network.community_id", c.into());
        }
        Event {
            timestamp: now,
            message: None,
            offset: None,
            fields: m,
            meta: Map::new(),
            shared: self.shared.clone(),
            ack: None,
        }
    }

    /// Reports idle flows as final and, every `period`, the live ones.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let timeout = self.timeout.as_nanos() as i64;
        let dead: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(_, f)| now.0.saturating_sub(f.seen.0) > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for k in dead {
            if let Some(f) = self.flows.remove(&k) {
                out.push(self.event(&f, now, true));
            }
        }
        let Some(period) = self.period else { return };
        let last = *self.last_report.get_or_insert(now);
        if now.0.saturating_sub(last.0) < period.as_nanos() as i64 {
            return;
        }
        self.last_report = Some(now);
        let mut evs: Vec<Event> = self
            .flows
            .values()
            .map(|f| self.event(f, now, false))
            .collect();
        out.append(&mut evs);
        if self.delta {
            for f in self.flows.values_mut() {
                f.stats = [(0, 0); 2];
            }
        }
    }

    /// The end: every flow is reported as final (stamped `clock`, the report time).
    pub fn finish(&mut self, clock: Timestamp, out: &mut Vec<Event>) {
        let flows: Vec<Flow> = self.flows.drain().map(|(_, f)| f).collect();
        for f in flows {
            out.push(self.event(&f, clock, true));
        }
    }
}
