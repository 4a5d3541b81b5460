//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong while capturing or reading packets.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// The capture file could not be opened or read.
    #[error("cannot read capture file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The capture file is neither pcap nor pcapng, or is damaged.
    #[error("{path} is not a readable pcap or pcapng file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },
    /// A link type this decoder does not know.
    #[error(
        "unsupported link type {0} (skiff decodes Ethernet, Linux cooked SLL/SLL2, BSD loopback/null and raw IP)"
    )]
    LinkType(u32),
    /// Live capture failed (device, permissions, filter).
    #[error("capture on {device}: {reason}")]
    Capture {
        /// The device.
        device: String,
        /// What libpcap said.
        reason: String,
    },
}
