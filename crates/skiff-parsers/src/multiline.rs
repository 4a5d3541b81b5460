//! The `multiline` parser: joins the lines of one logical message (a Java stack trace, a
//! wrapped log record) into one event, as Filebeat's `libbeat/reader/multiline` does.
//!
//! Three modes (`type`):
//!
//! * `pattern` (default): each line is tested against `pattern` (inverted by `negate`). With
//!   `match: after`, a line that matches is appended to the event before it; with
//!   `match: before`, a line is appended when the *previous* line matched (that line continues
//!   into the next). So `negate: true, match: after` with `^\[` reads "lines that do not start
//!   with `[` belong to the line before". A line matching `flush_pattern` ends the event it
//!   joins (not an event's first line, as in Filebeat).
//! * `count`: every `count_lines` lines make one event.
//! * `while_pattern`: consecutive lines that match (after `negate`) make one event; a line that
//!   does not match is an event of its own.
//!
//! Limits: an event keeps at most `max_lines` lines (default 500) and `message_max_bytes`
//! bytes (a line is cut at the byte cap). Lines beyond either are still consumed, so the event
//! ends where Filebeat would end it, but they are dropped, never buffered, and the event is
//! flagged `truncated`. An event of more than one kept line is flagged `multiline`. Lines are
//! joined with `\n` (nothing with `skip_newline`).
//!
//! `timeout` (default 5s; `0` disables it) emits a pending event once no line has arrived for
//! that long, as Filebeat's timeout reader does. Filebeat has no timeout in `count` mode; skiff
//! applies one there only when `timeout` is set explicitly.
//!
//! Deliberate differences from Filebeat, for bounded memory and progress: in `count` mode the
//! group is emitted as soon as its last line arrives (Filebeat waits for the next line) and
//! lines count whether or not they fit the byte cap (Filebeat would otherwise never end the
//! group); parser fields of dropped lines are not merged into the event.

use std::time::{Duration, Instant};

use regex::Regex;
use serde::Deserialize;
use skiff_config::{ConfigError, ConfigErrors, Node};

use crate::fields::{deep_update, floor_char_boundary};
use crate::{Message, Parser};

/// Filebeat's default `max_lines`.
pub const DEFAULT_MAX_LINES: usize = 500;
/// Filebeat's default `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `multiline:` settings of one parser.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// `type`: `pattern`, `count` or `while_pattern` (`while-pattern` too). Default `pattern`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// `pattern`: the regular expression (Go RE2 syntax, which Rust's `regex` accepts, e.g.
    /// `[[:space:]]`). Required for `pattern` and `while_pattern`.
    #[serde(default)]
    pub pattern: Option<String>,
    /// `negate`: invert the pattern. Default false.
    #[serde(default)]
    pub negate: bool,
    /// `match`: `after` or `before`; required for `pattern`.
    #[serde(rename = "match", default)]
    pub match_: Option<String>,
    /// `max_lines`: lines kept per event; 0 or less keeps all (the byte cap still applies).
    /// Default 500.
    #[serde(default)]
    pub max_lines: Option<i64>,
    /// `timeout`: emit a pending event after this long without a new line; `0` disables.
    /// Default 5s (none in `count` mode).
    #[serde(default)]
    pub timeout: Option<skiff_config::Duration>,
    /// `flush_pattern`: a line matching it ends the current event (pattern mode). Default none.
    #[serde(default)]
    pub flush_pattern: Option<String>,
    /// `count_lines`: lines per event in `count` mode (required there, more than 0).
    #[serde(default)]
    pub count_lines: Option<i64>,
    /// `skip_newline`: join lines without a separator. Default false.
    #[serde(default)]
    pub skip_newline: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `pattern` with `match: after` (`before == false`) or `match: before`.
    Pattern { before: bool },
    /// `count` with this many lines per event.
    Count(usize),
    /// `while_pattern`.
    While,
}

/// An event being built.
#[derive(Debug)]
struct Pending {
    msg: Message,
    /// Lines kept in `msg.text`.
    kept: usize,
    /// Lines consumed (kept or dropped).
    seen: usize,
    truncated: bool,
    /// Whether the last consumed line matched the pattern (before `negate`), for `match: before`.
    last_matched: bool,
    /// When the last line arrived, for the timeout.
    last_at: Option<Instant>,
}

