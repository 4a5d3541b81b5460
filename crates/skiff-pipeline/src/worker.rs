//! Output workers: take batches from the queue and see each event through to delivery.
//!
//! One worker per output client with `loadbalance: true` (each pulls from the shared queue, so a
//! slow or dead host simply takes fewer batches); one worker over all clients with
//! `loadbalance: false`, moving to the next client when one fails.
//!
//! For each batch the worker sends, then for every event:
//! * delivered: ack it (its input may commit past it);
//! * retry (server busy, connection lost): send again after an exponential backoff
//!   (`backoff.init` doubling to `backoff.max`), forever unless `max_retries` is set;
//! * rejected for good: write it to the dead-letter file with the reason, then ack it.
//!
//! The queue's accounting for the batch is released only when all of it is resolved.
//!
//! A whole-batch failure is a [`Failure`]: logged with `kind=` and counted in
//! `skiff.output.errors{kind}`, so an operator sees "auth" or "protocol" before reading a
//! message.
//!
//! **Supervision.** A panic inside a client's `send` (or in the worker's handling of a batch)
//! does not kill the worker: the panic is caught, logged with the component's name (the task
//! runs inside [`supervise::named`]), counted as [`FailureKind::Panic`] and in
//! `skiff.output.worker.restarts`; the client is [reset](Output::reset) and the events of the
//! batch not yet resolved are sent again after the usual backoff. Nothing of a batch is acked
//! because of a panic. The [`RestartPolicy`] bounds how many panics in a row (without a
//! batch delivered in between) a worker takes; by default it takes them forever, like Beats,
//! with the backoff capped at `backoff.max`. A worker that gives up ends with a
//! [`WorkerFailed`] (see [`spawn_supervised`]) so that the agent can stop with that reason and
//! a non-zero exit code.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use skiff_event::Event;
use skiff_metrics::{Counter, Gauge, Registry, names};
use tokio::task::JoinSet;

use crate::dead_letter::DeadLetter;
use crate::queue::Batch;
use crate::{
    Failure, FailureKind, Outcome, Output, OutputSet, OutputSettings, Queue, fault, supervise,
};

/// The fault point that makes the worker panic inside a batch's send (see [`fault`]).
pub const SEND_PANIC_POINT: &str = "output.send.panic";
/// The fault point that makes the worker panic while it settles a batch's outcome, after
/// acking part of it (see [`fault`]).
pub const SETTLE_PANIC_POINT: &str = "output.settle.panic";

/// Metrics a worker records.
#[derive(Clone)]
struct Meters {
    total: Counter,
    acked: Counter,
    failed: Counter,
    dropped: Counter,
    batches: Counter,
    active: Gauge,
    retries: Counter,
    write_errors: Counter,
    restarts: Counter,
    /// `skiff.output.errors{kind}`, in the order of [`FailureKind::ALL`].
    errors: Vec<Counter>,
}

impl Meters {
    fn new(m: &Registry) -> Self {
        Meters {
            total: m.counter(&names::OUTPUT_EVENTS_TOTAL),
            acked: m.counter(&names::OUTPUT_EVENTS_ACKED),
            failed: m.counter(&names::OUTPUT_EVENTS_FAILED),
            dropped: m.counter(&names::OUTPUT_EVENTS_DROPPED),
            batches: m.counter(&names::OUTPUT_EVENTS_BATCHES),
            active: m.gauge(&names::OUTPUT_EVENTS_ACTIVE),
            retries: m.counter(&names::OUTPUT_RETRIES),
            write_errors: m.counter(&names::OUTPUT_WRITE_ERRORS),
            restarts: m.counter(&names::OUTPUT_WORKER_RESTARTS),
            // Every kind exists from the start, so a dashboard sees 0 rather than no series.
            errors: FailureKind::ALL
                .iter()
                .map(|k| m.counter_with(&names::OUTPUT_ERRORS, &[("kind", k.as_str())]))
                .collect(),
        }
    }

    fn error(&self, kind: FailureKind) {
        if let Some(i) = FailureKind::ALL.iter().position(|k| *k == kind)
            && let Some(c) = self.errors.get(i)
        {
            c.inc();
        }
    }
}

