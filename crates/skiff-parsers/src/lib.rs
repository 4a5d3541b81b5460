//! Filebeat filestream's `parsers`: `multiline`, `ndjson` and `container`.
//!
//! # Where this sits
//!
//! An input that reads lines (the file input, stdin) cuts its bytes into lines, decodes them to
//! UTF-8 and caps each at `message_max_bytes`; then every line goes through the input's
//! [`ParserChain`], built from the `parsers:` list of its configuration, exactly as in
//! Filebeat's filestream:
//!
//! ```yaml
//! parsers:
//!   - container: {stream: stdout}
//!   - ndjson: {target: "", overwrite_keys: true, message_key: log}
//!   - multiline: {type: pattern, pattern: '^\[', negate: true, match: after}
//! ```
//!
//! Each parser turns a stream of [`Message`]s into another: it may join several into one
//! (multiline, partial container lines), drop some (a container stream filter) or rewrite one
//! (ndjson). What comes out is turned into an [`Event`] by [`apply_to_event`].
//!
//! # Why it is built this way
//!
//! * **Acknowledgement positions travel with the data.** A message knows the byte range it came
//!   from ([`Message::start`], [`Message::end`]). A joined message ends where its last line ends,
//!   so an input that commits `end` once the event is acknowledged never commits a line that is
//!   still held in a parser. A parser that holds an earlier line while emitting a later one (CRI
//!   partial lines of another stream) emits the later one with `end` lowered to where the held
//!   data starts.
//! * **Memory is bounded by configuration, whatever the input.** A multiline event keeps at most
//!   `max_lines` lines and `message_max_bytes` bytes; further lines are consumed and dropped (the
//!   event is flagged `truncated`), never buffered. Partial container lines are joined up to the
//!   same byte cap. JSON nesting is bounded by `serde_json`'s recursion limit.
//! * **Time is explicit.** Parsers never sleep or spawn timers: [`Parser::deadline`] says when a
//!   pending multiline event times out, and the input calls [`Parser::flush_expired`] then. Tests
//!   pass explicit instants.
//! * **Filebeat's semantics, including its quirks**, so that existing `filebeat.yml` files work
//!   the same way; where skiff deliberately differs (bounded memory, per-stream partial lines)
//!   the module that does so says why.
//!
//! # How an input drives it
//!
//! ```
//! use skiff_parsers::{Message, MultilineConfig, MultilineParser, Parser, ParserChain};
//!
//! // Inputs build the chain with `ParserChain::build(node.get("parsers"), &ctx, max_bytes)`.
//! let cfg = MultilineConfig {
//!     pattern: Some(r"^\s".into()),
//!     match_: Some("after".into()),
//!     ..MultilineConfig::default()
//! };
//! let ml = MultilineParser::new(&cfg, 10 << 20).map_err(|(_, e)| e)?;
//! let mut chain = ParserChain::from_stages(vec![Box::new(ml)]);
//!
//! let mut out = Vec::new();
//! let mut offset = 0;
//! for line in ["Exception", "  at a.b(C.java:1)", "next"] {
//!     let end = offset + line.len() as u64 + 1; // + the newline
//!     chain.feed(Message::new(line.to_owned(), offset, end), &mut out);
//!     offset = end;
//! }
//! // Between reads: wake up at `chain.deadline()` and call `chain.flush_expired(now, ..)`.
//! // At EOF / close / shutdown:
//! chain.finish(&mut out);
//! assert_eq!(out[0].text, "Exception\n  at a.b(C.java:1)");
//! assert_eq!((out[0].start, out[0].end), (0, 29)); // publish with ack position `end`
//! assert_eq!(out[1].text, "next");
//! # Ok::<(), String>(())
//! ```
//!
//! [`Event`]: skiff_event::Event

mod chain;
mod container;
mod fields;
mod multiline;
mod ndjson;

use std::time::Instant;

use skiff_event::{Event, Map, Timestamp, Value};

