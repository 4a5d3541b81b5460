//! Live capture on `lo` of real client sessions against the real servers of this machine
//! (issue 13): MariaDB on 3306 (the `mysql` client, plain and with the compressed protocol,
//! a query and an error), PostgreSQL on 5432 (`psql`: a result set and an error with its
//! SQLSTATE; `pgbench -M extended`: the extended query protocol of a real client), Redis on
//! 6379 (a pipeline of three commands in one write, one of them failing), and a memcached
//! this test starts on a free port (text protocol); and, from Python drivers in a venv
//! (`tests/clients/`), MySQL prepared statements (mysql-connector-python's
//! `cursor(prepared=True)`: COM_STMT_PREPARE/EXECUTE, parameters, a duplicate-key error) and
//! an AMQP publish and basic.get against RabbitMQ on 5672 (pika). Needs root (or
//! CAP_NET_RAW), libpcap, the clients and memcached (scripts/ensure-test-deps installs them);
//! a missing tool or server fails the test with its name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Map, Value};

mod common;
use common::{Capture, free_port, need, need_server};

/// Runs a client; its exit status is not checked (some commands fail on purpose).
fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .env("PGCONNECT_TIMEOUT", "5")
        // libpq prefers TLS when the server offers it: encrypted sessions cannot be read.
        .env("PGSSLMODE", "disable")
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let _ = out;
}

/// Writes `req` in one write and reads until `want` replies' worth of bytes came (or 2 s).
fn exchange(port: u16, req: &[u8], done: impl Fn(&[u8]) -> bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(req).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&got) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn of<'a>(evs: &'a [Map<String, Value>], kind: &str) -> Vec<&'a Map<String, Value>> {
    evs.iter().filter(|e| e["type"] == kind).collect()
}

fn find<'a>(evs: &[&'a Map<String, Value>], key: &str, needle: &str) -> &'a Map<String, Value> {
    evs.iter()
        .find(|e| {
            e.get(key)
                .and_then(Value::as_str)
                .is_some_and(|q| q.contains(needle))
        })
        .unwrap_or_else(|| panic!("no event with {key} containing {needle:?} in {evs:#?}"))
}

