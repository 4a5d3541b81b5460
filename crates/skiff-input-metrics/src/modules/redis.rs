//! `redis`: `info` (`INFO all` mapped to Metricbeat's `redis.info.*`, `SLOWLOG LEN`,
//! `commandstats`) and `keyspace` (`INFO keyspace`, one event per database), as Metricbeat's
//! redis module. Options: `password` (and `username` for Redis 6 ACLs), `db` is not used.
//! Default host `127.0.0.1:6379`; `redis://[user:pass@]host:port` hosts are understood.
//!
//! The RESP client is a few lines here rather than the `redis` crate: two commands, replies
//! read with a size cap, and the crate's connection manager would be most of the binary's
//! Redis code for nothing.

use async_trait::async_trait;
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::schema::put;
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module};

/// The module.
pub struct Redis;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
// `maxconn` and `idle_timeout` are accepted so that Metricbeat configurations load.
#[allow(dead_code)]
struct Config {
    /// `network`: only `tcp` (default).
    #[serde(default)]
    network: Option<String>,
    /// `maxconn`, `idle_timeout`: accepted; one connection per fetch.
    #[serde(default)]
    maxconn: Option<u32>,
    /// See `maxconn`.
    #[serde(default)]
    idle_timeout: Option<skiff_config::Duration>,
}

/// Largest reply read (an `INFO all` is a few KiB).
const MAX_REPLY: usize = 4 << 20;

impl Module for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["info", "keyspace"]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["info", "keyspace"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["127.0.0.1:6379"]
    }

    fn build(
        &self,
        metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        let cfg: Config = own.deserialize()?;
        if let Some(n) = cfg.network.as_deref().filter(|n| *n != "tcp") {
            let at = own.get("network").unwrap_or(own);
            return Err(ConfigErrors(vec![skiff_config::ConfigError::new(
                at.path.clone(),
                at.mark.clone(),
                format!("network `{n}` is not supported: only `tcp`"),
            )]));
        }
        let raw = ctx
            .host
            .as_ref()
            .map_or("127.0.0.1:6379", |h| h.raw.as_str());
        let (mut user, mut pass) = (ctx.username.clone(), ctx.password.clone());
        let mut addr = raw.to_owned();
        if raw.contains("://")
            && let Ok(u) = url::Url::parse(raw)
        {
            if !u.username().is_empty() {
                user = Some(u.username().to_owned());
            }
            if let Some(p) = u.password() {
                pass = Some(p.to_owned());
            }
            addr = format!(
                "{}:{}",
                u.host_str().unwrap_or("127.0.0.1"),
                u.port().unwrap_or(6379)
            );
        }
        Ok(Box::new(Fetch {
            addr,
            user,
            pass,
            keyspace: metricset == "keyspace",
        }))
    }
}

struct Fetch {
    addr: String,
    user: Option<String>,
    pass: Option<String>,
    keyspace: bool,
}

/// One RESP command.
fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// A reply: a simple or bulk string, an integer, or an error.
#[derive(Debug, PartialEq)]
enum Reply {
    Text(String),
    Int(i64),
}

