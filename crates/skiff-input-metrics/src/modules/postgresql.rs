//! `postgresql`: `activity` (`pg_stat_activity`, one event per backend), `database`
//! (`pg_stat_database`, one event per database), `bgwriter` (`pg_stat_bgwriter`) and
//! `statement` (`pg_stat_statements`, which needs the extension), as Metricbeat's postgresql
//! module.
//!
//! Hosts are URLs (`postgres://user:pass@localhost:5432/db?sslmode=disable`) or libpq
//! `key=value` strings; a bare `host:port` is taken as a URL. Credentials in the host win over
//! `username`/`password`; without a user, the operating system user (`$USER`) is used, as
//! libpq does. `sslmode` is libpq's: `disable`, `prefer` (default), `require` (encrypted, the
//! certificate not checked), `verify-ca`, `verify-full`; an `ssl.*` block gives the TLS
//! settings instead (and makes `require` the default).
//!
//! The client is `tokio-postgres` (with rustls through `tokio-postgres-rustls`). Every query is
//! a `SELECT *` through the simple-query protocol, so values come as text whatever the server
//! version's columns and types are (`inet`, `oid`, `xid`); the tables below convert them as
//! Metricbeat's schemas do, and a column a version lacks leaves its field out. Each fetch
//! connects and disconnects: a fetch cut by `timeout` leaves nothing behind.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use skiff_config::{ConfigErrors, Node};
use skiff_tls::{SslConfig, VerificationMode};
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;

use super::schema::{Conv, Row, apply_text, column};
use crate::no_options;
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module};

/// The module.
pub struct Postgresql;

impl Module for Postgresql {
    fn name(&self) -> &'static str {
        "postgresql"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["activity", "database", "bgwriter", "statement"]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["activity", "database", "bgwriter"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["postgres://localhost:5432"]
    }

    fn build(
        &self,
        metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        no_options(own, "postgresql")?;
        let raw = ctx
            .host
            .as_ref()
            .map_or("postgres://localhost:5432", |h| h.raw.as_str());
        let at = |msg: String| crate::config_error(own, msg);
        let (config, tls) = connection(raw, ctx).map_err(at)?;
        let what = format!(
            "postgresql at {}",
            ctx.host
                .as_ref()
                .map_or("localhost:5432", |h| h.address.as_str())
        );
        let kind = match metricset {
            "activity" => Kind::Activity,
            "database" => Kind::Database,
            "bgwriter" => Kind::Bgwriter,
            _ => Kind::Statement,
        };
        Ok(Box::new(Fetch {
            config,
            tls,
            what,
            kind,
        }))
    }
}

/// The client configuration and TLS connector of a host.
fn connection(
    raw: &str,
    ctx: &FetchContext,
) -> Result<
    (
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
    String,
> {
    let raw = raw.trim();
    let mut text = if raw.contains("://") || raw.contains('=') {
        raw.to_owned()
    } else {
        format!("postgres://{raw}")
    };
    // tokio-postgres knows `disable`, `prefer` and `require`; libpq's two verifying modes
    // are `require` plus a certificate check, done by the TLS configuration below.
    let mut verify = None;
    for (mode, v) in [
        ("verify-full", VerificationMode::Full),
        ("verify-ca", VerificationMode::Certificate),
    ] {
        if text.contains(&format!("sslmode={mode}")) {
            text = text.replace(&format!("sslmode={mode}"), "sslmode=require");
            verify = Some(v);
        }
    }
    let mut config = tokio_postgres::Config::from_str(&text)
        .map_err(|e| format!("host `{}` is not a PostgreSQL URL: {e}", redact(raw)))?;
    if config.get_user().is_none() {
        let user = ctx
            .username
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "postgres".into());
        config.user(&user);
        if config.get_password().is_none()
            && let Some(p) = &ctx.password
        {
            config.password(p);
        }
    } else if config.get_password().is_none()
        && ctx.username.is_none()
        && let Some(p) = &ctx.password
    {
        config.password(p);
    }
    config.connect_timeout(ctx.timeout);
    config.application_name("skiff");
    let explicit_mode = text.contains("sslmode=");
    let ssl = match (&ctx.http.options.ssl, verify) {
        (Some(s), _) if s.is_enabled() => {
            if !explicit_mode {
                config.ssl_mode(SslMode::Require);
            }
            s.clone()
        }
        (Some(_), _) => {
            config.ssl_mode(SslMode::Disable);
            SslConfig::default()
        }
        (None, Some(v)) => SslConfig {
            verification_mode: v,
            ..SslConfig::default()
        },
        // libpq's `prefer` and `require` encrypt without checking the certificate.
        (None, None) => SslConfig {
            verification_mode: VerificationMode::None,
            ..SslConfig::default()
        },
    };
    let tls = skiff_tls::client_config(&ssl).map_err(|e| format!("ssl: {e}"))?;
    Ok((
        config,
        tokio_postgres_rustls::MakeRustlsConnect::new(Arc::unwrap_or_clone(tls)),
    ))
}

