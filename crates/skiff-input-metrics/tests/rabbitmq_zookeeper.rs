//! The rabbitmq and zookeeper modules against real servers: the RabbitMQ running on this
//! machine (management API on 127.0.0.1:15672, guest/guest; scripts/ensure-test-deps enables
//! the plugin), with a queue, an exchange and a consumer (amqp-tools' `amqp-consume`, a real
//! AMQP client) the test sets up; and a ZooKeeper (Debian's `zookeeperd`) the test starts on a
//! free port from a temporary directory with `4lw.commands.whitelist=*`. Fields present and
//! typed like Metricbeat's example events, values plausible, a down host and a wrong password
//! as error events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod live;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{fetch, get, num};
use serde_json::{Map, Value, json};

const MANAGEMENT: &str = "http://127.0.0.1:15672";

async fn api(method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = live::http_client()
        .request(method, format!("{MANAGEMENT}{path}"))
        .basic_auth("guest", Some("guest"));
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    match req.send().await {
        Ok(r) => r,
        Err(e) => panic!(
            "RabbitMQ's management API at {MANAGEMENT} is not up ({e}): run scripts/ensure-test-deps (as root)"
        ),
    }
}

/// Fetches `yaml` until `done` holds for the events (the management API refreshes its
/// statistics every few seconds), 60 s at most.
async fn fetch_until(
    yaml: &str,
    done: impl Fn(&[Map<String, Value>]) -> bool,
) -> Vec<Map<String, Value>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = fetch(yaml).await;
        if done(&events) {
            return events;
        }
        assert!(Instant::now() < deadline, "not reached in 60 s: {events:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn named<'a>(
    events: &'a [Map<String, Value>],
    field: &str,
    name: &str,
) -> Option<&'a Map<String, Value>> {
    events
        .iter()
        .find(|e| e.get("error").is_none() && get(e, field) == name)
}

