//! One client connection: decode frames, publish events, and ACK each window back to the client
//! only once *our* outputs acknowledged its events.
//!
//! Two halves run at once. The reader decodes frames and publishes every event with a token of
//! the connection's [`AckStream`] (waiting while the queue is full). The ACK writer
//! ([`acks::ack_loop`]) follows the stream's acknowledged prefix: for every event that became
//! delivered it knows the frame's sequence number and whether it ended a window, and sends
//! `A seq` (partial ACKs included). While events are outstanding it repeats the current
//! window's last ACK every `keepalive`, so the client does not time out while our pipeline is
//! backpressured.
//!
//! Limits, so that a hostile or broken client costs a bounded amount and never stalls others:
//! the reader stops reading while the connection holds too much (see [`acks`]); a connection
//! must finish its TLS handshake and send a first whole frame within `handshake_timeout`, may
//! not stay silent longer than `client_inactivity_timeout` while nothing of it is pending, nor
//! pause mid-window longer than `timeout`; an ACK write waits at most `timeout`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use skiff_event::{AckStream, Event, Map, Value};
use skiff_metrics::Counter;
use skiff_pipeline::Publisher;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::input::acks::{self, AckHalf, Outstanding, Pending, lock};
use crate::input::event;
use crate::protocol::{self, Decoder, Frame, Limits, ProtocolError};

/// The most one socket read adds to the read buffer: the slack of the stage limit check.
pub const READ_MAX: usize = 64 << 10;

/// What every connection of one input shares.
pub struct Shared {
    /// Where events go.
    pub publisher: Publisher,
    /// The shared fields of received events.
    pub fields: Arc<Map>,
    /// Configured tags, appended to each event's own.
    pub tags: Vec<Value>,
    /// Decoder limits (`max_decompressed` also caps the bytes a connection holds).
    pub limits: Limits,
    /// Whether `D` frames are accepted.
    pub accept_v1: bool,
    /// Keep-alive ACK period.
    pub keepalive: Duration,
    /// Mid-window read timeout and ACK write timeout.
    pub timeout: Duration,
    /// Idle timeout (zero: none).
    pub inactivity: Duration,
    /// TLS handshake + first frame timeout.
    pub handshake: Duration,
    /// Events a connection may hold unacknowledged to its client.
    pub max_window: u64,
    /// Events received.
    pub events: Counter,
    /// Bytes received.
    pub bytes: Counter,
    /// Times a connection stopped reading at its limits.
    pub pauses: Counter,
    /// Connections closed by us, by reason.
    pub closed: ClosedCounters,
    /// The input's id, for logs.
    pub id: String,
    /// Memory accounting of the connections' read buffers and held events.
    pub mem: skiff_pipeline::budget::Stage,
    /// Woken when any connection releases held bytes (others may be waiting on the stage).
    pub released: Notify,
}

/// `skiff.input.lumberjack.connections.closed`, one counter per reason.
pub struct ClosedCounters(pub [Counter; Reason::ALL.len()]);

impl ClosedCounters {
    /// Counts one connection closed for `r`.
    pub fn inc(&self, r: Reason) {
        self.0[r as usize].inc();
    }
}

/// Why we closed a connection (the metric's `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No TLS handshake and first frame within `handshake_timeout`.
    HandshakeTimeout = 0,
    /// Silent for `client_inactivity_timeout` with nothing pending.
    IdleTimeout = 1,
    /// Silent for `timeout` in the middle of a window.
    ReadTimeout = 2,
    /// Did not read our ACKs for `timeout`.
    WriteTimeout = 3,
    /// Not lumberjack, or not within our limits.
    ProtocolError = 4,
}

impl Reason {
    /// Every reason, in the order of their discriminants.
    pub const ALL: [Reason; 5] = [
        Reason::HandshakeTimeout,
        Reason::IdleTimeout,
        Reason::ReadTimeout,
        Reason::WriteTimeout,
        Reason::ProtocolError,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::HandshakeTimeout => "handshake_timeout",
            Reason::IdleTimeout => "idle_timeout",
            Reason::ReadTimeout => "read_timeout",
            Reason::WriteTimeout => "write_timeout",
            Reason::ProtocolError => "protocol_error",
        }
    }
}

/// How a connection ended.
pub enum End {
    /// The client closed it.
    Closed,
    /// skiff is stopping.
    Shutdown,
    /// We closed it; `why` says what was wrong.
    Error {
        /// The metric label.
        reason: Reason,
        /// For the log line.
        why: String,
    },
}

fn protocol_error(why: impl Into<String>) -> End {
    End::Error {
        reason: Reason::ProtocolError,
        why: why.into(),
    }
}

