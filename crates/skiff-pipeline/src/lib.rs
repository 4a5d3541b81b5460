//! The pipeline every event travels: **input -> processors -> queue -> output**, with
//! **acknowledgements** flowing back from the output to the input.
//!
//! This crate defines the contracts each stage implements and the machinery between them:
//!
//! * [`component`]: the [`Input`], [`Processor`] and [`Output`] traits and their plugin
//!   descriptors. Adding an input, a processor or an output means writing one module that
//!   implements one trait and adding one line to the registry table in the `skiff` binary.
//! * [`publisher`]: what an input holds to publish events; it runs the processors in the input's
//!   own task (as libbeat does) and pushes into the queue, waiting while it is full.
//! * [`queue`]: the [`Queue`] trait and the bounded [memory queue](queue::memory) (bounded by
//!   events *and* bytes). A full queue blocks the inputs; it never drops unless told to.
//! * [`worker`]: takes batches from the queue and drives an output: retries with exponential
//!   backoff, partial failures, permanent rejections to the [dead-letter file](dead_letter), and
//!   acknowledgements once an event is delivered.
//! * [`budget`]: the memory budget: every buffer that holds events is accounted in bytes
//!   against a configured limit, and reported per stage.
//!
//! Why acknowledgements are the spine: a file input may only commit an offset once every event
//! before it is delivered. Events carry an [`AckToken`](skiff_event::AckToken); whoever takes
//! final responsibility for an event acks it, and the input's
//! [`AckStream`](skiff_event::AckStream) turns acks that arrive in any order into an in-order
//! watermark. See `ARCHITECTURE.md` at the repository root.

pub mod budget;
pub mod component;
pub mod dead_letter;
pub mod failure;
pub mod fault;
pub mod publisher;
pub mod queue;
pub mod supervise;
pub mod worker;

pub use budget::Budget;
pub use component::{
    AgentInfo, BackoffConfig, BuildContext, Input, InputCommon, InputContext, InputPlugin, Outcome,
    Output, OutputPlugin, OutputSet, OutputSettings, Paths, ProbeStep, Processor, ProcessorPlugin,
    SetupContext, SetupFuture, StatusBoard, Verdict,
};
pub use failure::{Failure, FailureKind};
pub use publisher::Publisher;
pub use queue::{Closed, Queue};
