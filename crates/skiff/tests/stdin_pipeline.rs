//! stdin -> file output through the real binary: every line exactly once, in order, with the
//! ECS fields Filebeat emits; and the monitoring endpoint agrees with what was shipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Sandbox, free_port, http_get};
use serde_json::Value;

fn lines(n: usize) -> Vec<String> {
    // Varied content: quotes, backslashes, UTF-8, tabs, an empty line.
    (0..n)
        .map(|i| match i % 5 {
            0 => format!("line {i} plain"),
            1 => format!("line {i} \"quoted\" back\\slash\ttab"),
            2 => format!("line {i} naïve 日本語 🚤"),
            3 => String::new(),
            _ => format!("line {i} {}", "x".repeat(i % 300)),
        })
        .collect()
}

#[test]
fn stdin_to_file_every_line_once_in_order_with_ecs_fields() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "skiff.yml",
        "name: test-agent\ntags: [t1]\nfields: {env: ci}\ninputs:\n  - type: stdin\n    tags: [from-stdin]\noutput.file:\n  path: $DIR/out\n  filename: events\n  rotate_every_kb: 64\n  number_of_files: 100\nqueue.mem: {events: 100, flush.timeout: 10ms}\n",
    );
    let input = lines(5000);
    let mut data = input.join("\n").into_bytes();
    data.push(b'\n');
    let out = sb.run_with_stdin(&cfg, &[], &data);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Rotated files: events.ndjson is the newest; events-N / events.N older. Order by mtime-free
    // rule: collect all events and sort by the position we can recover from log.offset if any,
    // else rely on the message numbering below.
    let events: Vec<Value> = sb
        .read_lines("out", "events")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Empty lines are not events (as in Filebeat).
    let input: Vec<String> = input.into_iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(events.len(), input.len(), "every line exactly once");
    let mut messages: Vec<(usize, String)> = Vec::new();
    for e in &events {
        let m = e["message"].as_str().expect("message").to_owned();
        assert_eq!(e["input"]["type"], "stdin");
        assert_eq!(e["agent"]["name"], "test-agent");
        assert_eq!(e["agent"]["type"], "filebeat");
        assert!(e["agent"]["id"].as_str().is_some_and(|s| s.len() == 36));
        assert!(e["agent"]["ephemeral_id"].is_string());
        assert!(e["agent"]["version"].is_string());
        assert!(e["host"]["name"].is_string());
        assert_eq!(e["ecs"]["version"], "8.0.0");
        assert_eq!(e["fields"]["env"], "ci");
        assert_eq!(e["tags"], serde_json::json!(["t1", "from-stdin"]));
        let ts = e["@timestamp"].as_str().unwrap();
        assert!(ts.len() == 24 && ts.ends_with('Z'), "{ts}");
        // As Filebeat's file output does, each line carries @metadata.
        assert_eq!(e["@metadata"]["beat"], "filebeat");
        messages.push((e["log"]["offset"].as_u64().unwrap_or(0) as usize, m));
    }
    // Order: within the output, events are in publication order per file; across rotated files
    // sort by offset (stdin reports the byte offset of each line).
    messages.sort_by_key(|(o, _)| *o);
    let got: Vec<&str> = messages.iter().map(|(_, m)| m.as_str()).collect();
    let want: Vec<&str> = input.iter().map(String::as_str).collect();
    assert_eq!(got, want);
}

#[test]
fn stats_and_metrics_agree_with_what_was_shipped() {
    let sb = Sandbox::new();
    let port = free_port();
    let cfg = sb.write(
        "skiff.yml",
        &format!(
            "inputs: [{{type: stdin}}]\noutput.file: {{path: $DIR/out, filename: ev}}\nqueue.mem: {{flush.timeout: 10ms}}\nhttp: {{enabled: true, port: {port}}}\n"
        ),
    );
    let mut child = sb
        .cmd(&cfg, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..1234 {
        writeln!(stdin, "event {i}").unwrap();
    }
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let stats = loop {
        if let Some(body) = http_get(port, "/stats") {
            let v: Value = serde_json::from_str(&body).unwrap();
            if v["libbeat"]["output"]["events"]["acked"] == 1234 {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "skiff never reported 1234 acked events"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let shipped = sb.read_lines("out", "ev").len();
    assert_eq!(shipped, 1234);
    assert_eq!(stats["libbeat"]["pipeline"]["events"]["published"], 1234);
    assert!(
        stats["libbeat"]["output"]["write"]["bytes"]
            .as_u64()
            .unwrap()
            > 1234 * 10
    );
    assert!(stats["beat"]["memstats"]["rss"].as_u64().unwrap() > 0);
    let prom = http_get(port, "/metrics").unwrap();
    assert!(
        prom.contains("skiff_libbeat_output_events_acked_total 1234"),
        "{prom}"
    );
    assert!(prom.contains("# TYPE skiff_libbeat_output_events_acked_total counter"));
    let root: Value = serde_json::from_str(&http_get(port, "/").unwrap()).unwrap();
    assert_eq!(root["beat"], "skiff");
    let health: Value = serde_json::from_str(&http_get(port, "/health").unwrap()).unwrap();
    assert_eq!(health["ok"], true, "{health}");
    assert_eq!(health["components"]["input/stdin-0"]["state"], "running");
    assert_eq!(health["components"]["input/stdin-0"]["restarts"], 0);
    assert_eq!(health["components"]["output/file"]["state"], "running");
    drop(stdin);
    let out = common::wait_with_timeout(child, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
