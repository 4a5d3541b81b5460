//! Hostile input: random frames through the decoder, random segment orders through the
//! reassembler, random payloads through every protocol, and a SYN flood capture made here,
//! all within the configured memory budget and without a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use etherparse::PacketBuilder;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use proptest::prelude::*;
use skiff_event::Timestamp;
use skiff_input_packet::capture::file::FileSource;
use skiff_input_packet::config;
use skiff_input_packet::decode::{Decoder, LinkType};
use skiff_input_packet::engine::Engine;
use skiff_input_packet::input::{Replay, replay_file};
use skiff_input_packet::tcp::{DirState, Step};
use skiff_metrics::{Registry, names};
use skiff_pipeline::BuildContext;
use tokio_util::sync::CancellationToken;

fn engine(yaml: &str, reg: &Registry) -> Engine {
    let root = skiff_config::parse_str(yaml, Some("t.yml")).unwrap();
    let section = root.get("packetbeat").unwrap().clone();
    let cfg = config::parse(&section, &skiff_input_packet::protocols::names()).unwrap();
    let ctx = BuildContext::standalone("t", "8.0.0", reg);
    Engine::new(&cfg, &ctx).unwrap()
}

const ALL_PROTOCOLS: &str = "packetbeat.protocols:\n- {type: http, ports: [80]}\n- {type: dns, ports: [53]}\n- {type: icmp}\npacketbeat.flows: {timeout: 2s, period: -1s}\npacketbeat.reassembly.max_bytes: 256KiB\n";

fn tcp_frame(sport: u16, dport: u16, seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let mut t = b.tcp(sport, dport, seq, 65535);
    if syn {
        t = t.syn();
    } else {
        t = t.ack(1).psh();
    }
    let mut out = Vec::new();
    t.write(&mut out, payload).unwrap();
    out
}

fn udp_frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv6([1; 16], [2; 16], 64)
        .udp(sport, dport);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_decoder_survives_any_frame(frame in proptest::collection::vec(any::<u8>(), 0..200), link in 0usize..5) {
        let link = [LinkType::Ethernet, LinkType::Null, LinkType::Raw, LinkType::LinuxSll, LinkType::LinuxSll2][link];
        let mut d = Decoder::new(link);
        let _ = d.decode(Timestamp(1), &frame);
        prop_assert!(d.held_bytes() < 70_000);
    }

    /// Whatever the order (and duplicates) segments arrive in, the stream comes out whole and
    /// in order when the reorder buffer is large enough.
    #[test]
    fn the_reassembler_restores_any_order(
        data in proptest::collection::vec(any::<u8>(), 1..400),
        cuts in proptest::collection::vec(1usize..50, 1..20),
        order in proptest::collection::vec(any::<u16>(), 1..40),
        isn in any::<u32>(),
    ) {
        let mut segs = Vec::new();
        let mut at = 0;
        for c in cuts.iter().cycle() {
            if at >= data.len() { break; }
            let end = (at + c).min(data.len());
            segs.push((at, end));
            at = end;
        }
        let mut sent: Vec<(usize, usize)> = segs.clone();
        for (i, o) in order.iter().enumerate() {
            let a = i % sent.len();
            let b = *o as usize % sent.len();
            sent.swap(a, b);
        }
        sent.push(segs[0]); // a retransmission
        let mut d = DirState::default();
        let mut steps = Vec::new();
        d.segment(isn, true, false, b"", 1000, &mut steps);
        for (a, b) in &sent {
            let seq = isn.wrapping_add(1).wrapping_add(*a as u32);
            d.segment(seq, false, false, &data[*a..*b], 1000, &mut steps);
        }
        d.flush(&mut steps);
        let out: Vec<u8> = steps.iter().flat_map(|s| match s { Step::Data(d) => d.clone(), _ => Vec::new() }).collect();
        prop_assert_eq!(out, data);
        prop_assert!(!steps.iter().any(|s| matches!(s, Step::Gap(_))));
    }

    /// Random bytes to the HTTP and DNS ports (TCP and UDP), and random ICMP: no panic, and
    /// the engine stays within its budget.
    #[test]
    fn every_parser_survives_random_payloads(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..30),
        prefix in prop_oneof![Just(b"GET / HTTP/1.1\r\n".to_vec()), Just(b"HTTP/1.1 200 OK\r\n".to_vec()), Just(vec![0u8, 40]), Just(Vec::new())],
    ) {
        let reg = Registry::new();
        let mut e = engine(ALL_PROTOCOLS, &reg);
        let mut d = Decoder::new(LinkType::Ethernet);
        let mut out = Vec::new();
        let mut seq = 1000u32;
        for (i, p) in payloads.iter().enumerate() {
            let mut body = prefix.clone();
            body.extend_from_slice(p);
            let t = Timestamp(i as i64 * 1_000_000);
            let frames = [
                tcp_frame(40000, 80, seq, false, &body),
                tcp_frame(80, 40000, seq, false, &body),
                tcp_frame(40001, 53, seq, false, &body),
                udp_frame(5353, 53, &body),
                udp_frame(53, 5353, &body),
            ];
            seq = seq.wrapping_add(body.len() as u32);
            for f in &frames {
                if let Ok(pkt) = d.decode(t, f) {
                    e.packet(&pkt, t, &mut out);
                }
            }
            prop_assert!(e.used_bytes() <= 256 << 10);
        }
        e.finish(Timestamp(1 << 40), &mut out);
        prop_assert_eq!(e.used_bytes(), 0);
    }
}

