//! One client connection: decode frames, publish events, and ACK each window back to the client
//! only once *our* outputs acknowledged its events.
//!
//! Two halves run at once. The reader decodes frames and publishes every event with a token of
//! the connection's [`AckStream`] (waiting while the queue is full). The ACK writer follows the
//! stream's acknowledged prefix: for every event that became delivered it knows the frame's
//! sequence number and whether it ended a window, and sends `A seq` (partial ACKs included).
//! While events are outstanding it repeats the current window's last ACK every `keepalive`, so
//! the client does not time out while our pipeline is backpressured.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use skiff_event::{AckStream, Event, Map, Value};
use skiff_metrics::Counter;
use skiff_pipeline::Publisher;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::input::event;
use crate::protocol::{self, Decoder, Frame, Limits, ProtocolError};

/// What every connection of one input shares.
pub struct Shared {
    /// Where events go.
    pub publisher: Publisher,
    /// The shared fields of received events.
    pub fields: Arc<Map>,
    /// Configured tags, appended to each event's own.
    pub tags: Vec<Value>,
    /// Decoder limits.
    pub limits: Limits,
    /// Whether `D` frames are accepted.
    pub accept_v1: bool,
    /// Keep-alive ACK period.
    pub keepalive: Duration,
    /// Mid-window read timeout.
    pub timeout: Duration,
    /// Idle timeout (zero: none).
    pub inactivity: Duration,
    /// Events received.
    pub events: Counter,
    /// Bytes received.
    pub bytes: Counter,
    /// The input's id, for logs.
    pub id: String,
    /// Memory accounting of the connections' read buffers.
    pub mem: skiff_pipeline::budget::Stage,
}

/// One published event waiting for its acknowledgement.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// Events published on this connection including this one (0 for an empty window marker).
    end: u64,
    /// Its frame's sequence number.
    seq: u32,
    /// Whether it completes its window.
    last: bool,
    /// The protocol version of its window (ACKs answer in the same version).
    version: u8,
}

/// The queue of outstanding events shared by the two halves.
#[derive(Default)]
struct Outstanding {
    q: VecDeque<Pending>,
}

/// How a connection ended.
pub enum End {
    /// The client closed it.
    Closed,
    /// skiff is stopping.
    Shutdown,
    /// Something was wrong; the message says what.
    Error(String),
}

/// Serves one connection until the client leaves, an error, or shutdown.
pub async fn serve<S>(io: S, peer: SocketAddr, sh: Arc<Shared>, shutdown: CancellationToken) -> End
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let stream = AckStream::new();
    let out = Arc::new(Mutex::new(Outstanding::default()));
    let wake = Arc::new(Notify::new());
    let stop_acks = CancellationToken::new();
    let acker = tokio::spawn(ack_loop(
        wr,
        stream.clone(),
        out.clone(),
        wake.clone(),
        sh.keepalive,
        stop_acks.clone(),
    ));
    let mut accounted = 0usize;
    let end = read_loop(rd, &stream, &out, &wake, &sh, &shutdown, &mut accounted).await;
    sh.mem.sub(accounted);
    if matches!(end, End::Shutdown) {
        // Give our outputs a chance to deliver what this client sent, so it hears the ACKs and
        // does not send the events again to the next server.
        let deadline = tokio::time::Instant::now() + sh.publisher.shutdown_timeout();
        stream.wait_all_acked(deadline).await;
        wake.notify_one();
        tokio::task::yield_now().await;
    }
    stop_acks.cancel();
    let _ = acker.await;
    tracing::debug!(input = %sh.id, peer = %peer, "lumberjack connection closed");
    end
}

