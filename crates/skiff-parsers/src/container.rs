//! The `container` parser: reads container runtime log files, as Filebeat's
//! `readjson.DockerJSONReader` does.
//!
//! * Docker `json-file`: `{"log":"text\n","stream":"stdout","time":"2024-...Z"}`. Docker splits
//!   long lines into 16 KiB pieces whose `log` does not end in `\n`; they are joined. The final
//!   `\n` is removed from the message (Filebeat's `log` input strips it too). `attrs` becomes
//!   `docker.attrs`.
//! * CRI (containerd, CRI-O): `2024-01-01T00:00:00.000000000Z stdout F text`; tag `P` marks a
//!   partial line, joined with the following ones up to an `F`.
//! * `format: auto` (default) picks Docker when the line starts with `{`, CRI otherwise;
//!   `docker` / `json-file` / `cri` force one.
//!
//! Each message gets the `stream` field and the runtime's timestamp; `stream: stdout|stderr`
//! keeps only that stream (default `all`). Lines that parse as neither format are dropped with a
//! rate-limited warning, as in Filebeat.
//!
//! Differences from Filebeat, on purpose: partial lines are joined per stream (Filebeat joins a
//! stdout piece with an interleaved stderr line), a joined line is capped at
//! `message_max_bytes` (the rest is dropped and the message flagged `truncated`: Filebeat
//! buffers it whole), and a message emitted while another stream's partial line is still held
//! carries `end` = where the held line starts, so acknowledging it never commits the held bytes.

use std::time::{Duration, Instant};

use serde::Deserialize;
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_event::{Map, Timestamp, Value};

use crate::fields::{LogLimiter, floor_char_boundary};
use crate::{Message, Parser};

/// The `container:` settings of one parser.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    /// `stream`: `all`, `stdout` or `stderr`. Default `all`.
    #[serde(default)]
    pub stream: Option<String>,
    /// `format`: `auto`, `docker` (`json-file`) or `cri`. Default `auto`.
    #[serde(default)]
    pub format: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Auto,
    Docker,
    Cri,
}

/// At most this many streams hold a partial line at once (stdout, stderr, and a little slack
/// for runtimes that name others); a further one flushes the oldest.
const MAX_PENDING_STREAMS: usize = 4;

/// The `container` parser.
#[derive(Debug)]
pub struct ContainerParser {
    format: Format,
    /// `None` = all streams.
    stream: Option<String>,
    max_bytes: usize,
    /// Partial lines being joined, per stream, oldest first.
    pending: Vec<PendingLine>,
    log: LogLimiter,
}

#[derive(Debug)]
struct PendingLine {
    stream: String,
    msg: Message,
    truncated: bool,
}

/// One parsed line.
struct Line {
    text: String,
    stream: String,
    time: Timestamp,
    partial: bool,
    attrs: Option<Map>,
}

#[derive(Deserialize)]
struct DockerLine {
    #[serde(default)]
    log: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    attrs: Option<Map>,
}

impl ContainerParser {
    /// Validates `node` (the value under `container:`, may be empty) and builds the parser.
    pub fn from_node(node: &Node, message_max_bytes: usize) -> Result<Self, ConfigErrors> {
        let cfg: ContainerConfig = node.deserialize()?;
        Self::new(&cfg, message_max_bytes).map_err(|(k, msg)| {
            let (path, mark) = match node.get(k) {
                Some(n) => (n.path.clone(), n.mark.clone()),
                None => (node.path.clone(), node.mark.clone()),
            };
            ConfigError::new(path, mark, msg).into()
        })
    }

    /// Builds the parser from settings. The error is `(key, message)`.
    pub fn new(
        cfg: &ContainerConfig,
        message_max_bytes: usize,
    ) -> Result<Self, (&'static str, String)> {
        let format = match cfg.format.as_deref().unwrap_or("auto") {
            "auto" => Format::Auto,
            "docker" | "json-file" => Format::Docker,
            "cri" => Format::Cri,
            other => {
                return Err((
                    "format",
                    format!(
                        "unknown container log format {other:?}; use `auto`, `docker` or `cri`"
                    ),
                ));
            }
        };
        let stream = match cfg.stream.as_deref().unwrap_or("all") {
            "all" => None,
            s @ ("stdout" | "stderr") => Some(s.to_owned()),
            other => {
                return Err((
                    "stream",
                    format!("unknown stream {other:?}; use `all`, `stdout` or `stderr`"),
                ));
            }
        };
        Ok(ContainerParser {
            format,
            stream,
            max_bytes: if message_max_bytes == 0 {
                usize::MAX
            } else {
                message_max_bytes
            },
            pending: Vec::new(),
            log: LogLimiter::new(Duration::from_secs(10)),
        })
    }

    fn parse(&self, text: &str) -> Result<Line, String> {
        match self.format {
            Format::Docker => parse_docker(text),
            Format::Cri => parse_cri(text),
            Format::Auto if text.starts_with('{') => parse_docker(text),
            Format::Auto => parse_cri(text),
        }
    }

    fn wanted(&self, stream: &str) -> bool {
        self.stream.as_deref().is_none_or(|s| s == stream)
    }

