//! The pipeline assembled in one type: a [`Topology`] is built from the parsed configuration
//! ([`PipelineConfig`]) and a table of plugins ([`Plugins`], the binary's registry), then
//! started, supervised, and stopped in order.
//!
//! Why a library: the binary, the tests and the benchmarks used to assemble queue, output
//! workers, publisher and inputs by hand, each with its own start and stop order; packets and
//! metrics will plug into the same pipeline. One type keeps the order (inputs stop and save
//! their state before the queue closes, the queue closes before the outputs drain) and the
//! supervision (a failed input is restarted; a failure that cannot be restarted stops skiff
//! with its reason) in one place.
//!
//! * [`build`]: building the components from the configuration, collecting every problem.
//! * [`topology`]: [`Topology`], its builder for tests, [`Running`] (with inputs added and
//!   removed while running, for reloads), stop and [`Report`].
//! * [`supervisor`]: restarting failed inputs with backoff, and when to give up.
//! * [`health`]: per-component state for `GET /health`.
//! * [`config`]: what the topology is built from, and `supervision.*`.

pub mod build;
pub mod config;
pub mod health;
pub mod supervisor;
pub mod topology;

pub use build::{Plugins, error_at, input_from_config};
pub use config::{PipelineConfig, SupervisionConfig};
pub use health::{ComponentHealth, Health, State};
pub use topology::{
    AddError, Drain, Ended, InputFactory, InputSpec, Report, Running, Topology, TopologyBuilder,
};
