//! The kafka input against a real Kafka-protocol broker: `tansu`, started by the test on a free
//! port (skiff-kafka-testkit), fed by a real rdkafka producer. The pipeline is the network
//! inputs' harness: a real memory queue and output worker, and a collecting output that can be
//! held down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../skiff-input-net/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Pipeline;
use skiff_kafka_testkit::{Broker, Outgoing, Storage, broker};
use skiff_metrics::names;

fn config(b: &Broker, topic: &str, group: &str, extra: &str) -> String {
    format!(
        "hosts: ['{}']\ntopics: ['{topic}']\ngroup_id: {group}\nwait_close: 1s\n{extra}",
        b.addr()
    )
}

fn plain(partition: i32, value: &str) -> Outgoing<'_> {
    Outgoing {
        partition,
        key: None,
        value,
        headers: &[],
    }
}

/// Runs a blocking client call (rdkafka's) off the test's async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn committed(
    b: &std::sync::Arc<Broker>,
    group: &str,
    topic: &str,
    n: i32,
) -> Vec<Option<i64>> {
    let (b, g, t) = (b.clone(), group.to_owned(), topic.to_owned());
    blocking(move || b.committed(&g, &t, n)).await
}

/// Waits (60 s liveness bound) until the group's committed offsets are `want`.
async fn committed_becomes(
    b: &std::sync::Arc<Broker>,
    group: &str,
    topic: &str,
    want: &[Option<i64>],
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = committed(b, group, topic, want.len() as i32).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "committed {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn read_by_input(p: &Pipeline, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.counter(&names::INPUT_EVENTS, &[("input", "in")]) < n {
        assert!(
            Instant::now() < deadline,
            "the input never read {n} records"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start_broker() -> Option<std::sync::Arc<Broker>> {
    broker(Storage::Memory).map(std::sync::Arc::new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_become_events_with_filebeats_kafka_fields() {
    let Some(b) = start_broker() else { return };
    b.create_topic("logs", 1);
    let headers = [("trace", "t-1"), ("env", "prod")];
    b.produce(
        "logs",
        &[
            Outgoing {
                partition: 0,
                key: Some("k1"),
                value: "first line",
                headers: &headers,
            },
            plain(0, "second line"),
        ],
    );
    let p = Pipeline::new(1024, true);
    let _stop = p.start(
        &skiff_input_kafka::PLUGIN,
        &config(&b, "logs", "fields", ""),
    );
    let seen = p.wait_for(2).await;
    let first = seen.iter().find(|v| v["message"] == "first line").unwrap();
    assert_eq!(first["kafka"]["topic"], "logs");
    assert_eq!(first["kafka"]["partition"], 0);
    assert_eq!(first["kafka"]["offset"], 0);
    assert_eq!(first["kafka"]["key"], "k1");
    assert_eq!(
        first["kafka"]["headers"],
        serde_json::json!(["trace: t-1", "env: prod"])
    );
    assert_eq!(first["input"]["type"], "kafka");
    assert!(first.get("log").is_none(), "{first}");
    let second = seen.iter().find(|v| v["message"] == "second line").unwrap();
    assert_eq!(second["kafka"]["offset"], 1);
    assert_eq!(second["kafka"]["key"], "");
    assert!(second["kafka"].get("headers").is_none());
    // @timestamp is the record's time: the producer stamped it moments ago.
    let ts = skiff_event::Timestamp::parse(second["@timestamp"].as_str().unwrap()).unwrap();
    let age = skiff_event::Timestamp::now().0 - ts.0;
    assert!((0..600_000_000_000).contains(&age), "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_parser_and_expanded_lists() {
    let Some(b) = start_broker() else { return };
    b.create_topic("json", 1);
    b.create_topic("bundles", 1);
    b.produce("json", &[plain(0, r#"{"level":"warn","msg":"disk"}"#)]);
    b.produce(
        "bundles",
        &[plain(0, r#"{"records":[{"a":1},{"a":2},{"a":3}]}"#)],
    );
    let p = Pipeline::new(1024, true);
    let _a = p.start(
        &skiff_input_kafka::PLUGIN,
        &config(&b, "json", "ndjson", "parsers: [{ndjson: {target: ''}}]"),
    );
    let seen = p.wait_for(1).await;
    assert_eq!(seen[0]["level"], "warn", "{}", seen[0]);
    assert_eq!(seen[0]["msg"], "disk");
    assert_eq!(seen[0]["kafka"]["topic"], "json");

    let q = Pipeline::new(1024, true);
    let _b = q.start(
        &skiff_input_kafka::PLUGIN,
        &config(
            &b,
            "bundles",
            "expand",
            "expand_event_list_from_field: records",
        ),
    );
    let seen = q.wait_for(3).await;
    let mut msgs: Vec<&str> = seen
        .iter()
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    msgs.sort_unstable();
    assert_eq!(msgs, [r#"{"a":1}"#, r#"{"a":2}"#, r#"{"a":3}"#]);
    assert!(seen.iter().all(|v| v["kafka"]["offset"] == 0));
    // One record, three events: its offset is committed once all three are delivered.
    committed_becomes(&b, "expand", "bundles", &[Some(1)]).await;
}

/// Records read while the output is down are not committed (auto-commit runs every second:
/// wait through several); once the output is back they are delivered, and only then committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_committed_only_after_the_output_acknowledged() {
    let Some(b) = start_broker() else { return };
    b.create_topic("down", 2);
    b.produce(
        "down",
        &[
            plain(0, "a0"),
            plain(0, "a1"),
            plain(0, "a2"),
            plain(1, "b0"),
            plain(1, "b1"),
        ],
    );
    let p = Pipeline::new(1024, false);
    let _stop = p.start(
        &skiff_input_kafka::PLUGIN,
        &config(&b, "down", "g-down", ""),
    );
    read_by_input(&p, 5).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(p.seen.lock().unwrap().is_empty());
    assert_eq!(committed(&b, "g-down", "down", 2).await, [None, None]);
    // The output comes back.
    p.gate.send(true).unwrap();
    let seen = p.wait_for(5).await;
    assert_eq!(seen.len(), 5);
    committed_becomes(&b, "g-down", "down", &[Some(3), Some(2)]).await;
}

/// What the output never acknowledged is read again after a restart, and nothing that was
/// acknowledged and committed comes twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reads_again_what_was_never_acknowledged() {
    let Some(b) = start_broker() else { return };
    b.create_topic("restart", 2);
    b.produce(
        "restart",
        &[
            plain(0, "m0"),
            plain(0, "m1"),
            plain(1, "m2"),
            plain(1, "m3"),
            plain(1, "m4"),
        ],
    );
    // 1. Output down: everything is read, nothing delivered, the input stops.
    let p1 = Pipeline::new(1024, false);
    let stop = p1.start(
        &skiff_input_kafka::PLUGIN,
        &config(&b, "restart", "g-restart", ""),
    );
    read_by_input(&p1, 5).await;
    stop.cancel();
    // wait_close (1s) then the final commit and the group leave.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(committed(&b, "g-restart", "restart", 2).await, [None, None]);
    // 2. "Restart" with the output up: all five come, and are committed.
    let p2 = Pipeline::new(1024, true);
    let stop = p2.start(
        &skiff_input_kafka::PLUGIN,
        &config(&b, "restart", "g-restart", ""),
    );
    let seen = p2.wait_for(5).await;
    let mut msgs: Vec<&str> = seen
        .iter()
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    msgs.sort_unstable();
    assert_eq!(msgs, ["m0", "m1", "m2", "m3", "m4"]);
    committed_becomes(&b, "g-restart", "restart", &[Some(2), Some(3)]).await;
    stop.cancel();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // 3. Again: only the new record comes.
    b.produce("restart", &[plain(0, "m5")]);
    let p3 = Pipeline::new(1024, true);
    let _stop = p3.start(
        &skiff_input_kafka::PLUGIN,
        &config(&b, "restart", "g-restart", ""),
    );
    p3.wait_for(1).await;
    committed_becomes(&b, "g-restart", "restart", &[Some(3), Some(3)]).await;
    assert_eq!(p3.messages(), ["m5"]);
}

#[test]
fn config_problems_are_reported_together() {
    let node = skiff_config::parse_str(
        "hosts: [nohost]\ntopics: []\nparsers: [{nope: {}}]\ninitial_offset: latest",
        None,
    )
    .unwrap();
    let reg = skiff_metrics::Registry::new();
    let ctx = skiff_pipeline::BuildContext::standalone("t", "9.9.9", &reg);
    let common = skiff_pipeline::InputCommon {
        kind: "kafka".into(),
        ..Default::default()
    };
    let e = (skiff_input_kafka::PLUGIN.build)(&node, &common, &ctx)
        .err()
        .unwrap()
        .to_string();
    for k in [
        "hosts.0",
        "topics",
        "group_id",
        "initial_offset",
        "unknown parser",
    ] {
        assert!(e.contains(k), "{k} not in {e}");
    }
}
