//! `haproxy`: `info` (`show info`) and `stat` (`show stat`, one event per proxy, server,
//! frontend and backend row) as Metricbeat's haproxy module, under `haproxy.info.*` and
//! `haproxy.stat.*` with Metricbeat 8.x's field names.
//!
//! Hosts: `tcp://host:port` or `host:port` (the stats socket over TCP), `unix:///path` (the
//! stats socket), or `http(s)://host/<stats uri>` (the stats page; `;csv` is appended to the URL
//! as Metricbeat does, so `http://host/haproxy?stats` asks `/haproxy?stats;csv`). The stats page
//! has no `show info`: `info` over HTTP is an error event that says to use the socket, as in
//! Metricbeat. `username`/`password` (or credentials in the URL) are sent to the stats page.
//! Default host `tcp://127.0.0.1:14567` (Metricbeat's).
//!
//! Why these shapes:
//! - `pid` (info) and `process_id` (stat) are published as ECS `process.pid` only: Metricbeat's
//!   index template declares `haproxy.info.pid` and `haproxy.stat.process_id` as *aliases* of
//!   `process.pid`, and Elasticsearch refuses a document that sets an alias field.
//! - `component_type` is HAProxy's `type` column: 0 frontend, 1 backend, 2 server,
//!   3 listener; `service_name` is `FRONTEND`, `BACKEND` or the server's name.
//! - Percentages: `idle.pct` = `Idle_pct` / 100 (rounded to 2 decimals, a 0–1 ratio as
//!   Metricbeat); `throttle.pct` and `ssl.frontend.session_reuse.pct` are HAProxy's own 0–100
//!   values, unchanged, as Metricbeat publishes them.
//! - `memory.max.bytes` = `Memmax_MB` × 1024 × 1024.
//! - A column or key the running HAProxy does not have (older or newer versions differ, a
//!   build without zlib has no `ZlibMemUsage`) or leaves empty is left out, as Metricbeat's
//!   optional schema fields (Metricbeat 8 publishes 0 for a missing `show info` key; skiff does
//!   not report a value it was not given); string columns that
//!   Metricbeat always publishes (`status`, `check.status`, `check.health.last`,
//!   `check.agent.last`) stay, empty or not.

use std::collections::HashMap;
use std::path::PathBuf;

use async_trait::async_trait;
use skiff_config::{ConfigErrors, Node};
use skiff_event::Value;

use super::schema::put;
use crate::http::HttpFetch;
use crate::no_options;
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module, tcp};

/// The module.
pub struct Haproxy;

impl Module for Haproxy {
    fn name(&self) -> &'static str {
        "haproxy"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["info", "stat"]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["info", "stat"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["tcp://127.0.0.1:14567"]
    }

    fn build(
        &self,
        metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        no_options(own, "haproxy")?;
        let raw = ctx
            .host
            .as_ref()
            .map_or("tcp://127.0.0.1:14567", |h| h.raw.as_str());
        let bad = |msg: String| crate::config_error(own, format!("haproxy host `{raw}`: {msg}"));
        let source = match raw.split_once("://") {
            None => Source::Tcp(raw.to_owned()),
            Some(("tcp", rest)) => Source::Tcp(rest.trim_end_matches('/').to_owned()),
            Some(("unix", path)) if !path.is_empty() => Source::Unix(PathBuf::from(path)),
            Some(("http" | "https", _)) => {
                let mut http = HttpFetch::new(ctx, "/", "").map_err(|e| bad(e.to_string()))?;
                // Metricbeat appends `;csv` to the whole URL; HAProxy looks for it anywhere after
                // its stats URI, query included.
                if !http.url.ends_with(";csv") {
                    http.url.push_str(";csv");
                }
                Source::Http(Box::new(http))
            }
            Some((scheme, _)) => {
                return Err(bad(format!(
                    "unsupported scheme `{scheme}` (use tcp://, unix:// or http(s)://)"
                )));
            }
        };
        Ok(Box::new(Fetch {
            source,
            info: metricset == "info",
        }))
    }
}

/// Where the stats come from.
enum Source {
    /// The stats socket over TCP: `host:port`.
    Tcp(String),
    /// The stats socket at a path.
    Unix(PathBuf),
    /// The stats page (URL ending in `;csv`).
    Http(Box<HttpFetch>),
}

