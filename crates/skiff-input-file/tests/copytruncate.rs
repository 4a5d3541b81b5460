//! copytruncate with the copies inside the glob (issue 9, part 9), on real files through the
//! whole input: a writer appends numbered lines steadily while a rotator copies `app.log` to
//! `app.log.1` (shifting `.1` -> `.2` ... first) and truncates it, several times. Every line
//! must arrive, and almost none twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// The `n` of messages `line <n> <padding>`.
fn line_numbers(events: &[serde_json::Value]) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| {
            e["message"]
                .as_str()?
                .strip_prefix("line ")?
                .get(..6)?
                .parse()
                .ok()
        })
        .collect()
}

/// Shifts `app.log.N` -> `app.log.N+1` (oldest first), copies `app.log` to `app.log.1`, and
/// truncates `app.log`, like logrotate's `copytruncate` with `rotate keep`.
fn copytruncate(dir: &Path, keep: usize) {
    for n in (1..keep).rev() {
        let from = dir.join(format!("app.log.{n}"));
        if from.exists() {
            std::fs::rename(&from, dir.join(format!("app.log.{}", n + 1))).unwrap();
        }
    }
    std::fs::copy(dir.join("app.log"), dir.join("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("app.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// Lines `0..total` written by one writer through its own `O_APPEND` descriptor (as a program
/// logging to a file does), `rotations` copytruncates meanwhile. The copy and the truncation
/// hold the writer's lock: copytruncate itself loses the lines written between the two, which
/// no reader can recover, and this test is about the reader.
async fn run(total: usize, rotations: usize, extra: &str) -> (usize, usize) {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let dir = logs.path().to_path_buf();
    let p = dir.join("app.log");
    std::fs::write(&p, b"").unwrap();
    let yaml = format!("type: filestream\nid: ct\npaths: [\"$DIR/app.log*\"]\n{FAST}{extra}");
    let r = start(&yaml, logs.path(), data.path());
    let lock = Arc::new(Mutex::new(()));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (lock, done, p) = (lock.clone(), done.clone(), p.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            for chunk in (0..total).collect::<Vec<_>>().chunks(20) {
                let text: String = chunk
                    .iter()
                    .map(|i| format!("line {i:06} some padding so the head fills a kibibyte\n"))
                    .collect();
                {
                    let _g = lock.lock().unwrap();
                    f.write_all(text.as_bytes()).unwrap();
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            done.store(true, Ordering::Release);
        })
    };
    let every = Duration::from_millis(200);
    let mut rotated = 0;
    while rotated < rotations && !done.load(Ordering::Acquire) {
        tokio::time::sleep(every).await;
        let _g = lock.lock().unwrap();
        copytruncate(&dir, 4);
        rotated += 1;
    }
    writer.join().unwrap();
    assert!(
        rotated >= rotations.min(3),
        "the writer finished before {rotations} rotations ({rotated}): write more lines"
    );
    // Waits for every line (30 s at most, a safety net), then says which are missing.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut n = line_numbers(&r.events());
        n.sort_unstable();
        n.dedup();
        if n.len() >= total {
            break;
        }
        if std::time::Instant::now() > deadline {
            let missing: Vec<usize> = (0..total).filter(|i| n.binary_search(i).is_err()).collect();
            panic!(
                "timed out waiting for every line of 0..{total}: {} missing, first {:?}; status {}",
                missing.len(),
                &missing[..missing.len().min(20)],
                r.status()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let anything still on its way arrive before counting duplicates.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ev = r.stop().await;
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for n in line_numbers(&ev) {
        *seen.entry(n).or_default() += 1;
    }
    let lost = (0..total).filter(|i| !seen.contains_key(i)).count();
    let dups: usize = seen.values().map(|c| c - 1).sum();
    println!("copytruncate: {total} lines, {rotated} rotations, {lost} lost, {dups} duplicates");
    (lost, dups)
}

/// The copytruncate test: copies inside the glob, under 1 % duplicates, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_with_copies_in_the_glob_loses_nothing_and_repeats_under_1_percent() {
    let total = 20_000;
    let (lost, dups) = run(total, 6, "").await;
    assert_eq!(lost, 0, "lines lost");
    assert!(
        dups * 100 < total,
        "{dups} duplicates of {total} lines (1 % allowed)"
    );
}

/// Files under 1 KiB are only taken for copies when their name links them to the original
/// (`rotation.external.strategy.copytruncate`): then a small log's copy repeats nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_files_copy_is_recognised_by_its_suffix() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("app.log");
    std::fs::write(&p, numbered("small", 0, 10)).unwrap();
    let yaml = format!(
        "type: filestream\nid: ct\npaths: [\"$DIR/app.log*\"]\n{FAST}rotation.external.strategy.copytruncate.suffix_regex: '\\.\\d+$'\n"
    );
    let r = start(&yaml, logs.path(), data.path());
    r.wait_count(10).await;
    r.wait_status(&p, "acked", |f| f["acked_offset"] == f["size"])
        .await;
    copytruncate(logs.path(), 3);
    append(&p, numbered("small", 10, 15).as_bytes());
    r.wait_count(15).await;
    // The copy was found and decided (shown in the status) before counting.
    r.wait_status(&logs.path().join("app.log.1"), "the copy", |f| {
        f["read_offset"] == f["size"]
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = r.stop().await;
    let mut got = numbers(&ev, "small ");
    got.sort_unstable();
    assert_eq!(got, (0..15).collect::<Vec<_>>(), "every line exactly once");
}
