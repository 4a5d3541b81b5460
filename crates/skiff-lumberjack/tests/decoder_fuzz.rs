//! Random and mutated bytes through the decoder: it must never panic, never return more than a
//! frame's worth of data beyond its limits, and decode every valid stream however it is split.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use proptest::prelude::*;
use skiff_lumberjack::protocol::{Decoder, Frame, Limits, WindowEncoder};

fn limits() -> Limits {
    Limits {
        max_payload: 4096,
        max_decompressed: 16384,
    }
}

/// Feeds `bytes` in pieces of `chunk` and collects frames until the end or the first error.
fn run(bytes: &[u8], chunk: usize) -> (Vec<Frame>, bool) {
    let mut d = Decoder::new(limits());
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
        // Whatever is buffered is at most one frame, bounded by the limits.
        assert!(buf.len() <= 16384 + 6 + chunk.max(1));
    }
    (frames, false)
}

fn window(docs: &[String], level: u32) -> Vec<u8> {
    let mut out = Vec::new();
    WindowEncoder::new(level).encode(&mut out, docs.len() as u32, |i, b| {
        b.extend_from_slice(docs[i].as_bytes())
    });
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..64) {
        let _ = run(&bytes, chunk);
    }

    #[test]
    fn random_bytes_after_a_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..512), kind in prop::sample::select(vec![b'W', b'J', b'C', b'D', b'A'])) {
        let mut b = vec![b'2', kind];
        b.extend_from_slice(&tail);
        let _ = run(&b, 7);
    }

    #[test]
    fn valid_windows_decode_whatever_the_split(
        docs in proptest::collection::vec("[a-z0-9 ]{1,200}", 1..20),
        level in 0u32..4,
        chunk in 1usize..300,
    ) {
        let docs: Vec<String> = docs.iter().map(|d| format!("{{\"message\":\"{d}\"}}")).collect();
        let bytes = window(&docs, level);
        let (frames, failed) = run(&bytes, chunk);
        prop_assert!(!failed);
        prop_assert_eq!(frames.len(), docs.len() + 1);
        prop_assert_eq!(&frames[0], &Frame::Window(docs.len() as u32));
        for (i, f) in frames[1..].iter().enumerate() {
            match f {
                Frame::Json { seq, payload } => {
                    prop_assert_eq!(*seq as usize, i + 1);
                    prop_assert_eq!(&payload[..], docs[i].as_bytes());
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    #[test]
    fn truncated_windows_never_yield_invented_frames(
        docs in proptest::collection::vec("[a-z]{1,50}", 1..10),
        level in 0u32..4,
        cut in 0usize..1000,
    ) {
        let docs: Vec<String> = docs.iter().map(|d| format!("\"{d}\"")).collect();
        let bytes = window(&docs, level);
        let cut = cut % bytes.len();
        let (frames, _) = run(&bytes[..cut], 13);
        // A prefix only ever yields a prefix of the frames.
        prop_assert!(frames.len() <= docs.len() + 1);
    }

    #[test]
    fn flipped_bytes_never_panic(
        docs in proptest::collection::vec("[a-z]{1,50}", 1..10),
        level in 0u32..4,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let docs: Vec<String> = docs.iter().map(|d| format!("\"{d}\"")).collect();
        let mut bytes = window(&docs, level);
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] ^= v;
        }
        let _ = run(&bytes, 32);
    }
}
