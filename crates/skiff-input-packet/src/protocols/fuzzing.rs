//! Drives a protocol's sessions with arbitrary bytes for the proptests of the issue 13
//! parsers: no panic, and the memory a session holds stays within a bound.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use skiff_event::Timestamp;

use crate::protocol::{CloseReason, ConnInfo, Cx, Dir, GapAction, Protocol, StreamBuf, Transport};

/// Builds the protocol `name` from a YAML snippet of its options.
pub fn protocol(plugin: &crate::protocol::ProtocolPlugin, yaml: &str) -> Arc<dyn Protocol> {
    let node = skiff_config::parse_str(yaml, Some("t.yml")).expect("options parse");
    let common = crate::config::ProtocolCommon {
        kind: plugin.name.into(),
        enabled: true,
        ports: Some(plugin.default_ports.to_vec()),
        send_request: true,
        send_response: true,
        transaction_timeout: None,
        keep_null: false,
        index: None,
        fields: Default::default(),
        fields_under_root: false,
        tags: Vec::new(),
    };
    (plugin.build)(&crate::protocol::BuildArgs {
        own: &node,
        common: &common,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Feeds `chunks` (direction, bytes; a `None` is a 100-byte gap) to one session, as the
/// engine does, and returns the largest `held_bytes` seen plus buffered bytes.
pub fn drive(
    proto: &dyn Protocol,
    transport: Transport,
    port: u16,
    chunks: &[(bool, Option<Vec<u8>>)],
) -> usize {
    let conn = ConnInfo {
        orig: (IpAddr::V4(Ipv4Addr::LOCALHOST), 40000),
        reply: (IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        transport,
    };
    let mut out = Vec::new();
    let mut session = proto.session(transport);
    let mut bufs = [StreamBuf::default(), StreamBuf::default()];
    let mut peak = 0;
    for (i, (reply, chunk)) in chunks.iter().enumerate() {
        let dir = if *reply { Dir::Reply } else { Dir::Orig };
        let mut cx = Cx {
            now: Timestamp(i as i64 * 1_000_000),
            clock: Timestamp(i as i64 * 1_000_000),
            conn: &conn,
            out: &mut out,
        };
        match chunk {
            Some(bytes) if transport == Transport::Udp => {
                let mut b = StreamBuf::default();
                b.push(bytes);
                session.parse(&mut cx, dir, &mut b);
            }
            Some(bytes) => {
                bufs[dir.index()].push(bytes);
                session.parse(&mut cx, dir, &mut bufs[dir.index()]);
            }
            None => {
                if session.gap(&mut cx, dir, 100, &mut bufs[dir.index()]) == GapAction::Drop {
                    session = proto.session(transport);
                    bufs = Default::default();
                }
            }
        }
        session.tick(&mut cx);
        peak = peak.max(session.held_bytes() + bufs[0].len() + bufs[1].len());
    }
    let mut cx = Cx {
        now: Timestamp(0),
        clock: Timestamp(0),
        conn: &conn,
        out: &mut out,
    };
    session.close(&mut cx, CloseReason::EndOfInput);
    peak
}

/// A proptest strategy: up to 24 chunks of up to 300 bytes in either direction, some gaps,
/// each chunk optionally starting with one of `seeds` (valid message prefixes) so the
/// parser gets past its first checks.
pub fn chunks(
    seeds: &'static [&'static [u8]],
) -> impl proptest::strategy::Strategy<Value = Vec<(bool, Option<Vec<u8>>)>> {
    use proptest::prelude::*;
    let chunk = (
        any::<bool>(),
        0..seeds.len() + 2,
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(move |(dir, seed, tail)| {
            if seed == seeds.len() + 1 {
                return (dir, None);
            }
            let mut v = seeds.get(seed).map(|s| s.to_vec()).unwrap_or_default();
            v.extend(tail);
            (dir, Some(v))
        });
    proptest::collection::vec(chunk, 0..24)
}
