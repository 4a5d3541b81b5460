//! The disk queue against its promises: acknowledged only once written, replayed in order after
//! a restart, torn and damaged segments recovered without losing the good records, backpressure
//! at `max_size`, clear errors for unusable directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skiff_config::ByteSize;
use skiff_event::{AckStream, Event, Map};
use skiff_metrics::{Registry, names};
use skiff_pipeline::Budget;
use skiff_pipeline::queue::Queue;
use skiff_pipeline::queue::disk::{DiskQueue, DiskQueueConfig};

/// Generous bound for things that must happen; only reached when the code is broken.
const LIVENESS: Duration = Duration::from_secs(20);

fn open(dir: &Path, cfg: DiskQueueConfig) -> (DiskQueue, Registry) {
    let reg = Registry::new();
    let q = DiskQueue::open(cfg, dir, &reg, &Budget::new(reg.clone())).unwrap();
    (q, reg)
}

fn event(shared: &Arc<Map>, i: u64, stream: &Arc<AckStream>) -> Event {
    let mut e = Event::new(shared.clone(), format!("line {i:06} {}", "x".repeat(40)));
    e.offset = Some(i);
    e.ack = Some(stream.token(i));
    e
}

fn shared() -> Arc<Map> {
    let mut m = Map::new();
    m.insert("host".into(), serde_json::json!({"name": "web-1"}));
    m.insert(
        "log".into(),
        serde_json::json!({"file": {"path": "/var/log/a.log"}}),
    );
    Arc::new(m)
}

/// Pushes `ids` and waits until the queue acknowledged all of them to the input.
async fn push_durably(q: &DiskQueue, ids: std::ops::Range<u64>) -> Arc<AckStream> {
    let stream = AckStream::new();
    let sh = shared();
    let n = ids.end - ids.start;
    for i in ids {
        q.push(event(&sh, i, &stream)).await.unwrap();
    }
    let ok = stream
        .wait_all_acked(tokio::time::Instant::now() + LIVENESS)
        .await;
    assert!(ok, "the queue did not acknowledge {n} pushed events");
    stream
}

/// Pops `n` events (acking them when `ack`), returning their offsets.
async fn pop_n(q: &DiskQueue, n: usize, ack: bool) -> Vec<u64> {
    let mut out = Vec::new();
    while out.len() < n {
        let b = tokio::time::timeout(LIVENESS, q.pop(n - out.len()))
            .await
            .expect("pop waited too long")
            .expect("queue ended early");
        let mut b = b;
        for mut e in std::mem::take(&mut b.events) {
            assert_eq!(
                e.get("host.name")
                    .and_then(|f| f.as_str().map(str::to_owned)),
                Some("web-1".to_owned()),
                "shared fields come back"
            );
            out.push(e.offset.unwrap());
            if ack {
                e.ack();
            }
        }
    }
    out
}

/// The segments of the queue whose data directory is `dir`.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("diskqueue"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Frame boundaries of a segment: `(start, end, is_event)` per frame, from the documented format.
fn frames(bytes: &[u8]) -> Vec<(usize, usize, bool)> {
    let mut out = Vec::new();
    let mut p = 0;
    while p + 12 <= bytes.len() {
        assert_eq!(&bytes[p..p + 4], &[0xF5, b'S', b'Q', 0x02]);
        let len = u32::from_le_bytes(bytes[p + 4..p + 8].try_into().unwrap()) as usize;
        out.push((p, p + 12 + len, bytes[p + 12] == 2));
        p += 12 + len;
    }
    out
}

#[tokio::test]
async fn acknowledged_after_write_and_replayed_in_order_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (q, reg) = open(dir.path(), DiskQueueConfig::default());
    let stream = push_durably(&q, 0..100).await;
    assert_eq!(stream.progress().acked_position, Some(99));
    assert!(reg.counter(&names::DISK_QUEUE_SYNCS).get() >= 1);
    assert_eq!(reg.gauge(&names::DISK_QUEUE_EVENTS).get(), 100);
    // The output takes 30 and acknowledges them; 10 more are taken but not acknowledged.
    assert_eq!(pop_n(&q, 30, true).await, (0..30).collect::<Vec<_>>());
    assert_eq!(pop_n(&q, 10, false).await, (30..40).collect::<Vec<_>>());
    q.stop();
    drop(q);
    let (q, reg) = open(dir.path(), DiskQueueConfig::default());
    assert_eq!(reg.gauge(&names::DISK_QUEUE_EVENTS).get(), 70);
    assert_eq!(pop_n(&q, 70, true).await, (30..100).collect::<Vec<_>>());
    // New events go after the replayed ones.
    push_durably(&q, 100..110).await;
    assert_eq!(pop_n(&q, 10, true).await, (100..110).collect::<Vec<_>>());
}

