//! output.logstash against scripted servers: partial ACKs, keep-alive ACKs, silent and broken
//! servers, and the `skiff test output` probe.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use skiff_event::Event;
use skiff_lumberjack::protocol::{self, Decoder, Frame, Limits};
use skiff_pipeline::{Output, OutputSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads one whole window from `s`: the messages of its events, in order.
async fn read_window(s: &mut TcpStream, dec: &mut Decoder, buf: &mut BytesMut) -> Vec<String> {
    let mut expected = None;
    let mut msgs = Vec::new();
    loop {
        while let Some(f) = dec.decode(buf).unwrap() {
            match f {
                Frame::Window(n) => expected = Some(n as usize),
                Frame::Json { payload, .. } => {
                    let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                    msgs.push(v["message"].as_str().unwrap().to_owned());
                }
                other => panic!("unexpected {other:?}"),
            }
            if expected == Some(msgs.len()) {
                return msgs;
            }
        }
        if s.read_buf(buf).await.unwrap() == 0 {
            return msgs;
        }
    }
}

/// What a scripted server does with each connection's first window.
#[derive(Clone, Copy)]
enum Script {
    /// ACK this many events, then close.
    AckThenClose(u32),
    /// Send `A 0` keep-alives for a while, then ACK everything.
    KeepaliveThenAck,
    /// Say nothing.
    Silent,
    /// Answer with HTTP.
    Http,
    /// ACK everything.
    AckAll,
    /// Read a second window, ACK all of the first and this many of the second, then close.
    TwoWindowsPartial(u32),
}

/// A server playing `scripts`, one per connection; records every window's messages.
async fn scripted(scripts: Vec<Script>) -> (u16, Arc<Mutex<Vec<Vec<String>>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        for script in scripts {
            let (mut s, _) = l.accept().await.unwrap();
            let mut dec = Decoder::new(Limits::default());
            let mut buf = BytesMut::new();
            let msgs = read_window(&mut s, &mut dec, &mut buf).await;
            let n = msgs.len() as u32;
            g.lock().unwrap().push(msgs);
            match script {
                Script::AckThenClose(k) => {
                    s.write_all(&protocol::ack_frame(k)).await.unwrap();
                    s.flush().await.unwrap();
                    drop(s);
                }
                Script::KeepaliveThenAck => {
                    for _ in 0..15 {
                        s.write_all(&protocol::ack_frame(0)).await.unwrap();
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    s.write_all(&protocol::ack_frame(n)).await.unwrap();
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Script::Silent => tokio::time::sleep(Duration::from_secs(30)).await,
                Script::Http => {
                    s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Script::TwoWindowsPartial(k) => {
                    let second = read_window(&mut s, &mut dec, &mut buf).await;
                    g.lock().unwrap().push(second);
                    s.write_all(&protocol::ack_frame(n)).await.unwrap();
                    s.write_all(&protocol::ack_frame(k)).await.unwrap();
                    s.flush().await.unwrap();
                    drop(s);
                }
                Script::AckAll => {
                    s.write_all(&protocol::ack_frame(n)).await.unwrap();
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    });
    (port, got)
}

fn client(yaml: &str) -> Box<dyn Output> {
    let OutputSet { mut clients, .. } = (skiff_lumberjack::OUTPUT.build)(&node(yaml), &ctx("edge"))
        .map_err(|e| e.to_string())
        .unwrap();
    clients.remove(0)
}

fn events(n: u64) -> Vec<Event> {
    let shared = edge_shared();
    (0..n).map(|i| edge_event(&shared, i)).collect()
}

fn msg(i: u64) -> String {
    format!("msg-{i} \"quoted\" é <b>&")
}

#[tokio::test]
async fn partial_ack_then_drop_resends_only_the_tail() {
    let (port, got) = scripted(vec![Script::AckThenClose(5), Script::AckAll]).await;
    let mut c = client(&format!("hosts: ['127.0.0.1:{port}']"));
    let evs = events(10);
    let o = c.send(&evs).await.unwrap();
    assert_eq!(o.retry, (5..10).collect::<Vec<_>>());
    assert!(o.rejected.is_empty());
    // The worker sends the tail again: on a new connection.
    let o = c.send(&evs[5..]).await.unwrap();
    assert!(o.retry.is_empty());
    let got = got.lock().unwrap().clone();
    assert_eq!(got[0], (0..10).map(msg).collect::<Vec<_>>());
    assert_eq!(got[1], (5..10).map(msg).collect::<Vec<_>>());
}

#[tokio::test]
async fn pipelined_windows_with_a_partial_ack_in_the_second() {
    let (port, got) = scripted(vec![Script::TwoWindowsPartial(100)]).await;
    let mut c = client(&format!("hosts: ['127.0.0.1:{port}']\npipelining: 2"));
    let evs = events(600);
    let o = c.send(&evs).await.unwrap();
    // Two windows of 300 were in flight; 300 + 100 were acknowledged.
    assert_eq!(o.retry, (400..600).collect::<Vec<_>>());
    let got = got.lock().unwrap().clone();
    assert_eq!(got[0], (0..300).map(msg).collect::<Vec<_>>());
    assert_eq!(got[1], (300..600).map(msg).collect::<Vec<_>>());
}

#[tokio::test]
async fn partial_ack_through_the_worker_delivers_everything() {
    let (port, got) = scripted(vec![Script::AckThenClose(4), Script::AckAll]).await;
    let tx = Sender::start(
        &format!("hosts: ['127.0.0.1:{port}']\nbulk_max_size: 100\nbackoff.init: 10ms"),
        8,
    )
    .await;
    tx.wait_acked(8, 30).await;
    let got = got.lock().unwrap().clone();
    let all: Vec<String> = got.concat();
    for i in 0..8 {
        assert!(all.contains(&msg(i)));
    }
    // The four acknowledged events were not sent again.
    assert_eq!(all.iter().filter(|m| **m == msg(0)).count(), 1);
}

#[tokio::test]
async fn nothing_acked_is_a_batch_error() {
    let (port, _) = scripted(vec![Script::AckThenClose(0)]).await;
    let mut c = client(&format!("hosts: ['127.0.0.1:{port}']"));
    let err = c.send(&events(3)).await.unwrap_err().to_string();
    assert!(
        err.contains("closed the connection after acknowledging 0 of 3"),
        "{err}"
    );
}

#[tokio::test]
async fn keepalive_acks_reset_the_timeout() {
    let (port, _) = scripted(vec![Script::KeepaliveThenAck]).await;
    let mut c = client(&format!("hosts: ['127.0.0.1:{port}']\ntimeout: 500ms"));
    let o = c.send(&events(4)).await.unwrap();
    assert!(o.retry.is_empty());
}

#[tokio::test]
async fn a_silent_server_times_out_with_a_reason() {
    let (port, _) = scripted(vec![Script::Silent]).await;
    let mut c = client(&format!("hosts: ['127.0.0.1:{port}']\ntimeout: 300ms"));
    let err = c.send(&events(2)).await.unwrap_err().to_string();
    assert!(
        err.contains("no ACK from") && err.contains("output.logstash.timeout"),
        "{err}"
    );
}

#[tokio::test]
async fn a_non_lumberjack_server_is_named() {
    let (port, _) = scripted(vec![Script::Http]).await;
    let mut c = client(&format!("hosts: ['127.0.0.1:{port}']"));
    let err = format!("{:#}", c.send(&events(2)).await.unwrap_err());
    assert!(
        err.contains("where an ACK was due") && err.contains("'H'"),
        "{err}"
    );
}

#[tokio::test]
async fn refused_connections_say_what_to_check() {
    let port = free_port();
    let mut c = client(&format!("hosts: ['127.0.0.1:{port}']"));
    let err = c.send(&events(1)).await.unwrap_err().to_string();
    assert!(
        err.contains("refused") && err.contains("beats input"),
        "{err}"
    );
}

#[tokio::test]
async fn slow_start_sends_small_windows_first() {
    let (port, got) = scripted(vec![Script::AckAll]).await;
    let mut c = client(&format!(
        "hosts: ['127.0.0.1:{port}']\nslow_start: true\npipelining: 0"
    ));
    // The server ACKs only its first window and then goes quiet, so a batch larger than the
    // first window must have been cut: the first window holds 10 events.
    let _ = tokio::time::timeout(Duration::from_secs(2), c.send(&events(25))).await;
    assert_eq!(got.lock().unwrap()[0].len(), 10);
}

#[tokio::test]
async fn probe_reports_each_step() {
    let rx = Receiver::new(Duration::ZERO);
    let port = free_port();
    let (_stop, _h) = rx.start_input("", port, Duration::ZERO).await;
    let probe = skiff_lumberjack::OUTPUT.probe.unwrap();
    let steps = probe(&node(&format!("hosts: ['127.0.0.1:{port}']")), &ctx("edge")).await;
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "dns 127.0.0.1",
            &format!("connect 127.0.0.1:{port}")[..],
            "lumberjack window/ACK round trip"
        ]
    );
    assert!(steps.iter().all(|s| s.ok), "{steps:?}");
    assert!(
        steps[2].detail.starts_with("ACK 0 for an empty window"),
        "{steps:?}"
    );
    // Nothing was indexed by the probe.
    assert!(rx.seen.lock().unwrap().is_empty());

    let dead = free_port();
    let steps = probe(&node(&format!("hosts: ['127.0.0.1:{dead}']")), &ctx("edge")).await;
    assert!(
        !steps[1].ok && steps[1].detail.contains("refused"),
        "{steps:?}"
    );
    assert_eq!(steps.len(), 2);
}