fn lock(o: &Mutex<Outstanding>) -> std::sync::MutexGuard<'_, Outstanding> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut rd: R,
    stream: &Arc<AckStream>,
    out: &Mutex<Outstanding>,
    wake: &Notify,
    sh: &Shared,
    shutdown: &CancellationToken,
    accounted: &mut usize,
) -> End {
    let mut dec = Decoder::new(sh.limits);
    let mut buf = BytesMut::with_capacity(64 << 10);
    // The read buffer holds at most one frame (bounded by the limits) plus one read.
    let mut account = |cap: usize| {
        if cap > *accounted {
            sh.mem.add(cap - *accounted);
        } else {
            sh.mem.sub(*accounted - cap);
        }
        *accounted = cap;
    };
    account(buf.capacity());
    let mut published: u64 = 0;
    // The current window: declared size and frames received.
    let mut expected: u32 = 0;
    let mut received: u32 = 0;
    let mut version = protocol::VERSION_2;
    loop {
        // Take out every whole frame first.
        loop {
            // The version byte of the next frame on the wire (frames taken out of a compressed
            // frame belong to the window already seen).
            let next_version = if dec.has_pending() {
                None
            } else {
                buf.first().copied()
            };
            let frame = match dec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return End::Error(e.to_string()),
            };
            let ev = match frame {
                Frame::Window(n) => {
                    if received < expected && received > 0 {
                        tracing::warn!(input = %sh.id, expected, received, "new window before the previous one was complete; acknowledging what arrived");
                        if let Some(p) = lock(out).q.back_mut() {
                            p.last = true;
                        }
                    }
                    expected = n;
                    received = 0;
                    version = next_version.unwrap_or(protocol::VERSION_2);
                    if n == 0 {
                        // Logstash answers an empty window with ACK 0 (a liveness check).
                        lock(out).q.push_back(Pending {
                            end: published,
                            seq: 0,
                            last: true,
                            version,
                        });
                        wake.notify_one();
                    }
                    continue;
                }
                Frame::Ack(_) => {
                    return End::Error(ProtocolError::Unexpected("ACK", "client").to_string());
                }
                Frame::Json { seq, payload } => {
                    sh.bytes.add(payload.len() as u64);
                    (seq, event::from_json(&payload, &sh.fields, &sh.tags))
                }
                Frame::Data { seq, pairs } => {
                    if !sh.accept_v1 {
                        return End::Error(
                            "lumberjack v1 data frame, but `versions` does not include v1".into(),
                        );
                    }
                    (seq, event::from_pairs(pairs, &sh.fields, &sh.tags))
                }
            };
            if expected == 0 {
                return End::Error(
                    "data frame before any window frame: the client is not speaking lumberjack v2"
                        .into(),
                );
            }
            let (seq, mut ev): (u32, Event) = ev;
            published += 1;
            received = received.saturating_add(1);
            ev.ack = Some(stream.token(published));
            lock(out).q.push_back(Pending {
                end: published,
                seq,
                last: received >= expected,
                version,
            });
            sh.events.inc();
            tokio::select! {
                r = sh.publisher.publish(ev) => if r.is_err() { return End::Shutdown },
                _ = shutdown.cancelled() => return End::Shutdown,
            }
        }
        let mid_window = received < expected;
        let idle = lock(out).q.is_empty();
        let limit = if mid_window {
            Some(sh.timeout)
        } else if idle && !sh.inactivity.is_zero() {
            Some(sh.inactivity)
        } else {
            None
        };
        if buf.capacity() - buf.len() < 16 << 10 {
            buf.reserve(64 << 10);
        }
        account(buf.capacity());
        let read = async {
            match limit {
                Some(t) => tokio::time::timeout(t, rd.read_buf(&mut buf)).await.ok(),
                None => Some(rd.read_buf(&mut buf).await),
            }
        };
        let r = tokio::select! {
            r = read => r,
            _ = shutdown.cancelled() => return End::Shutdown,
        };
        match r {
            None if mid_window => {
                return End::Error(format!(
                    "client sent {received} of {expected} events of a window, then nothing for {:?} (timeout)",
                    sh.timeout
                ));
            }
            None => return End::Closed,
            Some(Ok(0)) => {
                if !buf.is_empty() || dec.has_pending() {
                    return End::Error("connection closed in the middle of a frame".into());
                }
                return End::Closed;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return End::Error(format!("read failed: {e}")),
        }
    }
}

/// Sends ACKs as the acknowledged prefix grows, and keep-alives while events are outstanding.
async fn ack_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    stream: Arc<AckStream>,
    out: Arc<Mutex<Outstanding>>,
    wake: Arc<Notify>,
    keepalive: Duration,
    stop: CancellationToken,
) {
    // The sequence acknowledged so far in the oldest incomplete window (0: none yet), and the
    // protocol version to answer in.
    let mut window_seq: u32 = 0;
    let mut version = protocol::VERSION_2;
    let mut frames = Vec::with_capacity(64);
    loop {
        // Register for the next change *before* reading the progress, so no ack is missed.
        let mut changed = pin!(stream.changed());
        let mut fired = false;
        std::future::poll_fn(|cx| {
            fired = changed.as_mut().poll(cx).is_ready();
            Poll::Ready(())
        })
        .await;
        let acked = stream.progress().acked;
        frames.clear();
        {
            let mut o = lock(&out);
            let mut last_popped: Option<Pending> = None;
            while let Some(p) = o.q.front().copied() {
                if p.end > acked {
                    break;
                }
                o.q.pop_front();
                version = p.version;
                if p.last {
                    frames.extend_from_slice(&protocol::ack_frame_v(p.version, p.seq));
                    window_seq = 0;
                } else {
                    window_seq = p.seq;
                }
                last_popped = Some(p);
            }
            if let Some(p) = last_popped
                && !p.last
            {
                frames.extend_from_slice(&protocol::ack_frame_v(p.version, p.seq));
            }
            if let Some(p) = o.q.front() {
                version = p.version;
            }
        }
        if !frames.is_empty() && write(&mut wr, &frames).await.is_err() {
            return;
        }
        if fired {
            continue;
        }
        tokio::select! {
            _ = changed => {}
            _ = wake.notified() => {}
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(keepalive) => {
                if !lock(&out).q.is_empty()
                    && write(&mut wr, &protocol::ack_frame_v(version, window_seq)).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

async fn write<W: AsyncWrite + Unpin>(wr: &mut W, b: &[u8]) -> std::io::Result<()> {
    wr.write_all(b).await?;
    wr.flush().await
}
