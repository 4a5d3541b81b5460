//! `memcached`: `stats` over TCP, mapped to Metricbeat's `memcached.stats.*`. Default host
//! `localhost:11211`.

use async_trait::async_trait;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Map, Value};

use super::schema::put;
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module, tcp};

/// The module.
pub struct Memcached;

impl Module for Memcached {
    fn name(&self) -> &'static str {
        "memcached"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["stats"]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["stats"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["localhost:11211"]
    }

    fn build(
        &self,
        _metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        crate::no_options(own, "memcached")?;
        let raw = ctx
            .host
            .as_ref()
            .map_or("localhost:11211", |h| h.raw.as_str());
        Ok(Box::new(Stats {
            addr: tcp::addr(raw),
        }))
    }
}

struct Stats {
    addr: String,
}

const FIELDS: &[(&str, &str)] = &[
    ("pid", "pid"),
    ("uptime", "uptime.sec"),
    ("threads", "threads"),
    ("curr_connections", "connections.current"),
    ("total_connections", "connections.total"),
    ("get_hits", "get.hits"),
    ("get_misses", "get.misses"),
    ("cmd_get", "cmd.get"),
    ("cmd_set", "cmd.set"),
    ("bytes_read", "read.bytes"),
    ("bytes_written", "written.bytes"),
    ("curr_items", "items.current"),
    ("total_items", "items.total"),
    ("evictions", "evictions"),
    ("bytes", "bytes.current"),
    ("limit_maxbytes", "bytes.limit"),
];

/// The fields of a `stats` answer (`STAT name value` lines).
pub fn parse(answer: &str) -> Map {
    let mut m = Map::new();
    for line in answer.lines() {
        let mut w = line.split_whitespace();
        if w.next() != Some("STAT") {
            continue;
        }
        let (Some(k), Some(v)) = (w.next(), w.next()) else {
            continue;
        };
        if let Some((_, to)) = FIELDS.iter().find(|(from, _)| *from == k)
            && let Ok(n) = v.parse::<i64>()
        {
            put(&mut m, to, Value::from(n));
        }
    }
    m
}

#[async_trait]
impl Fetcher for Stats {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let answer = tcp::command(&self.addr, b"stats\r\n", Some("END\r\n")).await?;
        if !answer.contains("STAT ") {
            return Err(Error::parse(
                &self.addr,
                format!("not a memcached stats answer: {}", answer.trim()),
            ));
        }
        Ok(vec![MetricEvent::new(parse(&answer))])
    }
}
