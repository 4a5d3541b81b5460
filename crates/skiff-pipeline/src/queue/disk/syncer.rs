//! The fsync thread of `sync.mode: batch`: group commit without holding up the writer.
//!
//! The writer appends a group to the segment, makes it visible and hands the group's tokens here;
//! this thread fsyncs and only then acknowledges them to the inputs (so an input still commits
//! an offset only once its events are on stable storage). While one fsync runs, the writer goes
//! on writing what the inputs push, and the next fsync covers all of it: the group per fsync
//! grows with the disk's latency instead of every input waiting for each fsync in turn. (With the
//! fsync inside the writer, one fsync per `write_ahead` events capped the queue at about
//! `write_ahead / fsync latency`: ~540,000 events/s with a 4 ms fsync on the development VM.)
//!
//! A failed fsync is logged with the path and the OS error; its events are not acknowledged to
//! their inputs (they read them again after a restart, as with `sync.mode: interval`), and the
//! writer abandons the segment and goes on in a new one.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use skiff_event::AckToken;

use super::{Inner, lock, nap};

type Pending = (Arc<File>, PathBuf, Vec<AckToken>);

#[derive(Default)]
struct State {
    /// Written and not yet fsynced, per segment file, in order.
    queue: Vec<Pending>,
    /// An fsync is running.
    busy: bool,
    /// The last failed fsync, for the writer.
    failed: Option<(PathBuf, io::Error)>,
}

#[derive(Default)]
pub(super) struct Syncer {
    st: Mutex<State>,
    cv: Condvar,
}

impl Syncer {
    /// Queues `tokens` (of events written to `file`) for acknowledgement after an fsync.
    pub(super) fn submit(&self, file: &Arc<File>, path: &Path, tokens: &mut Vec<AckToken>) {
        let mut st = lock(&self.st);
        match st.queue.last_mut() {
            Some((f, _, t)) if Arc::ptr_eq(f, file) => t.append(tokens),
            _ => st
                .queue
                .push((file.clone(), path.to_owned(), std::mem::take(tokens))),
        }
        drop(st);
        self.cv.notify_all();
    }

    /// A failed fsync since the last call.
    pub(super) fn take_failure(&self) -> Option<(PathBuf, io::Error)> {
        lock(&self.st).failed.take()
    }

    /// Waits until everything submitted is fsynced (or the queue stops).
    pub(super) fn flush(&self, inner: &Inner) {
        let mut st = lock(&self.st);
        while (st.busy || !st.queue.is_empty()) && !inner.stopping() {
            st = nap(&self.cv, st, Duration::from_millis(100));
        }
    }

    /// Wakes the thread (stop).
    pub(super) fn wake(&self) {
        self.cv.notify_all();
    }

    pub(super) fn run(&self, inner: &Inner) {
        loop {
            let mut st = lock(&self.st);
            while st.queue.is_empty() {
                if inner.stopping() {
                    return;
                }
                st = nap(&self.cv, st, Duration::from_secs(1));
            }
            if inner.stopping() {
                // Not acknowledged: the inputs send these again after a restart.
                return;
            }
            let work = std::mem::take(&mut st.queue);
            st.busy = true;
            drop(st);
            let mut failed = None;
            for (file, path, tokens) in work {
                let injected = inner
                    .fail_syncs
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok();
                let synced = if injected {
                    Err(io::Error::from_raw_os_error(5))
                } else {
                    file.sync_data()
                };
                match synced {
                    Ok(()) => {
                        inner.m.syncs.inc();
                        skiff_event::ack_all(tokens);
                    }
                    Err(e) => {
                        inner.m.sync_failures.inc();
                        tracing::error!(path = %path.display(), error = %e, events = tokens.len(), "disk queue: fsync failed; these events are not acknowledged to their inputs and will be read again from their source after a restart");
                        failed = Some((path, e));
                    }
                }
            }
            let mut st = lock(&self.st);
            st.busy = false;
            if failed.is_some() {
                st.failed = failed;
            }
            drop(st);
            self.cv.notify_all();
        }
    }
}
