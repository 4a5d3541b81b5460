//! The journald input on journal files written by the test itself (systemd-journal-remote
//! turns the journal export format into a real journal file), read through the real
//! journalctl: fields, resuming from the saved cursor, and re-reading what the output had not
//! acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../skiff-input-net/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Writes a journal file `file` with one entry per message (export format -> journal file).
fn journal(file: &Path, first_second: u64, msgs: &[&str]) {
    assert!(
        Path::new(REMOTE).exists(),
        "{REMOTE} is missing: run scripts/ensure-test-deps (package systemd-journal-remote)"
    );
    let mut export = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let t = (first_second + i as u64) * 1_000_000;
        write!(
            export,
            "__REALTIME_TIMESTAMP={t}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\nMESSAGE={m}\nPRIORITY=3\nSYSLOG_IDENTIFIER=testapp\n_PID=4242\n_SYSTEMD_UNIT=testapp.service\n_HOSTNAME=journal-host\n_TRANSPORT=journal\nCUSTOM_KEY=v{i}\n\n",
            t
        )
        .unwrap();
    }
    let mut child = Command::new(REMOTE)
        .arg(format!("--output={}", file.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&export).unwrap();
    assert!(child.wait().unwrap().success());
}

fn pipeline(data: &Path, open: bool) -> Pipeline {
    let mut p = Pipeline::new(1024, open);
    p.ctx.paths.data = data.to_owned();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_fields_and_resume_after_the_cursor() {
    need("journalctl");
    let dir = tempfile::tempdir().unwrap();
    let (logs, data) = (dir.path().join("logs"), dir.path().join("data"));
    std::fs::create_dir_all(&logs).unwrap();
    journal(
        &logs.join("a.journal"),
        1_700_000_000,
        &["one", "two", "three"],
    );
    let yaml = format!("paths: [{}]", logs.display());
    let p = pipeline(&data, true);
    let stop = p.start(&skiff_input_journald::PLUGIN, &yaml);
    let seen = p.wait_for(3).await;
    assert_eq!(p.messages(), ["one", "two", "three"]);
    let ev = &seen[0];
    assert_eq!(ev["@timestamp"], "2023-11-14T22:13:20.000Z");
    assert_eq!(ev["log"]["syslog"]["priority"], 3);
    assert_eq!(ev["log"]["syslog"]["identifier"], "testapp");
    assert_eq!(ev["process"]["pid"], 4242);
    assert_eq!(ev["systemd"]["unit"], "testapp.service");
    assert_eq!(ev["host"]["hostname"], "journal-host");
    assert_eq!(ev["journald"]["custom"]["custom_key"], "v0");
    assert_eq!(ev["input"]["type"], "journald");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // New entries in a new file of the directory; a restart reads only those.
    journal(&logs.join("b.journal"), 1_700_000_100, &["four", "five"]);
    let p = pipeline(&data, true);
    let _stop = p.start(&skiff_input_journald::PLUGIN, &yaml);
    p.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.messages(), ["four", "five"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_not_acknowledged_are_read_again() {
    need("journalctl");
    let dir = tempfile::tempdir().unwrap();
    let (logs, data) = (dir.path().join("logs"), dir.path().join("data"));
    std::fs::create_dir_all(&logs).unwrap();
    journal(&logs.join("a.journal"), 1_700_000_000, &["x1", "x2"]);
    let yaml = format!("paths: [{}]\nunits: [testapp.service]", logs.display());
    // Output down: the entries are read, never delivered.
    let p = pipeline(&data, false);
    let stop = p.start(&skiff_input_journald::PLUGIN, &yaml);
    for _ in 0..500 {
        if p.counter(&skiff_metrics::names::INPUT_EVENTS, &[("input", "in")]) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(p.seen.lock().unwrap().is_empty());
    // Output up: both are read again and delivered.
    let p = pipeline(&data, true);
    let _stop = p.start(&skiff_input_journald::PLUGIN, &yaml);
    p.wait_for(2).await;
    assert_eq!(p.messages(), ["x1", "x2"]);
}
