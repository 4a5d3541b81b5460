//! One stream connection (TCP, TLS over TCP, a unix stream socket): read, cut into messages,
//! publish.
//!
//! Acknowledgement contract: nothing is acknowledged to the sender but the bytes TCP itself
//! acknowledges. Each read's messages are published before the next read, and publishing
//! waits while the queue is full, so a stopped output stops the reads: the socket's receive
//! buffer fills, TCP's window closes and the sender blocks (back-pressure). Nothing is dropped
//! for lack of room. What sits in a memory queue when skiff stops is lost unless the disk
//! queue is used (the sender considers it sent), as with Filebeat.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use skiff_event::{Map, Timestamp};
use skiff_metrics::Counter;
use skiff_pipeline::Publisher;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use crate::framing::{FrameError, Framer};
use crate::message::ToEvent;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 << 10;

/// What every connection of one input shares.
pub struct StreamShared {
    /// Where events go.
    pub publisher: Publisher,
    /// How messages are cut.
    pub framer: Framer,
    /// What a message becomes.
    pub to_event: Arc<dyn ToEvent>,
    /// The input's shared fields (the connection adds `log.source.address`).
    pub shared: Arc<Map>,
    /// Idle time before a connection is closed.
    pub timeout: Duration,
    /// Messages received.
    pub events: Counter,
    /// Bytes received.
    pub bytes: Counter,
    /// Connections closed because of a message over `max_message_size` (or bad framing).
    pub too_large: Counter,
}

/// How a connection ended.
#[derive(Debug)]
pub enum End {
    /// The sender closed it.
    Closed,
    /// skiff is stopping.
    Shutdown,
    /// Silent for `timeout`.
    Idle,
    /// A message over the limit or a bad octet count.
    Framing(FrameError),
    /// A read failed.
    Io(std::io::Error),
}

/// Serves one connection until it ends. `shared` carries the sender's `log.source.address`.
pub async fn serve<S: AsyncRead + Unpin>(
    mut io: S,
    shared: Arc<Map>,
    sh: &StreamShared,
    shutdown: &CancellationToken,
) -> End {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut batch = Vec::with_capacity(64);
    loop {
        buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            r = tokio::time::timeout(sh.timeout, io.read_buf(&mut buf)) => r,
            _ = shutdown.cancelled() => return End::Shutdown,
        };
        let n = match read {
            Err(_) => return End::Idle,
            Ok(Err(e)) => return End::Io(e),
            Ok(Ok(n)) => n,
        };
        sh.bytes.add(n as u64);
        let now = Timestamp::now();
        let mut failed = None;
        if n == 0 {
            if let Some(m) = sh.framer.rest(&mut buf) {
                batch.push(sh.to_event.to_event(&m, &shared, None, now));
            }
        } else {
            loop {
                match sh.framer.next(&mut buf) {
                    Ok(Some(m)) => batch.push(sh.to_event.to_event(&m, &shared, None, now)),
                    Ok(None) => break,
                    Err(e) => {
                        sh.too_large.inc();
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        if !batch.is_empty() {
            sh.events.add(batch.len() as u64);
            // Waits while the queue is full: this is the back-pressure on the sender.
            tokio::select! {
                r = sh.publisher.publish_all(&mut batch) => if r.is_err() { return End::Shutdown },
                _ = shutdown.cancelled() => return End::Shutdown,
            }
        }
        if let Some(e) = failed {
            return End::Framing(e);
        }
        if n == 0 {
            return End::Closed;
        }
    }
}
