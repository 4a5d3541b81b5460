//! One Redis connection that sends batches: RPUSH per key (lists) or PUBLISH per event
//! (channels), pipelined into one round trip per batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use skiff_event::Event;
use skiff_metrics::Counter;
use skiff_pipeline::{Failure, Outcome, Output};
use tokio::net::TcpStream;

use crate::config::{DataType, Host};
use crate::error::RedisError;
use crate::resp::{self, Conn, Reply};
use skiff_processors::select::Selector;

/// How to reach and log in to one server.
#[derive(Clone, Debug)]
pub struct Target {
    /// The server.
    pub host: Host,
    /// `username` (the URL's wins).
    pub username: Option<String>,
    /// `password` (the URL's wins).
    pub password: Option<String>,
    /// `db` (the URL's wins).
    pub db: u32,
    /// `timeout`.
    pub timeout: Duration,
    /// TLS (`ssl.*` or `rediss://`), if on.
    pub tls: Option<Arc<skiff_tls::rustls::ClientConfig>>,
}

impl Target {
    /// Connects, authenticates and selects the database.
    pub async fn connect(&self) -> Result<Conn, RedisError> {
        let (mut conn, _) = self.open().await?;
        let addr = self.host.addr();
        tokio::time::timeout(self.timeout, self.login(&mut conn))
            .await
            .map_err(|_| {
                RedisError::Timeout(format!(
                    "redis at {addr} did not answer AUTH/SELECT within {:?}",
                    self.timeout
                ))
            })??;
        Ok(conn)
    }

    /// Opens the TCP connection and, with TLS, completes the handshake; returns what the
    /// server's certificate says (for `skiff test output`).
    pub async fn open(&self) -> Result<(Conn, Option<skiff_tls::PeerInfo>), RedisError> {
        let addr = self.host.addr();
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| {
                RedisError::Timeout(format!(
                    "connecting to redis at {addr} timed out after {:?}: check the host, the port and any firewall",
                    self.timeout
                ))
            })?
            .map_err(|e| {
                RedisError::Connect(format!(
                    "cannot connect to redis at {addr}: {}",
                    skiff_tls::explain(&e, &self.host.host)
                ))
            })?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok((Conn::new(Box::new(tcp)), None));
        };
        let (stream, peer) = tokio::time::timeout(
            self.timeout,
            skiff_tls::handshake(tcp, &self.host.host, tls.clone()),
        )
        .await
        .map_err(|_| {
            RedisError::Tls(format!(
                "TLS handshake with redis at {addr} timed out after {:?}: is TLS enabled on that port (redis-server --tls-port)?",
                self.timeout
            ))
        })?
        .map_err(|e| {
            RedisError::Tls(format!(
                "TLS handshake with redis at {addr} failed: {}",
                skiff_tls::explain(&e, &self.host.host)
            ))
        })?;
        Ok((Conn::new(Box::new(stream)), peer))
    }

    /// AUTH (with a password) and SELECT (with a `db`): each must answer exactly `+OK`.
    async fn login(&self, conn: &mut Conn) -> Result<(), RedisError> {
        let addr = self.host.addr();
        if let Some(pw) = &self.password {
            let reply = match &self.username {
                Some(u) => conn.call(&[b"AUTH", u.as_bytes(), pw.as_bytes()]).await,
                None => conn.call(&[b"AUTH", pw.as_bytes()]).await,
            }
            .map_err(|e| RedisError::io(&format!("redis at {addr}: AUTH"), &e))?;
            match reply {
                Reply::Status(s) if s == "OK" => {}
                Reply::Error(e) => {
                    return Err(RedisError::Auth(format!(
                        "redis at {addr} refused the login: {e}: check `password` (and `username` for ACL users)"
                    )));
                }
                other => return Err(unexpected(&addr, "AUTH", "+OK", &other)),
            }
        }
        if self.db != 0 {
            let db = self.db.to_string();
            let reply = conn
                .call(&[b"SELECT", db.as_bytes()])
                .await
                .map_err(|e| RedisError::io(&format!("redis at {addr}: SELECT {db}"), &e))?;
            match reply {
                Reply::Status(s) if s == "OK" => {}
                Reply::Error(e) if fatal(&e) => {
                    return Err(RedisError::Auth(format!(
                        "redis at {addr} refused `SELECT {db}`: {e}: check `password`, `username` and the user's ACL"
                    )));
                }
                Reply::Error(e) => {
                    return Err(RedisError::Rejected(format!(
                        "redis at {addr} refused `SELECT {db}`: {e}: check `db` (the server's `databases` setting bounds it)"
                    )));
                }
                other => return Err(unexpected(&addr, &format!("SELECT {db}"), "+OK", &other)),
            }
        }
        Ok(())
    }
}

