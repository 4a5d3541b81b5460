//! A queue directory written by the previous on-disk format (format 1: JSON event bodies) is
//! replayed by this build after an upgrade, with every field, and new events (format 2) follow
//! it in order. The fixture `tests/fixtures/diskq-v1` was written by skiff's format-1 code
//! (commit 7a55f22): 12 events from two sources, the first two acknowledged by the output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use skiff_event::{AckStream, Event, Map, Timestamp};
use skiff_metrics::{Registry, names};
use skiff_pipeline::Budget;
use skiff_pipeline::queue::Queue;
use skiff_pipeline::queue::disk::{DiskQueue, DiskQueueConfig};

const LIVENESS: Duration = Duration::from_secs(20);

fn open(dir: &Path) -> (DiskQueue, Registry) {
    let reg = Registry::new();
    let q = DiskQueue::open(
        DiskQueueConfig::default(),
        dir,
        &reg,
        &Budget::new(reg.clone()),
    )
    .unwrap();
    (q, reg)
}

async fn pop_all(q: &DiskQueue, n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    while out.len() < n {
        let mut b = tokio::time::timeout(LIVENESS, q.pop(n - out.len()))
            .await
            .expect("pop waited too long")
            .expect("queue ended early");
        out.append(&mut b.events);
    }
    out
}

fn text(e: &Event, path: &str) -> Option<String> {
    e.get(path).map(|f| f.to_text())
}

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diskq-v1/diskqueue");
    let dq = to.join("diskqueue");
    std::fs::create_dir_all(&dq).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dq.join(e.file_name())).unwrap();
    }
}

#[tokio::test]
async fn a_queue_written_by_format_1_is_replayed_after_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let (q, reg) = open(dir.path());
    assert_eq!(reg.gauge(&names::DISK_QUEUE_EVENTS).get(), 10);
    let mut got = pop_all(&q, 10).await;
    assert_eq!(reg.counter(&names::DISK_QUEUE_CORRUPT).get(), 0);
    for (e, i) in got.iter().zip(2u64..) {
        // As the fixture's generator made them.
        assert_eq!(e.offset, Some(i * 100), "event {i}");
        assert_eq!(e.timestamp, Timestamp(1_700_000_000_123_456_789 + i as i64));
        let msg = (i != 7).then(|| format!("line {i:02} \"q\" \u{e9}\u{1F600} \\ end"));
        assert_eq!(e.message, msg, "event {i}");
        assert_eq!(text(e, "host.name").as_deref(), Some("web-1"));
        let (path, index) = if i % 3 == 2 {
            ("/var/log/b \u{e9}.log", None)
        } else {
            ("/var/log/a.log", Some("logs-a"))
        };
        assert_eq!(text(e, "log.file.path").as_deref(), Some(path), "event {i}");
        assert_eq!(text(e, "@metadata.index").as_deref(), index, "event {i}");
        let level = (i % 4 == 1).then(|| "warn".to_owned());
        assert_eq!(text(e, "json.level"), level, "event {i}");
        let n = (i % 4 == 1).then(|| i.to_string());
        assert_eq!(text(e, "json.n"), n, "event {i}");
        let pipeline = (i % 5 == 3).then(|| "p1".to_owned());
        assert_eq!(text(e, "@metadata.pipeline"), pipeline, "event {i}");
    }
    // The output takes five; new events are written in format 2 after the old ones.
    for e in got.iter_mut().take(5) {
        e.ack();
    }
    let stream = AckStream::new();
    let mut sh = Map::new();
    sh.insert("host".into(), serde_json::json!({"name": "web-2"}));
    let sh = Arc::new(sh);
    for i in 100..103u64 {
        let mut e = Event::new(sh.clone(), format!("new {i}"));
        e.offset = Some(i);
        e.ack = Some(stream.token(i));
        q.push(e).await.unwrap();
    }
    assert!(
        stream
            .wait_all_acked(tokio::time::Instant::now() + LIVENESS)
            .await
    );
    drop(got);
    q.stop();
    drop(q);
    // After a restart: the five unacknowledged old events, then the new ones, in order.
    let (q, _) = open(dir.path());
    let got = pop_all(&q, 8).await;
    let offsets: Vec<u64> = got.iter().map(|e| e.offset.unwrap()).collect();
    assert_eq!(offsets, vec![700, 800, 900, 1000, 1100, 100, 101, 102]);
    assert_eq!(text(&got[5], "host.name").as_deref(), Some("web-2"));
    assert_eq!(got[7].message.as_deref(), Some("new 102"));
}