/// How many panics in a row an output worker recovers from before it gives up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Panics in a row (no batch delivered in between) after which the worker stops with
    /// [`WorkerFailed`]; `None` (the default): never give up, back off up to `backoff.max`.
    pub max_consecutive_panics: Option<u32>,
}

/// Why an output worker stopped before its queue was drained: the agent should stop with this
/// reason and a non-zero exit code (its events are not acknowledged).
#[derive(Debug, thiserror::Error)]
#[error(
    "output worker {output} gave up after {panics} panics in a row (last: {last}); its in-flight events were not acknowledged"
)]
pub struct WorkerFailed {
    /// The output client (`redis(127.0.0.1:6379)`).
    pub output: String,
    /// Panics in a row when it gave up.
    pub panics: u32,
    /// The last panic's message.
    pub last: String,
}

/// Starts the workers of an output on `tasks`, each ending with `Ok(())` when the queue is
/// closed and drained, or with [`WorkerFailed`] when it gave up under `policy`. Whoever joins
/// `tasks` must treat an `Err` (or a `JoinError`) as fatal for the agent.
pub fn spawn_supervised(
    tasks: &mut JoinSet<Result<(), WorkerFailed>>,
    queue: Arc<dyn Queue>,
    output: OutputSet,
    dead_letter: Option<Arc<DeadLetter>>,
    metrics: &Registry,
    policy: RestartPolicy,
) {
    for w in workers(queue, output, dead_letter, metrics, policy) {
        tasks.spawn(w);
    }
}

/// Joins every worker of `tasks` (started by [`spawn_supervised`]): `Ok` once all drained
/// their queue, else the first that failed. A task that died outside the worker's own panic
/// handling (or was cancelled) counts as a failure too, named `(unknown)`.
pub async fn join_all(tasks: &mut JoinSet<Result<(), WorkerFailed>>) -> Result<(), WorkerFailed> {
    let mut first = None;
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap_or_else(|e| {
            Err(WorkerFailed {
                output: "(unknown)".into(),
                panics: 1,
                last: supervise::join_error_message(e),
            })
        });
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// `skiff.output.errors{kind}` in `metrics`: how many whole-batch failures of that class.
pub fn error_count(metrics: &Registry, kind: FailureKind) -> u64 {
    metrics
        .counter_with(&names::OUTPUT_ERRORS, &[("kind", kind.as_str())])
        .get()
}

type WorkerFuture = std::pin::Pin<Box<dyn Future<Output = Result<(), WorkerFailed>> + Send>>;

/// One future per worker, each running inside [`supervise::named`]`("output/<client>")`.
fn workers(
    queue: Arc<dyn Queue>,
    output: OutputSet,
    dead_letter: Option<Arc<DeadLetter>>,
    metrics: &Registry,
    policy: RestartPolicy,
) -> Vec<WorkerFuture> {
    let meters = Meters::new(metrics);
    let OutputSet { clients, settings } = output;
    let mut out: Vec<WorkerFuture> = Vec::new();
    let mut add = |w: Worker, queue: Arc<dyn Queue>| {
        let name = format!("output/{}", w.client.describe());
        out.push(Box::pin(supervise::named(name, w.run(queue))));
    };
    if settings.loadbalance || clients.len() <= 1 {
        // With several clients, a client that fails hands its batch to the others instead of
        // holding it until its host comes back.
        let handoff = (clients.len() > 1).then(|| Arc::new(Handoff::default()));
        for client in clients {
            let w = Worker {
                client,
                settings: settings.clone(),
                dead_letter: dead_letter.clone(),
                m: meters.clone(),
                handoff: handoff.clone(),
                fails: 0,
                policy,
            };
            add(w, queue.clone());
        }
    } else {
        let client: Box<dyn Output> = Box::new(Failover {
            clients,
            current: 0,
        });
        let w = Worker {
            client,
            settings,
            dead_letter,
            m: meters,
            handoff: None,
            fails: 0,
            policy,
        };
        add(w, queue);
    }
    out
}

/// A batch in transit between workers: its events, the queue's hold on it, and how many
/// attempts it has had.
type Handed = (Vec<Event>, Batch, u32);

/// Batches that a failing worker gave up to its peers.
#[derive(Default)]
struct Handoff {
    items: std::sync::Mutex<std::collections::VecDeque<Handed>>,
    ready: tokio::sync::Notify,
}

impl Handoff {
    fn take(&self) -> Option<Handed> {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    fn give(&self, h: Handed) {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(h);
        self.ready.notify_one();
    }
}

struct Worker {
    client: Box<dyn Output>,
    settings: OutputSettings,
    dead_letter: Option<Arc<DeadLetter>>,
    m: Meters,
    handoff: Option<Arc<Handoff>>,
    /// Consecutive whole-batch failures of this client (its own backoff).
    fails: u32,
    policy: RestartPolicy,
}

/// Keeps `libbeat.output.events.active` right even when a send panics.
struct Active<'a>(&'a Gauge, i64);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.sub(self.1);
    }
}

