//! What a received message becomes: the plain inputs make `message` of it, the syslog input
//! parses it. The transports ([`crate::stream`], [`crate::datagram`]) call a [`ToEvent`] for
//! every message they cut, so each transport is written once for both.

use std::sync::Arc;

use skiff_event::{Event, Map, Timestamp, Value};

/// Turns one received message into an event.
pub trait ToEvent: Send + Sync + 'static {
    /// `shared`: the input's shared fields with `log.source.address` of the sender when the
    /// transport has one sender per connection; `source`: the sender's address for datagrams
    /// (each may come from another sender), else `None`.
    fn to_event(
        &self,
        msg: &[u8],
        shared: &Arc<Map>,
        source: Option<&str>,
        now: Timestamp,
    ) -> Event;
}

/// The `tcp`, `udp` and `unix` inputs: the message as it is (UTF-8, invalid bytes replaced).
pub struct Plain;

impl ToEvent for Plain {
    fn to_event(
        &self,
        msg: &[u8],
        shared: &Arc<Map>,
        source: Option<&str>,
        now: Timestamp,
    ) -> Event {
        let mut ev = Event::new_at(
            now,
            shared.clone(),
            String::from_utf8_lossy(msg).into_owned(),
        );
        if let Some(s) = source {
            set_source(&mut ev.fields, s);
        }
        ev
    }
}

/// Sets `log.source.address` in `fields`.
pub fn set_source(fields: &mut Map, source: &str) {
    fields.insert(
        "log".into(),
        serde_json::json!({ "source": { "address": source } }),
    );
}

/// The input's shared fields with `log.source.address` of one connection's sender.
pub fn with_source(shared: &Map, source: &str) -> Arc<Map> {
    let mut m = shared.clone();
    match m.get_mut("log") {
        Some(Value::Object(log)) => {
            log.insert("source".into(), serde_json::json!({ "address": source }));
        }
        _ => set_source(&mut m, source),
    }
    Arc::new(m)
}
