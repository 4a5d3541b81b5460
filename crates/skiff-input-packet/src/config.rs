//! `packetbeat.*`: Packetbeat's configuration keys, read as Packetbeat reads them.
//!
//! `packetbeat.interfaces` is a map or (8.x) a list of maps; `packetbeat.protocols` is the list
//! form (`- type: http`) or the 7.x map form (`http: {ports: [80]}`). Every protocol entry is
//! split in two: the options every protocol has ([`ProtocolCommon`]) and its own, which the
//! protocol's `build` reads with unknown keys reported (file, line and a suggestion).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use skiff_config::{ConfigError, ConfigErrors, Mark, Node, NodeValue};
use skiff_event::Map;

/// `packetbeat.*`, validated.
#[derive(Debug, Clone)]
pub struct PacketbeatConfig {
    /// `packetbeat.interfaces` (one or more; at least one, the default `device: any`).
    pub interfaces: Vec<InterfaceConfig>,
    /// `packetbeat.protocols`, enabled entries only, each with its own settings node.
    pub protocols: Vec<ProtocolEntry>,
    /// `packetbeat.flows`, when the section exists and is not disabled.
    pub flows: Option<FlowsConfig>,
    /// `packetbeat.ignore_outgoing` (default false): drop transactions whose
    /// `network.direction` is `egress`.
    pub ignore_outgoing: bool,
    /// `packetbeat.shutdown_timeout` (default 0): how long to wait at the end of a capture file
    /// (or at shutdown) for published events to be acknowledged.
    pub shutdown_timeout: Duration,
    /// `packetbeat.reassembly.*` (skiff's own): memory limits of the TCP reassembler.
    pub reassembly: ReassemblyConfig,
    /// Warnings for keys accepted but not acted on (`procs`).
    pub warnings: Vec<String>,
}

/// One `packetbeat.interfaces` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    /// `device`: a name, an index from `skiff devices`, or `any` (the default).
    #[serde(default = "default_device")]
    pub device: String,
    /// `type`: `pcap` (default; also `autodetect` and empty) or `af_packet` (the same libpcap
    /// capture: its Linux backend is the memory-mapped TPACKET_V3 ring, sized by
    /// `buffer_size_mb`).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `file`: read packets from this pcap/pcapng file instead of a device (as `-I`).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// `snaplen`: bytes captured per packet. Default 65535.
    #[serde(default = "default_snaplen")]
    pub snaplen: u32,
    /// `buffer_size_mb`: the kernel ring size in MiB. Default 24 (Packetbeat's value when unset).
    #[serde(default = "default_buffer_mb")]
    pub buffer_size_mb: u32,
    /// `with_vlans`: extend the generated BPF filter to VLAN-tagged frames. Default false.
    #[serde(default)]
    pub with_vlans: bool,
    /// `bpf_filter`: replaces the filter generated from the protocols' ports.
    #[serde(default)]
    pub bpf_filter: Option<String>,
    /// `internal_networks`: CIDRs for the perimeter-based `network.direction`.
    #[serde(default)]
    pub internal_networks: Vec<String>,
    /// `auto_promisc_mode`: accepted; libpcap opens named devices in promiscuous mode.
    #[serde(default)]
    pub auto_promisc_mode: bool,
    /// `fanout_group`: accepted for `af_packet` configurations; not used (one capture per
    /// process).
    #[serde(default)]
    pub fanout_group: Option<u16>,
    /// `metrics_interval`: accepted; capture statistics are read at every `/stats` request.
    #[serde(default)]
    pub metrics_interval: Option<skiff_config::Duration>,
    /// `poll_default_route`: accepted, not supported (the device is resolved at start).
    #[serde(default)]
    pub poll_default_route: Option<skiff_config::Duration>,
    /// `top_speed` (skiff's own; `-t`): replay the file as fast as possible with its own
    /// timestamps. Default false: replay at the recorded pace, stamped with the current time.
    #[serde(default)]
    pub top_speed: bool,
    /// `loop` (skiff's own; `-l`): how many times to replay the file. Default 1.
    #[serde(default = "one", rename = "loop")]
    pub loops: u32,
}

