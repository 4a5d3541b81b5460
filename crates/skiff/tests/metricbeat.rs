//! Metrics modules through the real binary: a `metricbeat.yml` with several modules (beside
//! `filebeat.inputs`, plus a `modules.d` folder) passes `skiff test config`; mistakes in a
//! module block name the file, the line and the fix; `skiff test modules` fetches once and
//! prints events or errors; and `skiff run` ships metric events through processors to the
//! output with Metricbeat's envelope.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::{Sandbox, free_port, sigterm, wait_with_timeout};
use serde_json::Value;

const METRICBEAT_YML: &str = r#"
filebeat.inputs:
  - type: stdin
    enabled: false
metricbeat.max_start_delay: 0s
metricbeat.config.modules:
  path: $DIR/modules.d/*.yml
  reload.enabled: false
metricbeat.modules:
  - module: system
    metricsets: [cpu, load, memory, uptime]
    period: 1s
    fields: {team: payments}
    processors:
      - drop_fields: {fields: [system.memory.swap], ignore_missing: true}
  - module: golang
    metricsets: [heap, expvar]
    hosts: ["localhost:6060"]
    expvar.namespace: app
    enabled: false
  - module: prometheus
    metricsets: [collector]
    hosts: ["localhost:9090"]
    metrics_filters: {include: ["^go_"]}
    enabled: false
  - module: redis
    hosts: ["127.0.0.1:6379"]
    enabled: false
output.file:
  path: $DIR/out
  filename: metrics
queue.mem: {events: 100, flush.timeout: 10ms}
"#;

fn run(sb: &Sandbox, cfg: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = sb.cmd(cfg, args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_metricbeat_yml_passes_test_config_and_typos_are_located() {
    let sb = Sandbox::new();
    sb.write("modules.d/nginx.yml", "- module: nginx\n  hosts: ['http://127.0.0.1:8080']\n  server_status_path: /nginx_status\n");
    sb.write("modules.d/off.yml.disabled", "- module: nosuchmodule\n");
    let cfg = sb.write("metricbeat.yml", METRICBEAT_YML);
    let (code, out, err) = run(&sb, &cfg, &["test", "config"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Config OK"), "{out}");

    let bad = sb.write(
        "bad.yml",
        "metricbeat.modules:\n  - module: system\n    metricsets: [cpux]\n  - module: golang\n    metricsets: [heap]\n    hsts: [x]\noutput.console: {}\n",
    );
    // A wrong metricset is an error; an unknown key is ignored with a located warning, as
    // Metricbeat ignores it (docs/configuration.md, "Loading"), and an error under --strict,
    // where the misspelt common key is named.
    let (code, _, err) = run(&sb, &bad, &["test", "config"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("bad.yml:3") && err.contains("did you mean `cpu`"),
        "{err}"
    );
    assert!(
        err.contains("warning: ") && err.contains("bad.yml:6") && err.contains("`hsts`"),
        "{err}"
    );
    let (code, _, err) = run(&sb, &bad, &["test", "config", "--strict"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("bad.yml:6") && err.contains("did you mean `hosts`"),
        "{err}"
    );

    sb.write("modules.d/broken.yml", "- module: redis\n  pasword: x\n");
    let (code, out, err) = run(&sb, &cfg, &["test", "config"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("broken.yml:2") && format!("{out}{err}").contains("pasword"),
        "{out}{err}"
    );
    let (code, _, err) = run(&sb, &cfg, &["test", "config", "--strict"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("broken.yml:2") && err.contains("password"),
        "{err}"
    );
}

#[test]
fn test_modules_prints_events_and_errors() {
    let sb = Sandbox::new();
    let down = free_port();
    let cfg = sb.write(
        "m.yml",
        &format!("metricbeat.modules:\n  - module: system\n    metricsets: [load, uptime]\n  - module: golang\n    metricsets: [heap]\n    hosts: ['127.0.0.1:{down}']\noutput.console: {{}}\n"),
    );
    let (code, out, err) = run(&sb, &cfg, &["test", "modules"]);
    assert_eq!(code, 1, "a module failed: {out}{err}");
    assert!(out.contains("system...\n  load...OK"), "{out}");
    assert!(out.contains("\"system\""), "{out}");
    assert!(
        out.contains(&format!("  heap (127.0.0.1:{down})...ERROR")),
        "{out}"
    );
    // One module only: all good.
    let (code, out, _) = run(&sb, &cfg, &["test", "modules", "system", "uptime"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("uptime...OK") && !out.contains("load") && !out.contains("golang"),
        "{out}"
    );
}

#[test]
fn run_ships_metric_events_with_the_metricbeat_envelope() {
    let sb = Sandbox::new();
    sb.write(
        "modules.d/uptime.yml",
        "- module: system\n  metricsets: [uptime]\n  period: 1s\n",
    );
    let cfg = sb.write("metricbeat.yml", METRICBEAT_YML);
    let child = sb
        .cmd(&cfg, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    sigterm(&child);
    let out = wait_with_timeout(child, std::time::Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<Value> = sb
        .read_lines("out", "metrics")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let datasets: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event"]["dataset"].as_str())
        .collect();
    for d in [
        "system.cpu",
        "system.load",
        "system.memory",
        "system.uptime",
    ] {
        // Fetched at once, then every second: at least two of each in 2.5 s.
        assert!(
            datasets.iter().filter(|x| **x == d).count() >= 2,
            "{d}: {datasets:?}\n{stderr}"
        );
    }
    for e in &events {
        assert_eq!(e["agent"]["type"], "metricbeat", "{e}");
        assert_eq!(e["event"]["module"], "system");
        assert_eq!(e["service"]["type"], "system");
        assert_eq!(e["metricset"]["period"], 1000);
        assert!(e["event"]["duration"].as_u64().is_some());
        assert!(
            e.get("input").is_none(),
            "metric events have no input.*: {e}"
        );
        assert!(e.get("error").is_none(), "{e}");
        assert!(e["@timestamp"].is_string());
    }
    let mem = events
        .iter()
        .find(|e| e["event"]["dataset"] == "system.memory")
        .unwrap();
    assert_eq!(mem["fields"]["team"], "payments", "the block's fields");
    assert!(
        mem["system"]["memory"].get("swap").is_none(),
        "the block's processors ran"
    );
    assert!(mem["system"]["memory"]["total"].as_u64().unwrap() > 0);
}

/// A stand-in monitoring cluster: answers every request `200 {}` and hands over what it got
/// (request line and body). Elasticsearch's `_monitoring/bulk` cannot run here; the stand-in
/// checks what Beats' internal collection sends, written from its documentation.
fn capture() -> (u16, std::sync::mpsc::Receiver<(String, String)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let _ = tx.send((
                    line.trim().to_owned(),
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
            }
        }
    });
    (port, rx)
}

#[test]
fn monitoring_ships_stats_and_a_skiff_module_scrapes_another_agent() {
    let sb = Sandbox::new();
    let (es, rx) = capture();
    let http = free_port();
    let cfg = sb.write(
        "agent.yml",
        &format!(
            "metricbeat.max_start_delay: 0s\nmetricbeat.modules:\n  - {{module: system, metricsets: [uptime], period: 1s}}\n\
             monitoring:\n  enabled: true\n  cluster_uuid: prod-1\n  elasticsearch:\n    hosts: ['http://127.0.0.1:{es}']\n    metrics.period: 1s\n\
             http: {{enabled: true, port: {http}}}\noutput.discard: {{}}\n"
        ),
    );
    let child = sb
        .cmd(&cfg, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Another agent's /stats through the `skiff` module, while this one runs.
    let scraper = sb.write(
        "scraper.yml",
        &format!("metricbeat.modules:\n  - {{module: skiff, hosts: ['127.0.0.1:{http}']}}\noutput.console: {{}}\n"),
    );
    let mut out = String::new();
    for _ in 0..50 {
        let (code, o, _) = run(&sb, &scraper, &["test", "modules"]);
        out = o;
        if code == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        out.contains("stats (127.0.0.1:") && out.contains("...OK"),
        "{out}"
    );
    assert!(out.contains("\"libbeat\""), "{out}");
    assert!(
        out.contains("\"type\": \"skiff\""),
        "the agent's identity: {out}"
    );

    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while got.len() < 2 && std::time::Instant::now() < deadline {
        if let Ok(r) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            got.push(r);
        }
    }
    sigterm(&child);
    let out = wait_with_timeout(child, std::time::Duration::from_secs(30));
    assert!(
        got.len() >= 2,
        "two samples in 10 s: {got:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (line, body) in &got {
        assert!(
            line.starts_with(
                "POST /_monitoring/bulk?system_id=beats&system_api_version=7&interval=1s"
            ),
            "{line}"
        );
        let lines: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["index"]["_type"], "beats_stats");
        assert_eq!(lines[1]["type"], "beats_stats");
        assert_eq!(lines[1]["cluster_uuid"], "prod-1");
        assert_eq!(lines[1]["beats_stats"]["beat"]["type"], "skiff");
        assert!(
            lines[1]["beats_stats"]["metrics"]["libbeat"]["pipeline"].is_object(),
            "{body}"
        );
    }

    let bad = sb.write(
        "bad.yml",
        "monitoring.enabled: true\noutput.console: {}\ninputs: [{type: stdin}]\n",
    );
    let (code, _, err) = run(&sb, &bad, &["test", "config"]);
    assert_eq!(code, 1);
    assert!(err.contains("monitoring.elasticsearch.hosts"), "{err}");
}
