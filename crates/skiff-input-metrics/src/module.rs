//! What a module is: the [`Module`] trait (its name, metricsets and how to build a fetcher for
//! one metricset of one host) and the [`Fetcher`] trait (fetch once, return events).
//!
//! A module is one file under `modules/`, one `impl Module` and one line in
//! [`MODULES`](crate::modules::MODULES). The framework does everything else: the configuration's
//! common keys, scheduling, timeouts, the event envelope, errors as events.

use std::time::Duration;

use async_trait::async_trait;
use skiff_config::{ConfigError, ConfigErrors, Node, NodeValue};
use skiff_event::{Map, Timestamp, Value};

use crate::Error;
use crate::host::HostSpec;
use crate::http::HttpSettings;

/// A kind of service: `golang`, `system`, `redis`, ...
pub trait Module: Sync + Send {
    /// The `module:` value.
    fn name(&self) -> &'static str;

    /// Every metricset it has.
    fn metricsets(&self) -> &'static [&'static str];

    /// The metricsets run when the block has no `metricsets` (empty: the key is required).
    fn default_metricsets(&self) -> &'static [&'static str] {
        &[]
    }

    /// The hosts used when the block has no `hosts`; empty for a module that reads the local
    /// machine (`system`): it runs once with no host.
    fn default_hosts(&self) -> &'static [&'static str] {
        &[]
    }

    /// Builds the fetcher of `metricset` for the host in `ctx`. `own` holds the block's keys
    /// that are not common to every module (`expvar.namespace`, `metrics_filters`, ...): the
    /// module deserializes them strictly, so a typo is an error with its line.
    fn build(
        &self,
        metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors>;
}

/// What a fetcher is built with: the block's common settings for one host.
#[derive(Clone, Debug)]
pub struct FetchContext {
    /// The module's name.
    pub module: &'static str,
    /// The metricset's name.
    pub metricset: String,
    /// The host, if the module has hosts.
    pub host: Option<HostSpec>,
    /// `period`.
    pub period: Duration,
    /// `timeout` (default: `period`).
    pub timeout: Duration,
    /// `username`.
    pub username: Option<String>,
    /// `password`.
    pub password: Option<String>,
    /// HTTP settings (`ssl.*`, `headers`, `bearer_token_file`, `query`).
    pub http: HttpSettings,
}

/// A fetcher: one metricset of one host, with the state it keeps between fetches (previous
/// samples for deltas, a connection).
#[async_trait]
pub trait Fetcher: Send {
    /// Fetches once. An `Err` becomes one event with `error.message`; the next fetch runs at
    /// the next period all the same.
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error>;

    /// A push metricset (prometheus `remote_write`) is not fetched every period: it returns
    /// the [`Listener`](crate::listener::Listener) the block runs instead (see
    /// [`listener`](crate::listener)). Default: none, a periodic metricset.
    fn listener(&mut self) -> Option<Box<dyn crate::listener::Listener>> {
        None
    }
}

/// One event's worth of data from a fetch; the framework adds the envelope.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricEvent {
    /// The metricset's fields, put under `<module>.<metricset>` (or under `namespace`).
    pub fields: Map,
    /// Fields under `<module>` shared by several metricsets (`nats.server.id`).
    pub module_fields: Map,
    /// Fields at the root (`process.pid`, `user.name`, `service.version`).
    pub root_fields: Map,
    /// Replaces `<module>.<metricset>` as the fields' place and `event.dataset`
    /// (`golang.<namespace>`, `system.process.summary`).
    pub namespace: Option<String>,
    /// The event's `@timestamp` when the metricset knows better than the fetch's start.
    pub timestamp: Option<Timestamp>,
    /// An error for this event only (the others of the fetch are fine).
    pub error: Option<String>,
}

impl MetricEvent {
    /// An event with these metricset fields.
    pub fn new(fields: Map) -> MetricEvent {
        MetricEvent {
            fields,
            ..Default::default()
        }
    }

    /// An event from a JSON value: its object becomes the metricset fields.
    pub fn from_value(v: Value) -> MetricEvent {
        match v {
            Value::Object(m) => MetricEvent::new(m),
            other => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                MetricEvent::new(m)
            }
        }
    }
}

/// A module's configuration error at its own settings (`own`): what `Module::build` returns
/// when a setting is accepted by serde but cannot be used (a bad URL, a path, a query).
pub fn config_error(own: &Node, message: impl ToString) -> ConfigErrors {
    ConfigErrors(vec![ConfigError::new(
        &own.path,
        own.mark.clone(),
        message.to_string(),
    )])
}

/// An error for any key of a module without options of its own.
pub fn no_options(own: &Node, module: &str) -> Result<(), ConfigErrors> {
    if let NodeValue::Map(entries) = &own.value
        && let Some((k, n)) = entries.first()
    {
        return Err(ConfigErrors(vec![ConfigError::new(
            n.path.clone(),
            n.mark.clone(),
            format!("unknown key `{k}` (the {module} module has no options of its own)"),
        )]));
    }
    Ok(())
}
