//! The Redis output against a real `redis-server` started by each test on a free port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_config::Node;
use skiff_event::{AckStream, Event, Map, Value};
use skiff_metrics::Registry;
use skiff_output_redis::resp::Reply;
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{Budget, BuildContext, OutputSet, Queue};

mod common;
use common::{Server, free_port};

fn ctx(reg: &Registry) -> BuildContext {
    BuildContext::standalone("t", "9.9.9", reg)
}

fn build(yaml: &str) -> OutputSet {
    let node: Node = skiff_config::parse_str(yaml, None).unwrap();
    let reg = Registry::new();
    (skiff_output_redis::PLUGIN.build)(&node, &ctx(&reg)).unwrap()
}

fn shared() -> Arc<Map> {
    let mut m = Map::new();
    m.insert("host".into(), serde_json::json!({"name": "web-1"}));
    m.insert(
        "@metadata".into(),
        serde_json::json!({"beat": "filebeat", "version": "9.9.9"}),
    );
    Arc::new(m)
}

fn events(n: usize, app: impl Fn(usize) -> &'static str) -> Vec<Event> {
    let sh = shared();
    (0..n)
        .map(|i| {
            let mut e = Event::new(sh.clone(), format!("line {i} with \"quotes\" and ünïcode"));
            e.offset = Some(i as u64);
            e.insert("fields.app", Value::from(app(i)));
            e.insert("n", Value::from(i));
            e
        })
        .collect()
}

