//! RESP2, the Redis wire protocol: commands out, replies in, over any byte stream.
//!
//! Only what the output (and its tests) need: a command is an array of bulk strings; a reply is
//! a simple string, an error, an integer, a bulk string or an array. Commands are written into
//! one buffer and sent together (pipelining), then their replies are read in order.
//!
//! Replies come from the network, so reading is bounded and never panics: a bulk string larger
//! than [`MAX_BULK`], an array longer than [`MAX_ARRAY`] or nested deeper than [`MAX_DEPTH`], a
//! negative length other than RESP's nil (`-1`), a line that is not RESP at all (binary garbage,
//! an HTTP answer, a multi-byte character where the type byte belongs) is a protocol error
//! rather than an allocation the server chooses. Memory grows only with bytes that actually
//! arrive: a bulk string is read as it comes, never allocated from its announced length.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// The largest bulk reply accepted (the output itself only reads short replies).
pub const MAX_BULK: usize = 16 << 20;
/// The most elements accepted in one array reply.
pub const MAX_ARRAY: usize = 1 << 20;
/// The deepest nesting of arrays accepted (the output's replies are never nested).
pub const MAX_DEPTH: usize = 8;
/// The longest status line (`+OK`, `-ERR ...`, `:12`) accepted.
const MAX_LINE: usize = 64 << 10;

