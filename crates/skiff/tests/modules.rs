//! Filebeat modules on the real binary: `skiff modules list|enable`, a `modules.d/` folder
//! loaded through `filebeat.config.modules`, and `--modules`; the events leave skiff parsed
//! (the nginx access fileset's ECS fields), whatever the output.

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

const LINES: &str = concat!(
    "89.160.20.156 - - [25/Oct/2016:14:49:33 +0200] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl/7.50\"\n",
    "10.0.0.1 - bob [25/Oct/2016:14:49:34 +0200] \"POST /login HTTP/1.1\" 403 12 \"-\" \"-\"\n",
    "not an access log line\n",
);

fn run_until(
    sb: &Sandbox,
    cfg: &std::path::Path,
    args: &[&str],
    n: usize,
) -> Vec<serde_json::Value> {
    let child = sb
        .cmd(cfg, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while events(sb).len() < n && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    common::sigterm(&child);
    let out = common::wait_with_timeout(child, Duration::from_secs(60));
    let got = events(sb);
    assert_eq!(
        got.len(),
        n,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    got
}

fn check_parsed(got: &[serde_json::Value]) {
    let by_status = |s: i64| {
        got.iter()
            .find(|e| e["http"]["response"]["status_code"] == s)
            .expect("parsed event")
    };
    let ok = by_status(200);
    assert_eq!(ok["event"]["dataset"], "nginx.access");
    assert_eq!(ok["event"]["module"], "nginx");
    assert_eq!(ok["fileset"]["name"], "access");
    assert_eq!(ok["source"]["ip"], "89.160.20.156");
    assert_eq!(ok["@timestamp"], "2016-10-25T12:49:33.000Z");
    assert_eq!(ok["event"]["outcome"], "success");
    assert!(
        ok.get("message").is_none(),
        "the pipeline moves message to event.original"
    );
    assert_eq!(by_status(403)["user"]["name"], "bob");
    let bad = got
        .iter()
        .find(|e| e["error"]["message"].is_string())
        .expect("failed line");
    assert_eq!(bad["event"]["original"], "not an access log line");
}

#[test]
fn modules_d_is_listed_enabled_and_run() {
    let sb = Sandbox::new();
    sb.write("logs/access.log", LINES);
    sb.write(
        "modules.d/nginx.yml.disabled",
        "- module: nginx\n  access:\n    var.paths: [\"$DIR/logs/access.log\"]\n  error:\n    enabled: false\n",
    );
    sb.write("modules.d/apache.yml.disabled", "- module: apache\n");
    let cfg = sb.write(
        "skiff.yml",
        r#"
filebeat.config.modules.path: "$DIR/modules.d/*.yml"
output.file: {path: "$DIR/out", filename: out}
"#,
    );
    let list = sb.cmd(&cfg, &["modules", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert_eq!(text.trim(), "Enabled:\n\nDisabled:\napache\nnginx");
    let en = sb
        .cmd(&cfg, &["modules", "enable", "nginx"])
        .output()
        .unwrap();
    assert!(
        en.status.success(),
        "{}",
        String::from_utf8_lossy(&en.stderr)
    );
    assert!(sb.path().join("modules.d/nginx.yml").exists());
    let list = sb.cmd(&cfg, &["modules", "list"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).trim(),
        "Enabled:\nnginx\n\nDisabled:\napache"
    );
    check_parsed(&run_until(&sb, &cfg, &[], 3));
}

/// A configuration with the nginx access fileset inline on `logs/access.log`, `more` added.
fn inline_nginx(sb: &Sandbox, more: &str) -> std::path::PathBuf {
    let cfg = r#"
filebeat.modules:
  - module: nginx
    access:
      var.paths: ["$DIR/logs/access.log"]
    error:
      enabled: false
output.file: {path: "$DIR/out", filename: out}
"#;
    sb.write("skiff.yml", &format!("{cfg}{more}"))
}

#[test]
fn modules_flag_and_inline_modules() {
    let sb = Sandbox::new();
    sb.write("logs/access.log", LINES);
    let cfg = inline_nginx(&sb, "");
    check_parsed(&run_until(&sb, &cfg, &[], 3));
    // An unknown module is a configuration error, with the modules skiff has.
    let bad = sb
        .cmd(&cfg, &["--modules", "ngnix", "test", "config"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown module `ngnix`"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn fileset_multiline_settings_reach_the_input() {
    let sb = Sandbox::new();
    sb.write(
        "logs/error.log",
        concat!(
            "2016/10/25 14:49:34 [error] 54053#0: *1 first line\n",
            "  continued here\n",
            "2016/10/25 14:50:44 [warn] 54053#0: second\n",
        ),
    );
    let cfg = sb.write(
        "skiff.yml",
        r#"
filebeat.modules:
  - module: nginx
    access.enabled: false
    error.var.paths: ["$DIR/logs/error.log"]
output.file: {path: "$DIR/out", filename: out}
"#,
    );
    let got = run_until(&sb, &cfg, &[], 2);
    let first = got
        .iter()
        .find(|e| e["log"]["level"] == "error")
        .expect("error event");
    assert_eq!(first["message"], "first line\n  continued here");
    assert_eq!(first["nginx"]["error"]["connection_id"], 1);
    assert_eq!(first["event"]["dataset"], "nginx.error");
    assert!(first["event"]["timezone"].is_string());
    assert!(
        got.iter()
            .any(|e| e["log"]["level"] == "warn" && e["message"] == "second")
    );
}

/// The log without its terminal colours (`ESC [ ... m`).
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut rest = log;
    while let Some(i) = rest.find('\x1b') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        rest = rest.find('m').map_or("", |m| &rest[m + 1..]);
    }
    out.push_str(rest);
    out
}

/// Waits (up to a minute, a start-up bound, not a measure) until `n` events are in `out/`.
fn wait_events(sb: &Sandbox, n: usize) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let got = events(sb);
        if got.len() >= n || start.elapsed() > Duration::from_secs(60) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn modules_d_reload_starts_and_stops_module_inputs() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("modules.d")).unwrap();
    sb.write("logs/access.log", LINES);
    sb.write(
        "logs/redis.log",
        "1:M 06 Dec 2026 14:00:00.000 * Ready to accept connections\n",
    );
    let cfg = sb.write(
        "skiff.yml",
        r#"
filebeat.config.modules:
  path: "$DIR/modules.d/*.yml"
  reload.enabled: true
  reload.period: 200ms
output.file: {path: "$DIR/out", filename: out}
"#,
    );
    // Nothing enabled at start: skiff runs and waits for modules.d/ to change.
    let child = sb
        .cmd(&cfg, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sb.write(
        "modules.d/nginx.yml",
        "- module: nginx\n  access:\n    var.paths: [\"$DIR/logs/access.log\"]\n    input: {prospector.scanner.check_interval: 100ms}\n  error:\n    enabled: false\n",
    );
    let got = wait_events(&sb, 3);
    assert_eq!(got.len(), 3, "the nginx module did not start");
    check_parsed(&got);

    // Disabled while running (as `skiff modules disable nginx` does), and redis added: the
    // nginx input stops, the redis one starts.
    std::fs::rename(
        sb.path().join("modules.d/nginx.yml"),
        sb.path().join("modules.d/nginx.yml.disabled"),
    )
    .unwrap();
    sb.write(
        "modules.d/redis.yml",
        "- module: redis\n  log:\n    var.paths: [\"$DIR/logs/redis.log\"]\n",
    );
    let got = wait_events(&sb, 4);
    assert!(
        got.iter()
            .any(|e| e["event"]["dataset"] == "redis.log" && e["redis"]["log"]["role"] == "master"),
        "the redis module did not start: {got:?}"
    );
    common::sigterm(&child);
    let out = common::wait_with_timeout(child, Duration::from_secs(60));
    let log = plain(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains(r#"started=["module-nginx-access"]"#),
        "no reload started the nginx input: {log}"
    );
    assert!(
        log.contains(r#"stopped=["module-nginx-access"]"#),
        "no reload stopped the nginx input: {log}"
    );
    assert_eq!(events(&sb).len(), 4, "{log}");
}

/// `geoip.paths` on the binary: with GeoIP databases there (written by the test with
/// MaxMind's real writer, `libmaxmind-db-writer-perl`, from skiff-modules' test script), the
/// nginx events carry `source.geo.*`/`source.as.*`; a damaged database file there is an
/// error of `skiff test config` naming the file.
#[test]
fn geoip_paths_setting_enriches_module_events() {
    let sb = Sandbox::new();
    sb.write("logs/access.log", LINES);
    std::fs::create_dir_all(sb.path().join("geoip")).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../skiff-modules/tests/support/geoip-test-db.pl");
    let made = std::process::Command::new("perl")
        .arg(&script)
        .arg(sb.path().join("geoip"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "GeoIP test databases (run scripts/ensure-test-deps): {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let cfg = inline_nginx(&sb, "geoip.paths: [geoip]\n");
    let got = run_until(&sb, &cfg, &[], 3);
    check_parsed(&got);
    let public = got
        .iter()
        .find(|e| e["source"]["ip"] == "89.160.20.156")
        .expect("the public address's event");
    assert_eq!(public["source"]["geo"]["city_name"], "Linköping");
    assert_eq!(public["source"]["geo"]["country_iso_code"], "SE");
    assert_eq!(public["source"]["as"]["number"], 29518);
    assert_eq!(
        public["source"]["as"]["organization"]["name"],
        "Bredband2 AB"
    );
    let private = got
        .iter()
        .find(|e| e["source"]["ip"] == "10.0.0.1")
        .expect("the private address's event");
    assert!(private["source"].get("geo").is_none(), "{private}");
    assert!(private["source"].get("as").is_none(), "{private}");

    sb.write("geoip/GeoLite2-City.mmdb", "not a MaxMind DB");
    let bad = sb.cmd(&cfg, &["test", "config"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "{stderr}");
    assert!(
        stderr.contains("GeoIP database") && stderr.contains("GeoLite2-City.mmdb"),
        "{stderr}"
    );
}
