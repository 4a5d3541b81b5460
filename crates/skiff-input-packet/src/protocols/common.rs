//! The common options as the issue 13 protocols use them, read once at build.

use std::time::Duration;

use crate::protocol::{BuildArgs, ConnInfo, Dir, ProtocolPlugin};

/// `ports`, `send_request`, `send_response` and `transaction_timeout`, resolved.
#[derive(Debug, Clone)]
pub struct Common {
    /// The server ports (configured, or the protocol's defaults).
    pub ports: Vec<u16>,
    /// `send_request`.
    pub send_request: bool,
    /// `send_response`.
    pub send_response: bool,
    /// `transaction_timeout`.
    pub timeout: Duration,
}

impl Common {
    /// The common options of `args` for `plugin`.
    pub fn of(args: &BuildArgs<'_>, plugin: &ProtocolPlugin) -> Common {
        Common {
            ports: args
                .common
                .ports
                .clone()
                .unwrap_or_else(|| plugin.default_ports.to_vec()),
            send_request: args.common.send_request,
            send_response: args.common.send_response,
            timeout: args.common.timeout(),
        }
    }

    /// The direction the client sends in: towards a server port, else the side that opened
    /// the connection.
    pub fn client_dir(&self, conn: &ConnInfo) -> Dir {
        if self.ports.contains(&conn.reply.1) {
            Dir::Orig
        } else if self.ports.contains(&conn.orig.1) {
            Dir::Reply
        } else {
            Dir::Orig
        }
    }
}
