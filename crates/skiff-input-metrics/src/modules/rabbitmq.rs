//! `rabbitmq`: the management plugin's HTTP API, as Metricbeat's rabbitmq module: `node`
//! (`/api/nodes/<name>`, or every node with `node.collect: cluster`), `queue`
//! (`/api/queues`), `exchange` (`/api/exchanges`) and `connection` (`/api/connections`), one
//! event per object. Options: `management_path_prefix`, `node.collect` (`node`, default, or
//! `cluster`). Default host `localhost:15672`.

use crate::config_error;
use async_trait::async_trait;
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::Value;

use super::schema::{get, pick, put};
use crate::http::HttpFetch;
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module};

/// The module.
pub struct RabbitMq;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `management_path_prefix`: a prefix before `/api` (a proxied management UI). Default none.
    #[serde(default)]
    management_path_prefix: Option<String>,
    /// `node.*`.
    #[serde(default)]
    node: NodeConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeConfig {
    /// `collect`: `node` (the node answering, default) or `cluster` (every node).
    #[serde(default)]
    collect: Option<String>,
}

#[derive(Clone, Copy)]
enum Set {
    Node { cluster: bool },
    Queue,
    Exchange,
    Connection,
}

impl Module for RabbitMq {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["node", "queue", "exchange", "connection"]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["node", "queue", "connection"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["localhost:15672"]
    }

    fn build(
        &self,
        metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        let cfg: Config = own.deserialize()?;
        let err = |m: String| config_error(own, m);
        let cluster = match cfg.node.collect.as_deref() {
            None | Some("node") => false,
            Some("cluster") => true,
            Some(other) => {
                return Err(err(format!(
                    "node.collect: `{other}` is neither `node` nor `cluster`"
                )));
            }
        };
        let (set, path) = match metricset {
            "node" if cluster => (Set::Node { cluster }, "/api/nodes"),
            // The node answering: its name comes from /api/overview first.
            "node" => (Set::Node { cluster }, "/api/overview"),
            "queue" => (Set::Queue, "/api/queues"),
            "exchange" => (Set::Exchange, "/api/exchanges"),
            _ => (Set::Connection, "/api/connections"),
        };
        let prefix = cfg.management_path_prefix.unwrap_or_default();
        let path = format!("{}{path}", prefix.trim_end_matches('/'));
        let http = HttpFetch::new(ctx, &path, "").map_err(|e| err(e.to_string()))?;
        Ok(Box::new(Fetch {
            http,
            set,
            ctx: ctx.clone(),
            prefix,
        }))
    }
}

struct Fetch {
    http: HttpFetch,
    set: Set,
    ctx: FetchContext,
    prefix: String,
}

const CONNECTION: &[(&str, &str)] = &[
    ("name", "connection.name"),
    ("vhost", "vhost"),
    ("user", "user"),
    ("node", "node.name"),
    ("channels", "connection.channels"),
    ("channel_max", "connection.channel_max"),
    ("frame_max", "connection.frame_max"),
    ("type", "connection.type"),
    ("host", "connection.host"),
    ("peer_host", "connection.peer.host"),
    ("port", "connection.port"),
    ("peer_port", "connection.peer.port"),
    ("send_cnt", "connection.packet_count.sent"),
    ("send_pend", "connection.packet_count.pending"),
    ("recv_cnt", "connection.packet_count.received"),
    ("send_oct", "connection.octet_count.sent"),
    ("recv_oct", "connection.octet_count.received"),
    (
        "client_properties.connection_name",
        "connection.client_provided.name",
    ),
];

const EXCHANGE: &[(&str, &str)] = &[
    ("name", "exchange.name"),
    ("vhost", "vhost"),
    ("user_who_performed_action", "user"),
    ("type", "exchange.type"),
    ("durable", "exchange.durable"),
    ("auto_delete", "exchange.auto_delete"),
    ("internal", "exchange.internal"),
    ("arguments", "exchange.arguments"),
    (
        "message_stats.publish_in",
        "exchange.messages.publish_in.count",
    ),
    (
        "message_stats.publish_in_details.rate",
        "exchange.messages.publish_in.details.rate",
    ),
    (
        "message_stats.publish_out",
        "exchange.messages.publish_out.count",
    ),
    (
        "message_stats.publish_out_details.rate",
        "exchange.messages.publish_out.details.rate",
    ),
];

const QUEUE: &[(&str, &str)] = &[
    ("name", "queue.name"),
    ("vhost", "vhost"),
    ("node", "node.name"),
    ("durable", "queue.durable"),
    ("auto_delete", "queue.auto_delete"),
    ("exclusive", "queue.exclusive"),
    ("state", "queue.state"),
    ("arguments.x-max-priority", "queue.arguments.max_priority"),
    ("consumers", "queue.consumers.count"),
    ("consumer_utilisation", "queue.consumers.utilisation.pct"),
    ("messages", "queue.messages.total.count"),
    ("messages_details.rate", "queue.messages.total.details.rate"),
    ("messages_ready", "queue.messages.ready.count"),
    (
        "messages_ready_details.rate",
        "queue.messages.ready.details.rate",
    ),
    (
        "messages_unacknowledged",
        "queue.messages.unacknowledged.count",
    ),
    (
        "messages_unacknowledged_details.rate",
        "queue.messages.unacknowledged.details.rate",
    ),
    ("messages_persistent", "queue.messages.persistent.count"),
    ("memory", "queue.memory.bytes"),
    ("disk_reads", "queue.disk.reads.count"),
    ("disk_writes", "queue.disk.writes.count"),
];

