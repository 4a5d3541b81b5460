//! One Lumberjack connection to one host: sends a batch as one or more windows and reads the
//! ACKs, reporting exactly how far the server got.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use skiff_event::{Event, Value};
use skiff_metrics::{Counter, Registry, names};
use skiff_pipeline::{Failure, Outcome, Output};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

use crate::connect::{self, Conn};
use crate::output::config::Host;
use crate::output::error::LogstashError;
use crate::output::window::Window;
use crate::protocol::{self, ACK_LEN, WindowEncoder};

/// What every connection of an output shares.
#[derive(Debug)]
pub struct Settings {
    /// Connect, write and ACK deadline.
    pub timeout: std::time::Duration,
    /// Reconnect after this long (zero: never).
    pub ttl: std::time::Duration,
    /// zlib level (0: none).
    pub compression_level: u32,
    /// Windows in flight per connection (0 counts as 1).
    pub pipelining: usize,
    /// Start small and grow the window.
    pub slow_start: bool,
    /// The largest window.
    pub bulk_max_size: usize,
    /// Escape `<`, `>`, `&`.
    pub escape_html: bool,
    /// `@metadata.beat` override.
    pub index: Option<String>,
    /// TLS configuration, when `ssl` is enabled.
    pub tls: Option<Arc<skiff_tls::rustls::ClientConfig>>,
}

/// A Lumberjack client for one host (one connection, opened on first use and after errors).
pub struct LumberjackClient {
    host: Host,
    settings: Arc<Settings>,
    conn: Option<(Conn, Instant)>,
    window: Window,
    encoder: WindowEncoder,
    buf: Vec<u8>,
    write_bytes: Counter,
    read_errors: Counter,
}

impl LumberjackClient {
    /// A client for `host` (it connects on the first send).
    pub fn new(host: Host, settings: Arc<Settings>, metrics: &Registry) -> Self {
        let window = Window::new(settings.slow_start, settings.bulk_max_size);
        LumberjackClient {
            encoder: WindowEncoder::new(settings.compression_level),
            host,
            settings,
            conn: None,
            window,
            buf: Vec::new(),
            write_bytes: metrics.counter(&names::OUTPUT_WRITE_BYTES),
            read_errors: metrics.counter(&names::OUTPUT_READ_ERRORS),
        }
    }

    /// The current window size (for tests and status).
    pub fn window_size(&self) -> usize {
        self.window.get()
    }

    /// Sends `events` in windows over the open connection; returns how many events (a prefix)
    /// the server acknowledged, and the error that stopped it, if any.
    async fn transfer(&mut self, events: &[Event]) -> (usize, Result<(), LogstashError>) {
        let Some((conn, _)) = self.conn.as_mut() else {
            return (0, Err(LogstashError::Connect("not connected".into())));
        };
        let s = &*self.settings;
        let chunks: Vec<&[Event]> = events
            .chunks(window_for(events.len(), self.window.get(), s))
            .collect();
        let acked = AtomicUsize::new(0);
        let permits = Semaphore::new(s.pipelining.max(1));
        let (written_tx, written_rx) = watch::channel(0usize);
        let (mut rd, mut wr) = tokio::io::split(conn);
        let addr = self.host.addr();
        let (buf, encoder, write_bytes) = (&mut self.buf, &mut self.encoder, &self.write_bytes);

        let writer = async {
            for (k, chunk) in chunks.iter().enumerate() {
                permits
                    .acquire()
                    .await
                    .map_err(|_| LogstashError::Internal("window accounting closed".into()))?
                    .forget();
                buf.clear();
                encoder.encode(buf, chunk.len() as u32, |i, out| {
                    encode_event(&chunk[i], out, s.escape_html, s.index.as_deref())
                });
                let write = async {
                    wr.write_all(buf).await?;
                    wr.flush().await
                };
                match tokio::time::timeout(s.timeout, write).await {
                    Err(_) => {
                        return Err(LogstashError::Timeout(format!(
                            "writing {} bytes to {addr} timed out after {:?}: the server stopped reading (overloaded Logstash, or a network problem)",
                            buf.len(),
                            s.timeout
                        )));
                    }
                    Ok(Err(e)) => {
                        return Err(LogstashError::io(
                            &e,
                            format!(
                                "writing to {addr} failed: {}",
                                skiff_tls::explain(&e, &addr)
                            ),
                        ));
                    }
                    Ok(Ok(())) => {}
                }
                write_bytes.add(buf.len() as u64);
                written_tx.send_replace(k + 1);
            }
            // Release big buffers after an unusual batch.
            if buf.capacity() > 32 << 20 {
                *buf = Vec::new();
            }
            Ok::<(), LogstashError>(())
        };

        let reader = async {
            let mut written_rx = written_rx;
            for (k, chunk) in chunks.iter().enumerate() {
                // The ACK deadline runs from the moment the window is on the wire.
                if written_rx.wait_for(|w| *w > k).await.is_err() {
                    return Err(LogstashError::Internal("window was not written".into()));
                }
                let n = chunk.len() as u32;
                let mut got = 0u32;
                while got < n {
                    let seq = read_ack(&mut rd, s.timeout, &addr, got, n).await?;
                    let next = ack_step(got, n, seq)
                        .map_err(|e| LogstashError::Protocol(format!("{addr} {e}")))?;
                    acked.fetch_add((next - got) as usize, Ordering::Relaxed);
                    got = next;
                }
                permits.add_permits(1);
            }
            Ok::<(), LogstashError>(())
        };

        let res = tokio::try_join!(writer, reader).map(|_| ());
        (acked.load(Ordering::Relaxed), res)
    }
}

