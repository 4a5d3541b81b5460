//! Random and mutated bytes through the decoder: it must never panic, never return more than a
//! frame's worth of data beyond its limits, and decode every valid stream however it is split.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use bytes::BytesMut;
use proptest::prelude::*;
use skiff_lumberjack::protocol::{self, Decoder, Frame, Limits, WindowEncoder};

fn limits() -> Limits {
    Limits {
        max_payload: 4096,
        max_decompressed: 16384,
    }
}

/// Feeds `bytes` in pieces of `chunk` and collects frames until the end or the first error.
fn run(bytes: &[u8], chunk: usize) -> (Vec<Frame>, bool) {
    let (frames, failed, _) = run_counting(bytes, chunk);
    (frames, failed)
}

/// [`run`], also returning the decoder's work: `(bytes examined, decode calls)`.
fn run_counting(bytes: &[u8], chunk: usize) -> (Vec<Frame>, bool, (u64, u64)) {
    let mut d = Decoder::new(limits());
    let mut calls = 0u64;
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            calls += 1;
            match d.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(_) => return (frames, true, (d.bytes_examined(), calls)),
            }
        }
        // Whatever is buffered is at most one frame, bounded by the limits.
        assert!(buf.len() <= 16384 + 6 + chunk.max(1));
    }
    (frames, false, (d.bytes_examined(), calls))
}

/// A data frame of either kind, as generated.
#[derive(Clone, Debug)]
enum Doc {
    Json(String),
    Pairs(Vec<(String, String)>),
}

fn doc() -> impl Strategy<Value = Doc> {
    prop_oneof![
        "[a-z0-9 ]{1,200}".prop_map(|d| Doc::Json(format!("{{\"message\":\"{d}\"}}"))),
        proptest::collection::vec(("[a-z]{0,20}", "[a-z0-9 é]{0,100}"), 0..12).prop_map(Doc::Pairs),
    ]
}

/// `W n`, then the frames with seq `1..=n`, zlib-compressed into one `C` frame above level 0.
fn mixed_window(docs: &[Doc], level: u32) -> Vec<u8> {
    let mut frames = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let seq = i as u32 + 1;
        match d {
            Doc::Json(j) => {
                protocol::write_json_frame(&mut frames, seq, |o| o.extend_from_slice(j.as_bytes()))
            }
            Doc::Pairs(pairs) => {
                frames.extend_from_slice(b"1D");
                frames.extend_from_slice(&seq.to_be_bytes());
                frames.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
                for (k, v) in pairs {
                    for s in [k, v] {
                        frames.extend_from_slice(&(s.len() as u32).to_be_bytes());
                        frames.extend_from_slice(s.as_bytes());
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    protocol::write_window(&mut out, docs.len() as u32);
    if level == 0 {
        out.extend_from_slice(&frames);
        return out;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
    z.write_all(&frames).unwrap();
    let packed = z.finish().unwrap();
    out.extend_from_slice(b"2C");
    out.extend_from_slice(&(packed.len() as u32).to_be_bytes());
    out.extend_from_slice(&packed);
    out
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

    /// The incremental path of legacy `D` frames (taken out of the buffer string by string)
    /// and of JSON frames, plain or compressed: the same frames whatever the split, and work
    /// linear in the bytes (each byte read about once, plus a header look per call).
    #[test]
    fn mixed_windows_decode_whatever_the_split_in_linear_work(
        docs in proptest::collection::vec(doc(), 1..16),
        level in 0u32..3,
        chunk in 1usize..200,
    ) {
        let bytes = mixed_window(&docs, level);
        let (frames, failed, (examined, calls)) = run_counting(&bytes, chunk);
        prop_assert!(!failed);
        prop_assert_eq!(frames.len(), docs.len() + 1);
        prop_assert_eq!(&frames[0], &Frame::Window(docs.len() as u32));
        for (i, (f, d)) in frames[1..].iter().zip(&docs).enumerate() {
            let seq_want = i as u32 + 1;
            match (f, d) {
                (Frame::Json { seq, payload }, Doc::Json(j)) => {
                    prop_assert_eq!(*seq, seq_want);
                    prop_assert_eq!(&payload[..], j.as_bytes());
                }
                (Frame::Data { seq, pairs }, Doc::Pairs(want)) => {
                    prop_assert_eq!(*seq, seq_want);
                    prop_assert_eq!(pairs, want);
                }
                (f, d) => prop_assert!(false, "{:?} decoded as {:?}", d, f),
            }
        }
        // Compressed content is read once more after inflating.
        let bound = 3 * bytes.len() as u64 + 3 * 16384 * u64::from(level > 0) + 10 * calls;
        prop_assert!(examined <= bound, "examined {} > {}", examined, bound);
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