/// Every `n` 0..count appears exactly once, with its fields intact.
fn assert_exactly_once(docs: &[Value], count: usize) {
    let mut seen = BTreeMap::new();
    for d in docs {
        let n = d["n"].as_u64().unwrap() as usize;
        assert_eq!(
            d["message"],
            format!("line {n} with \"quotes\" and ünïcode")
        );
        assert_eq!(d["log"]["offset"], n as u64);
        assert_eq!(d["host"]["name"], "web-1");
        assert_eq!(d["@metadata"]["beat"], "filebeat");
        assert!(d["@timestamp"].as_str().unwrap().ends_with('Z'));
        *seen.entry(n).or_insert(0) += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
    assert_eq!(seen.len(), count, "missing events");
}

#[tokio::test]
async fn list_every_event_exactly_once() {
    let srv = Server::start(&[]);
    let mut out = build(&format!("hosts: ['127.0.0.1:{}']\nkey: logs", srv.port));
    let evs = events(5000, |_| "a");
    for chunk in evs.chunks(2048) {
        let o = out.clients[0].send(chunk).await.unwrap();
        assert!(o.retry.is_empty() && o.rejected.is_empty(), "{o:?}");
    }
    assert_exactly_once(&srv.lrange("logs", None).await, 5000);
}

#[tokio::test]
async fn default_key_is_filebeat_and_db_is_selected() {
    let srv = Server::start(&[]);
    let mut out = build(&format!("hosts: ['redis://127.0.0.1:{}/3']", srv.port));
    out.clients[0].send(&events(3, |_| "a")).await.unwrap();
    let mut c = srv.client(None).await;
    assert_eq!(
        c.call(&[b"SELECT", b"3"]).await.unwrap(),
        Reply::Status("OK".into())
    );
    assert_eq!(
        c.call(&[b"LLEN", b"filebeat"]).await.unwrap(),
        Reply::Int(3)
    );
    assert_eq!(
        srv.lrange("filebeat", None).await.len(),
        0,
        "db 0 must be empty"
    );
}

#[tokio::test]
async fn channel_mode_publishes_to_subscribers() {
    let srv = Server::start(&[]);
    let mut sub = srv.client(None).await;
    sub.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nlive\r\n")
        .await
        .unwrap();
    let ack = sub.read().await.unwrap();
    assert!(ack.text().contains("subscribe"), "{ack:?}");
    let mut out = build(&format!(
        "hosts: ['127.0.0.1:{}']\nkey: live\ndatatype: channel",
        srv.port
    ));
    out.clients[0].send(&events(300, |_| "a")).await.unwrap();
    let mut docs = Vec::new();
    for _ in 0..300 {
        match sub.read().await.unwrap() {
            Reply::Array(Some(parts)) => match &parts[2] {
                Reply::Bulk(Some(b)) => docs.push(serde_json::from_slice(b).unwrap()),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }
    assert_exactly_once(&docs, 300);
    assert_eq!(
        srv.lrange("live", None).await.len(),
        0,
        "channel mode must not push"
    );
}

#[tokio::test]
async fn password_is_required_and_used() {
    let srv = Server::start(&["--requirepass", "s3cret"]);
    let mut wrong = build(&format!(
        "hosts: ['127.0.0.1:{}']\nkey: k\npassword: nope",
        srv.port
    ));
    let err = wrong.clients[0]
        .send(&events(1, |_| "a"))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("refused the login"), "{err:#}");
    let mut none = build(&format!("hosts: ['127.0.0.1:{}']\nkey: k", srv.port));
    let err = none.clients[0].send(&events(1, |_| "a")).await.unwrap_err();
    assert!(format!("{err:#}").contains("NOAUTH"), "{err:#}");
    let mut right = build(&format!(
        "hosts: ['127.0.0.1:{}']\nkey: k\npassword: s3cret",
        srv.port
    ));
    right.clients[0].send(&events(10, |_| "a")).await.unwrap();
    assert_exactly_once(&srv.lrange("k", Some("s3cret")).await, 10);
}

#[tokio::test]
async fn keys_rules_route_events_and_bad_ones_are_rejected() {
    let srv = Server::start(&[]);
    let mut out = build(&format!(
        r#"
hosts: ['127.0.0.1:{}']
key: "other-%{{[fields.app]}}"
keys:
  - key: web
    when.equals: {{ fields.app: nginx }}
  - key: "db-%{{[fields.app]}}"
    when.regexp: {{ fields.app: "^(mysql|pg)$" }}
"#,
        srv.port
    ));
    let apps = ["nginx", "mysql", "pg", "cron"];
    let mut evs = events(40, |i| apps[i % 4]);
    // No fields.app: matches no rule and cannot render the fallback.
    evs[39].remove("fields.app");
    // A key that holds a string, not a list: WRONGTYPE, rejected with the reason.
    let mut c = srv.client(None).await;
    c.call(&[b"SET", b"other-cron", b"x"]).await.unwrap();
    let o = out.clients[0].send(&evs).await.unwrap();
    assert!(o.retry.is_empty());
    let mut rejected: Vec<usize> = o.rejected.iter().map(|r| r.0).collect();
    rejected.sort();
    let cron: Vec<usize> = (0..39).filter(|i| i % 4 == 3).collect();
    assert_eq!(rejected, [cron.clone(), vec![39]].concat());
    let why = &o.rejected.iter().find(|r| r.0 == 3).unwrap().1;
    assert!(
        why.contains("WRONGTYPE") && why.contains("other-cron"),
        "{why}"
    );
    let why = &o.rejected.iter().find(|r| r.0 == 39).unwrap().1;
    assert!(why.contains("fields.app"), "{why}");
    assert_eq!(srv.lrange("web", None).await.len(), 10);
    assert_eq!(srv.lrange("db-mysql", None).await.len(), 10);
    assert_eq!(srv.lrange("db-pg", None).await.len(), 10);
}

fn build_err(yaml: &str) -> String {
    let node = skiff_config::parse_str(yaml, None).unwrap();
    match (skiff_output_redis::PLUGIN.build)(&node, &ctx(&Registry::new())) {
        Ok(_) => panic!("expected a configuration error"),
        Err(e) => e.to_string(),
    }
}

/// Reads a list back over TLS with the output's own connection code.
async fn lrange_tls(port: u16, ca: &std::path::Path, key: &str) -> usize {
    let ssl: skiff_tls::SslConfig = serde_json::from_value(
        serde_json::json!({"certificate_authorities": [ca.to_string_lossy()]}),
    )
    .unwrap();
    let target = skiff_output_redis::client::Target {
        host: skiff_output_redis::config::parse_host(&format!("localhost:{port}"), 6379).unwrap(),
        username: None,
        password: None,
        db: 0,
        timeout: Duration::from_secs(5),
        tls: Some(skiff_tls::client_config(&ssl).unwrap()),
    };
    let mut c = target.connect().await.unwrap();
    match c.call(&[b"LLEN", key.as_bytes()]).await.unwrap() {
        Reply::Int(n) => n as usize,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tls_with_a_trusted_ca_delivers() {
    let (srv, ca) = Server::start_tls();
    let mut out = build(&format!(
        "hosts: ['localhost:{}']\nkey: k\nssl.certificate_authorities: ['{}']",
        srv.port,
        ca.display()
    ));
    let o = out.clients[0].send(&events(25, |_| "a")).await.unwrap();
    assert!(o.retry.is_empty() && o.rejected.is_empty());
    assert_eq!(lrange_tls(srv.port, &ca, "k").await, 25);
    // rediss:// turns TLS on for that host.
    let mut out = build(&format!(
        "hosts: ['rediss://localhost:{}']\nkey: k2\nssl.certificate_authorities: ['{}']",
        srv.port,
        ca.display()
    ));
    out.clients[0].send(&events(5, |_| "a")).await.unwrap();
    assert_eq!(lrange_tls(srv.port, &ca, "k2").await, 5);
}

#[tokio::test]
async fn tls_failures_say_what_to_fix() {
    let (srv, ca) = Server::start_tls();
    // Unknown CA (the system's trust store does not know the test CA).
    let mut out = build(&format!(
        "hosts: ['rediss://localhost:{}']\nkey: k",
        srv.port
    ));
    let err = format!(
        "{:#}",
        out.clients[0].send(&events(1, |_| "a")).await.unwrap_err()
    );
    assert!(err.contains("unknown authority"), "{err}");
    // The certificate names localhost, not 127.0.0.1.
    let yaml = format!(
        "hosts: ['127.0.0.1:{}']\nkey: k\nssl.certificate_authorities: ['{}']",
        srv.port,
        ca.display()
    );
    let mut out = build(&yaml);
    let err = format!(
        "{:#}",
        out.clients[0].send(&events(1, |_| "a")).await.unwrap_err()
    );
    assert!(
        err.contains("valid for localhost, not 127.0.0.1") && err.contains("verification_mode"),
        "{err}"
    );
    // ... which verification_mode: certificate accepts.
    let mut out = build(&format!("{yaml}\nssl.verification_mode: certificate"));
    out.clients[0].send(&events(3, |_| "a")).await.unwrap();
    assert_eq!(lrange_tls(srv.port, &ca, "k").await, 3);
    // Plain text to a TLS port: a clear failure, not a hang.
    let mut out = build(&format!(
        "hosts: ['127.0.0.1:{}']\nkey: k\ntimeout: 1s",
        srv.port
    ));
    assert!(out.clients[0].send(&events(1, |_| "a")).await.is_err());
    // A CA file that does not exist is a configuration error.
    let err = build_err("hosts: ['r:1']\nssl.certificate_authorities: [/nonexistent/ca.pem]");
    assert!(
        err.contains("ssl") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
}

#[tokio::test]
async fn probe_shows_the_server_certificate() {
    let (srv, ca) = Server::start_tls();
    let node = skiff_config::parse_str(
        &format!(
            "hosts: ['localhost:{}']\nkey: k\nssl.certificate_authorities: ['{}']",
            srv.port,
            ca.display()
        ),
        None,
    )
    .unwrap();
    let steps = (skiff_output_redis::PLUGIN.probe.unwrap())(&node, &ctx(&Registry::new())).await;
    assert!(steps.iter().all(|s| s.ok), "{steps:#?}");
    let tls = steps.iter().find(|s| s.name == "tls handshake").unwrap();
    assert!(
        tls.detail.contains("localhost") && tls.detail.contains("skiff test CA"),
        "{tls:?}"
    );
}

#[tokio::test]
async fn probe_reports_each_step() {
    let srv = Server::start(&["--requirepass", "pw"]);
    let reg = Registry::new();
    let probe = skiff_output_redis::PLUGIN.probe.unwrap();
    let node = skiff_config::parse_str(
        &format!("hosts: ['localhost:{}']\nkey: k\npassword: pw", srv.port),
        None,
    )
    .unwrap();
    srv.client(Some("pw"))
        .await
        .call(&[b"RPUSH", b"k", b"a", b"b"])
        .await
        .unwrap();
    let steps = probe(&node, &ctx(&reg)).await;
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names[..2],
        ["dns localhost", &format!("connect localhost:{}", srv.port)][..]
    );
    assert!(steps.iter().all(|s| s.ok), "{steps:#?}");
    assert!(
        steps.last().unwrap().detail.contains("list of 2"),
        "{steps:#?}"
    );
    let node = skiff_config::parse_str(
        &format!("hosts: ['127.0.0.1:{}']\nkey: k\npassword: bad", srv.port),
        None,
    )
    .unwrap();
    let steps = probe(&node, &ctx(&reg)).await;
    let auth = steps.iter().find(|s| s.name == "auth").unwrap();
    assert!(!auth.ok && auth.hint.is_some(), "{steps:#?}");
}

/// Pushes the next `n` events of `evs` with ack tokens into the queue.
async fn push(q: &Arc<dyn Queue>, stream: &Arc<AckStream>, evs: &mut Vec<Event>, n: usize) {
    for mut e in evs.drain(..n) {
        e.ack = Some(stream.token(e.offset.unwrap()));
        q.push(e).await.unwrap();
    }
}

/// Waits until the output has delivered `n` events (the worker's acked counter: with the disk
/// queue, inputs' tokens are acked once events are on disk, not when delivered).
async fn wait_delivered(reg: &Registry, n: u64) {
    let acked = reg.counter(&skiff_metrics::names::OUTPUT_EVENTS_ACKED);
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.get() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} delivered",
            acked.get()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts the output's workers over `q` (no input: the tests push into the queue).
async fn start(q: Arc<dyn Queue>, out: OutputSet, reg: &Registry) -> skiff_topology::Running {
    skiff_topology::Topology::builder(ctx(reg))
        .queue(q, false)
        .output("redis", out)
        .build()
        .start()
        .await
}

#[derive(Clone, Copy)]
enum QueueKind {
    Memory,
    Disk,
}

fn queue(kind: QueueKind, reg: &Registry, dir: &std::path::Path) -> Arc<dyn Queue> {
    let budget = Budget::new(reg.clone());
    match kind {
        QueueKind::Memory => {
            let cfg = MemoryQueueConfig {
                flush: FlushConfig {
                    min_events: 1,
                    timeout: skiff_config::Duration(Duration::ZERO),
                },
                ..Default::default()
            };
            Arc::new(MemoryQueue::new(cfg, reg, &budget))
        }
        QueueKind::Disk => Arc::new(
            skiff_pipeline::queue::disk::DiskQueue::open(Default::default(), dir, reg, &budget)
                .unwrap(),
        ),
    }
}

/// The server is SIGKILLed after the first third is delivered, stays down while the second
/// third is queued, and comes back for the last third. Durable: every acknowledged RPUSH is
/// fsynced before Redis replies, so the kill loses no acknowledged event; whatever the output
/// was not told was stored, it must resend.
async fn server_killed_mid_stream(kind: QueueKind) {
    let mut srv = Server::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let reg = Registry::new();
    let out = build(&format!(
        "hosts: ['127.0.0.1:{}']\nkey: logs\nbulk_max_size: 50\ntimeout: 2s\nbackoff: {{init: 20ms, max: 100ms}}",
        srv.port
    ));
    let data = tempfile::tempdir().unwrap();
    let q = queue(kind, &reg, data.path());
    let running = start(q.clone(), out, &reg).await;
    let stream = AckStream::new();
    let total = 3000;
    let mut evs = events(total, |_| "a");
    push(&q, &stream, &mut evs, 1000).await;
    wait_delivered(&reg, 1000).await;
    srv.kill();
    // Queued while the server is down: the worker keeps retrying them.
    push(&q, &stream, &mut evs, 1000).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = reg.counter(&skiff_metrics::names::OUTPUT_EVENTS_ACKED);
    assert_eq!(
        acked.get(),
        1000,
        "nothing can be delivered while the server is down"
    );
    srv.spawn();
    push(&q, &stream, &mut evs, 1000).await;
    wait_delivered(&reg, total as u64).await;
    running.drain().await;
    assert_eq!(stream.progress().acked, total as u64);
    let docs = srv.lrange("logs", None).await;
    // At-least-once: a batch in flight at the kill may be stored and resent; nothing is lost.
    let mut seen = std::collections::BTreeSet::new();
    for d in &docs {
        seen.insert(d["n"].as_u64().unwrap());
    }
    assert_eq!(seen.len(), total, "lost events after restart");
    assert!(
        docs.len() - total <= 50,
        "more duplicates than one in-flight batch: {}",
        docs.len() - total
    );
}

#[tokio::test]
async fn server_killed_mid_stream_and_restarted_loses_nothing_memory_queue() {
    server_killed_mid_stream(QueueKind::Memory).await;
}

#[tokio::test]
async fn server_killed_mid_stream_and_restarted_loses_nothing_disk_queue() {
    server_killed_mid_stream(QueueKind::Disk).await;
}

/// `loadbalance: false` with the first host down: the worker fails over to the next host.
/// (With `loadbalance: true` a batch taken by the dead host's worker waits for that host: the
/// pipeline's worker retries a batch on the client that took it.)
#[tokio::test]
async fn a_dead_host_is_failed_over() {
    let srv = Server::start(&[]);
    let dead = free_port();
    let lb = false;
    let key = format!("lb-{lb}");
    let out = build(&format!(
        "hosts: ['127.0.0.1:{dead}', '127.0.0.1:{}']\nkey: {key}\nloadbalance: {lb}\nbulk_max_size: 10\ntimeout: 1s\nbackoff: {{init: 10ms, max: 20ms}}",
        srv.port
    ));
    let reg = Registry::new();
    let data = tempfile::tempdir().unwrap();
    let q = queue(QueueKind::Memory, &reg, data.path());
    let running = start(q.clone(), out, &reg).await;
    let stream = AckStream::new();
    let mut evs = events(200, |_| "a");
    push(&q, &stream, &mut evs, 200).await;
    running.drain().await;
    assert_eq!(stream.progress().acked, 200);
    assert_exactly_once(&srv.lrange(&key, None).await, 200);
}
