//! `filebeat.autodiscover` with the `docker` provider, on the real binary, against the Docker
//! Engine API stand-in of `docker_standin` (written from the Engine API documentation: no
//! Docker daemon can run on this machine). Containers' logs are `json-file` logs in a temp
//! folder standing for `/var/lib/docker/containers`.
//!
//! What is shown: inputs started for containers running at start and started later, and
//! stopped after `cleanup_timeout` when they stop (`/inputs/` and `/stats` say so); templates
//! with conditions (one matches, one does not) and `${data.*}`; hints (`module: nginx` with
//! `fileset.stdout`, `multiline.*`, `enabled: false`); nothing lost from a container that stops
//! while the output is down; a restart of skiff with the container still running ships no
//! line twice; a lost event stream is made up for by the difference on reconnect.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod docker_standin;

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Sandbox;
use docker_standin::DockerStandIn;
use serde_json::Value;

const A: &str = "aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000";
const B: &str = "bbbb1111bbbb1111bbbb1111bbbb1111bbbb1111bbbb1111bbbb1111bbbb1111";
const C: &str = "cccc2222cccc2222cccc2222cccc2222cccc2222cccc2222cccc2222cccc2222";

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every event in `out/`.
fn events(sb: &Sandbox) -> Vec<Value> {
    let Ok(dir) = std::fs::read_dir(sb.path().join("out")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in dir {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
        out.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
        );
    }
    out
}

/// Messages at the output, counted.
fn counts(sb: &Sandbox) -> HashMap<String, u32> {
    let mut c = HashMap::new();
    for e in events(sb) {
        let m = e["message"]
            .as_str()
            .or_else(|| e["event"]["original"].as_str())
            .unwrap_or_default()
            .to_owned();
        *c.entry(m).or_insert(0) += 1;
    }
    c
}

fn lines(prefix: &str, from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("{prefix} {i}")).collect()
}

fn has_all(sb: &Sandbox, prefix: &str, n: usize) -> bool {
    let c = counts(sb);
    (0..n).all(|i| c.contains_key(&format!("{prefix} {i}")))
}

