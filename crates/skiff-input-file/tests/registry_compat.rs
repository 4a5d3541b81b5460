//! The registry across versions, on real files through the whole input: a registry written by
//! a newer skiff (higher format, fields and record kinds this version does not know) and one
//! written before the format had a version both resume from their saved offsets, and what this
//! version does not understand is still in the file after its own commits and compaction.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use serde_json::Value;

const LINE: u64 = 12; // "line 000000\n"

fn cfg() -> String {
    format!("type: filestream\nid: t1\npaths: [\"$DIR/*.log\"]\n{FAST}")
}

/// A record of `file` at `offset`, in this version's field names, plus `extra` fields.
fn file_record(file: &Path, offset: u64, extra: &str) -> String {
    let meta = std::fs::metadata(file).unwrap();
    let head = std::fs::read(file).unwrap();
    let fp = skiff_input_file::Fingerprint::of(&head[..head.len().min(1024)]);
    format!(
        r#"{{"input":"t1","dev":{},"ino":{},"path":"{}","offset":{offset},"size":{},"fp_len":{},"fp":{},"phase":"closed","changed":1700000000{extra}}}"#,
        meta.dev(),
        meta.ino(),
        file.display(),
        meta.len(),
        fp.len,
        fp.hash
    )
}

fn registry_lines(data: &Path) -> Vec<Value> {
    std::fs::read_to_string(data.join("registry/filestream/t1.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// How many backups named `<prefix>...bak` the registry directory holds.
fn backups(data: &Path, prefix: &str) -> usize {
    std::fs::read_dir(data.join("registry/filestream"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".bak"))
        .count()
}

/// Runs the input on `registry` (the file is `app.log` with lines 0..1000, 500 of them saved
/// as shipped): the first line published must be line 500, and every later one exactly once.
async fn resumes_from_the_saved_offset(logs: &Path, data: &Path, registry: String) {
    let p = logs.join("app.log");
    let dir = data.join("registry/filestream");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t1.ndjson"), registry).unwrap();
    let r = start(&cfg(), logs, data);
    r.wait_count(500).await;
    r.wait_status(&p, "acked", |f| f["acked_offset"] == f["size"])
        .await;
    let ev = r.stop().await;
    let got = numbers(&ev, "line ");
    assert_eq!(
        got.first(),
        Some(&500),
        "re-shipped lines before the saved offset"
    );
    assert_eq!(got, (500..1000).collect::<Vec<_>>());
}

/// The registry downgrade test (issue 9, part 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_downgrade_resumes_from_saved_offsets_and_keeps_unknown_parts() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("app.log");
    std::fs::write(&p, numbered("line", 0, 1000)).unwrap();
    let registry = [
        r#"{"format":7,"created":1700000000,"writer":"skiff 3.0"}"#.to_owned(),
        file_record(
            &p,
            500 * LINE,
            r#","line_count":500,"codec":{"name":"zstd","level":3}"#,
        ),
        r#"{"kind":"checkpoint","seq":12,"files":["a","b"]}"#.to_owned(),
        r#"{"kind":"lease","holder":"host-1","until":1700000300}"#.to_owned(),
        String::new(),
    ]
    .join("\n");
    resumes_from_the_saved_offset(logs.path(), data.path(), registry).await;

    // After this version's own commits (and the rewrite at start-up), the newer parts remain.
    let v = registry_lines(data.path());
    assert_eq!(v[0]["format"], skiff_input_file::registry::FORMAT);
    assert_eq!(v[0]["writer"], "skiff 3.0");
    assert_eq!(v[0]["created"], 1_700_000_000);
    assert!(
        v.iter()
            .any(|r| r["kind"] == "checkpoint" && r["seq"] == 12)
    );
    assert!(
        v.iter()
            .any(|r| r["kind"] == "lease" && r["holder"] == "host-1")
    );
    let last = v
        .iter()
        .rev()
        .find(|r| r["path"] == p.to_string_lossy().as_ref())
        .unwrap();
    assert_eq!(
        last["offset"],
        1000 * LINE,
        "this version's own progress saved"
    );
    assert_eq!(last["line_count"], 500);
    assert_eq!(last["codec"]["name"], "zstd");
    // The newer file itself is in a backup.
    assert_eq!(
        backups(data.path(), "t1.ndjson.v7."),
        1,
        "one backup of the format-7 file"
    );

    // A compaction (what a long run does every few thousand records) keeps them too.
    let (mut store, loaded) = skiff_input_file::registry::Store::open(data.path(), "t1").unwrap();
    store.compact(loaded.entries.values()).unwrap();
    let v = registry_lines(data.path());
    assert_eq!(v.len(), 4, "header, two unknown records, one file: {v:?}");
    assert!(v.iter().any(|r| r["kind"] == "lease"));
    assert!(
        v.iter()
            .any(|r| r["line_count"] == 500 && r["offset"] == 1000 * LINE)
    );
}

/// A registry exactly as skiff wrote it before the format had a version (format 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_written_before_the_format_version_still_loads() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("app.log");
    std::fs::write(&p, numbered("line", 0, 1000)).unwrap();
    let registry = [
        r#"{"input":"","dev":0,"ino":0,"path":"","offset":0,"size":0,"fp_len":0,"fp":0,"phase":"closed","changed":0,"created":1600000000}"#.to_owned(),
        file_record(&p, 200 * LINE, ""),
        file_record(&p, 500 * LINE, ""),
        String::new(),
    ]
    .join("\n");
    resumes_from_the_saved_offset(logs.path(), data.path(), registry).await;
    // Upgraded by the next compaction, after a backup of the format-1 file.
    let (mut store, loaded) = skiff_input_file::registry::Store::open(data.path(), "t1").unwrap();
    assert_eq!(loaded.format, 1);
    store.compact(loaded.entries.values()).unwrap();
    let v = registry_lines(data.path());
    assert_eq!(v[0]["format"], skiff_input_file::registry::FORMAT);
    assert_eq!(v[0]["created"], 1_600_000_000);
    assert_eq!(v.len(), 2);
    assert_eq!(v[1]["offset"], 1000 * LINE);
    assert_eq!(backups(data.path(), "t1.ndjson.v1."), 1);
}

/// A damaged line in the middle of the registry (a flipped byte, a torn write) is skipped and
/// counted in `skiff.input.file.registry.damaged_records`; the records around it still count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_registry_lines_are_skipped_and_counted() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("app.log");
    std::fs::write(&p, numbered("line", 0, 1000)).unwrap();
    let header = format!(
        r#"{{"format":{},"created":1700000000}}"#,
        skiff_input_file::registry::FORMAT
    );
    let registry = [
        header,
        file_record(&p, 300 * LINE, ""),
        "{\"input\":\"t1\",\"dev\":1,\"ino\u{fffd}\u{0}".to_owned(),
        "not json at all".to_owned(),
        file_record(&p, 500 * LINE, ""),
        String::new(),
    ]
    .join("\n");
    let dir = data.path().join("registry/filestream");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t1.ndjson"), registry).unwrap();
    let r = start(&cfg(), logs.path(), data.path());
    r.wait_count(500).await;
    let damaged = r
        .ctx
        .metrics
        .counter(&skiff_metrics::names::REGISTRY_DAMAGED)
        .get();
    let ev = r.stop().await;
    assert_eq!(damaged, 2, "two damaged lines counted");
    assert_eq!(
        numbers(&ev, "line "),
        (500..1000).collect::<Vec<_>>(),
        "resumed from the last good record"
    );
}
