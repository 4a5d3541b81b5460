//! `beat` and `skiff`: another agent's monitoring endpoint (`http.enabled: true`, port 5066),
//! as Metricbeat's beat module monitors Beats. `stats` GETs `/` (who the agent is) and
//! `/stats` (its counters) and publishes the counters under `<module>.stats.*`, with the
//! agent's identity under `<module>.stats.beat.{name, host, type, uuid, version}` and
//! `<module>.{id, type}`. It reads skiff's `/stats` and a Beat's alike. Default host
//! `http://localhost:5066`.

use async_trait::async_trait;
use skiff_config::{ConfigErrors, Node};
use skiff_event::Value;

use super::schema::{get, put};
use crate::http::HttpFetch;
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module};

/// The module, under its two names.
pub struct Agent(pub &'static str);

impl Module for Agent {
    fn name(&self) -> &'static str {
        self.0
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["stats"]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["stats"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["http://localhost:5066"]
    }

    fn build(
        &self,
        _metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        crate::no_options(own, self.0)?;
        let err = |e: Error| crate::config_error(own, e);
        Ok(Box::new(Stats {
            info: HttpFetch::new(ctx, "/", "").map_err(err)?,
            stats: HttpFetch::new(ctx, "/stats", "").map_err(err)?,
        }))
    }
}

struct Stats {
    info: HttpFetch,
    stats: HttpFetch,
}

#[async_trait]
impl Fetcher for Stats {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let info = self.info.get_json().await?;
        let stats = self.stats.get_json().await?;
        let Value::Object(mut fields) = stats else {
            return Err(Error::parse(
                &self.stats.url,
                "the /stats document is not a JSON object",
            ));
        };
        let mut ev = MetricEvent::default();
        for (from, to) in [
            ("name", "name"),
            ("hostname", "host"),
            ("beat", "type"),
            ("uuid", "uuid"),
            ("version", "version"),
        ] {
            if let Some(v) = get(&info, from) {
                put(&mut fields, &format!("beat.{to}"), v.clone());
            }
        }
        if let Some(id) = get(&info, "uuid") {
            ev.module_fields.insert("id".into(), id.clone());
        }
        if let Some(t) = get(&info, "beat") {
            ev.module_fields.insert("type".into(), t.clone());
        }
        ev.fields = fields;
        Ok(vec![ev])
    }
}
