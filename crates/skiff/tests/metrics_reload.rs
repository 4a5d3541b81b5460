//! `metricbeat.config.modules` with `reload.enabled`, on the real binary with real files: module
//! blocks added, changed and removed while skiff runs start, restart and stop; a block that did
//! not change keeps running untouched; a broken file refuses the reload and leaves the running
//! blocks as they are. The blocks are `system`/`uptime` (local, no server needed), told apart
//! by a `fields.block` value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Sandbox;

/// Events at the output per `fields.block`.
fn counts(sb: &Sandbox) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(sb.path().join("out")) else {
        return out;
    };
    for f in dir {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(b) = v["fields"]["block"].as_str()
            {
                assert_eq!(v["metricset"]["name"], "uptime", "{v}");
                assert_eq!(v["event"]["dataset"], "system.uptime", "{v}");
                *out.entry(b.to_owned()).or_insert(0) += 1;
            }
        }
    }
    out
}

fn count(sb: &Sandbox, block: &str) -> usize {
    counts(sb).get(block).copied().unwrap_or(0)
}

/// Waits (a minute at most) until `block` has `n` more events than now.
fn grows(sb: &Sandbox, block: &str, n: usize) {
    let from = count(sb, block);
    let start = Instant::now();
    while count(sb, block) < from + n {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "`{block}` did not get {n} more events: {:?}",
            counts(sb)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that `block` gets no event while `other` gets `n` (the reload period is 200 ms and
/// blocks fetch every 200 ms, so `n` of the other's events span several reloads).
fn stays(sb: &Sandbox, block: &str, other: &str, n: usize) {
    // Events of `block` fetched before it stopped may still be on their way: wait for the
    // others to move first, then take the count.
    grows(sb, other, n);
    let before = count(sb, block);
    grows(sb, other, n);
    assert_eq!(
        count(sb, block),
        before,
        "`{block}` still runs: {:?}",
        counts(sb)
    );
}

fn module(sb: &Sandbox, file: &str, block: &str) {
    sb.write(
        &format!("modules.d/{file}"),
        &format!(
            "- module: system\n  metricsets: [uptime]\n  period: 200ms\n  fields: {{block: {block}}}\n"
        ),
    );
}

fn start(sb: &Sandbox) -> Child {
    let cfg = sb.write(
        "metricbeat.yml",
        "metricbeat.max_start_delay: 0s\nmetricbeat.config.modules:\n  path: $DIR/modules.d/*.yml\n  reload.enabled: true\n  reload.period: 200ms\noutput.file: {path: \"$DIR/out\", filename: out, rotate_every_kb: 1048576}\nqueue.mem: {flush.timeout: 10ms}\n",
    );
    sb.cmd(&cfg, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stop(mut child: Child) -> String {
    common::sigterm(&child);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let out = common::wait_with_timeout(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{err}");
    err
}

#[test]
fn module_files_added_changed_and_removed_while_running() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("modules.d")).unwrap();
    module(&sb, "a.yml", "a");
    let child = start(&sb);
    grows(&sb, "a", 3);

    // Added: b starts, a keeps running.
    module(&sb, "b.yml", "b");
    grows(&sb, "b", 3);
    grows(&sb, "a", 3);

    // Changed: a becomes a2 (a stops, a2 starts); b runs on.
    module(&sb, "a.yml", "a2");
    grows(&sb, "a2", 3);
    stays(&sb, "a", "b", 5);

    // A disabled file is not read: b stops as if removed.
    std::fs::rename(
        sb.path().join("modules.d/b.yml"),
        sb.path().join("modules.d/b.yml.disabled"),
    )
    .unwrap();
    stays(&sb, "b", "a2", 5);

    // A broken file refuses the whole reload: a2 keeps running, c does not start.
    sb.write(
        "modules.d/c.yml",
        "- module: system\n  metricsets: [uptimee]\n  fields: {block: c}\n",
    );
    grows(&sb, "a2", 10);
    assert_eq!(count(&sb, "c"), 0);

    // Fixed, and a2 removed in the same reload.
    module(&sb, "c.yml", "c");
    std::fs::remove_file(sb.path().join("modules.d/a.yml")).unwrap();
    grows(&sb, "c", 3);
    stays(&sb, "a2", "c", 5);

    let log = stop(child);
    assert!(
        log.contains("metricbeat.config.modules")
            && log.contains("uptimee")
            && log.contains("the reload was refused"),
        "{log}"
    );
    // Adding b started one block and restarted nothing (a kept running untouched).
    let plain = strip_colours(&log);
    let started_b = plain
        .lines()
        .filter(|l| l.contains("inputs reloaded"))
        .nth(1)
        .unwrap_or_else(|| panic!("no second reload in {plain}"));
    assert!(
        started_b.contains("restarted=[]")
            && started_b.contains("stopped=[]")
            && started_b.contains("started=[\"metrics-"),
        "{started_b}"
    );
}

/// The log without its terminal colour sequences (`ESC [ ... m`).
fn strip_colours(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn test_config_and_test_modules_read_reloaded_module_files() {
    let sb = Sandbox::new();
    module(&sb, "a.yml", "a");
    let cfg = sb.write(
        "metricbeat.yml",
        "metricbeat.config.modules:\n  path: $DIR/modules.d/*.yml\n  reload.enabled: true\noutput.console: {}\n",
    );
    let out = sb.cmd(&cfg, &["test", "config"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sb.cmd(&cfg, &["test", "modules"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("system.uptime") || stdout.contains("uptime"),
        "{stdout}"
    );
    // A mistake in a module file is located in that file.
    sb.write(
        "modules.d/b.yml",
        "- module: system\n  metricsets: [uptimee]\n",
    );
    let out = sb.cmd(&cfg, &["test", "config"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("b.yml:2"), "{err}");
}