/// A reply of the wrong type or value: the whole exchange is void.
fn unexpected(addr: &str, command: &str, expected: &str, got: &Reply) -> RedisError {
    let mut got = format!("{got:?}");
    if got.len() > 120 {
        let cut = (0..=120)
            .rev()
            .find(|&i| got.is_char_boundary(i))
            .unwrap_or(0);
        got.truncate(cut);
        got.push_str("...");
    }
    RedisError::Protocol(format!(
        "redis at {addr} answered {command} with {got}, expected {expected}: is this a Redis server (or a proxy in the way)?"
    ))
}

/// A client of one server: one connection, reopened after any failure.
pub struct RedisClient {
    /// Where to send.
    pub target: Target,
    /// The key (list or channel) selector.
    pub selector: Arc<Selector>,
    /// `datatype`.
    pub datatype: DataType,
    /// `libbeat.output.write.bytes`.
    pub write_bytes: Counter,
    /// The open connection, if any.
    pub conn: Option<Conn>,
    /// Reused encode buffers.
    pub buf: Vec<u8>,
    /// Scratch for one event's JSON.
    pub scratch: Vec<u8>,
}

/// One command in a pipelined batch, and the events it carries.
struct Cmd {
    key: String,
    events: Vec<usize>,
}

#[async_trait]
impl Output for RedisClient {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, Failure> {
        let mut outcome = Outcome::default();
        let cmds = self.route(events, &mut outcome);
        if cmds.is_empty() {
            return Ok(outcome);
        }
        self.encode(events, &cmds);
        let timeout = self.target.timeout;
        let addr = self.target.host.addr();
        let replies = match tokio::time::timeout(timeout, self.round_trip(cmds.len())).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.conn = None;
                return Err(e.into());
            }
            Err(_) => {
                self.conn = None;
                return Err(RedisError::Timeout(format!(
                    "redis at {addr} did not answer within {timeout:?} (timeout): the server may be overloaded or the network slow"
                ))
                .into());
            }
        };
        // Every reply is checked before any event counts as delivered: one reply that is not
        // what its command requires voids the whole batch.
        let verb = self.datatype.verb();
        let mut errors = Vec::new();
        for (cmd, reply) in cmds.iter().zip(&replies) {
            match (reply, self.datatype) {
                (Reply::Int(n), DataType::List) if *n >= cmd.events.len() as i64 => {}
                (Reply::Int(n), DataType::Channel) if *n >= 0 => {}
                (Reply::Error(e), _) => errors.push(e),
                (other, _) => {
                    self.conn = None;
                    let expected = match self.datatype {
                        DataType::List => {
                            format!("an integer >= {} (the list's new length)", cmd.events.len())
                        }
                        DataType::Channel => "an integer >= 0 (the receivers)".to_owned(),
                    };
                    return Err(unexpected(
                        &addr,
                        &format!("{verb} `{}`", cmd.key),
                        &expected,
                        other,
                    )
                    .into());
                }
            }
        }
        if errors.is_empty() {
            return Ok(outcome);
        }
        for (cmd, reply) in cmds.into_iter().zip(replies) {
            let Reply::Error(e) = reply else { continue };
            if retriable(&e) {
                tracing::warn!(output = %self.describe(), key = %cmd.key, error = %e, "redis is busy; will retry");
                outcome.retry.extend(cmd.events);
            } else if fatal(&e) {
                // A login or permission problem is not the events' fault: keep them.
                self.conn = None;
                return Err(RedisError::Auth(format!(
                    "redis at {addr} refused {verb} to `{}`: {e}: check `password`, `username` and the user's ACL",
                    cmd.key
                ))
                .into());
            } else {
                let why = format!("redis refused {verb} to key `{}`: {e}", cmd.key);
                outcome
                    .rejected
                    .extend(cmd.events.into_iter().map(|i| (i, why.clone())));
            }
        }
        Ok(outcome)
    }

    fn describe(&self) -> String {
        format!("redis({})", self.target.host.addr())
    }

    async fn reset(&mut self) {
        self.conn = None;
        self.buf = Vec::new();
        self.scratch = Vec::new();
    }

    async fn close(&mut self) {
        self.conn = None;
    }
}

