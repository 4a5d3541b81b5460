//! The `tcp`, `udp` and `unix` inputs: one event per message, `message` being its text and
//! `log.source.address` its sender (`ip:port`; for a unix socket, the socket's path).
//!
//! Acknowledgement contract, per transport: TCP and unix stream sockets are acknowledged by
//! back-pressure only (see [`crate::stream`]); UDP and unix datagrams cannot be, and what does
//! not fit is dropped and counted (see [`crate::datagram`]).

use std::sync::Arc;

use async_trait::async_trait;
use skiff_config::{ConfigErrors, Node};
use skiff_pipeline::{Failure, Input, InputContext, InputPlugin};

use crate::message::Plain;
use crate::transport::Transport;

/// `type: tcp`.
pub static TCP: InputPlugin = InputPlugin {
    name: "tcp",
    agent_type: "filebeat",
    build: |n, _, _| build(n, Transport::tcp, "tcp"),
};

/// `type: udp`.
pub static UDP: InputPlugin = InputPlugin {
    name: "udp",
    agent_type: "filebeat",
    build: |n, _, _| build(n, Transport::udp, "udp"),
};

/// `type: unix`.
pub static UNIX: InputPlugin = InputPlugin {
    name: "unix",
    agent_type: "filebeat",
    build: |n, _, _| build(n, Transport::unix, "unix"),
};

type Parse = fn(&Node, &mut Vec<skiff_config::ConfigError>) -> Option<Transport>;

fn build(node: &Node, parse: Parse, kind: &'static str) -> Result<Box<dyn Input>, ConfigErrors> {
    let mut errs = Vec::new();
    match parse(node, &mut errs) {
        Some(transport) if errs.is_empty() => Ok(Box::new(PlainInput { transport, kind })),
        _ => Err(ConfigErrors(errs)),
    }
}

/// A built `tcp`, `udp` or `unix` input.
pub struct PlainInput {
    transport: Transport,
    kind: &'static str,
}

#[async_trait]
impl Input for PlainInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        self.transport.run(Arc::new(Plain), self.kind, &ctx).await
    }
}
