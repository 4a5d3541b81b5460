//! Cutting a byte stream into lines and publishing them.
//!
//! The fast path: a line that lies whole in the read buffer is decoded straight from the buffer
//! into its `String` (the one allocation per event). Only a line that crosses a buffer boundary
//! is copied into `partial`, and that copy is capped at `max_bytes`: the remainder of an
//! over-long line is skipped as it streams by.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use skiff_event::{AckStream, Event, Map};
use skiff_parsers::{Message, Parser, apply_to_event};
use skiff_pipeline::{InputContext, Publisher};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio_util::sync::CancellationToken;

use crate::Stdin;

/// The read buffer: large, so that most lines are cut from it without a copy and a read
/// syscall serves thousands of lines.
pub(crate) const DEFAULT_BUFFER: usize = 1 << 20;

/// What an input run read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lines read (empty ones included).
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Lines cut at `max_bytes`.
    pub truncated: u64,
    /// True when the source ended (false: stopped by shutdown).
    pub eof: bool,
}

/// Live counters, read by the status board.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    lines: AtomicU64,
    bytes: AtomicU64,
    truncated: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            lines: self.lines.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            truncated: self.truncated.load(Ordering::Relaxed),
            eof: false,
        }
    }
}

/// The publishing was stopped: shutdown, or the queue closed.
struct Stop;

/// Turns lines into events and publishes them.
struct Sink {
    publisher: Publisher,
    shutdown: CancellationToken,
    shared: Arc<Map>,
    stream: Arc<AckStream>,
    parsers: Stdin,
    out: Vec<Message>,
    truncated: u64,
}

impl Sink {
    /// One line (terminator removed, at most `max_bytes`) read from `start` to `end`.
    async fn line(
        &mut self,
        bytes: &[u8],
        start: u64,
        end: u64,
        truncated: bool,
    ) -> Result<(), Stop> {
        if truncated {
            self.truncated += 1;
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let text = decode(bytes, truncated);
        if self.parsers.parsers.is_empty() {
            if !self.parsers.keeps(&text) {
                return Ok(());
            }
            let mut ev = Event::new(self.shared.clone(), text);
            ev.offset = Some(start);
            if truncated {
                ev.fields
                    .insert("log".into(), serde_json::json!({ "flags": ["truncated"] }));
            }
            ev.ack = Some(self.stream.token(end));
            return self.publish(ev).await;
        }
        let mut msg = Message::new(text, start, end);
        if truncated {
            msg.add_flag("truncated");
        }
        let mut out = std::mem::take(&mut self.out);
        self.parsers.parsers.feed(msg, &mut out);
        self.drain(out).await
    }

    async fn drain(&mut self, mut out: Vec<Message>) -> Result<(), Stop> {
        let mut result = Ok(());
        for m in out.drain(..) {
            if result.is_err() || m.is_empty() || !self.parsers.keeps(&m.text) {
                continue;
            }
            let end = m.end;
            let mut ev = Event::new(self.shared.clone(), String::new());
            apply_to_event(m, &mut ev);
            ev.ack = Some(self.stream.token(end));
            result = self.publish(ev).await;
        }
        self.out = out;
        result
    }

    async fn flush_expired(&mut self) -> Result<(), Stop> {
        let mut out = std::mem::take(&mut self.out);
        self.parsers.parsers.flush_expired(Instant::now(), &mut out);
        self.drain(out).await
    }

    async fn finish(&mut self) -> Result<(), Stop> {
        let mut out = std::mem::take(&mut self.out);
        self.parsers.parsers.finish(&mut out);
        self.drain(out).await
    }

    fn deadline(&self) -> Option<Instant> {
        self.parsers.parsers.deadline()
    }

    async fn publish(&mut self, ev: Event) -> Result<(), Stop> {
        publish(&self.publisher, &self.shutdown, ev).await
    }
}

/// Publishes one event. `publish` waits while the queue is full; shutdown must still get
/// through. (A free function: the parsers in `Sink` are `Send` but not `Sync`, so no `&Sink`
/// may be held across an await.)
async fn publish(
    publisher: &Publisher,
    shutdown: &CancellationToken,
    ev: Event,
) -> Result<(), Stop> {
    tokio::select! {
        biased;
        r = publisher.publish(ev) => r.map_err(|_| Stop),
        _ = shutdown.cancelled() => Err(Stop),
    }
}

/// Decodes a line as UTF-8 (lossy). A truncated line may end inside a character: that partial
/// character is dropped rather than turned into U+FFFD.
fn decode(bytes: &[u8], truncated: bool) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(e) if truncated && e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// A line that crosses read buffers: its first `max_bytes` bytes, and how long it really is.
#[derive(Default)]
struct Partial {
    bytes: Vec<u8>,
    start: u64,
    len: u64,
    last: u8,
}

impl Partial {
    fn active(&self) -> bool {
        self.len > 0
    }