async fn reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Result<Reply, Error> {
    let mut line = String::new();
    let n = r
        .take(64 * 1024)
        .read_line(&mut line)
        .await
        .map_err(|e| Error::Other(format!("reading from redis: {e}")))?;
    if n == 0 {
        return Err(Error::Other("redis closed the connection".into()));
    }
    let line = line.trim_end();
    // The type byte is split off by characters: a reply starting with a multi-byte character
    // (a server speaking something else) is an unknown type, not a panic.
    let (kind, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
    match kind {
        "+" => Ok(Reply::Text(rest.to_owned())),
        "-" => Err(Error::Other(rest.to_owned())),
        ":" => rest
            .parse()
            .map(Reply::Int)
            .map_err(|_| Error::parse("redis", "bad integer reply")),
        "$" => {
            let len: i64 = rest
                .parse()
                .map_err(|_| Error::parse("redis", "bad bulk length"))?;
            if len < 0 {
                return Ok(Reply::Text(String::new()));
            }
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_REPLY {
                return Err(Error::parse("redis", "reply too large"));
            }
            let mut buf = vec![0u8; len + 2];
            r.read_exact(&mut buf)
                .await
                .map_err(|e| Error::Other(format!("reading from redis: {e}")))?;
            buf.truncate(len);
            Ok(Reply::Text(String::from_utf8_lossy(&buf).into_owned()))
        }
        _ => Err(Error::parse("redis", format!("unexpected reply `{line}`"))),
    }
}

impl Fetch {
    async fn run(&self, cmds: &[&[&str]]) -> Result<Vec<Reply>, Error> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| Error::Connect {
                what: format!("redis at {}", self.addr),
                reason: e.to_string(),
            })?;
        let mut s = BufReader::new(stream);
        if let Some(p) = &self.pass {
            let auth = match &self.user {
                Some(u) => command(&["AUTH", u, p]),
                None => command(&["AUTH", p]),
            };
            s.get_mut()
                .write_all(&auth)
                .await
                .map_err(|e| Error::Other(e.to_string()))?;
            if let Err(e) = reply(&mut s).await {
                return Err(Error::Auth {
                    what: format!("redis at {}", self.addr),
                    reason: e.to_string(),
                });
            }
        }
        let mut out = Vec::new();
        for c in cmds {
            s.get_mut()
                .write_all(&command(c))
                .await
                .map_err(|e| Error::Other(e.to_string()))?;
            match reply(&mut s).await {
                Err(Error::Other(m)) if m.starts_with("NOAUTH") => {
                    return Err(Error::Auth {
                        what: format!("redis at {}", self.addr),
                        reason: format!("{m} (set `password`)"),
                    });
                }
                r => out.push(r?),
            }
        }
        Ok(out)
    }
}

