//! ICMPv4 and ICMPv6: echo-style requests paired with their replies, other messages alone.
//!
//! ICMP has no ports, so it is not a [`Session`](crate::protocol::Session): the engine hands
//! every ICMP message here. Pairing key: the address pair, the id and the sequence number.
//! Requests of the paired types (v4 echo 8, timestamp 13, information 15, address mask 17;
//! v6 echo 128) wait for their reply for `transaction_timeout`; every other request is
//! published at once; a reply without its request is published as an error.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use skiff_event::Timestamp;

use crate::decode::Packet;
use crate::protocol::{Dir, Transaction, expired};

/// An ICMP exchange for the event builder.
pub struct IcmpTx {
    /// The transaction (fields, times, status).
    pub tx: Transaction,
    /// The requester.
    pub src: IpAddr,
    /// The responder.
    pub dst: IpAddr,
    /// ICMPv6.
    pub v6: bool,
    /// Type of the request (or of the reply when alone), for the community ID.
    pub icmp_type: u8,
    /// Its code.
    pub icmp_code: u8,
}

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct Key {
    requester: IpAddr,
    responder: IpAddr,
    id: u16,
    seq: u16,
}

struct Pending {
    ts: Timestamp,
    clock: Timestamp,
    v6: bool,
    icmp_type: u8,
    code: u8,
    bytes: u64,
}

/// The most requests waiting for a reply (a ping flood cannot grow memory past this).
const MAX_PENDING: usize = 65536;

/// Pairs ICMP requests with replies.
pub struct IcmpTracker {
    pending: HashMap<Key, Pending>,
    timeout: Duration,
}

fn is_reply(v6: bool, t: u8) -> bool {
    if v6 {
        t == 129
    } else {
        matches!(t, 0 | 14 | 16 | 18)
    }
}

fn is_paired_request(v6: bool, t: u8) -> bool {
    if v6 {
        t == 128
    } else {
        matches!(t, 8 | 13 | 15 | 17)
    }
}

fn is_error(v6: bool, t: u8) -> bool {
    if v6 {
        matches!(t, 1..=4)
    } else {
        matches!(t, 3 | 4 | 11 | 12)
    }
}

/// The human-readable name of a type and code, as Packetbeat writes it.
pub fn message(v6: bool, t: u8, code: u8) -> String {
    let name = if v6 {
        match t {
            1 => "DestinationUnreachable",
            2 => "PacketTooBig",
            3 => "TimeExceeded",
            4 => "ParameterProblem",
            128 => "EchoRequest",
            129 => "EchoReply",
            130 => "MulticastListenerQuery",
            131 => "MulticastListenerReport",
            133 => "RouterSolicitation",
            134 => "RouterAdvertisement",
            135 => "NeighborSolicitation",
            136 => "NeighborAdvertisement",
            137 => "Redirect",
            _ => return format!("{t}({code})"),
        }
    } else {
        match t {
            0 => "EchoReply",
            3 => {
                let c = match code {
                    0 => "Net",
                    1 => "Host",
                    2 => "Protocol",
                    3 => "Port",
                    4 => "FragmentationNeeded",
                    _ => return format!("DestinationUnreachable({code})"),
                };
                return format!("DestinationUnreachable({c})");
            }
            4 => "SourceQuench",
            5 => "Redirect",
            8 => "EchoRequest",
            9 => "RouterAdvertisement",
            10 => "RouterSolicitation",
            11 => "TimeExceeded",
            12 => "ParameterProblem",
            13 => "TimestampRequest",
            14 => "TimestampReply",
            15 => "InformationRequest",
            16 => "InformationReply",
            17 => "AddressMaskRequest",
            18 => "AddressMaskReply",
            _ => return format!("{t}({code})"),
        }
    };
    name.to_owned()
}

impl IcmpTracker {
    /// A tracker with this request timeout.
    pub fn new(timeout: Duration, _send_request: bool, _send_response: bool) -> IcmpTracker {
        IcmpTracker {
            pending: HashMap::new(),
            timeout,
        }
    }