#[tokio::test]
async fn acknowledged_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DiskQueueConfig {
        segment_size: Some(ByteSize(2048)),
        ..Default::default()
    };
    let (q, reg) = open(dir.path(), cfg.clone());
    push_durably(&q, 0..200).await;
    let many = segments(dir.path()).len();
    assert!(many > 5, "small segments: {many}");
    assert_eq!(pop_n(&q, 200, true).await.len(), 200);
    // The acker deletes within a few ticks; wait for it (bounded).
    let deadline = std::time::Instant::now() + LIVENESS;
    while segments(dir.path()).len() > 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        segments(dir.path()).len(),
        2,
        "only the segment being written remains, and one kept for reuse"
    );
    while reg.gauge(&names::DISK_QUEUE_EVENTS).get() != 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(reg.gauge(&names::DISK_QUEUE_EVENTS).get(), 0);
    q.stop();
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "a clean stop deletes the spare"
    );
}

/// Writes 0..n, stops, and returns the bytes of the one segment with events.
async fn written(dir: &Path, n: u64) -> (PathBuf, Vec<u8>) {
    let (q, _) = open(dir, DiskQueueConfig::default());
    push_durably(&q, 0..n).await;
    q.stop();
    drop(q);
    let segs: Vec<_> = segments(dir)
        .into_iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    assert_eq!(segs.len(), 1);
    let bytes = std::fs::read(&segs[0]).unwrap();
    (segs[0].clone(), bytes)
}

async fn drain_after_reopen(dir: &Path) -> (Vec<u64>, Registry) {
    let (q, reg) = open(dir, DiskQueueConfig::default());
    let avail = q.stats().events as usize;
    let got = pop_n(&q, avail, true).await;
    (got, reg)
}

#[tokio::test]
async fn a_torn_tail_is_cut_at_any_byte_and_the_rest_survives() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20;
    let (seg, bytes) = written(dir.path(), n).await;
    let fr = frames(&bytes);
    let events: Vec<_> = fr.iter().filter(|f| f.2).collect();
    assert_eq!(events.len() as u64, n);
    // Every cut in the last three records, plus a pseudo-random spread over the file.
    let mut cuts: Vec<usize> = (events[n as usize - 3].0..bytes.len()).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cuts.push((x % bytes.len() as u64) as usize);
    }
    for cut in cuts {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("diskqueue")).unwrap();
        std::fs::write(
            d.path().join("diskqueue").join(seg.file_name().unwrap()),
            &bytes[..cut],
        )
        .unwrap();
        let complete = events.iter().filter(|f| f.1 <= cut).count() as u64;
        let (got, reg) = drain_after_reopen(d.path()).await;
        assert_eq!(got, (0..complete).collect::<Vec<_>>(), "cut at {cut}");
        let torn = !fr.iter().any(|f| f.1 == cut) && cut > 0;
        assert_eq!(
            reg.counter(&names::DISK_QUEUE_CORRUPT).get(),
            u64::from(torn),
            "cut at {cut}"
        );
    }
}

