//! The [`Topology`] type: the pipeline's components, started and stopped in order.
//!
//! Start order: the output's setup step (logged, not fatal), the output workers, then every
//! input under its [supervisor](crate::supervisor). Stop order: inputs stop reading and save
//! their state (up to `shutdown_timeout`), the queue closes, the outputs drain it (up to
//! `shutdown_timeout`, or fully when the inputs ended by themselves). The [`Report`] says how
//! many events were left unacknowledged and whether they will be sent again.
//!
//! While running, inputs can be added and removed ([`Running::add_input`],
//! [`Running::remove_input`]) for reloads: each input has its own stop token below the
//! topology's, and removing one waits until its supervisor has ended, i.e. the input has
//! saved its state, so that an input started again under the same id resumes from it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use skiff_config::{Mark, Node, NodeValue};
use skiff_event::Map;
use skiff_metrics::names;
use skiff_pipeline::dead_letter::DeadLetter;
use skiff_pipeline::queue::memory::{MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{
    BuildContext, Failure, Input, OutputSet, Processor, Publisher, Queue, SetupContext,
    SetupFuture, supervise, worker,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::supervisor::{self, InputEnv};
use crate::{Health, State, SupervisionConfig};

/// How long the output's setup step may take before events are sent anyway.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long, beyond `shutdown_timeout`, inputs get to save their state at stop.
const INPUT_STOP_GRACE: Duration = Duration::from_secs(5);

/// Builds an input again for a restart.
pub type InputFactory = Arc<dyn Fn() -> Result<Box<dyn Input>, Failure> + Send + Sync>;

/// One input: its id, how to build it (again), its processors and shared fields.
pub struct InputSpec {
    pub(crate) id: String,
    pub(crate) first: Option<Box<dyn Input>>,
    pub(crate) rebuild: InputFactory,
    pub(crate) shared: Arc<Map>,
    pub(crate) processors: Vec<Arc<dyn Processor>>,
    pub(crate) stop_wait: Option<Duration>,
}

impl InputSpec {
    /// An input `id` built (at start and at every restart) by `rebuild`.
    pub fn new(id: impl Into<String>, rebuild: InputFactory) -> InputSpec {
        InputSpec {
            id: id.into(),
            first: None,
            rebuild,
            shared: Arc::new(Map::new()),
            processors: Vec::new(),
            stop_wait: None,
        }
    }

    /// The input's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How long the input, once asked to stop, waits for its events to be acknowledged before
    /// it saves its state (default: the pipeline's `shutdown_timeout`). Inputs that a reload
    /// may stop while the pipeline runs on wait longer, so that a changed input starts again
    /// exactly where the old one's acknowledged lines end.
    pub fn stop_wait(mut self, wait: Duration) -> InputSpec {
        self.stop_wait = Some(wait);
        self
    }

    /// Uses `input` for the first run (already built while the configuration was checked).
    pub fn first(mut self, input: Box<dyn Input>) -> InputSpec {
        self.first = Some(input);
        self
    }

    /// The fields its events share ([`BuildContext::shared_fields`]).
    pub fn shared(mut self, shared: Arc<Map>) -> InputSpec {
        self.shared = shared;
        self
    }

    /// Its own processors, run before the global ones.
    pub fn processors(mut self, processors: Vec<Arc<dyn Processor>>) -> InputSpec {
        self.processors = processors;
        self
    }
}

/// An output's setup step.
type SetupHook = fn(&Node, &SetupContext) -> SetupFuture;

/// The output: its name, clients, and setup step with the output's settings.
pub(crate) struct OutputSpec {
    pub(crate) name: String,
    pub(crate) set: OutputSet,
    pub(crate) setup: Option<(SetupHook, Node)>,
}

/// Assembles a topology by hand: tests, benchmarks, and [`Topology::from_config`].
pub struct TopologyBuilder {
    pub(crate) ctx: BuildContext,
    pub(crate) queue: Option<(Arc<dyn Queue>, bool)>,
    pub(crate) output: Option<OutputSpec>,
    pub(crate) processors: Vec<Arc<dyn Processor>>,
    pub(crate) inputs: Vec<InputSpec>,
    pub(crate) dead_letter: Option<Arc<DeadLetter>>,
    pub(crate) setup: Option<Node>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) supervision: SupervisionConfig,
}

impl TopologyBuilder {
    /// The queue (default: a memory queue with default settings), and whether it keeps its
    /// events across a restart (a disk queue).
    pub fn queue(mut self, queue: Arc<dyn Queue>, persists: bool) -> Self {
        self.queue = Some((queue, persists));
        self
    }

    /// The output `name` with its clients.
    pub fn output(mut self, name: impl Into<String>, set: OutputSet) -> Self {
        self.output = Some(OutputSpec {
            name: name.into(),
            set,
            setup: None,
        });
        self
    }

    /// The global processors.
    pub fn processors(mut self, processors: Vec<Arc<dyn Processor>>) -> Self {
        self.processors = processors;
        self
    }

    /// Adds an input.
    pub fn input(mut self, spec: InputSpec) -> Self {
        self.inputs.push(spec);
        self
    }

    /// The dead-letter file for events the output rejects for good.
    pub fn dead_letter(mut self, dl: Arc<DeadLetter>) -> Self {
        self.dead_letter = Some(dl);
        self
    }

    /// `shutdown_timeout` (default 0).
    pub fn shutdown_timeout(mut self, t: Duration) -> Self {
        self.shutdown_timeout = t;
        self
    }

    /// How failed inputs are restarted.
    pub fn supervision(mut self, s: SupervisionConfig) -> Self {
        self.supervision = s;
        self
    }

    /// The topology, not started.
    pub fn build(self) -> Topology {
        let ctx = self.ctx;
        let (queue, persists) = self.queue.unwrap_or_else(|| {
            let q: Arc<dyn Queue> = Arc::new(MemoryQueue::new(
                MemoryQueueConfig::default(),
                &ctx.metrics,
                &ctx.budget,
            ));
            (q, false)
        });
        let health = Health::default();
        for i in &self.inputs {
            health.add(&format!("input/{}", i.id));
        }
        if let Some(o) = &self.output {
            health.add(&format!("output/{}", o.name));
        }
        Topology {
            ctx,
            queue,
            persists,
            output: self.output,
            processors: self.processors,
            inputs: self.inputs,
            dead_letter: self.dead_letter,
            setup: self.setup,
            shutdown_timeout: self.shutdown_timeout,
            supervision: self.supervision,
            health,
        }
    }
}

/// A pipeline, built and not started: queue, output, processors, inputs.
pub struct Topology {
    ctx: BuildContext,
    queue: Arc<dyn Queue>,
    persists: bool,
    output: Option<OutputSpec>,
    processors: Vec<Arc<dyn Processor>>,
    inputs: Vec<InputSpec>,
    dead_letter: Option<Arc<DeadLetter>>,
    setup: Option<Node>,
    shutdown_timeout: Duration,
    supervision: SupervisionConfig,
    health: Health,
}

impl Topology {
    /// A builder over `ctx` (metrics, budget, paths).
    pub fn builder(ctx: BuildContext) -> TopologyBuilder {
        TopologyBuilder {
            ctx,
            queue: None,
            output: None,
            processors: Vec::new(),
            inputs: Vec::new(),
            dead_letter: None,
            setup: None,
            shutdown_timeout: Duration::ZERO,
            supervision: SupervisionConfig::default(),
        }
    }

    /// The components' health (shared: it stays current after [`start`](Self::start)).
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// The output's name, if there is an output.
    pub fn output_name(&self) -> Option<&str> {
        self.output.as_ref().map(|o| o.name.as_str())
    }

    /// How many inputs.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// Starts everything: the output's setup step, the output workers, the inputs.
    pub async fn start(mut self) -> Running {
        if let Some(o) = &mut self.output
            && let Some((hook, node)) = o.setup.take()
        {
            run_setup(&o.name, hook, &node, &self.ctx, self.setup.take()).await;
        }
        self.start_sync()
    }

    /// Starts the output workers and the inputs without awaiting anything, for callers that
    /// cannot `.await` (a benchmark's or a test harness's synchronous constructor; it must run
    /// inside a Tokio runtime). The output's setup step is the one thing that needs awaiting:
    /// it is skipped here, with a warning, so a topology built from the configuration should
    /// use [`start`](Self::start). Topologies from [`Topology::builder`] have no setup step.
    pub fn start_sync(self) -> Running {
        let Topology {
            ctx,
            queue,
            persists,
            output,
            processors,
            inputs,
            dead_letter,
            setup: _,
            shutdown_timeout,
            supervision,
            health,
        } = self;
        {
            let q = queue.clone();
            ctx.metrics
                .gauge_fn(&names::PIPELINE_EVENTS_ACTIVE, move || {
                    q.stats().events as f64
                });
        }
        let mut outputs = JoinSet::new();
        if let Some(o) = output {
            if o.setup.is_some() {
                tracing::warn!(output = %o.name, "started without the output's setup step");
            }
            // Workers restart after a panic with backoff, forever (as Beats retries forever); a
            // worker task that ends while the queue is open is fatal (see `wait`).
            worker::spawn_supervised(
                &mut outputs,
                queue.clone(),
                o.set,
                dead_letter,
                &ctx.metrics,
                worker::RestartPolicy::default(),
            );
            health.set(&format!("output/{}", o.name), State::Running);
        }

        let publisher = Publisher::new(queue.clone(), processors, &ctx.metrics)
            .with_shutdown_timeout(shutdown_timeout);
        let (fatal_tx, fatal_rx) = mpsc::unbounded_channel();
        let mut running = Running {
            queue,
            persists,
            replays: true,
            outputs,
            inputs: JoinSet::new(),
            stop_inputs: CancellationToken::new(),
            fatal_rx,
            fatal_tx,
            health,
            shutdown_timeout,
            publisher,
            ctx,
            supervision,
            by_id: HashMap::new(),
            keep_alive: false,
        };
        for spec in inputs {
            // At start, an input that cannot be built is fatal (reported by `wait`).
            let _ = running.spawn_input(spec);
        }
        running
    }
}

async fn run_setup(
    name: &str,
    hook: SetupHook,
    node: &Node,
    ctx: &BuildContext,
    setup: Option<Node>,
) {
    let sctx = SetupContext {
        build: ctx.clone(),
        setup: setup.unwrap_or_else(|| Node::new(NodeValue::Map(Vec::new()), Mark::none())),
    };
    match tokio::time::timeout(SETUP_TIMEOUT, hook(node, &sctx)).await {
        Ok(Ok(msg)) => tracing::info!(output = %name, "{msg}"),
        Ok(Err(e)) => {
            tracing::warn!(output = %name, kind = %e.kind, error = %e, "the output's setup step failed; events are sent anyway")
        }
        Err(_) => {
            tracing::warn!(output = %name, timeout = ?SETUP_TIMEOUT, "the output's setup step timed out; events are sent anyway")
        }
    }
}

/// Why a running topology ended by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Every input ended (stdin at end of input): what is queued should now be sent.
    InputsEnded,
    /// A component failed and cannot be restarted; the reason.
    Fatal(String),
}

