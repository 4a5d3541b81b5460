//! `mysql`: `status` (`SHOW GLOBAL STATUS` as Metricbeat's `mysql.status.*`), `galera_status`
//! (the `wsrep_*` status variables as `mysql.galera_status.*`) and `performance`
//! (`performance_schema` statement digests and table I/O waits as `mysql.performance.*`), as
//! Metricbeat's mysql module. Works with MySQL and MariaDB.
//!
//! Hosts are Go MySQL DSNs as in Metricbeat: `user:pass@tcp(127.0.0.1:3306)/`,
//! `unix(/var/run/mysqld/mysqld.sock)/`; a bare `host[:port]` is taken as TCP. Credentials in
//! the DSN win over `username`/`password`. `ssl.*` turns TLS on (CAs, client certificate,
//! `verification_mode`). Options: `raw` (status: every unmapped variable under
//! `mysql.status.raw`).
//!
//! The client is `mysql_async` (the maintained async MySQL/MariaDB driver for tokio; nothing in
//! the workspace spoke MySQL, and sqlx would bring a query layer and macros for three
//! queries). Each fetch opens a connection and closes it: a fetch cut by `timeout` cannot leave
//! a half-read connection behind for the next one, and one handshake per period is nothing to
//! the server.

use std::path::PathBuf;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Map, Value};
use skiff_tls::{SslConfig, VerificationMode};

use super::schema::{Conv, Row, apply_text, column, put};
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module};

/// The module.
pub struct Mysql;

/// The module's own options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `raw`: add every status variable not mapped to a field, as a string under
    /// `mysql.status.raw`. Default: false.
    #[serde(default)]
    raw: bool,
}

impl Module for Mysql {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["status", "galera_status", "performance"]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["status"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["root:secret@tcp(127.0.0.1:3306)/"]
    }

    fn build(
        &self,
        metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        let cfg: Config = own.deserialize()?;
        let raw = ctx
            .host
            .as_ref()
            .map_or("root:secret@tcp(127.0.0.1:3306)/", |h| h.raw.as_str());
        let at = |msg: String| crate::config_error(own, msg);
        let dsn = parse_dsn(raw).map_err(|e| at(format!("host `{}`: {e}", redact(raw))))?;
        let ssl = match &ctx.http.options.ssl {
            Some(s) if s.is_enabled() => Some(ssl_opts(s).map_err(at)?),
            _ => None,
        };
        let opts = options(&dsn, ctx, ssl);
        let what = format!("mysql at {}", dsn.target());
        let kind = match metricset {
            "galera_status" => Kind::Galera,
            "performance" => Kind::Performance,
            _ => Kind::Status { raw: cfg.raw },
        };
        Ok(Box::new(Fetch { opts, what, kind }))
    }
}

/// Where a DSN points.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

/// A Go MySQL DSN, the parts skiff uses.
#[derive(Debug, PartialEq, Eq)]
struct Dsn {
    user: Option<String>,
    pass: Option<String>,
    target: Target,
    db: Option<String>,
}

impl Dsn {
    fn target(&self) -> String {
        match &self.target {
            Target::Tcp { host, port } => format!("{host}:{port}"),
            Target::Unix(p) => p.display().to_string(),
        }
    }
}

/// The DSN without its password, for messages.
fn redact(raw: &str) -> String {
    match (raw.rfind('@'), raw.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!("{}:***{}", &raw[..colon], &raw[at..]),
        _ => raw.to_owned(),
    }
}

