//! The `container` input on the real binary, against container runtime log files: Docker's
//! `json-file` (a long line split into 16 KiB pieces) and CRI (partial `P` lines), with
//! Filebeat's defaults and the `stream` filter. The lines are written the way dockerd and
//! containerd write them (formats from their documentation and source).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Sandbox;

fn events(sb: &Sandbox) -> Vec<serde_json::Value> {
    let Ok(dir) = std::fs::read_dir(sb.path().join("out")) else {
        return Vec::new();
    };
    let mut all = Vec::new();
    for f in dir {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
        all.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
    }
    all
}

#[test]
fn docker_json_file_and_cri_lines_become_messages() {
    let sb = Sandbox::new();
    let long = "x".repeat(16 * 1024 + 100);
    let docker = format!(
        concat!(
            "{{\"log\":\"hello from docker\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-01T10:00:00.123456789Z\"}}\n",
            "{{\"log\":\"an error\\n\",\"stream\":\"stderr\",\"time\":\"2024-05-01T10:00:01Z\"}}\n",
            "{{\"log\":\"{a}\",\"stream\":\"stdout\",\"time\":\"2024-05-01T10:00:02Z\"}}\n",
            "{{\"log\":\"{b}\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-01T10:00:02Z\"}}\n",
        ),
        a = &long[..16 * 1024],
        b = &long[16 * 1024..]
    );
    sb.write("containers/app_default_docker-1.log", &docker);
    let cri = concat!(
        "2024-05-01T10:00:03.000000001Z stdout F hello from cri\n",
        "2024-05-01T10:00:04Z stdout P part one, \n",
        "2024-05-01T10:00:04Z stdout F part two\n",
        "2024-05-01T10:00:05Z stderr F cri error\n",
        "not a container line\n",
    );
    sb.write("containers/app_default_cri-2.log", cri);
    // All streams from one input (paths given; every other setting Filebeat's default), only
    // stderr from another.
    let cfg = sb.write(
        "skiff.yml",
        r#"
filebeat.inputs:
  - type: container
    paths: ["$DIR/containers/*.log"]
    prospector.scanner.check_interval: 100ms
  - type: container
    id: errors-only
    paths: ["$DIR/containers/*cri*.log"]
    stream: stderr
    tags: [errors]
output.file: {path: "$DIR/out", filename: out}
"#,
    );
    let child = sb
        .cmd(&cfg, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while events(&sb).len() < 7 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Time for anything that should not be there to show up.
    std::thread::sleep(Duration::from_secs(1));
    common::sigterm(&child);
    let out = common::wait_with_timeout(child, Duration::from_secs(60));
    let log = String::from_utf8_lossy(&out.stderr);
    let got = events(&sb);
    let find = |msg: &str, tagged: bool| -> Vec<&serde_json::Value> {
        got.iter()
            .filter(|e| {
                e["message"] == msg && (e["tags"] == serde_json::json!(["errors"])) == tagged
            })
            .collect()
    };
    let one = |msg: &str, tagged: bool| -> &serde_json::Value {
        let f = find(msg, tagged);
        assert_eq!(
            f.len(),
            1,
            "{msg:?} (tagged {tagged}): {f:?}\nall: {got:#?}\n{log}"
        );
        f[0]
    };
    let e = one("hello from docker", false);
    assert_eq!(e["stream"], "stdout");
    assert_eq!(e["@timestamp"], "2024-05-01T10:00:00.123Z");
    assert_eq!(one("an error", false)["stream"], "stderr");
    // The 16 KiB pieces of one Docker line are one message.
    one(&long, false);
    assert_eq!(one("hello from cri", false)["stream"], "stdout");
    one("part one, part two", false);
    assert_eq!(one("cri error", false)["stream"], "stderr");
    // The stderr-only input.
    one("cri error", true);
    assert!(find("hello from cri", true).is_empty());
    // 6 messages from the first input, 1 from the second; the garbage line is dropped.
    assert_eq!(got.len(), 7, "{got:#?}");
    assert_eq!(out.status.code(), Some(0), "{log}");
}