impl Worker {
    async fn run(mut self, queue: Arc<dyn Queue>) -> Result<(), WorkerFailed> {
        let name = self.client.describe();
        tracing::debug!(output = %name, "output worker started");
        let mut panics = 0u32;
        while let Some((mut pending, batch, mut attempt)) = self.next(queue.as_ref()).await {
            let handed = loop {
                let step = AssertUnwindSafe(self.deliver(&mut pending, &mut attempt, &name))
                    .catch_unwind()
                    .await;
                let payload = match step {
                    Ok(handed) => {
                        panics = 0;
                        break handed;
                    }
                    Err(p) => p,
                };
                // `pending` holds every event of the batch not yet resolved: none was acked
                // by the send that panicked. The panic counts as an attempt of the batch.
                panics = panics.saturating_add(1);
                attempt = attempt.saturating_add(1);
                let msg = supervise::payload_message(&*payload);
                self.m.error(FailureKind::Panic);
                self.m.restarts.inc();
                if self
                    .policy
                    .max_consecutive_panics
                    .is_some_and(|max| panics > max)
                {
                    tracing::error!(output = %name, kind = %FailureKind::Panic, panics, events = pending.len(), "output worker gives up: too many panics in a row");
                    self.client.close().await;
                    return Err(WorkerFailed {
                        output: name,
                        panics,
                        last: msg,
                    });
                }
                let delay = backoff(&self.settings, panics);
                tracing::error!(output = %name, kind = %FailureKind::Panic, panic = %msg, events = pending.len(), retry_in = ?delay, "output client panicked; resetting it and retrying the batch");
                // A reset that panics too is one more panic of the same restart.
                let _ = AssertUnwindSafe(self.client.reset()).catch_unwind().await;
                tokio::time::sleep(delay).await;
            };
            if let Some(attempt) = handed {
                // This client failed and peers exist: let them send it, and rest a while.
                if let Some(h) = &self.handoff {
                    h.give((pending, batch, attempt));
                }
                let delay = backoff(&self.settings, self.fails);
                tracing::debug!(output = %name, retry_in = ?delay, "handed the batch to another worker");
                tokio::time::sleep(delay).await;
                continue;
            }
            drop(batch);
        }
        self.client.close().await;
        tracing::debug!(output = %name, "output worker stopped: queue drained");
        Ok(())
    }

    /// The next batch: one handed over by a failing peer first, else from the queue.
    async fn next(&mut self, queue: &dyn Queue) -> Option<Handed> {
        let max = self.settings.bulk_max_size;
        let Some(h) = &self.handoff else {
            let mut b = queue.pop(max).await?;
            return Some((std::mem::take(&mut b.events), b, 0));
        };
        loop {
            let notified = h.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(x) = h.take() {
                return Some(x);
            }
            // Both queues' `pop` take events synchronously after their last await, so
            // dropping it here loses nothing.
            tokio::select! {
                b = queue.pop(max) => {
                    let mut b = b?;
                    return Some((std::mem::take(&mut b.events), b, 0));
                }
                _ = &mut notified => continue,
            }
        }
    }