#[tokio::test]
async fn rabbitmq_node_queue_exchange_and_connection() {
    let tag = format!("skiff-mmisc-{}", std::process::id());
    let (queue, consumed, exchange) = (
        format!("{tag}-q"),
        format!("{tag}-consumed"),
        format!("{tag}-x"),
    );
    for q in [&queue, &consumed] {
        let r = api(
            reqwest::Method::PUT,
            &format!("/api/queues/%2F/{q}"),
            Some(
                json!({"durable": false, "auto_delete": false, "arguments": {"x-max-priority": 9}}),
            ),
        )
        .await;
        assert!(r.status().is_success(), "{r:?}");
    }
    let r = api(
        reqwest::Method::PUT,
        &format!("/api/exchanges/%2F/{exchange}"),
        Some(json!({"type": "fanout", "durable": false})),
    )
    .await;
    assert!(r.status().is_success(), "{r:?}");
    for i in 0..3 {
        let r = api(
            reqwest::Method::POST,
            "/api/exchanges/%2F/amq.default/publish",
            Some(json!({"properties": {}, "routing_key": queue, "payload": format!("m{i}"), "payload_encoding": "string"})),
        )
        .await;
        assert!(r.status().is_success(), "{r:?}");
    }
    // A real AMQP client holding a connection and consuming from the other queue.
    let _consumer = live::spawn(
        &common::need("amqp-consume"),
        &[
            "-s",
            "127.0.0.1:5672",
            "--username",
            "guest",
            "--password",
            "guest",
            "-q",
            &consumed,
            "cat",
        ]
        .map(std::ffi::OsStr::new),
    );

    let base = "module: rabbitmq\nhosts: ['127.0.0.1:15672']\nusername: guest\npassword: guest\n";
    let queues = fetch_until(&format!("{base}metricsets: [queue]\n"), |evs| {
        named(evs, "rabbitmq.queue.name", &queue)
            .is_some_and(|e| e["rabbitmq"]["queue"]["messages"]["ready"]["count"] == 3)
            && named(evs, "rabbitmq.queue.name", &consumed)
                .is_some_and(|e| e["rabbitmq"]["queue"]["consumers"]["count"] == 1)
    })
    .await;
    let q = named(&queues, "rabbitmq.queue.name", &queue).unwrap();
    assert_eq!(num(q, "rabbitmq.queue.messages.total.count"), 3.0);
    assert_eq!(num(q, "rabbitmq.queue.arguments.max_priority"), 9.0);
    assert_eq!(get(q, "rabbitmq.vhost"), "/");
    assert_eq!(get(q, "rabbitmq.queue.durable"), false);
    let c = named(&queues, "rabbitmq.queue.name", &consumed).unwrap();
    let utilisation = num(c, "rabbitmq.queue.consumers.utilisation.pct");
    assert!((0.0..=1.0).contains(&utilisation), "{utilisation}");
    live::assert_typed_like(
        q,
        &live::example("rabbitmq", "queue", "data.json"),
        "rabbitmq",
        &[],
        &[
            (
                "queue.disk.reads.count",
                "RabbitMQ reports disk reads only for a queue that paged messages to disk",
            ),
            (
                "queue.disk.writes.count",
                "RabbitMQ reports disk writes only for a queue that paged messages to disk",
            ),
        ],
    );

    let exchanges = fetch(&format!("{base}metricsets: [exchange]\n")).await;
    let x = named(&exchanges, "rabbitmq.exchange.name", &exchange).unwrap();
    assert_eq!(get(x, "rabbitmq.exchange.type"), "fanout");
    let default = named(&exchanges, "rabbitmq.exchange.name", "amq.direct").unwrap();
    assert_eq!(get(default, "rabbitmq.exchange.durable"), true);
    let with_rates = exchanges
        .iter()
        .find(|e| e["rabbitmq"]["exchange"].get("messages").is_some())
        .unwrap_or(x);
    live::assert_typed_like(
        with_rates,
        &live::example("rabbitmq", "exchange", "data.json"),
        "rabbitmq",
        &[],
        &[],
    );

    // The consumer's connection (others may be open on this shared server): one channel.
    let has_channel = |e: &Map<String, Value>| {
        e.get("error").is_none()
            && e.get("rabbitmq")
                .is_some_and(|r| r["connection"]["channels"].as_f64() >= Some(1.0))
    };
    let conns = fetch_until(&format!("{base}metricsets: [connection]\n"), |evs| {
        evs.iter().any(has_channel)
    })
    .await;
    let conn = conns.iter().find(|e| has_channel(e)).unwrap();
    assert_eq!(num(conn, "rabbitmq.connection.port"), 5672.0);
    assert!(
        get(conn, "rabbitmq.connection.name")
            .as_str()
            .unwrap()
            .contains("->")
    );
    live::assert_typed_like(
        conn,
        &live::example("rabbitmq", "connection", "data.json"),
        "rabbitmq",
        &[],
        &[],
    );

    let nodes = fetch(&format!("{base}metricsets: [node]\n")).await;
    let node = &nodes[0];
    assert!(node.get("error").is_none(), "{node:?}");
    assert!(
        get(node, "rabbitmq.node.name")
            .as_str()
            .unwrap()
            .starts_with("rabbit@")
    );
    assert!(num(node, "rabbitmq.node.mem.used.bytes") > 0.0);
    assert!(num(node, "rabbitmq.node.fd.used") > 0.0);
    assert!(num(node, "rabbitmq.node.uptime") > 0.0);
    live::assert_typed_like(
        node,
        &live::example("rabbitmq", "node", "data.json"),
        "rabbitmq.node",
        &[],
        &[
            (
                "io.file_handle.open_attempt.avg.ms",
                "RabbitMQ 3.10's /api/nodes has no io_file_handle_open_attempt_*",
            ),
            (
                "io.file_handle.open_attempt.count",
                "RabbitMQ 3.10's /api/nodes has no io_file_handle_open_attempt_*",
            ),
            (
                "queue.index.journal_write.count",
                "RabbitMQ 3.10's /api/nodes has no queue_index_journal_write_count",
            ),
        ],
    );

    // A wrong password and a host that is down.
    let wrong = fetch("module: rabbitmq\nmetricsets: [node]\nhosts: ['127.0.0.1:15672']\nusername: guest\npassword: nope\n").await;
    let msg = get(&wrong[0], "error.message").as_str().unwrap();
    assert!(msg.contains("authentication failed"), "{msg}");
    let down = fetch(&format!(
        "module: rabbitmq\nmetricsets: [queue]\nhosts: ['127.0.0.1:{}']\n",
        common::closed_port()
    ))
    .await;
    let msg = get(&down[0], "error.message").as_str().unwrap();
    assert!(msg.contains("error fetching"), "{msg}");

    for q in [&queue, &consumed] {
        api(
            reqwest::Method::DELETE,
            &format!("/api/queues/%2F/{q}"),
            None,
        )
        .await;
    }
    api(
        reqwest::Method::DELETE,
        &format!("/api/exchanges/%2F/{exchange}"),
        None,
    )
    .await;
}

