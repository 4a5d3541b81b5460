//! Supervision through the real binary: a panicking input is restarted and loses nothing; an
//! input that cannot be restarted stops skiff with exit code 3 and the reason; stdin events
//! that could not be delivered before skiff was stopped make exit code 4 with their count.
//! Faults are injected with the fault point `input.run.panic` (`SKIFF_TEST_FAULTS`), which
//! fires in the input's task before its `run` reads anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Sandbox, free_port, sigterm, wait_with_timeout};

const QUICK: &str =
    "supervision: {max_restarts: 3, restart_window: 1m, backoff: {init: 10ms, max: 50ms}}\n";

fn lines(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        writeln!(v, "line {i}").unwrap();
    }
    v
}

/// The regression this guards: an input's panic was only logged when skiff stopped, and its
/// events were never read. Now the input is restarted and, as the panic came before it read
/// anything, every line arrives exactly once.
#[test]
fn a_panicking_input_is_restarted_and_every_line_arrives_once() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "skiff.yml",
        &format!(
            "inputs:\n  - type: stdin\noutput.file: {{path: $DIR/out, filename: events}}\nqueue.mem: {{flush.timeout: 10ms}}\n{QUICK}"
        ),
    );
    let out = run_with_faults(&sb, &cfg, "input.run.panic=2", lines(1000));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        out.status
    );
    // The panic hook names the component; the supervisor says it restarted it.
    assert!(
        stderr.contains("injected fault: input.run.panic") && stderr.contains("input/stdin-0"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("input restarted").count(), 2, "{stderr}");
    assert_each_line_once(&sb.read_lines("out", "events"), 1000);
}

/// The same for a file input: restarted after its panic, it reads from its saved state (here:
/// nothing saved yet, so from the start) and every line arrives once.
#[test]
fn a_panicking_file_input_is_restarted_and_every_line_arrives_once() {
    let sb = Sandbox::new();
    sb.write("logs/app.log", std::str::from_utf8(&lines(500)).unwrap());
    let cfg = sb.write(
        "skiff.yml",
        &format!(
            "inputs:\n  - type: filestream\n    id: app\n    paths: [$DIR/logs/*.log]\noutput.file: {{path: $DIR/out, filename: events}}\nqueue.mem: {{flush.timeout: 10ms}}\n{QUICK}"
        ),
    );
    let child = sb
        .cmd(&cfg, &[])
        .env("SKIFF_TEST_FAULTS", "input.run.panic=2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let shipped = || {
        if sb.path().join("out").is_dir() {
            sb.read_lines("out", "events")
        } else {
            Vec::new()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while shipped().len() < 500 {
        assert!(
            Instant::now() < deadline,
            "only {} lines shipped",
            shipped().len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&child);
    let out = wait_with_timeout(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        out.status
    );
    assert_eq!(stderr.matches("input restarted").count(), 2, "{stderr}");
    assert_each_line_once(&shipped(), 500);
}

/// An input that fails at every start cannot run: skiff must not retry it forever unseen, nor
/// exit 0; it exits 3 with the reason.
#[test]
fn an_input_that_cannot_be_restarted_stops_skiff_non_zero_with_the_reason() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "skiff.yml",
        &format!("inputs:\n  - type: stdin\noutput.discard: {{}}\n{QUICK}"),
    );
    let out = run_with_faults(&sb, &cfg, "input.run.panic=1000", lines(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(
        stderr.contains("stopped because a component failed: input stdin-0 failed 4 times"),
        "{stderr}"
    );
    assert!(
        stderr.contains("injected fault: input.run.panic"),
        "{stderr}"
    );
}

/// stdin at end of input, an output that never confirms: skiff keeps trying to deliver (it
/// must not exit 0 with events unacknowledged); a SIGTERM then stops it with exit code 4 and
/// the number of events that are lost.
#[test]
fn stdin_events_left_unacknowledged_at_stop_make_a_non_zero_exit_with_their_count() {
    let sb = Sandbox::new();
    // Nothing listens on this port: every send fails with "connection refused".
    let port = free_port();
    let cfg = sb.write(
        "skiff.yml",
        &format!(
            "inputs:\n  - type: stdin\noutput.redis: {{hosts: [\"127.0.0.1:{port}\"], key: k, backoff: {{init: 10ms, max: 50ms}}}}\nqueue.mem: {{flush.timeout: 10ms}}\n"
        ),
    );
    let mut child = sb
        .cmd(&cfg, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&lines(50)).unwrap();
    drop(stdin);
    let log = Arc::new(Mutex::new(String::new()));
    let mut err = child.stderr.take().unwrap();
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log.lock().unwrap().contains("every input has ended") {
        assert!(
            Instant::now() < deadline,
            "stdin never ended; stderr:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Some failed sends later it is still running: it does not give up on its own.
    while log.lock().unwrap().matches("will retry").count() < 3 {
        assert!(
            Instant::now() < deadline,
            "no retries seen; stderr:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "skiff exited by itself"
    );
    sigterm(&child);
    let out = wait_with_timeout(child, Duration::from_secs(30));
    reader.join().unwrap();
    let stderr = log.lock().unwrap().clone();
    assert_eq!(out.status.code(), Some(4), "stderr:\n{stderr}");
    assert!(
        stderr.contains("50 events were left unacknowledged and will not be sent again"),
        "{stderr}"
    );
}

/// `shipped` (the output file's JSON lines) are `line 0` .. `line n-1`, each exactly once.
fn assert_each_line_once(shipped: &[String], n: usize) {
    let mut got: Vec<String> = shipped
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message"].as_str().unwrap().to_owned()
        })
        .collect();
    got.sort_by_key(|m| m[5..].parse::<usize>().unwrap());
    let want: Vec<String> = (0..n).map(|i| format!("line {i}")).collect();
    assert_eq!(got, want, "every line exactly once");
}

/// Runs skiff with `faults` armed and `data` on its standard input, and waits.
fn run_with_faults(
    sb: &Sandbox,
    cfg: &std::path::Path,
    faults: &str,
    data: Vec<u8>,
) -> std::process::Output {
    sb.run_with_stdin_env(cfg, &[], &[("SKIFF_TEST_FAULTS", faults)], &data)
}
