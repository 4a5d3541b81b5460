//! Received documents to events, as Logstash's beats input makes them: `@timestamp` parsed,
//! `@metadata` kept as metadata, every other key a field exactly as the sender wrote it.

use std::sync::Arc;

use skiff_event::{Event, Map, Timestamp, Value};

/// The fields a received event shares, made from the input's own shared fields.
///
/// The sender's `agent`, `host` and `ecs` describe where the event comes from and must survive
/// the hop, so ours are left out. `input.type` is ours only where the sender sent none (the
/// event's own fields win when encoding). Configured `fields` and routing `@metadata` stay;
/// configured `tags` are returned apart, to be appended to each event's own tags.
pub fn received_shared(ours: &Map, input_type: &str) -> (Arc<Map>, Vec<Value>) {
    let mut m = ours.clone();
    for k in ["agent", "host", "ecs", "input"] {
        m.remove(k);
    }
    let tags = match m.remove("tags") {
        Some(Value::Array(t)) => t,
        _ => Vec::new(),
    };
    m.insert("input".into(), serde_json::json!({ "type": input_type }));
    (Arc::new(m), tags)
}

/// An event from a JSON data frame. A document that is not a JSON object still becomes an
/// event (its text as `message`, tagged `_jsonparsefailure`), so that one bad event neither
/// disappears nor blocks its sender, who would resend it forever.
pub fn from_json(payload: &[u8], shared: &Arc<Map>, tags: &[Value]) -> Event {
    let mut ev = match serde_json::from_slice::<Map>(payload) {
        Ok(mut m) => {
            let mut ev = Event::new(shared.clone(), String::new());
            ev.message = match m.remove("message") {
                Some(Value::String(s)) => Some(s),
                Some(other) => {
                    m.insert("message".into(), other);
                    None
                }
                None => None,
            };
            if let Some(Value::Object(meta)) = m.remove("@metadata") {
                ev.meta = meta;
            }
            match m.remove("@timestamp") {
                Some(Value::String(s)) => match Timestamp::parse(&s) {
                    Some(t) => ev.timestamp = t,
                    None => {
                        add_tag(&mut m, "_timestampparsefailure");
                        m.insert("_@timestamp".into(), Value::String(s));
                    }
                },
                Some(other) => {
                    add_tag(&mut m, "_timestampparsefailure");
                    m.insert("_@timestamp".into(), other);
                }
                None => {}
            }
            ev.fields = m;
            ev
        }
        Err(e) => {
            let mut ev = Event::new(
                shared.clone(),
                String::from_utf8_lossy(payload).into_owned(),
            );
            add_tag(&mut ev.fields, "_jsonparsefailure");
            ev.fields.insert(
                "error".into(),
                serde_json::json!({ "message": format!("lumberjack payload is not a JSON object: {e}") }),
            );
            ev
        }
    };
    for t in tags {
        if let Value::String(s) = t {
            add_tag(&mut ev.fields, s);
        }
    }
    ev
}

/// An event from a legacy `D` frame: string pairs, `line` as the message (as
/// logstash-forwarder sent it).
pub fn from_pairs(pairs: Vec<(String, String)>, shared: &Arc<Map>, tags: &[Value]) -> Event {
    let mut ev = Event::new(shared.clone(), String::new());
    ev.message = None;
    for (k, v) in pairs {
        match k.as_str() {
            "line" | "message" => ev.message = Some(v),
            "@timestamp" => match Timestamp::parse(&v) {
                Some(t) => ev.timestamp = t,
                None => {
                    ev.fields.insert("_@timestamp".into(), Value::String(v));
                }
            },
            _ => {
                ev.fields.insert(k, Value::String(v));
            }
        }
    }
    for t in tags {
        if let Value::String(s) = t {
            add_tag(&mut ev.fields, s);
        }
    }
    ev
}

fn add_tag(fields: &mut Map, tag: &str) {
    let entry = fields
        .entry("tags")
        .or_insert_with(|| Value::Array(Vec::new()));
    match entry {
        Value::Array(a) => {
            if !a.iter().any(|t| t.as_str() == Some(tag)) {
                a.push(Value::from(tag));
            }
        }
        other => {
            let old = std::mem::take(other);
            *other = Value::Array(vec![old, Value::from(tag)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ours() -> Map {
        json!({
            "agent": {"name": "aggregator"}, "host": {"name": "agg"}, "ecs": {"version": "8.0.0"},
            "input": {"type": "lumberjack"}, "tags": ["via-agg"], "fields": {"tier": "agg"},
            "@metadata": {"beat": "filebeat"}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn sender_fields_survive_and_ours_fill_gaps() {
        let (shared, tags) = received_shared(&ours(), "lumberjack");
        let doc = br#"{"@timestamp":"2026-01-02T03:04:05.678Z","@metadata":{"beat":"filebeat","version":"8.1"},
            "message":"hello","agent":{"name":"edge1","type":"filebeat"},"host":{"name":"edge1"},
            "input":{"type":"filestream"},"log":{"offset":7,"file":{"path":"/a"}},"tags":["t1"]}"#;
        let ev = from_json(doc, &shared, &tags);
        assert_eq!(ev.timestamp.to_rfc3339_millis(), "2026-01-02T03:04:05.678Z");
        assert_eq!(ev.meta["version"], "8.1");
        let v = ev.to_value(false);
        assert_eq!(v["agent"], json!({"name": "edge1", "type": "filebeat"}));
        assert_eq!(v["host"], json!({"name": "edge1"}));
        assert_eq!(v["input"]["type"], "filestream");
        assert_eq!(v["log"], json!({"offset": 7, "file": {"path": "/a"}}));
        assert_eq!(v["tags"], json!(["t1", "via-agg"]));
        assert_eq!(v["fields"], json!({"tier": "agg"}));
        assert_eq!(v["message"], "hello");
        assert!(v.get("ecs").is_none());
        // A sender without input.type gets ours.
        let ev = from_json(br#"{"message":"x"}"#, &shared, &[]);
        assert_eq!(ev.to_value(false)["input"]["type"], "lumberjack");
    }

    #[test]
    fn bad_documents_become_tagged_events() {
        let (shared, _) = received_shared(&Map::new(), "lumberjack");
        let ev = from_json(b"[1,2", &shared, &[]);
        assert_eq!(ev.message.as_deref(), Some("[1,2"));
        assert_eq!(ev.fields["tags"], json!(["_jsonparsefailure"]));
        let ev = from_json(br#"{"@timestamp":"yesterday"}"#, &shared, &[]);
        assert_eq!(ev.fields["tags"], json!(["_timestampparsefailure"]));
        assert_eq!(ev.fields["_@timestamp"], "yesterday");
    }

    #[test]
    fn legacy_pairs() {
        let (shared, _) = received_shared(&Map::new(), "lumberjack");
        let ev = from_pairs(
            vec![("line".into(), "l".into()), ("file".into(), "/f".into())],
            &shared,
            &[],
        );
        assert_eq!(ev.message.as_deref(), Some("l"));
        assert_eq!(ev.fields["file"], "/f");
    }
}