#[test]
fn real_database_sessions_become_transactions() {
    for t in ["mysql", "psql", "pgbench", "memcached"] {
        need(t);
    }
    need_server(3306, "MariaDB");
    need_server(5432, "PostgreSQL");
    need_server(6379, "Redis");
    let mc_port = free_port();
    let mut memcached = Command::new("memcached")
        .args([
            "-l",
            "127.0.0.1",
            "-p",
            &mc_port.to_string(),
            "-U",
            "0",
            "-u",
            "root",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", mc_port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    need_server(mc_port, "memcached");

    let yaml = format!(
        "packetbeat.interfaces.device: lo\npacketbeat.protocols:\n\
         - {{type: mysql, ports: [3306]}}\n\
         - {{type: pgsql, ports: [5432]}}\n\
         - {{type: redis, ports: [6379]}}\n\
         - {{type: memcache, ports: [{mc_port}]}}\n"
    );
    let capture = Capture::start(&yaml);

    let my = ["-h", "127.0.0.1", "-P", "3306", "-u", "root"];
    run(
        "mysql",
        &[
            &my[..],
            &[
                "-e",
                "SELECT 1 AS one UNION SELECT 2; SELECT * FROM skiff_no_such_db.t",
            ],
        ]
        .concat(),
    );
    run(
        "mysql",
        &[&my[..], &["--compress", "-e", "SELECT 'compressed' AS c"]].concat(),
    );
    let pg = ["-h", "127.0.0.1", "-U", "postgres"];
    run(
        "psql",
        &[
            &pg[..],
            &[
                "-c",
                "SELECT generate_series(1, 3)",
                "-c",
                "SELECT * FROM skiff_no_such_table",
            ],
        ]
        .concat(),
    );
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), "SELECT 42 AS skiff_extended;\n").unwrap();
    run(
        "pgbench",
        &[
            &pg[..],
            &["-n", "-M", "extended", "-t", "1", "-f"],
            &[script.path().to_str().unwrap(), "postgres"],
        ]
        .concat(),
    );
    // A Redis pipeline: three commands in one write.
    exchange(
        6379,
        b"*3\r\n$3\r\nSET\r\n$10\r\nskiff:live\r\n$2\r\nv1\r\n\
          *2\r\n$3\r\nGET\r\n$10\r\nskiff:live\r\n\
          *2\r\n$4\r\nLLEN\r\n$10\r\nskiff:live\r\n",
        |b| b.windows(2).filter(|w| w == b"\r\n").count() >= 4,
    );
    exchange(
        mc_port,
        b"set skiff 0 0 2\r\nhi\r\nget skiff nokey\r\n",
        |b| b.ends_with(b"END\r\n"),
    );
    let evs = capture.finish();
    let _ = memcached.kill();
    let _ = memcached.wait();

    let mysql = of(&evs, "mysql");
    let union = find(&mysql, "query", "SELECT 1 AS one UNION SELECT 2");
    assert_eq!(union["status"], "OK");
    assert_eq!(union["mysql.num_rows"], 2);
    assert_eq!(union["mysql.num_fields"], 1);
    let missing = find(&mysql, "query", "skiff_no_such_db");
    assert_eq!(missing["status"], "Error");
    assert!(
        missing["mysql.error_code"]
            .as_u64()
            .is_some_and(|c| c > 1000)
    );
    let compressed = find(&mysql, "query", "SELECT 'compressed' AS c");
    assert_eq!(compressed["mysql.num_rows"], 1);
    assert_eq!(compressed["status"], "OK");

    let pgsql = of(&evs, "pgsql");
    let series = find(&pgsql, "query", "generate_series(1, 3)");
    assert_eq!(series["pgsql.num_rows"], 3);
    assert_eq!(series["method"], "SELECT");
    let error = find(&pgsql, "query", "skiff_no_such_table");
    assert_eq!(error["status"], "Error");
    assert_eq!(error["pgsql.error_code"], "42P01");
    let extended = find(&pgsql, "query", "SELECT 42 AS skiff_extended");
    assert_eq!(extended["pgsql.num_rows"], 1);

    let redis: Vec<_> = of(&evs, "redis")
        .into_iter()
        .filter(|e| e["resource"] == "skiff:live")
        .collect();
    assert_eq!(redis.len(), 3, "{redis:#?}");
    assert_eq!(redis[0]["method"], "SET");
    assert_eq!(redis[0]["redis.return_value"], "OK");
    assert_eq!(redis[1]["redis.return_value"], "v1");
    assert_eq!(redis[2]["status"], "Error");
    assert!(
        redis[2]["redis.error"]
            .as_str()
            .is_some_and(|e| e.starts_with("WRONGTYPE"))
    );

    let mc = of(&evs, "memcache");
    assert_eq!(mc.len(), 2, "{mc:#?}");
    assert_eq!(mc[0]["memcache.request.command"], "set");
    assert_eq!(mc[0]["memcache.response.command"], "STORED");
    assert_eq!(
        mc[1]["memcache.request.keys"],
        serde_json::json!(["skiff", "nokey"])
    );
    assert_eq!(
        mc[1]["memcache.response.keys"],
        serde_json::json!(["skiff"])
    );
}

/// The Python of the venv `scripts/ensure-test-deps` makes for mysql-connector-python and
/// pika.
const CLIENTS_PYTHON: &str = "/opt/skiff-tools/dbclients/bin/python";

