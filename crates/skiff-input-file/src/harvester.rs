//! A reader ("harvester"): reads one open file to its end, publishes its lines, waits for more.
//!
//! It runs as one task per open file. Reads are plain blocking `read`s of `buffer_size` bytes
//! from the page cache (microseconds each); handing each to a blocking thread would cost more
//! than it saves. The task yields to the runtime every few thousand lines.
//!
//! At the end of the file it checks, in this order: truncation (size below the offset: read
//! again from 0), a replaced head (the fingerprint no longer matches: copytruncate or a new file
//! under the same inode, read again from 0), then whether to close (removed, renamed, inactive,
//! `close.reader.*`, another file waiting for a reader slot, shutdown). Otherwise it waits for a
//! change notification or the backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use regex::RegexSet;
use skiff_config::Node;
use skiff_event::{AckStream, Event, Map, Timestamp, Value};
use skiff_metrics::Counter;
use skiff_parsers::{Message, Parser, ParserChain};
use skiff_pipeline::budget::Stage;
use skiff_pipeline::{BuildContext, Publisher};
use tokio_util::sync::CancellationToken;

use crate::identity::{self, FileKey};
use crate::lines::{LineReader, RawLine, Terminator};
use crate::state::{FileShared, Phase};

/// Reader settings shared by every reader of an input.
pub(crate) struct Settings {
    pub term: Terminator,
    pub encoding: &'static encoding_rs::Encoding,
    pub max: usize,
    pub chunk: usize,
    pub include: Option<RegexSet>,
    pub exclude: Option<RegexSet>,
    pub line_flush: Option<Duration>,
    pub inactive: Duration,
    pub close_renamed: bool,
    pub close_removed: bool,
    pub close_eof: bool,
    pub after_interval: Option<Duration>,
    pub backoff_init: Duration,
    pub backoff_max: Duration,
    pub parsers: Option<Node>,
    pub build: BuildContext,
}

/// Why a reader stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Reached the end with `close.reader.on_eof`.
    Eof,
    /// Nothing appended for `close.on_state_change.inactive`.
    Inactive,
    /// The file was removed.
    Removed,
    /// The file was renamed (with `close.on_state_change.renamed`).
    Renamed,
    /// `close.reader.after_interval` passed.
    Timeout,
    /// Another file waits for a reader slot.
    Yield,
    /// skiff is stopping.
    Shutdown,
    /// The path no longer leads to this file.
    Gone,
    /// A read error.
    Error(String),
}

/// What a reader needs besides its file.
pub(crate) struct Ctx {
    pub settings: Arc<Settings>,
    pub publisher: Publisher,
    pub cancel: CancellationToken,
    pub base_shared: Arc<Map>,
    pub waiting: Arc<AtomicUsize>,
    pub stage: Stage,
    pub events: Counter,
    pub bytes: Counter,
    pub truncated: Counter,
    pub input_id: Arc<str>,
    /// Set by the prospector while change notifications cover every watched directory. Idle
    /// readers then wait for a notification (or the prospector's scan, which wakes a reader
    /// whose file changed size) instead of polling on `backoff.*`: ten thousand idle files
    /// cost no timer wake-ups.
    pub notified: Arc<AtomicBool>,
    /// Signalled when files start waiting for a reader slot (`harvester_limit`).
    pub slot_wanted: tokio::sync::Notify,
    /// Rotated-copy detection: readers note the truncations they find.
    pub copies: crate::copytruncate::Copies,
}

fn decode(bytes: &[u8], enc: &'static encoding_rs::Encoding) -> String {
    if enc == encoding_rs::UTF_8 {
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        }
    } else {
        enc.decode_without_bom_handling(bytes).0.into_owned()
    }
}

/// The shared fields of a file's events: the input's, plus `log.file.*`.
pub(crate) fn file_shared(base: &Map, file: &FileShared) -> Arc<Map> {
    let mut m = base.clone();
    let key: FileKey = file.key;
    let lf = serde_json::json!({
        "path": file.path().to_string_lossy(),
        "inode": key.ino.to_string(),
        "device_id": key.dev.to_string(),
        "fingerprint": file.fingerprint().to_text(),
    });
    let log = m.entry("log").or_insert_with(|| Value::Object(Map::new()));
    if !log.is_object() {
        *log = Value::Object(Map::new());
    }
    if let Value::Object(log) = log {
        log.insert("file".into(), lf);
    }
    Arc::new(m)
}