/// The host without its password, for messages.
fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => raw.to_owned(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Activity,
    Database,
    Bgwriter,
    Statement,
}

struct Fetch {
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    what: String,
    kind: Kind,
}

/// The most rows read from one query (`pg_stat_statements.max` is 5000 by default).
const MAX_ROWS: usize = 20_000;

impl Fetch {
    fn error(&self, e: tokio_postgres::Error) -> Error {
        let Some(db) = e.as_db_error() else {
            // tokio-postgres says "error connecting to server" and keeps the why in its
            // source (connection refused, TLS, ...).
            let mut reason = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                reason.push_str(": ");
                reason.push_str(&c.to_string());
                cause = c.source();
            }
            if reason.ends_with("password missing") {
                return Error::Auth {
                    what: self.what.clone(),
                    reason: "the server asks for a password and none is configured (set \
                             `password` or put it in the host URL)"
                        .into(),
                };
            }
            return Error::Connect {
                what: self.what.clone(),
                reason,
            };
        };
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return Error::Auth {
                what: self.what.clone(),
                reason: format!(
                    "{} (check `username`/`password` or the host URL)",
                    db.message()
                ),
            };
        }
        let hint = if *code == SqlState::UNDEFINED_TABLE && matches!(self.kind, Kind::Statement)
            || db.message().contains("pg_stat_statements must be loaded")
        {
            " (the statement metricset needs the pg_stat_statements extension: add it to \
             `shared_preload_libraries`, restart PostgreSQL and run \
             `CREATE EXTENSION pg_stat_statements`)"
        } else {
            ""
        };
        Error::Other(format!(
            "{}: {} ({}){hint}",
            self.what,
            db.message(),
            code.code()
        ))
    }

    /// Runs `sql` on a fresh connection and returns its rows as text.
    async fn query(&self, sql: &str) -> Result<Vec<Row>, Error> {
        let (client, conn) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.error(e))?;
        // The connection task ends when the client is dropped at the end of this function.
        let task = tokio::spawn(conn);
        let result = client.simple_query(sql).await;
        drop(client);
        let _ = task.await;
        let mut rows = Vec::new();
        for m in result.map_err(|e| self.error(e))? {
            if let SimpleQueryMessage::Row(r) = m {
                if rows.len() >= MAX_ROWS {
                    break;
                }
                rows.push(
                    r.columns()
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.name().to_owned(), r.get(i).map(str::to_owned)))
                        .collect(),
                );
            }
        }
        Ok(rows)
    }
}

/// `pg_stat_activity` of a client backend.
const ACTIVITY: &[(&str, &str, Conv)] = &[
    ("datid", "database.oid", Conv::Int),
    ("datname", "database.name", Conv::Str),
    ("pid", "pid", Conv::Int),
    ("usesysid", "user.id", Conv::Int),
    ("usename", "user.name", Conv::Str),
    ("application_name", "application_name", Conv::Str),
    ("client_addr", "client.address", Conv::Str),
    ("client_hostname", "client.hostname", Conv::Str),
    ("client_port", "client.port", Conv::Int),
    ("backend_start", "backend_start", Conv::Time),
    ("xact_start", "transaction_start", Conv::Time),
    ("query_start", "query_start", Conv::Time),
    ("state_change", "state_change", Conv::Time),
    // PostgreSQL before 9.6; later versions have `wait_event` instead.
    ("waiting", "waiting", Conv::Bool),
    ("wait_event_type", "wait_event_type", Conv::Str),
    ("wait_event", "wait_event", Conv::Str),
    ("state", "state", Conv::Str),
    ("query", "query", Conv::Str),
    ("backend_type", "backend_type", Conv::Str),
];