/// The window size for a batch of `n` events: the (slow-start) window, and with `pipelining`
/// of 2 or more a large batch is cut into that many windows, so that the server works on the
/// first while the next is encoded and sent.
fn window_for(n: usize, window: usize, s: &Settings) -> usize {
    let mut w = window.max(1);
    if s.pipelining >= 2 && n >= 512 {
        w = w.min(n.div_ceil(s.pipelining));
    }
    w
}

/// Where an ACK of sequence `seq` leaves a window of `n` events of which `got` were
/// acknowledged: the new count, or why the ACK breaks the protocol.
///
/// A window's events are numbered 1..=n and the server acknowledges the highest one it has
/// taken. `0` and a repeat of the last sequence are keep-alives (Logstash sends them while its
/// pipeline is busy). Anything beyond `n` acknowledges events never sent; anything between 1
/// and `got - 1` takes back what was acknowledged: either is a server that cannot be trusted
/// with this window, which is then sent again in full on a new connection.
pub fn ack_step(got: u32, n: u32, seq: u32) -> Result<u32, String> {
    if seq > n {
        Err(format!(
            "acknowledged sequence {seq} of a window of {n} events (ACK beyond what was sent): not a lumberjack v2 server, or a broken one"
        ))
    } else if seq == 0 || seq == got {
        Ok(got)
    } else if seq < got {
        Err(format!(
            "acknowledged sequence {seq} after {got} in a window of {n} events (ACK going backwards)"
        ))
    } else {
        Ok(seq)
    }
}

/// Reads one ACK frame within `timeout`.
async fn read_ack<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    timeout: std::time::Duration,
    addr: &str,
    got: u32,
    n: u32,
) -> Result<u32, LogstashError> {
    let mut f = [0u8; ACK_LEN];
    match tokio::time::timeout(timeout, rd.read_exact(&mut f)).await {
        Err(_) => Err(LogstashError::Timeout(format!(
            "no ACK from {addr} within {timeout:?} ({got} of {n} events acknowledged): Logstash is overloaded or its pipeline is blocked; check its log, or raise output.logstash.timeout"
        ))),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(LogstashError::Connect(format!(
                "{addr} closed the connection after acknowledging {got} of {n} events: the server was stopped, restarted or refused the data (see its log)"
            )))
        }
        Ok(Err(e)) => Err(LogstashError::io(
            &e,
            format!(
                "reading the ACK from {addr} failed ({got} of {n} events acknowledged): {}",
                skiff_tls::explain(&e, addr)
            ),
        )),
        Ok(Ok(_)) => protocol::parse_ack(&f).map_err(|e| {
            LogstashError::Protocol(format!(
                "unexpected reply from {addr} where an ACK was due: {e}"
            ))
        }),
    }
}

/// Appends one event's JSON payload (with `@metadata`, as Beats send it to Logstash).
pub fn encode_event(ev: &Event, out: &mut Vec<u8>, escape_html: bool, index: Option<&str>) {
    let start = out.len();
    match index {
        None => skiff_event::json::encode(ev, out, true),
        Some(ix) => {
            let mut e = ev.clone_without_ack();
            e.meta.insert("beat".into(), Value::from(ix));
            skiff_event::json::encode(&e, out, true);
        }
    }
    if escape_html {
        escape_html_from(out, start);
    }
}

/// Rewrites `<`, `>` and `&` after `start` as `\u003c`, `\u003e`, `\u0026` (as Go's encoder
/// does with SetEscapeHTML(true)). These bytes only occur inside JSON strings, so a byte-level
/// rewrite keeps the document valid.
fn escape_html_from(out: &mut Vec<u8>, start: usize) {
    if !out[start..].iter().any(|b| matches!(b, b'<' | b'>' | b'&')) {
        return;
    }
    let tail = out.split_off(start);
    for b in tail {
        match b {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            b => out.push(b),
        }
    }
}

