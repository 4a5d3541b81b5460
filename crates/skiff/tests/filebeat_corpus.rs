//! The filebeat.yml corpus (`tests/data/filebeat`, see its README): each file through
//! `skiff test config` on the real binary, against its expected exit code and messages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/filebeat")
}

struct Expect {
    args: Vec<String>,
    exit: i32,
    stdout: Vec<String>,
    stderr: Vec<String>,
    absent: Vec<String>,
}

fn expectations(path: &Path) -> Expect {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): every corpus file needs one",
            path.display()
        )
    });
    let dir = corpus().display().to_string();
    let mut x = Expect {
        args: Vec::new(),
        exit: -1,
        stdout: Vec::new(),
        stderr: Vec::new(),
        absent: Vec::new(),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("{}: bad line {line:?}", path.display()));
        let value = value.replace("$CORPUS", &dir);
        match key {
            "args" => x.args.extend(value.split_whitespace().map(str::to_owned)),
            "exit" => x.exit = value.parse().unwrap(),
            "stdout" => x.stdout.push(value),
            "stderr" => x.stderr.push(value),
            "absent" => x.absent.push(value),
            other => panic!("{}: unknown expectation {other:?}", path.display()),
        }
    }
    assert!(x.exit >= 0, "{}: no `exit:`", path.display());
    x
}

#[test]
fn every_corpus_file_gives_its_expected_result() {
    let dir = corpus();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus is missing: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let x = expectations(&file.with_extension("expect"));
        let home = tempfile::tempdir().unwrap();
        let out = common::skiff()
            .args(["test", "config", "-c"])
            .arg(file)
            .arg("--path.config")
            .arg(&dir)
            .arg("--path.home")
            .arg(home.path())
            .args(&x.args)
            .env_remove("ES_HOSTS")
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut wrong = Vec::new();
        if code != x.exit {
            wrong.push(format!("exit {code}, expected {}", x.exit));
        }
        for s in &x.stdout {
            if !stdout.contains(s.as_str()) {
                wrong.push(format!("stdout lacks {s:?}"));
            }
        }
        for s in &x.stderr {
            if !stderr.contains(s.as_str()) {
                wrong.push(format!("stderr lacks {s:?}"));
            }
        }
        for s in &x.absent {
            if stderr.contains(s.as_str()) {
                wrong.push(format!("stderr has {s:?}"));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}:\n  {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
                file.display(),
                wrong.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn path_settings_resolve_from_flags_and_defaults() {
    let sb = common::Sandbox::new();
    let cfg = sb.write(
        "skiff.yml",
        "filebeat.inputs:\n- {type: stdin}\noutput.console: {}\nc: ${path.config}\nd: ${path.data}\nl: ${path.logs}\nh: ${path.home}\n",
    );
    let out = common::skiff()
        .args(["export", "config", "-c"])
        .arg(&cfg)
        .args(["--path.home", "/opt/skiff", "--path.data", "/var/lib/skiff"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["h"], "/opt/skiff");
    assert_eq!(j["c"], "/opt/skiff");
    assert_eq!(j["d"], "/var/lib/skiff");
    assert_eq!(j["l"], "/opt/skiff/logs");
}

#[test]
fn run_refuses_a_config_with_nothing_to_run_and_logs_warnings() {
    let sb = common::Sandbox::new();
    let cfg = sb.write(
        "skiff.yml",
        // (An autodiscover provider is something to run: tests/autodiscover_docker.rs.)
        "filebeat.inputs:\n  - {type: filestream, id: a, enabled: false, paths: [/x]}\noutput.console: {}\n",
    );
    let out = sb.cmd(&cfg, &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing to run"), "{err}");
}
