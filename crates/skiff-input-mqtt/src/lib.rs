//! The `mqtt` input: subscribes to topics on an MQTT broker (3.1.1), one event per message, as
//! Filebeat's `type: mqtt`.
//!
//! Where it sits: an input of the pipeline (**input** -> processors -> queue -> output), a
//! separate crate because of its client library (`rumqttc`, pure Rust; its TLS is rustls,
//! configured by skiff-tls from the `ssl.*` settings like every other TLS client of skiff).
//!
//! # Acknowledgement contract
//!
//! * **QoS 1 and 2** (subscribed with `qos: 1` or `2`; 2 is served as 1, at least once): a
//!   message is acknowledged to the broker (PUBACK) only once skiff's output acknowledged its
//!   event, in the order received (the watermark of an [`AckStream`]). While the output is
//!   down nothing is acknowledged; the broker stops sending after its in-flight window
//!   (Mosquitto: `max_inflight_messages`, 20) and keeps the rest queued for us. With
//!   `clean_session: false` and a fixed `client_id`, messages not yet acknowledged when skiff
//!   stops or the connection drops are delivered again by the broker (with the `dup` flag):
//!   at least once, duplicates possible. With `clean_session: true` (Filebeat's default) the
//!   broker forgets them with the session: the messages in flight are lost at a reconnect.
//! * **QoS 0**: no acknowledgement exists. Messages are published as they come; while the
//!   queue is full the input stops reading its socket (back-pressure on the broker, which
//!   drops QoS 0 messages for slow clients by its own rules).
//!
//! Acknowledgements that belong to an earlier connection are not sent on a new one (the
//! broker redelivers those messages instead).
//!
//! # Events
//!
//! `message` (the payload, UTF-8 with invalid bytes replaced), `mqtt.topic`, `mqtt.qos`,
//! `mqtt.retained`, `mqtt.duplicate`, `mqtt.message_id` (QoS > 0), as Filebeat.
//!
//! # TLS
//!
//! A broker is reached over TLS when its `hosts` entry says so (`ssl://`, `tls://`, `tcps://`,
//! `mqtts://`; port 8883 by default), or when an `ssl` block is given and not disabled (then
//! every broker is). The `ssl.*` settings are Beats' client ones (`certificate_authorities`,
//! `certificate`/`key` for brokers that ask for a client certificate, `verification_mode`,
//! ...); the broker's name in `hosts` is the name its certificate is checked against.
//!
//! # Not supported
//!
//! WebSocket brokers (`ws://`, `wss://`) and MQTT 5 are refused at configuration time with a
//! clear message.

#![deny(missing_docs)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rumqttc::{
    AsyncClient, Event as MqttEvent, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport,
};
use serde::Deserialize;
use skiff_config::{ByteSize, ConfigError, ConfigErrors, Node};
use skiff_event::{AckStream, Event, Map, Timestamp};
use skiff_metrics::names;
use skiff_pipeline::{Failure, Input, InputContext, InputPlugin};

/// `type: mqtt`.
pub static PLUGIN: InputPlugin = InputPlugin {
    name: "mqtt",
    agent_type: "filebeat",
    build: |n, _, _| build(n),
};

/// The input's settings (Filebeat's names).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `hosts`: brokers, `tcp://host:1883` (also `mqtt://`, or `host:port`); tried in turn on
    /// each reconnect. Required.
    pub hosts: Vec<String>,
    /// `topics`: topic filters to subscribe to (`a/+/c`, `#`). Required.
    pub topics: Vec<String>,
    /// `qos`: 0, 1 or 2 (2 is served as 1). Default 0.
    #[serde(default)]
    pub qos: u8,
    /// `client_id`: the MQTT client id; give a fixed one with `clean_session: false`.
    /// Default `skiff-<agent id>` (stable across restarts).
    #[serde(default)]
    pub client_id: Option<String>,
    /// `username`. Default none.
    #[serde(default)]
    pub username: Option<String>,
    /// `password`. Default none.
    #[serde(default)]
    pub password: Option<String>,
    /// `clean_session`: start without the broker's saved session. Default true (Filebeat's);
    /// false keeps unacknowledged QoS 1 messages across reconnects and restarts.
    #[serde(default = "yes")]
    pub clean_session: bool,
    /// `keep_alive` (skiff): the MQTT keep-alive. Default 30s.
    #[serde(default = "skiff_config::seconds::<30>")]
    pub keep_alive: skiff_config::Duration,
    /// `max_message_size` (skiff): the largest message accepted from the broker; a larger one
    /// ends the connection (logged). Default 10MiB.
    #[serde(default = "ten_mib")]
    pub max_message_size: ByteSize,
    /// `ssl`: TLS client settings (Beats' `ssl.*`); TLS to every broker unless
    /// `ssl.enabled: false`. Default: TLS only for `ssl://`-style hosts, with the system's CAs.
    #[serde(default)]
    pub ssl: Option<skiff_tls::SslConfig>,
}

