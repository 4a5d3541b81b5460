//! Datagram sockets (UDP, unix datagram): one message per datagram.
//!
//! Acknowledgement contract: none is possible. A datagram sender never learns whether it
//! arrived, and the socket cannot make it wait, so when the pipeline is full datagrams are
//! *dropped, visibly*. Two places can drop them, and both are counted:
//!
//! * between the socket and the queue the input holds up to [`HOLD`] datagrams; one arriving
//!   while they are all waiting for room in the queue is dropped and counted in
//!   `skiff.input.net.dropped{reason="pipeline_full"}`;
//! * the kernel drops what arrives while the socket's receive buffer (`read_buffer`) is full;
//!   for UDP those drops are read from `/proc/net/udp` every second into
//!   `skiff.input.udp.kernel_drops` (Filebeat's `system_packet_drops`).
//!
//! Reading the socket and publishing run side by side, so a slow queue does not slow the
//! draining of the socket: the drops happen in our count, not silently in the kernel.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use skiff_event::{Event, Map, Timestamp};
use skiff_metrics::names;
use skiff_pipeline::InputContext;
use tokio::net::{UdpSocket, UnixDatagram};
use tokio::sync::mpsc;

use crate::message::ToEvent;

/// Datagrams held between the socket and the queue.
pub const HOLD: usize = 4096;

/// A bound datagram socket.
pub enum Socket {
    /// UDP.
    Udp(UdpSocket),
    /// A unix datagram socket and its path (the `log.source.address` of unnamed senders).
    Unix(UnixDatagram, String),
}

impl Socket {
    fn local(&self) -> String {
        match self {
            Socket::Udp(s) => s.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Socket::Unix(_, p) => p.clone(),
        }
    }

    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, String)> {
        match self {
            Socket::Udp(s) => {
                let (n, a) = s.recv_from(buf).await?;
                Ok((n, a.to_string()))
            }
            Socket::Unix(s, path) => {
                let (n, a) = s.recv_from(buf).await?;
                let from = a
                    .as_pathname()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| path.clone());
                Ok((n, from))
            }
        }
    }
}

/// Receives until shutdown.
pub async fn run(
    sock: Socket,
    max: usize,
    to_event: Arc<dyn ToEvent>,
    shared: Arc<Map>,
    kind: &'static str,
    ctx: &InputContext,
) {
    let label = [("input", ctx.id.as_str())];
    let m = &ctx.build.metrics;
    let events = m.counter_with(&names::INPUT_EVENTS, &label);
    let bytes = m.counter_with(&names::INPUT_BYTES, &label);
    let dropped = |reason: &'static str| {
        m.counter_with(
            &names::NET_DROPPED,
            &[("input", ctx.id.as_str()), ("reason", reason)],
        )
    };
    let (full, too_large) = (dropped("pipeline_full"), dropped("too_large"));
    let kernel = m.counter_with(&names::UDP_KERNEL_DROPS, &label);
    let local = sock.local();
    {
        let (full, too_large, kernel, local) = (
            full.clone(),
            too_large.clone(),
            kernel.clone(),
            local.clone(),
        );
        ctx.build.status.register(&ctx.id, move || {
            serde_json::json!({"type": kind, "listen": local,
                "dropped": {"pipeline_full": full.get(), "too_large": too_large.get()},
                "kernel_drops": kernel.get()})
        });
    }
    tracing::info!(input = %ctx.id, listen = %local, "{kind} input listening");
    let inode = match &sock {
        Socket::Udp(s) => socket_inode(s.as_raw_fd()),
        Socket::Unix(..) => None,
    };
    let (tx, mut rx) = mpsc::channel::<Event>(HOLD);
    let receive = async {
        // One byte more than the limit: a datagram that fills it was longer than allowed
        // (the kernel cuts a datagram to the buffer without telling).
        let mut buf = vec![0u8; max + 1];
        let mut kernel_seen = inode.and_then(udp_drops).unwrap_or(0);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let got = tokio::select! {
                r = sock.recv(&mut buf) => r,
                _ = tick.tick() => {
                    if let Some(d) = inode.and_then(udp_drops) {
                        kernel.add(d.saturating_sub(kernel_seen));
                        kernel_seen = kernel_seen.max(d);
                    }
                    continue;
                }
                _ = ctx.shutdown.cancelled() => return,
            };
            let (n, from) = match got {
                Ok(v) => v,
                Err(e) => {
                    // ICMP errors of earlier sends and the like: the socket stays usable.
                    tracing::debug!(input = %ctx.id, error = %e, "{kind} receive failed");
                    continue;
                }
            };
            bytes.add(n as u64);
            if n > max {
                too_large.inc();
                tracing::debug!(input = %ctx.id, from = %from, max, "{kind} datagram over max_message_size dropped");
                continue;
            }
            if n == 0 {
                continue;
            }
            let ev = to_event.to_event(&buf[..n], &shared, Some(&from), Timestamp::now());
            events.inc();
            match tx.try_send(ev) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => full.inc(),
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    };
    let publish = async {
        let mut batch = Vec::with_capacity(256);
        while rx.recv_many(&mut batch, 256).await > 0 {
            if ctx.publisher.publish_all(&mut batch).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = receive => {}
        _ = publish => {}
    }
    tracing::info!(input = %ctx.id, "{kind} input stopping");
}

/// The inode of socket `fd` (`/proc/net/udp` names sockets by it).
fn socket_inode(fd: i32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|m| m.ino())
}

/// The kernel's drop count of the UDP socket with `inode`, from `/proc/net/udp{,6}`.
pub fn udp_drops(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"].iter().find_map(|p| {
        let text = std::fs::read_to_string(p).ok()?;
        parse_udp_drops(&text, inode)
    })
}

fn parse_udp_drops(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(9)?.parse::<u64>().ok()? == inode).then(|| f.get(12)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_drops_of_one_socket() {
        let t = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          1: 0100007F:2328 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
          2: 0100007F:2329 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 0\n";
        assert_eq!(parse_udp_drops(t, 4242), Some(17));
        assert_eq!(parse_udp_drops(t, 4243), Some(0));
        assert_eq!(parse_udp_drops(t, 1), None);
    }

    #[test]
    fn finds_a_real_socket() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let ino = socket_inode(s.as_raw_fd()).unwrap();
        assert_eq!(udp_drops(ino), Some(0));
    }
}
