//! JSON encoding with the shared fields encoded once per source.
//!
//! Most events of a file or stdin are a line plus the fields every event of the source shares
//! (`agent`, `host`, `ecs`, `input`, `log.file`, `fields`, `tags`, `@metadata`): encoding those
//! again for every event is most of the work of the file output. When an event has no fields of
//! its own, this writes exactly the bytes [`crate::json::encode`] would, with the shared part
//! copied from a cache keyed by the source's shared map. Anything else takes the general path.
//!
//! It lives here, next to [`crate::json`] whose bytes it must reproduce exactly, so every output
//! that writes Beats JSON (file, console, Elasticsearch) can use it without depending on another
//! output's crate, and a change to the general encoder is checked against it in the same crate.

use std::sync::{Arc, Weak};

use crate::json::{write_str, write_value};
use crate::{Event, Map, Value};

/// Sources remembered at most; beyond that the cache starts over.
const CACHE_MAX: usize = 64;

/// The shared fields of one source, pre-encoded.
struct Pieces {
    /// `,"@metadata":{...}` (empty when the source has no `@metadata` object).
    meta: Vec<u8>,
    /// `,"k":v` for the keys of the source's `log` object other than `offset`.
    log_inner: Vec<u8>,
    /// Whether the source's `log` is an object.
    log_is_object: bool,
    /// `,"k":v` for every other shared key, with `log` (events without an offset).
    rest_with_log: Vec<u8>,
    /// The same without `log` (events with an offset: `log` is written with it).
    rest_without_log: Vec<u8>,
}

/// Per-client cache of pre-encoded shared fields.
#[derive(Default)]
pub struct SharedCache {
    entries: Vec<(Weak<Map>, Arc<Pieces>)>,
}

impl SharedCache {
    fn pieces(&mut self, shared: &Arc<Map>) -> Arc<Pieces> {
        let ptr = Arc::as_ptr(shared);
        // A held `Weak` keeps its allocation from being reused: an equal pointer is this map.
        if let Some((_, p)) = self.entries.iter().find(|(w, _)| Weak::as_ptr(w) == ptr) {
            return p.clone();
        }
        let p = Arc::new(Pieces::of(shared));
        self.entries.retain(|(w, _)| w.strong_count() > 0);
        if self.entries.len() >= CACHE_MAX {
            self.entries.clear();
        }
        self.entries.push((Arc::downgrade(shared), p.clone()));
        p
    }
}

fn member(out: &mut Vec<u8>, k: &str, v: &Value) {
    out.push(b',');
    write_str(out, k);
    out.push(b':');
    write_value(out, v);
}

impl Pieces {
    fn of(shared: &Map) -> Pieces {
        let mut meta = Vec::new();
        if let Some(Value::Object(m)) = shared.get("@metadata") {
            meta.extend_from_slice(b",\"@metadata\":");
            write_value(&mut meta, &Value::Object(m.clone()));
        }
        let mut log_inner = Vec::new();
        let log_is_object = matches!(shared.get("log"), Some(Value::Object(_)));
        if let Some(Value::Object(log)) = shared.get("log") {
            for (k, v) in log {
                if k != "offset" {
                    member(&mut log_inner, k, v);
                }
            }
        }
        let mut rest_with_log = Vec::new();
        let mut rest_without_log = Vec::new();
        for (k, v) in shared {
            if k == "@metadata" || k == "@timestamp" {
                continue;
            }
            member(&mut rest_with_log, k, v);
            if k != "log" {
                member(&mut rest_without_log, k, v);
            }
        }
        Pieces {
            meta,
            log_inner,
            log_is_object,
            rest_with_log,
            rest_without_log,
        }
    }
}

/// Appends the event as `crate::json::encode(event, out, with_metadata)` would.
pub fn encode(cache: &mut SharedCache, event: &Event, out: &mut Vec<u8>, with_metadata: bool) {
    // The general path merges the event's own fields into the shared ones, and a shared
    // `message` competes with the message slot: leave those cases to it.
    if !event.fields.is_empty() || !event.meta.is_empty() || event.shared.contains_key("message") {
        crate::json::encode(event, out, with_metadata);
        return;
    }
    let p = cache.pieces(&event.shared);
    out.extend_from_slice(b"{\"@timestamp\":\"");
    event.timestamp.write_rfc3339_millis(out);
    out.push(b'"');
    if with_metadata {
        out.extend_from_slice(&p.meta);
    }
    if let Some(m) = &event.message {
        out.extend_from_slice(b",\"message\":");
        write_str(out, m);
    }
    match event.offset {
        Some(off) => {
            out.extend_from_slice(b",\"log\":{\"offset\":");
            out.extend_from_slice(off.to_string().as_bytes());
            if p.log_is_object {
                out.extend_from_slice(&p.log_inner);
            }
            out.push(b'}');
            out.extend_from_slice(&p.rest_without_log);
        }
        None => out.extend_from_slice(&p.rest_with_log),
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shared(v: Value) -> Arc<Map> {
        Arc::new(v.as_object().unwrap().clone())
    }

    #[test]
    fn same_bytes_as_the_general_encoder() {
        let sources = [
            json!({}),
            json!({"@metadata": {"beat": "filebeat", "type": "_doc"}, "agent": {"id": "a\"b"}, "log": {"file": {"path": "/x"}, "offset": 99}, "tags": ["a", "<b>"], "n": 1.5, "z": null}),
            json!({"log": "not an object", "input": {"type": "stdin"}, "@metadata": 5}),
            json!({"@timestamp": "shadowed", "host": {"name": "h"}}),
            json!({"message": "shared message", "x": 1}),
        ];
        let mut cache = SharedCache::default();
        for src in sources {
            let s = shared(src);
            for (msg, off) in [
                (Some("line \"1\"\n\u{1}é"), Some(7u64)),
                (None, None),
                (Some(""), None),
                (None, Some(0)),
            ] {
                for with_meta in [true, false] {
                    let mut e = Event::new(s.clone(), String::new());
                    e.message = msg.map(str::to_owned);
                    e.offset = off;
                    let mut a = Vec::new();
                    let mut b = Vec::new();
                    encode(&mut cache, &e, &mut a, with_meta);
                    crate::json::encode(&e, &mut b, with_meta);
                    assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
                }
            }
            // Events with their own fields take the general path, with the same result.
            let mut e = Event::new(s.clone(), "m".into());
            e.insert("log.flags", json!(["truncated"]));
            e.insert("@metadata.index", json!("i"));
            let mut a = Vec::new();
            let mut b = Vec::new();
            encode(&mut cache, &e, &mut a, true);
            crate::json::encode(&e, &mut b, true);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn cache_follows_sources() {
        let mut cache = SharedCache::default();
        let mut out = Vec::new();
        for i in 0..200 {
            let s = shared(json!({"i": i}));
            let e = Event::new(s, "m".into());
            out.clear();
            encode(&mut cache, &e, &mut out, false);
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["i"], i);
            assert!(cache.entries.len() <= CACHE_MAX);
        }
    }
}
