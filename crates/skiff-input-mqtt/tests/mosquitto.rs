//! The mqtt input against the Mosquitto broker running on 127.0.0.1:1883, fed by
//! `mosquitto_pub`. The pipeline harness is the network inputs' (same real queue and worker).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../skiff-input-net/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use skiff_metrics::names;

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        skiff_event::Timestamp::now().0
    )
}

fn config(topic: &str, client: &str) -> String {
    format!(
        "hosts: ['tcp://127.0.0.1:1883']\ntopics: ['{topic}']\nqos: 1\nclient_id: {client}\nclean_session: false"
    )
}

async fn publish(topic: &str, msgs: &[&str]) {
    need("mosquitto_pub");
    for m in msgs {
        sh(&format!(
            "mosquitto_pub -h 127.0.0.1 -p 1883 -q 1 -t '{topic}' -m '{m}'"
        ))
        .await;
    }
}

async fn received(p: &Pipeline, n: u64) {
    for _ in 0..1000 {
        if p.counter(&names::INPUT_EVENTS, &[("input", "in")]) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the input never received {n} messages");
}

async fn subscribed(p: &Pipeline, topic: &str) {
    // The subscription is in place once a probe message comes through.
    for _ in 0..50 {
        publish(topic, &["probe"]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if p.counter(&names::INPUT_EVENTS, &[("input", "in")]) > 0 {
            return;
        }
    }
    panic!("never subscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_with_their_mqtt_fields() {
    let topic = unique("skiff/test/fields");
    let p = Pipeline::new(1024, true);
    let _stop = p.start(
        &skiff_input_mqtt::PLUGIN,
        &format!("hosts: ['tcp://127.0.0.1:1883']\ntopics: ['{topic}/#']\nqos: 1"),
    );
    subscribed(&p, &format!("{topic}/a")).await;
    publish(&format!("{topic}/b"), &["hello broker"]).await;
    let seen = p.wait_for(2).await;
    let ev = seen
        .iter()
        .find(|v| v["message"] == "hello broker")
        .unwrap();
    assert_eq!(ev["mqtt"]["topic"], format!("{topic}/b"));
    assert_eq!(ev["mqtt"]["qos"], 1);
    assert_eq!(ev["mqtt"]["retained"], false);
    assert!(ev["mqtt"]["message_id"].as_u64().unwrap() > 0);
    assert_eq!(ev["input"]["type"], "mqtt");
}

/// QoS 1: what the output has not acknowledged is not acknowledged to the broker, so a
/// restart gets it again; what it acknowledged is not delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_is_acknowledged_to_the_broker_only_after_the_output() {
    let topic = unique("skiff/test/ack");
    let client = unique("skiff-test-client");
    // 1. Output down: the messages reach the input but are not delivered.
    let p = Pipeline::new(1024, false);
    let stop = p.start(&skiff_input_mqtt::PLUGIN, &config(&topic, &client));
    subscribed(&p, &topic).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probes = p.counter(&names::INPUT_EVENTS, &[("input", "in")]) as usize;
    publish(&topic, &["m1", "m2", "m3"]).await;
    received(&p, probes as u64 + 3).await;
    assert!(p.seen.lock().unwrap().is_empty());
    stop.cancel();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // 2. Same session, output up: the broker delivers them again, and they are acknowledged.
    let p = Pipeline::new(1024, true);
    let stop = p.start(&skiff_input_mqtt::PLUGIN, &config(&topic, &client));
    let seen = p.wait_for(probes + 3).await;
    let mut msgs: Vec<&str> = seen
        .iter()
        .map(|v| v["message"].as_str().unwrap())
        .filter(|m| *m != "probe")
        .collect();
    msgs.sort_unstable();
    assert_eq!(msgs, ["m1", "m2", "m3"]);
    assert!(
        seen.iter().all(|v| v["mqtt"]["duplicate"] == true),
        "{seen:?}"
    );
    // Let the acks reach the broker before leaving.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // 3. Same session again: nothing is left to deliver.
    let p = Pipeline::new(1024, true);
    let _stop = p.start(&skiff_input_mqtt::PLUGIN, &config(&topic, &client));
    publish(&topic, &["m4"]).await;
    let seen = p.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let msgs: Vec<String> = p.messages();
    assert_eq!(msgs, ["m4"], "{seen:?}");
}
