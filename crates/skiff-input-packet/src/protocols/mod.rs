//! The protocols: one module each, one line each in [`ALL`].
//!
//! To add one, write a module implementing [`Protocol`](crate::protocol::Protocol) and
//! [`Session`](crate::protocol::Session), expose its [`ProtocolPlugin`], and add it to
//! [`ALL`]; docs/adding-a-protocol.md walks through it.

pub mod amqp;
pub mod cassandra;
pub mod common;
pub mod dhcpv4;
pub mod dns;
#[cfg(test)]
pub(crate) mod fuzzing;
pub mod http;
pub mod icmp;
pub mod memcache;
pub mod mongodb;
pub mod mysql;
pub mod nfs;
pub mod pgsql;
pub mod redis;
pub mod resultset;
pub mod sip;
pub mod smtp;
pub mod thrift;
pub mod tls;

use std::sync::Arc;

use skiff_config::ConfigError;

use crate::protocol::{BuildArgs, Protocol, ProtocolPlugin};

/// `type: icmp`: no ports; the engine hands ICMP messages to [`icmp::IcmpTracker`].
pub static ICMP: ProtocolPlugin = ProtocolPlugin {
    name: "icmp",
    tcp: false,
    udp: false,
    default_ports: &[],
    build: icmp_build,
};

fn icmp_build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoOptions {}
    let _: NoOptions = args.own.deserialize()?;
    Err(ConfigError::new(
        &args.own.path,
        args.own.mark.clone(),
        "icmp is not a port-based protocol",
    ))
}

/// Every protocol skiff parses.
pub const ALL: &[&ProtocolPlugin] = &[
    &http::PLUGIN,
    &dns::PLUGIN,
    &ICMP,
    &smtp::PLUGIN,
    &tls::PLUGIN,
    // issue 13
    &mysql::PLUGIN,
    &pgsql::PLUGIN,
    &redis::PLUGIN,
    &mongodb::PLUGIN,
    &memcache::PLUGIN,
    &cassandra::PLUGIN,
    &thrift::PLUGIN,
    &amqp::PLUGIN,
    &nfs::PLUGIN,
    &sip::PLUGIN,
    &dhcpv4::PLUGIN,
];

/// The protocol named `name`.
pub fn find(name: &str) -> Option<&'static ProtocolPlugin> {
    ALL.iter().copied().find(|p| p.name == name)
}

/// Every protocol's name (for errors and suggestions).
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_unique() {
        let mut n = super::names();
        let len = n.len();
        n.sort_unstable();
        n.dedup();
        assert_eq!(n.len(), len);
    }
}
