//! `network.direction`, as Packetbeat computes it.
//!
//! A loopback or link-local destination is `ingress`, such a source `egress`; otherwise, with
//! `internal_networks`, `internal`/`outbound`/`inbound`/`external`; otherwise `unknown`.
//! Packetbeat also treats the host's own addresses like loopback; skiff does not list the
//! host's addresses yet, so on a live capture traffic of the host's public addresses is
//! classified by `internal_networks` only (docs/packet.md).

use std::net::IpAddr;

/// One entry of `internal_networks`.
#[derive(Clone, Debug)]
enum Net {
    Cidr(IpAddr, u8),
    Private,
    Loopback,
    Unicast,
    Multicast,
    LinkLocal,
}

/// The rules for `network.direction`.
#[derive(Clone, Debug, Default)]
pub struct Directions {
    internal: Vec<Net>,
}

fn prefix_match(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    let (n, a): (Vec<u8>, Vec<u8>) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => (n.octets().to_vec(), a.octets().to_vec()),
        (IpAddr::V6(n), IpAddr::V6(a)) => (n.octets().to_vec(), a.octets().to_vec()),
        _ => return false,
    };
    let mut left = bits as usize;
    for (x, y) in n.iter().zip(&a) {
        if left == 0 {
            return true;
        }
        let take = left.min(8);
        let mask = if take == 8 { 0xff } else { !(0xffu8 >> take) };
        if x & mask != y & mask {
            return false;
        }
        left -= take;
    }
    true
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_private(),
        IpAddr::V6(a) => (a.segments()[0] & 0xfe00) == 0xfc00,
    }
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match self {
            Net::Cidr(n, b) => prefix_match(*n, *b, ip),
            Net::Private => is_private(ip),
            Net::Loopback => ip.is_loopback(),
            Net::Unicast => !ip.is_multicast(),
            Net::Multicast => ip.is_multicast(),
            Net::LinkLocal => is_link_local(ip),
        }
    }
}

impl Directions {
    /// Rules from `internal_networks` (entries that do not parse are ignored; the input's
    /// build reports them).
    pub fn new(internal: &[String]) -> Directions {
        let internal = internal.iter().filter_map(|s| parse_net(s)).collect();
        Directions { internal }
    }

    /// `network.direction` of a transaction from `src` to `dst`.
    pub fn of(&self, src: IpAddr, dst: IpAddr) -> &'static str {
        let local = |ip: IpAddr| ip.is_loopback() || is_link_local(ip);
        if local(dst) {
            return "ingress";
        }
        if local(src) {
            return "egress";
        }
        if self.internal.is_empty() {
            return "unknown";
        }
        let inside = |ip| self.internal.iter().any(|n| n.contains(ip));
        match (inside(src), inside(dst)) {
            (true, true) => "internal",
            (true, false) => "outbound",
            (false, true) => "inbound",
            (false, false) => "external",
        }
    }
}

/// Parses a CIDR or one of the named networks of Beats' network conditions.
fn parse_net(s: &str) -> Option<Net> {
    Some(match s {
        "private" => Net::Private,
        "loopback" => Net::Loopback,
        "unicast" | "global_unicast" => Net::Unicast,
        "multicast" => Net::Multicast,
        "link_local_unicast" | "link_local" => Net::LinkLocal,
        _ => {
            let (ip, bits) = s.split_once('/')?;
            let ip: IpAddr = ip.parse().ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if bits > max {
                return None;
            }
            Net::Cidr(ip, bits)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perimeter_and_loopback() {
        let d = Directions::new(&["10.0.0.0/8".into(), "private".into()]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(d.of(ip("10.1.1.1"), ip("8.8.8.8")), "outbound");
        assert_eq!(d.of(ip("8.8.8.8"), ip("192.168.1.1")), "inbound");
        assert_eq!(d.of(ip("10.1.1.1"), ip("127.0.0.1")), "ingress");
        assert_eq!(
            Directions::new(&[]).of(ip("1.1.1.1"), ip("2.2.2.2")),
            "unknown"
        );
    }
}
