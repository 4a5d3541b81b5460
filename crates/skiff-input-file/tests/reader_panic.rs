//! A file reader that panics (the fault point `file.reader.panic`, armed in this test binary
//! only) is noticed, counted, and its file read again from the acknowledged offset: every line
//! arrives, duplicates only among the lines the dead reader had published, and the registry
//! offset moves again. Real files, a real memory queue and output worker.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicked_reader_is_reopened_from_the_acknowledged_offset_and_nothing_is_lost() {
    const LINES: usize = 5000;
    // A reader publishes batches of at most this many events; it panics after its first.
    const FIRST_BATCH: usize = 256;
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = logs.path().join("app.log");
    std::fs::write(&path, numbered("p", 0, LINES)).unwrap();
    skiff_pipeline::fault::arm("file.reader.panic", 1);
    let r = start(
        &format!(
            "type: filestream\nid: crash\npaths: [\"$DIR/*.log\"]\n{FAST}registry.flush: 20ms\n"
        ),
        logs.path(),
        data.path(),
    );
    r.wait_for(&format!("every one of the {LINES} lines"), |ev| {
        let mut n = numbers(ev, "p ");
        n.sort_unstable();
        n.dedup();
        n.len() == LINES
    })
    .await;
    let size = std::fs::metadata(&path).unwrap().len();
    // The offset moves again after the crash, up to the end.
    wait_registry(
        data.path(),
        1,
        "the offset saved at the end of the file",
        |f| f.acked_offset == size,
    )
    .await;
    let restarts = r
        .ctx
        .metrics
        .value(&skiff_metrics::names::FILES_READER_RESTARTS)
        .unwrap_or(0.0);
    assert_eq!(restarts, 1.0, "the dead reader is counted once");
    let ev = r.stop().await;
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for n in numbers(&ev, "p ") {
        *seen.entry(n).or_default() += 1;
    }
    assert_eq!(seen.len(), LINES, "a line is missing");
    let dups: Vec<usize> = seen
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        dups.iter().all(|n| *n < FIRST_BATCH),
        "only lines the dead reader published may come twice; duplicated: {:?}",
        dups.iter()
            .filter(|n| **n >= FIRST_BATCH)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(
        seen.values().all(|c| *c <= 2),
        "a line came more than twice"
    );
    eprintln!(
        "reader panic: {} of {LINES} lines sent twice (all before line {FIRST_BATCH})",
        dups.len()
    );
}