fn yes() -> bool {
    true
}
fn ten_mib() -> ByteSize {
    ByteSize(10 << 20)
}

fn at(node: &Node, key: &str, msg: impl Into<String>) -> ConfigError {
    let n = node.get(key).unwrap_or(node);
    ConfigError::new(n.path().to_owned(), n.mark.clone(), msg.into())
}

/// A broker from a `hosts` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    /// The host name or address (also the name its TLS certificate is checked against).
    pub host: String,
    /// The port (1883, 8883 for TLS, unless given).
    pub port: u16,
    /// The entry's scheme asks for TLS.
    pub tls: bool,
}

/// A broker address from a `hosts` entry.
pub fn parse_host(h: &str) -> Result<Broker, String> {
    let (rest, tls) = match h.split_once("://") {
        Some(("tcp" | "mqtt", r)) => (r, false),
        Some(("ssl" | "tls" | "tcps" | "mqtts", r)) => (r, true),
        Some((s @ ("ws" | "wss"), _)) => {
            return Err(format!(
                "{s}:// (MQTT over WebSocket) brokers are not supported by skiff's mqtt input: use a tcp:// or ssl:// listener of the broker"
            ));
        }
        Some((s, _)) => {
            return Err(format!(
                "unknown scheme {s}:// (use tcp://host:1883 or ssl://host:8883)"
            ));
        }
        None => (h, false),
    };
    let default_port = if tls { 8883 } else { 1883 };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => {
            let port = port.parse().map_err(|_| format!("bad port in {h:?}"))?;
            (host.trim_matches(['[', ']']).to_owned(), port)
        }
        _ if !rest.is_empty() => (rest.trim_matches(['[', ']']).to_owned(), default_port),
        _ => return Err(format!("no host in {h:?}")),
    };
    Ok(Broker { host, port, tls })
}

fn build(node: &Node) -> Result<Box<dyn Input>, ConfigErrors> {
    let cfg: MqttConfig = node.deserialize()?;
    let mut errs = Vec::new();
    let mut brokers = Vec::new();
    if cfg.hosts.is_empty() {
        errs.push(at(
            node,
            "hosts",
            "give at least one broker: hosts: [\"tcp://localhost:1883\"]",
        ));
    }
    for h in &cfg.hosts {
        match parse_host(h) {
            Ok(b) => brokers.push(b),
            Err(e) => errs.push(at(node, "hosts", e)),
        }
    }
    if cfg.topics.is_empty() {
        errs.push(at(node, "topics", "give at least one topic filter"));
    }
    if cfg.qos > 2 {
        errs.push(at(node, "qos", "must be 0, 1 or 2"));
    }
    if cfg.max_message_size.0 == 0 || cfg.max_message_size.0 > 256 << 20 {
        errs.push(at(
            node,
            "max_message_size",
            "must be between 1 byte and 256MiB",
        ));
    }
    let ssl_on = cfg
        .ssl
        .as_ref()
        .is_some_and(skiff_tls::SslConfig::is_enabled);
    if ssl_on {
        for b in &mut brokers {
            b.tls = true;
        }
    }
    let tls = if ssl_on || brokers.iter().any(|b| b.tls) {
        match skiff_tls::client_config(&cfg.ssl.clone().unwrap_or_default()) {
            Ok(c) => Some(c),
            Err(e) => {
                errs.push(at(node, "ssl", e.to_string()));
                None
            }
        }
    } else {
        None
    };
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    Ok(Box::new(MqttInput { cfg, brokers, tls }))
}

