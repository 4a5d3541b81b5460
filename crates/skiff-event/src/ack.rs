//! End-to-end acknowledgements.
//!
//! skiff is at-least-once: a file offset, or a disk-queue segment, may only be committed once
//! everything before it has been delivered. The contract:
//!
//! * An input opens one [`AckStream`] per ordered source (one file, stdin, one disk-queue
//!   reader) and asks it for a token for every event it publishes, in order, with the
//!   *position* the source may commit once that event is delivered (for a file: the offset just
//!   past the event's last byte).
//! * Whoever finally takes responsibility for the event (an output that got a positive reply, a
//!   disk queue that fsynced it, a processor that deliberately dropped it, a dead-letter file
//!   that recorded it) calls [`AckToken::ack`]. Acks may arrive in any order.
//! * The stream's [`Progress`] only ever advances over a *contiguous* prefix of acked tokens, so
//!   `acked_position` is always safe to commit.
//! * A token dropped without `ack` (the event was lost in a crash path or at shutdown) is counted
//!   as abandoned and holds the watermark back forever: the source will re-read it after a
//!   restart. That is the at-least-once guarantee; nothing ever acks on drop.
//! * An owner of many streams (the file input, one stream per file) learns which streams moved
//!   by a hook ([`AckStream::with_on_advance`]) that the ack path runs each time a stream's
//!   prefix advances: the file input pushes the file's key into its commit set there, and its
//!   registry commit looks at those files only. No polling of idle streams.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// How far a stream has been delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Tokens handed out.
    pub published: u64,
    /// Tokens acked as a contiguous prefix (`acked <= published`).
    pub acked: u64,
    /// The position of the last token in that prefix (`None` until the first is acked).
    pub acked_position: Option<u64>,
    /// Tokens dropped without an ack (events lost before delivery; they hold the prefix back).
    pub abandoned: u64,
}

impl Progress {
    /// Events published but not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.published - self.acked
    }
}

#[derive(Default)]
struct State {
    /// Sequence number of `window[0]`.
    base: u64,
    /// One slot per unacked-prefix token: `(done, position)`.
    window: VecDeque<(bool, u64)>,
    progress: Progress,
}

/// An ordered sequence of events whose delivery is tracked; see the [module docs](self).
pub struct AckStream {
    state: Mutex<State>,
    acked_position: AtomicU64,
    changed: Notify,
    /// Run after the acked prefix moved (see [`AckStream::with_on_advance`]).
    on_advance: Option<OnAdvance>,
}

/// The hook of [`AckStream::with_on_advance`].
type OnAdvance = Box<dyn Fn() + Send + Sync>;

impl Default for AckStream {
    fn default() -> Self {
        AckStream {
            state: Mutex::default(),
            acked_position: AtomicU64::new(u64::MAX),
            changed: Notify::new(),
            on_advance: None,
        }
    }
}

impl std::fmt::Debug for AckStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckStream")
            .field("progress", &self.progress())
            .finish()
    }
}

impl AckStream {
    /// A new stream with nothing published.
    pub fn new() -> Arc<Self> {
        Arc::new(AckStream::default())
    }

