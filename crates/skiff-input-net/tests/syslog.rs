//! The `syslog` input against `logger` (util-linux) over UDP, TCP (octet counting and not) and
//! a unix socket, and against Python for RFC 5424 over TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

fn by_message<'a>(seen: &'a [serde_json::Value], m: &str) -> &'a serde_json::Value {
    seen.iter()
        .find(|v| v["message"] == m)
        .unwrap_or_else(|| panic!("no event {m:?} in {seen:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_rfc3164_and_rfc5424_over_udp() {
    need("logger");
    let p = Pipeline::new(1024, true);
    let port = free_udp_port();
    let _stop = p.start(
        &skiff_input_net::SYSLOG,
        &format!("format: auto\ntimezone: UTC\nprotocol.udp:\n  host: '127.0.0.1:{port}'"),
    );
    wait_status(&p).await;
    sh(&format!(
        "logger -n 127.0.0.1 -P {port} -d --rfc3164 -p local3.warning -t web -i 'bsd message'"
    ))
    .await;
    sh(&format!(
        "logger -n 127.0.0.1 -P {port} -d --rfc5424 -p auth.err -t sshd --msgid LOGIN --sd-id 'origin@32473' --sd-param 'ip=\"10.0.0.9\"' 'ietf message'"
    ))
    .await;
    let seen = p.wait_for(2).await;
    let bsd = by_message(&seen, "bsd message");
    let s = &bsd["log"]["syslog"];
    assert_eq!(s["priority"], 19 * 8 + 4);
    assert_eq!(s["facility"], json!({"code": 19, "name": "local3"}));
    assert_eq!(s["severity"], json!({"code": 4, "name": "Warning"}));
    assert_eq!(s["appname"], "web");
    assert_eq!(bsd["process"]["name"], "web");
    assert!(bsd["process"]["pid"].as_u64().unwrap() > 0);
    assert!(bsd["host"]["hostname"].is_string(), "{bsd}");
    assert!(
        bsd["log"]["source"]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let ietf = by_message(&seen, "ietf message");
    let s = &ietf["log"]["syslog"];
    assert_eq!(s["version"], 1);
    assert_eq!(s["severity"]["name"], "Error");
    assert_eq!(s["appname"], "sshd");
    assert_eq!(s["msgid"], "LOGIN");
    assert_eq!(s["structured_data"]["origin@32473"]["ip"], "10.0.0.9");
    assert_eq!(ietf["input"]["type"], "syslog");
    // logger's RFC 5424 time stamp has microseconds and a zone: it is taken as is.
    let ts = ietf["@timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_over_tcp_with_and_without_octet_counting() {
    need("logger");
    let p = Pipeline::new(1024, true);
    let port = free_port();
    let _stop = p.start(
        &skiff_input_net::SYSLOG,
        &format!("format: rfc5424\nprotocol.tcp:\n  host: '127.0.0.1:{port}'\n  framing: rfc6587"),
    );
    wait_tcp(port).await;
    sh(&format!(
        "logger -n 127.0.0.1 -P {port} -T --octet-count -t app 'counted message'"
    ))
    .await;
    sh(&format!(
        "logger -n 127.0.0.1 -P {port} -T -t app 'newline message'"
    ))
    .await;
    let seen = p.wait_for(2).await;
    for m in ["counted message", "newline message"] {
        assert_eq!(by_message(&seen, m)["log"]["syslog"]["appname"], "app");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_over_a_unix_socket() {
    need("logger");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let p = Pipeline::new(1024, true);
    let _stop = p.start(
        &skiff_input_net::SYSLOG,
        &format!(
            "protocol.unix:\n  path: {}\n  socket_type: datagram",
            path.display()
        ),
    );
    wait_path(&path).await;
    sh(&format!(
        "logger -u {} --socket-errors=on -p daemon.notice -t cron 'local message'",
        path.display()
    ))
    .await;
    let seen = p.wait_for(1).await;
    let ev = by_message(&seen, "local message");
    assert_eq!(ev["log"]["syslog"]["appname"], "cron");
    assert_eq!(ev["log"]["syslog"]["facility"]["name"], "system");
    assert_eq!(ev["log"]["syslog"]["severity"]["code"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5424_over_tls_with_octet_counting() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certs(dir.path());
    let p = Pipeline::new(1024, true);
    let port = free_port();
    let _stop = p.start(
        &skiff_input_net::SYSLOG,
        &format!(
            "format: rfc5424\nprotocol.tcp:\n  host: '127.0.0.1:{port}'\n  framing: rfc6587\n  ssl.certificate: {cert}\n  ssl.key: {key}"
        ),
    );
    wait_tcp(port).await;
    // RFC 5425: syslog over TLS, octet-counted frames.
    python(&format!(
        r#"
import socket, ssl
msgs = [
  '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] \ufeffAn application event log entry...',
  '<34>1 2026-12-06T10:00:00+01:00 host app 99 - - multi\nline',
]
ctx = ssl.create_default_context(cafile="{ca}")
with socket.create_connection(("127.0.0.1", {port})) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        for m in msgs:
            b = m.encode()
            s.sendall(b"%d " % len(b) + b)
"#
    ))
    .await;
    let seen = p.wait_for(2).await;
    let ev = by_message(&seen, "An application event log entry...");
    assert_eq!(ev["@timestamp"], "2003-10-11T22:14:15.003Z");
    assert_eq!(
        ev["log"]["syslog"]["structured_data"]["exampleSDID@32473"],
        json!({"iut": "3", "eventSource": "Application", "eventID": "1011"})
    );
    assert_eq!(ev["host"]["hostname"], "mymachine.example.com");
    let ev = by_message(&seen, "multi\nline");
    assert_eq!(ev["@timestamp"], "2026-12-06T09:00:00.000Z");
    assert_eq!(ev["process"]["pid"], 99);
}