    /// Sends until every event of `pending` is acked, dead-lettered or given up on (it is left
    /// empty). Returns the attempts so far when the whole send failed and peers can take over
    /// (`pending` then holds the events left).
    ///
    /// Events stay in `pending` until resolved, so a panic in the client's send leaves all of
    /// them to the caller to send again; so does a panic in the worker's own settling of an
    /// outcome (a skiff bug; see [`Worker::settle`]).
    async fn deliver(
        &mut self,
        pending: &mut Vec<Event>,
        attempt: &mut u32,
        name: &str,
    ) -> Option<u32> {
        if *attempt == 0 {
            self.m.batches.inc();
        }
        while !pending.is_empty() {
            let n = pending.len() as u64;
            self.m.total.add(n);
            self.m.active.add(n as i64);
            let result = {
                let _active = Active(&self.m.active, n as i64);
                fault::panic_point(SEND_PANIC_POINT);
                self.client.send(pending).await
            };
            let (kind, reason) = match result {
                Ok(outcome) => {
                    let progressed = outcome.retry.len() < pending.len();
                    self.fails = 0;
                    self.settle(pending, outcome, name).await;
                    if pending.is_empty() {
                        return None;
                    }
                    if progressed {
                        *attempt = 0;
                    }
                    self.m.failed.add(pending.len() as u64);
                    let why = format!("the server asked to retry {} events", pending.len());
                    ("-", why)
                }
                Err(e) => {
                    self.m.failed.add(n);
                    self.m.write_errors.inc();
                    self.m.error(e.kind);
                    self.fails = self.fails.saturating_add(1);
                    if self.handoff.is_some() && !self.over_retries(*attempt + 1) {
                        tracing::warn!(output = %name, kind = %e.kind, events = pending.len(), error = %e, "send failed; another worker will retry");
                        self.m.retries.inc();
                        return Some(*attempt + 1);
                    }
                    (e.kind.as_str(), e.message)
                }
            };
            *attempt = attempt.saturating_add(1);
            if self.over_retries(*attempt) {
                let why = format!("gave up after {} attempts: {reason}", *attempt);
                tracing::error!(output = %name, kind, events = pending.len(), error = %reason, "dropping events: out of retries (max_retries)");
                for ev in pending.iter_mut() {
                    self.reject(ev, &why, name).await;
                }
                pending.clear();
                return None;
            }
            let delay = backoff(&self.settings, *attempt);
            tracing::warn!(output = %name, kind, events = pending.len(), attempt = *attempt, retry_in = ?delay, error = %reason, "send failed; nothing of it counts as delivered; will retry");
            self.m.retries.inc();
            tokio::time::sleep(delay).await;
        }
        None
    }

    fn over_retries(&self, attempt: u32) -> bool {
        self.settings.max_retries >= 0 && i64::from(attempt) > self.settings.max_retries
    }

    /// Acks the delivered events, dead-letters the rejected ones, and leaves in `pending` only
    /// those to retry, in order.
    ///
    /// `pending` keeps every event until the last step (one `retain`), so a panic here (a skiff
    /// bug) leaves the whole batch to the caller, which retries it like a panicking send: the
    /// events already acked or dead-lettered before the panic are sent again (at least once),
    /// none is lost or acked early.
    async fn settle(&mut self, pending: &mut Vec<Event>, outcome: Outcome, name: &str) {
        let Outcome {
            mut retry,
            mut rejected,
        } = outcome;
        if retry.is_empty() && rejected.is_empty() {
            fault::panic_point(SETTLE_PANIC_POINT);
            self.m.acked.add(pending.len() as u64);
            skiff_event::ack_all(pending.iter_mut().filter_map(|ev| ev.ack.take()));
            pending.clear();
            return;
        }
        retry.sort_unstable();
        rejected.sort_unstable_by_key(|r| r.0);
        let mut again = vec![false; pending.len()];
        let (mut ri, mut xi) = (0, 0);
        for (i, ev) in pending.iter_mut().enumerate() {
            if retry.get(ri) == Some(&i) {
                ri += 1;
                again[i] = true;
            } else if rejected.get(xi).is_some_and(|r| r.0 == i) {
                let reason = std::mem::take(&mut rejected[xi].1);
                xi += 1;
                self.reject(ev, &reason, name).await;
            } else {
                self.m.acked.inc();
                ev.ack();
            }
            fault::panic_point(SETTLE_PANIC_POINT);
        }
        let mut again = again.into_iter();
        pending.retain(|_| again.next().unwrap_or(false));
    }

