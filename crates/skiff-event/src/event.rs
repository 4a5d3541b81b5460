//! The [`Event`] type and field access by dotted path.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{AckToken, Map, Timestamp, Value};

/// One event: a log line, a network transaction, a metrics sample.
///
/// Field precedence when the same path is in several places: the typed slots
/// (`@timestamp`, `message`, `log.offset`) win over [`fields`](Event::fields), which win over
/// [`shared`](Event::shared). Objects present in both `fields` and `shared` are merged.
#[derive(Debug, Serialize, Deserialize)]
pub struct Event {
    /// `@timestamp`.
    pub timestamp: Timestamp,
    /// `message`: the line as read (after decoding to UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `log.offset`: where the event starts in its file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Per-event fields (parsed JSON, processor results, `log.flags`, ...). Empty for a plain line,
    /// which costs no allocation.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map,
    /// `@metadata`: routing information that outputs do not serialise (index, pipeline, ...).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub meta: Map,
    /// Fields shared by every event of the same source (`agent`, `host`, `input`, `log.file`,
    /// `fields`, `tags`, ...). Changing them for one event clones them (copy on write).
    /// Its `@metadata` key holds per-source routing metadata (an input's `index`, `pipeline`):
    /// it is read by [`Event::get`] under `@metadata.*` and never serialised as a field.
    pub shared: Arc<Map>,
    /// The delivery promise to the event's source, if it has one.
    #[serde(skip)]
    pub ack: Option<AckToken>,
}

