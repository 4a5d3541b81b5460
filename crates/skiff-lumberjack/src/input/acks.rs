//! The ACK half of a connection, and what a connection holds until its client heard the ACK.
//!
//! An event stays *held* by its connection from the moment it is decoded until the ACK frame
//! covering it is written to the client: not when our outputs acknowledge it. A client that
//! sends and never reads fills its socket's send buffer, our ACK write blocks, nothing is
//! released, and the reader stops at `max_window_size` events or `max_batch_size` bytes
//! ([`Outstanding::must_wait`]). That bounds what one such client costs, and the write timeout
//! ([`ack_loop`]) closes it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use skiff_event::AckStream;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::input::conn::{End, Reason, Shared};
use crate::protocol;

/// One published event (or empty-window marker) waiting for its acknowledgement.
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    /// Events published on this connection including this one (for an empty-window marker:
    /// the events published before it).
    pub end: u64,
    /// Its frame's sequence number.
    pub seq: u32,
    /// Whether it completes its window.
    pub last: bool,
    /// The protocol version of its window (ACKs answer in the same version).
    pub version: u8,
    /// Bytes accounted for it in the `input.lumberjack` stage.
    pub bytes: usize,
}

/// The connection's outstanding events, shared by the two halves.
#[derive(Default)]
pub struct Outstanding {
    /// Not yet acknowledged by our outputs.
    pub q: VecDeque<Pending>,
    /// Entries (in `q` or being ACKed) whose ACK is not written yet.
    held_events: u64,
    /// Their accounted bytes.
    held_bytes: usize,
}

impl Outstanding {
    /// Adds `p`; its bytes are already accounted by the caller.
    pub fn push(&mut self, p: Pending) {
        self.held_events += 1;
        self.held_bytes += p.bytes;
        self.q.push_back(p);
    }

    /// Whether the reader must stop reading from the client for now.
    pub fn must_wait(&self, sh: &Shared, read_max: usize) -> bool {
        if self.held_events == 0 {
            // Holding nothing, a connection can always finish the frame it is receiving: no
            // client waits for another, and a small `max_pending_bytes` cannot lock it out.
            return false;
        }
        self.held_events >= sh.max_window
            || self.held_bytes >= sh.limits.max_decompressed
            || sh.mem.used().saturating_add(read_max as u64) > sh.mem.limit()
    }

    /// Bytes still held (released by the caller when the connection ends).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }
}

/// Locks the shared state (a panic elsewhere does not stop the ACKs).
pub fn lock(o: &Mutex<Outstanding>) -> MutexGuard<'_, Outstanding> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the ACK half needs.
pub struct AckHalf<W> {
    /// The client's write half.
    pub wr: W,
    /// The connection's acknowledgement stream.
    pub stream: Arc<AckStream>,
    /// Shared with the reader.
    pub out: Arc<Mutex<Outstanding>>,
    /// The reader wakes it after pushing an empty-window marker.
    pub wake: Arc<Notify>,
    /// It wakes the reader after releasing held events.
    pub released: Arc<Notify>,
    /// Set by the reader when the connection ends.
    pub stop: CancellationToken,
}

/// Sends ACKs as the acknowledged prefix grows, and keep-alives while events are outstanding.
/// Returns why it gave up (`None`: stopped by the reader).
pub async fn ack_loop<W: AsyncWrite + Unpin>(h: AckHalf<W>, sh: Arc<Shared>) -> Option<End> {
    let AckHalf {
        mut wr,
        stream,
        out,
        wake,
        released,
        stop,
    } = h;
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
        let (mut n, mut bytes) = (0u64, 0usize);
        {
            let mut o = lock(&out);
            let mut last_popped: Option<Pending> = None;
            while let Some(p) = o.q.front().copied() {
                if p.end > acked {
                    break;
                }
                o.q.pop_front();
                n += 1;
                bytes += p.bytes;
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
        if !frames.is_empty() {
            if let Err(end) = write(&mut wr, &frames, sh.timeout, &stop).await {
                return end;
            }
            // The client has its ACKs: what they cover no longer counts against it.
            {
                let mut o = lock(&out);
                o.held_events -= n;
                o.held_bytes -= bytes;
            }
            sh.mem.sub(bytes);
            released.notify_one();
            sh.released.notify_waiters();
        }
        if fired {
            continue;
        }
        tokio::select! {
            _ = changed => {}
            _ = wake.notified() => {}
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(sh.keepalive) => {
                if !lock(&out).q.is_empty() {
                    let ka = protocol::ack_frame_v(version, window_seq);
                    if let Err(end) = write(&mut wr, &ka, sh.timeout, &stop).await {
                        return end;
                    }
                }
            }
        }
    }
}

/// Writes `b` within `timeout`; `Err` carries why the connection must end.
async fn write<W: AsyncWrite + Unpin>(
    wr: &mut W,
    b: &[u8],
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<(), Option<End>> {
    let io = async {
        wr.write_all(b).await?;
        wr.flush().await
    };
    tokio::select! {
        r = tokio::time::timeout(timeout, io) => match r {
            Ok(Ok(())) => Ok(()),
            // The client left; its reader sees the same.
            Ok(Err(_)) => Err(Some(End::Closed)),
            Err(_) => Err(Some(End::Error {
                reason: Reason::WriteTimeout,
                why: format!(
                    "the client did not read our ACKs for {timeout:?} (its receive buffer is full; timeout)"
                ),
            })),
        },
        _ = stop.cancelled() => Err(None),
    }
}
