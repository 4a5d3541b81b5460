//! One Lumberjack connection to one host: sends a batch as one or more windows and reads the
//! ACKs, reporting exactly how far the server got.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use async_trait::async_trait;
use skiff_event::{Event, Value};
use skiff_metrics::{Counter, Registry, names};
use skiff_pipeline::{Outcome, Output};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

use crate::connect::{self, Conn};
use crate::output::config::Host;
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
    async fn transfer(&mut self, events: &[Event]) -> (usize, anyhow::Result<()>) {
        let Some((conn, _)) = self.conn.as_mut() else {
            return (0, Err(anyhow::anyhow!("not connected")));
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
                    .map_err(|_| anyhow::anyhow!("window accounting closed"))?
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
                    Err(_) => anyhow::bail!(
                        "writing {} bytes to {addr} timed out after {:?}: the server stopped reading (overloaded Logstash, or a network problem)",
                        buf.len(),
                        s.timeout
                    ),
                    Ok(Err(e)) => anyhow::bail!(
                        "writing to {addr} failed: {}",
                        skiff_tls::explain(&e, &addr)
                    ),
                    Ok(Ok(())) => {}
                }
                write_bytes.add(buf.len() as u64);
                written_tx.send_replace(k + 1);
            }
            // Release big buffers after an unusual batch.
            if buf.capacity() > 32 << 20 {
                *buf = Vec::new();
            }
            anyhow::Ok(())
        };

        let reader = async {
            let mut written_rx = written_rx;
            for (k, chunk) in chunks.iter().enumerate() {
                // The ACK deadline runs from the moment the window is on the wire.
                if written_rx.wait_for(|w| *w > k).await.is_err() {
                    anyhow::bail!("window was not written");
                }
                let n = chunk.len() as u32;
                let mut got = 0u32;
                while got < n {
                    let seq = read_ack(&mut rd, s.timeout, &addr, got, n).await?;
                    if seq > n {
                        anyhow::bail!(
                            "{addr} acknowledged sequence {seq} of a window of {n} events: not a lumberjack v2 server, or a broken one"
                        );
                    }
                    if seq > got {
                        acked.fetch_add((seq - got) as usize, Ordering::Relaxed);
                        got = seq;
                    }
                    // seq <= got: a keep-alive (Logstash repeats ACKs while it is busy).
                }
                permits.add_permits(1);
            }
            anyhow::Ok(())
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

/// Reads one ACK frame within `timeout`.
async fn read_ack<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    timeout: std::time::Duration,
    addr: &str,
    got: u32,
    n: u32,
) -> anyhow::Result<u32> {
    let mut f = [0u8; ACK_LEN];
    match tokio::time::timeout(timeout, rd.read_exact(&mut f)).await {
        Err(_) => anyhow::bail!(
            "no ACK from {addr} within {timeout:?} ({got} of {n} events acknowledged): Logstash is overloaded or its pipeline is blocked; check its log, or raise output.logstash.timeout"
        ),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => anyhow::bail!(
            "{addr} closed the connection after acknowledging {got} of {n} events: the server was stopped, restarted or refused the data (see its log)"
        ),
        Ok(Err(e)) => anyhow::bail!(
            "reading the ACK from {addr} failed ({got} of {n} events acknowledged): {}",
            skiff_tls::explain(&e, addr)
        ),
        Ok(Ok(_)) => protocol::parse_ack(&f)
            .with_context(|| format!("unexpected reply from {addr} where an ACK was due")),
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
    async fn send(&mut self, events: &[Event]) -> anyhow::Result<Outcome> {
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
            .await?;
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
                if acked == 0 {
                    return Err(e);
                }
                tracing::warn!(output = %self.describe(), acked, resend = events.len() - acked, error = %format!("{e:#}"), "connection lost after a partial ACK; resending the rest");
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