    fn base(v6: bool, src: IpAddr, dst: IpAddr, t: u8, code: u8) -> IcmpTx {
        let mut tx = Transaction::new("icmp", Dir::Orig);
        tx.set("icmp.version", if v6 { 6 } else { 4 });
        tx.set("path", dst.to_string());
        IcmpTx {
            tx,
            src,
            dst,
            v6,
            icmp_type: t,
            icmp_code: code,
        }
    }

    fn side(tx: &mut Transaction, side: &str, v6: bool, t: u8, code: u8) {
        tx.set(&format!("icmp.{side}.type"), t);
        tx.set(&format!("icmp.{side}.code"), code);
        tx.set(&format!("icmp.{side}.message"), message(v6, t, code));
    }

    /// One ICMP message.
    #[allow(clippy::too_many_arguments)]
    pub fn message(
        &mut self,
        p: &Packet<'_>,
        clock: Timestamp,
        v6: bool,
        t: u8,
        code: u8,
        id: u16,
        seq: u16,
        out: &mut Vec<IcmpTx>,
    ) {
        // ICMPv6: Packetbeat ignores messages too short for the 4 bytes after the checksum.
        let bytes = p.payload.len() as u64;
        if is_reply(v6, t) {
            let key = Key {
                requester: p.dst,
                responder: p.src,
                id,
                seq,
            };
            match self.pending.remove(&key) {
                Some(req) => {
                    let mut x = Self::base(v6, p.dst, p.src, req.icmp_type, req.code);
                    Self::side(&mut x.tx, "request", v6, req.icmp_type, req.code);
                    Self::side(&mut x.tx, "response", v6, t, code);
                    x.tx.start = Some(req.ts);
                    x.tx.end = Some(p.ts);
                    x.tx.request_bytes = Some(req.bytes);
                    x.tx.response_bytes = Some(bytes);
                    let _ = req.v6;
                    out.push(x);
                }
                None => {
                    let mut x = Self::base(v6, p.dst, p.src, t, code);
                    Self::side(&mut x.tx, "response", v6, t, code);
                    x.tx.end = Some(p.ts);
                    x.tx.response_bytes = Some(bytes);
                    x.tx.status = "Error";
                    x.tx.note("Response was received without an associated request.");
                    out.push(x);
                }
            }
            return;
        }
        if is_paired_request(v6, t) {
            let key = Key {
                requester: p.src,
                responder: p.dst,
                id,
                seq,
            };
            let pending = Pending {
                ts: p.ts,
                clock,
                v6,
                icmp_type: t,
                code,
                bytes,
            };
            if let Some(prev) = self.pending.insert(key, pending) {
                out.push(Self::unanswered(key, prev, "Another request with the same Id and Seq was received so this one has been marked as unanswered."));
            }
            if self.pending.len() > MAX_PENDING {
                self.pending.clear();
            }
            return;
        }
        let mut x = Self::base(v6, p.src, p.dst, t, code);
        Self::side(&mut x.tx, "request", v6, t, code);
        x.tx.start = Some(p.ts);
        x.tx.request_bytes = Some(bytes);
        if is_error(v6, t) {
            x.tx.status = "Error";
        }
        out.push(x);
    }

    fn unanswered(key: Key, req: Pending, why: &str) -> IcmpTx {
        let mut x = Self::base(
            req.v6,
            key.requester,
            key.responder,
            req.icmp_type,
            req.code,
        );
        Self::side(&mut x.tx, "request", req.v6, req.icmp_type, req.code);
        x.tx.start = Some(req.ts);
        x.tx.request_bytes = Some(req.bytes);
        x.tx.status = "Error";
        x.tx.note(why);
        x
    }

    /// Reports requests that waited longer than the timeout at `now` (the clock).
    pub fn expire(&mut self, now: Timestamp, out: &mut Vec<IcmpTx>) {
        let old: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| expired(p.clock, now, self.timeout))
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            if let Some(p) = self.pending.remove(&k) {
                out.push(Self::unanswered(
                    k,
                    p,
                    "Request was received without an associated response.",
                ));
            }
        }
    }
}
