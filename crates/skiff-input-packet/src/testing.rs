//! Running a capture through the analyzer in a test: one call, events as flat maps.
//!
//! [`events`] reads a pcap/pcapng file at top speed (file timestamps, as `-t`) through the
//! protocols configured by a YAML snippet in Packetbeat's layout, and returns every event
//! flattened to dotted keys (`http.response.status_code`), as Packetbeat's system tests and
//! golden files write them. Arrays (of objects too) stay arrays.

use std::path::Path;

use skiff_event::{Map, Value};
use skiff_pipeline::BuildContext;
use tokio_util::sync::CancellationToken;

use crate::config;
use crate::engine::Engine;
use crate::input::{Replay, replay_file};

/// Flattens nested objects into dotted keys.
pub fn flatten(v: &Value) -> Map {
    fn walk(prefix: &str, v: &Value, out: &mut Map) {
        match v {
            Value::Object(m) if !m.is_empty() || prefix.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.clone());
            }
        }
    }
    let mut out = Map::new();
    walk("", v, &mut out);
    out
}

/// The events of `pcap` through the configuration `yaml` (a file in Packetbeat's layout:
/// `packetbeat.protocols: ...`), flattened. Errors: the configuration or the file.
pub fn events(pcap: &Path, yaml: &str) -> Result<Vec<Map>, String> {
    let root = skiff_config::parse_str(yaml, Some("test.yml")).map_err(|e| e.to_string())?;
    let section = root
        .get("packetbeat")
        .cloned()
        .unwrap_or_else(Node::empty_map);
    let cfg = config::parse(&section, &crate::protocols::names()).map_err(|e| e.to_string())?;
    let ctx = BuildContext::standalone("test", "8.0.0", &Default::default());
    let mut engine = Engine::new(&cfg, &ctx).map_err(|e| e.to_string())?;
    let replay = Replay {
        path: pcap.to_owned(),
        top_speed: true,
        loops: 1,
    };
    let mut all = Vec::new();
    replay_file(&mut engine, &replay, &CancellationToken::new(), |batch| {
        all.extend(batch);
        true
    })
    .map_err(|e| e.to_string())?;
    Ok(all.iter().map(|e| flatten(&e.to_value(true))).collect())
}

use skiff_config::Node;