/// `INFO` text: section -> key -> value.
pub fn parse_info(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[derive(Clone, Copy)]
enum C {
    Int,
    Float,
    Bool,
    Str,
}

/// `INFO` keys and their Metricbeat fields.
const INFO: &[(&str, &str, C)] = &[
    ("connected_clients", "clients.connected", C::Int),
    (
        "client_recent_max_output_buffer",
        "clients.max_output_buffer",
        C::Int,
    ),
    (
        "client_recent_max_input_buffer",
        "clients.max_input_buffer",
        C::Int,
    ),
    (
        "client_longest_output_list",
        "clients.longest_output_list",
        C::Int,
    ),
    (
        "client_biggest_input_buf",
        "clients.biggest_input_buf",
        C::Int,
    ),
    ("blocked_clients", "clients.blocked", C::Int),
    ("cluster_enabled", "cluster.enabled", C::Bool),
    ("used_cpu_sys", "cpu.used.sys", C::Float),
    ("used_cpu_user", "cpu.used.user", C::Float),
    ("used_cpu_sys_children", "cpu.used.sys_children", C::Float),
    ("used_cpu_user_children", "cpu.used.user_children", C::Float),
    ("used_memory", "memory.used.value", C::Int),
    ("used_memory_rss", "memory.used.rss", C::Int),
    ("used_memory_peak", "memory.used.peak", C::Int),
    ("used_memory_lua", "memory.used.lua", C::Int),
    ("used_memory_dataset", "memory.used.dataset", C::Int),
    ("maxmemory", "memory.max.value", C::Int),
    ("maxmemory_policy", "memory.max.policy", C::Str),
    (
        "mem_fragmentation_ratio",
        "memory.fragmentation.ratio",
        C::Float,
    ),
    (
        "mem_fragmentation_bytes",
        "memory.fragmentation.bytes",
        C::Int,
    ),
    (
        "active_defrag_running",
        "memory.active_defrag.is_running",
        C::Bool,
    ),
    ("mem_allocator", "memory.allocator", C::Str),
    (
        "allocator_allocated",
        "memory.allocator_stats.allocated",
        C::Int,
    ),
    ("allocator_active", "memory.allocator_stats.active", C::Int),
    (
        "allocator_resident",
        "memory.allocator_stats.resident",
        C::Int,
    ),
    (
        "allocator_frag_ratio",
        "memory.allocator_stats.fragmentation.ratio",
        C::Float,
    ),
    (
        "allocator_frag_bytes",
        "memory.allocator_stats.fragmentation.bytes",
        C::Int,
    ),
    (
        "allocator_rss_ratio",
        "memory.allocator_stats.rss.ratio",
        C::Float,
    ),
    (
        "allocator_rss_bytes",
        "memory.allocator_stats.rss.bytes",
        C::Int,
    ),
    ("loading", "persistence.loading", C::Bool),
    (
        "rdb_changes_since_last_save",
        "persistence.rdb.last_save.changes_since",
        C::Int,
    ),
    (
        "rdb_last_save_time",
        "persistence.rdb.last_save.time",
        C::Int,
    ),
    (
        "rdb_bgsave_in_progress",
        "persistence.rdb.bgsave.in_progress",
        C::Bool,
    ),
    (
        "rdb_last_bgsave_status",
        "persistence.rdb.bgsave.last_status",
        C::Str,
    ),
    (
        "rdb_last_bgsave_time_sec",
        "persistence.rdb.bgsave.last_time.sec",
        C::Int,
    ),
    (
        "rdb_current_bgsave_time_sec",
        "persistence.rdb.bgsave.current_time.sec",
        C::Int,
    ),
    (
        "rdb_last_cow_size",
        "persistence.rdb.copy_on_write.last_size",
        C::Int,
    ),
    ("aof_enabled", "persistence.aof.enabled", C::Bool),
    (
        "aof_rewrite_in_progress",
        "persistence.aof.rewrite.in_progress",
        C::Bool,
    ),
    (
        "aof_rewrite_scheduled",
        "persistence.aof.rewrite.scheduled",
        C::Bool,
    ),
    (
        "aof_last_rewrite_time_sec",
        "persistence.aof.rewrite.last_time.sec",
        C::Int,
    ),
    (
        "aof_current_rewrite_time_sec",
        "persistence.aof.rewrite.current_time.sec",
        C::Int,
    ),
    (
        "aof_rewrite_buffer_length",
        "persistence.aof.rewrite.buffer.size",
        C::Int,
    ),
    (
        "aof_last_bgrewrite_status",
        "persistence.aof.bgrewrite.last_status",
        C::Str,
    ),
    (
        "aof_last_write_status",
        "persistence.aof.write.last_status",
        C::Str,
    ),
    (
        "aof_last_cow_size",
        "persistence.aof.copy_on_write.last_size",
        C::Int,
    ),
    ("aof_buffer_length", "persistence.aof.buffer.size", C::Int),
    ("aof_current_size", "persistence.aof.size.current", C::Int),
    ("aof_base_size", "persistence.aof.size.base", C::Int),
    (
        "aof_pending_bio_fsync",
        "persistence.aof.fsync.pending",
        C::Int,
    ),
    ("aof_delayed_fsync", "persistence.aof.fsync.delayed", C::Int),
    ("role", "replication.role", C::Str),
    ("connected_slaves", "replication.connected_slaves", C::Int),
    ("master_repl_offset", "replication.master_offset", C::Int),
    ("repl_backlog_active", "replication.backlog.active", C::Int),
    ("repl_backlog_size", "replication.backlog.size", C::Int),
    (
        "repl_backlog_first_byte_offset",
        "replication.backlog.first_byte_offset",
        C::Int,
    ),
    (
        "repl_backlog_histlen",
        "replication.backlog.histlen",
        C::Int,
    ),
    ("master_repl_offset", "replication.master.offset", C::Int),
    (
        "second_repl_offset",
        "replication.master.second_offset",
        C::Int,
    ),
    (
        "master_link_status",
        "replication.master.link_status",
        C::Str,
    ),
    (
        "master_last_io_seconds_ago",
        "replication.master.last_io_seconds_ago",
        C::Int,
    ),
    (
        "master_sync_in_progress",
        "replication.master.sync.in_progress",
        C::Bool,
    ),
    (
        "master_sync_left_bytes",
        "replication.master.sync.left_bytes",
        C::Int,
    ),
    (
        "master_sync_last_io_seconds_ago",
        "replication.master.sync.last_io_seconds_ago",
        C::Int,
    ),
    ("slave_repl_offset", "replication.slave.offset", C::Int),
    ("slave_priority", "replication.slave.priority", C::Int),
    ("slave_read_only", "replication.slave.is_readonly", C::Bool),
    ("redis_git_sha1", "server.git_sha1", C::Str),
    ("redis_git_dirty", "server.git_dirty", C::Str),
    ("redis_build_id", "server.build_id", C::Str),
    ("redis_mode", "server.mode", C::Str),
    ("os", "server.os", C::Str),
    ("arch_bits", "server.arch_bits", C::Str),
    ("multiplexing_api", "server.multiplexing_api", C::Str),
    ("gcc_version", "server.gcc_version", C::Str),
    ("run_id", "server.run_id", C::Str),
    ("tcp_port", "server.tcp_port", C::Int),
    ("uptime_in_seconds", "server.uptime", C::Int),
    ("hz", "server.hz", C::Int),
    ("lru_clock", "server.lru_clock", C::Int),
    ("config_file", "server.config_file", C::Str),
    (
        "total_connections_received",
        "stats.connections.received",
        C::Int,
    ),
    ("rejected_connections", "stats.connections.rejected", C::Int),
    (
        "total_commands_processed",
        "stats.commands_processed",
        C::Int,
    ),
    ("total_net_input_bytes", "stats.net.input.bytes", C::Int),
    ("total_net_output_bytes", "stats.net.output.bytes", C::Int),
    (
        "instantaneous_ops_per_sec",
        "stats.instantaneous.ops_per_sec",
        C::Int,
    ),
    (
        "instantaneous_input_kbps",
        "stats.instantaneous.input_kbps",
        C::Float,
    ),
    (
        "instantaneous_output_kbps",
        "stats.instantaneous.output_kbps",
        C::Float,
    ),
    ("sync_full", "stats.sync.full", C::Int),
    ("sync_partial_ok", "stats.sync.partial.ok", C::Int),
    ("sync_partial_err", "stats.sync.partial.err", C::Int),
    ("expired_keys", "stats.keys.expired", C::Int),
    ("evicted_keys", "stats.keys.evicted", C::Int),
    ("keyspace_hits", "stats.keyspace.hits", C::Int),
    ("keyspace_misses", "stats.keyspace.misses", C::Int),
    ("pubsub_channels", "stats.pubsub.channels", C::Int),
    ("pubsub_patterns", "stats.pubsub.patterns", C::Int),
    ("latest_fork_usec", "stats.latest_fork_usec", C::Int),
    (
        "migrate_cached_sockets",
        "stats.migrate_cached_sockets",
        C::Int,
    ),
    (
        "slave_expires_tracked_keys",
        "stats.slave_expires_tracked_keys",
        C::Int,
    ),
    ("active_defrag_hits", "stats.active_defrag.hits", C::Int),
    ("active_defrag_misses", "stats.active_defrag.misses", C::Int),
    (
        "active_defrag_key_hits",
        "stats.active_defrag.key_hits",
        C::Int,
    ),
    (
        "active_defrag_key_misses",
        "stats.active_defrag.key_misses",
        C::Int,
    ),
];

fn convert(v: &str, c: C) -> Option<Value> {
    match c {
        C::Int => v.parse::<i64>().ok().map(Value::from),
        C::Float => v
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from),
        C::Bool => match v {
            "1" | "yes" | "true" => Some(Value::from(true)),
            "0" | "no" | "false" => Some(Value::from(false)),
            _ => None,
        },
        C::Str => Some(Value::from(v)),
    }
}

