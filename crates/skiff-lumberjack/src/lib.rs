//! Lumberjack v2, the protocol Beats speak to Logstash, on both ends: `output.logstash` and a
//! `lumberjack` (alias `beats`) input.
//!
//! Where it sits: [`output`] is an output of the pipeline (the worker hands it batches; it
//! acknowledges what the server acknowledged), [`input`] is an input (it publishes what it
//! receives and acknowledges to its sender only what our own outputs delivered). Together they
//! make an aggregator tier: edge skiff agents -> central skiff -> Elasticsearch, at least once
//! end to end.
//!
//! * [`protocol`]: frames, the window encoder (zlib-compressed as Beats do) and a decoder that
//!   bounds every length and the decompressed size, for bytes from the network.
//! * [`output`]: the client: windows, partial ACKs, keep-alive ACKs, `slow_start`,
//!   `pipelining`, `ttl`, TLS, and the `skiff test output` probe (an empty-window round trip).
//! * [`input`]: the server: TLS with client certificates, keep-alive ACKs while our pipeline is
//!   backpressured, ACKs that follow our own outputs' acknowledgements, and limits on what a
//!   client can make it hold (connections, unacknowledged events and bytes, timeouts).
//!
//! Written by hand rather than with a library because it is the data path and faces untrusted
//! input: every allocation is bounded by configuration and nothing panics on garbage.

pub mod connect;
pub mod input;
pub mod output;
pub mod protocol;

pub use input::{BEATS_INPUT, INPUT};
pub use output::OUTPUT;
