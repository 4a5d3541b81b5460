//! The `tcp` input against real clients (`socat`, Python): framing, limits, TLS, and
//! back-pressure while the output is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use skiff_metrics::names;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_from_socat_carry_the_source_address() {
    need("socat");
    let p = Pipeline::new(1024, true);
    let port = free_port();
    let _stop = p.start(&skiff_input_net::TCP, &format!("host: '127.0.0.1:{port}'"));
    wait_tcp(port).await;
    sh(&format!(
        "printf 'first\\r\\nsecond\\n\\nthird' | socat -t 2 - TCP:127.0.0.1:{port}"
    ))
    .await;
    let seen = p.wait_for(3).await;
    assert_eq!(p.messages(), ["first", "second", "third"]);
    let addr = seen[0]["log"]["source"]["address"].as_str().unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert_eq!(seen[0]["input"]["type"], "tcp");
    assert_eq!(seen[0]["agent"]["type"], "filebeat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octet_counting_and_a_custom_delimiter() {
    let p = Pipeline::new(1024, true);
    let port = free_port();
    let _stop = p.start(
        &skiff_input_net::TCP,
        &format!("host: '127.0.0.1:{port}'\nframing: rfc6587\nline_delimiter: '|'"),
    );
    wait_tcp(port).await;
    // Sent in pieces that split a count and a message, as a slow sender would.
    python(&format!(
        r#"
import socket, time
s = socket.create_connection(("127.0.0.1", {port}))
for part in [b"1", b"1 hello", b"\nworld", b"plain|", b"3 abc"]:
    s.sendall(part); time.sleep(0.05)
s.close()
"#
    ))
    .await;
    p.wait_for(3).await;
    assert_eq!(p.messages(), ["hello\nworld", "plain", "abc"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_closes_its_connection_and_is_counted() {
    let p = Pipeline::new(1024, true);
    let port = free_port();
    let _stop = p.start(
        &skiff_input_net::TCP,
        &format!("host: '127.0.0.1:{port}'\nmax_message_size: 10"),
    );
    wait_tcp(port).await;
    python(&format!(
        r#"
import socket
s = socket.create_connection(("127.0.0.1", {port}))
s.sendall(b"short\n" + b"x" * 100 + b"\nnever\n")
s.shutdown(socket.SHUT_WR)
s.settimeout(10)
assert s.recv(10) == b""   # we closed it
"#
    ))
    .await;
    p.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(p.messages(), ["short"]);
    assert_eq!(
        p.counter(
            &names::NET_DROPPED,
            &[("input", "in"), ("reason", "too_large")]
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_makes_further_clients_wait_not_fail() {
    let p = Pipeline::new(1024, true);
    let port = free_port();
    let _stop = p.start(
        &skiff_input_net::TCP,
        &format!("host: '127.0.0.1:{port}'\nmax_connections: 1"),
    );
    wait_tcp(port).await;
    python(&format!(
        r#"
import socket, time
a = socket.create_connection(("127.0.0.1", {port}))
a.sendall(b"from-a\n")
time.sleep(0.3)
b = socket.create_connection(("127.0.0.1", {port}))  # waits in the backlog
b.sendall(b"from-b\n")
time.sleep(0.5)
a.sendall(b"a-again\n"); a.close()
b.close()
"#
    ))
    .await;
    p.wait_for(3).await;
    // b was served only after a left.
    assert_eq!(p.messages(), ["from-a", "a-again", "from-b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_python_client() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certs(dir.path());
    let p = Pipeline::new(1024, true);
    let port = free_port();
    let _stop = p.start(
        &skiff_input_net::TCP,
        &format!("host: '127.0.0.1:{port}'\nssl.certificate: {cert}\nssl.key: {key}"),
    );
    wait_tcp(port).await;
    python(&format!(
        r#"
import socket, ssl
ctx = ssl.create_default_context(cafile="{ca}")
with socket.create_connection(("127.0.0.1", {port})) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"secret one\nsecret two\n")
"#
    ))
    .await;
    p.wait_for(2).await;
    assert_eq!(p.messages(), ["secret one", "secret two"]);
}

/// Nothing is lost while the output is down: the input stops reading, TCP pushes back on the
/// sender, and once the output is back every line arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_down_pushes_back_and_loses_nothing() {
    let p = Pipeline::new(64, false);
    let port = free_port();
    let _stop = p.start(&skiff_input_net::TCP, &format!("host: '127.0.0.1:{port}'"));
    wait_tcp(port).await;
    // 24 MB: more than the socket buffers of both ends can hold, even autotuned.
    let n = 120_000;
    let pad = "x".repeat(190);
    let client = tokio::spawn(python_owned(format!(
        r#"
import socket
s = socket.create_connection(("127.0.0.1", {port}))
s.sendall(b"".join(b"line-%07d {pad}\n" % i for i in range({n})))
s.close()
"#
    )));
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The client is blocked: the queue (64 events) and the socket buffers hold the rest.
    assert!(!client.is_finished(), "the sender was never pushed back");
    assert_eq!(p.seen.lock().unwrap().len(), 0);
    p.gate.send(true).unwrap();
    client.await.unwrap();
    p.wait_for(n).await;
    let msgs = p.messages();
    assert_eq!(msgs.len(), n);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m, &format!("line-{i:07} {pad}"));
    }
}

async fn python_owned(program: String) {
    python(&program).await
}
