//! `prometheus/query`: PromQL through a Prometheus server's HTTP API, as Metricbeat's query
//! metricset. Each of `queries: [{name, path (default /api/v1/query), params: {query, time,
//! start, end, step}}]` is asked every period; an instant vector gives one event per series,
//! a range vector one per series and sample, a scalar or a string one event. Values go to
//! `prometheus.query.<name>`, series labels to `prometheus.labels.*`, and the sample's time
//! is the event's `@timestamp`. NaN and ±Inf samples are dropped.

use crate::config_error;
use async_trait::async_trait;
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Map, Timestamp, Value};

use super::text::number;
use crate::http::HttpFetch;
use crate::{Error, FetchContext, Fetcher, MetricEvent};

/// One item of `queries`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// `name`: the field under `prometheus.query`. Required.
    pub name: String,
    /// `path`: `/api/v1/query` (default) or `/api/v1/query_range`.
    #[serde(default)]
    pub path: Option<String>,
    /// `params`: the API's parameters (`query`, `time`, `start`, `end`, `step`). Default none.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, serde_json::Value>,
}

pub(super) fn build(
    ctx: &FetchContext,
    own: &Node,
    queries: Vec<QueryConfig>,
) -> Result<Box<dyn Fetcher>, ConfigErrors> {
    let err = |m: String| config_error(own, m);
    if queries.is_empty() {
        return Err(err(
            "the `query` metricset needs `queries: [{name, params: {query: ...}}]`".into(),
        ));
    }
    let mut fetches = Vec::new();
    for q in queries {
        let params: Vec<(String, String)> = q
            .params
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect();
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let path = q.path.as_deref().unwrap_or("/api/v1/query");
        let http = HttpFetch::new(ctx, path, &query).map_err(|e| err(e.to_string()))?;
        fetches.push((q.name, http));
    }
    Ok(Box::new(Query { fetches }))
}

struct Query {
    fetches: Vec<(String, HttpFetch)>,
}

/// `[time, "value"]` as a timestamp and a finite number (or the string for `string` results).
fn sample(v: &Value, as_string: bool) -> Option<(Option<Timestamp>, Value)> {
    let pair = v.as_array()?;
    // Prometheus times are seconds with millisecond precision.
    let ts = pair
        .first()
        .and_then(Value::as_f64)
        .map(|s| Timestamp((s * 1e3).round() as i64 * 1_000_000));
    let raw = pair.get(1)?.as_str()?;
    if as_string {
        return Some((ts, Value::from(raw)));
    }
    let f: f64 = match raw {
        "NaN" | "+Inf" | "-Inf" | "Inf" => return None,
        _ => raw.parse().ok()?,
    };
    f.is_finite().then(|| (ts, number(f)))
}

fn event(name: &str, labels: Option<&Value>, ts: Option<Timestamp>, value: Value) -> MetricEvent {
    let mut ev = MetricEvent {
        timestamp: ts,
        ..Default::default()
    };
    if let Some(Value::Object(l)) = labels
        && !l.is_empty()
    {
        ev.module_fields
            .insert("labels".into(), Value::Object(l.clone()));
    }
    let mut q = Map::new();
    q.insert(name.to_owned(), value);
    ev.module_fields.insert("query".into(), Value::Object(q));
    ev
}

/// The events of one API answer.
pub fn events(name: &str, doc: &Value, url: &str) -> Result<Vec<MetricEvent>, Error> {
    if doc.get("status").and_then(Value::as_str) != Some("success") {
        let why = doc
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no `status: success`");
        return Err(Error::parse(url, format!("query `{name}` failed: {why}")));
    }
    let data = doc
        .get("data")
        .ok_or_else(|| Error::parse(url, "no `data`"))?;
    let result = data.get("result").cloned().unwrap_or(Value::Null);
    let mut out = Vec::new();
    match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => {
            for series in result.as_array().into_iter().flatten() {
                if let Some((ts, v)) = series.get("value").and_then(|v| sample(v, false)) {
                    out.push(event(name, series.get("metric"), ts, v));
                }
            }
        }
        Some("matrix") => {
            for series in result.as_array().into_iter().flatten() {
                for s in series
                    .get("values")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some((ts, v)) = sample(s, false) {
                        out.push(event(name, series.get("metric"), ts, v));
                    }
                }
            }
        }
        Some("scalar") => {
            if let Some((ts, v)) = sample(&result, false) {
                out.push(event(name, None, ts, v));
            }
        }
        Some("string") => {
            if let Some((ts, v)) = sample(&result, true) {
                out.push(event(name, None, ts, v));
            }
        }
        other => {
            return Err(Error::parse(url, format!("unknown resultType {other:?}")));
        }
    }
    Ok(out)
}

#[async_trait]
impl Fetcher for Query {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let mut out = Vec::new();
        for (name, http) in &self.fetches {
            match http.get_json().await {
                Ok(doc) => match events(name, &doc, &http.url) {
                    Ok(evs) => out.extend(evs),
                    Err(e) => out.push(MetricEvent {
                        error: Some(e.to_string()),
                        ..Default::default()
                    }),
                },
                // Prometheus answers 400 with the reason in JSON; other errors as they are.
                Err(e) => out.push(MetricEvent {
                    error: Some(e.to_string()),
                    ..Default::default()
                }),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/corpus/metricbeat-modules/prometheus/query/test")
            .join(name);
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    #[test]
    fn the_upstream_answers_give_the_upstream_counts() {
        let n = |f: &str| events("q", &corpus(f), "u").unwrap();
        let v = n("querymetrics_instant_vector.json");
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].module_fields["query"]["q"], 1.19);
        assert_eq!(v[0].module_fields["labels"]["job"], "prometheus");
        assert_eq!(v[0].timestamp, Some(Timestamp(1_435_781_451_781_000_000)));
        assert_eq!(n("querymetrics_range_vector.json").len(), 6);
        let s = n("querymetrics_scalar.json");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].module_fields["query"]["q"], 100.4);
        assert!(s[0].module_fields.get("labels").is_none());
        let t = n("querymetrics_string.json");
        assert_eq!(t[0].module_fields["query"]["q"], "apis");
        let bad = serde_json::json!({"status": "error", "error": "parse error at char 3"});
        assert!(
            events("q", &bad, "u")
                .unwrap_err()
                .to_string()
                .contains("parse error")
        );
    }
}