pub use chain::ParserChain;
pub use container::{ContainerConfig, ContainerParser};
pub use multiline::{MultilineConfig, MultilineParser};
pub use ndjson::{NdjsonConfig, NdjsonParser};

/// One line (or several joined lines) on its way through the parsers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    /// The text: becomes the event's `message` (none when empty).
    pub text: String,
    /// Offset of the first byte of the first line in the source: becomes `log.offset`.
    pub start: u64,
    /// Offset just after the last byte consumed, line terminator included: the position to
    /// commit once the event is acknowledged. Never lower than an earlier message's `end`; it
    /// may be lower than `start` when a parser still holds earlier bytes (a CRI partial line of
    /// another stream), so that acknowledging this message does not commit them.
    pub end: u64,
    /// Fields added by parsers, as nested objects (no dotted keys). An `@metadata` key goes to
    /// the event's metadata.
    pub fields: Map,
    /// `log.flags`, e.g. `multiline`, `truncated`.
    pub flags: Vec<&'static str>,
    /// The event's `@timestamp`, when a parser found one (container time, JSON `@timestamp`).
    pub timestamp: Option<Timestamp>,
}

impl Message {
    /// A plain line: `text` read from `start..end`.
    pub fn new(text: String, start: u64, end: u64) -> Self {
        Message {
            text,
            start,
            end,
            ..Message::default()
        }
    }

    /// Adds a `log.flags` value once.
    pub fn add_flag(&mut self, flag: &'static str) {
        if !self.flags.contains(&flag) {
            self.flags.push(flag);
        }
    }

    /// True when there is nothing to publish: no text and no fields. Filebeat's filestream drops
    /// such messages (an empty line, `{}` decoded by ndjson); the input still commits `end`.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.fields.is_empty()
    }
}

/// A stage of the parser chain.
///
/// Input goes in with [`feed`](Parser::feed); complete messages come out in the same call or in
/// a later one. Output messages keep input order, so their `end` positions never go back.
pub trait Parser: Send {
    /// Takes one message; appends the 0..n messages it completes to `out`.
    fn feed(&mut self, msg: Message, out: &mut Vec<Message>);

    /// When [`flush_expired`](Parser::flush_expired) must be called next (a pending multiline
    /// event's timeout), or `None` when nothing is pending or nothing expires.
    fn deadline(&self) -> Option<Instant>;

    /// Emits whatever has been pending since before `now` minus its timeout.
    fn flush_expired(&mut self, now: Instant, out: &mut Vec<Message>);

    /// End of input (file closed, stdin at EOF, shutdown): emits everything still held.
    fn finish(&mut self, out: &mut Vec<Message>);

    /// True while the parser holds input it has not emitted yet. When this is false after a
    /// [`feed`](Parser::feed) that produced nothing, the line was dropped on purpose (a container
    /// stream filter, an unparsable line): an input may treat its bytes as done.
    fn has_pending(&self) -> bool {
        false
    }

    /// Roughly how many bytes of input the parser holds (text buffers), for a memory budget.
    /// Bounded by the configured caps (`message_max_bytes` per held message).
    fn pending_bytes(&self) -> usize {
        0
    }
}