fn default_device() -> String {
    "any".into()
}
fn default_snaplen() -> u32 {
    65535
}
fn default_buffer_mb() -> u32 {
    24
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// The options every protocol entry has.
#[derive(Debug, Clone, Deserialize)]
pub struct ProtocolCommon {
    /// `type` (list form) or the map key (7.x form).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `enabled` (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `ports`: the ports that select this protocol (default: the protocol's usual ports).
    #[serde(default)]
    pub ports: Option<Vec<u16>>,
    /// `send_request` (default false): add the raw request as `request`.
    #[serde(default)]
    pub send_request: bool,
    /// `send_response` (default false): add the raw response as `response`.
    #[serde(default)]
    pub send_response: bool,
    /// `transaction_timeout` (default 10s): correlation timeout, and the idle timeout of the
    /// protocol's connections.
    #[serde(default)]
    pub transaction_timeout: Option<skiff_config::Duration>,
    /// `keep_null` (default false).
    #[serde(default)]
    pub keep_null: bool,
    /// `index`: the index of this protocol's events.
    #[serde(default)]
    pub index: Option<String>,
    /// `fields`: custom fields.
    #[serde(default)]
    pub fields: Map,
    /// `fields_under_root` (default false).
    #[serde(default)]
    pub fields_under_root: bool,
    /// `tags`: added to this protocol's events.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl ProtocolCommon {
    /// The keys [`ProtocolCommon`] takes; the rest of an entry belongs to the protocol.
    pub const KEYS: &'static [&'static str] = &[
        "type",
        "enabled",
        "ports",
        "send_request",
        "send_response",
        "transaction_timeout",
        "keep_null",
        "index",
        "fields",
        "fields_under_root",
        "tags",
        "processors",
        "interface",
    ];

    /// `transaction_timeout`, or the 10 s default.
    pub fn timeout(&self) -> Duration {
        self.transaction_timeout
            .map_or(Duration::from_secs(10), |d| d.0)
    }
}

/// One enabled protocol entry.
#[derive(Debug, Clone)]
pub struct ProtocolEntry {
    /// Its common options.
    pub common: ProtocolCommon,
    /// The protocol's own options (common keys removed), for the protocol's `build`.
    pub own: Node,
    /// The entry as written (for errors pointing at it).
    pub node: Node,
}

/// `packetbeat.flows`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsConfig {
    /// `enabled` (default true once the section exists).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `timeout` (default 30s, at least 1s): a flow idle this long is reported as final.
    #[serde(default)]
    pub timeout: Option<String>,
    /// `period` (default 10s; `-1s` or anything <= 0: only final reports).
    #[serde(default)]
    pub period: Option<String>,
    /// `enable_delta_flow_reports` (default false).
    #[serde(default)]
    pub enable_delta_flow_reports: bool,
    /// `allow_mismatched_eth` (default false).
    #[serde(default)]
    pub allow_mismatched_eth: bool,
    /// `keep_null`, `index`, `fields`, `fields_under_root`, `tags`: as for protocols.
    #[serde(default)]
    pub keep_null: bool,
    /// `index`.
    #[serde(default)]
    pub index: Option<String>,
    /// `fields`.
    #[serde(default)]
    pub fields: Map,
    /// `fields_under_root`.
    #[serde(default)]
    pub fields_under_root: bool,
    /// `tags`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `processors`: accepted (the global processors apply to flow events).
    #[serde(default)]
    pub processors: Option<serde_json::Value>,
}