/// A SYN flood: a capture of 50 000 SYNs from distinct ports, written by the test, replayed
/// with a 64 KiB reassembly budget: memory stays within it and the oldest connections are
/// evicted (and counted).
#[test]
fn a_syn_flood_stays_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synflood.pcap");
    {
        let file = std::fs::File::create(&path).unwrap();
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ..PcapHeader::default()
        };
        let mut w = PcapWriter::with_header(file, header).unwrap();
        for i in 0..50_000u32 {
            let f = tcp_frame(
                1024 + (i % 60000) as u16,
                80,
                i.wrapping_mul(7919),
                true,
                b"",
            );
            let mut f2 = f.clone();
            // Distinct source addresses too, so ports never repeat a 4-tuple.
            f2[26..30].copy_from_slice(&(0x0a00_0000u32 + i / 60000).to_be_bytes());
            let ts = Duration::from_micros(u64::from(i));
            w.write_packet(&PcapPacket::new(ts, f2.len() as u32, &f2))
                .unwrap();
        }
    }
    let reg = Registry::new();
    let mut e = engine(
        "packetbeat.protocols: [{type: http, ports: [80]}]\npacketbeat.reassembly.max_bytes: 64KiB\n",
        &reg,
    );
    // The capture is read as the input reads it; the accounting is checked after every packet.
    let mut src = FileSource::open(&path).unwrap();
    let mut d = Decoder::new(LinkType::Ethernet);
    let mut out = Vec::new();
    let mut peak = 0usize;
    let mut frames = 0;
    while let Some(f) = src.next_frame() {
        let f = f.unwrap();
        frames += 1;
        let p = d.decode(f.ts, &f.data).unwrap();
        e.packet(&p, f.ts, &mut out);
        peak = peak.max(e.used_bytes());
    }
    assert_eq!(frames, 50_000);
    assert!(peak <= 64 << 10, "peak {peak}");
    let evicted = reg.value(&names::PACKET_TCP_EVICTED).unwrap_or(0.0);
    assert!(evicted > 40_000.0, "evicted {evicted}");
    let limit = reg.prometheus();
    assert!(
        limit.contains("skiff_memory_limit_bytes{stage=\"packet.reassembly\"} 65536"),
        "{limit}"
    );
    // The same capture through the input's replay loop ends with nothing held.
    let mut e = engine(
        "packetbeat.protocols: [{type: http, ports: [80]}]\npacketbeat.reassembly.max_bytes: 64KiB\n",
        &Registry::new(),
    );
    let replay = Replay {
        path: path.clone(),
        top_speed: true,
        loops: 1,
    };
    let mut events = 0usize;
    replay_file(&mut e, &replay, &CancellationToken::new(), |b| {
        events += b.len();
        true
    })
    .unwrap();
    assert_eq!(e.used_bytes(), 0);
    assert_eq!(events, 0, "SYNs alone make no transactions");
}

/// The budget holds while a flood is in progress, not only at its end.
#[test]
fn the_budget_holds_packet_by_packet() {
    let reg = Registry::new();
    let mut e = engine(
        "packetbeat.protocols: [{type: http, ports: [80]}]\npacketbeat.reassembly.max_bytes: 32KiB\n",
        &reg,
    );
    let mut d = Decoder::new(LinkType::Ethernet);
    let mut out = Vec::new();
    for i in 0..5000u16 {
        // Half-sent requests that never complete: each connection holds its bytes.
        let f = tcp_frame(
            1024 + i,
            80,
            1,
            false,
            b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\n",
        );
        let p = d.decode(Timestamp(i64::from(i)), &f).unwrap();
        e.packet(&p, Timestamp(i64::from(i)), &mut out);
        assert!(e.used_bytes() <= 32 << 10, "{} at {i}", e.used_bytes());
    }
    assert!(e.connections() < 5000);
}