/// Serves one connection until the client leaves, an error, or shutdown. The client must have
/// sent its first whole frame by `first_frame` (the TLS handshake, if any, counts against it).
pub async fn serve<S>(
    io: S,
    peer: SocketAddr,
    sh: Arc<Shared>,
    shutdown: CancellationToken,
    first_frame: Instant,
) -> End
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let stream = AckStream::new();
    let out = Arc::new(Mutex::new(Outstanding::default()));
    let wake = Arc::new(Notify::new());
    let released = Arc::new(Notify::new());
    let stop_acks = CancellationToken::new();
    let half = AckHalf {
        wr,
        stream: stream.clone(),
        out: out.clone(),
        wake: wake.clone(),
        released: released.clone(),
        stop: stop_acks.clone(),
    };
    // The ACK half cancels `acker_gone` when it gives up, so a reader waiting on it wakes.
    let acker_gone = CancellationToken::new();
    let acker = {
        let (sh, gone) = (sh.clone(), acker_gone.clone());
        let name = skiff_pipeline::supervise::current().map_or_else(
            || format!("input/{}: ACKs", sh.id),
            |n| format!("{n}: ACKs"),
        );
        tokio::spawn(skiff_pipeline::supervise::named(name, async move {
            // Cancels on return and on a panic alike: the reader never waits for a dead half.
            let _gone = gone.drop_guard();
            acks::ack_loop(half, sh).await
        }))
    };
    let mut conn = Conn {
        stream: &stream,
        out: &out,
        wake: &wake,
        released: &released,
        sh: &sh,
        shutdown: &shutdown,
        acker_gone: &acker_gone,
        accounted: 0,
    };
    // Declared after `conn`, so dropped before it: if this future is dropped or unwinds (an
    // aborted task, a panic), the ACK half stops first, then `conn` gives the memory back.
    let _stop_acks_on_exit = stop_acks.clone().drop_guard();
    let end = conn.read_loop(rd, first_frame).await;
    if matches!(end, End::Shutdown) {
        // Give our outputs a chance to deliver what this client sent, so it hears the ACKs and
        // does not send the events again to the next server.
        let deadline = Instant::now() + sh.publisher.shutdown_timeout();
        stream.wait_all_acked(deadline).await;
        wake.notify_one();
        tokio::task::yield_now().await;
    }
    stop_acks.cancel();
    let acker_end = acker.await.ok().flatten();
    // `conn` (dropped at the end of this function, after the ACK half ended) releases what the
    // connection still holds.
    tracing::debug!(input = %sh.id, peer = %peer, "lumberjack connection closed");
    match (end, acker_end) {
        // The reader stopped because the ACK half gave up: its reason is the one.
        (End::Closed, Some(e)) => e,
        (end, _) => end,
    }
}

/// The reader half's view of the connection.
struct Conn<'a> {
    stream: &'a Arc<AckStream>,
    out: &'a Mutex<Outstanding>,
    wake: &'a Notify,
    released: &'a Notify,
    sh: &'a Shared,
    shutdown: &'a CancellationToken,
    acker_gone: &'a CancellationToken,
    /// Read buffer bytes accounted in the stage.
    accounted: usize,
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        self.sh
            .mem
            .sub(self.accounted + lock(self.out).held_bytes());
        self.sh.released.notify_waiters();
    }
}

