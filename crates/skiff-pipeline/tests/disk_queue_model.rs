//! Model-based test of the disk queue: random pushes, pops, acknowledgements (in order, out of
//! order, or never), crashes and clean restarts, checked against a simple model of what an
//! at-least-once queue must do.
//!
//! The model: ids `0..pushed` were pushed and acknowledged to their input (so they are durably
//! queued). Within one run `pop` returns ids in order, each once. After a restart the queue must
//! start again at the end of the contiguous prefix acknowledged by the output (exactly there
//! after a clean stop; after a crash it may start earlier, repeating acknowledged events whose
//! acknowledgement was not yet stored, but never before the position stored earlier), then
//! continue in order: so everything pushed and not acknowledged comes back, in order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use skiff_config::{ByteSize, Duration as ConfDuration};
use skiff_event::{AckStream, Event, Map};
use skiff_metrics::Registry;
use skiff_pipeline::Budget;
use skiff_pipeline::queue::Queue;
use skiff_pipeline::queue::disk::{DiskQueue, DiskQueueConfig, SyncConfig, SyncMode};

const LIVENESS: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
enum Step {
    Push(u64),
    Pop(usize),
    AckOldest(usize),
    AckAny(usize),
    /// Drop the oldest in-flight event without acknowledging it (a lost send).
    Abandon,
    Crash,
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u64..12).prop_map(Step::Push),
        4 => (1usize..10).prop_map(Step::Pop),
        3 => (1usize..10).prop_map(Step::AckOldest),
        2 => (0usize..10).prop_map(Step::AckAny),
        1 => Just(Step::Abandon),
        1 => Just(Step::Crash),
        1 => Just(Step::Restart),
    ]
}

fn open(dir: &Path, mode: SyncMode) -> DiskQueue {
    let reg = Registry::new();
    let cfg = DiskQueueConfig {
        segment_size: Some(ByteSize(1024)),
        max_size: ByteSize(1 << 20),
        read_ahead: 5,
        write_ahead: 7,
        sync: SyncConfig {
            mode,
            interval: ConfDuration(Duration::from_millis(5)),
        },
        ..Default::default()
    };
    DiskQueue::open(cfg, dir, &reg, &Budget::new(reg.clone())).unwrap()
}

struct Model {
    pushed: u64,
    /// Where the current run's replay started (a lower bound while unknown after a crash).
    base: u64,
    /// Ids at or after `base` acknowledged in the current run. The queue records a contiguous
    /// watermark: acknowledgements behind an unacknowledged id are not remembered across a
    /// restart, and ids replayed in a run must be acknowledged again in that run.
    acked: BTreeSet<u64>,
    /// The next id `pop` must return; `None` after a crash until a pop reveals where the replay
    /// starts (anywhere from `base` to the first unacknowledged id).
    cursor: Option<u64>,
}

impl Model {
    /// The first id not acknowledged by the output in this run: where the stored watermark ends.
    fn first_unacked(&self) -> u64 {
        (self.base..)
            .find(|i| !self.acked.contains(i))
            .unwrap_or(self.base)
    }

    /// Events `pop` is sure to find.
    fn available(&self) -> u64 {
        let from = self.cursor.unwrap_or_else(|| self.first_unacked());
        self.pushed.saturating_sub(from)
    }

    fn check_popped(&mut self, ids: &[u64]) -> Result<(), String> {
        let Some(&first) = ids.first() else {
            return Err("empty batch".into());
        };
        let start = match self.cursor {
            Some(c) => c,
            None => {
                let limit = self.first_unacked();
                if first > limit {
                    return Err(format!(
                        "after a crash the replay starts at {first}, past the first unacknowledged {limit}: events lost"
                    ));
                }
                if first < self.base {
                    return Err(format!(
                        "after a crash the replay starts at {first}, before the position {} stored earlier",
                        self.base
                    ));
                }
                // The queue restarted from `first`: acknowledgements at or after it were not
                // stored before the crash; they are given again in this run.
                self.base = first;
                self.acked.clear();
                first
            }
        };
        let want: Vec<u64> = (start..start + ids.len() as u64).collect();
        if ids != want {
            return Err(format!("popped {ids:?}, expected {want:?}"));
        }
        self.cursor = Some(start + ids.len() as u64);
        Ok(())
    }