/// A built mqtt input.
pub struct MqttInput {
    cfg: MqttConfig,
    brokers: Vec<Broker>,
    /// The TLS client configuration, when a broker is reached over TLS.
    tls: Option<Arc<skiff_tls::rustls::ClientConfig>>,
}

/// A message whose event is in the pipeline, waiting for the output's acknowledgement.
struct Pending {
    /// Its position in the ack stream.
    position: u64,
    /// The connection it came on (acks of older connections are not sent).
    connection: u64,
    publish: Publish,
}

#[async_trait]
impl Input for MqttInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        let MqttInput { cfg, brokers, tls } = *self;
        let qos = match cfg.qos {
            0 => QoS::AtMostOnce,
            _ => QoS::AtLeastOnce,
        };
        let client_id = cfg
            .client_id
            .clone()
            .unwrap_or_else(|| format!("skiff-{}", ctx.build.agent.id));
        let options = |i: usize| {
            let b = &brokers[i % brokers.len()];
            let mut o = MqttOptions::new(client_id.clone(), b.host.clone(), b.port);
            if let (true, Some(tls)) = (b.tls, &tls) {
                o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                    tls.clone(),
                )));
            }
            o.set_keep_alive(cfg.keep_alive.0.max(Duration::from_secs(5)))
                .set_clean_session(cfg.clean_session)
                .set_manual_acks(true)
                .set_inflight(100);
            let max = usize::try_from(cfg.max_message_size.0).unwrap_or(usize::MAX);
            o.set_max_packet_size(max, 64 << 10);
            if let Some(u) = &cfg.username {
                o.set_credentials(u.clone(), cfg.password.clone().unwrap_or_default());
            }
            o
        };
        let label = [("input", ctx.id.as_str())];
        let events = ctx.build.metrics.counter_with(&names::INPUT_EVENTS, &label);
        let bytes = ctx.build.metrics.counter_with(&names::INPUT_BYTES, &label);
        let stream = AckStream::new();
        let pending: Arc<Mutex<VecDeque<Pending>>> = Arc::default();
        let connection = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut attempt = 0usize;
        let (mut client, mut eventloop) = AsyncClient::new(options(attempt), 64);
        let (client_tx, client_rx) = tokio::sync::watch::channel(client.clone());
        let acker = tokio::spawn(ack_loop(
            stream.clone(),
            pending.clone(),
            connection.clone(),
            client_rx,
        ));
        {
            let (s, b) = (stream.clone(), brokers.clone());
            ctx.build.status.register(&ctx.id, move || {
                let p = s.progress();
                serde_json::json!({"type": "mqtt", "brokers": b.iter().map(|b| format!("{}://{}:{}", if b.tls { "ssl" } else { "tcp" }, b.host, b.port)).collect::<Vec<_>>(),
                    "acked": p.acked, "pending": p.pending()})
            });
        }
        let mut position = 0u64;
        let mut backoff = Duration::from_millis(500);
        loop {
            let polled = tokio::select! {
                e = eventloop.poll() => e,
                _ = ctx.shutdown.cancelled() => break,
            };
            match polled {
                Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                    backoff = Duration::from_millis(500);
                    let n = connection.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    tracing::info!(input = %ctx.id, connection = n, session_present = ack.session_present, "mqtt input connected");
                    for t in &cfg.topics {
                        if let Err(e) = client.subscribe(t.clone(), qos).await {
                            tracing::warn!(input = %ctx.id, topic = %t, error = %e, "mqtt subscribe failed");
                        }
                    }
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    events.inc();
                    bytes.add(p.payload.len() as u64);
                    let mut ev = to_event(&p, &ctx.shared);
                    if p.qos != QoS::AtMostOnce {
                        position += 1;
                        ev.ack = Some(stream.token(position));
                        lock(&pending).push_back(Pending {
                            position,
                            connection: connection.load(std::sync::atomic::Ordering::SeqCst),
                            publish: p,
                        });
                    }
                    // Waiting here stops the reads from the broker: back-pressure.
                    let published = tokio::select! {
                        r = ctx.publisher.publish(ev) => r.is_ok(),
                        _ = ctx.shutdown.cancelled() => false,
                    };
                    if !published {
                        break;
                    }
                }
                Ok(MqttEvent::Incoming(Packet::SubAck(s))) => {
                    tracing::debug!(input = %ctx.id, codes = ?s.return_codes, "mqtt subscribed");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(input = %ctx.id, error = %e, retry_in = ?backoff, "mqtt connection failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = ctx.shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    if brokers.len() > 1 {
                        // The next broker of the list; the acks of this connection are void.
                        attempt += 1;
                        (client, eventloop) = AsyncClient::new(options(attempt), 64);
                        let _ = client_tx.send(client.clone());
                    }
                }
            }
        }
        // Give the output a chance to deliver what we received, then send those acks.
        let deadline = tokio::time::Instant::now() + ctx.publisher.shutdown_timeout();
        stream.wait_all_acked(deadline).await;
        let drain = async {
            loop {
                if lock(&pending).is_empty() {
                    break;
                }
                if eventloop.poll().await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
        acker.abort();
        Ok(())
    }

    fn replays_unacked(&self) -> bool {
        self.cfg.qos > 0 && !self.cfg.clean_session
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends PUBACKs for the messages whose events were acknowledged, in order.
async fn ack_loop(
    stream: Arc<AckStream>,
    pending: Arc<Mutex<VecDeque<Pending>>>,
    connection: Arc<std::sync::atomic::AtomicU64>,
    client: tokio::sync::watch::Receiver<AsyncClient>,
) {
    loop {
        let acked = stream.acked_position().unwrap_or(0);
        let ready: Vec<Pending> = {
            let mut q = lock(&pending);
            let mut out = Vec::new();
            while q.front().is_some_and(|p| p.position <= acked) {
                if let Some(p) = q.pop_front() {
                    out.push(p);
                }
            }
            out
        };
        let now = connection.load(std::sync::atomic::Ordering::SeqCst);
        for p in ready {
            // A packet id of an earlier connection means nothing on this one.
            let c = client.borrow().clone();
            if p.connection == now && c.ack(&p.publish).await.is_err() {
                return;
            }
        }
        // The notification can fall between the read above and this wait: look again soon
        // in any case.
        tokio::select! {
            _ = stream.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// The event of one message.
pub fn to_event(p: &Publish, shared: &Arc<Map>) -> Event {
    let mut ev = Event::new_at(
        Timestamp::now(),
        shared.clone(),
        String::from_utf8_lossy(&p.payload).into_owned(),
    );
    let qos = p.qos as u8;
    let mut m = serde_json::json!({
        "topic": p.topic, "qos": qos, "retained": p.retain, "duplicate": p.dup,
    });
    if qos > 0
        && let Some(o) = m.as_object_mut()
    {
        o.insert("message_id".into(), serde_json::Value::from(p.pkid));
    }
    ev.fields.insert("mqtt".into(), m);
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let b = |host: &str, port, tls| {
            Ok(Broker {
                host: host.into(),
                port,
                tls,
            })
        };
        assert_eq!(parse_host("tcp://broker:1883"), b("broker", 1883, false));
        assert_eq!(
            parse_host("mqtt://127.0.0.1:1884/"),
            b("127.0.0.1", 1884, false)
        );
        assert_eq!(parse_host("broker"), b("broker", 1883, false));
        assert_eq!(parse_host("ssl://b"), b("b", 8883, true));
        assert_eq!(parse_host("mqtts://b:9883"), b("b", 9883, true));
        assert_eq!(parse_host("tls://[::1]:8884"), b("::1", 8884, true));
        assert!(
            parse_host("wss://b:443")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(parse_host("tcp://b:x").is_err());
    }

    #[test]
    fn config_problems_are_all_reported() {
        let n = skiff_config::parse_str(
            "hosts: []\ntopics: []\nqos: 3\nssl.certificate_authorities: [/nonexistent/ca.pem]",
            None,
        )
        .unwrap();
        let errs = build(&n).err().unwrap();
        assert_eq!(errs.0.len(), 4, "{errs}");
    }
}
