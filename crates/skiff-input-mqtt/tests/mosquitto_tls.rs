//! The mqtt input over TLS: a Mosquitto broker started by each test on a free port with a TLS
//! listener (certificates made by rcgen), fed by `mosquitto_pub` over TLS. One broker also
//! requires a client certificate. Needs mosquitto and mosquitto_pub (scripts/ensure-test-deps);
//! a missing one fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../skiff-input-net/tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use skiff_metrics::names;

/// A broker stopped when the test ends.
struct Broker {
    child: Child,
    port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn broker(
    dir: &std::path::Path,
    ca: &str,
    cert: &str,
    key: &str,
    client_cert: bool,
) -> Broker {
    need("mosquitto");
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\nallow_anonymous true\nlistener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate {client_cert}\n"
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_tcp(port).await;
    Broker { child, port }
}

/// Publishes over TLS until the input has received something (the subscription is then in
/// place), then publishes `msg`.
async fn publish_when_subscribed(p: &Pipeline, b: &Broker, tls_args: &str, topic: &str, msg: &str) {
    need("mosquitto_pub");
    let publish = |m: &str| {
        format!(
            "mosquitto_pub -h 127.0.0.1 -p {} {tls_args} -q 1 -t '{topic}' -m '{m}'",
            b.port
        )
    };
    let mut subscribed = false;
    for _ in 0..100 {
        sh(&publish("probe")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if p.counter(&names::INPUT_EVENTS, &[("input", "in")]) > 0 {
            subscribed = true;
            break;
        }
    }
    assert!(subscribed, "the input never received a message over TLS");
    sh(&publish(msg)).await;
}

/// `ssl://` host and `ssl.certificate_authorities`: the broker's certificate is verified
/// against the test's CA, for the name in `hosts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certs(dir.path());
    let b = broker(dir.path(), &ca, &cert, &key, false).await;
    let p = Pipeline::new(1024, true);
    let _stop = p.start(
        &skiff_input_mqtt::PLUGIN,
        &format!(
            "hosts: ['ssl://127.0.0.1:{}']\ntopics: ['skiff/tls/#']\nqos: 1\nssl.certificate_authorities: ['{ca}']",
            b.port
        ),
    );
    publish_when_subscribed(&p, &b, &format!("--cafile {ca}"), "skiff/tls/a", "over tls").await;
    let seen = p.wait_for(2).await;
    let ev = seen.iter().find(|v| v["message"] == "over tls").unwrap();
    assert_eq!(ev["mqtt"]["topic"], "skiff/tls/a");
    assert_eq!(ev["mqtt"]["qos"], 1);
}

/// A broker that requires a client certificate gets the one of `ssl.certificate`/`ssl.key`;
/// here the host is written `tcp://` and the `ssl` block alone turns TLS on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_for_a_broker_that_requires_one() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certs(dir.path());
    let b = broker(dir.path(), &ca, &cert, &key, true).await;
    let p = Pipeline::new(1024, true);
    let _stop = p.start(
        &skiff_input_mqtt::PLUGIN,
        &format!(
            "hosts: ['tcp://localhost:{}']\ntopics: ['skiff/mtls']\nssl:\n  certificate_authorities: ['{ca}']\n  certificate: '{cert}'\n  key: '{key}'",
            b.port
        ),
    );
    publish_when_subscribed(
        &p,
        &b,
        &format!("--cafile {ca} --cert {cert} --key {key}"),
        "skiff/mtls",
        "mutual",
    )
    .await;
    let seen = p.wait_for(2).await;
    assert!(seen.iter().any(|v| v["message"] == "mutual"), "{seen:?}");
}