/// A field read from an event: either one of its typed slots or a JSON value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldRef<'a> {
    /// A string slot (`message`).
    Str(&'a str),
    /// A number slot (`log.offset`).
    U64(u64),
    /// `@timestamp`.
    Timestamp(Timestamp),
    /// Any other field.
    Value(&'a Value),
}

impl FieldRef<'_> {
    /// The field as a JSON value.
    pub fn to_value(&self) -> Value {
        match *self {
            FieldRef::Str(s) => Value::String(s.to_owned()),
            FieldRef::U64(n) => Value::from(n),
            FieldRef::Timestamp(t) => Value::String(t.to_rfc3339_millis()),
            FieldRef::Value(v) => v.clone(),
        }
    }

    /// The field as text: strings as they are, other scalars in JSON, objects and arrays in JSON.
    pub fn to_text(&self) -> String {
        match *self {
            FieldRef::Str(s) => s.to_owned(),
            FieldRef::U64(n) => n.to_string(),
            FieldRef::Timestamp(t) => t.to_rfc3339_millis(),
            FieldRef::Value(Value::String(s)) => s.clone(),
            FieldRef::Value(v) => v.to_string(),
        }
    }

    /// The field as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldRef::Str(s) => Some(s),
            FieldRef::Value(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

impl Event {
    /// A new event stamped now, with `message` and the given shared fields.
    pub fn new(shared: Arc<Map>, message: String) -> Self {
        Self::new_at(Timestamp::now(), shared, message)
    }

    /// An event read at `timestamp`: inputs that read many events at once take the clock once
    /// for all of them (reading it costs as much as building a small event).
    pub fn new_at(timestamp: Timestamp, shared: Arc<Map>, message: String) -> Self {
        Event {
            timestamp,
            message: Some(message),
            offset: None,
            fields: Map::new(),
            meta: Map::new(),
            shared,
            ack: None,
        }
    }

    /// A copy of the event without its acknowledgement token.
    pub fn clone_without_ack(&self) -> Self {
        Event {
            timestamp: self.timestamp,
            message: self.message.clone(),
            offset: self.offset,
            fields: self.fields.clone(),
            meta: self.meta.clone(),
            shared: self.shared.clone(),
            ack: None,
        }
    }

    /// Acks the event's token, if it has one (the event was delivered or deliberately dropped).
    pub fn ack(&mut self) {
        if let Some(t) = self.ack.take() {
            t.ack();
        }
    }

    /// Reads a field by dotted path (`log.file.path`). `@metadata.x` reads [`meta`](Event::meta).
    pub fn get(&self, path: &str) -> Option<FieldRef<'_>> {
        match path {
            "@timestamp" => return Some(FieldRef::Timestamp(self.timestamp)),
            "message" => return self.message.as_deref().map(FieldRef::Str),
            "log.offset" => {
                if let Some(o) = self.offset {
                    return Some(FieldRef::U64(o));
                }
            }
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("@metadata.") {
            // Per-event metadata first, then the source's (`shared["@metadata"]`).
            let shared_meta = self.shared.get("@metadata").and_then(Value::as_object);
            return lookup(&self.meta, rest)
                .or_else(|| shared_meta.and_then(|m| lookup(m, rest)))
                .map(FieldRef::Value);
        }
        lookup(&self.fields, path)
            .or_else(|| lookup(&self.shared, path))
            .map(FieldRef::Value)
    }

    /// Sets a field by dotted path, creating objects on the way (replacing non-objects).
    /// `message`, `@timestamp` (an RFC 3339 string) and `log.offset` go to their typed slots.
    pub fn insert(&mut self, path: &str, value: Value) {
        match (path, value) {
            ("message", Value::String(s)) => self.message = Some(s),
            ("log.offset", v) if v.as_u64().is_some() => self.offset = v.as_u64(),
            ("@timestamp", Value::String(s)) if Timestamp::parse(&s).is_some() => {
                if let Some(t) = Timestamp::parse(&s) {
                    self.timestamp = t;
                }
            }
            (path, value) => {
                if path == "message" {
                    self.message = None;
                }
                if let Some(rest) = path.strip_prefix("@metadata.") {
                    insert_path(&mut self.meta, rest, value)
                } else {
                    insert_path(&mut self.fields, path, value)
                }
            }
        }
    }

    /// Removes a field by dotted path from wherever it is, returning it.
    pub fn remove(&mut self, path: &str) -> Option<Value> {
        match path {
            "message" => return self.message.take().map(Value::String),
            "log.offset" if self.offset.is_some() => return self.offset.take().map(Value::from),
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("@metadata.") {
            return remove_path(&mut self.meta, rest);
        }
        let own = remove_path(&mut self.fields, path);
        let shared = if lookup(&self.shared, path).is_some() {
            remove_path(Arc::make_mut(&mut self.shared), path)
        } else {
            None
        };
        own.or(shared)
    }

    /// A rough size of the event in memory, in bytes, for the memory budget. The shared part is
    /// not counted: it is paid for once per source, not per event.
    pub fn size_bytes(&self) -> usize {
        const OVERHEAD: usize = std::mem::size_of::<Event>() + 16;
        OVERHEAD
            + self.message.as_ref().map_or(0, |m| m.capacity())
            + map_size(&self.fields)
            + map_size(&self.meta)
    }

    /// The event as one merged JSON object (`@metadata` included when asked).
    pub fn to_value(&self, with_metadata: bool) -> Value {
        let mut v = Value::Object(Map::new());
        let mut bytes = Vec::new();
        crate::json::encode(self, &mut bytes, with_metadata);
        if let Ok(parsed) = serde_json::from_slice(&bytes) {
            v = parsed;
        }
        v
    }
}

fn lookup<'a>(map: &'a Map, path: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut cur = map.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

fn insert_path(map: &mut Map, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = map;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_owned(), value);
            return;
        }
        let entry = cur
            .entry(p.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        match entry {
            Value::Object(m) => cur = m,
            _ => return,
        }
    }
}

fn remove_path(map: &mut Map, path: &str) -> Option<Value> {
    if let Some(v) = map.remove(path) {
        return Some(v);
    }
    match path.split_once('.') {
        None => None,
        Some((head, rest)) => remove_path(map.get_mut(head)?.as_object_mut()?, rest),
    }
}

/// The heap a map holds. A `serde_json::Map` is a `BTreeMap<String, Value>` whose nodes hold
/// 11 keys and values inline, so even a one-entry object (`url: {original}`) costs a whole
/// node (~630 bytes): a parsed document of a dozen small nested objects holds ~10 KB, which
/// counting keys and values alone put at 2 KB (tests/size_estimate.rs measures it).
fn map_size(m: &Map) -> usize {
    if m.is_empty() {
        return 0;
    }
    let leaves = m.len().div_ceil(8);
    let internal = if leaves > 1 { leaves.div_ceil(8) } else { 0 };
    leaves * LEAF_NODE
        + internal * INTERNAL_NODE
        + m.iter()
            .map(|(k, v)| heap(k.capacity()) + value_size(v))
            .sum::<usize>()
}

/// A B-tree leaf of `String` keys and `Value`s: 11 of each, a parent pointer, two counters.
const LEAF_NODE: usize =
    8 + 11 * (std::mem::size_of::<String>() + std::mem::size_of::<Value>()) + 8;
/// An internal node: a leaf and 12 child pointers.
const INTERNAL_NODE: usize = LEAF_NODE + 12 * 8;

/// One heap allocation of `n` bytes, with the allocator's header.
fn heap(n: usize) -> usize {
    if n == 0 { 0 } else { n + 16 }
}

/// The heap a value holds beyond its slot in the node or vector that contains it.
fn value_size(v: &Value) -> usize {
    match v {
        Value::String(s) => heap(s.capacity()),
        Value::Array(a) => {
            heap(a.capacity() * std::mem::size_of::<Value>())
                + a.iter().map(value_size).sum::<usize>()
        }
        Value::Object(m) => map_size(m),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shared() -> Arc<Map> {
        let v = json!({"log": {"file": {"path": "/var/log/a.log"}}, "host": {"name": "h1"}});
        Arc::new(v.as_object().unwrap().clone())
    }

    #[test]
    fn get_prefers_slots_then_fields_then_shared() {
        let mut e = Event::new(shared(), "m".into());
        e.offset = Some(5);
        assert_eq!(e.get("message").unwrap().as_str(), Some("m"));
        assert_eq!(e.get("log.offset"), Some(FieldRef::U64(5)));
        assert_eq!(
            e.get("log.file.path").unwrap().as_str(),
            Some("/var/log/a.log")
        );
        e.insert("host.name", json!("override"));
        assert_eq!(e.get("host.name").unwrap().as_str(), Some("override"));
        assert!(e.get("nope.x").is_none());
        e.insert("@metadata.index", json!("idx"));
        assert_eq!(e.get("@metadata.index").unwrap().as_str(), Some("idx"));
        assert!(e.get("index").is_none());
    }

    #[test]
    fn remove_copies_shared_on_write() {
        let s = shared();
        let mut e = Event::new(s.clone(), "m".into());
        assert_eq!(e.remove("host.name"), Some(json!("h1")));
        assert!(e.get("host.name").is_none());
        // The other events of the source still see it.
        assert_eq!(s["host"]["name"], json!("h1"));
    }

    #[test]
    fn insert_replaces_scalars_on_the_way() {
        let mut e = Event::new(shared(), "m".into());
        e.insert("a", json!(1));
        e.insert("a.b", json!(2));
        assert_eq!(e.get("a.b").unwrap().to_value(), json!(2));
        e.insert("@timestamp", json!("2020-01-01T00:00:00Z"));
        assert_eq!(e.timestamp.to_rfc3339_millis(), "2020-01-01T00:00:00.000Z");
    }
}
