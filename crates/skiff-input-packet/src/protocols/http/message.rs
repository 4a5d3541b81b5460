//! One direction of an HTTP connection: message heads (httparse) and body framing.

use skiff_event::Timestamp;

use super::HttpConfig;
use crate::protocol::StreamBuf;

/// One HTTP message.
#[derive(Debug, Default, Clone)]
pub struct Message {
    /// When its first byte was captured.
    pub ts: Timestamp,
    /// When it was processed (the analyzer's clock, for timeouts).
    pub clock: Timestamp,
    /// Request (true) or response.
    pub is_request: bool,
    /// Request method.
    pub method: String,
    /// Request target as written.
    pub uri: String,
    /// `1.1`, `1.0`.
    pub version: String,
    /// Response status.
    pub status_code: u16,
    /// Response phrase as written.
    pub phrase: String,
    /// Headers: lower-cased names, values as written, in order.
    pub headers: Vec<(String, String)>,
    /// The head as it was sent (for `send_request`/`send_response`).
    pub head: Vec<u8>,
    /// The body as stored (de-chunked), up to the size limit.
    pub body: Vec<u8>,
    /// Whether the body is stored at all.
    pub store_body: bool,
    /// Body bytes seen (de-chunked).
    pub body_len: u64,
    /// Bytes on the wire (head + body).
    pub size: u64,
    /// Notes (`error.message`).
    pub notes: Vec<String>,
}

impl Message {
    /// The first value of a header (lower-case name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The memory it holds.
    pub fn held_bytes(&self) -> usize {
        self.head.capacity() + self.body.capacity() + 256
    }
}

#[derive(Debug)]
enum Body {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailer,
    UntilClose,
}

/// What a parse call achieved.
pub enum Progress {
    /// A whole message.
    Done(Box<Message>),
    /// Needs more bytes.
    More,
    /// Not HTTP: the direction's bytes are dropped.
    Invalid,
}

/// The parser of one direction.
#[derive(Default)]
pub struct Parser {
    cur: Option<(Message, Body)>,
}

/// The most headers read per message.
const MAX_HEADERS: usize = 128;

fn content_type_matches(ct: Option<&str>, list: &[String]) -> bool {
    let Some(ct) = ct else { return false };
    let ct = ct.to_ascii_lowercase();
    list.iter().any(|l| ct.contains(l.as_str()))
}

impl Parser {
    /// Memory held by the message being read.
    pub fn held_bytes(&self) -> usize {
        self.cur.as_ref().map_or(0, |(m, _)| m.held_bytes())
    }

    /// Parses from `buf` until one message is complete or more bytes are needed.
    pub fn parse(
        &mut self,
        cfg: &HttpConfig,
        now: Timestamp,
        clock: Timestamp,
        buf: &mut StreamBuf,
    ) -> Progress {
        if self.cur.is_none() {
            match head(cfg, now, buf) {
                Ok(Some((mut m, b))) => {
                    m.clock = clock;
                    self.cur = Some((m, b));
                }
                Ok(None) => return Progress::More,
                Err(()) => return Progress::Invalid,
            }
        }
        let max = cfg.max_message_size;
        loop {
            let Some((msg, body)) = self.cur.as_mut() else {
                return Progress::More;
            };
            match body {
                Body::Length(0) => break,
                Body::Length(rem) | Body::ChunkData(rem) => {
                    if buf.is_empty() {
                        return Progress::More;
                    }
                    let n = (*rem).min(buf.len() as u64) as usize;
                    take_body(msg, &buf.data()[..n], max);
                    buf.consume(n);
                    *rem -= n as u64;
                    if *rem == 0 && matches!(body, Body::ChunkData(_)) {
                        *body = Body::ChunkEnd;
                    }
                }
                Body::UntilClose => {
                    let n = buf.len();
                    take_body(msg, buf.data(), max);
                    buf.consume(n);
                    return Progress::More;
                }
                Body::ChunkEnd => {
                    if buf.len() < 2 {
                        return Progress::More;
                    }
                    let crlf = buf.data().starts_with(b"\r\n");
                    let n = if crlf {
                        2
                    } else {
                        usize::from(buf.data()[0] == b'\n')
                    };
                    msg.size += n as u64;
                    buf.consume(n);
                    *body = Body::ChunkSize;
                }
                Body::ChunkSize | Body::Trailer => {
                    let data = buf.data();
                    let Some(nl) = memchr(b'\n', data) else {
                        if data.len() > 1024 {
                            return Progress::Invalid;
                        }
                        return Progress::More;
                    };
                    let line = String::from_utf8_lossy(&data[..nl]).trim().to_owned();
                    msg.size += nl as u64 + 1;
                    buf.consume(nl + 1);
                    if matches!(body, Body::Trailer) {
                        if line.is_empty() {
                            break;
                        }
                        continue;
                    }
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let Ok(n) = u64::from_str_radix(hex, 16) else {
                        return Progress::Invalid;
                    };
                    *body = if n == 0 {
                        Body::Trailer
                    } else {
                        Body::ChunkData(n)
                    };
                }
            }
        }
        match self.cur.take() {
            Some((m, _)) => Progress::Done(Box::new(m)),
            None => Progress::More,
        }
    }

