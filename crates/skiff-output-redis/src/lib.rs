//! The Redis output: Filebeat's `output.redis`, for pipelines where Logstash (or anything else)
//! reads events from a Redis list or channel.
//!
//! Where it sits: the output end of the pipeline. The [worker](skiff_pipeline::worker) hands a
//! client a batch; the client routes each event to a key (`key` template, `keys` rules with
//! `when`, see [`skiff_processors::select`]), encodes it as ECS JSON with `@metadata` (as Beats' JSON codec does, so Logstash's
//! `redis` input sees `[@metadata][beat]`), and sends the whole batch in one pipelined round
//! trip:
//!
//! * `datatype: list` (default): one `RPUSH key e1 e2 ...` per distinct key in the batch;
//! * `datatype: channel`: one `PUBLISH key e` per event.
//!
//! A batch is acknowledged only after Redis replied to every command, each with exactly what its
//! command requires (`RPUSH`: an integer at least the number of events pushed; `PUBLISH`: an
//! integer >= 0; `AUTH`/`SELECT`: `+OK`). Any other reply voids the whole batch (a
//! [`error::RedisError::Protocol`]): a server, or something posing as one, that answers `*-7` or
//! `+OK` to an RPUSH has confirmed nothing. Error replies are sorted one by one:
//! `LOADING`/`OOM`/`READONLY`-style errors retry those events, login errors retry the whole
//! batch (the events are not at fault), anything else (`WRONGTYPE`) rejects those events with
//! Redis's reason into the dead-letter file. A lost connection fails the batch; the worker
//! retries it on a new connection, so events may be pushed twice but never lost.
//!
//! **Why RESP is written by hand** ([`resp`]) rather than with the `redis` crate: the output
//! needs four commands and pipelining, and the `redis` crate builds its own TLS configuration,
//! while skiff's TLS (`ssl.*`: verification modes, CA fingerprints, plain-words errors) is one
//! rustls `ClientConfig` from the shared TLS layer for every output. Owning the ~250 lines of
//! framing lets the connection run over that stream ([`resp::Io`]) and bound what a server reply
//! can make us allocate.
//!
//! TLS (`ssl.*` for every host, or `rediss://` for one) is rustls configured by the shared
//! `skiff-tls` crate, so `verification_mode`, CA fingerprints and its plain-words handshake
//! errors are the same as for the other outputs.
//!
//! `skiff test output` ([`PLUGIN`]'s probe) checks DNS, TCP connect, the TLS handshake (the
//! server certificate's subject, SANs, expiry, chain), AUTH, PING, and the key's
//! type and length (or a channel's subscriber count).

pub mod client;
pub mod config;
pub mod error;
pub mod resp;

use std::sync::Arc;
use std::time::Instant;

use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_metrics::names;
use skiff_pipeline::{BuildContext, Output, OutputPlugin, OutputSet, OutputSettings, ProbeStep};

use client::{RedisClient, Target};
use config::{DataType, RedisConfig};
use resp::Reply;
use skiff_processors::select::Selector;

/// The `output.redis` plugin.
pub static PLUGIN: OutputPlugin = OutputPlugin {
    name: "redis",
    build,
    probe: Some(|node, ctx| Box::pin(probe(node.clone(), ctx.clone()))),
    setup: None,
};

/// Everything `build` and `probe` need from the configuration.
struct Built {
    cfg: RedisConfig,
    targets: Vec<Target>,
    selector: Arc<Selector>,
}

