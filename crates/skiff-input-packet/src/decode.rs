//! Frames to packets: link layer, VLAN tags, IPv4/IPv6 (IPv4 fragments reassembled), and the
//! transport header, with [etherparse] doing the header parsing.
//!
//! A frame that does not decode is counted by the caller and skipped; nothing here panics on
//! any input (the proptest in `tests/fuzz.rs` feeds it random bytes for every link type).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use etherparse::{
    EtherType, Icmpv4Slice, Icmpv6Slice, IpNumber, LinkSlice, NetSlice, SlicedPacket, TcpSlice,
    UdpSlice,
};
use skiff_event::Timestamp;

/// The link types skiff decodes (libpcap's DLT numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// DLT_NULL (0) and DLT_LOOP (108): a 4-byte address family.
    Null,
    /// DLT_EN10MB (1).
    Ethernet,
    /// DLT_RAW (12, 14, 101), DLT_IPV4 (228), DLT_IPV6 (229).
    Raw,
    /// DLT_LINUX_SLL (113).
    LinuxSll,
    /// DLT_LINUX_SLL2 (276).
    LinuxSll2,
}

impl LinkType {
    /// The link type of a libpcap DLT number, if skiff decodes it.
    pub fn from_dlt(dlt: u32) -> Option<LinkType> {
        Some(match dlt {
            0 | 108 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 | 228 | 229 => LinkType::Raw,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }
}

/// TCP flags the stream tracker needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

/// The transport layer of a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Sequence number.
        seq: u32,
        /// Flags.
        flags: TcpFlags,
    },
    /// UDP.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMPv4 or ICMPv6 (`v6`); the payload is what follows the 8-byte header.
    Icmp {
        /// ICMPv6.
        v6: bool,
        /// Type.
        icmp_type: u8,
        /// Code.
        code: u8,
        /// Identifier (echo-style messages; else the first half of the rest of the header).
        id: u16,
        /// Sequence (likewise).
        seq: u16,
    },
    /// Another IP protocol (counted in flows, not analysed).
    Other(u8),
}

/// One decoded packet.
#[derive(Clone, Debug)]
pub struct Packet<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// The captured frame's length (flows count whole frames).
    pub frame_len: usize,
    /// Source and destination MAC (Ethernet only).
    pub macs: Option<([u8; 6], [u8; 6])>,
    /// VLAN ids, outer first (up to two).
    pub vlans: Vec<u16>,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The transport header.
    pub transport: Transport,
    /// The transport payload (borrowed from the frame, or owned after IPv4 reassembly).
    pub payload: Cow<'a, [u8]>,
}

/// Why a frame was not decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The bytes do not form valid headers.
    Malformed,
    /// Valid, but nothing to analyse (ARP, a non-IP EtherType).
    NotIp,
    /// An IPv4 fragment held until its datagram is complete.
    Fragment,
}

/// Limits of IPv4 reassembly, as Packetbeat's current 8.x bounds it.
const FRAG_MAX_SETS: usize = 512;
const FRAG_MAX_PIECES: usize = 64;
const FRAG_MAX_BYTES: usize = 65535;
const FRAG_HOLD_NANOS: i64 = 1_000_000_000;

#[derive(Hash, PartialEq, Eq, Clone, Copy, Debug)]
struct FragKey {
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    id: u16,
}

#[derive(Debug)]
struct FragSet {
    first_seen: Timestamp,
    pieces: Vec<(usize, Vec<u8>)>,
    total: Option<usize>,
    bytes: usize,
}

/// The decoder of one capture: its link type and the IPv4 fragments in flight.
#[derive(Debug)]
pub struct Decoder {
    link: LinkType,
    frags: HashMap<FragKey, FragSet>,
    /// Fragment sets dropped for exceeding a limit or expiring.
    pub frags_dropped: u64,
}

impl Decoder {
    /// A decoder for frames of `link`.
    pub fn new(link: LinkType) -> Decoder {
        Decoder {
            link,
            frags: HashMap::new(),
            frags_dropped: 0,
        }
    }

    /// Bytes held by fragments in flight (for the memory budget).
    pub fn held_bytes(&self) -> usize {
        self.frags.values().map(|s| s.bytes).sum()
    }

