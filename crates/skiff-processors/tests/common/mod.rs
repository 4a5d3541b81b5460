//! What the processors' integration tests share: building a `processors` list from YAML as the
//! agent does, and running it on an event made of dotted fields.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;

use serde_json::Value;
use skiff_event::Event;
use skiff_metrics::Registry;
use skiff_pipeline::{BuildContext, Processor, Verdict};

/// Builds the `processors` list of `yaml`, panicking with the configuration errors.
pub fn build(yaml: &str) -> Vec<Arc<dyn Processor>> {
    let root = skiff_config::parse_str(yaml, Some("t.yml")).unwrap();
    let ctx = BuildContext::standalone("t", "0.1.0", &Registry::new());
    skiff_processors::build_list(root.get("processors"), &ctx)
        .unwrap_or_else(|e| panic!("{yaml}\n{e}"))
}

/// Runs the processors on an event with `fields` (dotted keys), which none may drop; returns
/// the event as the outputs would write it.
pub fn run(p: &[Arc<dyn Processor>], fields: Value) -> Value {
    let mut ev = Event::new(Arc::new(serde_json::Map::new()), "m".into());
    for (k, v) in fields.as_object().unwrap() {
        ev.insert(k, v.clone());
    }
    for proc in p {
        assert_eq!(proc.process(&mut ev), Verdict::Keep);
    }
    ev.to_value(false)
}