    /// A new stream that runs `on_advance` each time its acked prefix moves, on the thread that
    /// acked, after the new position is visible through [`acked_position`](Self::acked_position)
    /// and [`progress`](Self::progress): whoever reacts to the hook (and takes any lock the
    /// hook took) reads the new position. It runs once per batch of acks of this stream
    /// ([`ack_all`]), not per event; keep it cheap (push a key into a set).
    pub fn with_on_advance(on_advance: impl Fn() + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(AckStream {
            on_advance: Some(Box::new(on_advance)),
            ..AckStream::default()
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the window inconsistent (each method
        // mutates it in one step), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands out the token for the next event, to be committed at `position` once delivered.
    pub fn token(self: &Arc<Self>, position: u64) -> AckToken {
        let mut st = self.lock();
        let seq = st.base + st.window.len() as u64;
        st.window.push_back((false, position));
        st.progress.published += 1;
        AckToken {
            stream: Some(self.clone()),
            seq,
        }
    }

    /// Hands out the tokens for the next events, one per position, in order, under one lock
    /// (events read or handed over together), appending them to `out`.
    pub fn tokens(
        self: &Arc<Self>,
        positions: impl IntoIterator<Item = u64>,
        out: &mut Vec<AckToken>,
    ) {
        let mut st = self.lock();
        for position in positions {
            let seq = st.base + st.window.len() as u64;
            st.window.push_back((false, position));
            st.progress.published += 1;
            out.push(AckToken {
                stream: Some(self.clone()),
                seq,
            });
        }
    }

    /// The current progress.
    pub fn progress(&self) -> Progress {
        self.lock().progress
    }

    /// The position of the last event of the acked prefix, read without locking.
    pub fn acked_position(&self) -> Option<u64> {
        match self.acked_position.load(Ordering::Acquire) {
            u64::MAX => None,
            p => Some(p),
        }
    }

    /// Waits until the progress changes (an ack moved the prefix).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Waits until every published token is acked, or returns `false` if `deadline` passes.
    pub async fn wait_all_acked(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.changed.notified();
            if self.progress().pending() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.progress().pending() == 0;
            }
        }
    }

    fn resolve(&self, seq: u64, acked: bool) {
        if !acked {
            self.lock().progress.abandoned += 1;
            return;
        }
        self.resolve_acked(&[seq]);
    }

    /// Marks the tokens `seqs` acked under one lock, then advances the prefix once.
    fn resolve_acked(&self, seqs: &[u64]) {
        let mut st = self.lock();
        for &seq in seqs {
            let Some(idx) = seq.checked_sub(st.base) else {
                continue;
            };
            if let Some(slot) = st.window.get_mut(idx as usize) {
                slot.0 = true;
            }
        }
        let mut moved = false;
        while let Some(&(true, pos)) = st.window.front() {
            st.window.pop_front();
            st.base += 1;
            st.progress.acked += 1;
            st.progress.acked_position = Some(pos);
            moved = true;
        }
        if moved {
            // A stream lives as long as its source (a file's stream, its whole content): a
            // burst's room is given back once everything is acknowledged.
            if st.window.is_empty() && st.window.capacity() > 1024 {
                st.window.shrink_to(64);
            }
            let pos = st.progress.acked_position.unwrap_or(u64::MAX);
            self.acked_position.store(pos, Ordering::Release);
            drop(st);
            if let Some(hook) = &self.on_advance {
                hook();
            }
            self.changed.notify_waiters();
        }
    }
}

/// Acks many tokens at once (a delivered batch). Consecutive tokens of the same stream, the
/// common case (a batch holds runs of lines from one file), take the stream's lock and wake its
/// waiters once per run instead of once per event.
pub fn ack_all(tokens: impl IntoIterator<Item = AckToken>) {
    let mut run: Option<Arc<AckStream>> = None;
    let mut seqs: Vec<u64> = Vec::new();
    for mut token in tokens {
        let Some(stream) = token.stream.take() else {
            continue;
        };
        if let Some(cur) = &run
            && !Arc::ptr_eq(cur, &stream)
        {
            cur.resolve_acked(&seqs);
            seqs.clear();
        }
        seqs.push(token.seq);
        run = Some(stream);
    }
    if let Some(cur) = run {
        cur.resolve_acked(&seqs);
    }
}

/// The promise, carried by one event, to tell its source whether it was delivered.
///
/// Resolve it with [`ack`](AckToken::ack). Dropping it unresolved means "not delivered".
#[must_use = "an event's token must be acked once the event is delivered"]
pub struct AckToken {
    stream: Option<Arc<AckStream>>,
    seq: u64,
}

impl AckToken {
    /// Marks the event as delivered (or durably handed on, or deliberately dropped).
    pub fn ack(mut self) {
        if let Some(stream) = self.stream.take() {
            stream.resolve(self.seq, true);
        }
    }

    /// The stream this token belongs to.
    pub fn stream(&self) -> Option<&Arc<AckStream>> {
        self.stream.as_ref()
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            stream.resolve(self.seq, false);
        }
    }
}

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AckToken({})", self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_advances_only_when_contiguous() {
        let s = AckStream::new();
        let t: Vec<_> = (1..=5).map(|i| s.token(i * 10)).collect();
        let mut t = t.into_iter();
        let (a, b, c, d, e) = (
            t.next().unwrap(),
            t.next().unwrap(),
            t.next().unwrap(),
            t.next().unwrap(),
            t.next().unwrap(),
        );
        c.ack();
        assert_eq!(s.acked_position(), None);
        a.ack();
        assert_eq!(s.acked_position(), Some(10));
        b.ack();
        assert_eq!(s.acked_position(), Some(30));
        assert_eq!(s.progress().acked, 3);
        drop(d); // lost: holds the prefix back
        e.ack();
        let p = s.progress();
        assert_eq!(
            (p.published, p.acked, p.abandoned, p.acked_position),
            (5, 3, 1, Some(30))
        );
        assert_eq!(p.pending(), 2);
    }

    #[tokio::test]
    async fn waiters_are_woken() {
        let s = AckStream::new();
        let tok = s.token(7);
        let s2 = s.clone();
        let h = tokio::spawn(async move {
            s2.wait_all_acked(tokio::time::Instant::now() + std::time::Duration::from_secs(10))
                .await
        });
        tokio::task::yield_now().await;
        tok.ack();
        assert!(h.await.unwrap());
        assert_eq!(s.acked_position(), Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_times_out_when_not_acked() {
        let s = AckStream::new();
        let _tok = s.token(7);
        let ok = s
            .wait_all_acked(tokio::time::Instant::now() + std::time::Duration::from_secs(1))
            .await;
        assert!(!ok);
    }

    #[test]
    fn ack_all_groups_runs_and_matches_one_by_one() {
        let (a, b) = (AckStream::new(), AckStream::new());
        // Interleaved runs of two streams, out of order within each stream.
        let ta: Vec<_> = (1..=4).map(|i| a.token(i)).collect();
        let tb: Vec<_> = (1..=3).map(|i| b.token(i * 100)).collect();
        let mut ta = ta.into_iter();
        let mut tb = tb.into_iter();
        let (a1, a2, a3, a4) = (
            ta.next().unwrap(),
            ta.next().unwrap(),
            ta.next().unwrap(),
            ta.next().unwrap(),
        );
        let (b1, b2, b3) = (tb.next().unwrap(), tb.next().unwrap(), tb.next().unwrap());
        ack_all(vec![a2, b2, b1, a1]);
        assert_eq!(a.acked_position(), Some(2));
        assert_eq!(b.acked_position(), Some(200));
        drop(a3); // never delivered: holds a's prefix back
        ack_all(vec![a4, b3]);
        assert_eq!(a.acked_position(), Some(2));
        assert_eq!(b.acked_position(), Some(300));
        let p = a.progress();
        assert_eq!((p.acked, p.abandoned, p.pending()), (2, 1, 2));
    }

    #[test]
    fn tokens_in_one_go_are_the_same_as_one_by_one() {
        let s = AckStream::new();
        let first = s.token(5);
        let mut run = Vec::new();
        s.tokens([10, 20, 30], &mut run);
        assert_eq!(s.progress().published, 4);
        let mut run = run.into_iter();
        let (a, b, c) = (
            run.next().unwrap(),
            run.next().unwrap(),
            run.next().unwrap(),
        );
        ack_all(vec![b, a]);
        assert_eq!(
            s.acked_position(),
            None,
            "the token before the run holds it back"
        );
        first.ack();
        assert_eq!(s.acked_position(), Some(20));
        c.ack();
        assert_eq!((s.progress().acked, s.acked_position()), (4, Some(30)));
    }

    /// The file input's registry commit relies on it: the hook runs once per advance of the
    /// prefix (not for an ack that leaves a gap), and the new position is visible in it.
    #[test]
    fn on_advance_runs_when_the_prefix_moves_and_sees_the_new_position() {
        let seen: Arc<Mutex<Vec<Option<u64>>>> = Arc::default();
        let slot: Arc<std::sync::OnceLock<std::sync::Weak<AckStream>>> = Arc::default();
        let s = {
            let (seen, slot) = (seen.clone(), slot.clone());
            AckStream::with_on_advance(move || {
                let pos = slot
                    .get()
                    .and_then(|w| w.upgrade())
                    .and_then(|s| s.acked_position());
                seen.lock().unwrap().push(pos);
            })
        };
        let _ = slot.set(Arc::downgrade(&s));
        let t: Vec<_> = (1..=4).map(|i| s.token(i * 10)).collect();
        let mut t = t.into_iter();
        let (a, b, c, d) = (
            t.next().unwrap(),
            t.next().unwrap(),
            t.next().unwrap(),
            t.next().unwrap(),
        );
        b.ack();
        assert!(
            seen.lock().unwrap().is_empty(),
            "a gap: the prefix did not move"
        );
        a.ack();
        ack_all(vec![d, c]);
        assert_eq!(*seen.lock().unwrap(), vec![Some(20), Some(40)]);
    }
}
