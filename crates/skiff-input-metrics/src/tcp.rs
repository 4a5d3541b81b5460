//! Plain-text TCP commands (memcached's `stats`, ZooKeeper's four-letter words, HAProxy's
//! stats socket, also over a Unix socket): connect,
//! write the command, read the answer until the server closes or a terminator line, with a
//! size cap.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// The largest answer read.
pub const MAX_ANSWER: usize = 4 << 20;

/// Sends `command` to `addr` and returns the answer, read until the connection closes or the
/// answer ends with `until` (when given).
pub async fn command(addr: &str, command: &[u8], until: Option<&str>) -> Result<String, Error> {
    let s = TcpStream::connect(addr).await.map_err(|e| Error::Connect {
        what: addr.to_owned(),
        reason: e.to_string(),
    })?;
    exchange(s, addr, command, until).await
}

/// Writes `command` on a connected stream (TCP or Unix socket) and reads the answer until the
/// peer closes or the answer ends with `until`, at most [`MAX_ANSWER`] bytes. `what` names the
/// peer in errors.
pub async fn exchange<S>(
    mut s: S,
    what: &str,
    command: &[u8],
    until: Option<&str>,
) -> Result<String, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    s.write_all(command).await.map_err(|e| Error::Connect {
        what: what.to_owned(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).await.map_err(|e| Error::Connect {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
        if n == 0 {
            break;
        }
        if out.len() + n > MAX_ANSWER {
            return Err(Error::parse(what, "answer too large"));
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(end) = until
            && out.ends_with(end.as_bytes())
        {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `host:port` of a configured host (`tcp://` and other schemes removed).
pub fn addr(raw: &str) -> String {
    raw.split_once("://")
        .map_or(raw, |(_, rest)| rest)
        .trim_end_matches('/')
        .to_owned()
}
