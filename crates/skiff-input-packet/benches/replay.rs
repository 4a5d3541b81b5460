//! Replay benchmark: a generated HTTP + DNS capture through the analyzer on one thread.
//!
//! `cargo bench -p skiff-input-packet --bench replay [-- CONNECTIONS]` writes a capture of
//! CONNECTIONS keep-alive HTTP connections (4 requests each, 16 KiB responses in 1448-byte
//! segments) and as many DNS query/response pairs, then times, in the same run:
//! 1. the baseline: reading the file and decoding every frame (no analysis);
//! 2. the full replay (`-t`): decode, reassembly, HTTP/DNS parsing, events.
//!
//! It prints packets, Gbit of captured bytes and transactions per CPU-second of the replaying
//! thread (the machine is shared: wall time includes waiting for a core, and is printed too),
//! the ratio of (2) to (1) in CPU time, and the peak RSS (VmHWM). Results and the command:
//! docs/performance.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use etherparse::PacketBuilder;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use skiff_input_packet::testing;

struct Writer {
    w: PcapWriter<std::io::BufWriter<std::fs::File>>,
    t: u64,
    packets: u64,
    bytes: u64,
}

impl Writer {
    fn put(&mut self, frame: &[u8]) {
        self.t += 10;
        self.packets += 1;
        self.bytes += frame.len() as u64;
        self.w
            .write_packet(&PcapPacket::new(
                std::time::Duration::from_micros(self.t),
                frame.len() as u32,
                frame,
            ))
            .unwrap();
    }
}

fn tcp(a: ([u8; 4], u16), b: ([u8; 4], u16), seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 64);
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(a.0, b.0, 64)
        .tcp(a.1, b.1, seq, 65535)
        .ack(ack)
        .psh()
        .write(&mut out, payload)
        .unwrap();
    out
}

fn generate(path: &std::path::Path, conns: u32) -> (u64, u64, u64) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut w = Writer {
        w: PcapWriter::with_header(file, header).unwrap(),
        t: 1_700_000_000_000_000,
        packets: 0,
        bytes: 0,
    };
    let body = vec![b'x'; 16 << 10];
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nServer: bench\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    let mut dns_q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    dns_q.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    let mut dns_r = dns_q.clone();
    dns_r[2] = 0x81;
    dns_r[3] = 0x80;
    dns_r[7] = 1;
    dns_r.extend_from_slice(&[
        0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34,
    ]);
    let mut txs = 0u64;
    for c in 0..conns {
        let client = ([10, 1, (c >> 8) as u8, c as u8], 10000 + (c % 50000) as u16);
        let server = ([10, 0, 0, 80], 80);
        let (mut cs, mut ss) = (1000u32, 9000u32);
        for r in 0..4 {
            let req = format!(
                "GET /page/{r}.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n"
            );
            w.put(&tcp(client, server, cs, ss, req.as_bytes()));
            cs = cs.wrapping_add(req.len() as u32);
            for chunk in resp.chunks(1448) {
                w.put(&tcp(server, client, ss, cs, chunk));
                ss = ss.wrapping_add(chunk.len() as u32);
            }
            txs += 1;
        }
        let mut q = Vec::new();
        let ip = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(client.0, [10, 0, 0, 53], 64);
        ip.udp(client.1, 53).write(&mut q, &dns_q).unwrap();
        w.put(&q);
        let mut r = Vec::new();
        let ip = PacketBuilder::ethernet2([2; 6], [1; 6]).ipv4([10, 0, 0, 53], client.0, 64);
        ip.udp(53, client.1).write(&mut r, &dns_r).unwrap();
        w.put(&r);
        txs += 1;
    }
    (w.packets, w.bytes, txs)
}

/// CPU time of this thread in seconds (`/proc/thread-self/schedstat`, nanoseconds): the
/// machine is shared, so wall time includes waiting for a core; rates are per CPU-second.
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let conns: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.pcap");
    let (packets, bytes, txs) = generate(&path, conns);

    // 1. Baseline: read and decode only.
    let t0 = Instant::now();
    let c0 = thread_cpu_s();
    let decoded = testing::decode_only(&path).unwrap();
    let base_wall = t0.elapsed().as_secs_f64();
    let base = thread_cpu_s() - c0;
    assert_eq!(decoded, packets);

    // 2. The full replay.
    let yaml = "packetbeat.protocols:\n- {type: http, ports: [80]}\n- {type: dns, ports: [53]}\n";
    let mut events = 0u64;
    let t1 = Instant::now();
    let c1 = thread_cpu_s();
    testing::replay(&path, yaml, |b| {
        events += b.len() as u64;
    })
    .unwrap();
    let full_wall = t1.elapsed().as_secs_f64();
    let full = thread_cpu_s() - c1;
    assert_eq!(events, txs, "every transaction is an event");

    println!(
        "{{\"connections\": {conns}, \"packets\": {packets}, \"bytes\": {bytes}, \"transactions\": {txs}, \
\"decode_only_cpu_s\": {base:.3}, \"decode_only_wall_s\": {base_wall:.3}, \"replay_cpu_s\": {full:.3}, \"replay_wall_s\": {full_wall:.3}, \
\"packets_per_cpu_s\": {:.0}, \"gbit_per_cpu_s\": {:.2}, \"transactions_per_cpu_s\": {:.0}, \"replay_over_decode\": {:.2}, \"peak_rss_mib\": {:.1}}}",
        packets as f64 / full,
        bytes as f64 * 8.0 / full / 1e9,
        txs as f64 / full,
        full / base,
        peak_rss_kib() as f64 / 1024.0
    );
}
