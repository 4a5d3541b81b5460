//! `add_network_direction`: `inbound`, `outbound`, `internal` or `external`, from whether the
//! source and destination addresses are in `internal_networks` (libbeat's).
//!
//! A missing or non-address source or destination leaves the event alone.

use std::net::IpAddr;

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::fields::OneOrMany;
use crate::network::{Range, any_contains};
use crate::{error_at, plugin};

plugin!(ADD_NETWORK_DIRECTION, "add_network_direction", build);

/// `add_network_direction`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `source`: the source address field. Required.
    source: String,
    /// `destination`: the destination address field. Required.
    destination: String,
    /// `target`: where the direction goes. Required.
    target: String,
    /// `internal_networks`: named ranges, CIDRs or addresses. Required.
    internal_networks: OneOrMany,
}

struct Direction {
    cfg: Config,
    internal: Vec<Range>,
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let mut cfg: Config = node.deserialize()?;
    let at = node.get("internal_networks").unwrap_or(node);
    let names = std::mem::replace(&mut cfg.internal_networks, OneOrMany::Many(vec![])).into_vec();
    if names.is_empty() {
        return Err(error_at(
            at,
            "`internal_networks` needs at least one network, like `private`",
        )
        .into());
    }
    let internal = names
        .iter()
        .map(|n| Range::parse(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error_at(at, e))?;
    Ok(Box::new(Direction { cfg, internal }))
}

impl Processor for Direction {
    fn process(&self, event: &mut Event) -> Verdict {
        let ip = |f: &str| {
            event
                .get(f)
                .and_then(|v| v.as_str().and_then(|s| s.parse::<IpAddr>().ok()))
        };
        let (Some(src), Some(dst)) = (ip(&self.cfg.source), ip(&self.cfg.destination)) else {
            return Verdict::Keep;
        };
        let direction = match (
            any_contains(&self.internal, src),
            any_contains(&self.internal, dst),
        ) {
            (true, true) => "internal",
            (true, false) => "outbound",
            (false, true) => "inbound",
            (false, false) => "external",
        };
        event.insert(&self.cfg.target, Value::String(direction.into()));
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;
    use serde_json::json;

    /// Filebeat's documentation example, in all four directions.
    #[test]
    fn doc_example() {
        let p = build("processors:\n  - add_network_direction:\n      source: source.ip\n      destination: destination.ip\n      target: network.direction\n      internal_networks: [ private ]\n").unwrap();
        for (s, d, want) in [
            ("8.8.8.8", "192.168.1.2", Some("inbound")),
            ("192.168.1.2", "8.8.8.8", Some("outbound")),
            ("10.0.0.1", "192.168.1.2", Some("internal")),
            ("8.8.8.8", "1.1.1.1", Some("external")),
            ("8.8.8.8", "not-an-ip", None),
        ] {
            let mut ev = event("m");
            ev.insert("source.ip", json!(s));
            ev.insert("destination.ip", json!(d));
            let v = json(&run(&p, ev).unwrap());
            assert_eq!(v["network"]["direction"].as_str(), want, "{s} -> {d}");
        }
        assert!(build("processors: [{add_network_direction: {source: a, destination: b, target: c, internal_networks: [intranet]}}]").is_err());
        let p = build("processors: [{add_network_direction: {source: a, destination: b, target: c, internal_networks: ['203.0.113.0/24', loopback]}}]").unwrap();
        let mut ev = event("m");
        ev.insert("a", json!("203.0.113.9"));
        ev.insert("b", json!("127.0.0.1"));
        assert_eq!(json(&run(&p, ev).unwrap())["c"], "internal");
    }
}