/// Starts Debian's ZooKeeper on `port` with a configuration in `dir`, waiting (60 s at most:
/// a JVM on a busy machine) until it serves.
fn zookeeper(dir: &Path, port: u16) -> common::Server {
    let jar = Path::new("/usr/share/java/zookeeper.jar");
    assert!(
        jar.is_file(),
        "ZooKeeper is not installed ({}): run scripts/ensure-test-deps (as root)",
        jar.display()
    );
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.enableServer=false\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let srv = live::spawn(
        &common::need("java"),
        &[
            "-cp".as_ref(),
            jar.as_os_str(),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain".as_ref(),
            cfg.as_os_str(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        use std::io::{Read, Write};
        // `ruok` says imok before the server serves; `srvr` names the mode once it does.
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"srvr");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.contains("Mode: ") {
                return srv;
            }
        }
        assert!(
            Instant::now() < deadline,
            "ZooKeeper did not answer on {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn zookeeper_mntr_and_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let _zk = zookeeper(dir.path(), port);
    let events = fetch(&format!("module: zookeeper\nhosts: ['127.0.0.1:{port}']\n")).await;
    assert_eq!(events.len(), 2, "{events:?}");
    for e in &events {
        assert!(e.get("error").is_none(), "{e:?}");
        assert!(
            get(e, "service.version")
                .as_str()
                .unwrap()
                .starts_with("3.")
        );
        assert_eq!(
            get(e, "service.address").as_str().unwrap(),
            format!("127.0.0.1:{port}")
        );
    }
    let by = |m: &str| {
        events
            .iter()
            .find(|e| get(e, "metricset.name") == m)
            .unwrap()
    };
    let mntr = by("mntr");
    assert_eq!(get(mntr, "zookeeper.mntr.server_state"), "standalone");
    assert!(num(mntr, "zookeeper.mntr.znode_count") >= 1.0);
    assert!(num(mntr, "zookeeper.mntr.num_alive_connections") >= 1.0);
    assert!(num(mntr, "zookeeper.mntr.packets.received") >= 1.0);
    assert!(num(mntr, "zookeeper.mntr.max_file_descriptor_count") > 0.0);
    assert_eq!(
        get(mntr, "zookeeper.mntr.hostname").as_str().unwrap(),
        "127.0.0.1"
    );
    live::assert_typed_like(
        mntr,
        &live::example("zookeeper", "mntr", "data.json"),
        "zookeeper.mntr",
        &[("version", "service.version")],
        &[],
    );
    let server = by("server");
    assert_eq!(get(server, "zookeeper.server.mode"), "standalone");
    assert!(num(server, "zookeeper.server.received") >= 1.0);
    assert!(num(server, "zookeeper.server.node_count") >= 1.0);
    assert_eq!(get(server, "zookeeper.server.zxid"), "0x0");
    assert_eq!(num(server, "zookeeper.server.epoch"), 0.0);
    assert!(
        get(server, "zookeeper.server.version_date")
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    live::assert_typed_like(
        server,
        &live::example("zookeeper", "server", "data.json"),
        "zookeeper.server",
        &[],
        &[],
    );

    // A second fetch counts the first one's requests.
    let again = fetch(&format!(
        "module: zookeeper\nmetricsets: [server]\nhosts: ['127.0.0.1:{port}']\n"
    ))
    .await;
    assert!(num(&again[0], "zookeeper.server.received") > num(server, "zookeeper.server.received"));

    let down = fetch(&format!(
        "module: zookeeper\nhosts: ['127.0.0.1:{}']\n",
        common::closed_port()
    ))
    .await;
    assert_eq!(down.len(), 2);
    for e in &down {
        let msg = get(e, "error.message").as_str().unwrap();
        assert!(msg.contains("error fetching"), "{msg}");
    }
}
