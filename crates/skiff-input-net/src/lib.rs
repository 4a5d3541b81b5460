//! skiff's network inputs: `tcp`, `udp`, `unix` (stream and datagram) and `syslog`
//! (RFC 3164 and 5424 over any of them), with Filebeat's option names, defaults and fields.
//!
//! Where it sits: the first stage of the pipeline (**input** -> processors -> queue -> output)
//! for everything that is *pushed* to skiff over a socket. The transports are written once and
//! shared: [`listen`] accepts stream connections (TCP, TLS via `skiff-tls`, unix) and
//! [`stream`] serves each; [`datagram`] receives UDP and unix datagrams. A [`framing::Framer`]
//! cuts a stream into messages (delimiter, or RFC 6587 octet counting), and a
//! [`message::ToEvent`] turns each message into an event: [`plain`] keeps it as `message`,
//! [`syslog`] parses it (with the `syslog` processor's parser, `skiff_processors::syslog::parse`:
//! one parser of syslog in skiff).
//!
//! # Acknowledgements (what a sender is told, and when)
//!
//! None of these protocols has an application-level acknowledgement, so:
//!
//! * **stream sockets** (tcp, unix stream, syslog over them) are acknowledged by TCP's own
//!   flow control only: an input stops reading while the queue is full, the sender's writes
//!   block. Nothing is dropped; what a memory queue holds at a stop is lost to a crash unless
//!   `queue.disk` is used, exactly as with Filebeat;
//! * **datagrams** (udp, unix datagram) cannot be slowed down: what arrives while the pipeline
//!   is full is dropped and *counted* (`skiff.input.net.dropped{reason=pipeline_full}`, and
//!   the kernel's own socket drops in `skiff.input.udp.kernel_drops`).
//!
//! docs/inputs-network.md has the settings and the contract for users.
//!
//! # Example
//!
//! ```
//! use skiff_input_net::framing::{Framer, FramingKind};
//! let f = Framer::new(FramingKind::Rfc6587, b"\n", 1024);
//! let mut buf = bytes::BytesMut::from(&b"5 hello<13>plain\n"[..]);
//! assert_eq!(f.next(&mut buf).unwrap().unwrap(), &b"hello"[..]);
//! assert_eq!(f.next(&mut buf).unwrap().unwrap(), &b"<13>plain"[..]);
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod datagram;
pub mod framing;
pub mod listen;
pub mod message;
pub mod plain;
pub mod stream;
pub mod syslog;
pub mod transport;

pub use plain::{TCP, UDP, UNIX};
pub use syslog::SYSLOG;