/// `pg_stat_activity` of a process with no database (PostgreSQL 10+ background processes).
const BACKEND: &[(&str, &str, Conv)] = &[
    ("backend_start", "backend_start", Conv::Time),
    ("backend_type", "backend_type", Conv::Str),
    ("pid", "pid", Conv::Int),
    ("wait_event", "wait_event", Conv::Str),
    ("wait_event_type", "wait_event_type", Conv::Str),
];

const DATABASE: &[(&str, &str, Conv)] = &[
    ("datid", "oid", Conv::Int),
    ("datname", "name", Conv::Str),
    ("numbackends", "number_of_backends", Conv::Int),
    ("xact_commit", "transactions.commit", Conv::Int),
    ("xact_rollback", "transactions.rollback", Conv::Int),
    ("blks_read", "blocks.read", Conv::Int),
    ("blks_hit", "blocks.hit", Conv::Int),
    ("blk_read_time", "blocks.time.read.ms", Conv::Int),
    ("blk_write_time", "blocks.time.write.ms", Conv::Int),
    ("tup_returned", "rows.returned", Conv::Int),
    ("tup_fetched", "rows.fetched", Conv::Int),
    ("tup_inserted", "rows.inserted", Conv::Int),
    ("tup_updated", "rows.updated", Conv::Int),
    ("tup_deleted", "rows.deleted", Conv::Int),
    ("conflicts", "conflicts", Conv::Int),
    ("temp_files", "temporary.files", Conv::Int),
    ("temp_bytes", "temporary.bytes", Conv::Int),
    ("deadlocks", "deadlocks", Conv::Int),
    ("stats_reset", "stats_reset", Conv::Time),
];

const BGWRITER: &[(&str, &str, Conv)] = &[
    ("checkpoints_timed", "checkpoints.scheduled", Conv::Int),
    ("checkpoints_req", "checkpoints.requested", Conv::Int),
    (
        "checkpoint_write_time",
        "checkpoints.times.write.ms",
        Conv::Float,
    ),
    (
        "checkpoint_sync_time",
        "checkpoints.times.sync.ms",
        Conv::Float,
    ),
    ("buffers_checkpoint", "buffers.checkpoints", Conv::Int),
    ("buffers_clean", "buffers.clean", Conv::Int),
    ("maxwritten_clean", "buffers.clean_full", Conv::Int),
    ("buffers_backend", "buffers.backend", Conv::Int),
    ("buffers_backend_fsync", "buffers.backend_fsync", Conv::Int),
    ("buffers_alloc", "buffers.allocated", Conv::Int),
    ("stats_reset", "stats_reset", Conv::Time),
];

/// `pg_stat_statements`; the `*_time` columns are PostgreSQL 12's names, the `*_exec_time`
/// ones 13's (both are listed: a server has one set).
const STATEMENT: &[(&str, &str, Conv)] = &[
    ("userid", "user.id", Conv::Int),
    ("dbid", "database.oid", Conv::Int),
    ("queryid", "query.id", Conv::Str),
    ("query", "query.text", Conv::Str),
    ("calls", "query.calls", Conv::Int),
    ("rows", "query.rows", Conv::Int),
    ("total_time", "query.time.total.ms", Conv::Float),
    ("min_time", "query.time.min.ms", Conv::Float),
    ("max_time", "query.time.max.ms", Conv::Float),
    ("mean_time", "query.time.mean.ms", Conv::Float),
    ("stddev_time", "query.time.stddev.ms", Conv::Float),
    ("total_exec_time", "query.time.total.ms", Conv::Float),
    ("min_exec_time", "query.time.min.ms", Conv::Float),
    ("max_exec_time", "query.time.max.ms", Conv::Float),
    ("mean_exec_time", "query.time.mean.ms", Conv::Float),
    ("stddev_exec_time", "query.time.stddev.ms", Conv::Float),
    ("shared_blks_hit", "query.memory.shared.hit", Conv::Int),
    ("shared_blks_read", "query.memory.shared.read", Conv::Int),
    (
        "shared_blks_dirtied",
        "query.memory.shared.dirtied",
        Conv::Int,
    ),
    (
        "shared_blks_written",
        "query.memory.shared.written",
        Conv::Int,
    ),
    ("local_blks_hit", "query.memory.local.hit", Conv::Int),
    ("local_blks_read", "query.memory.local.read", Conv::Int),
    (
        "local_blks_dirtied",
        "query.memory.local.dirtied",
        Conv::Int,
    ),
    (
        "local_blks_written",
        "query.memory.local.written",
        Conv::Int,
    ),
    ("temp_blks_read", "query.memory.temp.read", Conv::Int),
    ("temp_blks_written", "query.memory.temp.written", Conv::Int),
];