/// One reading session of a file.
struct Session<'a> {
    ctx: &'a Ctx,
    file: &'a Arc<FileShared>,
    stream: Arc<AckStream>,
    chain: ParserChain,
    /// The shared fields of this file's events; `None` while the file is idle (rebuilt at the
    /// next line): with thousands of idle files, a copy of the input's fields per file was
    /// most of their memory.
    shared: Option<Arc<Map>>,
    version: u64,
    out: Vec<Message>,
    /// Events waiting to be published together, read at `batch_at`, `batch_bytes` of text.
    batch: Vec<Event>,
    batch_at: Timestamp,
    batch_bytes: usize,
    accounted: usize,
}

/// At most this many events wait in a reader's batch before it is published.
const BATCH_EVENTS: usize = 256;
/// At most about this many bytes of messages wait in a reader's batch (one line more at worst).
const BATCH_BYTES: usize = 64 << 10;

impl Session<'_> {
    /// The shared fields for the next event, rebuilt if the file's path or fingerprint changed
    /// or the file was idle.
    fn shared(&mut self) -> Arc<Map> {
        let v = self.file.version.load(Ordering::Acquire);
        match &self.shared {
            Some(shared) if v == self.version => shared.clone(),
            _ => {
                self.version = v;
                let shared = file_shared(&self.ctx.base_shared, self.file);
                self.shared = Some(shared.clone());
                shared
            }
        }
    }

    fn to_message(&self, line: RawLine<'_>) -> Message {
        let mut m = Message::new(
            decode(line.bytes, self.ctx.settings.encoding),
            line.start,
            line.end,
        );
        if line.truncated {
            m.add_flag("truncated");
            self.ctx.truncated.inc();
        }
        m
    }

    /// Turns everything in `self.out` into events and publishes them, in batches of up to
    /// [`BATCH_EVENTS`] events or [`BATCH_BYTES`] bytes, or at once with `now` (the end of the
    /// file for now, or the reader closing: nothing may wait). `false` when skiff is stopping.
    ///
    /// Publishing a batch rather than each event takes the clock, the queue's lock and its
    /// consumer's wake-up once per batch; the bytes held meanwhile are bounded by the limits.
    async fn publish_out(&mut self, now: bool) -> bool {
        let s = &self.ctx.settings;
        let mut out = std::mem::take(&mut self.out);
        for msg in out.drain(..) {
            let end = msg.end;
            let keep = !msg.is_empty()
                && s.include.as_ref().is_none_or(|r| r.is_match(&msg.text))
                && s.exclude.as_ref().is_none_or(|r| !r.is_match(&msg.text));
            if !keep {
                // Dropped on purpose: still a position that may be committed in order.
                self.stream.token(end).ack();
                continue;
            }
            if self.batch.is_empty() {
                self.batch_at = Timestamp::now();
            }
            self.batch_bytes += msg.text.len();
            let mut ev = Event::new_at(self.batch_at, self.shared(), String::new());
            skiff_parsers::apply_to_event(msg, &mut ev);
            ev.ack = Some(self.stream.token(end));
            self.batch.push(ev);
        }
        self.out = out;
        let full = self.batch.len() >= BATCH_EVENTS || self.batch_bytes >= BATCH_BYTES;
        if self.batch.is_empty() || !(now || full) {
            return true;
        }
        self.ctx.events.add(self.batch.len() as u64);
        let ok = tokio::select! {
            biased;
            // Boxed: the publishing future is large and only alive while publishing; inline,
            // it would be part of every reader's state, idle or not (thousands of files).
            r = Box::pin(self.ctx.publisher.publish_all(&mut self.batch)) => r.is_ok(),
            _ = self.ctx.cancel.cancelled() => false,
        };
        self.batch_bytes = 0;
        // Supervision tests: a reader dying with events in the queue and others in its hands.
        skiff_pipeline::fault::panic_point("file.reader.panic");
        ok
    }

    /// Accounts the reader's buffer of `cap` bytes plus the batch being built.
    fn account(&mut self, cap: usize) {
        let cap = cap + self.batch_bytes;
        if cap != self.accounted {
            if cap > self.accounted {
                self.ctx.stage.add(cap - self.accounted);
            } else {
                self.ctx.stage.sub(self.accounted - cap);
            }
            self.accounted = cap;
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.ctx.stage.sub(self.accounted);
    }
}

enum Outcome {
    End(End),
    /// Truncated or replaced: read again from 0.
    Restart,
}