/// Parses `[user[:pass]@][proto[(addr)]]/[db][?params]` as Go's MySQL driver does (the
/// password may hold `@` and `:`: the user ends at the first `:`, the credentials at the last
/// `@` before the address). A string without `/` and `(` is `host[:port]` over TCP.
fn parse_dsn(raw: &str) -> Result<Dsn, String> {
    let raw = raw.trim();
    if !raw.contains('/') && !raw.contains('(') {
        return Ok(Dsn {
            user: None,
            pass: None,
            target: tcp_target(raw)?,
            db: None,
        });
    }
    // The database part follows the last `/` that is not inside the address's parentheses.
    let close = raw.rfind(')').unwrap_or(0);
    let slash = raw[close..]
        .find('/')
        .map(|i| i + close)
        .ok_or("a DSN needs `/` after the address, as in `root:pass@tcp(127.0.0.1:3306)/`")?;
    let (head, tail) = (&raw[..slash], &raw[slash + 1..]);
    let db = tail
        .split('?')
        .next()
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    let (creds, addr) = match head.rfind('@') {
        Some(at) => (Some(&head[..at]), &head[at + 1..]),
        None => (None, head),
    };
    let (user, pass) = match creds {
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
            None => (Some(c.to_owned()), None),
        },
        None => (None, None),
    };
    let target = if addr.is_empty() {
        Target::Tcp {
            host: "127.0.0.1".into(),
            port: 3306,
        }
    } else {
        let (proto, inner) = match addr.split_once('(') {
            Some((p, rest)) => (
                p,
                rest.strip_suffix(')')
                    .ok_or("the address in parentheses is not closed")?,
            ),
            None => (addr, ""),
        };
        match proto {
            "tcp" if inner.is_empty() => Target::Tcp {
                host: "127.0.0.1".into(),
                port: 3306,
            },
            "tcp" => tcp_target(inner)?,
            "unix" if inner.is_empty() => {
                return Err("`unix()` needs the socket's path".into());
            }
            "unix" => Target::Unix(PathBuf::from(inner)),
            other => {
                return Err(format!(
                    "protocol `{other}` is not supported: `tcp` or `unix`"
                ));
            }
        }
    };
    Ok(Dsn {
        user: user.filter(|u| !u.is_empty()),
        pass,
        target,
        db,
    })
}

fn tcp_target(addr: &str) -> Result<Target, String> {
    // `[::1]:3306`, `host:3306`, `host`.
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("`{p}` is not a port number"))?,
        ),
        _ => (addr, 3306),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    Ok(Target::Tcp {
        host: host.to_owned(),
        port,
    })
}

/// A certificate or key setting: inline PEM (as Beats allows) or a path. (mysql_async does
/// not export the type it converts into, hence the generic.)
fn pem<T: From<Vec<u8>> + From<PathBuf>>(v: &str) -> T {
    if v.contains("-----BEGIN") {
        T::from(v.as_bytes().to_vec())
    } else {
        T::from(PathBuf::from(v))
    }
}

/// mysql_async's TLS options from `ssl.*`. mysql_async builds its own rustls configuration, so
/// what it cannot express is refused here rather than ignored.
fn ssl_opts(s: &SslConfig) -> Result<mysql_async::SslOpts, String> {
    if !s.cipher_suites.is_empty()
        || s.ca_trusted_fingerprint.is_some()
        || !s.ca_sha256.is_empty()
        || s.key_passphrase.is_some()
    {
        return Err("the mysql module's TLS supports `ssl.certificate_authorities`, `certificate`, `key` and `verification_mode`; `cipher_suites`, `ca_trusted_fingerprint`, `ca_sha256` and `key_passphrase` are not supported".into());
    }
    let mut o = mysql_async::SslOpts::default();
    if !s.certificate_authorities.is_empty() {
        o = o
            .with_root_certs(s.certificate_authorities.iter().map(|c| pem(c)).collect())
            .with_disable_built_in_roots(true);
    }
    match (&s.certificate, &s.key) {
        (Some(c), Some(k)) => {
            o = o.with_client_identity(Some(mysql_async::ClientIdentity::new(pem(c), pem(k))));
        }
        (None, None) => {}
        _ => return Err("`ssl.certificate` and `ssl.key` go together".into()),
    }
    Ok(match s.verification_mode {
        VerificationMode::Full | VerificationMode::Strict => o,
        VerificationMode::Certificate => o.with_danger_skip_domain_validation(true),
        VerificationMode::None => o
            .with_danger_skip_domain_validation(true)
            .with_danger_accept_invalid_certs(true),
    })
}