    /// Appends `text` to a pending line, within the byte cap.
    fn append(max_bytes: usize, p: &mut PendingLine, text: &str, end: u64) {
        p.msg.end = p.msg.end.max(end);
        let space = max_bytes.saturating_sub(p.msg.text.len());
        let take = floor_char_boundary(text, space);
        if take < text.len() {
            p.truncated = true;
        }
        p.msg.text.push_str(&text[..take]);
    }

    /// Emits `msg`, lowering its `end` to the start of the oldest line still held.
    fn emit(&self, mut msg: Message, out: &mut Vec<Message>) {
        if let Some(held) = self.pending.iter().map(|p| p.msg.start).min() {
            msg.end = msg.end.min(held);
        }
        out.push(msg);
    }

    fn complete(&mut self, p: PendingLine, out: &mut Vec<Message>) {
        let mut msg = p.msg;
        if p.truncated {
            msg.add_flag("truncated");
        }
        if self.wanted(&p.stream) {
            self.emit(msg, out);
        }
    }
}

impl Parser for ContainerParser {
    fn feed(&mut self, msg: Message, out: &mut Vec<Message>) {
        let line = match self.parse(&msg.text) {
            Ok(line) => line,
            Err(e) => {
                if let Some(skipped) = self.log.allow() {
                    tracing::warn!(error = %e, offset = msg.start, skipped, "container: unparsable line dropped");
                }
                return;
            }
        };
        let Line {
            mut text,
            stream,
            time,
            partial,
            attrs,
        } = line;
        if !self.wanted(&stream) {
            // Filtered out: no need to join its pieces first.
            return;
        }
        if let Some(i) = self.pending.iter().position(|p| p.stream == stream) {
            let max = self.max_bytes;
            let p = &mut self.pending[i];
            Self::append(max, p, &text, msg.end);
            if partial {
                return;
            }
            let p = self.pending.remove(i);
            self.complete(p, out);
            return;
        }
        // A new line: the first piece gives the timestamp, fields and start.
        let mut fields = msg.fields;
        fields.insert("stream".into(), Value::String(stream.clone()));
        if let Some(attrs) = attrs {
            let mut docker = Map::new();
            docker.insert("attrs".into(), Value::Object(attrs));
            crate::fields::deep_update(&mut fields, {
                let mut m = Map::new();
                m.insert("docker".into(), Value::Object(docker));
                m
            });
        }
        let mut truncated = false;
        if text.len() > self.max_bytes {
            text.truncate(floor_char_boundary(&text, self.max_bytes));
            truncated = true;
        }
        let out_msg = Message {
            text,
            start: msg.start,
            end: msg.end,
            fields,
            flags: msg.flags,
            timestamp: Some(time),
        };
        let p = PendingLine {
            stream,
            msg: out_msg,
            truncated,
        };
        if partial {
            if self.pending.len() >= MAX_PENDING_STREAMS {
                let oldest = self.pending.remove(0);
                self.complete(oldest, out);
            }
            self.pending.push(p);
        } else {
            self.complete(p, out);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn flush_expired(&mut self, _now: Instant, _out: &mut Vec<Message>) {}

    fn finish(&mut self, out: &mut Vec<Message>) {
        while !self.pending.is_empty() {
            let p = self.pending.remove(0);
            self.complete(p, out);
        }
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn pending_bytes(&self) -> usize {
        self.pending.iter().map(|p| p.msg.text.capacity()).sum()
    }
}

fn parse_docker(text: &str) -> Result<Line, String> {
    let mut it = serde_json::Deserializer::from_str(text).into_iter::<DockerLine>();
    let d = match it.next() {
        Some(Ok(d)) => d,
        Some(Err(e)) => return Err(format!("decoding docker JSON: {e}")),
        None => return Err("decoding docker JSON: empty line".to_owned()),
    };
    let time = d.time.unwrap_or_default();
    let ts = Timestamp::parse(&time)
        .ok_or_else(|| format!("parsing docker timestamp: {time:?} is not an RFC 3339 time"))?;
    let mut log = d.log;
    let partial = !log.is_empty() && !log.ends_with('\n');
    if log.ends_with('\n') {
        log.pop();
        if log.ends_with('\r') {
            log.pop();
        }
    }
    Ok(Line {
        text: log,
        stream: d.stream,
        time: ts,
        partial,
        attrs: d.attrs.filter(|a| !a.is_empty()),
    })
}

fn parse_cri(text: &str) -> Result<Line, String> {
    let mut parts = text.splitn(4, ' ');
    let (Some(ts), Some(stream), Some(tags)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("invalid CRI log format: expected `<time> <stream> <tags> <message>`".into());
    };
    let content = parts.next().unwrap_or("");
    let time = Timestamp::parse(ts)
        .ok_or_else(|| format!("parsing CRI timestamp: {ts:?} is not an RFC 3339 time"))?;
    let partial = tags.split(':').any(|t| t == "P");
    let mut content = content.to_owned();
    if partial && content.ends_with('\n') {
        content.pop();
    }
    Ok(Line {
        text: content,
        stream: stream.to_owned(),
        time,
        partial,
        attrs: None,
    })
}