/// How long the outputs may drain the queue at stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Up to this long (`shutdown_timeout`).
    For(Duration),
    /// Until the queue is empty (every input ended by itself).
    Fully,
}

/// How a stop went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events still unacknowledged when skiff stopped (queued or being sent).
    pub left: u64,
    /// Whether the left events will be sent again after the next start: the queue keeps them
    /// (disk queue) or every input reads or receives them again (file, Lumberjack).
    pub resent: bool,
    /// Whether some input did not stop within `shutdown_timeout` and was aborted.
    pub inputs_aborted: bool,
    /// An output worker that failed (panicked) while draining: its batch was not delivered,
    /// whatever `left` says.
    pub output_failure: Option<String>,
}

impl Report {
    /// Events that are gone for good: left, and nobody will send them again.
    pub fn lost(&self) -> u64 {
        if self.resent { 0 } else { self.left }
    }
}

/// A started topology.
pub struct Running {
    queue: Arc<dyn Queue>,
    persists: bool,
    replays: bool,
    outputs: JoinSet<Result<(), worker::WorkerFailed>>,
    inputs: JoinSet<()>,
    stop_inputs: CancellationToken,
    fatal_rx: mpsc::UnboundedReceiver<String>,
    fatal_tx: mpsc::UnboundedSender<String>,
    health: Health,
    shutdown_timeout: Duration,
    publisher: Publisher,
    ctx: BuildContext,
    supervision: SupervisionConfig,
    /// Every input started and not removed: its own stop token and a signal that its
    /// supervisor has ended (the input saved its state).
    by_id: HashMap<String, RunningInput>,
    /// Whether `wait` keeps waiting when no input runs (inputs may be added by a reload).
    keep_alive: bool,
}