    fn ack(&mut self, id: u64) {
        if id >= self.base {
            self.acked.insert(id);
        }
    }
}

async fn run(steps: Vec<Step>, mode: SyncMode) -> Result<(), String> {
    let mut done = Vec::new();
    let r = run_logged(steps, mode, &mut done).await;
    r.map_err(|e| format!("{e}\n  after steps {done:?}"))
}

async fn run_logged(
    steps: Vec<Step>,
    mode: SyncMode,
    done: &mut Vec<String>,
) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let shared = Arc::new(Map::new());
    let mut q = open(dir.path(), mode);
    let mut m = Model {
        pushed: 0,
        base: 0,
        acked: BTreeSet::new(),
        cursor: Some(0),
    };
    let mut in_flight: VecDeque<Event> = VecDeque::new();
    let steps = steps.into_iter().chain([Step::Crash]);
    for s in steps {
        done.push(format!("{s:?}"));
        match s {
            Step::Push(n) => {
                let stream = AckStream::new();
                for i in m.pushed..m.pushed + n {
                    let mut e = Event::new(shared.clone(), format!("event {i}"));
                    e.offset = Some(i);
                    e.ack = Some(stream.token(i));
                    q.push(e).await.map_err(|e| e.to_string())?;
                }
                if !stream
                    .wait_all_acked(tokio::time::Instant::now() + LIVENESS)
                    .await
                {
                    return Err("pushed events were never acknowledged to the input".into());
                }
                m.pushed += n;
            }
            Step::Pop(k) => {
                if m.available() == 0 {
                    continue;
                }
                let mut b = tokio::time::timeout(LIVENESS, q.pop(k))
                    .await
                    .map_err(|_| format!("pop waited with {} available", m.available()))?
                    .ok_or("the queue ended")?;
                let evs = std::mem::take(&mut b.events);
                if evs.len() > k {
                    return Err(format!("asked {k}, got {}", evs.len()));
                }
                let ids: Vec<u64> = evs.iter().map(|e| e.offset.unwrap_or(u64::MAX)).collect();
                done.push(format!("=> {ids:?}"));
                m.check_popped(&ids)?;
                in_flight.extend(evs);
            }
            Step::AckOldest(j) => {
                for _ in 0..j.min(in_flight.len()) {
                    let mut e = in_flight.pop_front().unwrap();
                    m.ack(e.offset.unwrap());
                    e.ack();
                }
            }
            Step::AckAny(i) => {
                if !in_flight.is_empty() {
                    let mut e = in_flight.remove(i % in_flight.len()).unwrap();
                    m.ack(e.offset.unwrap());
                    e.ack();
                }
            }
            Step::Abandon => {
                in_flight.pop_front();
            }
            Step::Crash | Step::Restart => {
                in_flight.clear();
                let clean = matches!(s, Step::Restart);
                if clean {
                    q.stop();
                } else {
                    q.crash();
                }
                drop(q);
                q = open(dir.path(), mode);
                // After a clean stop the replay starts exactly at the first unacknowledged id,
                // unless a crash left it unknown and no pop since revealed it.
                if clean && m.cursor.is_some() {
                    m.base = m.first_unacked();
                    m.acked.clear();
                    m.cursor = Some(m.base);
                } else {
                    m.cursor = None;
                }
            }
        }
    }
    // Everything pushed and not acknowledged comes back, in order.
    while m.available() > 0 {
        let mut b = tokio::time::timeout(LIVENESS, q.pop(64))
            .await
            .map_err(|_| "final drain waited".to_string())?
            .ok_or("the queue ended")?;
        let ids: Vec<u64> = b.events.iter().map(|e| e.offset.unwrap()).collect();
        m.check_popped(&ids)?;
        for mut e in std::mem::take(&mut b.events) {
            e.ack();
        }
    }
    let end = m.cursor.unwrap_or_else(|| m.first_unacked());
    if end != m.pushed {
        return Err(format!("drained to {end}, pushed {}", m.pushed));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn behaves_like_an_at_least_once_fifo(
        steps in proptest::collection::vec(step(), 1..60),
        mode in prop_oneof![Just(SyncMode::Batch), Just(SyncMode::Interval), Just(SyncMode::None)],
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let r = rt.block_on(run(steps, mode));
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}
