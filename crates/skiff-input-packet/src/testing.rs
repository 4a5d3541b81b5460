//! Running a capture through the analyzer in a test: one call, events as flat maps.
//!
//! [`events`] reads a pcap/pcapng file at top speed (file timestamps, as `-t`) through the
//! protocols configured by a YAML snippet in Packetbeat's layout, and returns every event
//! flattened to dotted keys (`http.response.status_code`), as Packetbeat's system tests and
//! golden files write them. Arrays (of objects too) stay arrays.

use std::path::Path;

use skiff_config::Node;

use skiff_event::{Event, Map, Timestamp, Value};
use skiff_pipeline::BuildContext;
use tokio_util::sync::CancellationToken;

use crate::capture::file::FileSource;
use crate::config;
use crate::decode::Decoder;
use crate::engine::Engine;
use crate::input::{Replay, replay_file};

/// Flattens nested objects into dotted keys.
pub fn flatten(v: &Value) -> Map {
    fn walk(prefix: &str, v: &Value, out: &mut Map) {
        match v {
            Value::Object(m) if !m.is_empty() || prefix.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.clone());
            }
        }
    }
    let mut out = Map::new();
    walk("", v, &mut out);
    out
}

/// The events of `pcap` through the configuration `yaml` (a file in Packetbeat's layout:
/// `packetbeat.protocols: ...`), flattened. Errors: the configuration or the file.
pub fn events(pcap: &Path, yaml: &str) -> Result<Vec<Map>, String> {
    let mut all = Vec::new();
    replay(pcap, yaml, |batch| all.extend(batch))?;
    Ok(all.iter().map(|e| flatten(&e.to_value(true))).collect())
}

/// Replays `pcap` at top speed through the protocols of `yaml` (Packetbeat's layout), handing
/// each batch of events to `each`: [`events`] and the replay benchmarks share it.
pub fn replay(pcap: &Path, yaml: &str, mut each: impl FnMut(Vec<Event>)) -> Result<(), String> {
    let root = skiff_config::parse_str(yaml, Some("test.yml")).map_err(|e| e.to_string())?;
    let section = root
        .get("packetbeat")
        .cloned()
        .unwrap_or_else(Node::empty_map);
    let cfg = config::parse(&section, &crate::protocols::names()).map_err(|e| e.to_string())?;
    let ctx = BuildContext::standalone("test", "8.0.0", &Default::default());
    let mut engine = Engine::new(&cfg, &ctx).map_err(|e| e.to_string())?;
    let replay = Replay {
        path: pcap.to_owned(),
        top_speed: true,
        loops: 1,
    };
    replay_file(&mut engine, &replay, &CancellationToken::new(), |batch| {
        each(batch);
        true
    })
    .map_err(|e| e.to_string())
}

/// Reads and decodes every frame of `pcap` without analysing it, the baseline the replay
/// benchmarks divide by; the number of frames that decoded.
pub fn decode_only(pcap: &Path) -> Result<u64, String> {
    let mut src = FileSource::open(pcap).map_err(|e| e.to_string())?;
    let mut decoder: Option<Decoder> = None;
    let mut decoded = 0u64;
    while let Some(f) = src.next_frame() {
        let f = f.map_err(|e| e.to_string())?;
        let d = decoder.get_or_insert_with(|| Decoder::new(f.link));
        if d.decode(Timestamp(0), &f.data).is_ok() {
            decoded += 1;
        }
    }
    Ok(decoded)
}

/// Writes a capture of one TCP conversation (Ethernet, IPv4 10.0.0.1 -> 10.0.0.2): the
/// handshake, then each `(from_client, bytes)` as one segment 1 ms apart, then FINs. For
/// protocols without a capture in the corpus: script the exchange, then [`events`].
pub fn write_conversation(
    path: &Path,
    server_port: u16,
    messages: &[(bool, &[u8])],
) -> std::io::Result<()> {
    use etherparse::PacketBuilder;
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let io = |e: pcap_file::PcapError| std::io::Error::other(e.to_string());
    let file = std::fs::File::create(path)?;
    let header = PcapHeader {
        datalink: pcap_file::DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(file, header).map_err(io)?;
    let (client, server) = (([10, 0, 0, 1], 40000u16), ([10, 0, 0, 2], server_port));
    let mut seq = [1000u32, 5000u32];
    let mut t = 1_500_000_000_000u64;
    let frame = |from_client: bool, flags: &str, payload: &[u8], seq: &mut [u32; 2]| {
        let (a, b, i) = if from_client {
            (client, server, 0)
        } else {
            (server, client, 1)
        };
        let mut tcp = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(a.0, b.0, 64)
            .tcp(a.1, b.1, seq[i], 65535);
        if flags.contains('S') {
            tcp = tcp.syn();
        }
        if flags != "S" {
            tcp = tcp.ack(seq[1 - i]);
        }
        if flags.contains('F') {
            tcp = tcp.fin();
        }
        let mut out = Vec::new();
        let _ = tcp.write(&mut out, payload);
        seq[i] = seq[i].wrapping_add(payload.len() as u32);
        if flags.contains('S') || flags.contains('F') {
            seq[i] = seq[i].wrapping_add(1);
        }
        out
    };
    let mut packets = vec![
        frame(true, "S", b"", &mut seq),
        frame(false, "SA", b"", &mut seq),
    ];
    for (from_client, bytes) in messages {
        packets.push(frame(*from_client, "", bytes, &mut seq));
    }
    packets.push(frame(true, "F", b"", &mut seq));
    packets.push(frame(false, "F", b"", &mut seq));
    for p in packets {
        t += 1000;
        w.write_packet(&PcapPacket::new(
            std::time::Duration::from_micros(t),
            p.len() as u32,
            &p,
        ))
        .map_err(io)?;
    }
    Ok(())
}