/// The `multiline` parser. Build it with [`MultilineParser::from_node`] or
/// [`MultilineParser::new`].
#[derive(Debug)]
pub struct MultilineParser {
    mode: Mode,
    pattern: Option<Regex>,
    negate: bool,
    flush: Option<Regex>,
    max_lines: usize,
    max_bytes: usize,
    timeout: Option<Duration>,
    skip_newline: bool,
    pending: Option<Pending>,
}

impl MultilineParser {
    /// Validates `node` (the value under `multiline:`) and builds the parser. Errors name the
    /// key (`...multiline.pattern`) and say what is wrong.
    pub fn from_node(node: &Node, message_max_bytes: usize) -> Result<Self, ConfigErrors> {
        let cfg: MultilineConfig = node.deserialize()?;
        let key = |k: &str| -> (String, skiff_config::Mark) {
            match node.get(k) {
                Some(n) => (n.path.clone(), n.mark.clone()),
                None => (join(&node.path, k), node.mark.clone()),
            }
        };
        let err = |k: &str, msg: String| {
            let (path, mark) = key(k);
            ConfigError::new(path, mark, msg)
        };
        Self::new(&cfg, message_max_bytes).map_err(|(k, msg)| err(k, msg).into())
    }

    /// Builds the parser from settings. The error is `(key, message)`.
    pub fn new(
        cfg: &MultilineConfig,
        message_max_bytes: usize,
    ) -> Result<Self, (&'static str, String)> {
        let compile = |key: &'static str, p: &str| {
            Regex::new(p).map_err(|e| {
                (
                    key,
                    format!(
                        "invalid regular expression {p:?}: {}",
                        regex_cause(&e.to_string())
                    ),
                )
            })
        };
        let pattern = match &cfg.pattern {
            Some(p) => Some(compile("pattern", p)?),
            None => None,
        };
        let flush = match &cfg.flush_pattern {
            Some(p) if !p.is_empty() => Some(compile("flush_pattern", p)?),
            _ => None,
        };
        let kind = cfg.kind.as_deref().unwrap_or("pattern");
        let mode = match kind {
            "" | "pattern" => {
                let before = match cfg.match_.as_deref() {
                    Some("after") => false,
                    Some("before") => true,
                    Some(other) => {
                        return Err((
                            "match",
                            format!("unknown value {other:?}; use `after` or `before`"),
                        ));
                    }
                    None => {
                        return Err((
                            "match",
                            "`match` is required with `type: pattern`; use `after` (a matching line joins the line before it) or `before` (a matching line continues into the next)".to_owned(),
                        ));
                    }
                };
                if pattern.is_none() {
                    return Err((
                        "pattern",
                        "`pattern` is required with `type: pattern`".to_owned(),
                    ));
                }
                Mode::Pattern { before }
            }
            "count" => match cfg.count_lines {
                Some(n) if n > 0 => Mode::Count(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => {
                    return Err((
                        "count_lines",
                        "`count_lines` must be set to a number above 0 with `type: count`"
                            .to_owned(),
                    ));
                }
            },
            "while_pattern" | "while-pattern" => {
                if pattern.is_none() {
                    return Err((
                        "pattern",
                        "`pattern` is required with `type: while_pattern`".to_owned(),
                    ));
                }
                Mode::While
            }
            other => {
                return Err((
                    "type",
                    format!(
                        "unknown multiline type {other:?}; use `pattern`, `count` or `while_pattern`"
                    ),
                ));
            }
        };
        let max_lines = match mode {
            Mode::Count(n) => n,
            _ => match cfg.max_lines {
                None => DEFAULT_MAX_LINES,
                Some(n) if n <= 0 => usize::MAX,
                Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            },
        };
        let timeout = match (mode, cfg.timeout) {
            (_, Some(t)) if t.0.is_zero() => None,
            (_, Some(t)) => Some(t.0),
            (Mode::Count(_), None) => None,
            (_, None) => Some(DEFAULT_TIMEOUT),
        };
        Ok(MultilineParser {
            mode,
            pattern,
            negate: cfg.negate,
            flush,
            max_lines,
            max_bytes: if message_max_bytes == 0 {
                usize::MAX
            } else {
                message_max_bytes
            },
            timeout,
            skip_newline: cfg.skip_newline,
            pending: None,
        })
    }

