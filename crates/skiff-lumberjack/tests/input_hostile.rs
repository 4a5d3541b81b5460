//! The lumberjack input against bad clients: garbage, oversize frames, zip bombs, half frames.
//! Each bad connection is closed; the input keeps serving good clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use skiff_lumberjack::protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` and returns what the server answered before closing (or `None` if it did not
/// close within 10 s).
async fn answer(port: u16, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    match tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await {
        Ok(_) => Some(got),
        Err(_) => None,
    }
}

fn zlib(b: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(b).unwrap();
    z.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_are_dropped_and_good_ones_served() {
    let rx = Receiver::new(Duration::ZERO);
    let port = free_port();
    let (_stop, _h) = rx
        .start_input(
            "max_message_size: 1KiB\nmax_batch_size: 64KiB",
            port,
            Duration::ZERO,
        )
        .await;

    // HTTP on the lumberjack port.
    assert_eq!(
        answer(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await,
        Some(vec![])
    );
    // A JSON frame announcing 1 MiB (only the header is sent: refused without waiting).
    let mut b = Vec::new();
    protocol::write_window(&mut b, 1);
    b.extend_from_slice(&[b'2', b'J', 0, 0, 0, 1, 0, 0x10, 0, 0]);
    assert_eq!(answer(port, &b).await, Some(vec![]));
    // A zip bomb: 16 MiB of zeros in a small compressed frame.
    let mut inner = Vec::new();
    protocol::write_json_frame(&mut inner, 1, |o| o.resize(o.len() + (16 << 20), b' '));
    let packed = zlib(&inner);
    let mut b = Vec::new();
    protocol::write_window(&mut b, 1);
    b.extend_from_slice(b"2C");
    b.extend_from_slice(&(packed.len() as u32).to_be_bytes());
    b.extend_from_slice(&packed);
    assert_eq!(answer(port, &b).await, Some(vec![]));
    // Random bytes.
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert_eq!(answer(port, &noise).await, Some(vec![]));
    // A data frame before any window.
    let mut b = Vec::new();
    protocol::write_json_frame(&mut b, 1, |o| o.extend_from_slice(b"{}"));
    assert_eq!(answer(port, &b).await, Some(vec![]));

    assert!(rx.seen.lock().unwrap().is_empty());
    // The closed connections gave their buffers back.
    let stage = rx
        .ctx
        .budget
        .snapshot()
        .into_iter()
        .find(|s| s.0 == "input.lumberjack")
        .unwrap();
    assert_eq!(stage.1, 0, "{stage:?}");

    // A good client is still served.
    let tx = Sender::start(&format!("hosts: ['127.0.0.1:{port}']"), 50).await;
    tx.wait_acked(50, 30).await;
    assert_eq!(rx.counts().len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_window_gets_ack_zero_and_bad_json_is_kept() {
    let rx = Receiver::new(Duration::ZERO);
    let port = free_port();
    let (_stop, _h) = rx.start_input("", port, Duration::ZERO).await;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut b = Vec::new();
    protocol::write_window(&mut b, 0);
    s.write_all(&b).await.unwrap();
    let mut ack = [0u8; 6];
    s.read_exact(&mut ack).await.unwrap();
    assert_eq!(protocol::parse_ack(&ack).unwrap(), 0);
    // A window with one good and one broken document: both become events, the window is
    // acknowledged in full.
    let mut b = Vec::new();
    protocol::write_window(&mut b, 2);
    protocol::write_json_frame(&mut b, 1, |o| o.extend_from_slice(br#"{"message":"ok"}"#));
    protocol::write_json_frame(&mut b, 2, |o| o.extend_from_slice(b"{not json"));
    s.write_all(&b).await.unwrap();
    let mut last = 0;
    while last != 2 {
        s.read_exact(&mut ack).await.unwrap();
        last = protocol::parse_ack(&ack).unwrap();
    }
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1]["message"], "{not json");
    assert_eq!(seen[1]["tags"], serde_json::json!(["_jsonparsefailure"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_v1_clients_get_v1_acks() {
    let rx = Receiver::new(Duration::ZERO);
    let port = free_port();
    let (_stop, _h) = rx.start_input("", port, Duration::ZERO).await;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut b = vec![b'1', b'W', 0, 0, 0, 1, b'1', b'D', 0, 0, 0, 1, 0, 0, 0, 2];
    for kv in ["line", "old school", "file", "/var/log/x"] {
        b.extend_from_slice(&(kv.len() as u32).to_be_bytes());
        b.extend_from_slice(kv.as_bytes());
    }
    s.write_all(&b).await.unwrap();
    let mut ack = [0u8; 6];
    s.read_exact(&mut ack).await.unwrap();
    assert_eq!(ack, [b'1', b'A', 0, 0, 0, 1]);
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen[0]["message"], "old school");
    assert_eq!(seen[0]["file"], "/var/log/x");
}
