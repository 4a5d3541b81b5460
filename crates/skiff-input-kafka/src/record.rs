//! From a Kafka record to the messages the parsers see, with Filebeat's `kafka.*` fields.
//!
//! Why the fields ride on the parser message: a multiline parser joins records of one
//! partition into one event, and keeps the first record's fields: the event then says where it
//! started (`kafka.offset`), as `log.offset` does for a file.

use serde_json::json;
use skiff_event::{Map, Timestamp, Value};
use skiff_parsers::Message;

/// The parts of one record the input uses (borrowed from librdkafka's buffer).
pub struct Record<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The key, if any.
    pub key: Option<&'a [u8]>,
    /// The value (empty for a tombstone).
    pub payload: &'a [u8],
    /// Headers, in order: name and value.
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// The record's time (create or log-append time), milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// The `kafka` object of Filebeat's events: `topic`, `partition`, `offset`, `key` (the key as
/// text, empty when none, as Filebeat) and `headers` (`"name: value"` strings, only when the
/// record has some).
pub fn kafka_fields(r: &Record<'_>) -> Value {
    let mut m = json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "key": String::from_utf8_lossy(r.key.unwrap_or_default()),
    });
    if !r.headers.is_empty()
        && let Some(o) = m.as_object_mut()
    {
        let hs: Vec<Value> = r
            .headers
            .iter()
            .map(|(k, v)| Value::from(format!("{k}: {}", String::from_utf8_lossy(v))))
            .collect();
        o.insert("headers".into(), Value::Array(hs));
    }
    m
}

/// The parser messages of one record: one, or one per element of the list in
/// `expand_event_list_from_field`. Each covers the record's offset: `start` is the offset and
/// `end` the offset after it, the position committed once the message's event is delivered.
pub fn messages(r: &Record<'_>, expand_field: Option<&str>) -> Vec<Message> {
    let start = u64::try_from(r.offset).unwrap_or(0);
    let end = start.saturating_add(1);
    let kafka = kafka_fields(r);
    let timestamp = r
        .timestamp_ms
        .filter(|t| *t > 0)
        .map(|t| Timestamp(t.saturating_mul(1_000_000)));
    let make = |text: String| {
        let mut fields = Map::new();
        fields.insert("kafka".into(), kafka.clone());
        Message {
            text,
            start,
            end,
            fields,
            flags: Vec::new(),
            timestamp,
        }
    };
    if let Some(field) = expand_field {
        // Filebeat: a record that is not a JSON object with a list there is kept whole.
        if let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(r.payload)
            && let Some(Value::Array(items)) = doc.remove(field)
        {
            return items
                .into_iter()
                .map(|item| make(item.to_string()))
                .collect();
        }
    }
    vec![make(String::from_utf8_lossy(r.payload).into_owned())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(payload: &'a [u8], headers: Vec<(&'a str, &'a [u8])>) -> Record<'a> {
        Record {
            topic: "logs",
            partition: 2,
            offset: 41,
            key: Some(b"k1"),
            payload,
            headers,
            timestamp_ms: Some(1_700_000_000_123),
        }
    }

    #[test]
    fn fields_as_filebeat() {
        let r = rec(b"hello", vec![("trace", b"abc".as_slice()), ("x", b"")]);
        let m = messages(&r, None);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].text, "hello");
        assert_eq!((m[0].start, m[0].end), (41, 42));
        assert_eq!(
            m[0].fields["kafka"],
            json!({"topic": "logs", "partition": 2, "offset": 41, "key": "k1",
                   "headers": ["trace: abc", "x: "]})
        );
        assert_eq!(m[0].timestamp, Some(Timestamp(1_700_000_000_123_000_000)));
        let none = Record {
            key: None,
            headers: vec![],
            ..rec(b"", vec![])
        };
        let f = kafka_fields(&none);
        assert_eq!(f["key"], "");
        assert!(f.get("headers").is_none());
    }

    #[test]
    fn a_list_field_is_expanded() {
        let r = rec(br#"{"records":[{"a":1},"two",3],"other":true}"#, vec![]);
        let m = messages(&r, Some("records"));
        let texts: Vec<&str> = m.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, [r#"{"a":1}"#, "\"two\"", "3"]);
        assert!(m.iter().all(|m| (m.start, m.end) == (41, 42)));
        // Not JSON, or no list there: the record whole.
        assert_eq!(
            messages(&rec(b"plain", vec![]), Some("records"))[0].text,
            "plain"
        );
        let m = messages(&rec(br#"{"records":1}"#, vec![]), Some("records"));
        assert_eq!(m[0].text, r#"{"records":1}"#);
    }
}
