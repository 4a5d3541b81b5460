//! `kill -9` for real: a child process pushes events into a disk queue (as a file input would,
//! resuming after the last position the queue acknowledged) while consuming and acknowledging
//! some (as an output would); the parent kills it with SIGKILL at random moments, 20 times. At
//! the end every event the queue ever acknowledged to the input was delivered at least once or is
//! still in the queue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use skiff_config::ByteSize;
use skiff_event::{AckStream, Event, Map};
use skiff_metrics::Registry;
use skiff_pipeline::Budget;
use skiff_pipeline::queue::Queue;
use skiff_pipeline::queue::disk::{DiskQueue, DiskQueueConfig};

const ENV: &str = "SKIFF_DQ_KILL_CHILD_DIR";

fn cfg() -> DiskQueueConfig {
    DiskQueueConfig {
        segment_size: Some(ByteSize(64 << 10)),
        write_ahead: 256,
        read_ahead: 64,
        ..Default::default()
    }
}

fn read_ids(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The child: runs until killed.
#[tokio::test]
#[ignore = "run by disk_queue_survives_kill_9 as a child process"]
async fn kill_child() {
    let Some(dir) = std::env::var_os(ENV) else {
        return;
    };
    let dir = Path::new(&dir).to_owned();
    let reg = Registry::new();
    let q = DiskQueue::open(cfg(), &dir, &reg, &Budget::new(reg.clone())).unwrap();
    // Resume after the last acknowledged id, as a file input resumes from its committed offset.
    let start = read_ids(&dir.join("acked")).last().map_or(0, |l| l + 1);
    let consumer = {
        let q = q.clone();
        let dir = dir.clone();
        tokio::spawn(async move {
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("delivered"))
                .unwrap();
            while let Some(mut b) = q.pop(50).await {
                let evs = std::mem::take(&mut b.events);
                let mut line = String::new();
                for e in &evs {
                    line.push_str(&format!("{}\n", e.offset.unwrap()));
                }
                // Delivered (recorded) first, then acknowledged.
                out.write_all(line.as_bytes()).unwrap();
                for mut e in evs {
                    e.ack();
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let mut acked_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("acked"))
        .unwrap();
    let shared = Arc::new(Map::new());
    let mut id = start;
    loop {
        let stream = AckStream::new();
        for _ in 0..100 {
            let mut e = Event::new(shared.clone(), format!("event {id} {}", "y".repeat(100)));
            e.offset = Some(id);
            e.ack = Some(stream.token(id));
            q.push(e).await.unwrap();
            id += 1;
        }
        // Record what the queue acknowledged (the input's committed offset).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let p = stream.progress();
            if let Some(pos) = p.acked_position {
                // One write per line: `writeln!` may split a line into several writes, and a
                // kill between them leaves a torn line that the next run's line completes into
                // a bogus huge id.
                acked_log.write_all(format!("{pos}\n").as_bytes()).unwrap();
            }
            if p.pending() == 0 || tokio::time::Instant::now() > deadline {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), stream.changed()).await;
        }
        let _ = &consumer;
    }
}

#[test]
fn disk_queue_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for round in 0..20 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "kill_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(30 + x % 150));
        // SIGKILL: no destructor, no final state write.
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = round;
    }
    let acked = read_ids(&dir.path().join("acked"));
    let last = *acked
        .iter()
        .max()
        .expect("the child never got an acknowledgement");
    assert!(last > 200, "too little progress to be a test: {last}");
    let delivered = read_ids(&dir.path().join("delivered"));
    let delivered_before = delivered.len();
    let mut seen: BTreeSet<u64> = delivered.into_iter().collect();
    // What is still queued.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reg = Registry::new();
    let q = DiskQueue::open(cfg(), dir.path(), &reg, &Budget::new(reg.clone())).unwrap();
    q.close();
    let mut drained = 0usize;
    rt.block_on(async {
        while let Some(mut b) = tokio::time::timeout(Duration::from_secs(30), q.pop(1000))
            .await
            .unwrap()
        {
            for mut e in std::mem::take(&mut b.events) {
                let id = e.offset.unwrap();
                seen.insert(id);
                drained += 1;
                e.ack();
            }
        }
    });
    let missing: Vec<u64> = (0..=last).filter(|i| !seen.contains(i)).collect();
    eprintln!(
        "kill -9 x20: {} ids acknowledged to the input, {delivered_before} deliveries before the end, {drained} left in the queue, {} duplicates",
        last + 1,
        (delivered_before + drained).saturating_sub(seen.len())
    );
    assert!(missing.is_empty(), "lost after kill -9: {missing:?}");
}