#[tokio::test]
async fn a_flipped_byte_loses_one_record_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20u64;
    let (seg, bytes) = written(dir.path(), n).await;
    let events: Vec<_> = frames(&bytes).into_iter().filter(|f| f.2).collect();
    // In the middle: header, length field, payload.
    for (victim, offset) in [(5usize, 2usize), (9, 5), (12, 40)] {
        let d = tempfile::tempdir().unwrap();
        let mut b = bytes.clone();
        b[events[victim].0 + offset] ^= 0x20;
        std::fs::create_dir_all(d.path().join("diskqueue")).unwrap();
        std::fs::write(
            d.path().join("diskqueue").join(seg.file_name().unwrap()),
            &b,
        )
        .unwrap();
        let (q, reg) = open(d.path(), DiskQueueConfig::default());
        let want: Vec<u64> = (0..n).filter(|i| *i != victim as u64).collect();
        assert_eq!(
            pop_n(&q, want.len(), true).await,
            want,
            "flip in record {victim}"
        );
        assert!(reg.counter(&names::DISK_QUEUE_CORRUPT).get() >= 1);
    }
    // In the last record: it is cut as a damaged tail, the others stay.
    let d = tempfile::tempdir().unwrap();
    let mut b = bytes.clone();
    b[events[n as usize - 1].0 + 30] ^= 0x01;
    std::fs::create_dir_all(d.path().join("diskqueue")).unwrap();
    std::fs::write(
        d.path().join("diskqueue").join(seg.file_name().unwrap()),
        &b,
    )
    .unwrap();
    let (got, reg) = drain_after_reopen(d.path()).await;
    assert_eq!(got, (0..n - 1).collect::<Vec<_>>());
    assert_eq!(reg.counter(&names::DISK_QUEUE_CORRUPT).get(), 1);
}

#[tokio::test]
async fn at_max_size_pushes_wait_until_the_output_acknowledges() {
    pushes_wait_at_max_size(1).await;
}

#[tokio::test]
async fn at_max_size_batched_pushes_wait_and_keep_the_order() {
    pushes_wait_at_max_size(32).await;
}

/// Pushes 200 events `per_call` at a time (`push` for 1, `push_all` otherwise) into a queue
/// too small for them, then drains it.
async fn pushes_wait_at_max_size(per_call: u64) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DiskQueueConfig {
        max_size: ByteSize(4096),
        segment_size: Some(ByteSize(1024)),
        write_ahead: 4,
        ..Default::default()
    };
    let (q, reg) = open(dir.path(), cfg);
    let stream = AckStream::new();
    let sh = shared();
    let q2 = q.clone();
    let s2 = stream.clone();
    let pusher = tokio::spawn(async move {
        if per_call == 1 {
            for i in 0..200 {
                q2.push(event(&sh, i, &s2)).await.unwrap();
            }
        } else {
            for first in (0..200).step_by(per_call as usize) {
                let mut batch: Vec<Event> = (first..(first + per_call).min(200))
                    .map(|i| event(&sh, i, &s2))
                    .collect();
                q2.push_all(&mut batch).await.unwrap();
                assert!(batch.is_empty());
            }
        }
    });
    // Without a consumer the pusher cannot finish: 200 events of ~150 bytes exceed 4 KiB.
    let deadline = std::time::Instant::now() + LIVENESS;
    while reg.counter(&names::PIPELINE_BLOCKED).get() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!pusher.is_finished());
    assert!(reg.counter(&names::PIPELINE_BLOCKED).get() >= 1);
    let acked_while_full = stream.progress().acked;
    assert!(acked_while_full < 200);
    assert!(q.stats().bytes <= 4096, "{}", q.stats().bytes);
    assert!(reg.gauge(&names::DISK_QUEUE_BYTES).get() <= 4096);
    // The consumer acknowledges: everything gets through, in order, never over max_size.
    let mut got = Vec::new();
    while got.len() < 200 {
        let mut b = tokio::time::timeout(LIVENESS, q.pop(16))
            .await
            .unwrap()
            .unwrap();
        for mut e in std::mem::take(&mut b.events) {
            got.push(e.offset.unwrap());
            e.ack();
        }
        assert!(reg.gauge(&names::DISK_QUEUE_BYTES).get() <= 4096);
    }
    pusher.await.unwrap();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    assert!(
        stream
            .wait_all_acked(tokio::time::Instant::now() + LIVENESS)
            .await
    );
}

#[tokio::test]
async fn drop_newest_drops_only_when_full_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DiskQueueConfig {
        max_size: ByteSize(2048),
        segment_size: Some(ByteSize(1024)),
        write_ahead: 2,
        when_full: skiff_pipeline::queue::WhenFull::DropNewest,
        ..Default::default()
    };
    let (q, reg) = open(dir.path(), cfg);
    let stream = AckStream::new();
    let sh = shared();
    for i in 0..100 {
        // Never waits for long: the writer drops once blocked.
        tokio::time::timeout(LIVENESS, q.push(event(&sh, i, &stream)))
            .await
            .unwrap()
            .unwrap();
    }
    assert!(reg.counter(&names::PIPELINE_EVENTS_DROPPED).get() > 0);
    assert!(q.stats().bytes <= 2048);
}

