//! DHCPv4 (BOOTP with the DHCP options), as Packetbeat's `dhcpv4` protocol: one event per
//! message.
//!
//! Hand-written: a 236-byte fixed header, the magic cookie and type-length-value options
//! (RFC 2131/2132) are a few dozen lines, and the crate that parses them (`dhcproto`)
//! brings a whole DNS library along. The DHCP client and server are the `client.*` and
//! `server.*` of the event whichever of them sent the message (`source.*` is the sender).

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::Deserialize;
use skiff_config::ConfigError;
use skiff_event::{Map, Value};

use crate::protocol::{
    BuildArgs, Cx, Dir, Protocol, ProtocolPlugin, Session, StreamBuf, Transaction, Transport,
};

/// `type: dhcpv4`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "dhcpv4",
    tcp: false,
    udp: true,
    default_ports: &[67, 68],
    build,
};

/// The `dhcpv4` options: none beyond the common ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dhcpv4Config {}

struct Dhcp;

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let _: Dhcpv4Config = args.own.deserialize()?;
    Ok(Arc::new(Dhcp))
}

impl Protocol for Dhcp {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(DhcpSession)
    }
}

struct DhcpSession;

fn ip(b: &[u8]) -> Option<Ipv4Addr> {
    Some(Ipv4Addr::from(<[u8; 4]>::try_from(b.get(..4)?).ok()?))
}

fn ips(b: &[u8]) -> Vec<String> {
    b.chunks_exact(4)
        .filter_map(ip)
        .map(|i| i.to_string())
        .collect()
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn option_name(code: u8) -> String {
    let n = match code {
        1 => "Subnet Mask",
        2 => "Time Offset",
        3 => "Router",
        4 => "Time Server",
        5 => "Name Server",
        6 => "Domain Name Server",
        7 => "Log Server",
        12 => "Host Name",
        15 => "Domain Name",
        26 => "Interface MTU",
        28 => "Broadcast Address",
        33 => "Static Route",
        42 => "NTP Servers",
        43 => "Vendor Specific Information",
        44 => "NetBIOS over TCP/IP Name Server",
        46 => "NetBIOS over TCP/IP Node Type",
        47 => "NetBIOS over TCP/IP Scope",
        50 => "Requested IP Address",
        51 => "IP Address Lease Time",
        53 => "DHCP Message Type",
        54 => "Server Identifier",
        55 => "Parameter Request List",
        57 => "Maximum DHCP Message Size",
        58 => "Renewal Time Value",
        59 => "Rebinding Time Value",
        60 => "Class-identifier",
        61 => "Client-identifier",
        66 => "TFTP server name",
        67 => "Bootfile name",
        81 => "Client FQDN",
        119 => "Domain Search",
        121 => "Classless Static Route",
        252 => "Web Proxy Auto-Discovery",
        _ => return format!("Unknown ({code})"),
    };
    n.to_owned()
}

fn message_type(t: u8) -> &'static str {
    match t {
        1 => "discover",
        2 => "offer",
        3 => "request",
        4 => "decline",
        5 => "ack",
        6 => "nak",
        7 => "release",
        8 => "inform",
        9 => "forcerenew",
        10 => "leasequery",
        _ => "unknown",
    }
}

fn hardware_type(t: u8) -> String {
    match t {
        1 => "Ethernet".into(),
        6 => "IEEE 802".into(),
        32 => "InfiniBand".into(),
        _ => format!("{t}"),
    }
}

