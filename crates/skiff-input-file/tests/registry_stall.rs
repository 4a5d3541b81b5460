//! The registry is written off the runtime: with the registry writer held (the fault point
//! `file.registry.stall`, armed in this test binary only, a stand-in for a disk that does not
//! answer), lines keep being read, published and delivered on a ONE-thread runtime, which a
//! blocking write on the runtime would stop. Shutdown waits for the last write, also with
//! `shutdown_timeout: 0`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use skiff_input_file::registry;

const STALL: &str = "file.registry.stall";

fn saved_offset(data: &std::path::Path) -> Option<u64> {
    let loaded = registry::load(&registry::store_path(data, "stall")).unwrap();
    loaded.entries.values().map(|r| r.offset).max()
}

#[tokio::test(flavor = "current_thread")]
async fn events_flow_while_the_registry_write_is_blocked_and_shutdown_waits_for_it() {
    const LINES: usize = 3000;
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = logs.path().join("app.log");
    std::fs::write(&path, numbered("s", 0, LINES)).unwrap();
    skiff_pipeline::fault::arm(STALL, 1);
    // `shutdown_timeout: 0`, the default: the last registry write is still waited for (a
    // regression once lost the last offsets at every stop with the default).
    let r = start_opts(
        &format!(
            "type: filestream\nid: stall\npaths: [\"$DIR/*.log\"]\n{FAST}registry.flush: 10ms\n"
        ),
        logs.path(),
        data.path(),
        Collect::default(),
        Duration::ZERO,
    );
    // Every line read and delivered (through the queue and the output worker, on this one
    // thread) while the registry writer is held.
    r.wait_count(LINES).await;
    // Lines appended now still flow.
    append(&path, numbered("s", LINES, LINES + 100).as_bytes());
    r.wait_count(LINES + 100).await;
    let size = std::fs::metadata(&path).unwrap().len();
    let writes = || {
        r.ctx
            .metrics
            .value(&skiff_metrics::names::REGISTRAR_WRITES)
            .unwrap_or(0.0)
    };
    assert_eq!(
        writes(),
        0.0,
        "a registry write finished while the writer was held"
    );
    assert_ne!(
        saved_offset(data.path()),
        Some(size),
        "the writer was not held"
    );

    // Stop while the writer is still held: the input must wait for its last write.
    let stop = tokio::spawn(r.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stop.is_finished(),
        "the input stopped without waiting for its registry write"
    );
    skiff_pipeline::fault::arm(STALL, 0);
    let ev = stop.await.unwrap();
    assert_eq!(ev.len(), LINES + 100);
    assert_eq!(
        saved_offset(data.path()),
        Some(size),
        "the last write, done before the input stopped, saves the end of the file"
    );
}
