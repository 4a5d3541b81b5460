//! IP address ranges as Beats name them (`private`, `loopback`, `10.0.0.0/8`, ...), for
//! `add_network_direction` and the `network` condition.
//!
//! Named ranges follow libbeat (Go's `net.IP` methods): `loopback`, `unicast` and
//! `global_unicast`, `multicast`, `interface_local_multicast`, `link_local_unicast`,
//! `link_local_multicast`, `private` (RFC 1918 and `fc00::/7`), `public` (none of the others
//! but unicast), `unspecified`. Anything else must be a CIDR (`10.0.0.0/8`) or one address.

use std::net::IpAddr;

use ipnet::IpNet;

/// One range.
#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    /// `loopback`.
    Loopback,
    /// `unicast`, `global_unicast`.
    GlobalUnicast,
    /// `multicast`.
    Multicast,
    /// `interface_local_multicast`.
    InterfaceLocalMulticast,
    /// `link_local_unicast`.
    LinkLocalUnicast,
    /// `link_local_multicast`.
    LinkLocalMulticast,
    /// `private`.
    Private,
    /// `public`.
    Public,
    /// `unspecified`.
    Unspecified,
    /// A CIDR or one address.
    Net(IpNet),
}

impl Range {
    /// Reads a named range, a CIDR or an address.
    pub fn parse(s: &str) -> Result<Range, String> {
        Ok(match s {
            "loopback" => Range::Loopback,
            "unicast" | "global_unicast" => Range::GlobalUnicast,
            "multicast" => Range::Multicast,
            "interface_local_multicast" => Range::InterfaceLocalMulticast,
            "link_local_unicast" => Range::LinkLocalUnicast,
            "link_local_multicast" => Range::LinkLocalMulticast,
            "private" => Range::Private,
            "public" => Range::Public,
            "unspecified" => Range::Unspecified,
            _ => match s.parse::<IpNet>() {
                Ok(n) => Range::Net(n),
                Err(_) => match s.parse::<IpAddr>() {
                    Ok(ip) => Range::Net(IpNet::from(ip)),
                    Err(_) => {
                        return Err(format!(
                            "`{s}` is not a network: use a CIDR like 10.0.0.0/8, an address, or one of loopback, unicast, global_unicast, multicast, interface_local_multicast, link_local_unicast, link_local_multicast, private, public, unspecified"
                        ));
                    }
                },
            },
        })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self {
            Range::Loopback => ip.is_loopback(),
            Range::GlobalUnicast => is_global_unicast(ip),
            Range::Multicast => ip.is_multicast(),
            Range::InterfaceLocalMulticast => {
                matches!(ip, IpAddr::V6(a) if a.segments()[0] & 0xff0f == 0xff01)
            }
            Range::LinkLocalUnicast => is_link_local_unicast(ip),
            Range::LinkLocalMulticast => match ip {
                IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
                IpAddr::V6(a) => a.segments()[0] & 0xff0f == 0xff02,
            },
            Range::Private => is_private(ip),
            Range::Public => is_global_unicast(ip) && !is_private(ip),
            Range::Unspecified => ip.is_unspecified(),
            Range::Net(n) => n.contains(&ip),
        }
    }
}

fn is_link_local_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_private(),
        IpAddr::V6(a) => a.segments()[0] & 0xfe00 == 0xfc00,
    }
}

/// Go's `IsGlobalUnicast`.
fn is_global_unicast(ip: IpAddr) -> bool {
    let broadcast = matches!(ip, IpAddr::V4(a) if a.is_broadcast());
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || is_link_local_unicast(ip)
        || broadcast)
}

/// Whether any of `ranges` holds `ip`.
pub fn any_contains(ranges: &[Range], ip: IpAddr) -> bool {
    ranges.iter().any(|r| r.contains(ip))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn named_ranges() {
        let cases: &[(&str, &str, bool)] = &[
            ("private", "10.1.2.3", true),
            ("private", "172.31.0.1", true),
            ("private", "172.32.0.1", false),
            ("private", "192.168.0.1", true),
            ("private", "fd00::1", true),
            ("private", "8.8.8.8", false),
            ("public", "8.8.8.8", true),
            ("public", "10.0.0.1", false),
            ("public", "127.0.0.1", false),
            ("public", "2001:4860::8888", true),
            ("loopback", "127.0.0.2", true),
            ("loopback", "::1", true),
            ("unicast", "8.8.8.8", true),
            ("global_unicast", "255.255.255.255", false),
            ("multicast", "224.0.0.251", true),
            ("multicast", "ff02::1", true),
            ("link_local_unicast", "169.254.1.1", true),
            ("link_local_unicast", "fe80::1", true),
            ("link_local_multicast", "224.0.0.1", true),
            ("link_local_multicast", "ff02::1", true),
            ("interface_local_multicast", "ff01::1", true),
            ("unspecified", "0.0.0.0", true),
            ("unspecified", "::", true),
            ("10.0.0.0/8", "10.9.9.9", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.1", "192.168.1.1", true),
            ("2001:db8::/32", "2001:db8::5", true),
        ];
        for (range, ip, want) in cases {
            let r = Range::parse(range).unwrap();
            assert_eq!(r.contains(ip.parse().unwrap()), *want, "{range} {ip}");
        }
        assert!(Range::parse("intranet").is_err());
    }
}
