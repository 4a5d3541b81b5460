//! Unit tests of the pieces with a published answer.

#![allow(clippy::unwrap_used)]

use super::names;

#[test]
fn grease_values_are_recognised() {
    assert!(names::is_grease(0x0a0a));
    assert!(names::is_grease(0xfafa));
    assert!(!names::is_grease(0x0a1a));
    assert!(!names::is_grease(0x1301));
}

#[test]
fn cipher_names_come_from_the_iana_table() {
    assert_eq!(
        names::cipher(0xc02f),
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    );
    assert_eq!(names::cipher(0xff85), "(unknown:0xff85)");
}

#[test]
fn an_ocsp_response_status_is_named() {
    // SEQUENCE { ENUMERATED 0 } and SEQUENCE { ENUMERATED 3 }: RFC 6960's responseStatus.
    assert_eq!(
        super::ocsp_response_status(&[0x30, 0x03, 0x0a, 0x01, 0x00]),
        Some("successful")
    );
    assert_eq!(
        super::ocsp_response_status(&[0x30, 0x03, 0x0a, 0x01, 0x03]),
        Some("tryLater")
    );
    assert_eq!(super::ocsp_response_status(&[0x30, 0x03]), None);
}

#[test]
fn the_ocsp_status_request_extension_is_read() {
    // status_type 1 (ocsp), no responder ids, no request extensions.
    assert_eq!(super::ocsp(&[1, 0, 0, 0, 0]), Some((0, 0)));
    assert_eq!(super::ocsp(&[1, 0, 2, 9, 9, 0, 0]), Some((2, 0)));
    assert_eq!(super::ocsp(&[2, 0, 0, 0, 0]), None);
    assert_eq!(super::ocsp(&[1, 0]), None);
}

/// A misspelt option or an unknown fingerprint is an error with the file, line and a
/// suggestion, as every option of every protocol.
#[test]
fn option_typos_are_located_errors() {
    let pcap = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/pcaps/tls-sample2.pcap");
    let err = crate::testing::events(
        &pcap,
        "packetbeat.protocols:\n- type: tls\n  include_raw_certificate: true\n",
    )
    .unwrap_err();
    assert!(err.contains("test.yml:3"), "{err}");
    assert!(err.contains("include_raw_certificates"), "{err}");
    let err = crate::testing::events(
        &pcap,
        "packetbeat.protocols:\n- type: tls\n  fingerprints: [sha512]\n",
    )
    .unwrap_err();
    assert!(err.contains("sha512"), "{err}");
    assert!(err.contains("sha256"), "{err}");
}

/// JA3S of a ServerHello written by hand (TLS 1.2, cipher 0xc02f, extensions
/// renegotiation_info, server_name, ec_point_formats, session_ticket): the MD5 of
/// `771,49199,65281-0-11-35` as the JA3 specification composes it (hash computed apart).
#[test]
fn ja3s_follows_the_specification() {
    let sh = super::ServerHello {
        version: 0x0303,
        cipher: 0xc02f,
        ext_types: vec![0xff01, 0, 11, 35],
        ..Default::default()
    };
    assert_eq!(super::ja3s(&sh), "a2c05b7498f29a65608835b44035c0c5");
}

mod hostile {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use proptest::prelude::*;
    use skiff_event::Timestamp;

    use super::super::{Tls, TlsConfig};
    use crate::protocol::{CloseReason, ConnInfo, Cx, Dir, Protocol, StreamBuf, Transport};

    fn protocol(raw: bool) -> Tls {
        let cfg: TlsConfig = serde_json::from_value(serde_json::json!({
            "include_raw_certificates": raw,
            "fingerprints": ["md5", "sha1", "sha256"],
        }))
        .unwrap();
        Tls { cfg: Arc::new(cfg) }
    }

    /// A record of `kind` around `body` (the length field says what the body holds, so the
    /// bytes reach the handshake and certificate parsers).
    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn chunk() -> impl Strategy<Value = (bool, Vec<u8>)> {
        let any_bytes = proptest::collection::vec(any::<u8>(), 0..400);
        prop_oneof![
            // Raw bytes: framing errors.
            any_bytes.clone().prop_map(|b| (false, b)),
            // Records of any type with random bodies.
            (20u8..24, any_bytes.clone()).prop_map(|(k, b)| (true, record(k, &b))),
            // Handshake records whose messages claim a plausible type and length.
            (
                prop_oneof![Just(1u8), Just(2), Just(11), Just(12), Just(13), Just(16)],
                any_bytes
            )
                .prop_map(|(t, b)| {
                    let mut m = vec![t, 0];
                    m.extend_from_slice(&(b.len() as u16).to_be_bytes());
                    m.extend_from_slice(&b);
                    (true, record(22, &m))
                }),
        ]
    }

    proptest! {
        /// Random bytes, records and handshake messages in both directions: no panic, at
        /// most one event, and the session's held bytes stay bounded.
        #[test]
        fn the_session_survives_random_bytes(
            chunks in proptest::collection::vec((any::<bool>(), chunk()), 1..40),
            raw in any::<bool>(),
        ) {
            let conn = ConnInfo {
                orig: (IpAddr::V4(Ipv4Addr::LOCALHOST), 40000),
                reply: (IpAddr::V4(Ipv4Addr::LOCALHOST), 443),
                transport: Transport::Tcp,
            };
            let mut out = Vec::new();
            let mut s = protocol(raw).session(Transport::Tcp);
            let mut bufs = [StreamBuf::default(), StreamBuf::default()];
            for (i, (reply, (_, bytes))) in chunks.iter().enumerate() {
                let dir = if *reply { Dir::Reply } else { Dir::Orig };
                let t = Timestamp(i as i64);
                let mut cx = Cx { now: t, clock: t, conn: &conn, out: &mut out };
                bufs[dir.index()].push(bytes);
                s.parse(&mut cx, dir, &mut bufs[dir.index()]);
                prop_assert!(s.held_bytes() <= 2 * (super::super::MAX_HANDSHAKE + (16 << 10) * 16));
            }
            let t = Timestamp(1 << 30);
            s.close(&mut Cx { now: t, clock: t, conn: &conn, out: &mut out }, CloseReason::Closed);
            prop_assert!(out.len() <= 1);
        }
    }
}
