//! `add_observer_metadata`: adds `observer.*` — the machine skiff runs on, as the observer of
//! the events (libbeat's, beta there): `observer.hostname`, `observer.type` (`filebeat`, the
//! type skiff ships as), `observer.vendor` (`skiff`), `observer.os.*`, `observer.geo.*`, and
//! with `netinfo.enabled` the non-loopback addresses and MACs in `observer.ip` and
//! `observer.mac`.
//!
//! As `add_host_metadata`, the facts are read once when the processor is built (the
//! interfaces from `/sys/class/net` and `/proc/net`, Linux only) and added to each source's
//! shared fields, so this costs no allocation per event; `cache.ttl` is accepted and ignored.
//! Fields the event already has under `observer` are kept.

use serde::Deserialize;
use skiff_config::{ConfigErrors, Duration, Node};
use skiff_event::{Event, Map, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::metadata::{Overlay, host_facts};
use crate::plugin;

plugin!(ADD_OBSERVER_METADATA, "add_observer_metadata", build);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetInfo {
    /// `netinfo.enabled`: add `observer.ip` and `observer.mac`. Default false.
    #[serde(default)]
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cache {
    #[serde(default)]
    #[allow(dead_code)]
    ttl: Option<Duration>,
}

/// `add_observer_metadata`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `netinfo.enabled`: see [`NetInfo`]. Default false.
    #[serde(default)]
    netinfo: Option<NetInfo>,
    /// `cache.ttl`: accepted; the facts are read once at start.
    #[serde(default)]
    cache: Option<Cache>,
    /// `geo.*`: added as `observer.geo.*`. Default none.
    #[serde(default)]
    geo: Option<Map>,
}

struct AddObserver(Overlay);

/// The machine's non-loopback IP addresses and MAC addresses.
pub fn net_info() -> (Vec<String>, Vec<String>) {
    let mut ips = Vec::new();
    // IPv4: the `/32 host LOCAL` entries of the routing trie are this machine's addresses.
    if let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last = "";
        for line in trie.lines() {
            let t = line.trim_start_matches([' ', '|', '-', '+']).trim();
            if line.contains("/32 host LOCAL") {
                if let Ok(ip) = last.parse::<std::net::Ipv4Addr>()
                    && !ip.is_loopback()
                    && !ips.contains(&ip.to_string())
                {
                    ips.push(ip.to_string());
                }
            } else {
                last = t;
            }
        }
    }
    // IPv6: `/proc/net/if_inet6` lines are `address(32 hex) index prefix scope flags name`.
    if let Ok(text) = std::fs::read_to_string("/proc/net/if_inet6") {
        for line in text.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() == 6
                && cols[5] != "lo"
                && cols[0].len() == 32
                && let Ok(n) = u128::from_str_radix(cols[0], 16)
            {
                ips.push(std::net::Ipv6Addr::from(n).to_string());
            }
        }
    }
    let mut macs = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
        let mut names: Vec<_> = dir.filter_map(Result::ok).map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            if n == "lo" {
                continue;
            }
            let p = std::path::Path::new("/sys/class/net")
                .join(&n)
                .join("address");
            if let Ok(mac) = std::fs::read_to_string(p) {
                let mac = mac.trim().to_owned();
                if !mac.is_empty() && mac != "00:00:00:00:00:00" && !macs.contains(&mac) {
                    macs.push(mac);
                }
            }
        }
    }
    (ips, macs)
}

fn build(node: &Node, ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    let _ = &cfg.cache;
    let host = host_facts(&ctx.agent.hostname);
    let mut obs = Map::new();
    obs.insert("hostname".into(), Value::from(ctx.agent.hostname.clone()));
    obs.insert("type".into(), Value::from("filebeat"));
    obs.insert("vendor".into(), Value::from("skiff"));
    if let Some(os) = host.get("os") {
        obs.insert("os".into(), os.clone());
    }
    if cfg.netinfo.is_some_and(|n| n.enabled) {
        let (ips, macs) = net_info();
        obs.insert(
            "ip".into(),
            Value::Array(ips.into_iter().map(Value::String).collect()),
        );
        obs.insert(
            "mac".into(),
            Value::Array(macs.into_iter().map(Value::String).collect()),
        );
    }
    if let Some(geo) = cfg.geo {
        obs.insert("geo".into(), Value::Object(geo));
    }
    let mut patch = Map::new();
    patch.insert("observer".into(), Value::Object(obs));
    Ok(Box::new(AddObserver(Overlay::new(patch, false))))
}

impl Processor for AddObserver {
    fn process(&self, event: &mut Event) -> Verdict {
        self.0.apply(event);
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::testing::*;
    use serde_json::json;

    /// Filebeat's documentation example; the IPv4 addresses are checked against what `ip`
    /// (iproute2, installed by `scripts/ensure-test-deps`) reports.
    #[test]
    fn doc_example() {
        let p = build("processors:\n- add_observer_metadata:\n    netinfo.enabled: true\n    cache.ttl: 5m\n    geo:\n      name: nyc-dc1-rack1\n      location: 40.7128, -74.0060\n      continent_name: North America\n      country_iso_code: US\n      region_name: New York\n      region_iso_code: NY\n      city_name: New York\n").unwrap();
        let v = json(&run(&p, event("m")).unwrap());
        let o = &v["observer"];
        assert_eq!(o["hostname"], "myhost");
        assert_eq!(
            o["geo"],
            json!({"name": "nyc-dc1-rack1", "location": "40.7128, -74.0060", "continent_name": "North America", "country_iso_code": "US", "region_name": "New York", "region_iso_code": "NY", "city_name": "New York"})
        );
        assert_eq!(o["os"]["type"], "linux");
        let ips: Vec<String> = o["ip"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect();
        assert!(
            ips.iter().all(|i| i
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| !a.is_loopback())),
            "{ips:?}"
        );
        let out = std::process::Command::new("ip")
            .args(["-o", "addr", "show", "scope", "global"])
            .output()
            .expect("`ip` (iproute2) is needed: run scripts/ensure-test-deps");
        let text = String::from_utf8_lossy(&out.stdout);
        for word in text.split_whitespace().filter(|w| w.contains('/')) {
            let addr = word.split('/').next().unwrap();
            if addr.parse::<std::net::Ipv4Addr>().is_ok() {
                assert!(ips.iter().any(|i| i == addr), "{addr} missing from {ips:?}");
            }
        }
        for m in o["mac"].as_array().unwrap() {
            let m = m.as_str().unwrap();
            assert_eq!(m.len(), 17, "{m}");
        }
        // Without netinfo, no addresses; the event's own observer fields are kept.
        let p = build("processors: [{add_observer_metadata: ~}]").unwrap();
        let mut ev = event("m");
        ev.insert("observer.hostname", json!("mine"));
        let v = json(&run(&p, ev).unwrap());
        assert_eq!(v["observer"]["hostname"], "mine");
        assert!(v["observer"].get("ip").is_none());
        assert_eq!(v["observer"]["vendor"], "skiff");
    }
}
