//! `zookeeper`: four-letter-word commands over TCP, as Metricbeat's zookeeper module: `mntr`
//! (`zookeeper.mntr.*`) and `server` (`srvr`, `zookeeper.server.*`). The server must allow
//! them (`4lw.commands.whitelist=mntr,srvr`). Default host `localhost:2181`.

use async_trait::async_trait;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Map, Value};

use super::schema::put;
use crate::no_options;
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module, tcp};

/// The module.
pub struct ZooKeeper;

impl Module for ZooKeeper {
    fn name(&self) -> &'static str {
        "zookeeper"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["mntr", "server"]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["mntr", "server"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["localhost:2181"]
    }

    fn build(
        &self,
        metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        no_options(own, "zookeeper")?;
        let raw = ctx
            .host
            .as_ref()
            .map_or("localhost:2181", |h| h.raw.as_str());
        let addr = tcp::addr(raw);
        let hostname = addr
            .rsplit_once(':')
            .map_or(addr.as_str(), |(h, _)| h)
            .to_owned();
        Ok(Box::new(Fetch {
            addr,
            hostname,
            server: metricset == "server",
        }))
    }
}

struct Fetch {
    addr: String,
    hostname: String,
    server: bool,
}

const MNTR: &[(&str, &str)] = &[
    ("zk_approximate_data_size", "approximate_data_size"),
    ("zk_avg_latency", "latency.avg"),
    ("zk_min_latency", "latency.min"),
    ("zk_max_latency", "latency.max"),
    ("zk_ephemerals_count", "ephemerals_count"),
    ("zk_max_file_descriptor_count", "max_file_descriptor_count"),
    ("zk_num_alive_connections", "num_alive_connections"),
    (
        "zk_open_file_descriptor_count",
        "open_file_descriptor_count",
    ),
    ("zk_outstanding_requests", "outstanding_requests"),
    ("zk_packets_received", "packets.received"),
    ("zk_packets_sent", "packets.sent"),
    ("zk_watch_count", "watch_count"),
    ("zk_znode_count", "znode_count"),
    ("zk_followers", "followers"),
    ("zk_synced_followers", "synced_followers"),
    ("zk_pending_syncs", "pending_syncs"),
];

fn number(v: &str) -> Option<Value> {
    v.parse::<i64>().map(Value::from).ok().or_else(|| {
        v.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from)
    })
}

/// The event of a `mntr` answer (tab-separated key/value lines).
pub fn mntr(answer: &str, hostname: &str) -> MetricEvent {
    let mut f = Map::new();
    f.insert("hostname".into(), Value::from(hostname));
    let mut ev = MetricEvent::default();
    for line in answer.lines() {
        let Some((k, v)) = line.split_once('\t') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "zk_server_state" => {
                f.insert("server_state".into(), Value::from(v));
            }
            "zk_version" => {
                // Only `service.version`: Metricbeat's template declares `zookeeper.mntr.version`
                // an alias of it, and Elasticsearch refuses a document that sets an alias.
                put(&mut ev.root_fields, "service.version", Value::from(v));
            }
            _ => {
                if let Some((_, to)) = MNTR.iter().find(|(from, _)| *from == k)
                    && let Some(n) = number(v)
                {
                    put(&mut f, to, n);
                }
            }
        }
    }
    ev.fields = f;
    ev
}

