//! `community_id`: the Community ID flow hash (v1, corelight/community-id-spec) of an event's
//! source and destination (libbeat's).
//!
//! SHA-1 over the seed, both addresses, the IANA protocol number, a pad byte and both ports,
//! the endpoints ordered so both directions of a flow hash the same; base64, prefixed `1:`.
//! ICMP types stand in for ports, a request and its reply mapped together. An event without
//! the needed fields is left alone (no error), as libbeat does.

use std::net::IpAddr;

use data_encoding::BASE64;
use serde::Deserialize;
use sha1::{Digest, Sha1};
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::plugin;

plugin!(COMMUNITY_ID, "community_id", build);

/// Where the flow's parts are read; each field documented with its default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    /// Default `source.ip`.
    #[serde(default = "f_source_ip")]
    source_ip: String,
    /// Default `source.port`.
    #[serde(default = "f_source_port")]
    source_port: String,
    /// Default `destination.ip`.
    #[serde(default = "f_destination_ip")]
    destination_ip: String,
    /// Default `destination.port`.
    #[serde(default = "f_destination_port")]
    destination_port: String,
    /// Default `network.iana_number`.
    #[serde(default = "f_iana_number")]
    iana_number: String,
    /// Default `network.transport`.
    #[serde(default = "f_transport")]
    transport: String,
    /// Default `icmp.type`.
    #[serde(default = "f_icmp_type")]
    icmp_type: String,
    /// Default `icmp.code`.
    #[serde(default = "f_icmp_code")]
    icmp_code: String,
}

fn f_source_ip() -> String {
    "source.ip".into()
}
fn f_source_port() -> String {
    "source.port".into()
}
fn f_destination_ip() -> String {
    "destination.ip".into()
}
fn f_destination_port() -> String {
    "destination.port".into()
}
fn f_iana_number() -> String {
    "network.iana_number".into()
}
fn f_transport() -> String {
    "network.transport".into()
}
fn f_icmp_type() -> String {
    "icmp.type".into()
}
fn f_icmp_code() -> String {
    "icmp.code".into()
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            source_ip: f_source_ip(),
            source_port: f_source_port(),
            destination_ip: f_destination_ip(),
            destination_port: f_destination_port(),
            iana_number: f_iana_number(),
            transport: f_transport(),
            icmp_type: f_icmp_type(),
            icmp_code: f_icmp_code(),
        }
    }
}

/// `community_id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `fields`: where the flow's parts are. Defaults: ECS fields.
    #[serde(default)]
    fields: Fields,
    /// `target`: where the id goes. Default `network.community_id`.
    #[serde(default = "target")]
    target: String,
    /// `seed`: 0 to 65535. Default 0.
    #[serde(default)]
    seed: u16,
}

fn target() -> String {
    "network.community_id".into()
}

struct CommunityId(Config);

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    Ok(Box::new(CommunityId(node.deserialize()?)))
}

const ICMP: u8 = 1;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP6: u8 = 58;
const SCTP: u8 = 132;

/// The reply type of an ICMP request type (and back), per the spec.
fn icmp_counterpart(proto: u8, t: u8) -> Option<u8> {
    let pairs: &[(u8, u8)] = if proto == ICMP {
        &[(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)]
    } else {
        &[
            (128, 129),
            (133, 134),
            (135, 136),
            (130, 131),
            (144, 145),
            (146, 147),
            (139, 140),
        ]
    };
    pairs.iter().find_map(|&(a, b)| {
        if a == t {
            Some(b)
        } else if b == t {
            Some(a)
        } else {
            None
        }
    })
}