struct Fetch {
    source: Source,
    info: bool,
}

impl Source {
    /// Runs a stats socket command (`show info`, `show stat`): HAProxy answers and closes.
    async fn socket(&self, command: &str) -> Result<String, Error> {
        let line = format!("{command}\n");
        let answer = match self {
            Source::Tcp(addr) => tcp::command(addr, line.as_bytes(), None).await?,
            Source::Unix(path) => {
                let what = path.display().to_string();
                let s =
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|e| Error::Connect {
                            what: what.clone(),
                            reason: e.to_string(),
                        })?;
                tcp::exchange(s, &what, line.as_bytes(), None).await?
            }
            Source::Http(_) => {
                return Err(Error::Other(
                    "HAProxy's stats page has no `show info`: the info metricset needs the stats \
                     socket (a tcp:// or unix:// host)"
                        .into(),
                ));
            }
        };
        if answer.starts_with("Unknown command") || answer.starts_with("Permission denied") {
            let first = answer.lines().next().unwrap_or_default();
            return Err(Error::Other(format!(
                "HAProxy refused `{command}`: {first}"
            )));
        }
        Ok(answer)
    }
}

#[async_trait]
impl Fetcher for Fetch {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        if self.info {
            let answer = self.source.socket("show info").await?;
            return Ok(vec![info(&answer)?]);
        }
        let (what, csv) = match &self.source {
            Source::Http(http) => (
                http.url.clone(),
                String::from_utf8_lossy(&http.get().await?).into_owned(),
            ),
            other => ("show stat".to_owned(), other.socket("show stat").await?),
        };
        stat(&csv).map_err(|e| Error::parse(what, e))
    }
}

/// How a value is turned into a field.
#[derive(Clone, Copy)]
enum Kind {
    /// An integer; left out when empty or not a number.
    Int,
    /// A float; left out when empty or not a number.
    Float,
    /// `Idle_pct`: a 0–100 value published as a 0–1 ratio with 2 decimals.
    Ratio,
    /// `Memmax_MB`: megabytes published as bytes.
    Mebibytes,
    /// A string, published even when empty.
    Str,
    /// A string, left out when empty.
    OptStr,
}

fn value(raw: &str, kind: Kind) -> Option<Value> {
    let raw = raw.trim();
    match kind {
        Kind::Int => raw.parse::<i64>().ok().map(Value::from),
        Kind::Float => raw
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from),
        Kind::Ratio => raw
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| Value::from(f.round() / 100.0)),
        Kind::Mebibytes => raw
            .parse::<i64>()
            .ok()
            .and_then(|mb| mb.checked_mul(1024 * 1024))
            .map(Value::from),
        Kind::Str => Some(Value::from(raw)),
        Kind::OptStr => (!raw.is_empty()).then(|| Value::from(raw)),
    }
}