#[test]
fn a_path_that_is_not_a_writable_directory_is_a_clear_error() {
    // A regular file where the directory should be: fails even for root.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let reg = Registry::new();
    let cfg = DiskQueueConfig {
        path: Some(file.clone()),
        ..Default::default()
    };
    let err = DiskQueue::open(cfg, dir.path(), &reg, &Budget::new(reg.clone()))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("queue.disk.path"), "{err}");
    // Below a file: ENOTDIR.
    let cfg = DiskQueueConfig {
        path: Some(file.join("queue")),
        ..Default::default()
    };
    let err = DiskQueue::open(cfg, dir.path(), &reg, &Budget::new(reg.clone()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not-a-dir/queue"), "{err}");
    assert!(err.to_lowercase().contains("not a directory"), "{err}");
}

#[tokio::test]
async fn close_drains_everything_on_disk_then_ends() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DiskQueueConfig {
        read_ahead: 8,
        ..Default::default()
    };
    let (q, _) = open(dir.path(), cfg);
    push_durably(&q, 0..50).await;
    q.close();
    let stream = AckStream::new();
    assert!(q.push(event(&shared(), 99, &stream)).await.is_err());
    let mut got = Vec::new();
    while let Some(b) = tokio::time::timeout(LIVENESS, q.pop(7)).await.unwrap() {
        got.extend(b.events.iter().map(|e| e.offset.unwrap()));
    }
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

#[tokio::test]
async fn read_ahead_bounds_memory_whatever_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DiskQueueConfig {
        read_ahead: 16,
        ..Default::default()
    };
    let reg = Registry::new();
    let budget = Budget::new(reg.clone());
    let q = DiskQueue::open(cfg, dir.path(), &reg, &budget).unwrap();
    push_durably(&q, 0..3000).await;
    let used = || -> u64 {
        budget
            .snapshot()
            .iter()
            .filter(|s| s.0 == "queue.disk.read_ahead")
            .map(|s| s.1)
            .sum()
    };
    let deadline = std::time::Instant::now() + LIVENESS;
    while used() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Give the reader a chance to overfill if it were going to.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let used = used();
    let one = event(&shared(), 0, &AckStream::new()).size_bytes() as u64;
    // `read_ahead` events read from disk, or up to four times that handed over by the writer
    // (events it holds anyway); never the backlog.
    assert!(
        used > 0 && used <= 4 * 16 * one,
        "read-ahead holds {used} bytes"
    );
    assert_eq!(q.stats().waiting, 3000);
}

#[tokio::test]
async fn a_full_disk_blocks_without_acknowledging_then_recovers_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DiskQueueConfig {
        retry_interval: skiff_config::Duration(Duration::from_millis(5)),
        max_retry_interval: skiff_config::Duration(Duration::from_millis(20)),
        ..Default::default()
    };
    let (q, _) = open(dir.path(), cfg.clone());
    push_durably(&q, 0..10).await;
    // The disk "fills up": every write fails with ENOSPC until we say otherwise.
    q.inject_write_failures(u64::MAX);
    let stream = AckStream::new();
    let sh = shared();
    for i in 10..30 {
        q.push(event(&sh, i, &stream)).await.unwrap();
    }
    // Wait (bounded) until the writer has failed and retried a few times.
    let deadline = std::time::Instant::now() + LIVENESS;
    while q.injected_write_failures_left() > u64::MAX - 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(q.injected_write_failures_left() <= u64::MAX - 4);
    assert_eq!(
        stream.progress().acked,
        0,
        "nothing is acknowledged to the input while it cannot be written"
    );
    // The events written before are still delivered meanwhile.
    assert_eq!(pop_n(&q, 10, true).await, (0..10).collect::<Vec<_>>());
    // Space again: the held group is written, acknowledged, delivered once, in order.
    q.inject_write_failures(0);
    assert!(
        stream
            .wait_all_acked(tokio::time::Instant::now() + LIVENESS)
            .await
    );
    assert_eq!(pop_n(&q, 20, true).await, (10..30).collect::<Vec<_>>());
    // And after a restart nothing is missing or repeated beyond what was unacknowledged.
    push_durably(&q, 30..35).await;
    q.stop();
    drop(q);
    let (q, _) = open(dir.path(), cfg);
    assert_eq!(pop_n(&q, 5, true).await, (30..35).collect::<Vec<_>>());
}