    fn matches(&self, text: &str) -> bool {
        self.pattern.as_ref().is_some_and(|p| p.is_match(text))
    }

    fn start(&mut self, msg: Message, matched: bool) {
        let mut msg = msg;
        let mut truncated = false;
        if msg.text.len() > self.max_bytes {
            let cut = floor_char_boundary(&msg.text, self.max_bytes);
            msg.text.truncate(cut);
            msg.text.shrink_to_fit();
            truncated = true;
        }
        self.pending = Some(Pending {
            msg,
            kept: 1,
            seen: 1,
            truncated,
            last_matched: matched,
            last_at: self.timeout.map(|_| Instant::now()),
        });
    }

    /// Adds a line to the pending event (Filebeat's `messageBuffer.addLine`).
    fn add(&mut self, line: Message, matched: bool) {
        let timed = self.timeout.is_some();
        let (max_lines, max_bytes, skip_newline) =
            (self.max_lines, self.max_bytes, self.skip_newline);
        let Some(p) = self.pending.as_mut() else {
            self.start(line, matched);
            return;
        };
        p.seen += 1;
        p.last_matched = matched;
        if timed {
            p.last_at = Some(Instant::now());
        }
        p.msg.end = p.msg.end.max(line.end);
        let sep = usize::from(!p.msg.text.is_empty() && !skip_newline);
        let used = p.msg.text.len() + sep;
        let space = max_bytes.saturating_sub(used);
        if space > 0 && p.kept < max_lines {
            if sep == 1 {
                p.msg.text.push('\n');
            }
            let take = floor_char_boundary(&line.text, space);
            if take < line.text.len() {
                p.truncated = true;
            }
            p.msg.text.push_str(&line.text[..take]);
            p.kept += 1;
            if !line.fields.is_empty() {
                deep_update(&mut p.msg.fields, line.fields);
            }
            for f in line.flags {
                p.msg.add_flag(f);
            }
        } else {
            p.truncated = true;
        }
    }

    fn finalize(&mut self, out: &mut Vec<Message>) {
        if let Some(p) = self.pending.take() {
            let mut msg = p.msg;
            if p.truncated {
                msg.add_flag("truncated");
            }
            if p.kept > 1 {
                msg.add_flag("multiline");
            }
            out.push(msg);
        }
    }
}

impl Parser for MultilineParser {
    fn feed(&mut self, msg: Message, out: &mut Vec<Message>) {
        match self.mode {
            Mode::Pattern { before } => {
                // Only `match: before` needs the previous line's result; `after` tests the
                // current line only when an event is pending.
                let Some(p) = &self.pending else {
                    let matched = before && self.matches(&msg.text);
                    self.start(msg, matched);
                    return;
                };
                let last_matched = p.last_matched;
                if self.flush.as_ref().is_some_and(|f| f.is_match(&msg.text)) {
                    let matched = before && self.matches(&msg.text);
                    self.add(msg, matched);
                    self.finalize(out);
                    return;
                }
                let cur_matched = self.matches(&msg.text);
                let joins = if before { last_matched } else { cur_matched } != self.negate;
                if joins {
                    self.add(msg, cur_matched);
                } else {
                    self.finalize(out);
                    self.start(msg, cur_matched);
                }
            }
            Mode::Count(n) => {
                self.add(msg, false);
                if self.pending.as_ref().is_some_and(|p| p.seen >= n) {
                    self.finalize(out);
                }
            }
            Mode::While => {
                let joins = self.matches(&msg.text) != self.negate;
                if joins {
                    self.add(msg, true);
                } else {
                    self.finalize(out);
                    self.start(msg, false);
                    self.finalize(out);
                }
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let timeout = self.timeout?;
        let at = self.pending.as_ref()?.last_at?;
        at.checked_add(timeout)
    }

    fn flush_expired(&mut self, now: Instant, out: &mut Vec<Message>) {
        if self.deadline().is_some_and(|d| d <= now) {
            self.finalize(out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Message>) {
        self.finalize(out);
    }

    fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn pending_bytes(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.msg.text.capacity())
    }
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

/// The cause out of a `regex` error, which draws the pattern over several lines and ends with
/// `error: <cause>`.
fn regex_cause(s: &str) -> String {
    s.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| s.split_whitespace().collect::<Vec<_>>().join(" "))
}