/// `show info` keys -> `haproxy.info.*` (`process.pid` for `Pid`).
const INFO: &[(&str, &str, Kind)] = &[
    ("Nbthread", "threads", Kind::Int),
    ("Nbproc", "processes", Kind::Int),
    ("Process_num", "process_num", Kind::Int),
    ("Pid", "pid", Kind::Int),
    ("Ulimit-n", "ulimit_n", Kind::Int),
    ("Tasks", "tasks", Kind::Int),
    ("Run_queue", "run_queue", Kind::Int),
    ("Stopping", "stopping", Kind::Int),
    ("Jobs", "jobs", Kind::Int),
    ("Unstoppable Jobs", "unstoppable_jobs", Kind::Int),
    ("Listeners", "listeners", Kind::Int),
    ("DroppedLogs", "dropped_logs", Kind::Int),
    ("BusyPolling", "busy_polling", Kind::Int),
    ("FailedResolutions", "failed_resolutions", Kind::Int),
    ("Uptime_sec", "uptime.sec", Kind::Int),
    ("Memmax_MB", "memory.max.bytes", Kind::Mebibytes),
    ("ActivePeers", "peers.active", Kind::Int),
    ("ConnectedPeers", "peers.connected", Kind::Int),
    ("TotalBytesOut", "bytes.out.total", Kind::Int),
    ("BytesOutRate", "bytes.out.rate", Kind::Int),
    ("CompressBpsIn", "compress.bps.in", Kind::Int),
    ("CompressBpsOut", "compress.bps.out", Kind::Int),
    ("CompressBpsRateLim", "compress.bps.rate_limit", Kind::Int),
    ("ConnRate", "connection.rate.value", Kind::Int),
    ("ConnRateLimit", "connection.rate.limit", Kind::Int),
    ("MaxConnRate", "connection.rate.max", Kind::Int),
    ("CurrSslConns", "connection.ssl.current", Kind::Int),
    ("CumSslConns", "connection.ssl.total", Kind::Int),
    ("MaxSslConns", "connection.ssl.max", Kind::Int),
    ("CurrConns", "connection.current", Kind::Int),
    ("CumConns", "connection.total", Kind::Int),
    ("Hard_maxconn", "connection.hard_max", Kind::Int),
    ("Maxconn", "connection.max", Kind::Int),
    ("CumReq", "requests.total", Kind::Int),
    ("Maxsock", "sockets.max", Kind::Int),
    ("PipesUsed", "pipes.used", Kind::Int),
    ("PipesFree", "pipes.free", Kind::Int),
    ("Maxpipes", "pipes.max", Kind::Int),
    ("SessRate", "session.rate.value", Kind::Int),
    ("SessRateLimit", "session.rate.limit", Kind::Int),
    ("MaxSessRate", "session.rate.max", Kind::Int),
    ("SslRate", "ssl.rate.value", Kind::Int),
    ("SslRateLimit", "ssl.rate.limit", Kind::Int),
    ("MaxSslRate", "ssl.rate.max", Kind::Int),
    (
        "SslFrontendKeyRate",
        "ssl.frontend.key_rate.value",
        Kind::Int,
    ),
    (
        "SslFrontendMaxKeyRate",
        "ssl.frontend.key_rate.max",
        Kind::Int,
    ),
    (
        "SslFrontendSessionReuse_pct",
        "ssl.frontend.session_reuse.pct",
        Kind::Float,
    ),
    ("SslBackendKeyRate", "ssl.backend.key_rate.value", Kind::Int),
    (
        "SslBackendMaxKeyRate",
        "ssl.backend.key_rate.max",
        Kind::Int,
    ),
    ("SslCacheLookups", "ssl.cached_lookups", Kind::Int),
    ("SslCacheMisses", "ssl.cache_misses", Kind::Int),
    ("ZlibMemUsage", "zlib_mem_usage.value", Kind::Int),
    ("MaxZlibMemUsage", "zlib_mem_usage.max", Kind::Int),
    ("Idle_pct", "idle.pct", Kind::Ratio),
];

/// The event of a `show info` answer (`Key: value` lines).
pub fn info(answer: &str) -> Result<MetricEvent, Error> {
    let pairs: HashMap<&str, &str> = answer
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    if pairs.is_empty() {
        return Err(Error::parse(
            "show info",
            "no `Key: value` lines in the answer",
        ));
    }
    let mut ev = MetricEvent::default();
    for (from, to, kind) in INFO {
        let Some(v) = pairs.get(from).and_then(|raw| value(raw, *kind)) else {
            continue;
        };
        if *to == "pid" {
            put(&mut ev.root_fields, "process.pid", v);
        } else {
            put(&mut ev.fields, to, v);
        }
    }
    Ok(ev)
}

