//! The `unix` input, stream and datagram, against real clients (`socat`, `logger -u`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_socket_with_mode_and_cleanup() {
    need("socat");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.sock");
    let p = Pipeline::new(1024, true);
    let stop = p.start(
        &skiff_input_net::UNIX,
        &format!("path: {}\nmode: '0660'", path.display()),
    );
    wait_path(&path).await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o660);
    sh(&format!(
        "printf 'a\\nb\\n' | socat -t 2 - UNIX-CONNECT:{}",
        path.display()
    ))
    .await;
    let seen = p.wait_for(2).await;
    assert_eq!(p.messages(), ["a", "b"]);
    assert_eq!(
        seen[0]["log"]["source"]["address"],
        path.display().to_string()
    );
    assert_eq!(seen[0]["input"]["type"], "unix");
    stop.cancel();
    for _ in 0..200 {
        if !path.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!path.exists(), "the socket file was left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagram_socket_and_a_stale_socket_file() {
    need("logger");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dgram.sock");
    // A socket file left by a crashed run is replaced.
    let _old = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let p = Pipeline::new(1024, true);
    let _stop = p.start(
        &skiff_input_net::UNIX,
        &format!("path: {}\nsocket_type: datagram", path.display()),
    );
    wait_status(&p).await;
    sh(&format!(
        "logger -u {} --socket-errors=on -t app 'via logger'",
        path.display()
    ))
    .await;
    p.wait_for(1).await;
    let m = &p.messages()[0];
    // logger writes the local syslog format to a unix socket; the plain input keeps it whole.
    assert!(m.contains("app") && m.ends_with("via logger"), "{m}");
}