fn parse(node: &Node) -> Result<Built, ConfigErrors> {
    let cfg: RedisConfig = node.deserialize()?;
    let errs = config::validate(&cfg, node);
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    let default_key = cfg.index.as_deref().unwrap_or("filebeat");
    let selector = Arc::new(Selector::from_node(node, "key", "keys", Some(default_key))?);
    let ssl_on = cfg.ssl.as_ref().is_some_and(|s| s.is_enabled());
    let any_rediss = cfg.hosts.iter().any(|h| h.starts_with("rediss://"));
    let tls = if ssl_on || any_rediss {
        let ssl = cfg.ssl.clone().unwrap_or_default();
        let at = node.get("ssl").unwrap_or(node);
        Some(skiff_tls::client_config(&ssl).map_err(|e| {
            ConfigError::new(
                format!("{}.ssl", node.path()),
                at.mark.clone(),
                e.to_string(),
            )
        })?)
    } else {
        None
    };
    let mut targets = Vec::new();
    for h in &cfg.hosts {
        // validate() already reported bad hosts.
        let Ok(host) = config::parse_host(h, cfg.port) else {
            continue;
        };
        targets.push(Target {
            username: host.username.clone().or_else(|| cfg.username.clone()),
            password: host.password.clone().or_else(|| cfg.password.clone()),
            db: host.db.unwrap_or(cfg.db),
            timeout: cfg.timeout.0,
            // `ssl` applies to every host; `rediss://` turns TLS on for its host alone.
            tls: if ssl_on || host.tls {
                tls.clone()
            } else {
                None
            },
            host,
        });
    }
    Ok(Built {
        cfg,
        targets,
        selector,
    })
}

/// Validates `output.redis` and builds one client per host and `worker`.
pub fn build(node: &Node, ctx: &BuildContext) -> Result<OutputSet, ConfigErrors> {
    let b = parse(node)?;
    let write_bytes = ctx.metrics.counter(&names::OUTPUT_WRITE_BYTES);
    let mut clients: Vec<Box<dyn Output>> = Vec::new();
    for t in &b.targets {
        for _ in 0..b.cfg.worker {
            clients.push(Box::new(RedisClient {
                target: t.clone(),
                selector: b.selector.clone(),
                datatype: b.cfg.datatype,
                write_bytes: write_bytes.clone(),
                conn: None,
                buf: Vec::new(),
                scratch: Vec::new(),
            }));
        }
    }
    Ok(OutputSet {
        clients,
        settings: OutputSettings {
            bulk_max_size: b.cfg.bulk_max_size,
            max_retries: b.cfg.max_retries,
            backoff_init: b.cfg.backoff.init.0,
            backoff_max: b.cfg.backoff.max.0,
            loadbalance: b.cfg.loadbalance,
        },
    })
}

/// `skiff test output`: DNS, connect, AUTH, PING and the key, for every host.
async fn probe(node: Node, _ctx: BuildContext) -> Vec<ProbeStep> {
    let b = match parse(&node) {
        Ok(b) => b,
        Err(e) => {
            return vec![ProbeStep::new(
                "configuration",
                false,
                e.to_string(),
                Some("fix output.redis in the configuration file"),
            )];
        }
    };
    let mut steps = Vec::new();
    for t in &b.targets {
        probe_host(t, &b, &mut steps).await;
    }
    steps
}