/// `show stat` CSV columns -> `haproxy.stat.*` (`process.pid` for `pid`).
const STAT: &[(&str, &str, Kind)] = &[
    ("status", "status", Kind::Str),
    ("weight", "weight", Kind::Int),
    ("downtime", "downtime", Kind::Int),
    ("type", "component_type", Kind::Int),
    ("pid", "process_id", Kind::Int),
    ("svname", "service_name", Kind::Str),
    ("bin", "in.bytes", Kind::Int),
    ("bout", "out.bytes", Kind::Int),
    ("lastchg", "last_change", Kind::Int),
    ("throttle", "throttle.pct", Kind::Int),
    ("lbtot", "selected.total", Kind::Int),
    ("tracked", "tracked.id", Kind::Int),
    ("cookie", "cookie", Kind::OptStr),
    ("algo", "load_balancing_algorithm", Kind::OptStr),
    ("wretr", "connection.retried", Kind::Int),
    ("ctime", "connection.time.avg", Kind::Int),
    ("conn_rate", "connection.rate", Kind::Int),
    ("conn_rate_max", "connection.rate_max", Kind::Int),
    ("conn_tot", "connection.total", Kind::Int),
    ("connect", "connection.attempt.total", Kind::Int),
    ("reuse", "connection.reuse.total", Kind::Int),
    ("srv_icur", "connection.idle.total", Kind::Int),
    ("src_ilim", "connection.idle.limit", Kind::Int),
    ("cache_lookups", "connection.cache.lookup.total", Kind::Int),
    ("cache_hits", "connection.cache.hits", Kind::Int),
    ("dreq", "request.denied", Kind::Int),
    ("dcon", "request.denied_by_connection_rules", Kind::Int),
    ("dses", "request.denied_by_session_rules", Kind::Int),
    ("qcur", "request.queued.current", Kind::Int),
    ("qmax", "request.queued.max", Kind::Int),
    ("ereq", "request.errors", Kind::Int),
    ("wredis", "request.redispatched", Kind::Int),
    ("econ", "request.connection.errors", Kind::Int),
    ("req_rate", "request.rate.value", Kind::Int),
    ("req_rate_max", "request.rate.max", Kind::Int),
    ("req_tot", "request.total", Kind::Int),
    ("intercepted", "request.intercepted", Kind::Int),
    ("eresp", "response.errors", Kind::Int),
    ("rtime", "response.time.avg", Kind::Int),
    ("dresp", "response.denied", Kind::Int),
    ("hrsp_1xx", "response.http.1xx", Kind::Int),
    ("hrsp_2xx", "response.http.2xx", Kind::Int),
    ("hrsp_3xx", "response.http.3xx", Kind::Int),
    ("hrsp_4xx", "response.http.4xx", Kind::Int),
    ("hrsp_5xx", "response.http.5xx", Kind::Int),
    ("hrsp_other", "response.http.other", Kind::Int),
    ("wrew", "header.rewrite.failed.total", Kind::Int),
    ("scur", "session.current", Kind::Int),
    ("smax", "session.max", Kind::Int),
    ("slim", "session.limit", Kind::Int),
    ("stot", "session.total", Kind::Int),
    ("rate", "session.rate.value", Kind::Int),
    ("rate_lim", "session.rate.limit", Kind::Int),
    ("rate_max", "session.rate.max", Kind::Int),
    ("check_status", "check.status", Kind::Str),
    ("check_code", "check.code", Kind::Int),
    ("check_duration", "check.duration", Kind::Int),
    ("last_chk", "check.health.last", Kind::Str),
    ("hanafail", "check.health.fail", Kind::Int),
    ("last_agt", "check.agent.last", Kind::Str),
    ("chkfail", "check.failed", Kind::Int),
    ("chkdown", "check.down", Kind::Int),
    ("cli_abrt", "client.aborted", Kind::Int),
    ("sid", "server.id", Kind::Int),
    ("srv_abrt", "server.aborted", Kind::Int),
    ("act", "server.active", Kind::Int),
    ("bck", "server.backup", Kind::Int),
    ("comp_in", "compressor.in.bytes", Kind::Int),
    ("comp_out", "compressor.out.bytes", Kind::Int),
    ("comp_byp", "compressor.bypassed.bytes", Kind::Int),
    ("comp_rsp", "compressor.response.bytes", Kind::Int),
    ("iid", "proxy.id", Kind::Int),
    ("pxname", "proxy.name", Kind::Str),
    ("mode", "proxy.mode", Kind::OptStr),
    ("qtime", "queue.time.avg", Kind::Int),
    ("qlimit", "queue.limit", Kind::Int),
    ("agent_status", "agent.status", Kind::OptStr),
    ("agent_code", "agent.code", Kind::Int),
    ("agent_desc", "agent.description", Kind::OptStr),
    ("agent_rise", "agent.rise", Kind::OptStr),
    ("agent_fall", "agent.fall", Kind::OptStr),
    ("agent_health", "agent.health", Kind::OptStr),
    ("agent_duration", "agent.duration", Kind::Int),
    ("check_desc", "agent.check.description", Kind::OptStr),
    ("check_rise", "agent.check.rise", Kind::OptStr),
    ("check_fall", "agent.check.fall", Kind::OptStr),
    ("check_health", "agent.check.health", Kind::OptStr),
    ("addr", "source.address", Kind::OptStr),
];