fn options(dsn: &Dsn, ctx: &FetchContext, ssl: Option<mysql_async::SslOpts>) -> mysql_async::Opts {
    // Credentials in the DSN win over `username`/`password`, as in Metricbeat.
    let user = dsn.user.clone().or_else(|| ctx.username.clone());
    let pass = if dsn.user.is_some() {
        dsn.pass.clone()
    } else {
        dsn.pass.clone().or_else(|| ctx.password.clone())
    };
    let b = mysql_async::OptsBuilder::default()
        .user(user)
        .pass(pass)
        .db_name(dsn.db.clone())
        .prefer_socket(false)
        .ssl_opts(ssl)
        // One query per connection: no statement cache, no pool.
        .stmt_cache_size(0);
    let b = match &dsn.target {
        Target::Tcp { host, port } => b.ip_or_hostname(host.clone()).tcp_port(*port),
        Target::Unix(p) => b.socket(Some(p.display().to_string())),
    };
    b.into()
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Status { raw: bool },
    Galera,
    Performance,
}

struct Fetch {
    opts: mysql_async::Opts,
    what: String,
    kind: Kind,
}

/// The most rows read from one query (`SHOW STATUS` has about 500, the performance queries
/// are limited in SQL); a server sending more is cut, not followed.
const MAX_ROWS: usize = 10_000;

impl Fetch {
    fn error(&self, e: mysql_async::Error) -> Error {
        match e {
            // 1045: access denied (wrong user or password); 1044: no rights on the database;
            // 1698: a plugin (unix_socket) refused the user.
            mysql_async::Error::Server(s) if [1044, 1045, 1698].contains(&s.code) => Error::Auth {
                what: self.what.clone(),
                reason: format!("{} (check `username`/`password` or the DSN)", s.message),
            },
            mysql_async::Error::Server(s) => Error::Other(format!(
                "{}: error {} ({}): {}",
                self.what, s.code, s.state, s.message
            )),
            mysql_async::Error::Io(e) => Error::Connect {
                what: self.what.clone(),
                reason: e.to_string(),
            },
            other => Error::Connect {
                what: self.what.clone(),
                reason: other.to_string(),
            },
        }
    }

    /// Runs `queries` on one connection, each read as rows of text.
    async fn query(&self, queries: &[&str]) -> Result<Vec<Vec<Row>>, Error> {
        let mut conn = mysql_async::Conn::new(self.opts.clone())
            .await
            .map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for q in queries {
            let rows = conn
                .query_iter(*q)
                .await
                .map_err(|e| self.error(e))?
                .reduce_and_drop(Vec::new(), |mut acc: Vec<Row>, row: mysql_async::Row| {
                    if acc.len() < MAX_ROWS {
                        acc.push(text_row(&row));
                    }
                    acc
                })
                .await
                .map_err(|e| self.error(e))?;
            out.push(rows);
        }
        // A failed goodbye does not spoil the data read.
        let _ = conn.disconnect().await;
        Ok(out)
    }
}

/// A row read with the text protocol: every non-NULL value is bytes (numbers included).
fn text_row(row: &mysql_async::Row) -> Row {
    row.columns_ref()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let v = match row.as_ref(i) {
                None | Some(mysql_async::Value::NULL) => None,
                Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                Some(other) => Some(other.as_sql(true).trim_matches('\'').to_owned()),
            };
            (c.name_str().to_ascii_lowercase(), v)
        })
        .collect()
}

/// `Variable_name`/`Value` rows as a map of variable to value.
fn variables(rows: &[Row]) -> Vec<(String, String)> {
    rows.iter()
        .filter_map(|r| {
            let name = r.first()?.1.clone()?;
            let value = r.get(1).and_then(|(_, v)| v.clone()).unwrap_or_default();
            Some((name, value))
        })
        .collect()
}