#[tokio::test]
async fn read_ahead_is_bounded_in_bytes_too() {
    let dir = tempfile::tempdir().unwrap();
    let one = event(&shared(), 0, &AckStream::new()).size_bytes() as u64;
    let cfg = DiskQueueConfig {
        read_ahead: 512,
        max_ahead_bytes: ByteSize(10 * one),
        ..Default::default()
    };
    let reg = Registry::new();
    let budget = Budget::new(reg.clone());
    let q = DiskQueue::open(cfg, dir.path(), &reg, &budget).unwrap();
    push_durably(&q, 0..1000).await;
    let used = || -> u64 {
        budget
            .snapshot()
            .iter()
            .filter(|s| s.0 == "queue.disk.read_ahead")
            .map(|s| s.1)
            .sum()
    };
    let deadline = std::time::Instant::now() + LIVENESS;
    while used() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let used = used();
    assert!(
        used > 0 && used <= 11 * one,
        "read-ahead holds {used} bytes"
    );
    // And it all comes through.
    assert_eq!(pop_n(&q, 1000, true).await, (0..1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn oldest_unacknowledged_age_grows_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (q, reg) = open(dir.path(), DiskQueueConfig::default());
    assert_eq!(reg.value(&names::QUEUE_OLDEST_AGE_MS), Some(0.0));
    push_durably(&q, 0..5).await;
    let mut b = tokio::time::timeout(LIVENESS, q.pop(5))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let age = reg.value(&names::QUEUE_OLDEST_AGE_MS).unwrap();
    assert!(age >= 30.0, "{age}");
    for mut e in std::mem::take(&mut b.events) {
        e.ack();
    }
    let deadline = std::time::Instant::now() + LIVENESS;
    while reg.value(&names::QUEUE_OLDEST_AGE_MS) != Some(0.0)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(reg.value(&names::QUEUE_OLDEST_AGE_MS), Some(0.0));
}

/// Groups written while the reader waits at the end go straight to the read-ahead buffer, in
/// part when the buffer is small (`read_ahead: 3`): every event still arrives once, in order,
/// with its own source's shared fields (two sources alternate, so the rest of a group refers to
/// shared-field records the reader never read), and after a crash everything not acknowledged by
/// the output is replayed from disk.
#[tokio::test]
async fn handed_over_groups_keep_order_and_sources_and_are_replayed_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DiskQueueConfig {
        read_ahead: 3,
        ..Default::default()
    };
    let (q, _) = open(dir.path(), cfg.clone());
    let mut other = Map::new();
    other.insert("host".into(), serde_json::json!({"name": "web-2"}));
    let sources = [shared(), Arc::new(other)];
    let stream = AckStream::new();
    let mut got: Vec<(u64, String)> = Vec::new();
    let mut held = Vec::new();
    for round in 0..20u64 {
        let ids = round * 10..round * 10 + 10;
        let mut group: Vec<Event> = ids
            .clone()
            .map(|i| event(&sources[(i % 2) as usize], i, &stream))
            .collect();
        q.push_all(&mut group).await.unwrap();
        while got.len() < ids.end as usize {
            let mut b = tokio::time::timeout(LIVENESS, q.pop(4))
                .await
                .expect("pop waited too long")
                .expect("queue ended early");
            for e in std::mem::take(&mut b.events) {
                let host = e.get("host.name").map(|f| f.to_text()).unwrap();
                got.push((e.offset.unwrap(), host));
                // The output acknowledges the first half only.
                if e.offset.unwrap() < 100 {
                    let mut e = e;
                    e.ack();
                } else {
                    held.push(e);
                }
            }
        }
    }
    let want: Vec<(u64, String)> = (0..200)
        .map(|i| (i, if i % 2 == 0 { "web-1" } else { "web-2" }.to_owned()))
        .collect();
    assert_eq!(got, want);
    assert!(
        stream
            .wait_all_acked(tokio::time::Instant::now() + LIVENESS)
            .await
    );
    // Let the acknowledged watermark reach the state file, then crash.
    tokio::time::sleep(Duration::from_millis(100)).await;
    q.crash();
    drop(q);
    drop(held);
    let (q, _) = open(dir.path(), cfg);
    let avail = q.stats().events as usize;
    let mut replay: Vec<(u64, String)> = Vec::new();
    while replay.len() < avail {
        let mut b = tokio::time::timeout(LIVENESS, q.pop(avail - replay.len()))
            .await
            .expect("pop waited too long")
            .expect("queue ended early");
        for mut e in std::mem::take(&mut b.events) {
            let host = e.get("host.name").map(|f| f.to_text()).unwrap();
            replay.push((e.offset.unwrap(), host));
            e.ack();
        }
    }
    let from = replay.first().map_or(200, |f| f.0);
    assert!(
        from <= 100,
        "replay starts at or before the first unacknowledged event: {from}"
    );
    assert_eq!(replay, want[from as usize..].to_vec());
}

/// The fsync thread sees a failed fsync (`EIO`, injected): the events of that group are not
/// acknowledged to their input (they are read again from the source after a restart; nothing
/// is reported durable that is not), the failure is counted, the events already visible still
/// reach the output, and writing goes on in a new segment whose events are acknowledged.
#[tokio::test]
async fn a_failed_fsync_acknowledges_nothing_it_covered_and_writing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DiskQueueConfig {
        retry_interval: skiff_config::Duration(Duration::from_millis(5)),
        max_retry_interval: skiff_config::Duration(Duration::from_millis(20)),
        ..Default::default()
    };
    let (q, reg) = open(dir.path(), cfg.clone());
    let failures = reg.counter(&names::DISK_QUEUE_SYNC_FAILURES);
    push_durably(&q, 0..10).await;
    assert_eq!(failures.get(), 0);

    q.inject_sync_failures(1);
    let lost = AckStream::new();
    let sh = shared();
    for i in 10..20 {
        q.push(event(&sh, i, &lost)).await.unwrap();
    }
    let deadline = std::time::Instant::now() + LIVENESS;
    while failures.get() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(failures.get(), 1, "the failed fsync is counted");
    // The next events go to a new segment and are acknowledged once fsynced.
    let after = push_durably(&q, 20..30).await;
    assert_eq!(after.progress().acked, 10);
    // The events of the failed group (the first group after arming: at least event 10) were
    // given up on, never acknowledged: they hold this input's prefix back, so it commits
    // nothing past them and reads them again after a restart.
    let p = lost.progress();
    assert!(
        p.abandoned >= 1 && p.acked == 0,
        "the group of the failed fsync must not be acknowledged: {p:?}"
    );
    assert!(
        segments(dir.path()).len() >= 2,
        "writing went on in a new segment"
    );
    // Whatever was written reaches the output, in order, once (the lost group too: it was
    // written, only its durability is unknown; its input sends it again after a restart).
    assert_eq!(pop_n(&q, 30, true).await, (0..30).collect::<Vec<_>>());
}