/// The events of a `show stat` CSV answer: one per row.
pub fn stat(csv_text: &str) -> Result<Vec<MetricEvent>, String> {
    // The header line is `# pxname,svname,...`.
    let body = csv_text.trim_start().strip_prefix('#').unwrap_or(csv_text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("CSV header: {e}"))?
        .iter()
        .map(str::to_owned)
        .collect();
    let columns: Vec<(usize, &str, Kind)> = STAT
        .iter()
        .filter_map(|(from, to, kind)| {
            header
                .iter()
                .position(|h| h == from)
                .map(|i| (i, *to, *kind))
        })
        .collect();
    if !columns.iter().any(|(_, to, _)| *to == "proxy.name") {
        return Err(format!(
            "not HAProxy's stats CSV (no `pxname` column in `{}`)",
            header.join(",").chars().take(80).collect::<String>()
        ));
    }
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| format!("CSV: {e}"))?;
        let mut ev = MetricEvent::default();
        for (i, to, kind) in &columns {
            let Some(v) = row.get(*i).and_then(|raw| value(raw, *kind)) else {
                continue;
            };
            if *to == "process_id" {
                put(&mut ev.root_fields, "process.pid", v);
            } else {
                put(&mut ev.fields, to, v);
            }
        }
        out.push(ev);
    }
    Ok(out)
}

/// `component_type` in words (0 frontend, 1 backend, 2 server, 3 listener), for readers of the
/// events and the tests.
pub fn component_type_name(t: i64) -> Option<&'static str> {
    match t {
        0 => Some("frontend"),
        1 => Some("backend"),
        2 => Some("server"),
        3 => Some("listener"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_formulas() {
        let ev = info(
            "Name: HAProxy\nVersion: 2.6.12\nPid: 42\nUptime_sec: 9\nMemmax_MB: 3\nIdle_pct: 87\n\
             SslFrontendSessionReuse_pct: 50\nCurrConns: 1\nRelease_date: 2023/03/17\n",
        )
        .unwrap();
        assert_eq!(ev.root_fields["process"]["pid"], 42);
        assert!(ev.fields.get("pid").is_none());
        assert_eq!(ev.fields["memory"]["max"]["bytes"], 3 * 1024 * 1024);
        assert_eq!(ev.fields["idle"]["pct"], 0.87);
        assert_eq!(ev.fields["ssl"]["frontend"]["session_reuse"]["pct"], 50.0);
        assert_eq!(ev.fields["uptime"]["sec"], 9);
        assert_eq!(ev.fields["connection"]["current"], 1);
        assert!(info("garbage").is_err());
    }

    #[test]
    fn stat_rows_quotes_and_missing_columns() {
        let csv = "# pxname,svname,qcur,scur,status,type,pid,check_status,last_chk,check_desc,\n\
                   web,FRONTEND,,3,OPEN,0,7,,,,\n\
                   app,s1,0,0,UP,2,7,L4OK,\"a, b\",\"Layer4 check passed\",\n";
        let evs = stat(csv).unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].fields["proxy"]["name"], "web");
        assert_eq!(evs[0].fields["service_name"], "FRONTEND");
        assert_eq!(evs[0].fields["session"]["current"], 3);
        assert!(
            evs[0].fields.get("request").is_none(),
            "empty qcur is left out"
        );
        assert_eq!(evs[0].fields["check"]["status"], "");
        assert_eq!(evs[0].root_fields["process"]["pid"], 7);
        assert_eq!(evs[1].fields["check"]["health"]["last"], "a, b");
        assert_eq!(
            evs[1].fields["agent"]["check"]["description"],
            "Layer4 check passed"
        );
        assert_eq!(evs[1].fields["request"]["queued"]["current"], 0);
        assert!(stat("<html>nope</html>").is_err());
        assert!(stat("").is_err());
    }

    proptest::proptest! {
        #[test]
        fn hostile_answers_do_not_panic(text in "(?s).{0,400}", header in proptest::bool::ANY) {
            let text = if header { format!("# pxname,svname,scur,type\n{text}") } else { text };
            let _ = stat(&text);
            let _ = info(&text);
        }
    }
}
