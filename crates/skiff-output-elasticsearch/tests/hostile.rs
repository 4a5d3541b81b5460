//! The Elasticsearch output against a server that answers `_bulk` wrongly for a while (a
//! deliberately broken stand-in, see `common::hostile`), then the es-standin on the same port
//! (itself a stand-in written from Elasticsearch's documentation, see `standin.rs`): no wrong
//! answer counts a document as delivered, nothing panics, every document arrives exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use skiff_event::AckStream;
use skiff_metrics::{Registry, names};
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::worker::{self, RestartPolicy};
use skiff_pipeline::{Budget, FailureKind, Queue};
use tokio::net::TcpListener;

const JSON: &str = "application/json";

fn ok_json(body: String) -> Vec<u8> {
    http_response("200 OK", JSON, body.as_bytes())
}

/// Every kind of wrong answer to a `_bulk` request of `n` documents.
fn wrong_answers() -> Vec<Answer> {
    let answers: [Answer; 12] = [
        // Regression: a proxy answering for the cluster; was taken as "all delivered".
        |_| ok_json(r#"{"took":3,"errors":false,"items":[]}"#.into()),
        |_| ok_json(r#"{"errors":false}"#.into()),
        |n| {
            ok_json(format!(
                r#"{{"errors":false,"items":[{}]}}"#,
                created(n + 1)
            ))
        },
        |n| {
            ok_json(format!(
                r#"{{"errors":false,"items":[{}]}}"#,
                created(n - 1)
            ))
        },
        |n| {
            let items = created(n).replacen("create", "index", 1);
            ok_json(format!(r#"{{"errors":false,"items":[{items}]}}"#))
        },
        |n| {
            let items = created(n).replacen(r#"{"status":201}"#, "{}", 1);
            ok_json(format!(r#"{{"errors":false,"items":[{items}]}}"#))
        },
        |n| {
            let full = format!(r#"{{"errors":false,"items":[{}]}}"#, created(n));
            ok_json(full[..full.len() / 2].to_owned())
        },
        |_| {
            http_response(
                "200 OK",
                "text/html",
                b"<html><head><title>Welcome to nginx!</title></head><body>It works</body></html>",
            )
        },
        |_| http_response("200 OK", JSON, b"\x00\xff\xfe\x13\x37garbage\xc3"),
        |_| http_response("204 No Content", JSON, b""),
        // Headers promise more body than comes: the connection closes mid-response.
        |_| {
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"errors\":false,\"items\":[".to_vec()
        },
        // The connection closes without a response.
        |_| Vec::new(),
    ];
    answers.to_vec()
}

#[tokio::test]
async fn wrong_bulk_answers_never_count_as_delivered_and_the_real_server_gets_everything_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answers = wrong_answers();
    let expected = answers.len();
    let standin = tokio::spawn(hostile(listener, answers));

    let reg = Registry::new();
    let set = build(
        &format!(
            "hosts: [\"http://127.0.0.1:{port}\"]\nbulk_max_size: 50\ncompression_level: 0\ntimeout: 2s\nbackoff.init: 5ms\nbackoff.max: 20ms\n"
        ),
        &reg,
    );
    let cfg = MemoryQueueConfig {
        flush: FlushConfig {
            min_events: 50,
            timeout: skiff_config::Duration(Duration::from_millis(50)),
        },
        ..Default::default()
    };
    let q: Arc<dyn Queue> = Arc::new(MemoryQueue::new(cfg, &reg, &Budget::new(reg.clone())));
    let stream = AckStream::new();
    let total = 150u64;
    let s = shared();
    for n in 0..total {
        let mut e = event(&s, n);
        e.ack = Some(stream.token(n));
        q.push(e).await.unwrap();
    }
    q.close();
    let mut tasks = tokio::task::JoinSet::new();
    worker::spawn_supervised(&mut tasks, q, set, None, &reg, RestartPolicy::default());

    let served = tokio::time::timeout(Duration::from_secs(60), standin).await;
    // Checked first: a client that took a wrong answer for delivery stops retrying, and the
    // stand-in then waits in vain.
    let acked = reg.counter(&names::OUTPUT_EVENTS_ACKED);
    assert_eq!(
        acked.get(),
        0,
        "a wrong answer counted documents as delivered"
    );
    let served = served
        .expect("the client stopped retrying against the broken server")
        .unwrap();
    assert_eq!(served, expected);
    assert_eq!(stream.progress().acked, 0);

    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start_at(port, dir.path(), &[]);
    let joined = tokio::time::timeout(Duration::from_secs(60), worker::join_all(&mut tasks))
        .await
        .expect("the worker did not deliver everything within 60s of the stand-in starting");
    assert!(joined.is_ok(), "{joined:?}");
    assert_eq!(stream.progress().acked, total);
    assert_eq!(acked.get(), total);
    assert_eq!(
        numbers(&es.docs("filebeat-8.15.0")),
        (0..total).collect::<Vec<_>>(),
        "every document exactly once"
    );
    let kind = |k| worker::error_count(&reg, k);
    assert_eq!(kind(FailureKind::Panic), 0);
    assert!(
        kind(FailureKind::Protocol) >= 10,
        "protocol errors: {}",
        kind(FailureKind::Protocol)
    );
}