/// The events of a metricset's rows.
fn events(kind: Kind, rows: &[Row]) -> Vec<MetricEvent> {
    rows.iter()
        .map(|row| {
            let rules = match kind {
                // As Metricbeat: a process without a database is a background process, with
                // fewer fields.
                Kind::Activity
                    if column(row, "datid")
                        .and_then(|d| d.parse::<i64>().ok())
                        .is_none_or(|d| d == 0) =>
                {
                    BACKEND
                }
                Kind::Activity => ACTIVITY,
                Kind::Database => DATABASE,
                Kind::Bgwriter => BGWRITER,
                Kind::Statement => STATEMENT,
            };
            MetricEvent::new(apply_text(|c| column(row, c), rules))
        })
        .collect()
}

#[async_trait]
impl Fetcher for Fetch {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let sql = match self.kind {
            Kind::Activity => "SELECT * FROM pg_stat_activity",
            Kind::Database => "SELECT * FROM pg_stat_database",
            Kind::Bgwriter => "SELECT * FROM pg_stat_bgwriter",
            Kind::Statement => "SELECT * FROM pg_stat_statements",
        };
        let rows = self.query(sql).await?;
        Ok(events(self.kind, &rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_event::{Map, Value};

    fn row(pairs: &[(&str, Option<&str>)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn activity_rows_of_clients_and_background_processes() {
        let client = row(&[
            ("datid", Some("13757")),
            ("datname", Some("postgres")),
            ("pid", Some("347")),
            ("client_addr", Some("127.0.0.1")),
            ("client_hostname", None),
            ("client_port", Some("41582")),
            ("backend_start", Some("2019-03-05 08:38:21.348+00")),
            ("backend_type", Some("client backend")),
        ]);
        let bg = row(&[
            ("datid", None),
            ("pid", Some("81")),
            ("backend_type", Some("logical replication launcher")),
            ("wait_event", Some("LogicalLauncherMain")),
            ("client_port", None),
        ]);
        let ev = events(Kind::Activity, &[client, bg]);
        let c = Value::Object(ev[0].fields.clone());
        assert_eq!(c["database"]["oid"], 13757);
        assert_eq!(c["client"]["port"], 41582);
        assert_eq!(c["backend_start"], "2019-03-05T08:38:21.348Z");
        assert!(c["client"].get("hostname").is_none());
        let b = Value::Object(ev[1].fields.clone());
        assert_eq!(
            b,
            serde_json::json!({"pid": 81, "backend_type": "logical replication launcher", "wait_event": "LogicalLauncherMain"})
        );
        let m: Map = ev[1].fields.clone();
        assert!(m.get("database").is_none());
    }

    #[test]
    fn statement_time_columns_of_both_versions() {
        let old = row(&[
            ("total_time", Some("0.47")),
            ("queryid", Some("1592910677")),
        ]);
        let new = row(&[("total_exec_time", Some("1.5")), ("queryid", Some("-4"))]);
        let ev = events(Kind::Statement, &[old, new]);
        assert_eq!(ev[0].fields["query"]["time"]["total"]["ms"], 0.47);
        assert_eq!(ev[0].fields["query"]["id"], "1592910677");
        assert_eq!(ev[1].fields["query"]["time"]["total"]["ms"], 1.5);
    }
}
