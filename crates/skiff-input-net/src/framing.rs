//! Cutting a byte stream into messages: by a delimiter, or by RFC 6587 (octet counting, with
//! non-transparent framing as the fallback), as Filebeat's `framing` and `line_delimiter`.
//!
//! The bytes come from the network, so every message is bounded by `max_message_size` *before*
//! it is buffered: a delimiter not seen within that many bytes, or an octet count above it, is
//! an error and the caller closes the connection (Filebeat does the same: its scanner stops on
//! a token that is too long). The read buffer therefore never grows past
//! `max_message_size + delimiter + digits`.
//!
//! Hand-written rather than with `tokio_util::codec::LinesCodec`/`AnyDelimiterCodec`: those
//! take one-byte delimiters only and know no octet counting; this is forty lines of `memchr`.

use bytes::{Buf, Bytes, BytesMut};
use serde::Deserialize;

/// `framing`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FramingKind {
    /// Messages end with `line_delimiter` (the default).
    #[default]
    Delimiter,
    /// RFC 6587: `LEN SP MSG` (octet counting) when a message starts with a digit, otherwise
    /// ended by `line_delimiter` (non-transparent framing).
    Rfc6587,
}

/// Why a stream cannot be cut any further.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// A message longer than `max_message_size`.
    #[error(
        "a message is longer than max_message_size ({max} bytes): raise max_message_size, or check line_delimiter/framing"
    )]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// An octet count that is not a number followed by a space.
    #[error("bad RFC 6587 octet count (expected digits and a space, as `123 <msg>`)")]
    BadCount,
}

/// Cuts messages out of a growing buffer.
#[derive(Clone, Debug)]
pub struct Framer {
    kind: FramingKind,
    delimiter: Vec<u8>,
    max: usize,
    /// With `\n` as delimiter a `\r` before it is part of the line end (`bufio.ScanLines`).
    strip_cr: bool,
}

/// Digits an octet count may have (a count of 10 digits is already 10 GB).
const MAX_DIGITS: usize = 10;

impl Framer {
    /// A framer. `delimiter` must not be empty; `max` is at least 1.
    pub fn new(kind: FramingKind, delimiter: &[u8], max: usize) -> Framer {
        let delimiter = if delimiter.is_empty() {
            b"\n".to_vec()
        } else {
            delimiter.to_vec()
        };
        Framer {
            kind,
            strip_cr: delimiter == b"\n",
            delimiter,
            max: max.max(1),
        }
    }

