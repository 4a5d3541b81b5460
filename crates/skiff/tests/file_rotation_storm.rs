//! The rotation storm from the seed report: Python's `TimedRotatingFileHandler` rotating every
//! second with 200 backups while writing 330 lines/s for 30 s. skiff (filestream -> file output)
//! must ship every line exactly once, with open files and memory flat.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, free_port, http_get};
use serde_json::Value;

const WRITER: &str = r#"
import logging, logging.handlers, sys, time
path, seconds, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
h = logging.handlers.TimedRotatingFileHandler(path, when="S", interval=1, backupCount=200)
h.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("storm"); log.addHandler(h); log.setLevel(logging.INFO)
start = time.time(); n = 0
while time.time() - start < seconds:
    target = int((time.time() - start) * rate)
    while n < target:
        log.info("storm line %08d %s", n, "x" * 80); n += 1
    time.sleep(0.005)
h.close()
print(n)
"#;

#[test]
fn rotation_storm_loses_and_duplicates_nothing() {
    let sb = Sandbox::new();
    let port = free_port();
    std::fs::create_dir_all(sb.path().join("logs")).unwrap();
    let cfg = sb.write(
        "skiff.yml",
        &format!(
            r#"
inputs:
  - type: filestream
    id: storm
    paths: ["$DIR/logs/app.log*"]
    prospector.scanner.check_interval: 1s
    close.on_state_change.inactive: 2s
    clean_removed: true
queue.mem: {{flush.timeout: 50ms}}
output.file: {{path: "$DIR/out", filename: storm, rotate_every_kb: 102400}}
http: {{enabled: true, port: {port}}}
"#
        ),
    );
    let mut skiff = sb
        .cmd(&cfg, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let seconds = 30;
    let writer = Command::new("python3")
        .args(["-c", WRITER])
        .arg(sb.path().join("logs/app.log"))
        .arg(seconds.to_string())
        .arg("330")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    // Sample open files and RSS while the storm lasts.
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        if let Some(body) = http_get(port, "/stats") {
            let v: Value = serde_json::from_str(&body).unwrap();
            let open = v["filebeat"]["harvester"]["open_files"]
                .as_u64()
                .unwrap_or(0);
            let rss = v["beat"]["memstats"]["rss"].as_u64().unwrap_or(0);
            samples.push((open, rss));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = writer.wait_with_output().unwrap();
    assert!(out.status.success());
    let written: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(written > 9000, "the writer wrote only {written} lines");

    // Wait until everything is shipped (or give up after a minute).
    let deadline = Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        if sb.path().join("out").exists() {
            for line in sb.read_lines("out", "storm") {
                let v: Value = serde_json::from_str(&line).unwrap();
                let msg = v["message"].as_str().unwrap();
                let n: usize = msg.split_whitespace().nth(2).unwrap().parse().unwrap();
                *counts.entry(n).or_default() += 1;
            }
        }
        if counts.len() >= written || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    unsafe_free_kill(&mut skiff);
    let missing: Vec<usize> = (0..written).filter(|n| !counts.contains_key(n)).collect();
    let duplicated: Vec<(&usize, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        missing.is_empty(),
        "{} lines lost, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        duplicated.is_empty(),
        "{} lines duplicated, first: {:?}",
        duplicated.len(),
        &duplicated[..duplicated.len().min(10)]
    );

    // Flat: open files stay bounded (not one per rotated file), RSS does not keep growing.
    let max_open = samples.iter().map(|s| s.0).max().unwrap_or(0);
    assert!(max_open <= 10, "open files grew to {max_open}");
    let half = samples.len() / 2;
    let first = samples[..half].iter().map(|s| s.1).max().unwrap_or(0);
    let second = samples[half..].iter().map(|s| s.1).max().unwrap_or(0);
    assert!(
        second <= first + first / 2 + (8 << 20),
        "RSS grew from {first} to {second}"
    );
}

/// Stops skiff with SIGTERM (via the `kill` command: no unsafe code needed) and waits.
fn unsafe_free_kill(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
}
