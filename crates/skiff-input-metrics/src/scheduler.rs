//! Running a block: each fetcher (one metricset of one host) in a task of its own that waits a
//! random start-up delay below `max_start_delay` (so a thousand hosts don't fire together),
//! fetches at once, then every `period`. Fetches of one fetcher never overlap; one that
//! overruns delays the next (`MissedTickBehavior::Delay`), failed fetches are not retried, and
//! each is bounded by `timeout`. A failed fetch is an event with `error.message`.

use std::sync::Arc;
use std::time::Duration;

use skiff_event::{Event, Map, Timestamp, Value};
use skiff_metrics::{Counter, Registry, names};
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
    // tokio's clock (the same as the system's outside paused-time tests).
    let started = tokio::time::Instant::now();
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

/// A fetcher's counters: `skiff.metrics.{fetches, fetch.errors, events}`.
#[derive(Clone, Debug)]
pub struct Counters {
    pub(crate) fetches: Counter,
    pub(crate) errors: Counter,
    pub(crate) events: Counter,
}

impl Counters {
    /// The counters of `ctx`'s module and metricset in `registry`.
    pub fn new(registry: &Registry, ctx: &FetchContext) -> Counters {
        let labels = [
            ("module", ctx.module),
            ("metricset", ctx.metricset.as_str()),
        ];
        Counters {
            fetches: registry.counter_with(&names::METRICS_FETCHES, &labels),
            errors: registry.counter_with(&names::METRICS_FETCH_ERRORS, &labels),
            events: registry.counter_with(&names::METRICS_EVENTS, &labels),
        }
    }
}

/// Runs one fetcher until `shutdown` or until the queue closes.
#[allow(clippy::too_many_arguments)]
pub async fn run_fetcher(
    ctx: FetchContext,
    mut fetcher: Box<dyn Fetcher>,
    max_start_delay: Duration,
    service_name: Option<String>,
    publisher: Publisher,
    shared: Arc<Map>,
    shutdown: CancellationToken,
    counters: Counters,
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
        counters.fetches.inc();
        counters.events.add(fetched.len() as u64);
        if let Some((_, first)) = fetched.first()
            && let Some(msg) = first.get("error").and_then(|e| e.get("message"))
        {
            counters.errors.inc();
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use skiff_pipeline::queue::{Batch, QueueStats};
    use skiff_pipeline::{Closed, Queue};
    use tokio::time::Instant;

    use super::*;
    use crate::host::HostSpec;
    use crate::http::HttpSettings;

    /// A queue that records when each event arrived (paused time).
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(Instant, Map)>>);

    #[async_trait]
    impl Queue for Recorder {
        async fn push(&self, event: Event) -> Result<(), Closed> {
            let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
            g.push((Instant::now(), event.fields));
            Ok(())
        }
        async fn pop(&self, _max: usize) -> Option<Batch> {
            None
        }
        fn close(&self) {}
        fn stats(&self) -> QueueStats {
            QueueStats::default()
        }
    }

    /// Fails every other fetch (a host going up and down) and takes 1 s per fetch; `.0` is its
    /// id, `.1` its fetch count.
    struct Flaky(u32, u32);

    #[async_trait]
    impl Fetcher for Flaky {
        async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
            self.1 += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
            if self.1.is_multiple_of(2) {
                return Err(Error::Other("connection refused".into()));
            }
            let mut m = Map::new();
            m.insert("id".into(), Value::from(self.0));
            m.insert("n".into(), Value::from(self.1));
            Ok(vec![MetricEvent::new(m)])
        }
    }

    fn ctx() -> FetchContext {
        FetchContext {
            module: "test",
            metricset: "flaky".into(),
            host: Some(HostSpec::new("127.0.0.1:1")),
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            username: None,
            password: None,
            http: HttpSettings::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fetches_start_within_the_jitter_then_every_period_and_errors_do_not_stop_them() {
        let queue = Arc::new(Recorder::default());
        let registry = skiff_metrics::Registry::new();
        let publisher = Publisher::new(queue.clone(), Vec::new(), &registry);
        let stop = CancellationToken::new();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for id in 0..20 {
            tasks.push(tokio::spawn(run_fetcher(
                ctx(),
                Box::new(Flaky(id, 0)),
                Duration::from_secs(10),
                None,
                publisher.clone(),
                Arc::new(Map::new()),
                stop.clone(),
                Counters::new(&registry, &ctx()),
            )));
        }
        tokio::time::sleep(Duration::from_secs(45)).await;
        stop.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        let got = queue.0.lock().unwrap().clone();
        let labels = [("module", "test"), ("metricset", "flaky")];
        let fetches = registry
            .counter_with(&names::METRICS_FETCHES, &labels)
            .get();
        let errors = registry
            .counter_with(&names::METRICS_FETCH_ERRORS, &labels)
            .get();
        assert_eq!(fetches, got.len() as u64);
        assert_eq!(
            errors,
            got.iter().filter(|(_, m)| m.contains_key("error")).count() as u64
        );
        // Each fetcher: first fetch at a random time in [0, 10 s) (published 1 s later, the
        // fetch's duration), then every 10 s: 4 or 5 fetches in 45 s.
        assert!((80..=100).contains(&got.len()), "{}", got.len());
        let ok = |id: u32| -> Vec<Duration> {
            got.iter()
                .filter(|(_, m)| m.get("test").is_some_and(|t| t["flaky"]["id"] == id))
                .map(|(t, _)| t.duration_since(start))
                .collect()
        };
        let mut firsts = Vec::new();
        for id in 0..20 {
            let times = ok(id);
            assert!(times.len() >= 2, "{id}: {times:?}");
            assert!(times[0] >= Duration::from_secs(1) && times[0] < Duration::from_secs(11));
            // Successes are fetches 1, 3, 5: two periods apart, exactly (paused time).
            for w in times.windows(2) {
                assert_eq!(w[1] - w[0], Duration::from_secs(20), "{id}: {times:?}");
            }
            firsts.push(times[0]);
        }
        let mut distinct = firsts.clone();
        distinct.sort();
        distinct.dedup();
        assert!(
            distinct.len() > 10,
            "the jitter spreads the first fetches: {firsts:?}"
        );
        // Every other fetch failed: an event with error.message and the envelope, and the
        // fetch after it ran all the same.
        let errors: Vec<&Map> = got
            .iter()
            .map(|(_, m)| m)
            .filter(|m| m.contains_key("error"))
            .collect();
        let oks = got.len() - errors.len();
        assert!(
            errors.len() <= oks && oks - errors.len() <= 20,
            "{} errors, {oks} ok",
            errors.len()
        );
        for e in errors {
            assert_eq!(e["error"]["message"], "connection refused");
            assert_eq!(e["event"]["dataset"], "test.flaky");
            assert_eq!(e["metricset"]["period"], 10000);
            assert_eq!(e["service"]["address"], "127.0.0.1:1");
            assert_eq!(e["event"]["duration"], 1_000_000_000u64);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_longer_than_the_timeout_is_an_error_event() {
        struct Slow;
        #[async_trait]
        impl Fetcher for Slow {
            async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Vec::new())
            }
        }
        let got = fetch_once(&ctx(), &mut Slow, Some("svc")).await;
        assert_eq!(got.len(), 1);
        let msg = got[0].1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(msg.contains("timeout after 5s"), "{msg}");
        assert_eq!(got[0].1["service"]["name"], "svc");
    }
}