    /// Decodes one frame.
    pub fn decode<'a>(&mut self, ts: Timestamp, frame: &'a [u8]) -> Result<Packet<'a>, Skip> {
        let sliced = match self.link {
            LinkType::Ethernet => SlicedPacket::from_ethernet(frame),
            LinkType::LinuxSll => {
                // SLL: packet type (2), hatype (2), halen (2), address (8), protocol type (2).
                // Read by hand: etherparse refuses the loopback hatype (772) of `any` captures.
                let hdr = frame.get(..16).ok_or(Skip::Malformed)?;
                let proto = u16::from_be_bytes([hdr[14], hdr[15]]);
                SlicedPacket::from_ether_type(EtherType(proto), &frame[16..])
            }
            LinkType::Raw => SlicedPacket::from_ip(frame),
            LinkType::Null => {
                let fam = frame.get(..4).ok_or(Skip::Malformed)?;
                let fam = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
                let fam_be = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                // The family is in the capturing host's byte order: accept both.
                let known = |f: u32| matches!(f, 2 | 24 | 28 | 30);
                if !known(fam) && !known(fam_be) {
                    return Err(Skip::NotIp);
                }
                SlicedPacket::from_ip(&frame[4..])
            }
            LinkType::LinuxSll2 => {
                // SLL2: protocol type (2), reserved (2), ifindex (4), hatype (2), pkttype (1),
                // halen (1), address (8), then the payload.
                let hdr = frame.get(..20).ok_or(Skip::Malformed)?;
                let proto = u16::from_be_bytes([hdr[0], hdr[1]]);
                SlicedPacket::from_ether_type(EtherType(proto), &frame[20..])
            }
        }
        .map_err(|_| Skip::Malformed)?;
        let macs = match &sliced.link {
            Some(LinkSlice::Ethernet2(e)) => Some((e.source(), e.destination())),
            _ => None,
        };
        let vlans: Vec<u16> = sliced.vlan_ids().iter().map(|v| v.value()).collect();
        let (src, dst, payload, proto, fragment) = match &sliced.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                let p = ip.payload();
                let frag = if p.fragmented {
                    Some(FragKey {
                        src: h.source(),
                        dst: h.destination(),
                        proto: p.ip_number.0,
                        id: h.identification(),
                    })
                    .map(|k| {
                        (
                            k,
                            h.fragments_offset().byte_offset() as usize,
                            h.more_fragments(),
                        )
                    })
                } else {
                    None
                };
                (
                    IpAddr::from(h.source()),
                    IpAddr::from(h.destination()),
                    p.payload,
                    p.ip_number,
                    frag,
                )
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header();
                let p = ip.payload();
                if p.fragmented {
                    // Packetbeat does not reassemble IPv6 fragments either.
                    return Err(Skip::Fragment);
                }
                (
                    IpAddr::from(h.source()),
                    IpAddr::from(h.destination()),
                    p.payload,
                    p.ip_number,
                    None,
                )
            }
            _ => return Err(Skip::NotIp),
        };
        let payload: Cow<'a, [u8]> = match fragment {
            None => Cow::Borrowed(payload),
            Some((key, offset, more)) => match self.add_fragment(ts, key, offset, more, payload) {
                Some(whole) => Cow::Owned(whole),
                None => return Err(Skip::Fragment),
            },
        };
        let (transport, body) = transport(proto, payload)?;
        Ok(Packet {
            ts,
            frame_len: frame.len(),
            macs,
            vlans,
            src,
            dst,
            transport,
            payload: body,
        })
    }

    fn add_fragment(
        &mut self,
        ts: Timestamp,
        key: FragKey,
        offset: usize,
        more: bool,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        // Expired sets go first (at most a sweep per packet of a fragment).
        let before = self.frags.len();
        self.frags
            .retain(|_, s| ts.0.saturating_sub(s.first_seen.0) <= FRAG_HOLD_NANOS);
        self.frags_dropped += (before - self.frags.len()) as u64;
        if !self.frags.contains_key(&key) && self.frags.len() >= FRAG_MAX_SETS {
            self.frags_dropped += 1;
            return None;
        }
        let set = self.frags.entry(key).or_insert_with(|| FragSet {
            first_seen: ts,
            pieces: Vec::new(),
            total: None,
            bytes: 0,
        });
        let end = offset.saturating_add(data.len());
        if set.pieces.len() >= FRAG_MAX_PIECES || end >= FRAG_MAX_BYTES {
            self.frags.remove(&key);
            self.frags_dropped += 1;
            return None;
        }
        set.bytes += data.len();
        set.pieces.push((offset, data.to_vec()));
        if !more {
            set.total = Some(end);
        }
        let total = set.total?;
        set.pieces.sort_by_key(|p| p.0);
        let mut covered = 0usize;
        for (off, d) in &set.pieces {
            if *off > covered {
                return None;
            }
            covered = covered.max(off + d.len());
        }
        if covered < total {
            return None;
        }
        let set = self.frags.remove(&key)?;
        let mut whole = vec![0u8; total];
        for (off, d) in set.pieces {
            let end = (off + d.len()).min(total);
            if off < end {
                whole[off..end].copy_from_slice(&d[..end - off]);
            }
        }
        Some(whole)
    }
}