    /// Dead-letters an event (or drops it when there is no dead-letter file), then acks it.
    async fn reject(&mut self, ev: &mut Event, reason: &str, name: &str) {
        self.m.dropped.inc();
        match &self.dead_letter {
            Some(dl) => loop {
                match dl.write(ev, reason, name) {
                    Ok(()) => break,
                    Err(e) => {
                        // The event must not vanish: wait for the disk rather than drop it.
                        tracing::error!(path = %dl.path().display(), error = %e, "cannot write the dead-letter file; retrying in 5s");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            },
            None => {
                tracing::warn!(output = %name, reason, "event rejected and dropped (dead_letter.enabled is false)")
            }
        }
        ev.ack();
    }
}

/// The delay before retry number `attempt` (1-based): `init x 2^(attempt-1)`, capped at `max`,
/// with up to 10 % jitter so that many agents do not retry in step.
pub fn backoff(s: &OutputSettings, attempt: u32) -> Duration {
    let exp = s
        .backoff_init
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let base = exp.min(s.backoff_max);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 100) / 1000.0)
}

/// `loadbalance: false` with several hosts: use one client, move to the next when it fails.
struct Failover {
    clients: Vec<Box<dyn Output>>,
    current: usize,
}

#[async_trait]
impl Output for Failover {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, Failure> {
        let n = self.clients.len();
        let result = self.clients[self.current].send(events).await;
        if result.is_err() {
            let from = self.clients[self.current].describe();
            self.current = (self.current + 1) % n;
            tracing::warn!(from = %from, to = %self.clients[self.current].describe(), "failing over to the next host");
        }
        result
    }

    fn describe(&self) -> String {
        self.clients[self.current].describe()
    }

    async fn reset(&mut self) {
        self.clients[self.current].reset().await;
    }