/// `(inode, file name)` of every segment file now.
#[cfg(unix)]
fn segment_inodes(dir: &Path) -> Vec<(u64, String)> {
    use std::os::unix::fs::MetadataExt;
    segments(dir)
        .into_iter()
        .filter_map(|p| {
            let ino = std::fs::metadata(&p).ok()?.ino();
            Some((ino, p.file_name()?.to_string_lossy().into_owned()))
        })
        .collect()
}

/// Pushes and acknowledges rounds of events until the segment being written is a reused file
/// (an inode seen before under another name). Returns the next id to push, and how many
/// segment names and inodes were seen.
#[cfg(unix)]
async fn until_reused(q: &DiskQueue, dir: &Path, mut next: u64) -> (u64, usize, usize) {
    use std::collections::{BTreeMap, BTreeSet};
    let mut names: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let deadline = std::time::Instant::now() + LIVENESS;
    loop {
        push_durably(q, next..next + 20).await;
        assert_eq!(
            pop_n(q, 20, true).await,
            (next..next + 20).collect::<Vec<_>>()
        );
        next += 20;
        // Let the acker see the acknowledgements.
        tokio::time::sleep(Duration::from_millis(60)).await;
        for (ino, name) in segment_inodes(dir) {
            names.entry(ino).or_default().insert(name);
        }
        let newest = segment_inodes(dir).pop();
        if let Some((ino, name)) = newest
            && names[&ino].iter().any(|n| *n != name)
        {
            let all: BTreeSet<&String> = names.values().flatten().collect();
            return (next, all.len(), names.len());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no segment file was reused: {names:?}"
        );
    }
}

