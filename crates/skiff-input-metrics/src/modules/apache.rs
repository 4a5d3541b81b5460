//! `apache`: `status` from mod_status's machine-readable page (`/server-status?auto`), as
//! Metricbeat's apache module. Lines a server version lacks are left out of the event (servers
//! before 2.4.13 have no `ServerUptimeSeconds`, CPU or load lines; prefork has no `Conns*`).
//! Options: `server_status_path` (default `/server-status`). Default host `http://127.0.0.1`.

use async_trait::async_trait;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Map, Value};

use crate::http::{self, HttpFetch};
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module};

/// The module.
pub struct Apache;

impl Module for Apache {
    fn name(&self) -> &'static str {
        "apache"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["status"]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["status"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["http://127.0.0.1"]
    }

    fn build(
        &self,
        _metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        let (http, hostname) = http::status_page(ctx, own, "auto")?;
        Ok(Box::new(Status { http, hostname }))
    }
}

struct Status {
    http: HttpFetch,
    hostname: String,
}

/// Where each `?auto` line goes, and whether it is an integer.
const FIELDS: &[(&str, &str, bool)] = &[
    ("Total Accesses", "total_accesses", true),
    ("Total kBytes", "total_kbytes", true),
    ("ReqPerSec", "requests_per_sec", false),
    ("BytesPerSec", "bytes_per_sec", false),
    ("BytesPerReq", "bytes_per_request", false),
    ("BusyWorkers", "workers.busy", true),
    ("IdleWorkers", "workers.idle", true),
    ("ServerUptimeSeconds", "uptime.server_uptime", true),
    ("Uptime", "uptime.uptime", true),
    ("CPULoad", "cpu.load", false),
    ("CPUUser", "cpu.user", false),
    ("CPUSystem", "cpu.system", false),
    ("CPUChildrenUser", "cpu.children_user", false),
    ("CPUChildrenSystem", "cpu.children_system", false),
    ("ConnsTotal", "connections.total", true),
    ("ConnsAsyncWriting", "connections.async.writing", true),
    ("ConnsAsyncKeepAlive", "connections.async.keep_alive", true),
    ("ConnsAsyncClosing", "connections.async.closing", true),
    ("Load1", "load.1", false),
    ("Load5", "load.5", false),
    ("Load15", "load.15", false),
];

/// Scoreboard characters and their field.
const SCOREBOARD: &[(char, &str)] = &[
    ('_', "waiting_for_connection"),
    ('S', "starting_up"),
    ('R', "reading_request"),
    ('W', "sending_reply"),
    ('K', "keepalive"),
    ('D', "dns_lookup"),
    ('C', "closing_connection"),
    ('L', "logging"),
    ('G', "gracefully_finishing"),
    ('I', "idle_cleanup"),
    ('.', "open_slot"),
];

fn put(m: &mut Map, dotted: &str, v: Value) {
    match dotted.split_once('.') {
        None => {
            m.insert(dotted.to_owned(), v);
        }
        Some((head, tail)) => {
            let e = m
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = e {
                put(inner, tail, v);
            }
        }
    }
}

/// The event fields of one `?auto` page.
pub fn parse(page: &str, hostname: &str) -> Map {
    let mut m = Map::new();
    put(&mut m, "hostname", Value::from(hostname));
    for line in page.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "Scoreboard" {
            let mut sb = Map::new();
            let mut total = 0u64;
            for (c, name) in SCOREBOARD {
                let n = value.chars().filter(|x| x == c).count() as u64;
                total += n;
                sb.insert((*name).into(), Value::from(n));
            }
            sb.insert("total".into(), Value::from(total));
            m.insert("scoreboard".into(), Value::Object(sb));
            continue;
        }
        let Some((_, field, int)) = FIELDS.iter().find(|(k, _, _)| *k == key) else {
            continue;
        };
        let v = if *int {
            value.parse::<i64>().ok().map(Value::from)
        } else {
            value
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Value::from)
        };
        if let Some(v) = v {
            put(&mut m, field, v);
        }
    }
    m
}

#[async_trait]
impl Fetcher for Status {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let body = self.http.get().await?;
        let page = String::from_utf8_lossy(&body);
        if !page.contains("Scoreboard:") && !page.contains("Total Accesses:") {
            return Err(Error::parse(
                &self.http.url,
                "not a mod_status `?auto` page: is `server_status_path` right and `ExtendedStatus` on?",
            ));
        }
        Ok(vec![MetricEvent::new(parse(&page, &self.hostname))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/corpus/metricbeat-modules/apache/status/test")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn the_three_upstream_pages() {
        // 2.4.23 prefork: no Conns* lines, a TLS section.
        let m = parse(&corpus("status_apache-2.4.23-CentOS6"), "h");
        assert!(m.get("connections").is_none(), "{m:?}");
        let total = m["scoreboard"]["total"].as_u64().unwrap();
        assert!(total > 0);
        let sum: u64 = m["scoreboard"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "total")
            .map(|(_, v)| v.as_u64().unwrap())
            .sum();
        assert_eq!(sum, total);
        for f in [
            "status_apache-2.4.18-Debian",
            "status_apache-2.4.24-Ubuntu-16.04",
        ] {
            let m = parse(&corpus(f), "h");
            assert!(m["total_accesses"].is_i64(), "{f}");
            assert!(m["workers"]["busy"].is_i64(), "{f}");
        }
    }
}