/// One input of a running topology, as far as adding and removing goes.
struct RunningInput {
    stop: CancellationToken,
    ended: watch::Receiver<bool>,
}

/// Why an input could not be added to a running topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddError {
    /// An input with this id runs already: remove it first.
    DuplicateId(String),
    /// The input could not be built.
    Build(String),
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::DuplicateId(id) => write!(f, "an input with id `{id}` is already running"),
            AddError::Build(why) => f.write_str(why),
        }
    }
}

impl Running {
    /// Starts `spec` under a supervisor, with its own stop token below the topology's.
    fn spawn_input(&mut self, mut spec: InputSpec) -> Result<(), AddError> {
        if self.by_id.contains_key(&spec.id) {
            return Err(AddError::DuplicateId(spec.id));
        }
        let component = format!("input/{}", spec.id);
        self.health.add(&component);
        if spec.first.is_none() {
            match (spec.rebuild)() {
                Ok(i) => spec.first = Some(i),
                Err(f) => {
                    let reason = format!("input {} cannot be built: {f}", spec.id);
                    self.health
                        .failed(&component, State::Failed, reason.clone());
                    let _ = self.fatal_tx.send(reason.clone());
                    return Err(AddError::Build(reason));
                }
            }
        }
        self.replays &= spec.first.as_ref().is_none_or(|i| i.replays_unacked());
        let stop = self.stop_inputs.child_token();
        let publisher = match spec.stop_wait {
            Some(wait) => self.publisher.clone().with_shutdown_timeout(wait),
            None => self.publisher.clone(),
        };
        let env = InputEnv {
            publisher,
            stop: stop.clone(),
            ctx: self.ctx.clone(),
            health: self.health.clone(),
            fatal: self.fatal_tx.clone(),
            policy: self.supervision.clone(),
        };
        let (ended_tx, ended) = watch::channel(false);
        self.by_id
            .insert(spec.id.clone(), RunningInput { stop, ended });
        self.inputs.spawn(async move {
            supervisor::run(spec, env).await;
            let _ = ended_tx.send(true);
        });
        Ok(())
    }