/// The event fields of one DHCP message, or None when it is not one.
fn decode(b: &[u8]) -> Option<(u8, Map)> {
    if b.len() < 240 || b[236..240] != [99, 130, 83, 99] {
        return None;
    }
    let op = b[0];
    let mut m = Map::new();
    let mut set = |k: &str, v: Value| crate::protocol::insert_dotted(&mut m, k, v);
    set(
        "op_code",
        if op == 1 { "bootrequest" } else { "bootreply" }.into(),
    );
    set("hardware_type", hardware_type(b[1]).into());
    set("hops", b[3].into());
    set("transaction_id", format!("0x{:08x}", be32(&b[4..])?).into());
    set("seconds", u16::from_be_bytes([b[8], b[9]]).into());
    set(
        "flags",
        if b[10] & 0x80 != 0 {
            "broadcast"
        } else {
            "unicast"
        }
        .into(),
    );
    for (name, at) in [
        ("client_ip", 12),
        ("assigned_ip", 16),
        ("server_ip", 20),
        ("relay_ip", 24),
    ] {
        let a = ip(&b[at..])?;
        if !a.is_unspecified() {
            set(name, a.to_string().into());
        }
    }
    let hlen = usize::from(b[2]).min(16);
    let mac: Vec<String> = b[28..28 + hlen]
        .iter()
        .map(|x| format!("{x:02X}"))
        .collect();
    set("client_mac", mac.join("-").into());
    for (name, range) in [("server_name", 44..108), ("boot_file_name", 108..236)] {
        let s = &b[range];
        let s = &s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())];
        if !s.is_empty() {
            set(name, String::from_utf8_lossy(s).into_owned().into());
        }
    }
    let mut at = 240;
    while at < b.len() {
        let code = b[at];
        if code == 0 {
            at += 1;
            continue;
        }
        if code == 255 {
            break;
        }
        let Some(&len) = b.get(at + 1) else { break };
        let Some(v) = b.get(at + 2..at + 2 + usize::from(len)) else {
            break;
        };
        at += 2 + usize::from(len);
        let text = || String::from_utf8_lossy(v).into_owned();
        let (k, val): (&str, Value) = match code {
            1 => ("option.subnet_mask", ip(v).map(|i| i.to_string()).into()),
            2 => (
                "option.utc_time_offset_sec",
                be32(v).map(|x| x as i32).into(),
            ),
            3 => ("option.router", ips(v).into()),
            4 => ("option.time_servers", ips(v).into()),
            6 => ("option.dns_servers", ips(v).into()),
            12 => ("option.hostname", text().into()),
            15 => ("option.domain_name", text().into()),
            28 => (
                "option.broadcast_address",
                ip(v).map(|i| i.to_string()).into(),
            ),
            42 => ("option.ntp_servers", ips(v).into()),
            50 => (
                "option.requested_ip_address",
                ip(v).map(|i| i.to_string()).into(),
            ),
            51 => ("option.ip_address_lease_time_sec", be32(v).into()),
            53 => (
                "option.message_type",
                v.first().map(|t| message_type(*t)).into(),
            ),
            54 => (
                "option.server_identifier",
                ip(v).map(|i| i.to_string()).into(),
            ),
            55 => (
                "option.parameter_request_list",
                v.iter().map(|c| option_name(*c)).collect::<Vec<_>>().into(),
            ),
            56 => ("option.message", text().into()),
            57 => (
                "option.max_dhcp_message_size",
                v.get(..2).map(|x| u16::from_be_bytes([x[0], x[1]])).into(),
            ),
            58 => ("option.renewal_time_sec", be32(v).into()),
            59 => ("option.rebinding_time_sec", be32(v).into()),
            60 => ("option.class_identifier", text().into()),
            66 => ("option.tftp_server_name", text().into()),
            67 => ("option.boot_file_name", text().into()),
            _ => continue,
        };
        if !val.is_null() {
            set(k, val);
        }
    }
    Some((op, m))
}

impl Session for DhcpSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        let data = buf.data().to_vec();
        buf.clear();
        let Some((op, fields)) = decode(&data) else {
            return;
        };
        let mut tx = Transaction::new("dhcpv4", dir);
        tx.start = Some(cx.now);
        tx.request_bytes = Some(data.len() as u64);
        tx.set("dhcpv4", Value::Object(fields));
        if op == 2 {
            // A reply: the sender is the DHCP server.
            let (src, dst) = (cx.conn.sender(dir), cx.conn.sender(dir.flip()));
            tx.set(
                "client",
                serde_json::json!({"ip": dst.0.to_string(), "port": dst.1}),
            );
            tx.set(
                "server",
                serde_json::json!({"ip": src.0.to_string(), "port": src.1, "bytes": data.len()}),
            );
        }
        cx.emit(tx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Hostile bytes: no panic (one datagram at a time, nothing kept).
        #[test]
        fn hostile_bytes(head in proptest::collection::vec(proptest::prelude::any::<u8>(), 240..241),
                         opts in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut b = head;
            b[236..240].copy_from_slice(&[99, 130, 83, 99]);
            b.extend(opts);
            let _ = decode(&b);
            let p = crate::protocols::fuzzing::protocol(&PLUGIN, "{}");
            let peak = crate::protocols::fuzzing::drive(&*p, Transport::Udp, 67, &[(false, Some(b))]);
            proptest::prop_assert_eq!(peak, 0);
        }
    }
}
