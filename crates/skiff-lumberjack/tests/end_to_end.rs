//! skiff -> skiff over Lumberjack: output.logstash into the lumberjack input, both driven by the
//! real pipeline (memory queues and output workers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use skiff_metrics::names;

async fn ship(compression: u32, n: u64) {
    let rx = Receiver::new(Duration::ZERO);
    let port = free_port();
    let (stop, _h) = rx.start_input("", port, Duration::ZERO).await;
    let tx = Sender::start(
        &format!("hosts: ['127.0.0.1:{port}']\ncompression_level: {compression}\nbulk_max_size: 300\nbackoff.init: 10ms\nbackoff.max: 50ms"),
        n,
    )
    .await;
    tx.wait_acked(n, 60).await;
    // The sender's events are acknowledged only after the receiver's output had them.
    let counts = rx.counts();
    assert_eq!(counts.len() as u64, n);
    assert!(counts.values().all(|c| *c == 1), "duplicates: {counts:?}");
    let seen = rx.seen.lock().unwrap().clone();
    let ev = seen
        .iter()
        .find(|v| v["message"].as_str().unwrap().starts_with("msg-7 "))
        .unwrap();
    assert_eq!(ev["message"], "msg-7 \"quoted\" é <b>&");
    assert_eq!(
        ev["log"],
        json!({"offset": 700, "file": {"path": "/var/log/app.log"}})
    );
    assert_eq!(ev["labels"], json!({"n": 7}));
    // The sender's identity survives the hop, and so does its @metadata.
    assert_eq!(ev["agent"]["name"], "edge-1");
    assert_eq!(ev["agent"]["id"], "edge-1-id");
    assert_eq!(ev["host"]["name"], "edge-1");
    assert_eq!(ev["input"]["type"], "filestream");
    assert_eq!(ev["@metadata"]["beat"], "filebeat");
    assert_eq!(ev["@metadata"]["version"], "9.9.9");
    assert!(ev["@timestamp"].as_str().unwrap().ends_with('Z'));
    let written = tx.ctx.metrics.counter(&names::OUTPUT_WRITE_BYTES).get();
    assert!(written > 0);
    stop.cancel();
    tx.queue.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_exactly_once_uncompressed() {
    ship(0, 3000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_exactly_once_compressed() {
    ship(3, 3000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_shrinks_the_wire() {
    async fn bytes(level: u32) -> u64 {
        let rx = Receiver::new(Duration::ZERO);
        let port = free_port();
        let (_stop, _h) = rx.start_input("", port, Duration::ZERO).await;
        let tx = Sender::start(
            &format!("hosts: ['127.0.0.1:{port}']\ncompression_level: {level}"),
            500,
        )
        .await;
        tx.wait_acked(500, 60).await;
        tx.ctx.metrics.counter(&names::OUTPUT_WRITE_BYTES).get()
    }
    let plain = bytes(0).await;
    let packed = bytes(3).await;
    assert!(
        packed * 3 < plain,
        "plain {plain} bytes, compressed {packed}"
    );
}

/// The receiving pipeline is slower than the sender's ACK timeout: the input's keep-alive ACKs
/// keep the sender from giving up, so nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_acks_hold_the_sender_while_the_receiver_is_slow() {
    let rx = Receiver::new(Duration::from_millis(1500));
    let port = free_port();
    let (_stop, _h) = rx
        .start_input("keepalive: 100ms", port, Duration::ZERO)
        .await;
    let tx = Sender::start(
        &format!("hosts: ['127.0.0.1:{port}']\ntimeout: 600ms\nbulk_max_size: 50"),
        100,
    )
    .await;
    tx.wait_acked(100, 60).await;
    assert_eq!(tx.ctx.metrics.counter(&names::OUTPUT_RETRIES).get(), 0);
    assert!(rx.counts().values().all(|c| *c == 1));
}

/// The receiving server is stopped in the middle of the stream and started again on the same
/// port: the sender retries and nothing is lost (events whose ACK was lost arrive twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_mid_stream_loses_nothing() {
    let n = 4000;
    let rx = Receiver::new(Duration::from_millis(5));
    let port = free_port();
    let (stop, h) = rx.start_input("", port, Duration::ZERO).await;
    let tx = Sender::start(
        &format!("hosts: ['127.0.0.1:{port}']\nbulk_max_size: 200\nbackoff.init: 20ms\nbackoff.max: 100ms"),
        n,
    )
    .await;
    // Stop once some, but not all, events went through.
    while rx.seen.lock().unwrap().len() < 600 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    h.await.unwrap().unwrap();
    let before = tx.stream.progress().acked;
    assert!(before < n, "everything went through before the stop");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_stop2, _h2) = rx.start_input("", port, Duration::ZERO).await;
    tx.wait_acked(n, 60).await;
    let counts = rx.counts();
    for i in 0..n {
        let key = format!("msg-{i} \"quoted\" é <b>&");
        assert!(counts.get(&key).copied().unwrap_or(0) >= 1, "lost {key}");
    }
    assert!(tx.ctx.metrics.counter(&names::OUTPUT_RETRIES).get() >= 1);
}