    fn push(&mut self, seg: &[u8], start: u64, max: usize) {
        if seg.is_empty() {
            return;
        }
        if self.len == 0 {
            self.start = start;
        }
        let room = max.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&seg[..room.min(seg.len())]);
        self.len += seg.len() as u64;
        self.last = seg[seg.len() - 1];
    }

    /// The line's kept bytes (without a final `\r`) and whether it was cut.
    fn finish(&mut self, max: usize) -> (Vec<u8>, u64, bool) {
        let mut len = self.len;
        if self.last == b'\r' && len > 0 {
            len -= 1;
        }
        let keep = (len as usize).min(self.bytes.len());
        self.bytes.truncate(keep);
        let truncated = len > max as u64;
        let start = self.start;
        self.len = 0;
        self.last = 0;
        let bytes = std::mem::take(&mut self.bytes);
        (bytes, start, truncated)
    }
}

pub(crate) async fn read<R: AsyncBufRead + Unpin + Send>(
    mut reader: R,
    input: Stdin,
    ctx: InputContext,
    counters: Arc<Counters>,
) -> anyhow::Result<Stats> {
    let max = input.max_bytes;
    let mut sink = Sink {
        publisher: ctx.publisher.clone(),
        shutdown: ctx.shutdown.clone(),
        shared: ctx.shared.clone(),
        stream: AckStream::new(),
        parsers: input,
        out: Vec::new(),
        truncated: 0,
    };
    let shutdown = ctx.shutdown.clone();
    let mut offset: u64 = 0;
    let mut lines: u64 = 0;
    let mut partial = Partial::default();
    let mut stats = Stats::default();
    'read: loop {
        let deadline = sink.deadline();
        let buf = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break 'read,
            r = reader.fill_buf() => r.context("cannot read standard input")?,
            _ = sleep_until(deadline), if deadline.is_some() => {
                if sink.flush_expired().await.is_err() {
                    break 'read;
                }
                continue 'read;
            }
        };
        if buf.is_empty() {
            if partial.active() {
                let (bytes, start, truncated) = partial.finish(max);
                lines += 1;
                if sink.line(&bytes, start, offset, truncated).await.is_err() {
                    break 'read;
                }
            }
            if sink.finish().await.is_err() {
                break 'read;
            }
            stats.eof = true;
            break 'read;
        }
        let len = buf.len();
        let mut pos = 0;
        let mut stopped = false;
        for nl in memchr::memchr_iter(b'\n', buf) {
            let end = offset + nl as u64 + 1;
            lines += 1;
            let r = if partial.active() {
                partial.push(&buf[pos..nl], offset + pos as u64, max);
                let (bytes, start, truncated) = partial.finish(max);
                let r = sink.line(&bytes, start, end, truncated).await;
                // Keep the (capped) allocation for the next crossing line.
                partial.bytes = bytes;
                partial.bytes.clear();
                r
            } else {
                let mut line = &buf[pos..nl];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                let truncated = line.len() > max;
                if truncated {
                    line = &line[..max];
                }
                sink.line(line, offset + pos as u64, end, truncated).await
            };
            pos = nl + 1;
            if r.is_err() {
                stopped = true;
                break;
            }
        }
        if stopped {
            break 'read;
        }
        if pos < len {
            partial.push(&buf[pos..], offset + pos as u64, max);
        }
        reader.consume(len);
        offset += len as u64;
        counters.lines.store(lines, Ordering::Relaxed);
        counters.bytes.store(offset, Ordering::Relaxed);
        counters.truncated.store(sink.truncated, Ordering::Relaxed);
    }
    counters.lines.store(lines, Ordering::Relaxed);
    counters.bytes.store(offset, Ordering::Relaxed);
    counters.truncated.store(sink.truncated, Ordering::Relaxed);
    stats.lines = lines;
    stats.bytes = offset;
    stats.truncated = sink.truncated;
    Ok(stats)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