/// The task of one open file's reader, as the prospector spawns it: named, so that the panic
/// hook logs a panic in it with the file it was reading.
///
/// Its size is what every open reader costs while idle (the task holds the whole state of its
/// future): see the test `an_open_reader_task_stays_small`.
pub(crate) fn task(
    name: String,
    ctx: Arc<Ctx>,
    file: Arc<FileShared>,
) -> impl std::future::Future<Output = (FileKey, End)> + Send {
    skiff_pipeline::supervise::named(name, async move {
        let end = run(&ctx, &file).await;
        (file.key, end)
    })
}

/// Reads `file` until it should close. Restarts from 0 when the file is truncated or replaced.
pub(crate) async fn run(ctx: &Ctx, file: &Arc<FileShared>) -> End {
    let mut reset = false;
    loop {
        match session(ctx, file, reset).await {
            Outcome::End(e) => return e,
            Outcome::Restart => {
                file.read_offset.store(0, Ordering::Release);
                reset = true;
            }
        }
    }
}

async fn session(ctx: &Ctx, file: &Arc<FileShared>, mut reset: bool) -> Outcome {
    let s = &ctx.settings;
    let path = file.path();
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::End(End::Gone),
        Err(e) => return Outcome::End(End::Error(format!("cannot open {}: {e}", path.display()))),
    };
    let meta = match f.metadata() {
        Ok(m) => m,
        Err(e) => return Outcome::End(End::Error(format!("cannot stat {}: {e}", path.display()))),
    };
    if FileKey::of(&meta) != file.key {
        return Outcome::End(End::Gone);
    }
    let size = meta.len();
    let mut start = file.read_offset.load(Ordering::Acquire);
    let known = file.fingerprint();
    let same_head = identity::head_matches(&mut f, size, &known).unwrap_or(false);
    if start > 0 && (size < start || !same_head) {
        ctx.copies.note(file, start, None);
        tracing::info!(input = %ctx.input_id, path = %path.display(), offset = start, size,
            "file was truncated or replaced by different content; reading it again from the start");
        // Unless the new content is a rotated copy of a file found truncated (an inode reused
        // by the next copy): then from where that file was read to.
        start = ctx.copies.replaced(file).unwrap_or(0);
        reset = true;
    }
    match identity::head_fingerprint(&mut f, size) {
        Ok(fp) => file.set_fingerprint(fp),
        Err(e) => return Outcome::End(End::Error(format!("cannot read {}: {e}", path.display()))),
    }
    {
        use std::io::{Seek, SeekFrom};
        if let Err(e) = f.seek(SeekFrom::Start(start)) {
            return Outcome::End(End::Error(format!("cannot seek {}: {e}", path.display())));
        }
    }
    file.read_offset.store(start, Ordering::Release);
    file.size.store(size, Ordering::Release);
    let chain = match ParserChain::build(s.parsers.as_ref(), &s.build, s.max) {
        Ok(c) => c,
        Err(e) => return Outcome::End(End::Error(format!("parsers: {e}"))),
    };
    if reset {
        file.new_generation(start);
    }
    let stream = file.stream();
    let mut sess = Session {
        ctx,
        file,
        stream,
        chain,
        shared: None,
        version: file.version.load(Ordering::Acquire),
        out: Vec::new(),
        batch: Vec::new(),
        batch_at: Timestamp::default(),
        batch_bytes: 0,
        accounted: 0,
    };
    let mut reader = LineReader::new(f, start, s.term.clone(), s.max, s.chunk);
    let opened = Instant::now();
    let mut last_data = Instant::now();
    let mut backoff = s.backoff_init;
    let mut lines: u64 = 0;
    let mut seen = start;
    file.set_phase(Phase::Reading);
    loop {
        let got = match reader.next_line() {
            Ok(Some(line)) => {
                let msg = sess.to_message(line);
                Some(msg)
            }
            Ok(None) => None,
            Err(e) => {
                finish(&mut sess).await;
                return Outcome::End(End::Error(format!("read {}: {e}", path.display())));
            }
        };
        sess.account(reader.capacity());
        if let Some(msg) = got {
            // `last_data` is refreshed at the next end of file (the offset moved): no clock
            // read per line.
            ctx.bytes.add(msg.end - msg.start);
            backoff = s.backoff_init;
            lines += 1;
            let mut out = std::mem::take(&mut sess.out);
            sess.chain.feed(msg, &mut out);
            sess.out = out;
            let ok = sess.publish_out(false).await;
            file.read_offset.store(reader.offset(), Ordering::Release);
            if !ok {
                return Outcome::End(End::Shutdown);
            }
            if lines.is_multiple_of(4096) {
                if ctx.cancel.is_cancelled() {
                    return Outcome::End(End::Shutdown);
                }
                if ctx.waiting.load(Ordering::Relaxed) > 0 && lines.is_multiple_of(16 * 4096) {
                    finish(&mut sess).await;
                    return Outcome::End(End::Yield);
                }
                if s.after_interval.is_some_and(|d| opened.elapsed() >= d) {
                    finish(&mut sess).await;
                    return Outcome::End(End::Timeout);
                }
                tokio::task::yield_now().await;
            }
            continue;
        }
        // At the end of the file for now: what was read goes out before anything waits.
        if !sess.publish_out(true).await {
            return Outcome::End(End::Shutdown);
        }
        if reader.read_offset() != seen {
            // Part of a line arrived: the file is not quiet.
            seen = reader.read_offset();
            last_data = Instant::now();
        }
        // At the end of the file for now.
        let now = Instant::now();
        if sess.chain.deadline().is_some_and(|d| d <= now) {
            let mut out = std::mem::take(&mut sess.out);
            sess.chain.flush_expired(now, &mut out);
            sess.out = out;
            if !sess.publish_out(true).await {
                return Outcome::End(End::Shutdown);
            }
        }
        if let Some(q) = s.line_flush
            && reader.pending() > 0
            && last_data.elapsed() >= q
            && let Some(line) = reader.take_partial()
        {
            let msg = sess.to_message(line);
            let mut out = std::mem::take(&mut sess.out);
            sess.chain.feed(msg, &mut out);
            sess.out = out;
            if !sess.publish_out(true).await {
                return Outcome::End(End::Shutdown);
            }
        }
        file.read_offset.store(reader.offset(), Ordering::Release);
        // Truncated or replaced?
        let size = match replaced(&mut reader, file) {
            Ok(Check::Same(size)) => size,
            Ok(Check::Replaced) => {
                finish(&mut sess).await;
                ctx.copies.note(
                    file,
                    file.read_offset.load(Ordering::Acquire),
                    Some(sess.stream.clone()),
                );
                return Outcome::Restart;
            }
            Err(e) => {
                return Outcome::End(End::Error(format!("cannot stat {}: {e}", path.display())));
            }
        };
        if size > reader.read_offset() {
            // More arrived while we checked.
            continue;
        }
        let end = if ctx.cancel.is_cancelled() {
            Some(End::Shutdown)
        } else if s.close_eof {
            Some(End::Eof)
        } else if s.close_removed && file.removed.load(Ordering::Acquire) {
            Some(End::Removed)
        } else if s.close_renamed && file.renamed.load(Ordering::Acquire) {
            Some(End::Renamed)
        } else if last_data.elapsed() >= s.inactive {
            Some(End::Inactive)
        } else if s.after_interval.is_some_and(|d| opened.elapsed() >= d) {
            Some(End::Timeout)
        } else if ctx.waiting.load(Ordering::Relaxed) > 0 {
            Some(End::Yield)
        } else {
            None
        };
        if let Some(end) = end {
            if end != End::Shutdown {
                finish(&mut sess).await;
            }
            return Outcome::End(end);
        }
        file.set_phase(Phase::Idle);
        reader.release();
        sess.shared = None;
        // An idle reader keeps no room from its last batch either (events and messages: ~1 KiB
        // after a single line, times every open idle reader).
        if sess.batch.is_empty() {
            sess.batch = Vec::new();
        }
        if sess.out.is_empty() {
            sess.out = Vec::new();
        }
        sess.account(reader.capacity());
        // With notifications working, no polling: only the deadlines below wake the reader.
        let poll = if ctx.notified.load(Ordering::Acquire) {
            s.inactive
        } else {
            backoff
        };
        let mut wait = poll.min(s.inactive.saturating_sub(last_data.elapsed()));
        if let Some(d) = s.after_interval {
            wait = wait.min(d.saturating_sub(opened.elapsed()));
        }
        if let Some(d) = sess.chain.deadline() {
            wait = wait.min(d.saturating_duration_since(Instant::now()));
        }
        if let Some(q) = s.line_flush
            && reader.pending() > 0
        {
            wait = wait.min(q.saturating_sub(last_data.elapsed()));
        }
        tokio::select! {
            _ = file.wake.notified() => { backoff = s.backoff_init; }
            _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {
                backoff = (backoff * 2).min(s.backoff_max);
            }
            _ = ctx.cancel.cancelled() => {}
            _ = ctx.slot_wanted.notified() => {}
        }
        // Before reading what arrived: was the file truncated or rewritten meanwhile? (Reading
        // first would ship the middle of the new content, then all of it again.)
        if let Ok(Check::Replaced) = replaced(&mut reader, file) {
            finish(&mut sess).await;
            ctx.copies.note(
                file,
                file.read_offset.load(Ordering::Acquire),
                Some(sess.stream.clone()),
            );
            return Outcome::Restart;
        }
        file.set_phase(Phase::Reading);
    }
}

