//! `filebeat.config.inputs` with `reload.enabled` and SIGHUP, on the real binary with real
//! files: inputs added, changed and removed while lines are written, and every line of every
//! file at the output exactly once (none lost, none repeated).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Sandbox;

/// Appends `n` numbered lines `<name> <i>` (from `from`) to `logs/<name>.log`.
fn append(sb: &Sandbox, name: &str, from: u64, n: u64) {
    std::fs::create_dir_all(sb.path().join("logs")).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sb.path().join(format!("logs/{name}.log")))
        .unwrap();
    let mut text = String::new();
    for i in from..from + n {
        text.push_str(&format!("{name} {i}\n"));
    }
    f.write_all(text.as_bytes()).unwrap();
}

/// Each message at the output, counted.
fn shipped(sb: &Sandbox) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    let Ok(dir) = std::fs::read_dir(sb.path().join("out")) else {
        return counts;
    };
    for f in dir {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(m) = v["message"].as_str()
            {
                *counts.entry(m.to_owned()).or_insert(0) += 1;
            }
        }
    }
    counts
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn has_all(sb: &Sandbox, name: &str, upto: u64) -> bool {
    let got = shipped(sb);
    (0..upto).all(|i| got.contains_key(&format!("{name} {i}")))
}

fn input_file(sb: &Sandbox, file: &str, id: &str, log: &str, tag: &str) {
    sb.write(
        &format!("inputs.d/{file}"),
        &format!(
            "- type: filestream\n  id: {id}\n  paths: [\"$DIR/logs/{log}.log\"]\n  tags: [{tag}]\n  prospector.scanner.check_interval: 100ms\n"
        ),
    );
}

fn start(sb: &Sandbox, main: &str) -> Child {
    let cfg = sb.write("skiff.yml", main);
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
    assert_eq!(out.status.code(), Some(0), "{err}");
    err
}

/// Every line `name 0..upto` exactly once.
fn exactly_once(sb: &Sandbox, name: &str, upto: u64, log: &str) {
    let got = shipped(sb);
    let mut missing = Vec::new();
    let mut repeated = Vec::new();
    for i in 0..upto {
        match got.get(&format!("{name} {i}")).copied().unwrap_or(0) {
            0 => missing.push(i),
            1 => {}
            n => repeated.push((i, n)),
        }
    }
    assert!(
        missing.is_empty() && repeated.is_empty(),
        "{name}: missing {missing:?}, repeated {repeated:?}\n{log}"
    );
    let extra = got
        .keys()
        .filter(|k| k.starts_with(&format!("{name} ")))
        .count() as u64;
    assert_eq!(extra, upto, "{name}: lines that were never written");
}

#[test]
fn input_files_added_changed_removed_while_running_lose_and_repeat_nothing() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("inputs.d")).unwrap();
    append(&sb, "a", 0, 500);
    input_file(&sb, "a.yml", "a", "a", "one");
    let child = start(
        &sb,
        "filebeat.config.inputs:\n  path: $DIR/inputs.d/*.yml\n  reload.enabled: true\n  reload.period: 200ms\noutput.file: {path: \"$DIR/out\", filename: out, rotate_every_kb: 1048576}\n",
    );
    let limit = Duration::from_secs(60);
    wait_for("a 0..500 shipped", limit, || has_all(&sb, "a", 500));

    // Changed: a new tag. The input stops after its state is saved and starts again from it,
    // while lines keep coming.
    append(&sb, "a", 500, 500);
    input_file(&sb, "a.yml", "a", "a", "two");
    append(&sb, "a", 1000, 500);
    wait_for("a 0..1500 shipped", limit, || has_all(&sb, "a", 1500));
    let tagged_two = |sb: &Sandbox| {
        std::fs::read_dir(sb.path().join("out"))
            .unwrap()
            .map(|f| {
                std::fs::read_to_string(f.unwrap().path())
                    .unwrap()
                    .lines()
                    .filter(|l| l.contains("\"two\""))
                    .count()
            })
            .sum::<usize>()
    };
    append(&sb, "a", 1500, 100);
    wait_for("a line tagged by the changed input", limit, || {
        has_all(&sb, "a", 1600) && tagged_two(&sb) > 0
    });

    // Added: a second file with its own input.
    append(&sb, "b", 0, 300);
    input_file(&sb, "b.yml", "b", "b", "one");
    wait_for("b 0..300 shipped", limit, || has_all(&sb, "b", 300));

    // A broken file refuses the whole reload: the running inputs stay as they are.
    sb.write("inputs.d/c.yml", "- type: filestreem\n  id: c\n");
    std::thread::sleep(Duration::from_secs(1));
    append(&sb, "b", 300, 100);
    wait_for("b 0..400 while the reload is refused", limit, || {
        has_all(&sb, "b", 400)
    });
    std::fs::remove_file(sb.path().join("inputs.d/c.yml")).unwrap();

    // Removed: a's input stops; lines written meanwhile wait in the file.
    std::fs::remove_file(sb.path().join("inputs.d/a.yml")).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let before = shipped(&sb).keys().filter(|k| k.starts_with("a ")).count();
    append(&sb, "a", 1600, 400);
    append(&sb, "b", 400, 100);
    wait_for("b 0..500 shipped", limit, || has_all(&sb, "b", 500));
    std::thread::sleep(Duration::from_secs(1));
    let after = shipped(&sb).keys().filter(|k| k.starts_with("a ")).count();
    assert_eq!(before, after, "a removed input kept shipping");

    // Added back: it resumes from its saved offset.
    input_file(&sb, "a.yml", "a", "a", "three");
    wait_for("a 0..2000 shipped", limit, || has_all(&sb, "a", 2000));
    let log = stop(child);
    assert!(
        log.contains("unknown input type `filestreem`") && log.contains("the reload was refused"),
        "{log}"
    );
    exactly_once(&sb, "a", 2000, &log);
    exactly_once(&sb, "b", 500, &log);
}