impl Conn<'_> {
    fn account(&mut self, cap: usize) {
        if cap > self.accounted {
            self.sh.mem.add(cap - self.accounted);
        } else {
            self.sh.mem.sub(self.accounted - cap);
        }
        self.accounted = cap;
    }

    /// Accounts `bytes` for an event (or marker) and records it as outstanding.
    fn hold(&self, p: Pending) {
        self.sh.mem.add(p.bytes);
        lock(self.out).push(p);
    }

    /// Waits while the connection holds as much as it may, keeping `headroom` bytes of the
    /// stage free (for the next read). `Err` when the connection must end.
    async fn wait_for_room(&self, headroom: usize) -> Result<(), End> {
        let mut counted = false;
        loop {
            // Register before checking, so a release in between is not missed.
            let mine = self.released.notified();
            let any = self.sh.released.notified();
            if !lock(self.out).must_wait(self.sh, headroom) {
                return Ok(());
            }
            if !counted {
                self.sh.pauses.inc();
                counted = true;
            }
            tokio::select! {
                _ = mine => {}
                _ = any => {}
                // Another input sharing the stage does not notify us: look again now and then.
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = self.acker_gone.cancelled() => return Err(End::Closed),
                _ = self.shutdown.cancelled() => return Err(End::Shutdown),
            }
        }
    }

    async fn read_loop<R: AsyncRead + Unpin>(&mut self, mut rd: R, first_frame: Instant) -> End {
        let sh = self.sh;
        let mut dec = Decoder::new(sh.limits);
        let mut buf = BytesMut::with_capacity(READ_MAX);
        self.account(buf.capacity());
        let mut published: u64 = 0;
        let mut got_frame = false;
        // The current window: declared size and frames received.
        let mut expected: u32 = 0;
        let mut received: u32 = 0;
        let mut version = protocol::VERSION_2;
        loop {
            // Take out every whole frame first.
            loop {
                // A read can hold many small frames: the limits apply between frames too.
                if let Err(end) = self.wait_for_room(0).await {
                    return end;
                }
                // The version byte of the next frame on the wire (frames taken out of a
                // compressed frame belong to the window already seen).
                let next_version = if dec.has_pending() || dec.in_frame() {
                    None
                } else {
                    buf.first().copied()
                };
                let frame = match dec.decode(&mut buf) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return protocol_error(e.to_string()),
                };
                got_frame = true;
                let (seq, mut ev, bytes): (u32, Event, usize) = match frame {
                    Frame::Window(n) => {
                        if received < expected && received > 0 {
                            tracing::warn!(input = %sh.id, expected, received, "new window before the previous one was complete; acknowledging what arrived");
                            if let Some(p) = lock(self.out).q.back_mut() {
                                p.last = true;
                            }
                        }
                        expected = n;
                        received = 0;
                        version = next_version.unwrap_or(protocol::VERSION_2);
                        if n == 0 {
                            // Logstash answers an empty window with ACK 0 (a liveness check).
                            // The marker counts against the window limit like an event, so a
                            // flood of `W 0` from a client that never reads stops being read.
                            self.hold(Pending {
                                end: published,
                                seq: 0,
                                last: true,
                                version,
                                bytes: protocol::ACK_LEN,
                            });
                            self.wake.notify_one();
                        }
                        continue;
                    }
                    Frame::Ack(_) => {
                        return protocol_error(
                            ProtocolError::Unexpected("ACK", "client").to_string(),
                        );
                    }
                    Frame::Json { seq, payload } => {
                        sh.bytes.add(payload.len() as u64);
                        let ev = event::from_json(&payload, &sh.fields, &sh.tags);
                        (seq, ev, payload.len())
                    }
                    Frame::Data { seq, pairs } => {
                        if !sh.accept_v1 {
                            return protocol_error(
                                "lumberjack v1 data frame, but `versions` does not include v1",
                            );
                        }
                        let len = pairs.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
                        sh.bytes.add(len as u64);
                        (seq, event::from_pairs(pairs, &sh.fields, &sh.tags), len)
                    }
                };
                if expected == 0 {
                    return protocol_error(
                        "data frame outside a window (before any window frame, or after an empty window `W 0`): the client is not speaking lumberjack v2",
                    );
                }
                published += 1;
                received = received.saturating_add(1);
                ev.ack = Some(self.stream.token(published));
                self.hold(Pending {
                    end: published,
                    seq,
                    last: received >= expected,
                    version,
                    bytes,
                });
                sh.events.inc();
                tokio::select! {
                    r = sh.publisher.publish(ev) => if r.is_err() { return End::Shutdown },
                    _ = self.shutdown.cancelled() => return End::Shutdown,
                }
            }
            // Wait for room first, grow the buffer after: a connection stopped at its limits
            // with a buffer full of frames not yet taken must not double the buffer while it
            // waits (a flaky abuse test saw 2 x READ_MAX held by a paused connection).
            if let Err(end) = self.wait_for_room(READ_MAX).await {
                return end;
            }
            if buf.capacity() - buf.len() < 16 << 10 {
                buf.reserve(READ_MAX);
            }
            self.account(buf.capacity());
            let mid_window = received < expected;
            let (deadline, reason) = if !got_frame {
                (Some(first_frame), Reason::HandshakeTimeout)
            } else if mid_window {
                (Some(Instant::now() + sh.timeout), Reason::ReadTimeout)
            } else if !sh.inactivity.is_zero() {
                (Some(Instant::now() + sh.inactivity), Reason::IdleTimeout)
            } else {
                (None, Reason::ReadTimeout)
            };
            let read = async {
                let mut room = (&mut buf).limit(READ_MAX);
                match deadline {
                    Some(t) => tokio::time::timeout_at(t, rd.read_buf(&mut room))
                        .await
                        .ok(),
                    None => Some(rd.read_buf(&mut room).await),
                }
            };
            let r = tokio::select! {
                r = read => r,
                _ = self.shutdown.cancelled() => return End::Shutdown,
                _ = self.acker_gone.cancelled() => return End::Closed,
            };
            match r {
                // A client waiting for our outputs to deliver its window is not idle.
                None if reason == Reason::IdleTimeout && !lock(self.out).q.is_empty() => {}
                None => {
                    let why = match reason {
                        Reason::HandshakeTimeout => format!(
                            "no TLS handshake and first whole frame within {:?} (handshake_timeout)",
                            sh.handshake
                        ),
                        Reason::IdleTimeout => format!(
                            "the client sent nothing for {:?} (client_inactivity_timeout)",
                            sh.inactivity
                        ),
                        _ => format!(
                            "client sent {received} of {expected} events of a window, then nothing for {:?} (timeout)",
                            sh.timeout
                        ),
                    };
                    return End::Error { reason, why };
                }
                Some(Ok(0)) => {
                    if !buf.is_empty() || dec.has_pending() || dec.in_frame() {
                        return protocol_error("connection closed in the middle of a frame");
                    }
                    return End::Closed;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return protocol_error(format!("read failed: {e}")),
            }
        }
    }
}
