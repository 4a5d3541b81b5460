//! The `dns` processor against a real DNS server: dnsmasq, started by each test on a free port
//! with `--host-record`, `--ptr-record` and `--txt-record` answers, logging every query it
//! receives (so the tests see what the caches saved). DNS over TLS goes through socat's TLS
//! listener in front of dnsmasq's TCP port, with a certificate made by rcgen. Filebeat's two
//! documentation examples run as written, with only `nameservers` pointed at dnsmasq where
//! the example has none. Needs dnsmasq, dig and socat (scripts/ensure-test-deps installs
//! them); a missing one fails the test with its name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{build, run};
use serde_json::json;

fn need(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{tool} is missing: run scripts/ensure-test-deps");
}

fn free_port() -> u16 {
    // A port free for both UDP and TCP (dnsmasq listens on both).
    loop {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A process stopped when the test ends, pass or fail.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// dnsmasq with the test's records; its query log goes to `log`.
struct Dns {
    port: u16,
    log: tempfile::NamedTempFile,
    _proc: Proc,
}

impl Dns {
    fn start() -> Dns {
        for t in ["dnsmasq", "dig"] {
            need(t);
        }
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("dnsmasq")
            .args([
                // Not --no-daemon: in that mode dnsmasq serves TCP in its main process, one
                // connection at a time, and DNS over TLS keeps its connection open.
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                &format!("--port={port}"),
                "--user=root",
                "--pid-file",
                "--log-queries",
                &format!("--log-facility={}", log.path().display()),
                // A, AAAA and the matching PTR, TTL 300.
                "--host-record=web.skiff.test,10.9.8.7,fd00::7,300",
                // A second A record for the same name.
                "--host-record=multi.skiff.test,10.0.0.1",
                "--host-record=multi.skiff.test,10.0.0.2",
                // A PTR alone (TTL 0: cached for min_ttl anyway).
                "--ptr-record=4.3.2.10.in-addr.arpa,db.skiff.test",
                "--txt-record=skiff.test,v=spf1 -all",
                // NXDOMAIN for these.
                "--address=/nx.skiff.test/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let dns = Dns {
            port,
            log,
            _proc: Proc(child),
        };
        // Ready once it answers.
        for _ in 0..100 {
            let out = Command::new("dig")
                .args([
                    "@127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "+short",
                    "+time=1",
                    "+tries=1",
                    "web.skiff.test",
                    "A",
                ])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("10.9.8.7") {
                return dns;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dnsmasq never answered on port {port}");
    }

    /// How many queries dnsmasq logged for `name` (as `query[TYPE] name from ...`). dnsmasq
    /// logs in the order it receives queries, so once a marker query sent now is in the log,
    /// every earlier query is too.
    fn queries(&self, qtype: &str, name: &str) -> usize {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let marker = format!("m{}-{n}.nx.skiff.test", std::process::id());
        let _ = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+time=1",
                "+tries=1",
                &marker,
                "A",
            ])
            .output()
            .unwrap();
        let needle = format!("query[{qtype}] {name} ");
        for _ in 0..200 {
            let log = std::fs::read_to_string(self.log.path()).unwrap();
            if log.contains(&format!("query[A] {marker} ")) {
                return log.lines().filter(|l| l.contains(&needle)).count();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "dnsmasq never logged the marker query {marker}:\n{}",
            std::fs::read_to_string(self.log.path()).unwrap()
        );
    }
}

/// Filebeat's minimal example: reverse lookups of two fields.
#[test]
fn doc_minimal_example_reverse_lookups() {
    let dns = Dns::start();
    let p = build(&format!(
        "processors:\n  - dns:\n      type: reverse\n      fields:\n        source.ip: source.domain\n        destination.ip: destination.domain\n      nameservers: ['127.0.0.1:{}']\n",
        dns.port
    ));
    let v = run(
        &p,
        json!({"source.ip": "10.9.8.7", "destination.ip": "10.2.3.4"}),
    );
    assert_eq!(v["source"]["domain"], "web.skiff.test");
    assert_eq!(v["destination"]["domain"], "db.skiff.test");
    // IPv6 too.
    let v = run(&p, json!({"source.ip": "fd00::7"}));
    assert_eq!(v["source"]["domain"], "web.skiff.test");
    // A missing or non-string source is skipped without a tag.
    let v = run(&p, json!({"source.ip": 7}));
    assert!(
        v.get("tags").is_none() && v["source"].get("domain").is_none(),
        "{v}"
    );
}

/// Filebeat's example with every option, as written: its nameservers are documentation
/// addresses (TEST-NET) that nobody answers for, so the lookup fails and the event gets the
/// failure tag and no target field.
#[test]
fn doc_all_options_example_fails_with_its_tag() {
    let p = build(
        "processors:
- dns:
    type: reverse
    action: append
    transport: tls
    fields:
      server.ip: server.domain
      client.ip: client.domain
    success_cache:
      capacity.initial: 1000
      capacity.max: 10000
      min_ttl: 1m
    failure_cache:
      capacity.initial: 1000
      capacity.max: 10000
      ttl: 1m
    nameservers: ['192.0.2.1', '203.0.113.1']
    timeout: 500ms
    tag_on_failure: [_dns_reverse_lookup_failed]
",
    );
    let v = run(
        &p,
        json!({"server.ip": "192.0.2.10", "client.ip": "192.0.2.11", "tags": ["x"]}),
    );
    assert_eq!(v["tags"], json!(["x", "_dns_reverse_lookup_failed"]), "{v}");
    assert!(v["server"].get("domain").is_none(), "{v}");
    assert!(v["client"].get("domain").is_none(), "{v}");
}

/// A, AAAA and TXT answers are lists; `append` adds to what is there, `replace` overwrites.
#[test]
fn forward_lookups_append_and_replace() {
    let dns = Dns::start();
    let cfg = |kind: &str, action: &str| {
        format!(
            "processors:\n  - dns:\n      type: {kind}\n      action: {action}\n      fields: {{host.name: host.found}}\n      nameservers: ['127.0.0.1:{}']\n",
            dns.port
        )
    };
    let v = run(
        &build(&cfg("A", "append")),
        json!({"host.name": "web.skiff.test"}),
    );
    assert_eq!(v["host"]["found"], json!(["10.9.8.7"]));
    let v = run(
        &build(&cfg("A", "append")),
        json!({"host.name": "multi.skiff.test", "host.found": "old"}),
    );
    let mut got: Vec<String> = v["host"]["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got.remove(0), "old", "append keeps the old value first");
    got.sort();
    assert_eq!(got, ["10.0.0.1", "10.0.0.2"]);
    let v = run(
        &build(&cfg("aaaa", "replace")),
        json!({"host.name": "web.skiff.test", "host.found": ["old"]}),
    );
    assert_eq!(v["host"]["found"], json!(["fd00::7"]));
    let v = run(
        &build(&cfg("TXT", "append")),
        json!({"host.name": "skiff.test"}),
    );
    assert_eq!(v["host"]["found"], json!(["v=spf1 -all"]));
    // PTR is a string; append to a string makes a list.
    let v = run(
        &build(&cfg("PTR", "append")),
        json!({"host.name": "10.9.8.7", "host.found": "old"}),
    );
    assert_eq!(v["host"]["found"], json!(["old", "web.skiff.test"]));
    // NXDOMAIN and a value that is not an IP for PTR fail with the tag.
    let tagged = format!(
        "processors:\n  - dns:\n      type: A\n      fields: {{host.name: host.found}}\n      nameservers: ['127.0.0.1:{}']\n      tag_on_failure: [dns_failed]\n",
        dns.port
    );
    let v = run(&build(&tagged), json!({"host.name": "a.nx.skiff.test"}));
    assert_eq!(v["tags"], json!(["dns_failed"]), "{v}");
    assert!(v["host"].get("found").is_none());
    let v = run(
        &build(&tagged.replace("type: A", "type: reverse")),
        json!({"host.name": "not-an-ip"}),
    );
    assert_eq!(v["tags"], json!(["dns_failed"]), "{v}");
}

/// Answers are cached (a TTL 0 record for `min_ttl`), and so are failures: the second event
/// with the same values sends no query.
#[test]
fn answers_and_failures_are_cached() {
    let dns = Dns::start();
    let p = build(&format!(
        "processors:\n  - dns:\n      type: reverse\n      fields: {{source.ip: source.domain}}\n      nameservers: ['127.0.0.1:{}']\n      tag_on_failure: [f]\n",
        dns.port
    ));
    for _ in 0..3 {
        let v = run(&p, json!({"source.ip": "10.2.3.4"}));
        assert_eq!(v["source"]["domain"], "db.skiff.test");
    }
    assert_eq!(dns.queries("PTR", "4.3.2.10.in-addr.arpa"), 1);
    // 10.5.5.5 has no PTR record: dnsmasq refuses it (it has no upstream).
    for _ in 0..3 {
        let v = run(&p, json!({"source.ip": "10.5.5.5"}));
        assert_eq!(v["tags"], json!(["f"]));
    }
    assert_eq!(dns.queries("PTR", "5.5.5.10.in-addr.arpa"), 1);
    // A processor with tiny caches still answers right when entries are evicted.
    let p = build(&format!(
        "processors:\n  - dns:\n      type: reverse\n      fields: {{source.ip: source.domain}}\n      nameservers: ['127.0.0.1:{}']\n      success_cache: {{capacity.initial: 1, capacity.max: 1}}\n",
        dns.port
    ));
    for ip in ["10.9.8.7", "10.2.3.4", "10.9.8.7"] {
        let v = run(&p, json!({"source.ip": ip}));
        assert!(
            v["source"]["domain"]
                .as_str()
                .unwrap()
                .ends_with(".skiff.test")
        );
    }
}

/// `transport: tls`: DNS over TLS to socat's TLS listener relaying to dnsmasq over TCP, the
/// server certificate checked against the CA of `ssl.certificate_authorities`. Without that CA
/// the certificate is refused and the lookup fails.
#[test]
fn dns_over_tls() {
    need("socat");
    let dns = Dns::start();
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dns test ca");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let (ca_path, cert_path, key_path) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert_path, leaf.pem()).unwrap();
    std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();
    let tls_port = free_port();
    let socat = Proc(
        Command::new("socat")
            .args([
                &format!(
                    "OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
                    cert_path.display(),
                    key_path.display()
                ),
                &format!("TCP:127.0.0.1:{}", dns.port),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cfg = |ssl: &str| {
        format!(
            "processors:\n  - dns:\n      type: reverse\n      transport: tls\n      fields: {{source.ip: source.domain}}\n      nameservers: ['127.0.0.1:{tls_port}']\n      timeout: 3s\n      tag_on_failure: [f]\n{ssl}"
        )
    };
    let trusted = build(&cfg(&format!(
        "      ssl.certificate_authorities: ['{}']\n",
        ca_path.display()
    )));
    let v = run(&trusted, json!({"source.ip": "10.9.8.7"}));
    assert_eq!(v["source"]["domain"], "web.skiff.test", "{v}");
    assert!(
        dns.queries("PTR", "7.8.9.10.in-addr.arpa") >= 1,
        "the query went through socat to dnsmasq"
    );
    let untrusted = build(&cfg(""));
    let v = run(&untrusted, json!({"source.ip": "10.2.3.4"}));
    assert_eq!(v["tags"], json!(["f"]), "{v}");
    drop(socat);
}

/// A lookup waiting for a nameserver that never answers does not stop the other tasks of its
/// Tokio worker: on a runtime with a single worker, another task runs to its end while the
/// event is still waiting (it waits for the 3s timeout, and the check is by order of events,
/// not by time). The nameserver is a UDP socket of the test that reads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_pending_lookup_does_not_block_its_worker() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = build(&format!(
        "processors:\n  - dns:\n      type: reverse\n      fields: {{source.ip: source.domain}}\n      nameservers: ['{}']\n      timeout: 3s\n      tag_on_failure: [timed_out]\n",
        silent.local_addr().unwrap()
    ));
    let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = started.clone();
    let lookup = tokio::spawn(async move {
        s.store(true, std::sync::atomic::Ordering::SeqCst);
        run(&p, json!({"source.ip": "10.1.1.1"}))
    });
    // The other task: once the lookup has started, a few rounds through the scheduler.
    let other = tokio::spawn(async move {
        while !started.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    });
    other.await.unwrap();
    assert!(
        !lookup.is_finished(),
        "the lookup should still be waiting for the silent nameserver"
    );
    let v = lookup.await.unwrap();
    assert_eq!(v["tags"], json!(["timed_out"]), "{v}");
    drop(silent);
}