impl FlowsConfig {
    /// `timeout`, at least 1 s.
    pub fn timeout(&self) -> Duration {
        signed_duration(self.timeout.as_deref())
            .flatten()
            .unwrap_or(Duration::from_secs(30))
            .max(Duration::from_secs(1))
    }
    /// `period`; None when intermediate reports are off.
    pub fn period(&self) -> Option<Duration> {
        match signed_duration(self.period.as_deref()) {
            None => Some(Duration::from_secs(10)),
            Some(None) => None,
            Some(Some(d)) => Some(d.max(Duration::from_secs(1))),
        }
    }
}

/// None: not set; Some(None): zero or negative; Some(Some(d)): positive.
fn signed_duration(text: Option<&str>) -> Option<Option<Duration>> {
    let t = text?.trim();
    if t.starts_with('-') {
        return Some(None);
    }
    let d = skiff_config::Duration::parse(t).ok()?.0;
    Some((!d.is_zero()).then_some(d))
}

/// `packetbeat.reassembly.*`: skiff's limits of the TCP reassembler (the Budget stage
/// `packet.reassembly`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReassemblyConfig {
    /// `max_bytes`: buffered stream bytes plus per-connection state of all connections.
    /// Default 64 MiB. Past it the oldest connections are evicted (and counted).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: skiff_config::ByteSize,
    /// `max_stream_bytes`: the most one direction of one connection may buffer (Packetbeat's
    /// 10 MiB). Past it the buffered bytes are dropped and the parser told of a gap.
    #[serde(default = "default_stream_bytes")]
    pub max_stream_bytes: skiff_config::ByteSize,
    /// `max_out_of_order`: segments held per direction while waiting for a missing one.
    /// Default 16; past it the missing bytes are reported to the parser as a gap.
    #[serde(default = "default_ooo")]
    pub max_out_of_order: usize,
}

fn default_max_bytes() -> skiff_config::ByteSize {
    skiff_config::ByteSize(64 << 20)
}
fn default_stream_bytes() -> skiff_config::ByteSize {
    skiff_config::ByteSize(10 << 20)
}
fn default_ooo() -> usize {
    16
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            max_bytes: default_max_bytes(),
            max_stream_bytes: default_stream_bytes(),
            max_out_of_order: default_ooo(),
        }
    }
}

/// The top-level keys besides `interfaces` and `protocols`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rest {
    #[serde(default)]
    flows: Option<FlowsConfig>,
    #[serde(default)]
    ignore_outgoing: bool,
    #[serde(default)]
    shutdown_timeout: Option<skiff_config::Duration>,
    #[serde(default)]
    reassembly: Option<ReassemblyConfig>,
    #[serde(default)]
    procs: Option<serde_json::Value>,
    #[serde(default)]
    overwrite_pipelines: Option<bool>,
}