#[async_trait]
impl Output for LumberjackClient {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, Failure> {
        if events.is_empty() {
            return Ok(Outcome::delivered());
        }
        let ttl = self.settings.ttl;
        if !ttl.is_zero()
            && let Some((_, opened)) = &self.conn
            && opened.elapsed() >= ttl
        {
            tracing::debug!(output = %self.describe(), "connection ttl reached; reconnecting");
            self.conn = None;
        }
        if self.conn.is_none() {
            let c = connect::connect(
                &self.host,
                self.settings.tls.as_ref(),
                self.settings.timeout,
            )
            .await
            .map_err(|e| {
                // `connect` says "TLS handshake" in every TLS failure it reports.
                let msg = format!("{e:#}");
                if msg.contains("TLS") {
                    LogstashError::Tls(msg)
                } else {
                    LogstashError::Connect(msg)
                }
            })?;
            tracing::info!(output = %self.describe(), "connected to logstash");
            self.conn = Some((c, Instant::now()));
        }
        let (acked, res) = self.transfer(events).await;
        match res {
            Ok(()) => {
                self.window.grow(events.len());
                Ok(Outcome::delivered())
            }
            Err(e) => {
                // The stream's position is unknown after an error: never reuse it.
                self.conn = None;
                self.read_errors.inc();
                self.window.shrink();
                // A server that broke the protocol is trusted for nothing in this batch, not
                // even the ACKs it sent before: the whole batch is sent again.
                if acked == 0 || matches!(e, LogstashError::Protocol(_)) {
                    return Err(e.into());
                }
                tracing::warn!(output = %self.describe(), acked, resend = events.len() - acked, kind = %e.kind(), error = %e, "connection lost after a partial ACK; resending the rest");
                Ok(Outcome {
                    retry: (acked..events.len()).collect(),
                    rejected: Vec::new(),
                })
            }
        }
    }

    fn describe(&self) -> String {
        format!("logstash({})", self.host.addr())
    }

    async fn reset(&mut self) {
        self.conn = None;
        self.buf = Vec::new();
        self.encoder = WindowEncoder::new(self.settings.compression_level);
    }

    async fn close(&mut self) {
        if let Some((mut c, _)) = self.conn.take() {
            let _ = c.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelining_cuts_large_batches_into_windows() {
        let s = |pipelining| Settings {
            timeout: std::time::Duration::from_secs(1),
            ttl: std::time::Duration::ZERO,
            compression_level: 3,
            pipelining,
            slow_start: false,
            bulk_max_size: 2048,
            escape_html: false,
            index: None,
            tls: None,
        };
        assert_eq!(window_for(2048, 2048, &s(2)), 1024);
        assert_eq!(window_for(2048, 2048, &s(3)), 683);
        assert_eq!(window_for(2048, 2048, &s(0)), 2048);
        assert_eq!(window_for(2048, 2048, &s(1)), 2048);
        assert_eq!(window_for(100, 2048, &s(2)), 2048);
        assert_eq!(window_for(2048, 10, &s(2)), 10);
    }

    #[test]
    fn acks_must_stay_inside_the_window_and_never_go_back() {
        assert_eq!(ack_step(0, 10, 4), Ok(4));
        assert_eq!(ack_step(4, 10, 0), Ok(4), "keep-alive");
        assert_eq!(ack_step(4, 10, 4), Ok(4), "repeat");
        assert_eq!(ack_step(4, 10, 10), Ok(10));
        assert!(ack_step(4, 10, 11).is_err(), "beyond the window");
        assert!(ack_step(4, 10, 3).is_err(), "backwards");
        assert!(ack_step(0, 10, u32::MAX).is_err());
    }

    proptest::proptest! {
        /// Whatever sequence of ACKs a server sends, the count only grows, never passes the
        /// window, and only moves to a sequence the server named.
        #[test]
        fn any_ack_sequence_keeps_the_count_inside_the_window(
            n in 1u32..50,
            seqs in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..20),
            small in proptest::collection::vec(0u32..60, 0..20),
        ) {
            for seqs in [seqs, small] {
                let mut got = 0;
                for seq in seqs {
                    match ack_step(got, n, seq) {
                        Ok(next) => {
                            proptest::prop_assert!(next >= got && next <= n);
                            proptest::prop_assert!(next == got || next == seq);
                            got = next;
                        }
                        Err(_) => {
                            proptest::prop_assert!(seq > n || (seq != 0 && seq < got));
                            break;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn html_escaping_keeps_json_valid() {
        let mut ev = Event::new(
            Arc::new(skiff_event::Map::new()),
            "<a href=\"x\">&</a>".into(),
        );
        ev.timestamp = skiff_event::Timestamp(0);
        let mut out = b"prefix".to_vec();
        encode_event(&ev, &mut out, true, Some("custom"));
        let s = std::str::from_utf8(&out[6..]).unwrap();
        assert!(
            s.contains(r#"\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e"#),
            "{s}"
        );
        let v: Value = serde_json::from_str(s).unwrap();
        assert_eq!(v["message"], "<a href=\"x\">&</a>");
        assert_eq!(v["@metadata"]["beat"], "custom");
    }
}