enum Check {
    /// The same content, now this long.
    Same(u64),
    /// Truncated below the read offset, or its head no longer matches the fingerprint.
    Replaced,
}

/// Checks the open file against what was read: truncation (R4), a replaced head (R5); grows
/// the fingerprint of a small file.
fn replaced(reader: &mut LineReader<std::fs::File>, file: &FileShared) -> std::io::Result<Check> {
    let read_to = reader.read_offset();
    let f = reader.source_mut();
    let size = f.metadata()?.len();
    file.size.store(size, Ordering::Release);
    if size < read_to {
        return Ok(Check::Replaced);
    }
    let fp = file.fingerprint();
    if size == read_to && (fp.is_full() || fp.len >= size) {
        // Nothing new, and the fingerprint covers what was read: a rewrite would have changed
        // the size (checked again once it does).
        return Ok(Check::Same(size));
    }
    // The fingerprint grows to cover what was read even when nothing new arrived: a reader
    // that started on an empty (just truncated) file and read it to its end in one go would
    // otherwise keep an empty fingerprint, and a later rewrite of the file would look like
    // the same file grown (its new content read from the old offset, its head lost).
    if size > 0 {
        if !fp.is_full() && size > fp.len {
            if let Ok(nfp) = identity::head_fingerprint(f, size) {
                if identity::head_matches(f, size, &fp).unwrap_or(false) {
                    file.set_fingerprint(nfp);
                } else {
                    return Ok(Check::Replaced);
                }
            }
        } else if !identity::head_matches(f, size, &fp).unwrap_or(true) {
            return Ok(Check::Replaced);
        }
    }
    Ok(Check::Same(size))
}