impl RedisClient {
    /// Groups events by destination (in order of first appearance); unroutable ones are rejected.
    fn route(&self, events: &[Event], outcome: &mut Outcome) -> Vec<Cmd> {
        let mut cmds: Vec<Cmd> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for (i, ev) in events.iter().enumerate() {
            let key = match self.selector.select(ev) {
                Ok(k) => k,
                Err(why) => {
                    outcome.rejected.push((i, why));
                    continue;
                }
            };
            match self.datatype {
                DataType::Channel => cmds.push(Cmd {
                    key,
                    events: vec![i],
                }),
                DataType::List => match by_key.get(&key) {
                    Some(&c) => cmds[c].events.push(i),
                    None => {
                        by_key.insert(key.clone(), cmds.len());
                        cmds.push(Cmd {
                            key,
                            events: vec![i],
                        });
                    }
                },
            }
        }
        cmds
    }

    /// Writes every command of the batch into `self.buf`.
    fn encode(&mut self, events: &[Event], cmds: &[Cmd]) {
        self.buf.clear();
        let verb = self.datatype.verb().as_bytes();
        for c in cmds {
            resp::command_header(&mut self.buf, 2 + c.events.len());
            resp::arg(&mut self.buf, verb);
            resp::arg(&mut self.buf, c.key.as_bytes());
            for &i in &c.events {
                self.scratch.clear();
                // With @metadata, as Beats' JSON codec writes it for Logstash's redis input.
                skiff_event::json::encode(&events[i], &mut self.scratch, true);
                resp::arg(&mut self.buf, &self.scratch);
            }
        }
    }

    /// Sends `self.buf` and reads `n` replies, connecting first if needed.
    async fn round_trip(&mut self, n: usize) -> Result<Vec<Reply>, RedisError> {
        let addr = self.target.host.addr();
        if let Some(conn) = self.conn.as_mut()
            && let Some(what) = conn.unsolicited()
        {
            // Replies nobody waits for would be taken for this batch's: start afresh.
            tracing::debug!(output = %self.describe(), found = %what, "idle connection not clean; reconnecting");
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = Some(self.target.connect().await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(RedisError::Connect(format!(
                "redis at {addr}: no connection"
            )));
        };
        conn.write(&self.buf).await.map_err(|e| {
            RedisError::Connect(format!(
                "sending to redis at {addr} failed: {e}: the connection was lost; will reconnect"
            ))
        })?;
        self.write_bytes.add(self.buf.len() as u64);
        // Keep the buffer from pinning a huge batch's memory forever.
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::new();
        }
        let mut replies = Vec::with_capacity(n);
        for _ in 0..n {
            let r = conn.read().await.map_err(|e| {
                RedisError::io(
                    &format!(
                        "reading redis's reply {} of {n} from {addr} failed",
                        replies.len() + 1
                    ),
                    &e,
                )
            })?;
            replies.push(r);
        }
        if let Some(what) = conn.unsolicited() {
            // More replies than commands: whatever the server did, its answer is not ours.
            return Err(RedisError::Protocol(format!(
                "redis at {addr} sent more than the {n} replies to the batch's {n} commands ({what})"
            )));
        }
        Ok(replies)
    }
}

/// Errors that pass: the server is loading, busy, read-only during a failover, or out of memory.
fn retriable(e: &str) -> bool {
    const CODES: &[&str] = &[
        "LOADING",
        "BUSY",
        "TRYAGAIN",
        "OOM",
        "READONLY",
        "MASTERDOWN",
        "CLUSTERDOWN",
        "MISCONF",
        "NOREPLICAS",
    ];
    let code = e.split(' ').next().unwrap_or("");
    CODES.contains(&code)
}

/// Errors about who we are, not about the events.
fn fatal(e: &str) -> bool {
    let code = e.split(' ').next().unwrap_or("");
    matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes() {
        assert!(retriable("LOADING Redis is loading the dataset in memory"));
        assert!(retriable(
            "OOM command not allowed when used memory > 'maxmemory'."
        ));
        assert!(!retriable(
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        ));
        assert!(fatal("NOAUTH Authentication required."));
        assert!(!fatal("WRONGTYPE x"));
    }
}
