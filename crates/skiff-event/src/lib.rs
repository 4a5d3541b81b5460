//! The event that flows through skiff, from input to output.
//!
//! Every input (a file, stdin, a packet capture, a metrics probe) produces [`Event`]s; processors
//! change them; the queue holds them; outputs encode them. This crate is the one type they all
//! share, plus the three things every stage needs to do with it:
//!
//! * **Fields in the Elastic Common Schema** as Filebeat 8 emits them. An event is split into a
//!   part that is the same for every event of a source ([`Event::shared`]: `agent.*`, `host.*`,
//!   `input.type`, `log.file.path`, `fields`, `tags`, ...) kept behind one [`Arc`], and a small
//!   per-event part (`@timestamp`, `message`, `log.offset`, and whatever a parser or processor
//!   adds). Publishing a line therefore costs one allocation (the message) and one reference
//!   count, not one allocation per field: the whole pipeline's throughput depends on this.
//! * **Acknowledgements** ([`ack`]): an event carries an [`AckToken`]; an input learns, in
//!   publication order, how far its events have been delivered, and only then commits (a file
//!   offset, a disk-queue segment).
//! * **Encoding** ([`json`]): the two parts are merged while writing, so the shared part is never
//!   copied per event. [`fastjson`] encodes the shared part once per source and reuses the
//!   bytes, for the outputs that write many events of few sources (file, Elasticsearch).
//!
//! [`Arc`]: std::sync::Arc
//!
//! ```
//! use std::sync::Arc;
//! use skiff_event::{Event, Map, Value};
//!
//! let mut shared = Map::new();
//! shared.insert("input".into(), serde_json::json!({"type": "stdin"}));
//! let shared = Arc::new(shared);
//!
//! let mut ev = Event::new(shared.clone(), "hello world".to_string());
//! ev.offset = Some(12);
//! let json = skiff_event::json::to_string(&ev);
//! assert!(json.contains(r#""message":"hello world""#));
//! assert!(json.contains(r#""log":{"offset":12}"#));
//! assert!(json.contains(r#""input":{"type":"stdin"}"#));
//! ```

pub mod ack;
mod event;
pub mod fastjson;
pub mod json;
pub mod template;
mod timestamp;

pub use ack::{AckStream, AckToken, Progress, ack_all};
pub use event::{Event, FieldRef};
pub use timestamp::Timestamp;

/// A JSON value: the type of every field that is not one of the event's typed slots.
pub use serde_json::Value;

/// An object of fields, as in `serde_json`.
pub type Map = serde_json::Map<String, Value>;

/// The ECS version skiff's events follow (the version Filebeat 8.x stamps into `ecs.version`).
pub const ECS_VERSION: &str = "8.0.0";