#[test]
fn sighup_reloads_the_main_files_inputs() {
    let sb = Sandbox::new();
    append(&sb, "m", 0, 200);
    let main = |inputs: &str| {
        format!(
            "http.enabled: true\nhttp.port: {{PORT}}\nfilebeat.inputs:\n{inputs}output.file: {{path: \"$DIR/out\", filename: out, rotate_every_kb: 1048576}}\n"
        )
    };
    let m = "- {type: filestream, id: m, paths: [\"$DIR/logs/m.log\"], prospector.scanner.check_interval: 100ms}\n";
    let n = "- {type: filestream, id: n, paths: [\"$DIR/logs/n.log\"], prospector.scanner.check_interval: 100ms}\n";
    let port = common::free_port();
    let child = start(&sb, &main(m).replace("{PORT}", &port.to_string()));
    let limit = Duration::from_secs(60);
    wait_for("m 0..200", limit, || has_all(&sb, "m", 200));
    append(&sb, "n", 0, 100);
    sb.write(
        "skiff.yml",
        &main(&format!("{m}{n}")).replace("{PORT}", &port.to_string()),
    );
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("n 0..100 after SIGHUP", limit, || has_all(&sb, "n", 100));
    append(&sb, "m", 200, 100);
    wait_for("m 0..300", limit, || has_all(&sb, "m", 300));
    let stats = common::http_get(port, "/stats").unwrap();
    assert!(stats.contains("skiff"), "{stats}");
    let metrics = common::http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("skiff_config_reloads_total{result=\"applied\"} 1")
            || metrics.contains("skiff_config_reloads{result=\"applied\"} 1"),
        "{metrics}"
    );
    let log = stop(child);
    exactly_once(&sb, "m", 300, &log);
    exactly_once(&sb, "n", 100, &log);
}

#[test]
fn warnings_are_counted_in_stats_and_metrics() {
    let sb = Sandbox::new();
    append(&sb, "w", 0, 10);
    let port = common::free_port();
    let child = start(
        &sb,
        &format!(
            "http.enabled: true\nhttp.port: {port}\nlogging.to_console: true\nfilebeat.inputs:\n- {{type: filestream, id: w, paths: [\"$DIR/logs/w.log\"], harvester_buffer_size: 1}}\noutput.file: {{path: \"$DIR/out\", filename: out}}\n"
        ),
    );
    wait_for("w 0..10", Duration::from_secs(60), || has_all(&sb, "w", 10));
    let stats: serde_json::Value =
        serde_json::from_str(&common::http_get(port, "/stats").unwrap()).unwrap();
    assert_eq!(stats["skiff"]["config"]["warnings"], 2, "{stats}");
    let metrics = common::http_get(port, "/metrics").unwrap();
    assert!(metrics.contains("skiff_config_warnings 2"), "{metrics}");
    let log = stop(child);
    assert!(
        log.contains("logging.to_console: unknown key `to_console` is ignored"),
        "{log}"
    );
}
