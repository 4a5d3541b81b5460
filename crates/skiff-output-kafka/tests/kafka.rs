//! The Kafka output against a real Kafka-protocol broker (`tansu`) started by each test, read
//! back with a librdkafka consumer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Storage, assert_exactly_once, broker, build, events};
use skiff_event::{AckStream, Event};
use skiff_metrics::Registry;
use skiff_output_kafka::partition::{fnv1a, hash_to_partition};
use skiff_pipeline::dead_letter::DeadLetter;
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{Budget, FailureKind, OutputSet, Queue};

async fn send_all(out: &mut OutputSet, evs: &[Event]) {
    for chunk in evs.chunks(500) {
        let o = out.clients[0].send(chunk).await.unwrap();
        assert!(o.retry.is_empty() && o.rejected.is_empty(), "{o:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_exactly_once_with_keys_on_their_partitions() {
    let Some(b) = broker(Storage::Memory) else {
        return;
    };
    b.create_topic("logs", 3);
    let mut out = build(&format!(
        "hosts: ['{}']\ntopic: logs\nkey: '%{{[fields.app]}}'",
        b.addr()
    ));
    let evs = events(2000, 200);
    send_all(&mut out, &evs).await;
    let recs = b.consume("logs", 3, evs.len());
    assert_exactly_once(&recs, &evs);
    for r in &recs {
        let key = r.key.as_deref().unwrap();
        assert_eq!(key, r.value["fields"]["app"]);
        // Beats (Sarama) placement: abs(int32(fnv1a(key)) % partitions).
        assert_eq!(r.partition, hash_to_partition(fnv1a(&[key.as_bytes()]), 3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_round_trips() {
    let Some(b) = broker(Storage::Memory) else {
        return;
    };
    for codec in ["lz4", "zstd", "snappy", "gzip", "none"] {
        let topic = format!("c-{codec}");
        b.create_topic(&topic, 2);
        let mut out = build(&format!(
            "hosts: ['{}']\ntopic: {topic}\ncompression: {codec}\npartition.round_robin: {{}}",
            b.addr()
        ));
        let evs = events(600, 300);
        send_all(&mut out, &evs).await;
        let recs = b.consume(&topic, 2, evs.len());
        assert_exactly_once(&recs, &evs);
        assert!(
            recs.iter().any(|r| r.partition == 1),
            "round_robin used one partition"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_rules_route_events() {
    let Some(b) = broker(Storage::Memory) else {
        return;
    };
    b.create_topic("web", 1);
    b.create_topic("app-db", 1);
    let mut out = build(&format!(
        r#"
hosts: ['{}']
topic: "app-%{{[fields.app]}}"
topics:
  - topic: web
    when.equals: {{ fields.app: web }}
"#,
        b.addr()
    ));
    let evs = events(100, 100);
    send_all(&mut out, &evs).await;
    let web = b.consume("web", 1, 50);
    let db = b.consume("app-db", 1, 50);
    assert_eq!(web.len(), 50);
    assert_eq!(db.len(), 50);
    assert!(web.iter().all(|r| r.value["fields"]["app"] == "web"));
    assert!(db.iter().all(|r| r.value["fields"]["app"] == "db"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_events_are_dead_lettered_with_the_reason() {
    let Some(b) = broker(Storage::Memory) else {
        return;
    };
    b.create_topic("logs", 1);
    let out = build(&format!(
        "hosts: ['{}']\ntopic: logs\nmax_message_bytes: 2000",
        b.addr()
    ));
    let reg = Registry::new();
    let q = queue(&reg);
    let dir = tempfile::tempdir().unwrap();
    let dl = Arc::new(DeadLetter::new(dir.path(), 1 << 20, &reg));
    let running = start(q.clone(), out, Some(dl), &reg).await;
    let stream = AckStream::new();
    let mut evs = events(20, 100);
    evs[7].message = Some("x".repeat(5000));
    for mut e in evs.iter().map(Event::clone_without_ack) {
        e.ack = Some(stream.token(e.offset.unwrap()));
        q.push(e).await.unwrap();
    }
    running.drain().await;
    assert_eq!(stream.progress().acked, 20);
    let recs = b.consume("logs", 1, 19);
    assert_eq!(recs.len(), 19);
    assert!(recs.iter().all(|r| r.value["n"] != 7));
    let dead = std::fs::read_to_string(dir.path().join("dead_letter.ndjson")).unwrap();
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(
        dead.contains("max_message_bytes") && dead.contains("xxxxx"),
        "{dead}"
    );
}

/// Starts the output's workers over `q` (no input: the tests push into the queue).
async fn start(
    q: Arc<dyn Queue>,
    out: OutputSet,
    dead_letter: Option<Arc<DeadLetter>>,
    reg: &Registry,
) -> skiff_topology::Running {
    let mut b = skiff_topology::Topology::builder(skiff_pipeline::BuildContext::standalone(
        "t", "0.0.0", reg,
    ))
    .queue(q, false)
    .output("kafka", out);
    if let Some(dl) = dead_letter {
        b = b.dead_letter(dl);
    }
    b.build().start().await
}

fn queue(reg: &Registry) -> Arc<dyn Queue> {
    let cfg = MemoryQueueConfig {
        flush: FlushConfig {
            min_events: 1,
            timeout: skiff_config::Duration(Duration::ZERO),
        },
        ..Default::default()
    };
    Arc::new(MemoryQueue::new(cfg, reg, &Budget::new(reg.clone())))
}

/// Waits until the output has delivered `n` events (the worker's acked counter: with the disk
/// queue, inputs' tokens are acked once events are on disk, not when delivered).
async fn wait_delivered(reg: &Registry, n: u64) {
    let acked = reg.counter(&skiff_metrics::names::OUTPUT_EVENTS_ACKED);
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.get() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} delivered",
            acked.get()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What this proves: with a broker that keeps its data (tansu's SQLite engine), every event
/// the output was told was stored is still there after the broker is killed, and every event
/// queued while it was down is delivered once it is back: nothing is lost, end to end through
/// the queue and the worker's retries. (Duplicates are allowed: at-least-once.)
async fn broker_killed_mid_stream(disk: bool) {
    let Some(mut b) = broker(Storage::Sqlite) else {
        return;
    };
    b.create_topic("logs", 2);
    let out = build(&format!(
        "hosts: ['{}']\ntopic: logs\ncompression: lz4\ntimeout: 3s\nbroker_timeout: 2s\nbulk_max_size: 200\nbackoff: {{init: 50ms, max: 200ms}}",
        b.addr()
    ));
    let reg = Registry::new();
    let data = tempfile::tempdir().unwrap();
    let q: Arc<dyn Queue> = if disk {
        Arc::new(
            skiff_pipeline::queue::disk::DiskQueue::open(
                Default::default(),
                data.path(),
                &reg,
                &Budget::new(reg.clone()),
            )
            .unwrap(),
        )
    } else {
        queue(&reg)
    };
    let running = start(q.clone(), out, None, &reg).await;
    let stream = AckStream::new();
    let evs = events(3000, 256);
    let mut it = evs.iter().map(Event::clone_without_ack);
    let mut push = async |n: usize| {
        for mut e in it.by_ref().take(n) {
            e.ack = Some(stream.token(e.offset.unwrap()));
            q.push(e).await.unwrap();
        }
    };
    push(1000).await;
    wait_delivered(&reg, 1000).await;
    b.stop();
    push(1000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked = reg.counter(&skiff_metrics::names::OUTPUT_EVENTS_ACKED);
    assert_eq!(acked.get(), 1000, "delivered while the broker was down");
    b.spawn();
    push(1000).await;
    wait_delivered(&reg, 3000).await;
    running.drain().await;
    assert_eq!(stream.progress().acked, 3000);
    let recs = b.consume("logs", 2, evs.len());
    let mut seen = vec![0u32; evs.len()];
    for r in &recs {
        seen[r.value["n"].as_u64().unwrap() as usize] += 1;
    }
    let missing: Vec<usize> = (0..evs.len()).filter(|&i| seen[i] == 0).collect();
    assert!(
        missing.is_empty(),
        "{} events lost, e.g. {:?}; broker log:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        b.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_mid_stream_and_restarted_loses_nothing_memory_queue() {
    broker_killed_mid_stream(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_mid_stream_and_restarted_loses_nothing_disk_queue() {
    broker_killed_mid_stream(true).await;
}

/// SCRAM-SHA-256 through librdkafka's built-in SASL: the right password delivers, a wrong one
/// delivers nothing (the events are kept for retry, not dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_scram_authenticates() {
    // Users are created before authentication is switched on (the SQLite store keeps them).
    let Some(mut b) = broker(Storage::Sqlite) else {
        return;
    };
    b.create_user("skiff", "s3cret", "scram256");
    b.create_topic("logs", 1);
    b.stop();
    b.extra = vec!["--authentication".into()];
    b.spawn();
    let mut out = build(&format!(
        "hosts: ['{}']\ntopic: logs\nusername: skiff\npassword: s3cret\nsasl.mechanism: SCRAM-SHA-256",
        b.addr()
    ));
    let evs = events(50, 100);
    send_all(&mut out, &evs).await;
    let auth = [
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanisms", "SCRAM-SHA-256"),
        ("sasl.username", "skiff"),
        ("sasl.password", "s3cret"),
    ];
    assert_exactly_once(&b.consume_with("logs", 1, 50, &auth), &evs);
    let mut wrong = build(&format!(
        "hosts: ['{}']\ntopic: logs\nusername: skiff\npassword: nope\nsasl.mechanism: SCRAM-SHA-256\ntimeout: 2s",
        b.addr()
    ));
    // No event went through: the whole batch fails (the worker retries all of it). librdkafka
    // reports refused SCRAM credentials as messages timing out, not as an authentication error.
    let f = wrong.clients[0].send(&evs[..5]).await.unwrap_err();
    assert!(
        matches!(f.kind, FailureKind::Timeout | FailureKind::Auth),
        "{f:?}"
    );
    assert_eq!(b.consume_with("logs", 1, 50, &auth).len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_brokers_and_partitions() {
    let Some(b) = broker(Storage::Memory) else {
        return;
    };
    b.create_topic("logs", 3);
    let node =
        skiff_config::parse_str(&format!("hosts: ['{}']\ntopic: logs", b.addr()), None).unwrap();
    let reg = Registry::new();
    let steps = (skiff_output_kafka::PLUGIN.probe.unwrap())(&node, &common::ctx(&reg)).await;
    assert!(steps.iter().all(|s| s.ok), "{steps:#?}");
    let topic = steps.iter().find(|s| s.name == "topic logs").unwrap();
    assert!(topic.detail.starts_with("3 partitions"), "{steps:#?}");
    assert!(
        steps
            .iter()
            .any(|s| s.name == "metadata" && s.detail.contains(&b.addr()[10..])),
        "{steps:#?}"
    );
    // A port nobody listens on: the connect step fails with a hint.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let node = skiff_config::parse_str(&format!("hosts: ['127.0.0.1:{port}']\ntopic: logs"), None)
        .unwrap();
    let steps = (skiff_output_kafka::PLUGIN.probe.unwrap())(&node, &common::ctx(&reg)).await;
    let c = steps
        .iter()
        .find(|s| s.name.starts_with("connect"))
        .unwrap();
    assert!(!c.ok && c.hint.is_some(), "{steps:#?}");
}

#[test]
fn unknown_keys_are_config_errors() {
    let node = skiff_config::parse_str("hosts: ['k:1']\ntopic: t\ncompresion: lz4", None).unwrap();
    let err = (skiff_output_kafka::PLUGIN.build)(&node, &common::ctx(&Registry::new()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("compresion"), "{err}");
}