/// Moves a parsed message into `event`: `text` to `message` (unset when empty), `fields` merged
/// into the event's fields (`@metadata` into its metadata), `flags` to `log.flags`, `timestamp`
/// to `@timestamp` and `start` to `log.offset`.
///
/// A `message` field that a parser added (ndjson at the root) becomes the event's message when
/// the text is empty, as in Filebeat, where the line's own text wins otherwise.
pub fn apply_to_event(msg: Message, event: &mut Event) {
    let Message {
        text,
        start,
        end: _,
        mut fields,
        flags,
        timestamp,
    } = msg;
    event.offset = Some(start);
    if let Some(ts) = timestamp {
        event.timestamp = ts;
    }
    if let Some(Value::Object(meta)) = fields.remove("@metadata") {
        fields::deep_update(&mut event.meta, meta);
    }
    let field_message = fields.remove("message");
    if !fields.is_empty() {
        fields::deep_update(&mut event.fields, fields);
    }
    if !text.is_empty() {
        event.message = Some(text);
        event.fields.remove("message");
    } else {
        match field_message {
            Some(Value::String(s)) => {
                event.message = Some(s);
                event.fields.remove("message");
            }
            Some(other) => {
                // Not a string: keep it as a field; the typed slot would hide it.
                event.message = None;
                event.fields.insert("message".into(), other);
            }
            None => event.message = None,
        }
    }
    if !flags.is_empty() {
        let log = event
            .fields
            .entry("log")
            .or_insert_with(|| Value::Object(Map::new()));
        if !log.is_object() {
            *log = Value::Object(Map::new());
        }
        if let Value::Object(log) = log {
            let list = log
                .entry("flags")
                .or_insert_with(|| Value::Array(Vec::new()));
            if !list.is_array() {
                *list = Value::Array(Vec::new());
            }
            if let Value::Array(list) = list {
                for f in flags {
                    if !list.iter().any(|v| v.as_str() == Some(f)) {
                        list.push(Value::String(f.to_owned()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn event() -> Event {
        Event::new(Arc::new(Map::new()), String::new())
    }

    #[test]
    fn apply_moves_every_part() {
        let mut m = Message::new("hello".into(), 10, 20);
        m.fields = json!({"stream": "stdout", "@metadata": {"_id": "x"}})
            .as_object()
            .cloned()
            .unwrap();
        m.add_flag("multiline");
        m.add_flag("multiline");
        m.timestamp = Some(Timestamp(1_000_000_000));
        let mut ev = event();
        apply_to_event(m, &mut ev);
        assert_eq!(ev.message.as_deref(), Some("hello"));
        assert_eq!(ev.offset, Some(10));
        assert_eq!(ev.timestamp, Timestamp(1_000_000_000));
        assert_eq!(ev.get("stream").unwrap().as_str(), Some("stdout"));
        assert_eq!(ev.get("@metadata._id").unwrap().as_str(), Some("x"));
        assert_eq!(
            ev.get("log.flags").unwrap().to_value(),
            json!(["multiline"])
        );
        let text = skiff_event::json::to_string(&ev);
        assert!(
            text.contains(r#""log":{"offset":10,"flags":["multiline"]}"#),
            "{text}"
        );
    }

    #[test]
    fn field_message_used_when_text_empty() {
        let mut m = Message::new(String::new(), 0, 5);
        m.fields = json!({"message": "from json", "level": "info"})
            .as_object()
            .cloned()
            .unwrap();
        let mut ev = event();
        apply_to_event(m, &mut ev);
        assert_eq!(ev.message.as_deref(), Some("from json"));
        assert!(ev.fields.get("message").is_none());

        // The line's text wins over a decoded `message` key.
        let mut m = Message::new("text".into(), 0, 5);
        m.fields = json!({"message": "from json"})
            .as_object()
            .cloned()
            .unwrap();
        let mut ev = event();
        apply_to_event(m, &mut ev);
        assert_eq!(ev.message.as_deref(), Some("text"));
        assert!(ev.fields.get("message").is_none());

        // A non-string message stays a field.
        let mut m = Message::new(String::new(), 0, 5);
        m.fields = json!({"message": {"a": 1}}).as_object().cloned().unwrap();
        let mut ev = event();
        apply_to_event(m, &mut ev);
        assert!(ev.message.is_none());
        assert_eq!(ev.get("message.a").unwrap().to_value(), json!(1));
    }

    #[test]
    fn flags_merge_into_existing_log_object() {
        let mut m = Message::new("x".into(), 0, 2);
        m.fields = json!({"log": {"level": "warn"}})
            .as_object()
            .cloned()
            .unwrap();
        m.add_flag("truncated");
        let mut ev = event();
        apply_to_event(m, &mut ev);
        assert_eq!(ev.get("log.level").unwrap().as_str(), Some("warn"));
        assert_eq!(
            ev.get("log.flags").unwrap().to_value(),
            json!(["truncated"])
        );
    }
}
