//! Running a block: each fetcher (one metricset of one host) in a task of its own that waits a
//! random start-up delay below `max_start_delay` (so a thousand hosts don't fire together),
//! fetches at once, then every `period`. Fetches of one fetcher never overlap; one that
//! overruns delays the next (`MissedTickBehavior::Delay`), failed fetches are not retried, and
//! each is bounded by `timeout`. A failed fetch is an event with `error.message`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_event::{Event, Map, Timestamp, Value};
use skiff_pipeline::Publisher;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::{Error, FetchContext, Fetcher, MetricEvent};

/// Fetches once and returns the events with their envelope (`event.*`, `metricset.*`,
/// `service.*`, `error.message`) and their `@timestamp`.
pub async fn fetch_once(
    ctx: &FetchContext,
    fetcher: &mut dyn Fetcher,
    service_name: Option<&str>,
) -> Vec<(Timestamp, Map)> {
    let started = Instant::now();
    let ts = Timestamp::now();
    let result = match tokio::time::timeout(ctx.timeout, fetcher.fetch()).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(ctx.timeout)),
    };
    let duration = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    match result {
        Ok(events) => events
            .into_iter()
            .map(|e| {
                let t = e.timestamp.unwrap_or(ts);
                (t, envelope(ctx, service_name, e, duration))
            })
            .collect(),
        Err(e) => {
            let ev = MetricEvent {
                error: Some(e.to_string()),
                ..Default::default()
            };
            vec![(ts, envelope(ctx, service_name, ev, duration))]
        }
    }
}

fn obj<'a>(m: &'a mut Map, k: &str) -> Option<&'a mut Map> {
    let v = m
        .entry(k.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut()
}

fn merge_into(dst: &mut Map, src: Map) {
    for (k, v) in src {
        match (dst.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => merge_into(d, s),
            (_, v) => {
                dst.insert(k, v);
            }
        }
    }
}

/// The event's fields: the metricset's data in its place plus Metricbeat's envelope.
pub fn envelope(
    ctx: &FetchContext,
    service_name: Option<&str>,
    ev: MetricEvent,
    duration_ns: u64,
) -> Map {
    let mut m = ev.root_fields;
    let dataset = ev
        .namespace
        .clone()
        .unwrap_or_else(|| format!("{}.{}", ctx.module, ctx.metricset));
    if !ev.module_fields.is_empty()
        && let Some(module) = obj(&mut m, ctx.module)
    {
        merge_into(module, ev.module_fields);
    }
    if !ev.fields.is_empty() {
        // `golang.heap` -> {"golang": {"heap": fields}}, merged with what is there.
        let mut nested = ev.fields;
        for part in dataset.rsplit('.') {
            let mut outer = Map::new();
            outer.insert(part.to_owned(), Value::Object(nested));
            nested = outer;
        }
        merge_into(&mut m, nested);
    }
    if let Some(event) = obj(&mut m, "event") {
        event.insert("module".into(), Value::from(ctx.module));
        event.insert("dataset".into(), Value::from(dataset));
        event.insert("duration".into(), Value::from(duration_ns));
    }
    if let Some(ms) = obj(&mut m, "metricset") {
        ms.insert("name".into(), Value::from(ctx.metricset.as_str()));
        let period = u64::try_from(ctx.period.as_millis()).unwrap_or(u64::MAX);
        ms.insert("period".into(), Value::from(period));
    }
    if let Some(svc) = obj(&mut m, "service") {
        svc.insert("type".into(), Value::from(ctx.module));
        if let Some(h) = &ctx.host {
            svc.insert("address".into(), Value::from(h.address.as_str()));
        }
        if let Some(n) = service_name {
            svc.insert("name".into(), Value::from(n));
        }
    }
    if let Some(e) = ev.error
        && let Some(error) = obj(&mut m, "error")
    {
        error.insert("message".into(), Value::from(e));
    }
    m
}

/// Runs one fetcher until `shutdown` or until the queue closes.
pub async fn run_fetcher(
    ctx: FetchContext,
    mut fetcher: Box<dyn Fetcher>,
    max_start_delay: Duration,
    service_name: Option<String>,
    publisher: Publisher,
    shared: Arc<Map>,
    shutdown: CancellationToken,
) {
    let jitter = if max_start_delay.is_zero() {
        Duration::ZERO
    } else {
        let nanos = u64::try_from(max_start_delay.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..nanos))
    };
    tokio::select! {
        _ = tokio::time::sleep(jitter) => {}
        _ = shutdown.cancelled() => return,
    }
    let mut tick = tokio::time::interval(ctx.period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let fetched = tokio::select! {
            f = fetch_once(&ctx, fetcher.as_mut(), service_name.as_deref()) => f,
            _ = shutdown.cancelled() => return,
        };
        if let Some((_, first)) = fetched.first()
            && let Some(msg) = first.get("error").and_then(|e| e.get("message"))
        {
            tracing::debug!(module = ctx.module, metricset = %ctx.metricset, error = %msg, "fetch failed");
        }
        batch.extend(fetched.into_iter().map(|(ts, fields)| Event {
            timestamp: ts,
            message: None,
            offset: None,
            fields,
            meta: Map::new(),
            shared: shared.clone(),
            ack: None,
        }));
        tokio::select! {
            r = publisher.publish_all(&mut batch) => if r.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
    }
}
