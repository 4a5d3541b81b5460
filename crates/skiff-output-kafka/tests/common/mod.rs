//! The output's own test helpers (events to send, building the output from YAML); the `tansu`
//! broker and the clients that read back what arrived are skiff-kafka-testkit's, shared with the
//! kafka input and the kafka metrics module.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;

use skiff_event::{Event, Map, Value};
use skiff_metrics::Registry;
use skiff_pipeline::{BuildContext, OutputSet};

pub use skiff_kafka_testkit::*;

pub fn ctx(reg: &Registry) -> BuildContext {
    BuildContext::standalone("t", "9.9.9", reg)
}

pub fn build(yaml: &str) -> OutputSet {
    let node = skiff_config::parse_str(yaml, None).unwrap();
    let reg = Registry::new();
    (skiff_output_kafka::PLUGIN.build)(&node, &ctx(&reg)).unwrap()
}

/// `n` events of about `size` bytes each, numbered in `n` and `log.offset`.
pub fn events(n: usize, size: usize) -> Vec<Event> {
    let mut m = Map::new();
    m.insert("host".into(), serde_json::json!({"name": "web-1"}));
    m.insert("@metadata".into(), serde_json::json!({"beat": "filebeat"}));
    let sh = Arc::new(m);
    (0..n)
        .map(|i| {
            let mut msg = format!("line {i} \"q\" ü ");
            while msg.len() < size {
                msg.push_str("abcdefghij");
            }
            msg.truncate(size);
            let mut e = Event::new(sh.clone(), msg);
            e.offset = Some(i as u64);
            e.insert("n", Value::from(i));
            e.insert(
                "fields.app",
                Value::from(if i % 2 == 0 { "web" } else { "db" }),
            );
            e
        })
        .collect()
}

/// Every event 0..count exactly once, with its fields intact.
pub fn assert_exactly_once(recs: &[Record], sent: &[Event]) {
    let mut seen = vec![0u32; sent.len()];
    for r in recs {
        let n = r.value["n"].as_u64().unwrap() as usize;
        let e = &sent[n];
        assert_eq!(r.value["message"].as_str(), e.message.as_deref());
        assert_eq!(r.value["log"]["offset"], n as u64);
        assert_eq!(r.value["host"]["name"], "web-1");
        assert_eq!(r.value["@metadata"]["beat"], "filebeat");
        seen[n] += 1;
    }
    let missing: Vec<usize> = (0..sent.len()).filter(|&i| seen[i] == 0).collect();
    let dups: Vec<usize> = (0..sent.len()).filter(|&i| seen[i] > 1).collect();
    assert!(
        missing.is_empty(),
        "{} missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        dups.is_empty(),
        "{} duplicated, e.g. {:?}",
        dups.len(),
        &dups[..dups.len().min(10)]
    );
}