    /// Adds and starts an input while running (a reload). Its id must not be running; the input
    /// resumes from the state saved under its id.
    pub fn add_input(&mut self, spec: InputSpec) -> Result<(), AddError> {
        // A reloaded input that cannot be built is the reload's problem, not a fatal one: build
        // it here so that the failure is returned instead of stopping skiff.
        let mut spec = spec;
        if spec.first.is_none() {
            match (spec.rebuild)() {
                Ok(i) => spec.first = Some(i),
                Err(f) => return Err(AddError::Build(format!("input {}: {f}", spec.id))),
            }
        }
        self.spawn_input(spec)
    }

    /// Stops the input `id` while the rest runs on, and waits until it has stopped and saved
    /// its state (for a file input: waited up to its stop wait for its events to be
    /// acknowledged, then written its registry). Returns false if no such input runs.
    pub async fn remove_input(&mut self, id: &str) -> bool {
        let Some(mut input) = self.by_id.remove(id) else {
            return false;
        };
        input.stop.cancel();
        // An error means the supervisor task is gone: it has ended either way.
        let _ = input.ended.wait_for(|ended| *ended).await;
        self.health.remove(&format!("input/{id}"));
        self.ctx.status.remove(id);
        true
    }

    /// The ids of the inputs started and not removed (including ones that ended by themselves).
    pub fn input_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.by_id.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// With `true`, [`wait`](Self::wait) does not return [`Ended::InputsEnded`] when no input
    /// runs: inputs may still come with a reload.
    pub fn keep_alive(&mut self, keep: bool) {
        self.keep_alive = keep;
    }

