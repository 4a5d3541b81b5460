//! The Redis output against a server that answers wrongly for a while (a deliberately broken
//! stand-in, see `common::hostile`), then a real `redis-server` on the same port: no wrong
//! reply counts an event as delivered, nothing panics, and every event arrives exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Answer, Server, hostile};
use skiff_config::Duration as ConfDuration;
use skiff_event::{AckStream, Event, Map, Value};
use skiff_metrics::{Registry, names};
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::worker::{self, RestartPolicy};
use skiff_pipeline::{Budget, BuildContext, FailureKind, Queue};
use tokio::net::TcpListener;

/// Every kind of wrong answer to a batch of two pipelined RPUSHes of 20 events each.
fn wrong_answers() -> Vec<(&'static str, Answer)> {
    vec![
        ("bulk string instead of integers", Answer::Reply(b"$5\r\nhello\r\n$5\r\nhello\r\n")),
        ("status instead of integers", Answer::Reply(b"+OK\r\n+OK\r\n")),
        ("list lengths smaller than what was pushed", Answer::Reply(b":1\r\n:1\r\n")),
        ("negative integers", Answer::Reply(b":-5\r\n:-5\r\n")),
        ("negative array length (regression: counted as delivered)", Answer::Reply(b"*-7\r\n*-7\r\n")),
        ("nil array", Answer::Reply(b"*-1\r\n*-1\r\n")),
        ("one reply for two commands, then nothing", Answer::Reply(b":100\r\n")),
        ("a right reply then a wrong type", Answer::Reply(b":100\r\n+OK\r\n")),
        ("more replies than commands", Answer::Reply(b":100\r\n:100\r\n:100\r\n")),
        ("multi-byte first character (regression: panicked)", Answer::Reply("é…\r\n".as_bytes())),
        ("binary garbage", Answer::Reply(b"\x00\xff\x13\x37\xc3\r\n\x80\x81")),
        ("truncated bulk reply", Answer::ReplyThenClose(b"$10\r\nabc")),
        ("truncated integer", Answer::ReplyThenClose(b":10")),
        ("huge bulk length", Answer::Reply(b"$99999999999\r\n")),
        ("connection closed without a reply", Answer::Close),
        ("no answer at all", Answer::Silent),
        ("an HTML page", Answer::ReplyThenClose(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><body>It works!</body></html>")),
    ]
}

fn shared() -> Arc<Map> {
    let mut m = Map::new();
    m.insert(
        "@metadata".into(),
        serde_json::json!({"beat": "filebeat", "version": "9.9.9"}),
    );
    Arc::new(m)
}

#[tokio::test]
async fn wrong_replies_never_count_as_delivered_and_the_real_server_gets_everything_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answers = wrong_answers();
    let expected_connections = answers.len();
    let standin = tokio::spawn(hostile(listener, answers.iter().map(|(_, a)| *a).collect()));

    let reg = Registry::new();
    let node = skiff_config::parse_str(
        &format!(
            "hosts: ['127.0.0.1:{port}']\nkey: 'k-%{{[fields.app]}}'\nbulk_max_size: 40\ntimeout: 500ms\nbackoff: {{init: 5ms, max: 20ms}}"
        ),
        None,
    )
    .unwrap();
    let out =
        (skiff_output_redis::PLUGIN.build)(&node, &BuildContext::standalone("t", "9.9.9", &reg))
            .unwrap();
    let cfg = MemoryQueueConfig {
        flush: FlushConfig {
            min_events: 40,
            timeout: ConfDuration(Duration::from_millis(50)),
        },
        ..Default::default()
    };
    let q: Arc<dyn Queue> = Arc::new(MemoryQueue::new(cfg, &reg, &Budget::new(reg.clone())));
    let stream = AckStream::new();
    let total = 120u64;
    let sh = shared();
    for i in 0..total {
        let mut e = Event::new(sh.clone(), format!("hostile {i}"));
        e.offset = Some(i);
        e.insert("n", Value::from(i));
        e.insert(
            "fields.app",
            Value::from(if i % 2 == 0 { "a" } else { "b" }),
        );
        e.ack = Some(stream.token(i));
        q.push(e).await.unwrap();
    }
    q.close();
    let mut tasks = tokio::task::JoinSet::new();
    worker::spawn_supervised(&mut tasks, q, out, None, &reg, RestartPolicy::default());

    let served = tokio::time::timeout(Duration::from_secs(60), standin).await;
    // Checked first: a client that took a wrong reply for delivery stops retrying, and the
    // stand-in then waits in vain.
    let acked = reg.counter(&names::OUTPUT_EVENTS_ACKED);
    assert_eq!(acked.get(), 0, "a wrong reply counted events as delivered");
    let served = served
        .expect("the client stopped retrying against the broken server")
        .unwrap();
    assert_eq!(served, expected_connections);
    assert_eq!(stream.progress().acked, 0);

    // The real server takes over the port.
    let srv = Server::start_on(port, &[]);
    let joined = tokio::time::timeout(Duration::from_secs(60), worker::join_all(&mut tasks))
        .await
        .expect("the worker did not deliver everything within 60s of redis-server starting");
    assert!(joined.is_ok(), "{joined:?}");
    assert_eq!(stream.progress().acked, total);
    assert_eq!(acked.get(), total);

    let mut seen = BTreeMap::new();
    for key in ["k-a", "k-b"] {
        for d in srv.lrange(key, None).await {
            *seen.entry(d["n"].as_u64().unwrap()).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len() as u64, total, "events missing in redis");
    assert!(seen.values().all(|c| *c == 1), "duplicates: {seen:?}");

    let kind = |k| worker::error_count(&reg, k);
    assert_eq!(kind(FailureKind::Panic), 0);
    // Everything but the closed and the silent connections is a protocol violation.
    assert!(
        kind(FailureKind::Protocol) >= 12,
        "protocol errors: {}",
        kind(FailureKind::Protocol)
    );
    assert!(
        kind(FailureKind::Timeout) >= 2,
        "timeouts: {}",
        kind(FailureKind::Timeout)
    );
}
