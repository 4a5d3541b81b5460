//! The http_endpoint input against curl: bodies to events, basic auth, HMAC, TLS, and the
//! response held back until the output acknowledged. The pipeline harness is the network
//! inputs' (a real queue and worker, an output that can be held down).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../skiff-input-net/tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

/// Runs curl, returns (status, body).
async fn curl(args: &str) -> (u16, String) {
    need("curl");
    let cmd = format!("curl -s -m 60 -w '\\n%{{http_code}}' {args}");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sh").arg("-c").arg(&cmd).output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_become_events_and_bad_requests_are_refused() {
    let p = Pipeline::new(1024, true);
    let port = free_port();
    let _stop = p.start(
        &skiff_input_http::PLUGIN,
        &format!("listen_port: {port}\nurl: /hook\ninclude_headers: [X-Request-Id]\npreserve_original_event: true"),
    );
    wait_tcp(port).await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let (code, body) = curl(&format!(
        "-H 'Content-Type: application/json' -H 'X-Request-Id: r1' -d '{{\"a\":1}}' {url}"
    ))
    .await;
    assert_eq!((code, body.as_str()), (200, r#"{"message": "success"}"#));
    let (code, _) = curl(&format!(
        "-H 'Content-Type: application/json' -d '[{{\"b\":1}},{{\"b\":2}}]' {url}"
    ))
    .await;
    assert_eq!(code, 200);
    let seen = p.wait_for(3).await;
    assert_eq!(seen[0]["json"], json!({"a": 1}));
    assert_eq!(seen[0]["headers"]["X-Request-Id"], "r1");
    assert_eq!(seen[0]["event"]["original"], r#"{"a":1}"#);
    assert_eq!(seen[0]["input"]["type"], "http_endpoint");
    assert!(seen[0].get("message").is_none());
    assert_eq!(seen[2]["json"], json!({"b": 2}));
    assert_eq!(
        curl(&format!(
            "-H 'Content-Type: application/json' -d 'nope' {url}"
        ))
        .await
        .0,
        400
    );
    assert_eq!(
        curl(&format!("-H 'Content-Type: text/plain' -d '{{}}' {url}"))
            .await
            .0,
        415
    );
    assert_eq!(curl(&url).await.0, 405);
    assert_eq!(
        curl(&format!(
            "-H 'Content-Type: application/json' -d '{{}}' http://127.0.0.1:{port}/other"
        ))
        .await
        .0,
        404
    );
    assert_eq!(p.seen.lock().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_and_hmac() {
    need("openssl");
    let p = Pipeline::new(1024, true);
    let port = free_port();
    let _stop = p.start(
        &skiff_input_http::PLUGIN,
        &format!(
            "listen_port: {port}\nbasic_auth: true\nusername: u\npassword: p4ss\nhmac.header: X-Hub-Signature-256\nhmac.key: s3cret\nhmac.type: sha256\nhmac.prefix: 'sha256='"
        ),
    );
    wait_tcp(port).await;
    let url = format!("http://127.0.0.1:{port}/");
    let body = r#"{"event":"push"}"#;
    // The signature as GitHub computes it: hex HMAC-SHA256 of the body.
    let sig = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf '%s' '{body}' | openssl dgst -sha256 -hmac s3cret -r | cut -d' ' -f1"
        ))
        .output()
        .unwrap();
    let sig = String::from_utf8(sig.stdout).unwrap().trim().to_owned();
    assert_eq!(sig.len(), 64);
    let ok = format!(
        "-u u:p4ss -H 'Content-Type: application/json' -H 'X-Hub-Signature-256: sha256={sig}' -d '{body}' {url}"
    );
    assert_eq!(curl(&ok).await.0, 200);
    let wrong_pw = format!(
        "-u u:nope -H 'Content-Type: application/json' -H 'X-Hub-Signature-256: sha256={sig}' -d '{body}' {url}"
    );
    assert_eq!(curl(&wrong_pw).await.0, 401);
    let tampered = format!(
        "-u u:p4ss -H 'Content-Type: application/json' -H 'X-Hub-Signature-256: sha256={sig}' -d '{{\"event\":\"pull\"}}' {url}"
    );
    let (code, body) = curl(&tampered).await;
    assert_eq!(code, 401);
    assert!(body.contains("HMAC"), "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(p.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certs(dir.path());
    let p = Pipeline::new(1024, true);
    let port = free_port();
    let _stop = p.start(
        &skiff_input_http::PLUGIN,
        &format!("listen_port: {port}\nssl.certificate: {cert}\nssl.key: {key}"),
    );
    wait_tcp(port).await;
    let (code, _) = curl(&format!(
        "--cacert {ca} -H 'Content-Type: application/json' -d '{{\"tls\":true}}' https://localhost:{port}/"
    ))
    .await;
    assert_eq!(code, 200);
    assert_eq!(p.wait_for(1).await[0]["json"]["tls"], true);
}

/// The 200 is the acknowledgement: with the output down, curl waits; once the output
/// delivered, it gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_waits_for_the_output() {
    let p = Pipeline::new(1024, false);
    let port = free_port();
    let _stop = p.start(&skiff_input_http::PLUGIN, &format!("listen_port: {port}"));
    wait_tcp(port).await;
    let args =
        format!("-H 'Content-Type: application/json' -d '{{\"n\":1}}' http://127.0.0.1:{port}/");
    let req = tokio::spawn(async move { curl(&args).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!req.is_finished(), "answered before the output delivered");
    p.gate.send(true).unwrap();
    let (code, _) = req.await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(p.seen.lock().unwrap().len(), 1);
}