fn start(sb: &Sandbox, cfg: &str) -> Child {
    let cfg = sb.write("skiff.yml", cfg);
    sb.cmd(&cfg, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stop(child: Child) -> String {
    common::sigterm(&child);
    let out = common::wait_with_timeout(child, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "skiff failed: {err}");
    err
}

fn json_get(port: u16, path: &str) -> Value {
    common::http_get(port, path)
        .and_then(|b| serde_json::from_str(&b).ok())
        .unwrap_or(Value::Null)
}

fn stat(port: u16, label_path: &[&str]) -> u64 {
    let v = json_get(port, "/stats");
    let mut cur = &v["skiff"]["by_label"];
    for k in label_path {
        cur = &cur[*k];
    }
    cur.as_u64().unwrap_or(0)
}

/// The provider and output settings every test shares.
fn base(sd: &DockerStandIn, port: u16, provider_extra: &str) -> String {
    format!(
        "filebeat.autodiscover.providers:\n  - type: docker\n    host: {}\n{provider_extra}http.enabled: true\nhttp.port: {port}\noutput.file: {{path: $DIR/out, filename: skiff}}\nlogging.level: info\n",
        sd.host()
    )
}

/// A template input for the containers folder of the stand-in.
const TEMPLATE_INPUT: &str = "type: container\n              paths: ['$DIR/containers/${data.docker.container.id}/*-json.log']\n              scan_frequency: 100ms\n              tags: ['${data.docker.container.name}']";

#[test]
fn containers_starting_and_stopping_with_templates() {
    let sb = Sandbox::new();
    let sd = DockerStandIn::start(sb.path());
    let port = common::free_port();
    // Running before skiff starts: found by the initial list.
    sd.run(A, "web0", "nginx:1.25", &[("com.example.team", "ops")]);
    sd.log(A, "stdout", &lines("web0", 0, 3));
    let templates = format!(
        "    cleanup_timeout: 1s\n    templates:\n      - condition.equals.docker.container.image: redis\n        config:\n          - type: container\n            paths: ['$DIR/containers/${{data.docker.container.id}}/*-json.log']\n            tags: [redis]\n      - condition:\n          contains:\n            docker.container.image: nginx\n        config:\n          - {}\n",
        TEMPLATE_INPUT.replace("\n              ", "\n            ")
    );
    let child = start(&sb, &base(&sd, port, &templates));
    wait_for("web0's lines", Duration::from_secs(60), || {
        has_all(&sb, "web0", 3)
    });
    let ev = events(&sb)
        .into_iter()
        .find(|e| e["message"] == "web0 0")
        .unwrap();
    // The matching template's config with `${data.*}` filled, and the container's fields.
    assert_eq!(ev["tags"], serde_json::json!(["web0"]), "{ev}");
    assert_eq!(ev["container"]["id"], A, "{ev}");
    assert_eq!(ev["container"]["name"], "web0");
    assert_eq!(ev["container"]["image"]["name"], "nginx:1.25");
    assert_eq!(ev["container"]["labels"]["com_example_team"], "ops");
    assert_eq!(ev["stream"], "stdout");

    // Started later: one matches no template (and hints are off), one matches.
    sd.run(B, "cache", "busybox:1.36", &[]);
    sd.log(B, "stdout", &lines("cache", 0, 2));
    sd.run(C, "web1", "nginx:alpine", &[]);
    sd.log(C, "stdout", &lines("web1", 0, 2));
    wait_for("web1's lines", Duration::from_secs(60), || {
        has_all(&sb, "web1", 2)
    });
    let inputs = json_get(port, "/inputs/");
    let id_c = format!("docker-{C}-0");
    let id_a = format!("docker-{A}-0");
    assert!(inputs.get(&id_c).is_some(), "{inputs}");
    assert!(inputs.get(&id_a).is_some(), "{inputs}");
    assert!(
        inputs.as_object().unwrap().keys().all(|k| !k.contains(B)),
        "no input for the container no template matches: {inputs}"
    );
    assert_eq!(
        stat(port, &["skiff_autodiscover_changes", "docker", "start"]),
        3
    );
    assert_eq!(
        stat(port, &["skiff_autodiscover_inputs", "docker", "started"]),
        2
    );
    assert!(!counts(&sb).contains_key("cache 0"));

    // web1 stops: its input goes after cleanup_timeout, web0's stays.
    sd.stop(C);
    wait_for("web1's input to stop", Duration::from_secs(30), || {
        stat(port, &["skiff_autodiscover_inputs", "docker", "stopped"]) == 1
    });
    let inputs = json_get(port, "/inputs/");
    assert!(inputs.get(&id_c).is_none(), "{inputs}");
    assert!(inputs.get(&id_a).is_some(), "{inputs}");
    let v = json_get(port, "/stats");
    assert_eq!(
        v["skiff"]["by_label"]["skiff_autodiscover_running"]["docker"], 1,
        "{v}"
    );
    stop(child);
    // Everything exactly once.
    let c = counts(&sb);
    for m in lines("web0", 0, 3).iter().chain(&lines("web1", 0, 2)) {
        assert_eq!(c.get(m), Some(&1), "{m}: {c:?}");
    }
    // The client used the daemon's API version prefix.
    assert!(
        sd.requests()
            .iter()
            .any(|r| r.starts_with("GET /v1.43/events?filters=")),
        "{:?}",
        sd.requests()
    );
}

#[test]
fn hints_module_multiline_and_disabled() {
    let sb = Sandbox::new();
    let sd = DockerStandIn::start(sb.path());
    let port = common::free_port();
    let hints = "    hints.enabled: true\n    hints.default_config:\n      type: container\n      paths: ['$DIR/containers/${data.container.id}/*-json.log']\n      scan_frequency: 100ms\n";
    let child = start(&sb, &base(&sd, port, hints));
    wait_for("the provider to subscribe", Duration::from_secs(30), || {
        sd.subscribers() > 0
    });
    sd.run(
        A,
        "nginx",
        "nginx:1.25",
        &[
            ("co.elastic.logs/module", "nginx"),
            ("co.elastic.logs/fileset.stdout", "access"),
            ("co.elastic.logs/fileset.stderr", "error"),
        ],
    );
    let access = "192.0.2.7 - - [06/Dec/2026:14:00:00 +0000] \"GET /shop HTTP/1.1\" 404 153 \"-\" \"curl/8.5.0\"";
    sd.log(A, "stdout", &[access.to_owned()]);
    sd.run(
        B,
        "java",
        "app:1",
        &[
            ("co.elastic.logs/multiline.pattern", "^\\["),
            ("co.elastic.logs/multiline.negate", "true"),
            ("co.elastic.logs/multiline.match", "after"),
        ],
    );
    sd.log(
        B,
        "stdout",
        &[
            "[1] first".into(),
            "  at one".into(),
            "  at two".into(),
            "[2] second".into(),
            "[3] third".into(),
        ],
    );
    sd.run(C, "quiet", "app:1", &[("co.elastic.logs/enabled", "false")]);
    sd.log(C, "stdout", &lines("quiet", 0, 2));
    wait_for(
        "the hinted containers' events",
        Duration::from_secs(60),
        || {
            let e = events(&sb);
            e.iter()
                .any(|e| e["http"]["response"]["status_code"] == 404)
                && e.iter().any(|e| e["message"] == "[2] second")
        },
    );
    let evs = events(&sb);
    let nginx = evs
        .iter()
        .find(|e| e["http"]["response"]["status_code"] == 404)
        .unwrap();
    assert_eq!(nginx["event"]["dataset"], "nginx.access", "{nginx}");
    assert_eq!(nginx["url"]["original"], "/shop", "{nginx}");
    assert_eq!(nginx["container"]["name"], "nginx", "{nginx}");
    let first = evs
        .iter()
        .find(|e| e["message"].as_str().is_some_and(|m| m.starts_with("[1]")));
    assert_eq!(
        first.unwrap()["message"],
        "[1] first\n  at one\n  at two",
        "multiline hints join the stack trace"
    );
    let inputs = json_get(port, "/inputs/");
    assert!(
        inputs.as_object().unwrap().keys().all(|k| !k.contains(C)),
        "enabled: false starts nothing: {inputs}"
    );
    // nginx: one input per stream's fileset.
    assert!(inputs.get(format!("docker-{A}-0")).is_some(), "{inputs}");
    assert!(inputs.get(format!("docker-{A}-1")).is_some(), "{inputs}");
    stop(child);
    assert!(!counts(&sb).contains_key("quiet 0"));
}

fn redis_list(port: u16, key: &str) -> Vec<Value> {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--raw", "LRANGE", key, "0", "-1"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn nothing_lost_when_a_container_stops_while_the_output_is_down() {
    let sb = Sandbox::new();
    let sd = DockerStandIn::start(sb.path());
    let port = common::free_port();
    let redis_port = common::free_port();
    let templates = format!(
        "    cleanup_timeout: 500ms\n    templates:\n      - config:\n          - {}\n",
        TEMPLATE_INPUT.replace("\n              ", "\n            ")
    );
    let cfg = base(&sd, port, &templates).replace(
        "output.file: {path: $DIR/out, filename: skiff}",
        &format!("output.redis: {{hosts: ['127.0.0.1:{redis_port}'], key: ad, backoff.init: 100ms, backoff.max: 500ms}}\nqueue.mem.events: 64\nqueue.mem.flush.min_events: 1"),
    );
    // The output is down from the start.
    let child = start(&sb, &cfg);
    wait_for("the provider to subscribe", Duration::from_secs(30), || {
        sd.subscribers() > 0
    });
    sd.run(A, "batch", "worker:1", &[]);
    let n = 2000;
    sd.log(A, "stdout", &lines("batch", 0, n));
    wait_for(
        "the input to start reading",
        Duration::from_secs(30),
        || stat(port, &["skiff_autodiscover_inputs", "docker", "started"]) == 1,
    );
    // The container stops while its lines wait for the output; cleanup_timeout passes.
    sd.stop(A);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        stat(port, &["skiff_autodiscover_inputs", "docker", "stopped"]),
        0,
        "the input must not stop before its lines are shipped"
    );
    // The output comes up: every line arrives, then the input stops.
    let mut redis = common::redis_server(sb.path(), redis_port, &[]);
    wait_for("every line in redis", Duration::from_secs(90), || {
        redis_list(redis_port, "ad").len() >= n
    });
    wait_for("the input to stop", Duration::from_secs(30), || {
        stat(port, &["skiff_autodiscover_inputs", "docker", "stopped"]) == 1
    });
    stop(child);
    let got = redis_list(redis_port, "ad");
    let mut seen: HashMap<String, u32> = HashMap::new();
    for e in &got {
        *seen
            .entry(e["message"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    for m in lines("batch", 0, n) {
        assert!(seen.contains_key(&m), "{m} lost");
    }
    redis.kill().unwrap();
    redis.wait().unwrap();
}

#[test]
fn restart_with_the_container_running_ships_nothing_twice() {
    let sb = Sandbox::new();
    let sd = DockerStandIn::start(sb.path());
    let port = common::free_port();
    let templates = format!(
        "    templates:\n      - config:\n          - {}\n",
        TEMPLATE_INPUT.replace("\n              ", "\n            ")
    );
    let cfg =
        base(&sd, port, &templates) + "filebeat.registry.flush: 100ms\nshutdown_timeout: 5s\n";
    sd.run(A, "svc", "svc:1", &[]);
    sd.log(A, "stdout", &lines("svc", 0, 50));
    let child = start(&sb, &cfg);
    wait_for("the first lines", Duration::from_secs(60), || {
        has_all(&sb, "svc", 50)
    });
    stop(child);
    // Written while skiff is down; the container still runs.
    sd.log(A, "stdout", &lines("svc", 50, 50));
    let child = start(&sb, &cfg);
    wait_for("the later lines", Duration::from_secs(60), || {
        has_all(&sb, "svc", 100)
    });
    // A lost event stream: the container stopped meanwhile is found by the new list.
    sd.stop_silently(A);
    sd.drop_event_streams();
    wait_for(
        "the reconnect to report the stop",
        Duration::from_secs(60),
        || stat(port, &["skiff_autodiscover_changes", "docker", "stop"]) == 1,
    );
    stop(child);
    let c = counts(&sb);
    for m in lines("svc", 0, 100) {
        assert_eq!(c.get(&m), Some(&1), "{m}: shipped {:?} times", c.get(&m));
    }
}

/// The Docker autodiscover examples of Filebeat's documentation
/// (configuration-autodiscover.html, configuration-autodiscover-hints.html) load.
#[test]
fn filebeat_docs_examples_load() {
    let examples = [
        // Templates with a condition, the container input.
        "filebeat.autodiscover:\n  providers:\n    - type: docker\n      templates:\n        - condition:\n            contains:\n              docker.container.image: redis\n          config:\n            - type: container\n              paths:\n                - /var/lib/docker/containers/${data.docker.container.id}/*.log\n              exclude_lines: [\"^\\\\s+[\\\\-`('.|_]\"]\noutput.console: {}\n",
        // A module in a template (Filebeat 7's `type: docker` input).
        "filebeat.autodiscover:\n  providers:\n    - type: docker\n      templates:\n        - condition:\n            contains:\n              docker.container.image: redis\n          config:\n            - type: docker\n              containers.ids:\n                - \"${data.docker.container.id}\"\n              exclude_lines: [\"^\\\\s+[\\\\-`('.|_]\"]\noutput.console: {}\n",
        // Hints with a default config switched off.
        "filebeat.autodiscover:\n  providers:\n    - type: docker\n      hints.enabled: true\n      hints.default_config.enabled: false\noutput.console: {}\n",
        // Hints with a default config.
        "filebeat.autodiscover:\n  providers:\n    - type: docker\n      hints.enabled: true\n      hints.default_config:\n        type: container\n        paths:\n          - /var/log/containers/*${data.container.id}.log\nprocessors:\n  - add_docker_metadata: ~\noutput.console: {}\n",
    ];
    for (i, text) in examples.iter().enumerate() {
        let sb = Sandbox::new();
        let cfg = sb.write("filebeat.yml", text);
        let out = sb.cmd(&cfg, &["test", "config"]).output().unwrap();
        assert!(
            out.status.success(),
            "example {i}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A mistake is reported with file:line.
    let sb = Sandbox::new();
    let cfg = sb.write(
        "filebeat.yml",
        "filebeat.autodiscover:\n  providers:\n    - type: dokcer\noutput.console: {}\n",
    );
    let out = sb.cmd(&cfg, &["test", "config"]).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("filebeat.yml:3") && text.contains("docker"),
        "{text}"
    );
}

/// `add_docker_metadata` (a global processor, no autodiscover): events whose log file lies in a
/// container's folder (`match_source`) or that carry a container id (`match_fields`) get the
/// container's fields from the daemon; others are left alone.
#[test]
fn add_docker_metadata_adds_the_containers_fields() {
    let sb = Sandbox::new();
    let sd = DockerStandIn::start(sb.path());
    sd.run(A, "meta", "alpine:3", &[("com.example.team", "ops")]);
    sd.log(A, "stdout", &lines("meta", 0, 2));
    sb.write("plain/by_field.log", "byfield 0\n");
    sb.write("plain/other.log", "other 0\n");
    // The container id's index among the path's non-empty parts: <sandbox>/containers/<id>/.
    let index = sb.path().components().count();
    let cfg = format!(
        "filebeat.inputs:\n  - {{type: container, id: all, paths: ['$DIR/containers/*/*-json.log'], scan_frequency: 100ms}}\n  - {{type: filestream, id: f, paths: ['$DIR/plain/by_field.log'], fields: {{cid: {A}}}, prospector.scanner.check_interval: 100ms}}\n  - {{type: filestream, id: o, paths: ['$DIR/plain/other.log'], prospector.scanner.check_interval: 100ms}}\nprocessors:\n  - add_docker_metadata:\n      host: {}\n      match_fields: [fields.cid]\n      match_source_index: {index}\noutput.file: {{path: $DIR/out, filename: skiff}}\n",
        sd.host()
    );
    let child = start(&sb, &cfg);
    wait_for("every line", Duration::from_secs(60), || {
        let c = counts(&sb);
        ["meta 0", "meta 1", "byfield 0", "other 0"]
            .iter()
            .all(|m| c.contains_key(*m))
    });
    stop(child);
    let evs = events(&sb);
    let find = |m: &str| evs.iter().find(|e| e["message"] == m).unwrap().clone();
    let meta = find("meta 0");
    assert_eq!(meta["container"]["id"], A, "{meta}");
    assert_eq!(meta["container"]["name"], "meta", "{meta}");
    assert_eq!(meta["container"]["image"]["name"], "alpine:3", "{meta}");
    assert_eq!(
        meta["container"]["labels"]["com_example_team"], "ops",
        "{meta}"
    );
    let by_field = find("byfield 0");
    assert_eq!(by_field["container"]["name"], "meta", "{by_field}");
    let other = find("other 0");
    assert!(other.get("container").is_none(), "{other}");
}
