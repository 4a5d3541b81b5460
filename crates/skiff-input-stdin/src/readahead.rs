//! Standard input read ahead by a thread of its own.
//!
//! `tokio::io::stdin` reads on the blocking pool one request at a time: while the input task cuts
//! lines out of one buffer, nothing is read, and each read waits for a thread hand-off. Here a
//! dedicated thread keeps reading into chunks and queues up to [`AHEAD`] of them, so reading
//! and line cutting overlap. Memory stays bounded: at most `AHEAD + 2` chunks of [`CHUNK`]
//! bytes exist at once (queued, being read, being cut).
//!
//! A chunk is sent as soon as one `read` returns data (a pipe gives at most 64 KiB at a time),
//! so lines typed interactively or trickling from `tail -F` are not held back waiting for a
//! full chunk.

use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// Bytes per read.
pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks queued ahead of the reader.
pub(crate) const AHEAD: usize = 2;

/// An [`AsyncBufRead`] over chunks read by a background thread.
pub(crate) struct ReadAhead {
    rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl ReadAhead {
    /// Starts a thread reading `source` until it ends (or fails, or the reader is dropped).
    pub(crate) fn spawn<R: Read + Send + 'static>(mut source: R) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(AHEAD);
        std::thread::Builder::new()
            .name("skiff-stdin".into())
            .spawn(move || {
                loop {
                    let mut buf = vec![0u8; CHUNK];
                    let r = loop {
                        match source.read(&mut buf) {
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            r => break r,
                        }
                    };
                    let msg = match r {
                        Ok(0) => return,
                        Ok(n) => {
                            buf.truncate(n);
                            Ok(buf)
                        }
                        Err(e) => Err(e),
                    };
                    let failed = msg.is_err();
                    if tx.blocking_send(msg).is_err() || failed {
                        return;
                    }
                }
            })?;
        Ok(ReadAhead {
            rx,
            cur: Vec::new(),
            pos: 0,
            done: false,
        })
    }
}

impl AsyncRead for ReadAhead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = match self.as_mut().poll_fill_buf(cx) {
            Poll::Ready(Ok(b)) => {
                let n = b.len().min(out.remaining());
                out.put_slice(&b[..n]);
                n
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for ReadAhead {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.pos >= this.cur.len() && !this.done {
            match this.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    this.cur = chunk;
                    this.pos = 0;
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    this.cur = Vec::new();
                    this.pos = 0;
                }
            }
        }
        Poll::Ready(Ok(&this.cur[this.pos..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amt).min(this.cur.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn delivers_everything_in_order_across_chunks() {
        let data: Vec<u8> = (0..(CHUNK * 3 + 123)).map(|i| (i % 251) as u8).collect();
        let mut r = ReadAhead::spawn(std::io::Cursor::new(data.clone())).unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn read_errors_surface() {
        struct Fails;
        impl Read for Fails {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let mut r = ReadAhead::spawn(Fails).unwrap();
        let mut got = Vec::new();
        let e = r.read_to_end(&mut got).await.unwrap_err();
        assert!(e.to_string().contains("disk on fire"));
    }
}
