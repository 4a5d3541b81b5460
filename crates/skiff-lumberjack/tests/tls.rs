//! Lumberjack over TLS with certificates made in the test: a valid chain, and client
//! certificates required (present and missing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use skiff_pipeline::OutputSet;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "test ca");
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

fn leaf(ca: &Ca, names: &[&str]) -> (String, String) {
    let p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// YAML for an inline PEM value.
fn pem(s: &str) -> String {
    format!(
        "|\n{}",
        s.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_over_tls() {
    let ca = ca();
    let (cert, key) = leaf(&ca, &["localhost", "127.0.0.1"]);
    let rx = Receiver::new(Duration::ZERO);
    let port = free_port();
    let (_stop, _h) = rx
        .start_input(
            &format!("ssl:\n  certificate: {}\n  key: {}", pem(&cert), pem(&key)),
            port,
            Duration::ZERO,
        )
        .await;
    let tx = Sender::start(
        &format!(
            "hosts: ['localhost:{port}']\nssl:\n  certificate_authorities:\n    - {}",
            pem(&ca.cert.pem()).replace("\n      ", "\n        ")
        ),
        200,
    )
    .await;
    tx.wait_acked(200, 30).await;
    assert_eq!(rx.counts().len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_when_required() {
    let ca = ca();
    let (cert, key) = leaf(&ca, &["localhost"]);
    let (ccert, ckey) = leaf(&ca, &["edge-1"]);
    let rx = Receiver::new(Duration::ZERO);
    let port = free_port();
    let ca_pem = pem(&ca.cert.pem()).replace("\n      ", "\n        ");
    let (_stop, _h) = rx
        .start_input(
            &format!(
                "ssl:\n  certificate: {}\n  key: {}\n  client_authentication: required\n  certificate_authorities:\n    - {ca_pem}",
                pem(&cert),
                pem(&key)
            ),
            port,
            Duration::ZERO,
        )
        .await;
    let shared = edge_shared();
    let evs: Vec<_> = (0..3).map(|i| edge_event(&shared, i)).collect();

    // Without a client certificate: refused, and the sender is told why.
    let yaml = format!(
        "hosts: ['localhost:{port}']\ntimeout: 5s\nssl:\n  certificate_authorities:\n    - {ca_pem}"
    );
    let OutputSet { mut clients, .. } =
        (skiff_lumberjack::OUTPUT.build)(&node(&yaml), &ctx("edge"))
            .map_err(|e| e.to_string())
            .unwrap();
    let err = clients[0].send(&evs).await.unwrap_err().to_string();
    eprintln!("client error: {err}");
    assert!(err.contains("requires a client certificate"), "{err}");
    assert!(rx.seen.lock().unwrap().is_empty());

    // With one: delivered.
    let yaml = format!(
        "{yaml}\n  certificate: {}\n  key: {}",
        pem(&ccert).replace("\n      ", "\n    "),
        pem(&ckey).replace("\n      ", "\n    ")
    );
    let OutputSet { mut clients, .. } =
        (skiff_lumberjack::OUTPUT.build)(&node(&yaml), &ctx("edge"))
            .map_err(|e| e.to_string())
            .unwrap();
    let o = clients[0].send(&evs).await.unwrap();
    assert!(o.retry.is_empty());
    assert_eq!(rx.counts().len(), 3);
}