const NODE: &[(&str, &str)] = &[
    ("name", "name"),
    ("type", "type"),
    ("uptime", "uptime"),
    ("processors", "processors"),
    ("disk_free", "disk.free.bytes"),
    ("disk_free_limit", "disk.free.limit.bytes"),
    ("fd_total", "fd.total"),
    ("fd_used", "fd.used"),
    ("gc_num", "gc.num.count"),
    ("gc_bytes_reclaimed", "gc.reclaimed.bytes"),
    (
        "io_file_handle_open_attempt_avg_time",
        "io.file_handle.open_attempt.avg.ms",
    ),
    (
        "io_file_handle_open_attempt_count",
        "io.file_handle.open_attempt.count",
    ),
    ("io_read_avg_time", "io.read.avg.ms"),
    ("io_read_bytes", "io.read.bytes"),
    ("io_read_count", "io.read.count"),
    ("io_reopen_count", "io.reopen.count"),
    ("io_seek_avg_time", "io.seek.avg.ms"),
    ("io_seek_count", "io.seek.count"),
    ("io_sync_avg_time", "io.sync.avg.ms"),
    ("io_sync_count", "io.sync.count"),
    ("io_write_avg_time", "io.write.avg.ms"),
    ("io_write_bytes", "io.write.bytes"),
    ("io_write_count", "io.write.count"),
    ("mem_limit", "mem.limit.bytes"),
    ("mem_used", "mem.used.bytes"),
    ("mnesia_disk_tx_count", "mnesia.disk.tx.count"),
    ("mnesia_ram_tx_count", "mnesia.ram.tx.count"),
    ("msg_store_read_count", "msg.store_read.count"),
    ("msg_store_write_count", "msg.store_write.count"),
    ("proc_total", "proc.total"),
    ("proc_used", "proc.used"),
    (
        "queue_index_journal_write_count",
        "queue.index.journal_write.count",
    ),
    ("queue_index_read_count", "queue.index.read.count"),
    ("queue_index_write_count", "queue.index.write.count"),
    ("run_queue", "run.queue"),
    ("sockets_total", "socket.total"),
    ("sockets_used", "socket.used"),
];

/// One event from one API object: `rabbitmq.<metricset>.*`, `rabbitmq.vhost`,
/// `rabbitmq.node.name` and `user.name`.
fn event(obj: &Value, rules: &[(&str, &str)]) -> MetricEvent {
    let mut all = pick(obj, rules);
    let mut ev = MetricEvent::default();
    if let Some(user) = all.remove("user") {
        put(&mut ev.root_fields, "user.name", user);
    }
    for k in ["vhost", "node"] {
        if let Some(v) = all.remove(k) {
            ev.module_fields.insert(k.into(), v);
        }
    }
    for (_, v) in all {
        if let Value::Object(m) = v {
            ev.fields.extend(m);
        }
    }
    ev
}

fn list(doc: Value, url: &str) -> Result<Vec<Value>, Error> {
    match doc {
        Value::Array(a) => Ok(a),
        _ => Err(Error::parse(url, "expected a JSON array")),
    }
}

#[async_trait]
impl Fetcher for Fetch {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let doc = self.http.get_json().await?;
        let url = self.http.url.clone();
        let rules = match self.set {
            Set::Queue => QUEUE,
            Set::Exchange => EXCHANGE,
            Set::Connection => CONNECTION,
            Set::Node { cluster: true } => {
                return Ok(list(doc, &url)?.iter().map(node_event).collect());
            }
            Set::Node { cluster: false } => {
                let Some(name) = get(&doc, "node").and_then(Value::as_str) else {
                    return Err(Error::parse(&url, "no `node` in /api/overview"));
                };
                let path = format!(
                    "{}/api/nodes/{}",
                    self.prefix.trim_end_matches('/'),
                    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
                );
                let node = HttpFetch::new(&self.ctx, &path, "")?.get_json().await?;
                return Ok(vec![node_event(&node)]);
            }
        };
        Ok(list(doc, &url)?.iter().map(|o| event(o, rules)).collect())
    }
}

fn node_event(n: &Value) -> MetricEvent {
    MetricEvent::new(pick(n, NODE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_maps_to_metricbeat_fields() {
        let v = serde_json::json!({"name": "c", "vhost": "/", "user": "guest", "node": "n",
            "peer_port": 5, "recv_oct": 7, "client_properties": {"connection_name": "app"}});
        let e = event(&v, CONNECTION);
        assert_eq!(e.fields["name"], "c");
        assert_eq!(e.fields["peer"]["port"], 5);
        assert_eq!(e.fields["octet_count"]["received"], 7);
        assert_eq!(e.fields["client_provided"]["name"], "app");
        assert_eq!(e.module_fields["vhost"], "/");
        assert_eq!(e.module_fields["node"]["name"], "n");
        assert_eq!(e.root_fields["user"]["name"], "guest");
    }
}