/// Reads `packetbeat.*` (the section node, as the topology hands it: common input keys
/// removed). `known` lists the protocol names skiff has, for suggestions.
pub fn parse(section: &Node, known: &[&str]) -> Result<PacketbeatConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let mut rest = section.clone();
    let ifaces = rest.remove("interfaces");
    let protos = rest.remove("protocols");
    let flows_present = rest.get("flows").is_some();
    let r: Rest = match rest.deserialize() {
        Ok(r) => r,
        Err(e) => {
            errors.push(e);
            Rest::default()
        }
    };
    let mut interfaces = Vec::new();
    match ifaces {
        None => {}
        Some(n) => match &n.value {
            NodeValue::Seq(items) => {
                for it in items {
                    match it.deserialize::<InterfaceConfig>() {
                        Ok(i) => interfaces.push(i),
                        Err(e) => errors.push(e),
                    }
                }
            }
            NodeValue::Null => {}
            _ => match n.deserialize::<InterfaceConfig>() {
                Ok(i) => interfaces.push(i),
                Err(e) => errors.push(e),
            },
        },
    }
    if interfaces.is_empty()
        && let Ok(i) = Node::empty_map().deserialize::<InterfaceConfig>()
    {
        interfaces.push(i);
    }
    for i in &interfaces {
        if let Some(k) = &i.kind
            && !matches!(k.as_str(), "" | "pcap" | "af_packet" | "autodetect")
        {
            errors.push(ConfigError::new(
                "packetbeat.interfaces.type",
                section.mark.clone(),
                format!("unknown capture type `{k}`: use pcap or af_packet"),
            ));
        }
    }
    let mut protocols = Vec::new();
    if protos.is_none() {
        // No `protocols` at all: every protocol on its usual ports, as Packetbeat's reference
        // configuration has them.
        for k in known {
            let mut own = Node::empty_map();
            own.path = format!("{}.protocols.{k}", section.path);
            let mut common: ProtocolCommon = match Node::empty_map().deserialize() {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            common.kind = (*k).to_owned();
            protocols.push(ProtocolEntry {
                common,
                node: own.clone(),
                own,
            });
        }
    }
    if let Some(p) = &protos {
        let entries: Vec<(Option<&str>, &Node)> = match &p.value {
            NodeValue::Seq(items) => items.iter().map(|n| (None, n)).collect(),
            NodeValue::Map(entries) => entries.iter().map(|(k, n)| (Some(k.as_str()), n)).collect(),
            NodeValue::Null => Vec::new(),
            _ => {
                errors.push(ConfigError::new(
                    &p.path,
                    p.mark.clone(),
                    "expected a list of protocols (`- type: http`) or a map (`http: {ports: [80]}`)",
                ));
                Vec::new()
            }
        };
        for (key, node) in entries {
            match protocol_entry(key, node, known) {
                Ok(Some(e)) => protocols.push(e),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
    }
    let mut warnings = Vec::new();
    if r.procs.is_some() {
        warnings.push(
            "packetbeat.procs is accepted but not supported: events have no process.* fields"
                .to_owned(),
        );
    }
    let _ = r.overwrite_pipelines;
    let flows = if flows_present {
        Some(r.flows.clone().unwrap_or(FlowsConfig {
            enabled: true,
            timeout: None,
            period: None,
            enable_delta_flow_reports: false,
            allow_mismatched_eth: false,
            keep_null: false,
            index: None,
            fields: Map::new(),
            fields_under_root: false,
            tags: Vec::new(),
            processors: None,
        }))
        .filter(|f| f.enabled)
    } else {
        None
    };
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(PacketbeatConfig {
        interfaces,
        protocols,
        flows,
        ignore_outgoing: r.ignore_outgoing,
        shutdown_timeout: r.shutdown_timeout.map_or(Duration::ZERO, |d| d.0),
        reassembly: r.reassembly.unwrap_or_default(),
        warnings,
    })
}

fn protocol_entry(
    key: Option<&str>,
    node: &Node,
    known: &[&str],
) -> Result<Option<ProtocolEntry>, ConfigError> {
    let mut own = node.clone();
    if matches!(own.value, NodeValue::Null) {
        own = Node::empty_map();
        own.path = node.path.clone();
    }
    if !matches!(own.value, NodeValue::Map(_)) {
        return Err(ConfigError::new(
            &node.path,
            node.mark.clone(),
            "a protocol entry must be a map (`- type: http` with its options)",
        ));
    }
    let mut common_entries = Vec::new();
    for k in ProtocolCommon::KEYS {
        if let Some(n) = own.remove(k) {
            common_entries.push(((*k).to_owned(), n));
        }
    }
    let mut common_node = Node::new(NodeValue::Map(common_entries), node.mark.clone());
    common_node.path = node.path.clone();
    let mut common: ProtocolCommon = common_node.deserialize()?;
    if let Some(k) = key {
        common.kind = k.to_owned();
    }
    if common.kind.is_empty() {
        return Err(ConfigError::new(
            &node.path,
            node.mark.clone(),
            format!("missing `type` (one of: {})", known.join(", ")),
        ));
    }
    if !known.contains(&common.kind.as_str()) {
        let at = node.get("type").unwrap_or(node);
        return Err(ConfigError::new(
            &at.path,
            at.mark.clone(),
            format!(
                "unknown protocol `{}` (skiff has: {})",
                common.kind,
                known.join(", ")
            ),
        )
        .with_suggestion(skiff_config::suggest(&common.kind, known)));
    }
    if !common.enabled {
        return Ok(None);
    }
    Ok(Some(ProtocolEntry {
        common,
        own,
        node: node.clone(),
    }))
}

/// Applies `-I FILE`, `-t` and `-l N` to the loaded configuration: the first interface reads
/// `file`. With `drop_default_inputs` (no `-c` file: the embedded default configuration is
/// in use) the default's log inputs are removed, so skiff ends with the capture file.
pub fn apply_replay(
    root: &mut Node,
    file: &std::path::Path,
    top_speed: bool,
    loops: Option<u32>,
    drop_default_inputs: bool,
) {
    let mark = Mark::override_flag();
    if drop_default_inputs {
        root.remove("filebeat.inputs");
        root.remove("inputs");
    }
    let base = match root.get("packetbeat.interfaces").map(|n| &n.value) {
        Some(NodeValue::Seq(items)) if !items.is_empty() => "packetbeat.interfaces.0",
        _ => "packetbeat.interfaces",
    };
    let node = |v: NodeValue| Node::new(v, mark.clone());
    root.insert(
        &format!("{base}.file"),
        node(NodeValue::String(file.display().to_string())),
        &mark,
    );
    if top_speed {
        root.insert(
            &format!("{base}.top_speed"),
            node(NodeValue::Bool(true)),
            &mark,
        );
    }
    if let Some(n) = loops {
        root.insert(
            &format!("{base}.loop"),
            node(NodeValue::Int(n.into())),
            &mark,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(yaml: &str) -> Node {
        let root = skiff_config::parse_str(yaml, Some("p.yml")).unwrap();
        root.get("packetbeat").unwrap().clone()
    }

    #[test]
    fn list_and_map_forms_load() {
        let s = section(
            "packetbeat.interfaces.device: eth0\npacketbeat.protocols:\n- type: http\n  ports: [80, 8080]\n  send_all_headers: true\n- type: dns\n  enabled: false\npacketbeat.flows:\n  timeout: 30s\n  period: -1s\n",
        );
        let c = parse(&s, &["http", "dns"]).unwrap();
        assert_eq!(c.interfaces[0].device, "eth0");
        assert_eq!(c.protocols.len(), 1);
        assert_eq!(c.protocols[0].common.ports, Some(vec![80, 8080]));
        assert!(c.protocols[0].own.get("send_all_headers").is_some());
        assert!(c.protocols[0].own.get("ports").is_none());
        let f = c.flows.unwrap();
        assert_eq!(f.period(), None);
        let s = section("packetbeat.protocols:\n  dns:\n    ports: [53]\n  http: {ports: [80]}\n");
        let c = parse(&s, &["http", "dns"]).unwrap();
        let kinds: Vec<&str> = c.protocols.iter().map(|p| p.common.kind.as_str()).collect();
        assert_eq!(kinds, ["dns", "http"]);
        assert!(c.flows.is_none());
    }

    #[test]
    fn unknown_protocols_and_keys_are_located_errors() {
        let s = section("packetbeat.protocols:\n- type: htp\n  ports: [80]\n");
        let e = parse(&s, &["http", "dns"]).unwrap_err().to_string();
        assert!(e.contains("p.yml:2") && e.contains("http"), "{e}");
        let s = section("packetbeat.interfaces:\n  devce: eth0\n");
        let e = parse(&s, &["http"]).unwrap_err().to_string();
        assert!(e.contains("devce") && e.contains("device"), "{e}");
    }
}