    /// The largest message.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes the next whole message out of `buf`; `None` when more bytes are needed. Empty
    /// messages (two delimiters in a row) are skipped.
    pub fn next(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            let msg = if self.kind == FramingKind::Rfc6587
                && buf.first().is_some_and(u8::is_ascii_digit)
            {
                self.counted(buf)?
            } else {
                self.delimited(buf)?
            };
            match msg {
                Some(m) if m.is_empty() => continue,
                other => return Ok(other),
            }
        }
    }

    /// What is left at the end of the stream: a last delimited message without its delimiter
    /// (Filebeat publishes it too). A partial octet-counted frame is not a message.
    pub fn rest(&self, buf: &mut BytesMut) -> Option<Bytes> {
        if buf.is_empty()
            || (self.kind == FramingKind::Rfc6587 && buf.first().is_some_and(u8::is_ascii_digit))
        {
            buf.clear();
            return None;
        }
        let mut m = buf.split().freeze();
        if self.strip_cr && m.last() == Some(&b'\r') {
            m.truncate(m.len() - 1);
        }
        (!m.is_empty() && m.len() <= self.max).then_some(m)
    }

    fn delimited(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let d = &self.delimiter;
        let found = if d.len() == 1 {
            memchr::memchr(d[0], buf)
        } else {
            memchr::memmem::find(buf, d)
        };
        match found {
            Some(at) => {
                let mut m = buf.split_to(at).freeze();
                buf.advance(d.len());
                if self.strip_cr && m.last() == Some(&b'\r') {
                    m.truncate(m.len() - 1);
                }
                if m.len() > self.max {
                    return Err(FrameError::TooLarge { max: self.max });
                }
                Ok(Some(m))
            }
            // `max + 1` bytes without a delimiter (one more for a `\r`): no message can fit.
            None if buf.len() > self.max + d.len() + usize::from(self.strip_cr) => {
                Err(FrameError::TooLarge { max: self.max })
            }
            None => Ok(None),
        }
    }

    fn counted(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(space) = buf.iter().take(MAX_DIGITS + 1).position(|b| *b == b' ') else {
            if buf.len() > MAX_DIGITS || buf.iter().any(|b| !b.is_ascii_digit()) {
                return Err(FrameError::BadCount);
            }
            return Ok(None);
        };
        let digits = &buf[..space];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BadCount);
        }
        let len = digits
            .iter()
            .try_fold(0usize, |n, d| {
                n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
            })
            .ok_or(FrameError::TooLarge { max: self.max })?;
        if len > self.max {
            return Err(FrameError::TooLarge { max: self.max });
        }
        if buf.len() < space + 1 + len {
            return Ok(None);
        }
        buf.advance(space + 1);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(f: &Framer, input: &[u8]) -> Result<Vec<String>, FrameError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(m) = f.next(&mut buf)? {
            out.push(String::from_utf8_lossy(&m).into_owned());
        }
        if let Some(m) = f.rest(&mut buf) {
            out.push(String::from_utf8_lossy(&m).into_owned());
        }
        Ok(out)
    }

    #[test]
    fn lines_with_crlf_and_a_last_line_without_newline() {
        let f = Framer::new(FramingKind::Delimiter, b"\n", 100);
        assert_eq!(all(&f, b"a\r\nb\n\nc").unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn multi_byte_delimiter_is_exact() {
        let f = Framer::new(FramingKind::Delimiter, b"||", 100);
        assert_eq!(all(&f, b"a|b||c\r||d").unwrap(), ["a|b", "c\r", "d"]);
    }

    #[test]
    fn octet_counting_and_non_transparent_mixed() {
        let f = Framer::new(FramingKind::Rfc6587, b"\n", 100);
        assert_eq!(
            all(&f, b"5 ab\ncd11 hello\nworld<13>plain\n").unwrap(),
            ["ab\ncd", "hello\nworld", "<13>plain"]
        );
    }

    #[test]
    fn a_partial_count_waits_for_more() {
        let f = Framer::new(FramingKind::Rfc6587, b"\n", 100);
        let mut buf = BytesMut::from(&b"12"[..]);
        assert_eq!(f.next(&mut buf), Ok(None));
        buf.extend_from_slice(b" hello");
        assert_eq!(f.next(&mut buf), Ok(None));
        buf.extend_from_slice(b" world!");
        assert_eq!(f.next(&mut buf).unwrap().unwrap(), &b"hello world!"[..]);
        // A partial frame at the end of the stream is not a message.
        let mut buf = BytesMut::from(&b"9 abc"[..]);
        assert_eq!(f.next(&mut buf), Ok(None));
        assert_eq!(f.rest(&mut buf), None);
    }

    #[test]
    fn limits() {
        let f = Framer::new(FramingKind::Delimiter, b"\n", 4);
        assert_eq!(all(&f, b"abcd\n").unwrap(), ["abcd"]);
        assert_eq!(all(&f, b"abcde\n"), Err(FrameError::TooLarge { max: 4 }));
        // Without a delimiter in sight the error comes before the buffer grows further.
        let mut buf = BytesMut::from(&b"abcdefg"[..]);
        assert_eq!(f.next(&mut buf), Err(FrameError::TooLarge { max: 4 }));
        let f = Framer::new(FramingKind::Rfc6587, b"\n", 4);
        assert_eq!(all(&f, b"5 abcde"), Err(FrameError::TooLarge { max: 4 }));
        assert_eq!(
            all(&f, b"99999999999999999999 x"),
            Err(FrameError::BadCount)
        );
        assert_eq!(all(&f, b"12x4 abcd"), Err(FrameError::BadCount));
    }
}