    /// The components' health.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// The queue (for its fill level).
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
    }

    /// A publisher into this topology's queue and processors, for tests and benchmarks that
    /// publish without an input.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// `shutdown_timeout`.
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// Waits until every input has ended by itself or a component failed for good. An output
    /// worker that ends while the queue is still open is such a failure: nothing would send the
    /// queued events any more.
    pub async fn wait(&mut self) -> Ended {
        loop {
            tokio::select! {
                // A supervisor sends its fatal reason before its task ends: looking at the
                // channel first means "every input ended" is never taken for a failure's end.
                biased;
                Some(reason) = self.fatal_rx.recv() => return Ended::Fatal(reason),
                r = self.inputs.join_next(), if !(self.keep_alive && self.inputs.is_empty()) => match r {
                    None => return Ended::InputsEnded,
                    Some(Ok(())) => {}
                    Some(Err(e)) => {
                        return Ended::Fatal(format!(
                            "an input's supervisor failed: {}",
                            supervise::join_error_message(e)
                        ));
                    }
                },
                Some(r) = self.outputs.join_next() => {
                    let why = match r {
                        Ok(Ok(())) => "ended".to_owned(),
                        Ok(Err(f)) => format!("failed: {f}"),
                        Err(e) => format!("failed: {}", supervise::join_error_message(e)),
                    };
                    for (name, _) in self.health.snapshot().into_iter().filter(|(n, _)| n.starts_with("output/")) {
                        self.health.failed(&name, State::Failed, why.clone());
                    }
                    return Ended::Fatal(format!(
                        "an output worker {why} while the queue was open: nothing can send the queued events"
                    ));
                }
            }
        }
    }

    /// Stops in order and drains the queue completely, without a limit or an interrupt: for
    /// tests and benchmarks that push into the queue themselves and want every event sent.
    pub async fn drain(self) -> Report {
        self.stop(Drain::Fully, std::future::pending::<()>()).await
    }

    /// Stops in order: inputs stop and save their state (up to `shutdown_timeout` plus a few
    /// seconds), the queue closes, the outputs drain it as `drain` says. `interrupt` (a second
    /// signal) cuts the drain short. Whatever is not acknowledged then is in the [`Report`].
    pub async fn stop(
        mut self,
        drain: Drain,
        interrupt: impl std::future::Future<Output = ()>,
    ) -> Report {
        self.stop_inputs.cancel();
        self.by_id.clear();
        let grace = self.shutdown_timeout + INPUT_STOP_GRACE;
        let inputs = &mut self.inputs;
        let inputs_aborted =
            tokio::time::timeout(grace, async { while inputs.join_next().await.is_some() {} })
                .await
                .is_err();
        if inputs_aborted {
            tracing::warn!(
                "inputs did not stop in time; their unacknowledged events will be read again after a restart when they keep state"
            );
            self.inputs.abort_all();
            while self.inputs.join_next().await.is_some() {}
        }
        self.queue.close();
        let outputs = &mut self.outputs;
        let mut output_failure = None;
        let failure = &mut output_failure;
        let drained = async {
            while let Some(r) = outputs.join_next().await {
                // Its batch is gone unacknowledged: the drain did not deliver everything.
                let why = match r {
                    Ok(Ok(())) => continue,
                    Ok(Err(f)) => f.to_string(),
                    Err(e) => supervise::join_error_message(e),
                };
                *failure = Some(format!(
                    "an output worker failed while draining the queue: {why}"
                ));
            }
        };
        let done = tokio::select! {
            done = async {
                match drain {
                    Drain::Fully => { drained.await; true }
                    Drain::For(d) => tokio::time::timeout(d, drained).await.is_ok(),
                }
            } => done,
            _ = interrupt => false,
        };
        let left = self.queue.stats().events;
        if !done {
            tracing::warn!(
                events = left,
                "the outputs did not drain the queue before the stop's limit"
            );
        }
        self.outputs.abort_all();
        while self.outputs.join_next().await.is_some() {}
        let resent = self.persists || self.replays;
        for (name, h) in self.health.snapshot() {
            if h.state == State::Running || h.state == State::Starting {
                self.health.set(&name, State::Stopped);
            }
        }
        if let Some(why) = &output_failure {
            tracing::error!("{why}");
        }
        Report {
            left,
            resent,
            inputs_aborted,
            output_failure,
        }
    }
}