/// The Community ID v1 of a flow; ports are ICMP type and code for ICMP.
pub fn community_id(
    seed: u16,
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
) -> Option<String> {
    let bytes = |ip: IpAddr| match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let (mut s, mut d) = (bytes(src), bytes(dst));
    if s.len() != d.len() {
        return None;
    }
    let (mut sp, mut dp) = (sport, dport);
    let has_ports = matches!(proto, TCP | UDP | SCTP | ICMP | ICMP6);
    let mut one_way = false;
    if matches!(proto, ICMP | ICMP6) {
        let t = u8::try_from(sport).ok()?;
        match icmp_counterpart(proto, t) {
            Some(c) => dp = u16::from(c),
            None => one_way = true,
        }
    }
    if !one_way && (s > d || (s == d && sp > dp)) {
        std::mem::swap(&mut s, &mut d);
        std::mem::swap(&mut sp, &mut dp);
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(&s);
    h.update(&d);
    h.update([proto, 0]);
    if has_ports {
        h.update(sp.to_be_bytes());
        h.update(dp.to_be_bytes());
    }
    Some(format!("1:{}", BASE64.encode(&h.finalize())))
}

fn protocol(event: &Event, f: &Fields) -> Option<u8> {
    if let Some(n) = event.get(&f.iana_number).map(|v| v.to_value()) {
        let n = match n {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        return n.and_then(|n| u8::try_from(n).ok());
    }
    let t = event.get(&f.transport)?.as_str()?.to_ascii_lowercase();
    Some(match t.as_str() {
        "icmp" => ICMP,
        "tcp" => TCP,
        "udp" => UDP,
        "ipv6-icmp" | "icmpv6" => ICMP6,
        "sctp" => SCTP,
        _ => return None,
    })
}

fn number(event: &Event, field: &str) -> Option<u16> {
    match event.get(field)?.to_value() {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl Processor for CommunityId {
    fn process(&self, event: &mut Event) -> Verdict {
        let f = &self.0.fields;
        let ip = |field: &str| {
            event
                .get(field)
                .and_then(|v| v.as_str().and_then(|s| s.parse::<IpAddr>().ok()))
        };
        let (Some(src), Some(dst), Some(proto)) =
            (ip(&f.source_ip), ip(&f.destination_ip), protocol(event, f))
        else {
            return Verdict::Keep;
        };
        let ports = match proto {
            TCP | UDP | SCTP => {
                number(event, &f.source_port).zip(number(event, &f.destination_port))
            }
            ICMP | ICMP6 => number(event, &f.icmp_type).zip(number(event, &f.icmp_code)),
            _ => Some((0, 0)),
        };
        let Some((sp, dp)) = ports else {
            return Verdict::Keep;
        };
        if let Some(id) = community_id(self.0.seed, proto, src, dst, sp, dp) {
            event.insert(&self.0.target, Value::String(id));
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;
    use serde_json::json;

    /// The reference vectors of the Community ID spec (as used by Elasticsearch's and the
    /// spec's own implementations), through the processor with its default fields, in both
    /// directions.
    #[test]
    fn spec_vectors() {
        let cases = [
            (
                "66.35.250.204",
                "128.232.110.120",
                "tcp",
                80,
                34855,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                "8.8.8.8",
                "192.168.1.52",
                "udp",
                53,
                54585,
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
            (
                "192.168.170.8",
                "192.168.170.56",
                "sctp",
                7,
                7,
                "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            ),
            (
                "2001:470:e5bf:dead:4957:2174:e82c:4887",
                "2607:f8b0:400c:c03::1a",
                "tcp",
                63943,
                25,
                "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            ),
        ];
        let p = build("processors: [{community_id: ~}]").unwrap();
        for (s, d, t, sp, dp, want) in cases {
            for (a, b, ap, bp) in [(s, d, sp, dp), (d, s, dp, sp)] {
                let mut ev = event("m");
                ev.insert("source", json!({"ip": a, "port": ap}));
                ev.insert("destination", json!({"ip": b, "port": bp}));
                ev.insert("network.transport", json!(t));
                assert_eq!(
                    json(&run(&p, ev).unwrap())["network"]["community_id"],
                    want,
                    "{a} -> {b}"
                );
            }
        }
        // ICMP echo request and ICMPv6 router advertisement: type and code stand in for ports.
        for (s, d, num, ty, want) in [
            (
                "192.168.0.89",
                "192.168.0.1",
                1,
                8,
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                "fe80::260:97ff:fe07:69ea",
                "ff02::1",
                58,
                134,
                "1:pkvHqCL88/tg1k4cPigmZXUtL00=",
            ),
        ] {
            let mut ev = event("m");
            ev.insert("source.ip", json!(s));
            ev.insert("destination.ip", json!(d));
            ev.insert("network.iana_number", json!(num));
            ev.insert("icmp", json!({"type": ty, "code": 0}));
            assert_eq!(
                json(&run(&p, ev).unwrap())["network"]["community_id"],
                want,
                "{s}"
            );
        }
    }

    #[test]
    fn options_and_incomplete_events() {
        let p = build("processors: [{community_id: {target: flow.id, seed: 123, fields: {source_ip: src, destination_ip: dst, source_port: sp, destination_port: dp}}}]").unwrap();
        let mut ev = event("m");
        ev.insert("src", json!("66.35.250.204"));
        ev.insert("dst", json!("128.232.110.120"));
        ev.insert("sp", json!(80));
        ev.insert("dp", json!("34855"));
        ev.insert("network.transport", json!("TCP"));
        let id = json(&run(&p, ev).unwrap())["flow"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            id.starts_with("1:") && id != "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "the seed changes the hash: {id}"
        );
        let p = build("processors: [{community_id: ~}]").unwrap();
        let mut ev = event("m");
        ev.insert("source.ip", json!("10.0.0.1"));
        let v = json(&run(&p, ev).unwrap());
        assert!(
            v.get("network").is_none() && v.get("error").is_none(),
            "{v}"
        );
    }
}