/// Emits whatever the parsers still hold (the file is being closed).
async fn finish(sess: &mut Session<'_>) {
    let mut out = std::mem::take(&mut sess.out);
    sess.chain.finish(&mut out);
    sess.out = out;
    sess.publish_out(true).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Every open file has a reader task, idle or not, and the task holds its whole future.
    /// Wrapping it for supervision once doubled it (an `async fn` awaiting a future it was
    /// given keeps room for it twice); the name must cost a few words only.
    #[test]
    fn an_open_reader_task_stays_small() {
        fn output_size<F>(_: impl FnOnce(String, Arc<Ctx>, Arc<FileShared>) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let task = output_size(task);
        let run = output_size(|_, c, f| async move { run(&c, &f).await });
        eprintln!("reader task {task} bytes, run alone {run} bytes");
        assert!(
            task <= run + 128,
            "reader task {task} bytes, its reading {run}"
        );
    }

    /// A reader that started on an empty file and read what arrived in one go must still
    /// notice a later rewrite: its fingerprint has to cover what it read (the race behind a
    /// flaky copytruncate test: the new content was read from the old offset).
    #[test]
    fn a_rewrite_after_reading_from_an_empty_start_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, b"").unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        let meta = f.metadata().unwrap();
        let fp = identity::head_fingerprint(&mut f, 0).unwrap();
        let file = FileShared::new(FileKey::of(&meta), p.clone(), fp, 0, 0, Default::default());
        let mut reader = LineReader::new(f, 0, Terminator::auto_utf8(), 1 << 20, 4096);
        // Lines arrive before the first read: the reader reads them to the end without an
        // end-of-file check in between.
        let old: String = (0..50).map(|i| format!("new {i:06}\n")).collect();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(old.as_bytes())
            .unwrap();
        let mut n = 0;
        while reader.next_line().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 50);
        assert!(matches!(
            replaced(&mut reader, &file).unwrap(),
            Check::Same(_)
        ));
        // Rewritten in place (same inode) with longer, different content.
        let new: String = (0..300).map(|i| format!("third {i:06}\n")).collect();
        std::fs::write(&p, new.as_bytes()).unwrap();
        assert!(
            matches!(replaced(&mut reader, &file).unwrap(), Check::Replaced),
            "a rewritten file was taken for the same file grown"
        );
    }
}
