//! output.logstash against a server that answers windows wrongly for a while (a deliberately
//! broken stand-in, see `common::hostile`), then skiff's own lumberjack input on the same port:
//! no wrong ACK counts an event as delivered, nothing panics, every event arrives exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use skiff_lumberjack::protocol::{ack_frame, ack_frame_v};
use skiff_metrics::names;
use skiff_pipeline::FailureKind;
use skiff_pipeline::worker;
use tokio::net::TcpListener;

fn acks(seqs: &[u32]) -> Vec<u8> {
    seqs.iter().flat_map(|s| ack_frame(*s)).collect()
}

fn wrong_answers() -> Vec<Answer> {
    let answers: [Answer; 10] = [
        // Beyond the window.
        |n| acks(&[n + 1]),
        |_| acks(&[u32::MAX]),
        // A valid partial ACK, then one going backwards.
        |n| acks(&[n - 1, 1]),
        // Not an ACK: another version, a frame type only clients send, HTTP, garbage.
        |n| ack_frame_v(b'3', n).to_vec(),
        |n| {
            let mut f = ack_frame(n);
            f[1] = b'W';
            f.to_vec()
        },
        |_| b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n\r\n<html></html>".to_vec(),
        |_| "é…\u{0}\u{1}".as_bytes().to_vec(),
        // A truncated ACK (then silence: the client times out).
        |_| b"2A\0".to_vec(),
        // Keep-alives only, then silence.
        |_| acks(&[0, 0, 0]),
        // No answer (the connection stays open and silent).
        |_| Vec::new(),
    ];
    answers.to_vec()
}

#[tokio::test]
async fn wrong_acks_never_count_as_delivered_and_the_real_input_gets_everything_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answers = wrong_answers();
    let expected = answers.len();
    let standin = tokio::spawn(hostile(listener, answers));

    let sctx = ctx("edge-1");
    let reg = sctx.metrics.clone();
    let q = queue(&reg);
    let stream = skiff_event::AckStream::new();
    let total = 40u64;
    let shared = edge_shared();
    for i in 0..total {
        let mut e = edge_event(&shared, i);
        e.ack = Some(stream.token(i));
        q.push(e).await.unwrap();
    }
    q.close();
    let out = (skiff_lumberjack::OUTPUT.build)(
        &node(&format!(
            "hosts: ['127.0.0.1:{port}']\nbulk_max_size: 50\ntimeout: 500ms\nbackoff.init: 5ms\nbackoff.max: 20ms\nslow_start: false"
        )),
        &sctx,
    )
    .map_err(|e| e.to_string())
    .unwrap();
    let running = skiff_topology::Topology::builder(sctx.clone())
        .queue(q, false)
        .output("logstash", out)
        .build()
        .start()
        .await;

    let served = tokio::time::timeout(Duration::from_secs(60), standin).await;
    // Checked first: a client that took a wrong answer for delivery stops retrying, and the
    // stand-in then waits in vain.
    let acked = reg.counter(&names::OUTPUT_EVENTS_ACKED);
    assert_eq!(acked.get(), 0, "a wrong ACK counted events as delivered");
    let served = served
        .expect("the client stopped retrying against the broken server")
        .unwrap();
    assert_eq!(served, expected);
    assert_eq!(stream.progress().acked, 0);

    // skiff's own lumberjack input takes over the port.
    let receiver = Receiver::new(Duration::ZERO);
    let (stop, input) = receiver.start_input("", port, Duration::from_secs(5)).await;
    // The queue is closed: draining ends when the workers have delivered everything.
    let report = tokio::time::timeout(Duration::from_secs(60), running.drain())
        .await
        .expect("the worker did not deliver everything within 60s of the input starting");
    assert!(report.output_failure.is_none(), "{report:?}");
    assert_eq!(stream.progress().acked, total);
    assert_eq!(acked.get(), total);
    let counts = receiver.counts();
    assert_eq!(counts.len() as u64, total, "events missing at the receiver");
    assert!(counts.values().all(|c| *c == 1), "duplicates: {counts:?}");
    let kind = |k| worker::error_count(&reg, k);
    assert_eq!(kind(FailureKind::Panic), 0);
    assert!(
        kind(FailureKind::Protocol) >= 7,
        "protocol errors: {}",
        kind(FailureKind::Protocol)
    );
    stop.cancel();
    let _ = input.await;
}