async fn probe_host(t: &Target, b: &Built, steps: &mut Vec<ProbeStep>) {
    let addr = t.host.addr();
    let t0 = Instant::now();
    match tokio::net::lookup_host(&addr).await {
        Ok(addrs) => {
            let list: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            steps.push(ProbeStep::new(
                format!("dns {}", t.host.host),
                true,
                format!("{} ({:?})", list.join(", "), t0.elapsed()),
                None,
            ));
        }
        Err(e) => {
            steps.push(ProbeStep::new(
                format!("dns {}", t.host.host),
                false,
                e.to_string(),
                Some("check the host name in `hosts` and the machine's DNS settings"),
            ));
            return;
        }
    }
    let t0 = Instant::now();
    let no_login = Target {
        password: None,
        db: 0,
        ..t.clone()
    };
    let plain = match no_login.open().await {
        Ok((c, peer)) => {
            steps.push(ProbeStep::new(
                format!("connect {addr}"),
                true,
                format!("{:?}", t0.elapsed()),
                None,
            ));
            if let Some(p) = peer {
                steps.push(ProbeStep::new("tls handshake", true, p.to_string(), None));
            }
            c
        }
        Err(e) => {
            steps.push(ProbeStep::new(
                format!("connect {addr}"),
                false,
                format!("{e:#}"),
                Some("is redis-server running there, bound to this interface (`bind`), and is the port open?"),
            ));
            return;
        }
    };
    let mut conn = if t.password.is_none() && t.db == 0 {
        plain
    } else {
        drop(plain);
        match t.connect().await {
            Ok(c) => {
                let db = if t.db != 0 {
                    format!(", database {}", t.db)
                } else {
                    String::new()
                };
                steps.push(ProbeStep::new("auth", true, format!("logged in{db}"), None));
                c
            }
            Err(e) => {
                steps.push(ProbeStep::new(
                    "auth",
                    false,
                    format!("{e:#}"),
                    Some("check `password`, `username` and `db`"),
                ));
                return;
            }
        }
    };
    let timeout = t.timeout;
    match call(&mut conn, timeout, &[b"PING"]).await {
        Ok(Reply::Status(s)) if s == "PONG" => {
            steps.push(ProbeStep::new("ping", true, "PONG", None))
        }
        Ok(Reply::Error(e)) if e.starts_with("NOAUTH") => {
            steps.push(ProbeStep::new(
                "ping",
                false,
                e,
                Some("the server requires a password: set `password`"),
            ));
            return;
        }
        Ok(r) => steps.push(ProbeStep::new(
            "ping",
            false,
            r.text(),
            Some("is this a Redis server?"),
        )),
        Err(e) => {
            steps.push(ProbeStep::new(
                "ping",
                false,
                e,
                Some("is this a Redis server?"),
            ));
            return;
        }
    }
    let Some(key) = b.selector.constant() else {
        steps.push(ProbeStep::new(
            "key",
            true,
            "the key is chosen per event (template or `keys` rules): not checked",
            None,
        ));
        return;
    };
    match b.cfg.datatype {
        DataType::List => {
            let ty = call(&mut conn, timeout, &[b"TYPE", key.as_bytes()]).await;
            match ty {
                Ok(Reply::Status(t)) if t == "list" || t == "none" => {
                    let len = match call(&mut conn, timeout, &[b"LLEN", key.as_bytes()]).await {
                        Ok(Reply::Int(n)) => n.to_string(),
                        Ok(r) => r.text(),
                        Err(e) => e,
                    };
                    let what = if t == "none" {
                        "does not exist yet (RPUSH creates it)".to_owned()
                    } else {
                        format!("is a list of {len} items")
                    };
                    steps.push(ProbeStep::new(format!("key {key}"), true, what, None));
                }
                Ok(Reply::Status(t)) => steps.push(ProbeStep::new(
                    format!("key {key}"),
                    false,
                    format!("holds a {t}, not a list: RPUSH will fail with WRONGTYPE"),
                    Some("choose another `key`, or delete the existing key"),
                )),
                Ok(r) => steps.push(ProbeStep::new(format!("key {key}"), false, r.text(), None)),
                Err(e) => steps.push(ProbeStep::new(format!("key {key}"), false, e, None)),
            }
        }
        DataType::Channel => {
            let r = call(&mut conn, timeout, &[b"PUBSUB", b"NUMSUB", key.as_bytes()]).await;
            let subs = match r {
                Ok(Reply::Array(Some(items))) => items.get(1).map(Reply::text).unwrap_or_default(),
                Ok(r) => r.text(),
                Err(e) => e,
            };
            steps.push(ProbeStep::new(
                format!("channel {key}"),
                true,
                format!("{subs} subscribers (events published with none are lost by Redis design)"),
                None,
            ));
        }
    }
}

async fn call(
    conn: &mut resp::Conn,
    timeout: std::time::Duration,
    args: &[&[u8]],
) -> Result<Reply, String> {
    match tokio::time::timeout(timeout, conn.call(args)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no reply within {timeout:?}")),
    }
}