/// A fully acknowledged segment is kept and written again as a later segment instead of being
/// deleted and a new file created (the kernel's cost of new files, see `writer`): many segments
/// go through few files, and every event still arrives once, in order. A clean stop leaves no
/// spare file behind.
#[cfg(unix)]
#[tokio::test]
async fn acknowledged_segments_are_reused_not_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DiskQueueConfig {
        segment_size: Some(ByteSize(2048)),
        ..Default::default()
    };
    let (q, _) = open(dir.path(), cfg);
    let mut next = 0;
    let (mut names, mut inodes) = (0, 0);
    for _ in 0..3 {
        (next, names, inodes) = until_reused(&q, dir.path(), next).await;
    }
    assert!(
        names > inodes,
        "{names} segments went through {inodes} files"
    );
    q.stop();
    drop(q);
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "only the last segment remains"
    );
}

/// A crash while the writer fills a reused file: its old records (acknowledged events of the
/// segment it was) lie after the new ones. After the restart every event not acknowledged comes
/// back once, in order, none of the old records does, and numbering goes on after the new
/// records (events pushed after the restart arrive too).
#[cfg(unix)]
#[tokio::test]
async fn a_crash_in_a_reused_segment_replays_only_the_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DiskQueueConfig {
        segment_size: Some(ByteSize(4096)),
        ..Default::default()
    };
    let (q, _) = open(dir.path(), cfg.clone());
    let (next, _, _) = until_reused(&q, dir.path(), 0).await;
    // A few events in the reused file, popped and not acknowledged.
    push_durably(&q, next..next + 3).await;
    assert_eq!(pop_n(&q, 3, false).await, vec![next, next + 1, next + 2]);
    let newest = segments(dir.path()).pop().unwrap();
    let size = std::fs::metadata(&newest).unwrap().len();
    assert!(
        size > 2048,
        "old records remain after the new ones ({size} bytes)"
    );
    tokio::time::sleep(Duration::from_millis(60)).await;
    q.crash();
    drop(q);
    let (q, _) = open(dir.path(), cfg);
    assert_eq!(
        q.stats().events,
        3,
        "only the unacknowledged events are queued"
    );
    assert_eq!(pop_n(&q, 3, true).await, vec![next, next + 1, next + 2]);
    push_durably(&q, next + 3..next + 6).await;
    assert_eq!(pop_n(&q, 3, true).await, vec![next + 3, next + 4, next + 5]);
}

/// A crash right after a spare file was renamed to a new segment's name and before anything
/// was written to it: the newest segment file holds only old records. Recovery drops it, even
/// with the state file lost (everything still on disk is then replayed, in order), and events
/// pushed after the restart are numbered after the real newest ones, so none is skipped.
#[tokio::test]
async fn a_reused_segment_with_only_old_records_is_dropped_at_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DiskQueueConfig {
        segment_size: Some(ByteSize(2048)),
        ..Default::default()
    };
    let (q, _) = open(dir.path(), cfg.clone());
    push_durably(&q, 0..20).await;
    // The records of an early segment, as a reused file would still hold them.
    let early = std::fs::read(&segments(dir.path())[0]).unwrap();
    assert_eq!(pop_n(&q, 20, true).await.len(), 20);
    push_durably(&q, 20..40).await;
    assert_eq!(pop_n(&q, 20, false).await.len(), 20);
    q.crash();
    drop(q);
    let last = segments(dir.path()).pop().unwrap();
    let id: u64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    std::fs::write(
        dir.path().join(format!("diskqueue/{:016}.seg", id + 1)),
        &early,
    )
    .unwrap();
    // The state file lost too (it may not have been written yet).
    let _ = std::fs::remove_file(dir.path().join("diskqueue/state.json"));
    let (q, _) = open(dir.path(), cfg);
    let n = q.stats().events as usize;
    let replay = pop_n(&q, n, true).await;
    let from = replay[0];
    assert!(from <= 20, "replay starts at or before 20: {replay:?}");
    assert_eq!(replay, (from..40).collect::<Vec<_>>());
    push_durably(&q, 40..45).await;
    assert_eq!(pop_n(&q, 5, true).await, (40..45).collect::<Vec<_>>());
}
