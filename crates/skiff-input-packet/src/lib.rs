//! The packet input: network traffic analysis as Packetbeat does it.
//!
//! skiff replaces Packetbeat with the same configuration (`packetbeat.*`, which can sit in the
//! same file as `filebeat.inputs`) and the same events (`agent.type: packetbeat`). This crate
//! is the first stage of that pipeline (**input** -> processors -> queue -> output):
//!
//! ```text
//! capture (pcap/pcapng file, or live through libpcap)              capture/
//!   -> decode (etherparse; VLANs, SLL/SLL2, null, raw IP, IPv4 defragmentation)  decode.rs
//!   -> flows (packetbeat.flows)                                                    flows.rs
//!   -> ICMP request/reply matcher                                         protocols/icmp.rs
//!   -> TCP reassembly per direction (tcp.rs) / UDP address pairs, by port   engine.rs
//!        -> protocol Session (http, dns, ...)                               protocols/
//!   -> transaction events with the common fields                           txevent.rs
//! ```
//!
//! Why its own engine rather than a port of Packetbeat's: a protocol is one module with one
//! trait ([`protocol::Session`]) for TCP and UDP alike, registered by one line
//! ([`protocols::ALL`]); everything the engine holds (stream buffers, reorder buffers,
//! pending transactions) is accounted in the memory Budget stage `packet.reassembly`, whose
//! oldest connections are evicted when it is full, so a SYN flood or a million idle
//! connections cannot grow memory past the configured bytes.
//!
//! Testing a protocol against a capture is one line ([`testing::events`]):
//!
//! ```no_run
//! let evs = skiff_input_packet::testing::events(
//!     "capture.pcap".as_ref(),
//!     "packetbeat.protocols: [{type: http, ports: [80]}]",
//! ).unwrap();
//! assert_eq!(evs[0]["http.response.status_code"], 200);
//! ```

pub mod capture;
pub mod config;
pub mod decode;
mod direction;
pub mod engine;
mod error;
pub mod flows;
pub mod input;
pub mod protocol;
pub mod protocols;
pub mod tcp;
pub mod testing;
pub mod txevent;

pub use error::PacketError;

use skiff_config::{ConfigErrors, Mark, Node, NodeValue};
use skiff_pipeline::{BuildContext, Input, InputCommon, InputPlugin};

/// The input type the `packetbeat` section becomes (`type: packet`).
pub static PLUGIN: InputPlugin = InputPlugin {
    name: "packet",
    agent_type: "packetbeat",
    build,
};

fn build(
    node: &Node,
    _common: &InputCommon,
    ctx: &BuildContext,
) -> Result<Box<dyn Input>, ConfigErrors> {
    let names = protocols::names();
    let cfg = config::parse(node, &names)?;
    let engine = engine::Engine::new(&cfg, ctx)?;
    // An invalid filter is a configuration error (`skiff test config` exits 1), as Packetbeat.
    for (i, iface) in cfg.interfaces.iter().enumerate() {
        if let Some(f) = &iface.bpf_filter
            && let Err(e) = capture::live::check_filter(f)
        {
            let at = node
                .get(&format!("interfaces.{i}.bpf_filter"))
                .or_else(|| node.get("interfaces.bpf_filter"))
                .unwrap_or(node);
            return Err(skiff_config::ConfigError::new(
                &at.path,
                at.mark.clone(),
                format!("invalid BPF filter `{f}`: {e}"),
            )
            .into());
        }
    }
    Ok(Box::new(input::PacketInput { cfg, engine }))
}

/// Turns the `packetbeat` section into an input item of type `packet` (the binary calls this
/// for the top-level `packetbeat` key, so one file can hold `filebeat.inputs` and
/// `packetbeat.*`). Returns None when the section is empty or disabled.
pub fn section_input(mut section: Node) -> Option<Node> {
    if matches!(section.value, NodeValue::Null) {
        section = Node::empty_map();
        section.path = "packetbeat".into();
    }
    if !matches!(section.value, NodeValue::Map(_)) {
        return Some(section);
    }
    let mark: Mark = section.mark.clone();
    let path = section.path.clone();
    section.insert(
        "type",
        Node::new(NodeValue::String("packet".into()), mark.clone()),
        &mark,
    );
    if section.get("id").is_none() {
        section.insert(
            "id",
            Node::new(NodeValue::String("packetbeat".into()), mark.clone()),
            &mark,
        );
    }
    section.fix_paths(&path);
    Some(section)
}
