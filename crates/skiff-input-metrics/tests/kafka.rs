//! The kafka module against a real Kafka-protocol broker: `tansu`, started by the test on a
//! free port (skiff-kafka-testkit), with a topic of two partitions, records produced by rdkafka
//! and a consumer group that committed offsets and still has its member. The events must carry
//! every field of Metricbeat's example events (corpus `kafka/{partition,consumergroup}/data.json`)
//! with the same JSON types, and plausible values (but `client.*`, which tansu does not
//! report: see below).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{closed_port, fetch, get, num};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use skiff_event::{Map, Value};
use skiff_kafka_testkit::{Outgoing, Storage, broker};

fn example(metricset: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/metricbeat-modules/kafka")
        .join(metricset)
        .join("data.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every leaf of `example` under `path` is in `event`, with the same JSON type.
fn same_shape(example: &Value, event: &Value, path: &str) {
    match example {
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{path}.{k}");
                let got = event
                    .get(k)
                    .unwrap_or_else(|| panic!("`{p}` of the example event is missing: {event}"));
                same_shape(v, got, &p);
            }
        }
        _ => assert_eq!(
            kind(example),
            kind(event),
            "`{path}`: example {example}, skiff {event}"
        ),
    }
}

/// A member of group `group` reading `topic`, once it got its partitions and committed
/// `offsets` (partition, offset). Kept alive by the caller so the group has a member.
fn group_member(addr: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("client.id", "skiff-test-member")
        .set("enable.auto.commit", "false")
        // tansu's join waits in proportion to the session timeout: keep it short.
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.assignment().unwrap().count() == 0 {
        assert!(
            Instant::now() < deadline,
            "the group never assigned partitions"
        );
        let _ = c.poll(Duration::from_millis(100));
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).unwrap();
    c
}

fn by<'a>(events: &'a [Map], metricset: &str) -> Vec<&'a Map> {
    events
        .iter()
        .filter(|e| get(e, "metricset.name") == metricset)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_and_consumergroup_from_a_live_broker() {
    let Some(b) = broker(Storage::Memory) else {
        return;
    };
    b.create_topic("metrics", 2);
    let rec = |partition, value| Outgoing {
        partition,
        key: None,
        value,
        headers: &[],
    };
    // One produce call (one record batch) per record: with three records sent as one batch,
    // tansu 0.6.0 answered ListOffsets(latest) for the partition with 1, not 3 (seen while
    // writing this test; a broker quirk, not the module's).
    for r in [rec(0, "a"), rec(0, "b"), rec(0, "c"), rec(1, "d")] {
        b.produce("metrics", &[r]);
    }
    let addr = b.addr();
    let member = {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            group_member(&addr, "metrics-group", "metrics", &[(0, 2), (1, 1)])
        })
        .await
        .unwrap()
    };
    let events = fetch(&format!(
        "module: kafka\nmetricsets: [partition, consumergroup]\nhosts: ['{addr}']\nperiod: 10s\ntimeout: 20s\ntopics: [metrics]\n"
    ))
    .await;
    for e in &events {
        assert!(e.get("error").is_none(), "{e:?}");
    }

    // partition: one event per partition (one replica each), offsets from the watermarks.
    let parts = by(&events, "partition");
    assert_eq!(parts.len(), 2, "{parts:?}");
    let ex = example("partition");
    for e in &parts {
        same_shape(&ex["kafka"], &get(e, "kafka").clone(), "kafka");
        assert_eq!(get(e, "event.dataset"), "kafka.partition");
        assert_eq!(get(e, "kafka.partition.topic.name"), "metrics");
        assert_eq!(get(e, "kafka.topic.name"), "metrics");
        assert_eq!(get(e, "kafka.partition.partition.is_leader"), true);
        assert_eq!(get(e, "kafka.partition.offset.oldest"), 0);
        let id = num(e, "kafka.partition.partition.id") as i64;
        let newest = if id == 0 { 3 } else { 1 };
        assert_eq!(
            num(e, "kafka.partition.offset.newest") as i64,
            newest,
            "{e:?}"
        );
        assert_eq!(
            get(e, "kafka.partition.topic_id"),
            &Value::from(format!("{id}-metrics"))
        );
        assert_eq!(
            get(e, "kafka.partition.broker.id"),
            get(e, "kafka.broker.id")
        );
    }

    // consumergroup: one event per committed partition, lag = newest - committed.
    let groups = by(&events, "consumergroup");
    assert_eq!(groups.len(), 2, "{groups:?}");
    let mut ex = example("consumergroup");
    // tansu 0.6.0 answers DescribeGroups with empty member details (no client id, host or
    // assignment), so `client.*` cannot come from it; the assignment reader is unit-tested
    // (modules::kafka::tests) and every other field of the example is checked here.
    ex["kafka"]["consumergroup"]
        .as_object_mut()
        .unwrap()
        .remove("client");
    for e in &groups {
        same_shape(&ex["kafka"], &get(e, "kafka").clone(), "kafka");
        assert_eq!(get(e, "kafka.consumergroup.id"), "metrics-group");
        assert_eq!(get(e, "kafka.consumergroup.topic"), "metrics");
        assert_eq!(get(e, "kafka.consumergroup.error.code"), 0);
        let p = num(e, "kafka.consumergroup.partition") as i64;
        let (offset, lag) = if p == 0 { (2, 1) } else { (1, 0) };
        assert_eq!(num(e, "kafka.consumergroup.offset") as i64, offset, "{e:?}");
        assert_eq!(
            num(e, "kafka.consumergroup.consumer_lag") as i64,
            lag,
            "{e:?}"
        );
    }
    drop(member);
}

#[tokio::test]
async fn a_down_broker_is_an_error_event() {
    let port = closed_port();
    let events = fetch(&format!(
        "module: kafka\nmetricsets: [partition]\nhosts: ['127.0.0.1:{port}']\nperiod: 10s\ntimeout: 2s\n"
    ))
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let msg = get(&events[0], "error.message").as_str().unwrap();
    assert!(msg.contains(&port.to_string()), "{msg}");
}