fn lookup<'a>(vars: &'a [(String, String)]) -> impl Fn(&str) -> Option<&'a str> {
    move |k| {
        vars.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

/// `SHOW GLOBAL STATUS` variables and their Metricbeat fields.
const STATUS: &[(&str, &str, Conv)] = &[
    ("Aborted_clients", "aborted.clients", Conv::Int),
    ("Aborted_connects", "aborted.connects", Conv::Int),
    ("Binlog_cache_disk_use", "binlog.cache.disk_use", Conv::Int),
    ("Binlog_cache_use", "binlog.cache.use", Conv::Int),
    ("Bytes_received", "bytes.received", Conv::Int),
    ("Bytes_sent", "bytes.sent", Conv::Int),
    ("Threads_cached", "threads.cached", Conv::Int),
    ("Threads_created", "threads.created", Conv::Int),
    ("Threads_connected", "threads.connected", Conv::Int),
    ("Threads_running", "threads.running", Conv::Int),
    ("Connections", "connections", Conv::Int),
    (
        "Created_tmp_disk_tables",
        "created.tmp.disk_tables",
        Conv::Int,
    ),
    ("Created_tmp_files", "created.tmp.files", Conv::Int),
    ("Created_tmp_tables", "created.tmp.tables", Conv::Int),
    ("Delayed_errors", "delayed.errors", Conv::Int),
    (
        "Delayed_insert_threads",
        "delayed.insert_threads",
        Conv::Int,
    ),
    ("Delayed_writes", "delayed.writes", Conv::Int),
    ("Flush_commands", "flush_commands", Conv::Int),
    ("Max_used_connections", "max_used_connections", Conv::Int),
    ("Open_files", "open.files", Conv::Int),
    ("Open_streams", "open.streams", Conv::Int),
    ("Open_tables", "open.tables", Conv::Int),
    ("Opened_tables", "opened_tables", Conv::Int),
    ("Com_delete", "command.delete", Conv::Int),
    ("Com_insert", "command.insert", Conv::Int),
    ("Com_select", "command.select", Conv::Int),
    ("Com_update", "command.update", Conv::Int),
    ("Queries", "queries", Conv::Int),
    ("Questions", "questions", Conv::Int),
    ("Handler_commit", "handler.commit", Conv::Int),
    ("Handler_delete", "handler.delete", Conv::Int),
    ("Handler_external_lock", "handler.external_lock", Conv::Int),
    ("Handler_mrr_init", "handler.mrr_init", Conv::Int),
    ("Handler_prepare", "handler.prepare", Conv::Int),
    ("Handler_read_first", "handler.read.first", Conv::Int),
    ("Handler_read_key", "handler.read.key", Conv::Int),
    ("Handler_read_last", "handler.read.last", Conv::Int),
    ("Handler_read_next", "handler.read.next", Conv::Int),
    ("Handler_read_prev", "handler.read.prev", Conv::Int),
    ("Handler_read_rnd", "handler.read.rnd", Conv::Int),
    ("Handler_read_rnd_next", "handler.read.rnd_next", Conv::Int),
    ("Handler_rollback", "handler.rollback", Conv::Int),
    ("Handler_savepoint", "handler.savepoint", Conv::Int),
    (
        "Handler_savepoint_rollback",
        "handler.savepoint_rollback",
        Conv::Int,
    ),
    ("Handler_update", "handler.update", Conv::Int),
    ("Handler_write", "handler.write", Conv::Int),
    (
        "Innodb_buffer_pool_dump_status",
        "innodb.buffer_pool.dump_status",
        Conv::Str,
    ),
    (
        "Innodb_buffer_pool_load_status",
        "innodb.buffer_pool.load_status",
        Conv::Str,
    ),
    (
        "Innodb_buffer_pool_bytes_data",
        "innodb.buffer_pool.bytes.data",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_bytes_dirty",
        "innodb.buffer_pool.bytes.dirty",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_pages_data",
        "innodb.buffer_pool.pages.data",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_pages_dirty",
        "innodb.buffer_pool.pages.dirty",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_pages_flushed",
        "innodb.buffer_pool.pages.flushed",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_pages_free",
        "innodb.buffer_pool.pages.free",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_pages_latched",
        "innodb.buffer_pool.pages.latched",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_pages_misc",
        "innodb.buffer_pool.pages.misc",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_pages_total",
        "innodb.buffer_pool.pages.total",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_read_ahead",
        "innodb.buffer_pool.read.ahead",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_read_ahead_evicted",
        "innodb.buffer_pool.read.ahead_evicted",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_read_ahead_rnd",
        "innodb.buffer_pool.read.ahead_rnd",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_read_requests",
        "innodb.buffer_pool.read.requests",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_reads",
        "innodb.buffer_pool.pool.reads",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_resize_status",
        "innodb.buffer_pool.pool.resize_status",
        Conv::Str,
    ),
    (
        "Innodb_buffer_pool_wait_free",
        "innodb.buffer_pool.pool.wait_free",
        Conv::Int,
    ),
    (
        "Innodb_buffer_pool_write_requests",
        "innodb.buffer_pool.write_requests",
        Conv::Int,
    ),
];

/// `wsrep_*` variables and their Metricbeat fields.
const GALERA: &[(&str, &str, Conv)] = &[
    ("wsrep_apply_oooe", "apply.oooe", Conv::Float),
    ("wsrep_apply_oool", "apply.oool", Conv::Float),
    ("wsrep_apply_window", "apply.window", Conv::Float),
    (
        "wsrep_cert_deps_distance",
        "cert.deps_distance",
        Conv::Float,
    ),
    ("wsrep_cert_index_size", "cert.index_size", Conv::Int),
    ("wsrep_cert_interval", "cert.interval", Conv::Float),
    ("wsrep_cluster_conf_id", "cluster.conf_id", Conv::Int),
    ("wsrep_cluster_size", "cluster.size", Conv::Int),
    ("wsrep_cluster_status", "cluster.status", Conv::Str),
    ("wsrep_commit_oooe", "commit.oooe", Conv::Float),
    ("wsrep_commit_window", "commit.window", Conv::Float),
    ("wsrep_connected", "connected", Conv::Str),
    ("wsrep_evs_evict_list", "evs.evict", Conv::Str),
    ("wsrep_evs_state", "evs.state", Conv::Str),
    ("wsrep_flow_control_paused", "flow_ctl.paused", Conv::Float),
    (
        "wsrep_flow_control_paused_ns",
        "flow_ctl.paused_ns",
        Conv::Int,
    ),
    ("wsrep_flow_control_recv", "flow_ctl.recv", Conv::Int),
    ("wsrep_flow_control_sent", "flow_ctl.sent", Conv::Int),
    ("wsrep_last_committed", "last_committed", Conv::Int),
    ("wsrep_local_bf_aborts", "local.bf_aborts", Conv::Int),
    (
        "wsrep_local_cert_failures",
        "local.cert_failures",
        Conv::Int,
    ),
    ("wsrep_local_commits", "local.commits", Conv::Int),
    ("wsrep_local_recv_queue", "local.recv.queue", Conv::Int),
    (
        "wsrep_local_recv_queue_avg",
        "local.recv.queue_avg",
        Conv::Float,
    ),
    (
        "wsrep_local_recv_queue_max",
        "local.recv.queue_max",
        Conv::Int,
    ),
    (
        "wsrep_local_recv_queue_min",
        "local.recv.queue_min",
        Conv::Int,
    ),
    ("wsrep_local_replays", "local.replays", Conv::Int),
    ("wsrep_local_send_queue", "local.send.queue", Conv::Int),
    (
        "wsrep_local_send_queue_avg",
        "local.send.queue_avg",
        Conv::Float,
    ),
    (
        "wsrep_local_send_queue_max",
        "local.send.queue_max",
        Conv::Int,
    ),
    (
        "wsrep_local_send_queue_min",
        "local.send.queue_min",
        Conv::Int,
    ),
    ("wsrep_local_state_comment", "local.state", Conv::Str),
    ("wsrep_ready", "ready", Conv::Str),
    ("wsrep_received", "received.count", Conv::Int),
    ("wsrep_received_bytes", "received.bytes", Conv::Int),
    ("wsrep_repl_data_bytes", "repl.data_bytes", Conv::Int),
    ("wsrep_repl_keys", "repl.keys", Conv::Int),
    ("wsrep_repl_keys_bytes", "repl.keys_bytes", Conv::Int),
    ("wsrep_repl_other_bytes", "repl.other_bytes", Conv::Int),
    ("wsrep_replicated", "repl.count", Conv::Int),
    ("wsrep_replicated_bytes", "repl.bytes", Conv::Int),
];

/// `events_statements_summary_by_digest` columns and their fields (under
/// `events_statements`). `quantile_95` is MySQL 8's; MariaDB has no such column, and the field
/// is left out there.
const STATEMENTS: &[(&str, &str, Conv)] = &[
    ("schema_name", "schemaname", Conv::Str),
    ("digest", "digest.id", Conv::Str),
    ("digest_text", "digest.text", Conv::Str),
    ("count_star", "count.star", Conv::Int),
    ("avg_timer_wait", "avg.timer.wait", Conv::Int),
    ("max_timer_wait", "max.timer.wait", Conv::Int),
    ("last_seen", "last.seen", Conv::Str),
    ("quantile_95", "quantile.95", Conv::Int),
];

/// `table_io_waits_summary_by_index_usage` columns and their fields (under `table_io_waits`).
const TABLE_IO: &[(&str, &str, Conv)] = &[
    ("object_schema", "object.schema", Conv::Str),
    ("object_name", "object.name", Conv::Str),
    ("index_name", "index.name", Conv::Str),
    ("count_fetch", "count.fetch", Conv::Int),
];

/// The `mysql.status` event of `SHOW GLOBAL STATUS`.
fn status_event(vars: &[(String, String)], raw: bool) -> MetricEvent {
    let mut f = apply_text(lookup(vars), STATUS);
    if raw {
        let mut r = Map::new();
        for (k, v) in vars {
            if !STATUS
                .iter()
                .any(|(name, _, _)| name.eq_ignore_ascii_case(k))
            {
                r.insert(k.clone(), Value::from(v.as_str()));
            }
        }
        put(&mut f, "raw", Value::Object(r));
    }
    MetricEvent::new(f)
}

/// `SELECT *` with the columns lower-cased, so that MySQL's and MariaDB's sets both map.
const STATEMENTS_QUERY: &str = "SELECT * FROM performance_schema.events_statements_summary_by_digest ORDER BY avg_timer_wait DESC LIMIT 10";
const TABLE_IO_QUERY: &str = "SELECT * FROM performance_schema.table_io_waits_summary_by_index_usage WHERE count_fetch > 0 LIMIT 1000";

fn performance_events(statements: &[Row], table_io: &[Row]) -> Vec<MetricEvent> {
    let mut out = Vec::new();
    for (rows, rules, key) in [
        (statements, STATEMENTS, "events_statements"),
        (table_io, TABLE_IO, "table_io_waits"),
    ] {
        for row in rows {
            let m = apply_text(|c| column(row, c), rules);
            let mut f = Map::new();
            f.insert(key.into(), Value::Object(m));
            out.push(MetricEvent::new(f));
        }
    }
    out
}

#[async_trait]
impl Fetcher for Fetch {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        match self.kind {
            Kind::Status { raw } => {
                let r = self.query(&["SHOW /*!50002 GLOBAL */ STATUS"]).await?;
                let vars = variables(r.first().map_or(&[][..], Vec::as_slice));
                Ok(vec![status_event(&vars, raw)])
            }
            Kind::Galera => {
                let r = self
                    .query(&["SHOW /*!50002 GLOBAL */ STATUS LIKE 'wsrep_%'"])
                    .await?;
                let vars = variables(r.first().map_or(&[][..], Vec::as_slice));
                Ok(vec![MetricEvent::new(apply_text(lookup(&vars), GALERA))])
            }
            Kind::Performance => {
                let r = self.query(&[STATEMENTS_QUERY, TABLE_IO_QUERY]).await?;
                let empty = Vec::new();
                Ok(performance_events(
                    r.first().unwrap_or(&empty),
                    r.get(1).unwrap_or(&empty),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Target {
        Target::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn dsns_parse_as_go_mysql_does() {
        let d = parse_dsn("root:s3:c@r@et@tcp(127.0.0.1:3307)/mydb?timeout=10s").unwrap();
        assert_eq!(d.user.as_deref(), Some("root"));
        assert_eq!(d.pass.as_deref(), Some("s3:c@r@et"));
        assert_eq!(d.target, tcp("127.0.0.1", 3307));
        assert_eq!(d.db.as_deref(), Some("mydb"));
        let d = parse_dsn("unix(/run/mysqld/mysqld.sock)/").unwrap();
        assert_eq!(d.target, Target::Unix("/run/mysqld/mysqld.sock".into()));
        assert_eq!((d.user, d.db), (None, None));
        assert_eq!(
            parse_dsn("tcp(db.example:3306)/").unwrap().target,
            tcp("db.example", 3306)
        );
        assert_eq!(
            parse_dsn("tcp([::1]:3306)/").unwrap().target,
            tcp("::1", 3306)
        );
        assert_eq!(
            parse_dsn("127.0.0.1").unwrap().target,
            tcp("127.0.0.1", 3306)
        );
        assert_eq!(parse_dsn("/").unwrap().target, tcp("127.0.0.1", 3306));
        assert_eq!(parse_dsn("u@/").unwrap().user.as_deref(), Some("u"));
        assert!(parse_dsn("tcp(127.0.0.1:x)/").is_err());
        assert!(parse_dsn("udp(127.0.0.1:1)/").is_err());
        assert!(parse_dsn("tcp(127.0.0.1/").is_err());
        assert_eq!(redact("root:pw@tcp(h:1)/"), "root:***@tcp(h:1)/");
    }

    #[test]
    fn status_maps_types_and_raw() {
        let vars: Vec<(String, String)> = [
            ("Connections", "12"),
            (
                "Innodb_buffer_pool_load_status",
                "Buffer pool(s) load completed",
            ),
            ("Uptime", "77"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        let ev = status_event(&vars, true);
        assert_eq!(ev.fields["connections"], 12);
        assert_eq!(
            ev.fields["innodb"]["buffer_pool"]["load_status"],
            "Buffer pool(s) load completed"
        );
        assert_eq!(ev.fields["raw"]["Uptime"], "77");
        assert!(ev.fields["raw"].get("Connections").is_none());
        assert!(status_event(&vars, false).fields.get("raw").is_none());
    }

    #[test]
    fn performance_rows_map_by_column_name() {
        let row: Row = vec![
            ("schema_name".into(), Some("test".into())),
            ("digest_text".into(), Some("SELECT ?".into())),
            ("count_star".into(), Some("5".into())),
            ("avg_timer_wait".into(), Some("16439131000".into())),
            ("quantile_95".into(), None),
        ];
        let ev = performance_events(&[row], &[]);
        assert_eq!(ev.len(), 1);
        let s = &ev[0].fields["events_statements"];
        assert_eq!(s["schemaname"], "test");
        assert_eq!(s["count"]["star"], 5);
        assert_eq!(s["avg"]["timer"]["wait"], 16_439_131_000_i64);
        assert!(s.get("quantile").is_none());
    }
}
