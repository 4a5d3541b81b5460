//! The packet input: a capture (file or live) driven on a blocking thread, its events published
//! in batches.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use skiff_event::{Event, Timestamp, Value};
use skiff_pipeline::{Failure, FailureKind, Input, InputContext};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::capture::file::FileSource;
use crate::config::{InterfaceConfig, PacketbeatConfig};
use crate::decode::Decoder;
use crate::engine::Engine;

/// Events per batch handed to the pipeline.
const BATCH: usize = 512;

/// The built input.
pub struct PacketInput {
    /// Its configuration.
    pub cfg: PacketbeatConfig,
    /// The analyzer (built and validated at build time).
    pub engine: Engine,
}

/// How a file is replayed.
#[derive(Clone, Debug)]
pub struct Replay {
    /// The file.
    pub path: PathBuf,
    /// `-t`: as fast as possible, with the file's timestamps.
    pub top_speed: bool,
    /// `-l`: how many times.
    pub loops: u32,
}

impl Replay {
    /// The replay an interface asks for, if it names a file.
    pub fn of(i: &InterfaceConfig) -> Option<Replay> {
        Some(Replay {
            path: i.file.clone()?,
            top_speed: i.top_speed,
            loops: i.loops.max(1),
        })
    }
}

fn drop_egress(events: &mut Vec<Event>) {
    events.retain(|e| {
        !matches!(
            e.fields.get("network").and_then(|n| n.get("direction")),
            Some(Value::String(d)) if d == "egress"
        )
    });
}

/// Replays a file through `engine`, sending event batches to `tx`. Runs on a blocking thread.
pub fn replay_file(
    engine: &mut Engine,
    replay: &Replay,
    stop: &CancellationToken,
    mut send: impl FnMut(Vec<Event>) -> bool,
) -> Result<(), Failure> {
    let mut out = Vec::with_capacity(BATCH);
    for _ in 0..replay.loops {
        let mut src = FileSource::open(&replay.path)
            .map_err(|e| Failure::new(FailureKind::Io, e.to_string()))?;
        let mut decoder: Option<Decoder> = None;
        let mut pace: Option<(Instant, Timestamp)> = None;
        while let Some(frame) = src.next_frame() {
            if stop.is_cancelled() {
                return Ok(());
            }
            let frame = frame.map_err(|e| Failure::new(FailureKind::Io, e.to_string()))?;
            let d = decoder.get_or_insert_with(|| Decoder::new(frame.link));
            let mut ts = frame.ts;
            if !replay.top_speed {
                // Packetbeat's default replay: keep the recorded gaps, stamp with the clock.
                let (wall0, ts0) = *pace.get_or_insert((Instant::now(), frame.ts));
                let offset = Duration::from_nanos(frame.ts.0.saturating_sub(ts0.0).max(0) as u64);
                let due = wall0 + offset;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                ts = Timestamp::now();
            }
            let clock = Timestamp::now();
            match d.decode(ts, &frame.data) {
                Ok(p) => engine.packet(&p, clock, &mut out),
                Err(crate::decode::Skip::Malformed) => engine.malformed(),
                Err(_) => engine.skipped(),
            }
            if out.len() >= BATCH && !send(std::mem::take(&mut out)) {
                return Ok(());
            }
        }
    }
    engine.finish(Timestamp::now(), &mut out);
    if !out.is_empty() {
        send(out);
    }
    Ok(())
}

#[async_trait]
impl Input for PacketInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        let PacketInput { cfg, mut engine } = *self;
        for w in &cfg.warnings {
            tracing::warn!("{w}");
        }
        let Some(iface) = cfg.interfaces.first().cloned() else {
            return Ok(());
        };
        let replay = Replay::of(&iface);
        let ignore_outgoing = cfg.ignore_outgoing;
        let (tx, mut rx) = mpsc::channel::<Vec<Event>>(4);
        let stop = ctx.shutdown.clone();
        let metrics = ctx.build.metrics.clone();
        let worker = tokio::task::spawn_blocking(move || {
            let send = |batch| tx.blocking_send(batch).is_ok();
            match replay {
                Some(r) => replay_file(&mut engine, &r, &stop, send),
                None => crate::capture::live::capture(&mut engine, &iface, &metrics, &stop, send),
            }
        });
        while let Some(mut batch) = rx.recv().await {
            if ignore_outgoing {
                drop_egress(&mut batch);
            }
            if ctx.publisher.publish_all(&mut batch).await.is_err() {
                break;
            }
        }
        drop(rx);
        let res = worker
            .await
            .map_err(|e| Failure::new(FailureKind::Panic, format!("packet replay: {e}")))?;
        // At the end of the file the input ends; the topology then drains the queue and skiff
        // exits once every event is acknowledged (or `shutdown_timeout` passes).
        res
    }
}
