//! An event counts as delivered only on its own successful delivery report: with no broker,
//! or with a deliberately broken stand-in that answers the Kafka protocol with garbage, no
//! report succeeds and the whole batch fails (classed, for the metrics), nothing delivered.
//! These run without `tansu`: the point is that nothing but a real broker's report counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use skiff_pipeline::FailureKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn send_to(port: u16) -> Result<skiff_pipeline::Outcome, skiff_pipeline::Failure> {
    let mut out = build(&format!(
        "hosts: ['127.0.0.1:{port}']\ntopic: t\ntimeout: 1s"
    ));
    let evs = events(5, 50);
    let r = tokio::time::timeout(Duration::from_secs(60), out.clients[0].send(&evs))
        .await
        .expect("send did not return within 60s with a 1s message timeout");
    out.clients[0].close().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_broker_no_event_is_delivered() {
    let port = free_port();
    let e = send_to(port)
        .await
        .expect_err("no broker, yet events were delivered");
    assert_eq!(e.kind, FailureKind::Timeout, "{e}");
}

/// **A deliberately broken stand-in, not a Kafka broker**: answers every request with bytes
/// that are not a Kafka response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_answering_broker_delivers_nothing() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while s.read(&mut buf).await.is_ok_and(|n| n > 0) {
                    // A length prefix claiming 16 bytes, then garbage (and a multi-byte char).
                    let _ = s
                        .write_all(b"\0\0\0\x10\xff\xfe\xfd\xfcgarbage\xc3\xa9!!")
                        .await;
                }
            });
        }
    });
    let r = send_to(port).await;
    server.abort();
    let e = r.expect_err("a broker answering garbage, yet events were delivered");
    assert_ne!(e.kind, FailureKind::Panic);
}