/// The `redis.info` fields, `service.version` and `process.pid` of an `INFO all` reply.
pub fn info_event(text: &str, slowlog: Option<i64>) -> MetricEvent {
    let kv = parse_info(text);
    let mut f = Map::new();
    for (k, dst, c) in INFO {
        if let Some(v) = kv.get(*k).and_then(|v| convert(v, *c)) {
            put(&mut f, dst, v);
        }
    }
    // `cmdstat_get:calls=2,usec=10,usec_per_call=5.00,...`
    for (k, v) in &kv {
        let Some(cmd) = k.strip_prefix("cmdstat_") else {
            continue;
        };
        for pair in v.split(',') {
            if let Some((name, val)) = pair.split_once('=')
                && ["calls", "usec", "usec_per_call"].contains(&name)
                && let Ok(n) = val.parse::<f64>()
            {
                let n = if name == "usec_per_call" {
                    Value::from(n)
                } else {
                    Value::from(n as i64)
                };
                put(&mut f, &format!("commandstats.{cmd}.{name}"), n);
            }
        }
    }
    if let Some(n) = slowlog {
        put(&mut f, "slowlog.count", Value::from(n));
    }
    let mut ev = MetricEvent::new(f);
    if let Some(v) = kv.get("redis_version") {
        put(
            &mut ev.root_fields,
            "service.version",
            Value::from(v.as_str()),
        );
    }
    if let Some(pid) = kv.get("process_id").and_then(|p| p.parse::<i64>().ok()) {
        put(&mut ev.root_fields, "process.pid", Value::from(pid));
    }
    ev
}

