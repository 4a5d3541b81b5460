//! `skiff version` says which build this is; `--help` lists what the binary really has.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::skiff;

fn stdout(args: &[&str]) -> String {
    let o = skiff().args(args).output().unwrap();
    assert!(o.status.success(), "skiff {args:?}: {o:?}");
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn version_prints_version_commit_and_build_date() {
    let v = stdout(&["version"]);
    assert!(v.starts_with("skiff version 0.1.0 "), "{v}");
    let commit = v
        .split("commit ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no commit in {v}"));
    // Built from this checkout: the commit is its HEAD (build.rs watches HEAD and the branch).
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(commit, head, "{v}"),
        None => assert_eq!(commit, "unknown", "{v}"),
    }
    let date = v
        .split("built ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap();
    assert!(
        date.len() == 20 && date.ends_with('Z') && date.as_bytes()[10] == b'T',
        "build date {date:?} is not RFC 3339 UTC"
    );
    let long = stdout(&["--version"]);
    assert!(long.contains(commit) && long.contains(date), "{long}");
}

#[test]
fn help_lists_commands_and_the_registered_components() {
    let help = stdout(&["--help"]);
    for want in [
        "run",
        "test",
        "export",
        "registry",
        "version",
        "keystore", // commands
        "filestream",
        "stdin",
        "log", // inputs
        "elasticsearch",
        "kafka",
        "redis",
        "file",
        "console",
        "logstash", // outputs
        "drop_fields",
        "add_fields", // processors
    ] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
    let ks = stdout(&["keystore", "--help"]);
    for want in ["create", "add", "list", "remove"] {
        assert!(ks.contains(want), "{ks}");
    }
}