fn transport(proto: IpNumber, payload: Cow<'_, [u8]>) -> Result<(Transport, Cow<'_, [u8]>), Skip> {
    // The header is parsed from the payload, then the payload is cut to what follows it, keeping
    // it borrowed when it was.
    let (t, header_len) = match proto {
        IpNumber::TCP => {
            let s = TcpSlice::from_slice(&payload).map_err(|_| Skip::Malformed)?;
            (
                Transport::Tcp {
                    src_port: s.source_port(),
                    dst_port: s.destination_port(),
                    seq: s.sequence_number(),
                    flags: TcpFlags {
                        syn: s.syn(),
                        ack: s.ack(),
                        fin: s.fin(),
                        rst: s.rst(),
                    },
                },
                s.header_slice().len(),
            )
        }
        IpNumber::UDP => {
            let s = UdpSlice::from_slice(&payload).map_err(|_| Skip::Malformed)?;
            let end = 8 + s.payload().len();
            let t = Transport::Udp {
                src_port: s.source_port(),
                dst_port: s.destination_port(),
            };
            return Ok((t, cut(payload, 8, end)));
        }
        IpNumber::ICMP => {
            let s = Icmpv4Slice::from_slice(&payload).map_err(|_| Skip::Malformed)?;
            let b = s.bytes5to8();
            (
                Transport::Icmp {
                    v6: false,
                    icmp_type: s.type_u8(),
                    code: s.code_u8(),
                    id: u16::from_be_bytes([b[0], b[1]]),
                    seq: u16::from_be_bytes([b[2], b[3]]),
                },
                8,
            )
        }
        IpNumber::IPV6_ICMP => {
            let s = Icmpv6Slice::from_slice(&payload).map_err(|_| Skip::Malformed)?;
            let b = s.bytes5to8();
            (
                Transport::Icmp {
                    v6: true,
                    icmp_type: s.type_u8(),
                    code: s.code_u8(),
                    id: u16::from_be_bytes([b[0], b[1]]),
                    seq: u16::from_be_bytes([b[2], b[3]]),
                },
                8,
            )
        }
        other => (Transport::Other(other.0), 0),
    };
    let end = payload.len();
    Ok((t, cut(payload, header_len, end)))
}

fn cut(payload: Cow<'_, [u8]>, from: usize, to: usize) -> Cow<'_, [u8]> {
    let to = to.min(payload.len());
    let from = from.min(to);
    match payload {
        Cow::Borrowed(b) => Cow::Borrowed(&b[from..to]),
        Cow::Owned(mut v) => {
            v.truncate(to);
            v.drain(..from);
            Cow::Owned(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(etherparse::VlanId::try_new(10).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5353, 53);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn vlan_udp_decodes() {
        let f = udp_frame(b"hello");
        let mut d = Decoder::new(LinkType::Ethernet);
        let p = d.decode(Timestamp(1), &f).unwrap();
        assert_eq!(p.vlans, vec![10]);
        assert_eq!(&*p.payload, b"hello");
        assert_eq!(
            p.transport,
            Transport::Udp {
                src_port: 5353,
                dst_port: 53
            }
        );
        assert_eq!(p.macs, Some(([1; 6], [2; 6])));
    }

    #[test]
    fn ipv4_fragments_reassemble_in_any_order() {
        // A UDP datagram of 8 + 24 bytes cut into two fragments of 16 bytes.
        let mut udp = vec![0x13, 0x88, 0x00, 0x35, 0x00, 32, 0, 0];
        udp.extend_from_slice(b"abcdefghijklmnopqrstuvwx");
        let frag = |off: u16, more: bool, data: &[u8]| {
            let mut ip = vec![
                0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
            ];
            let total = (20 + data.len()) as u16;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            let fo = (off / 8) | if more { 0x2000 } else { 0 };
            ip[6..8].copy_from_slice(&fo.to_be_bytes());
            ip.extend_from_slice(data);
            ip
        };
        let second = frag(16, false, &udp[16..]);
        let first = frag(0, true, &udp[..16]);
        let mut d = Decoder::new(LinkType::Raw);
        assert_eq!(d.decode(Timestamp(1), &second).unwrap_err(), Skip::Fragment);
        let p = d.decode(Timestamp(2), &first).unwrap();
        assert_eq!(&*p.payload, b"abcdefghijklmnopqrstuvwx");
        assert_eq!(d.held_bytes(), 0);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let mut d = Decoder::new(LinkType::Ethernet);
        assert!(d.decode(Timestamp(0), &[0xff; 3]).is_err());
        let mut d = Decoder::new(LinkType::LinuxSll2);
        assert!(d.decode(Timestamp(0), &[0; 10]).is_err());
    }
}