/// A byte stream a connection can run over: TCP now, TLS later.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A reply from the server.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR ...`: the server refused the command.
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$n` bytes, or nil (`$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*n` replies, or nil (`*-1`).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, for messages.
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) | Reply::Error(s) => s.clone(),
            Reply::Int(n) => n.to_string(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Bulk(None) | Reply::Array(None) => "(nil)".into(),
            Reply::Array(Some(items)) => {
                let parts: Vec<String> = items.iter().map(Reply::text).collect();
                format!("[{}]", parts.join(", "))
            }
        }
    }
}

/// Appends the header of a command with `args` arguments: `*N\r\n`.
pub fn command_header(out: &mut Vec<u8>, args: usize) {
    out.push(b'*');
    out.extend_from_slice(args.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends one argument as a bulk string: `$len\r\nbytes\r\n`.
pub fn arg(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends a whole command.
pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    command_header(out, args.len());
    for a in args {
        arg(out, a);
    }
}

/// One connection: a buffered reader over the stream, writes go straight through.
pub struct Conn {
    io: BufReader<Box<dyn Io>>,
}

impl Conn {
    /// Wraps a connected stream.
    pub fn new(io: Box<dyn Io>) -> Conn {
        Conn {
            io: BufReader::with_capacity(16 << 10, io),
        }
    }

    /// Writes `buf` (one or many encoded commands) and flushes.
    pub async fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        let w = self.io.get_mut();
        w.write_all(buf).await?;
        w.flush().await
    }

    /// Sends one command and reads its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut buf = Vec::new();
        command(&mut buf, args);
        self.write(&buf).await?;
        self.read().await
    }

    /// Whether the server sent something nobody asked for (or closed the connection) while
    /// no command was outstanding. Checked before each batch: replies left over from an earlier
    /// exchange must never be taken for this batch's.
    pub fn unsolicited(&mut self) -> Option<String> {
        if !self.io.buffer().is_empty() {
            return Some(format!("{} bytes nobody asked for", self.io.buffer().len()));
        }
        match futures_util::FutureExt::now_or_never(self.io.fill_buf()) {
            None => None,
            Some(Ok([])) => Some("the server closed the connection".into()),
            Some(Ok(b)) => Some(format!("{} bytes nobody asked for", b.len())),
            Some(Err(e)) => Some(e.to_string()),
        }
    }

    /// Reads one reply.
    pub async fn read(&mut self) -> io::Result<Reply> {
        // Arrays nest; keep a stack instead of recursing on server-controlled depth.
        let mut stack: Vec<(usize, Vec<Reply>)> = Vec::new();
        loop {
            let mut r = match self.read_one().await? {
                Partial::Array(n) if n > 0 => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(bad(&format!("arrays nested deeper than {MAX_DEPTH}")));
                    }
                    stack.push((n, Vec::new()));
                    continue;
                }
                Partial::Array(_) => Reply::Array(Some(Vec::new())),
                Partial::Done(r) => r,
            };
            loop {
                match stack.last_mut() {
                    None => return Ok(r),
                    Some((n, items)) => {
                        items.push(r);
                        if items.len() < *n {
                            break;
                        }
                    }
                }
                let Some((_, items)) = stack.pop() else {
                    return Err(bad("array stack underflow"));
                };
                r = Reply::Array(Some(items));
            }
        }
    }

    async fn read_one(&mut self) -> io::Result<Partial> {
        let line = self.line().await?;
        let Some((&kind, rest)) = line.split_first() else {
            return Err(bad("empty reply line"));
        };
        let text = || String::from_utf8_lossy(rest).into_owned();
        // A length or an integer: ASCII digits with an optional sign, nothing else.
        let int = || -> io::Result<i64> {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| bad(&format!("bad number in reply line {:?}", shown(&line))))
        };
        // RESP2's only negative length is nil (-1).
        let len = |n: i64, max: usize, what: &str| -> io::Result<Option<usize>> {
            match n {
                -1 => Ok(None),
                n if n < 0 => Err(bad(&format!("{what} of negative length {n}"))),
                n => match usize::try_from(n) {
                    Ok(n) if n <= max => Ok(Some(n)),
                    _ => Err(bad(&format!("{what} of {n} exceeds {max}"))),
                },
            }
        };
        Ok(match kind {
            b'+' => Partial::Done(Reply::Status(text())),
            b'-' => Partial::Done(Reply::Error(text())),
            b':' => Partial::Done(Reply::Int(int()?)),
            b'$' => {
                let Some(n) = len(int()?, MAX_BULK, "bulk reply")? else {
                    return Ok(Partial::Done(Reply::Bulk(None)));
                };
                // Read what arrives rather than allocate what the header announces.
                let mut data = Vec::new();
                let want = n as u64 + 2;
                (&mut self.io).take(want).read_to_end(&mut data).await?;
                if data.len() as u64 != want {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection in the middle of a bulk reply",
                    ));
                }
                if !data.ends_with(b"\r\n") {
                    return Err(bad("bulk reply not terminated by CRLF"));
                }
                data.truncate(n);
                Partial::Done(Reply::Bulk(Some(data)))
            }
            b'*' => match len(int()?, MAX_ARRAY, "array reply")? {
                None => Partial::Done(Reply::Array(None)),
                Some(n) => Partial::Array(n),
            },
            _ => {
                return Err(bad(&format!(
                    "unexpected reply {:?}: is this a Redis server?",
                    shown(&line)
                )));
            }
        })
    }

    /// Reads a CRLF-terminated line, bounded by [`MAX_LINE`].
    async fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        loop {
            let avail = self.io.fill_buf().await?;
            if avail.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            if let Some(i) = memchr(b'\n', avail) {
                buf.extend_from_slice(&avail[..=i]);
                self.io.consume(i + 1);
                break;
            }
            let n = avail.len();
            buf.extend_from_slice(avail);
            self.io.consume(n);
            if buf.len() > MAX_LINE {
                return Err(bad("reply line too long"));
            }
        }
        if !buf.ends_with(b"\r\n") || buf.len() < 3 {
            return Err(bad(&format!("malformed reply line {:?}", shown(&buf))));
        }
        buf.truncate(buf.len() - 2);
        Ok(buf)
    }
}

enum Partial {
    Done(Reply),
    Array(usize),
}

/// The start of a reply line as text for messages (at most 60 characters, lossy).
fn shown(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(&line[..line.len().min(60)]);
    s.into_owned()
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("redis protocol error: {msg}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &'static [u8]) -> io::Result<Reply> {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        b.write_all(bytes).await?;
        drop(b);
        Conn::new(Box::new(a)).read().await
    }

    #[tokio::test]
    async fn replies() {
        assert_eq!(parse(b"+OK\r\n").await.unwrap(), Reply::Status("OK".into()));
        assert_eq!(parse(b":12\r\n").await.unwrap(), Reply::Int(12));
        assert_eq!(
            parse(b"-WRONGTYPE x\r\n").await.unwrap(),
            Reply::Error("WRONGTYPE x".into())
        );
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n").await.unwrap(),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"a".to_vec())),
                Reply::Array(Some(vec![Reply::Int(1)]))
            ]))
        );
        assert_eq!(parse(b"*0\r\n").await.unwrap(), Reply::Array(Some(vec![])));
    }

    #[tokio::test]
    async fn hostile_replies_are_errors() {
        assert!(parse(b"$99999999999\r\n").await.is_err());
        assert!(parse(b"*99999999999\r\n").await.is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\n").await.is_err());
        assert!(parse(b"$3\r\nab").await.is_err());
        assert!(parse(b"").await.is_err());
    }

    /// Regression: a reply line starting with a multi-byte character panicked in `split_at(1)`.
    #[tokio::test]
    async fn a_multibyte_first_character_is_an_error_not_a_panic() {
        assert!(parse("é not redis\r\n".as_bytes()).await.is_err());
        assert!(parse(b"\xff\xfe\r\n").await.is_err());
        assert!(parse("+é\r\n".as_bytes()).await.is_ok());
    }

    /// Regression: `*-7` was taken for a nil array (and then for a delivered batch).
    #[tokio::test]
    async fn negative_lengths_other_than_nil_are_errors() {
        assert!(parse(b"*-7\r\n").await.is_err());
        assert!(parse(b"$-2\r\n").await.is_err());
        assert_eq!(parse(b"*-1\r\n").await.unwrap(), Reply::Array(None));
    }

    #[tokio::test]
    async fn deep_nesting_is_refused() {
        assert!(
            parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n")
                .await
                .is_err()
        );
    }

    #[test]
    fn encodes_commands() {
        let mut b = Vec::new();
        command(&mut b, &[b"RPUSH", b"k", b"v1"]);
        assert_eq!(b, b"*3\r\n$5\r\nRPUSH\r\n$1\r\nk\r\n$2\r\nv1\r\n");
    }
}