/// One `redis.keyspace` event per `dbN:keys=1,expires=0,avg_ttl=0` line.
pub fn keyspace_events(text: &str) -> Vec<MetricEvent> {
    let mut out = Vec::new();
    for (db, v) in parse_info(text) {
        if !db.starts_with("db") {
            continue;
        }
        let mut f = Map::new();
        f.insert("id".into(), Value::from(db.as_str()));
        for pair in v.split(',') {
            if let Some((k, n)) = pair.split_once('=')
                && let Ok(n) = n.parse::<i64>()
            {
                f.insert(k.to_owned(), Value::from(n));
            }
        }
        out.push(MetricEvent::new(f));
    }
    out.sort_by(|a, b| a.fields["id"].as_str().cmp(&b.fields["id"].as_str()));
    out
}

#[async_trait]
impl Fetcher for Fetch {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        if self.keyspace {
            let r = self.run(&[&["INFO", "keyspace"]]).await?;
            return match r.first() {
                Some(Reply::Text(t)) => Ok(keyspace_events(t)),
                _ => Err(Error::parse("redis", "INFO gave no text")),
            };
        }
        let r = self.run(&[&["INFO", "all"], &["SLOWLOG", "LEN"]]).await?;
        let slowlog = match r.get(1) {
            Some(Reply::Int(n)) => Some(*n),
            _ => None,
        };
        match r.first() {
            Some(Reply::Text(t)) => Ok(vec![info_event(t, slowlog)]),
            _ => Err(Error::parse("redis", "INFO gave no text")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_are_read_with_limits() {
        let mut r = BufReader::new(&b"$5\r\nhello\r\n:42\r\n-ERR nope\r\n$999999999\r\n"[..]);
        assert_eq!(reply(&mut r).await.unwrap(), Reply::Text("hello".into()));
        assert_eq!(reply(&mut r).await.unwrap(), Reply::Int(42));
        assert!(reply(&mut r).await.is_err());
        assert!(reply(&mut r).await.is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_give_a_reply_or_an_error(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let mut r = BufReader::new(&bytes[..]);
                for _ in 0..4 {
                    if reply(&mut r).await.is_err() {
                        break;
                    }
                }
            });
        }
    }

    /// Regression (found by the proptest above): a reply starting with a multi-byte character
    /// panicked in `split_at(1)`, as the Redis output once did.
    #[test]
    fn a_reply_starting_with_a_multi_byte_character_is_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = rt.block_on(async {
            let bytes = "\u{6be}x\r\n".as_bytes();
            reply(&mut BufReader::new(bytes)).await
        });
        assert!(r.is_err());
    }

    #[test]
    fn info_maps_types() {
        let ev = info_event(
            "# Server\r\nredis_version:7.0.1\r\nprocess_id:9\r\nloading:0\r\nused_cpu_sys:0.85\r\nconnected_clients:2\r\ncmdstat_info:calls=3,usec=241,usec_per_call=80.33\r\n",
            Some(0),
        );
        assert_eq!(ev.fields["clients"]["connected"], 2);
        assert_eq!(ev.fields["persistence"]["loading"], false);
        assert_eq!(ev.fields["cpu"]["used"]["sys"], 0.85);
        assert_eq!(ev.fields["commandstats"]["info"]["usec_per_call"], 80.33);
        assert_eq!(ev.root_fields["service"]["version"], "7.0.1");
        assert_eq!(ev.root_fields["process"]["pid"], 9);
        let ks = keyspace_events("# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=359459\r\n");
        assert_eq!(ks[0].fields["avg_ttl"], 359459);
        assert_eq!(ks[0].fields["id"], "db0");
    }
}