    /// Bytes of this direction were lost: absorbed inside a body of known length or one read
    /// until close (noted), else the message is lost.
    pub fn absorb_gap(&mut self, missing: u64, _buf: &mut StreamBuf) -> bool {
        let Some((msg, body)) = self.cur.as_mut() else {
            return false;
        };
        let what = if msg.is_request {
            "request"
        } else {
            "response"
        };
        match body {
            Body::Length(rem) | Body::ChunkData(rem) if *rem >= missing => {
                *rem -= missing;
            }
            Body::UntilClose => {}
            _ => {
                self.cur = None;
                return false;
            }
        }
        msg.body_len += missing;
        msg.size += missing;
        let note = format!("Packet loss while capturing the {what}");
        if !msg.notes.contains(&note) {
            msg.notes.push(note);
        }
        true
    }

    /// The direction closed: a body read until close is complete.
    pub fn finish(&mut self, _buf: &mut StreamBuf) -> Option<Message> {
        match self.cur.take() {
            Some((m, Body::UntilClose)) => Some(m),
            other => {
                self.cur = other;
                None
            }
        }
    }
}

fn memchr(b: u8, data: &[u8]) -> Option<usize> {
    data.iter().position(|x| *x == b)
}

fn take_body(msg: &mut Message, data: &[u8], max: usize) {
    msg.body_len += data.len() as u64;
    msg.size += data.len() as u64;
    if msg.store_body {
        let room = max.saturating_sub(msg.head.len() + msg.body.len());
        msg.body.extend_from_slice(&data[..data.len().min(room)]);
    }
}

/// Reads a message head. Ok(None): incomplete.
fn head(
    cfg: &HttpConfig,
    now: Timestamp,
    buf: &mut StreamBuf,
) -> Result<Option<(Message, Body)>, ()> {
    // Stray line ends between messages are skipped.
    let skip = buf
        .data()
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    buf.consume(skip);
    let data = buf.data();
    if data.is_empty() {
        return Ok(None);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut msg = Message {
        ts: now,
        ..Message::default()
    };
    let parsed = if data.starts_with(b"HTTP/") {
        let mut r = httparse::Response::new(&mut headers);
        match r.parse(data) {
            Ok(httparse::Status::Complete(n)) => {
                msg.status_code = r.code.unwrap_or(0);
                msg.phrase = r.reason.unwrap_or("").to_owned();
                msg.version = format!("1.{}", r.version.unwrap_or(1));
                Some((n, r.headers.to_vec()))
            }
            Ok(httparse::Status::Partial) => None,
            Err(_) => return Err(()),
        }
    } else {
        let mut r = httparse::Request::new(&mut headers);
        match r.parse(data) {
            Ok(httparse::Status::Complete(n)) => {
                msg.is_request = true;
                msg.method = r.method.unwrap_or("").to_owned();
                msg.uri = r.path.unwrap_or("").to_owned();
                msg.version = format!("1.{}", r.version.unwrap_or(1));
                Some((n, r.headers.to_vec()))
            }
            Ok(httparse::Status::Partial) => None,
            Err(_) => return Err(()),
        }
    };
    let Some((n, hs)) = parsed else {
        if data.len() > cfg.max_message_size.max(64 << 10) {
            return Err(());
        }
        return Ok(None);
    };
    // Repeated headers are one value joined with ", ", as Packetbeat keeps them; each
    // Set-Cookie stays on its own (commas are part of cookie dates).
    for h in &hs {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value).into_owned();
        match msg.headers.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) if name != "set-cookie" => {
                v.push_str(", ");
                v.push_str(&value);
            }
            _ => msg.headers.push((name, value)),
        }
    }
    msg.head = data[..n.min(cfg.max_message_size)].to_vec();
    msg.size = n as u64;
    buf.consume(n);
    let ct = msg.header("content-type").map(str::to_owned);
    let dir_list = if msg.is_request {
        &cfg.include_request_body_for
    } else {
        &cfg.include_response_body_for
    };
    let form = msg.is_request
        && ct
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().contains("x-www-form-urlencoded"));
    msg.store_body = form
        || content_type_matches(ct.as_deref(), &cfg.include_body_for)
        || content_type_matches(ct.as_deref(), dir_list);
    let chunked = msg
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = msg
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let no_body = !msg.is_request
        && ((100..200).contains(&msg.status_code)
            || msg.status_code == 204
            || msg.status_code == 304);
    let conn = msg
        .header("connection")
        .map(|v| v.to_ascii_lowercase())
        .unwrap_or_default();
    let body = if no_body {
        Body::Length(0)
    } else if chunked {
        Body::ChunkSize
    } else if let Some(l) = length {
        Body::Length(l)
    } else if msg.is_request {
        Body::Length(0)
    } else if (msg.version == "1.0" && !conn.contains("keep-alive")) || conn.contains("close") {
        Body::UntilClose
    } else {
        Body::Length(0)
    };
    Ok(Some((msg, body)))
}