/// The event of a `srvr` answer.
pub fn srvr(answer: &str) -> MetricEvent {
    let mut f = Map::new();
    let mut ev = MetricEvent::default();
    for line in answer.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "Zookeeper version" => {
                // `3.5.5-390fe..., built on 05/03/2019 12:07 GMT`; 3.6 and later (found by the
                // live test against Debian's 3.8): `built on 2024-12-29 17:54 UTC`.
                let (version, date) = v.split_once(", built on ").unwrap_or((v, ""));
                put(&mut ev.root_fields, "service.version", Value::from(version));
                let date = date.trim_end_matches(" GMT").trim_end_matches(" UTC");
                let parsed = chrono::NaiveDateTime::parse_from_str(date, "%m/%d/%Y %H:%M")
                    .or_else(|_| chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M"));
                if let Ok(t) = parsed {
                    f.insert(
                        "version_date".into(),
                        Value::from(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    );
                }
            }
            "Latency min/avg/max" => {
                let parts: Vec<&str> = v.split('/').collect();
                if let [min, avg, max] = parts.as_slice() {
                    for (name, x) in [("min", min), ("avg", avg), ("max", max)] {
                        if let Some(n) = number(x) {
                            put(&mut f, &format!("latency.{name}"), n);
                        }
                    }
                }
            }
            "Received" | "Sent" | "Connections" | "Outstanding" => {
                if let Some(n) = number(v) {
                    f.insert(k.to_lowercase(), n);
                }
            }
            "Node count" => {
                if let Some(n) = number(v) {
                    f.insert("node_count".into(), n);
                }
            }
            "Mode" => {
                f.insert("mode".into(), Value::from(v));
            }
            "Zxid" => {
                f.insert("zxid".into(), Value::from(v));
                if let Ok(z) = u64::from_str_radix(v.trim_start_matches("0x"), 16) {
                    f.insert("epoch".into(), Value::from(z >> 32));
                    f.insert("count".into(), Value::from(z & 0xffff_ffff));
                }
            }
            _ => {}
        }
    }
    ev.fields = f;
    ev
}

#[async_trait]
impl Fetcher for Fetch {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let cmd: &[u8] = if self.server { b"srvr" } else { b"mntr" };
        let answer = tcp::command(&self.addr, cmd, None).await?;
        if answer.contains("is not executed because it is not in the whitelist") {
            return Err(Error::Other(format!(
                "{}: {} (add it to 4lw.commands.whitelist)",
                self.addr,
                answer.trim()
            )));
        }
        // A server that is starting or lost its quorum answers this notice instead of data.
        if answer.contains("not currently serving requests") {
            return Err(Error::Other(format!("{}: {}", self.addr, answer.trim())));
        }
        if answer.trim().is_empty() {
            return Err(Error::parse(&self.addr, "empty answer"));
        }
        Ok(vec![if self.server {
            srvr(&answer)
        } else {
            mntr(&answer, &self.hostname)
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_mntr_answers() {
        for f in ["mntr.35.leader.txt", "mntr.37.leader.txt"] {
            let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/corpus/metricbeat-modules/zookeeper/mntr/test")
                .join(f);
            let ev = mntr(&std::fs::read_to_string(p).unwrap(), "h");
            assert_eq!(ev.fields["server_state"], "leader", "{f}");
            assert!(ev.fields["synced_followers"].is_i64(), "{f}");
            assert!(ev.fields["latency"]["avg"].is_number(), "{f}");
            assert!(ev.root_fields["service"]["version"].is_string(), "{f}");
            assert!(ev.fields.get("version").is_none(), "an alias: {f}");
        }
    }

    #[test]
    fn srvr_fields() {
        let ev = srvr(
            "Zookeeper version: 3.5.5-390fe37ea45dee01bf87dc1c042b5e3dcce88653, built on 05/03/2019 12:07 GMT\nLatency min/avg/max: 0/0/0\nReceived: 11\nSent: 10\nConnections: 1\nOutstanding: 0\nZxid: 0x100000002\nMode: standalone\nNode count: 5\n",
        );
        assert_eq!(ev.fields["version_date"], "2019-05-03T12:07:00Z");
        let newer = srvr("Zookeeper version: 3.8.0-abc, built on 2024-12-29 17:54 UTC\n");
        assert_eq!(newer.fields["version_date"], "2024-12-29T17:54:00Z");
        assert_eq!(ev.fields["epoch"], 1);
        assert_eq!(ev.fields["count"], 2);
        assert_eq!(ev.fields["node_count"], 5);
    }
}