    async fn close(&mut self) {
        for c in &mut self.clients {
            c.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Budget;
    use crate::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
    use skiff_config::Duration as ConfDuration;
    use skiff_event::{AckStream, Map};
    use std::sync::Mutex;

    /// An output scripted per call: what it returns, and a record of what it was sent.
    struct Scripted {
        script: Vec<Result<Outcome, String>>,
        seen: Arc<Mutex<Vec<Vec<u64>>>>,
    }

    #[async_trait]
    impl Output for Scripted {
        async fn send(&mut self, events: &[Event]) -> Result<Outcome, Failure> {
            self.seen
                .lock()
                .unwrap()
                .push(events.iter().map(|e| e.offset.unwrap()).collect());
            match if self.script.is_empty() {
                Ok(Outcome::delivered())
            } else {
                self.script.remove(0)
            } {
                Ok(o) => Ok(o),
                Err(e) => Err(Failure::new(FailureKind::Connect, e)),
            }
        }
        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    fn settings() -> OutputSettings {
        OutputSettings {
            bulk_max_size: 10,
            max_retries: -1,
            backoff_init: Duration::from_millis(1),
            backoff_max: Duration::from_millis(4),
            loadbalance: true,
        }
    }

    async fn run(
        script: Vec<Result<Outcome, String>>,
        n: u64,
    ) -> (Arc<AckStream>, Vec<Vec<u64>>, Registry, tempfile::TempDir) {
        let reg = Registry::new();
        let cfg = MemoryQueueConfig {
            flush: FlushConfig {
                min_events: 1,
                timeout: ConfDuration(Duration::ZERO),
            },
            ..Default::default()
        };
        let q: Arc<dyn Queue> = Arc::new(MemoryQueue::new(cfg, &reg, &Budget::new(reg.clone())));
        let stream = AckStream::new();
        for i in 0..n {
            let mut e = Event::new(Arc::new(Map::new()), format!("e{i}"));
            e.offset = Some(i);
            e.ack = Some(stream.token(i));
            q.push(e).await.unwrap();
        }
        q.close();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let dir = tempfile::tempdir().unwrap();
        let dl = Arc::new(DeadLetter::new(dir.path(), 1 << 20, &reg));
        let mut tasks = JoinSet::new();
        let out = OutputSet {
            clients: vec![Box::new(Scripted {
                script,
                seen: seen.clone(),
            })],
            settings: settings(),
        };
        spawn_supervised(&mut tasks, q, out, Some(dl), &reg, RestartPolicy::default());
        join_all(&mut tasks).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        (stream, seen, reg, dir)
    }

    #[tokio::test]
    async fn whole_batch_errors_are_retried_until_delivered() {
        let (stream, seen, reg, _d) = run(
            vec![Err("connection refused".into()), Err("timeout".into())],
            3,
        )
        .await;
        assert_eq!(seen, vec![vec![0, 1, 2]; 3]);
        assert_eq!(stream.progress().acked, 3);
        assert_eq!(reg.counter(&names::OUTPUT_RETRIES).get(), 2);
        assert_eq!(reg.counter(&names::OUTPUT_EVENTS_ACKED).get(), 3);
        let kind = |k: FailureKind| {
            reg.counter_with(&names::OUTPUT_ERRORS, &[("kind", k.as_str())])
                .get()
        };
        assert_eq!(
            kind(FailureKind::Connect),
            2,
            "failures are counted by class"
        );
        assert_eq!(kind(FailureKind::Protocol), 0);
    }

    #[tokio::test]
    async fn partial_retry_and_rejection() {
        let first = Outcome {
            retry: vec![2],
            rejected: vec![(1, "mapper_parsing_exception".into())],
        };
        let (stream, seen, reg, dir) = run(vec![Ok(first)], 4).await;
        assert_eq!(seen, vec![vec![0, 1, 2, 3], vec![2]]);
        let p = stream.progress();
        assert_eq!((p.acked, p.acked_position), (4, Some(3)));
        assert_eq!(reg.counter(&names::OUTPUT_DEAD_LETTERED).get(), 1);
        let dl = std::fs::read_to_string(dir.path().join("dead_letter.ndjson")).unwrap();
        assert!(
            dl.contains("mapper_parsing_exception") && dl.contains("\"e1\""),
            "{dl}"
        );
    }

    /// A client whose host is down for good.
    struct Down;

    #[async_trait]
    impl Output for Down {
        async fn send(&mut self, _: &[Event]) -> Result<Outcome, Failure> {
            Err(Failure::new(FailureKind::Connect, "connection refused"))
        }
        fn describe(&self) -> String {
            "down".into()
        }
    }

    #[tokio::test]
    async fn loadbalance_moves_a_failed_batch_to_a_live_host() {
        let reg = Registry::new();
        let cfg = MemoryQueueConfig {
            flush: FlushConfig {
                min_events: 1,
                timeout: ConfDuration(Duration::ZERO),
            },
            ..Default::default()
        };
        let q: Arc<dyn Queue> = Arc::new(MemoryQueue::new(cfg, &reg, &Budget::new(reg.clone())));
        let stream = AckStream::new();
        let n = 50u64;
        for i in 0..n {
            let mut e = Event::new(Arc::new(Map::new()), format!("e{i}"));
            e.offset = Some(i);
            e.ack = Some(stream.token(i));
            q.push(e).await.unwrap();
        }
        q.close();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let settings = OutputSettings {
            bulk_max_size: 5,
            backoff_init: Duration::from_secs(3600),
            backoff_max: Duration::from_secs(3600),
            ..settings()
        };
        let out = OutputSet {
            clients: vec![
                Box::new(Down),
                Box::new(Scripted {
                    script: Vec::new(),
                    seen: seen.clone(),
                }),
            ],
            settings,
        };
        let mut tasks = JoinSet::new();
        spawn_supervised(&mut tasks, q, out, None, &reg, RestartPolicy::default());
        // The dead host's worker sleeps for an hour after failing; every event must still be
        // delivered by the live one, long before that.
        tokio::time::timeout(
            Duration::from_secs(20),
            stream.wait_all_acked(tokio::time::Instant::now() + Duration::from_secs(20)),
        )
        .await
        .unwrap();
        assert_eq!(stream.progress().acked, n);
        let mut got: Vec<u64> = seen.lock().unwrap().iter().flatten().copied().collect();
        got.sort_unstable();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
        tasks.abort_all();
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let s = OutputSettings {
            backoff_init: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            ..settings()
        };
        let b = |a| backoff(&s, a).as_secs_f64();
        assert!((1.0..1.11).contains(&b(1)));
        assert!((8.0..8.9).contains(&b(4)));
        assert!((60.0..66.1).contains(&b(30)));
    }
}