/// Runs one of the real client scripts of `tests/clients`; it must succeed (it checks the
/// server's answers itself, so a failure there is a server or setup problem, said loudly).
fn run_client(script: &str) {
    assert!(
        std::path::Path::new(CLIENTS_PYTHON).exists(),
        "{CLIENTS_PYTHON} is missing: run scripts/ensure-test-deps"
    );
    let path = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(CLIENTS_PYTHON).arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// MySQL prepared statements from a real driver (mysql-connector-python's
/// `cursor(prepared=True)`: COM_STMT_PREPARE then COM_STMT_EXECUTE with binary parameters)
/// and an AMQP publish and basic.get from a real client (pika) against RabbitMQ.
#[test]
fn real_prepared_statements_and_amqp_become_transactions() {
    need_server(3306, "MariaDB");
    need_server(5672, "RabbitMQ");
    let capture = Capture::start(
        "packetbeat.interfaces.device: lo\npacketbeat.protocols:\n\
         - {type: mysql, ports: [3306]}\n\
         - {type: amqp, ports: [5672], send_request: true, send_response: true}\n",
    );
    run_client("mysql_prepared.py");
    run_client("amqp_publish_get.py");
    let evs = capture.finish();

    let insert = "INSERT INTO skiff_live_prep (id, name) VALUES (?, ?)";
    let mysql: Vec<_> = of(&evs, "mysql")
        .into_iter()
        .filter(|e| {
            e.get("query")
                .and_then(Value::as_str)
                .is_some_and(|q| q.contains("skiff_live_prep"))
                || e.get("error.message")
                    .and_then(Value::as_str)
                    .is_some_and(|q| q.contains("skiff_live_prep"))
        })
        .collect();
    let prepares: Vec<_> = mysql
        .iter()
        .filter(|e| e["query"] == "Request Prepare Statement")
        .collect();
    assert_eq!(
        prepares.len(),
        2,
        "an INSERT and a SELECT prepared: {mysql:#?}"
    );
    assert_eq!(prepares[0]["error.message"], insert);
    let inserts: Vec<_> = mysql.iter().filter(|e| e["query"] == insert).collect();
    assert_eq!(inserts.len(), 3, "{mysql:#?}");
    assert_eq!(inserts[0]["method"], "INSERT");
    assert_eq!(inserts[0]["params"], serde_json::json!(["1", "one"]));
    assert_eq!(inserts[0]["status"], "OK");
    assert_eq!(inserts[0]["mysql.affected_rows"], 1);
    assert_eq!(inserts[1]["params"], serde_json::json!(["2", "two"]));
    assert_eq!(inserts[1]["mysql.affected_rows"], 1);
    assert_eq!(inserts[2]["params"], serde_json::json!(["1", "dup"]));
    assert_eq!(inserts[2]["status"], "Error");
    assert_eq!(inserts[2]["mysql.error_code"], 1062);
    let select = find(
        &mysql,
        "query",
        "SELECT id, name FROM skiff_live_prep WHERE id >= ?",
    );
    assert_eq!(select["method"], "SELECT");
    assert_eq!(select["params"], serde_json::json!(["1"]));
    assert_eq!(select["status"], "OK");
    assert_eq!(select["mysql.num_rows"], 2);
    assert_eq!(select["mysql.num_fields"], 2);

    let amqp: Vec<_> = of(&evs, "amqp")
        .into_iter()
        .filter(|e| {
            e.get("amqp.queue") == Some(&Value::from("skiff.live"))
                || e.get("amqp.routing-key") == Some(&Value::from("skiff.live"))
        })
        .collect();
    let methods: Vec<_> = amqp.iter().map(|e| e["method"].clone()).collect();
    assert_eq!(
        methods,
        [
            "queue.declare",
            "queue.purge",
            "basic.publish",
            "basic.publish",
            "basic.publish",
            "basic.get",
            "basic.get",
            "basic.get",
            "queue.delete",
        ],
        "{amqp:#?}"
    );
    assert!(amqp.iter().all(|e| e["status"] == "OK"), "{amqp:#?}");
    assert_eq!(amqp[0]["amqp.durable"], false);
    let bodies = ["a".to_string(), "bb".repeat(10), "c".repeat(300)];
    for (publish, body) in amqp[2..5].iter().zip(&bodies) {
        assert_eq!(publish["amqp.exchange"], "");
        assert_eq!(publish["amqp.content-type"], "text/plain");
        assert_eq!(publish["request"], body.as_str());
    }
    for (get, body) in amqp[5..8].iter().zip(&bodies) {
        assert_eq!(get["amqp.routing-key"], "skiff.live");
        assert_eq!(get["response"], body.as_str());
    }
}
