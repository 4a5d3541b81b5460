//! `skiff test output` probes, HTTPS with certificates made in the test, and template setup,
//! against `shared/tools/es-standin`.
//!
//! The stand-in is NOT Elasticsearch: it implements the documented wire format of the
//! Elasticsearch 8 REST API (see its README). Passing here is not proof against a real cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use serde_json::json;
use skiff_metrics::Registry;
use skiff_output_elasticsearch::template::{IlmSettings, TemplateSettings, install_template};
use skiff_pipeline::ProbeStep;

async fn probe(yaml: &str) -> Vec<ProbeStep> {
    let node = skiff_config::parse_str(yaml, None).unwrap();
    let f = skiff_output_elasticsearch::PLUGIN.probe.unwrap();
    f(&node, &ctx(&Registry::new())).await
}

fn names(steps: &[ProbeStep]) -> Vec<String> {
    steps
        .iter()
        .map(|s| s.name.split(' ').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn probe_checks_each_layer_and_warns_about_a_full_heap() {
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &["--version", "8.15.0"]);
    // The stand-in reports this machine's real disk use unless told otherwise; a full build
    // disk must not decide this test, so the healthy case is set explicitly.
    es.faults(json!({"heap_used_percent": 40, "disk_used_percent": 40}))
        .await;
    let steps = probe(&format!("hosts: [\"{}\"]\n", es.url)).await;
    assert_eq!(
        names(&steps),
        [
            "dns",
            "connect",
            "authentication",
            "version",
            "cluster",
            "node"
        ]
    );
    assert!(steps.iter().all(|s| s.ok), "{steps:#?}");
    assert_eq!(steps[3].detail, "Elasticsearch 8.15.0");
    assert!(steps[5].hint.is_none(), "{steps:#?}");

    es.faults(json!({"heap_used_percent": 93, "disk_used_percent": 96}))
        .await;
    let steps = probe(&format!("hosts: [\"{}\"]\n", es.url)).await;
    let hint = steps[5].hint.clone().unwrap();
    assert!(
        hint.starts_with("warning: ")
            && hint.contains("heap 93% used")
            && hint.contains("disk 96% used"),
        "{hint}"
    );
}

#[tokio::test]
async fn probe_failures_name_the_layer() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let steps = probe(&format!("hosts: [\"127.0.0.1:{port}\"]\n")).await;
    let last = steps.last().unwrap();
    assert!(!last.ok && last.name.starts_with("connect"), "{steps:#?}");
    assert!(
        last.hint.as_deref().unwrap().contains("refused"),
        "{steps:#?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &["--user", "elastic", "--password", "changeme"]);
    let steps = probe(&format!(
        "hosts: [\"{}\"]\nusername: elastic\npassword: nope\n",
        es.url
    ))
    .await;
    let last = steps.last().unwrap();
    assert_eq!(last.name, "authentication");
    assert!(!last.ok && last.detail.contains("401"), "{steps:#?}");
    assert_eq!(
        last.hint.as_deref(),
        Some("check username/password or api_key")
    );

    let steps = probe("hosts: [\"ftp://x\"]\n").await;
    assert!(
        !steps[0].ok && steps[0].detail.contains("http or https"),
        "{steps:#?}"
    );
}

struct Pki {
    ca_pem: String,
    chain: String,
    key: String,
}

fn pki(names: &[&str]) -> Pki {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "Test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = p.self_signed(&ca_key).unwrap();
    let leaf =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    Pki {
        ca_pem: ca.pem(),
        chain: cert.pem(),
        key: key.serialize_pem(),
    }
}

#[tokio::test]
async fn https_with_a_private_ca_and_the_wrong_name() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let p = pki(&["localhost", "127.0.0.1"]);
    let (cert, key, ca) = (
        certs.path().join("cert.pem"),
        certs.path().join("key.pem"),
        certs.path().join("ca.pem"),
    );
    std::fs::write(&cert, &p.chain).unwrap();
    std::fs::write(&key, &p.key).unwrap();
    std::fs::write(&ca, &p.ca_pem).unwrap();
    let es = StandIn::start(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(es.url.starts_with("https://"));
    let cfg = format!(
        "hosts: [\"{}\"]\nindex: tls-test\nssl.certificate_authorities: [\"{}\"]\n",
        es.url,
        ca.display()
    );
    let reg = Registry::new();
    let s = shared();
    let r = run(
        build(&cfg, &reg),
        (0..20).map(|n| event(&s, n)).collect(),
        &reg,
    )
    .await;
    assert_eq!(r.stream.progress().acked, 20);
    assert_eq!(es.docs("tls-test").len(), 20);

    let steps = probe(&cfg).await;
    let tls = steps.iter().find(|s| s.name == "tls handshake").unwrap();
    assert!(
        tls.ok && tls.detail.contains("SANs [localhost, 127.0.0.1]"),
        "{steps:#?}"
    );
    assert!(steps.iter().all(|s| s.ok), "{steps:#?}");

    // The same server by a name its certificate does not carry.
    let other = es.url.replace("127.0.0.1", "localhost.localdomain");
    let wrong = cfg.replace(&es.url, &other);
    let node = skiff_config::parse_str(&wrong, None).unwrap();
    let mut set = (skiff_output_elasticsearch::PLUGIN.build)(&node, &ctx(&reg)).unwrap();
    // Only meaningful where the name resolves (it does on Debian's default /etc/hosts).
    if tokio::net::lookup_host(("localhost.localdomain", es.port))
        .await
        .is_ok()
    {
        let err = format!(
            "{:#}",
            set.clients[0].send(&[event(&s, 0)]).await.unwrap_err()
        );
        assert!(
            err.contains("the server certificate is valid for localhost, 127.0.0.1, not localhost.localdomain")
                && err.contains("ssl.verification_mode: certificate"),
            "{err}"
        );
        let ok = format!("{wrong}ssl.verification_mode: certificate\n");
        let node = skiff_config::parse_str(&ok, None).unwrap();
        let mut set = (skiff_output_elasticsearch::PLUGIN.build)(&node, &ctx(&reg)).unwrap();
        set.clients[0].send(&[event(&s, 0)]).await.unwrap();
    }

    // Without the CA: unknown authority, said plainly.
    let plain = format!("hosts: [\"{}\"]\n", es.url);
    let node = skiff_config::parse_str(&plain, None).unwrap();
    let mut set = (skiff_output_elasticsearch::PLUGIN.build)(&node, &ctx(&reg)).unwrap();
    let err = format!(
        "{:#}",
        set.clients[0].send(&[event(&s, 0)]).await.unwrap_err()
    );
    assert!(err.contains("signed by an unknown authority"), "{err}");
}

#[tokio::test]
async fn template_is_installed_once_and_makes_a_data_stream() {
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &[]);
    let node = skiff_config::parse_str(&format!("hosts: [\"{}\"]\n", es.url), None).unwrap();
    let t = TemplateSettings::default();
    let ilm = IlmSettings::default();
    let done = install_template(&node, "8.15.0", &t, &ilm).await.unwrap();
    assert!(done.contains("installed"), "{done}");
    let again = install_template(&node, "8.15.0", &t, &ilm).await.unwrap();
    assert!(again.contains("already exists"), "{again}");
    let got = es
        .control("GET", "/_index_template/filebeat-8.15.0", json!(null))
        .await;
    assert_eq!(
        got["index_templates"][0]["index_template"]["index_patterns"],
        json!(["filebeat-8.15.0"]),
        "{got}"
    );
    // Default settings ship to the data stream `filebeat-8.15.0`.
    let reg = Registry::new();
    let set = build(&format!("hosts: [\"{}\"]\n", es.url), &reg);
    run(set, (0..5).map(|n| event(&shared(), n)).collect(), &reg).await;
    let ds = es
        .control("GET", "/_data_stream/filebeat-8.15.0", json!(null))
        .await;
    assert_eq!(
        ds["data_streams"][0]["name"],
        json!("filebeat-8.15.0"),
        "{ds}"
    );
    assert_eq!(es.docs("filebeat-8.15.0").len(), 5);
}
