//! The `filestream` settings, with Filebeat's names and defaults, and the mapping of the old
//! `log` input's settings onto them.

use std::time::Duration;

use serde::Deserialize;
use skiff_config::{
    ByteSize, ConfigError, ConfigErrors, Duration as ConfDuration, Node, NodeValue,
};

/// A filestream input's own settings (the common ones, `type`, `id`, `fields`, ..., are taken
/// out by the binary; `parsers` is taken out and built by `skiff-parsers`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilestreamConfig {
    /// `paths`: glob patterns (`*`, `?`, `[...]`, `**` for any depth). Required.
    #[serde(default)]
    pub paths: Vec<String>,
    /// `exclude_files`: regular expressions; a path matching any is ignored. Default none.
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// `include_files`: regular expressions; when set, only paths matching one are read.
    #[serde(default)]
    pub include_files: Vec<String>,
    /// `include_lines`: regular expressions; when set, only messages matching one are shipped.
    #[serde(default)]
    pub include_lines: Vec<String>,
    /// `exclude_lines`: regular expressions; messages matching one are dropped (after
    /// `include_lines`).
    #[serde(default)]
    pub exclude_lines: Vec<String>,
    /// `encoding`: the files' character encoding (`utf-8`, `plain`, `latin1`, `utf-16le`,
    /// `utf-16be`, or any WHATWG label such as `shift_jis`, `gbk`). Default `utf-8`.
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// `line_terminator`: `auto` (default: `\n`, and a `\r` before it is removed), `line_feed`,
    /// `carriage_return`, `carriage_return_line_feed`, `vertical_tab`, `form_feed`,
    /// `next_line`, `line_separator`, `paragraph_separator`, `null_terminator`.
    #[serde(default = "default_terminator")]
    pub line_terminator: String,
    /// `buffer_size`: bytes read from a file at a time. Default 16KiB.
    #[serde(default = "default_buffer_size")]
    pub buffer_size: ByteSize,
    /// `message_max_bytes`: longest message; a longer line is cut and flagged `truncated`.
    /// Default 10MiB.
    #[serde(default = "default_message_max_bytes")]
    pub message_max_bytes: ByteSize,
    /// `prospector.*`.
    #[serde(default)]
    pub prospector: ProspectorConfig,
    /// `ignore_older`: files not modified for this long are not read (0: off). A file ignored
    /// this way is registered at its current size, so only what is appended later is read.
    /// Default 0.
    #[serde(default)]
    pub ignore_older: ConfDuration,
    /// `ignore_inactive`: `since_first_start` or `since_last_start`: ignore files not modified
    /// since skiff first started (this input's registry was created) or last started.
    #[serde(default)]
    pub ignore_inactive: Option<String>,
    /// `tail_files`: files found at the first scan that have no saved state are read from
    /// their end (the `log` input's option, accepted here too). Default false.
    #[serde(default)]
    pub tail_files: bool,
    /// `close.*`.
    #[serde(default)]
    pub close: CloseConfig,
    /// `clean_inactive`: forget a file's state once it has not changed for this long (-1, the
    /// default, never). Must exceed `ignore_older + prospector.scanner.check_interval`.
    #[serde(default)]
    pub clean_inactive: Option<Signed>,
    /// `clean_removed`: forget a removed file once everything read from it is acknowledged.
    /// Default true.
    #[serde(default = "yes")]
    pub clean_removed: bool,
    /// `harvester_limit`: files read at the same time (0: no limit). Files that wait are
    /// served in turn. Default 0.
    #[serde(default)]
    pub harvester_limit: usize,
    /// `delete.*`.
    #[serde(default)]
    pub delete: DeleteConfig,
    /// `registry.*` (skiff's own, per input; `filebeat.registry.flush` sets the default of every
    /// file input): how the acknowledged offsets are saved.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// `backoff.*`: how often a reader at the end of a file looks for more when no change
    /// notification arrives.
    #[serde(default)]
    pub backoff: BackoffConfig,
    /// `line_flush_timeout` (skiff's own): a last line without a terminator is shipped once the
    /// file has been quiet this long (0: never; wait for the terminator). Default 5s.
    #[serde(default = "default_line_flush")]
    pub line_flush_timeout: ConfDuration,
    /// `file_identity`: `native` (default), `fingerprint`, `path` or `inode_marker.path`; read
    /// by [`file_identity`] (what each does: docs/file-identity.md).
    #[serde(default)]
    pub file_identity: Option<serde_json::Value>,
    /// `rotation.external.strategy.copytruncate` (`suffix_regex`, `dateformat`); read by
    /// [`copytruncate_suffix`]. Copies are detected by content without it.
    #[serde(default)]
    pub rotation: Option<serde_json::Value>,
    /// `take_over`: accepted for compatibility (there is no Filebeat state to take over).
    #[serde(default)]
    pub take_over: Option<serde_json::Value>,
}

/// A duration that may be `-1` (off), as Filebeat writes `clean_inactive: -1`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(untagged)]
pub enum Signed {
    /// A number of seconds; negative means off.
    Seconds(i64),
    /// A duration.
    Duration(ConfDuration),
}

impl Signed {
    /// The duration, or `None` when off.
    pub fn get(&self) -> Option<Duration> {
        match *self {
            Signed::Seconds(s) if s < 0 => None,
            Signed::Seconds(s) => Some(Duration::from_secs(s as u64)),
            Signed::Duration(d) => Some(d.0),
        }
    }
}

/// `prospector.*`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProspectorConfig {
    /// `prospector.scanner.*`.
    #[serde(default)]
    pub scanner: ScannerConfig,
}

/// `prospector.scanner.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerConfig {
    /// `check_interval`: the periodic scan, the safety net behind change notifications.
    /// Default 10s.
    #[serde(default = "default_check_interval")]
    pub check_interval: ConfDuration,
    /// `symlinks`: follow symbolic links that match `paths`. Default false.
    #[serde(default)]
    pub symlinks: bool,
    /// `recursive_glob`: expand `**`. Default true.
    #[serde(default = "yes")]
    pub recursive_glob: bool,
    /// `fingerprint.*`: accepted for compatibility; skiff's fingerprint is always on and covers
    /// the first 1 KiB (or the whole file while it is smaller).
    #[serde(default)]
    pub fingerprint: Option<serde_json::Value>,
    /// `resend_on_touch`: accepted for compatibility; ignored.
    #[serde(default)]
    pub resend_on_touch: bool,
    /// `exclude_files` / `include_files` here are read like the top-level ones.
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// See `exclude_files`.
    #[serde(default)]
    pub include_files: Vec<String>,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        ScannerConfig {
            check_interval: default_check_interval(),
            symlinks: false,
            recursive_glob: true,
            fingerprint: None,
            resend_on_touch: false,
            exclude_files: Vec::new(),
            include_files: Vec::new(),
        }
    }
}

/// `close.*`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseConfig {
    /// `close.on_state_change.*`.
    #[serde(default)]
    pub on_state_change: OnStateChange,
    /// `close.reader.*`.
    #[serde(default)]
    pub reader: CloseReader,
}

/// `close.on_state_change.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnStateChange {
    /// `check_interval`: how often a reader checks for removal/rename. Default 5s.
    #[serde(default = "default_state_check")]
    pub check_interval: ConfDuration,
    /// `inactive`: close a file nothing was appended to for this long. Default 5m.
    #[serde(default = "default_inactive")]
    pub inactive: ConfDuration,
    /// `renamed`: close a file once it is renamed. Default false.
    #[serde(default)]
    pub renamed: bool,
    /// `removed`: close a file once it is removed (after reading what is left in it).
    /// Default true.
    #[serde(default = "yes")]
    pub removed: bool,
}

impl Default for OnStateChange {
    fn default() -> Self {
        OnStateChange {
            check_interval: default_state_check(),
            inactive: default_inactive(),
            renamed: false,
            removed: true,
        }
    }
}

/// `close.reader.*`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseReader {
    /// `on_eof`: close a file as soon as its end is reached. Default false.
    #[serde(default)]
    pub on_eof: bool,
    /// `after_interval`: close a file this long after it was opened (0: never). Default 0.
    #[serde(default)]
    pub after_interval: ConfDuration,
}

/// `delete.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteConfig {
    /// `enabled`: delete a file once it is closed, read to its end, and every event from it
    /// is acknowledged. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// `grace_period`: and it has not changed for this long. Default 30m.
    #[serde(default = "default_grace")]
    pub grace_period: ConfDuration,
}

impl Default for DeleteConfig {
    fn default() -> Self {
        DeleteConfig {
            enabled: false,
            grace_period: default_grace(),
        }
    }
}

/// `registry.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `flush`: the longest an acknowledged offset waits before it is written and fsynced.
    /// Everything acknowledged in that time is saved by one write and one fsync, whatever the
    /// number of files; nothing is written while nothing moves. A crash repeats about this long
    /// of acknowledged lines. Default 100ms; `0` (Filebeat's "after every batch") means as soon
    /// as possible, which is every 10ms.
    #[serde(default = "default_registry_flush")]
    pub flush: ConfDuration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            flush: default_registry_flush(),
        }
    }
}

/// `backoff.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// `init`: first wait at the end of a file. Default 2s.
    #[serde(default = "default_backoff_init")]
    pub init: ConfDuration,
    /// `max`: longest wait. Default 10s.
    #[serde(default = "default_backoff_max")]
    pub max: ConfDuration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            init: default_backoff_init(),
            max: default_backoff_max(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_encoding() -> String {
    "utf-8".into()
}
fn default_terminator() -> String {
    "auto".into()
}
fn default_buffer_size() -> ByteSize {
    ByteSize(16 << 10)
}
fn default_message_max_bytes() -> ByteSize {
    ByteSize(10 << 20)
}
fn secs(s: u64) -> ConfDuration {
    ConfDuration(Duration::from_secs(s))
}
fn default_check_interval() -> ConfDuration {
    secs(10)
}
fn default_state_check() -> ConfDuration {
    secs(5)
}
fn default_inactive() -> ConfDuration {
    secs(300)
}
fn default_grace() -> ConfDuration {
    secs(1800)
}
fn default_backoff_init() -> ConfDuration {
    secs(2)
}
fn default_backoff_max() -> ConfDuration {
    secs(10)
}
fn default_registry_flush() -> ConfDuration {
    ConfDuration(Duration::from_millis(100))
}
fn default_line_flush() -> ConfDuration {
    secs(5)
}

fn err(node: &Node, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(node.path.clone(), node.mark.clone(), msg)
}

/// Rewrites a `log` input's settings into `filestream` ones. Settings with no meaning in
/// filestream (`backoff_factor`, `scan.sort`, ...) are dropped; unknown ones are left as they
/// are, so they are reported as unknown with their own name.
pub fn map_log_input(node: &Node) -> Result<Node, ConfigErrors> {
    let mut out = Node::new(NodeValue::Map(Vec::new()), node.mark.clone());
    out.path = node.path.clone();
    let mut parsers: Vec<Node> = Vec::new();
    let mut json: Option<Node> = None;
    let mut multiline: Option<Node> = None;
    let rename: &[(&str, &str)] = &[
        ("scan_frequency", "prospector.scanner.check_interval"),
        ("symlinks", "prospector.scanner.symlinks"),
        ("close_inactive", "close.on_state_change.inactive"),
        ("close_renamed", "close.on_state_change.renamed"),
        ("close_removed", "close.on_state_change.removed"),
        ("close_eof", "close.reader.on_eof"),
        ("close_timeout", "close.reader.after_interval"),
        ("harvester_buffer_size", "buffer_size"),
        ("max_bytes", "message_max_bytes"),
        ("backoff", "backoff.init"),
        ("max_backoff", "backoff.max"),
    ];
    let same = [
        "paths",
        "exclude_files",
        "include_lines",
        "exclude_lines",
        "encoding",
        "line_terminator",
        "ignore_older",
        "tail_files",
        "clean_inactive",
        "clean_removed",
        "harvester_limit",
        "line_flush_timeout",
        "message_max_bytes",
        "buffer_size",
        "parsers",
    ];
    let dropped = [
        "backoff_factor",
        "scan",
        "recursive_glob",
        "close_older",
        "force_close_files",
    ];
    for (key, value) in node.entries() {
        if let Some((_, to)) = rename.iter().find(|(from, _)| from == key) {
            out.insert(to, value.clone(), &value.mark);
        } else if same.contains(&key.as_str()) {
            out.insert(key, value.clone(), &value.mark);
        } else if key == "json" {
            json = Some(value.clone());
        } else if key == "multiline" {
            multiline = Some(value.clone());
        } else if dropped.contains(&key.as_str()) {
            tracing::debug!(key = %key, "log input setting has no filestream equivalent; ignored");
        } else {
            out.insert(key, value.clone(), &value.mark);
        }
    }
    if let Some(j) = json {
        // The log input decodes JSON under `json.*` unless keys_under_root.
        let mut nd = Node::new(NodeValue::Map(Vec::new()), j.mark.clone());
        let under_root = matches!(
            j.get("keys_under_root").map(|n| &n.value),
            Some(NodeValue::Bool(true))
        );
        nd.insert(
            "target",
            Node::new(
                NodeValue::String(if under_root {
                    String::new()
                } else {
                    "json".into()
                }),
                j.mark.clone(),
            ),
            &j.mark,
        );
        for (k, v) in j.entries() {
            match k.as_str() {
                "keys_under_root" => {}
                "overwrite_keys"
                | "add_error_key"
                | "message_key"
                | "expand_keys"
                | "ignore_decoding_error"
                | "document_id" => nd.insert(k, v.clone(), &v.mark),
                other => {
                    return Err(err(
                        v,
                        format!("unknown `json` setting `{other}` of the log input"),
                    )
                    .into());
                }
            }
        }
        let mut item = Node::new(NodeValue::Map(Vec::new()), j.mark.clone());
        item.insert("ndjson", nd, &j.mark);
        parsers.push(item);
    }
    if let Some(m) = multiline {
        let mut item = Node::new(NodeValue::Map(Vec::new()), m.mark.clone());
        item.insert("multiline", m.clone(), &m.mark);
        parsers.push(item);
    }
    if !parsers.is_empty() {
        if out.get("parsers").is_some() {
            return Err(err(
                node,
                "the log input takes `json`/`multiline` or `parsers`, not both",
            )
            .into());
        }
        out.insert(
            "parsers",
            Node::new(NodeValue::Seq(parsers), node.mark.clone()),
            &node.mark,
        );
    }
    out.fix_paths(&node.path);
    Ok(out)
}

/// How to split and decode lines, from `encoding` and `line_terminator`.
pub fn terminator(
    encoding: &'static encoding_rs::Encoding,
    name: &str,
) -> Result<crate::lines::Terminator, String> {
    let (ch, strip) = match name {
        "auto" => ("\n", true),
        "line_feed" => ("\n", false),
        "carriage_return" => ("\r", false),
        "carriage_return_line_feed" => ("\r\n", false),
        "vertical_tab" => ("\u{0b}", false),
        "form_feed" => ("\u{0c}", false),
        "next_line" => ("\u{85}", false),
        "line_separator" => ("\u{2028}", false),
        "paragraph_separator" => ("\u{2029}", false),
        "null_terminator" => ("\0", false),
        other => {
            return Err(format!(
                "unknown line_terminator `{other}`; use auto, line_feed, carriage_return, carriage_return_line_feed, vertical_tab, form_feed, next_line, line_separator, paragraph_separator or null_terminator"
            ));
        }
    };
    let enc = |s: &str| -> Vec<u8> {
        if encoding == encoding_rs::UTF_16LE {
            s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
        } else if encoding == encoding_rs::UTF_16BE {
            s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect()
        } else {
            let (b, _, _) = encoding.encode(s);
            b.into_owned()
        }
    };
    let unit = if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
        2
    } else {
        1
    };
    let seq = enc(ch);
    if seq.is_empty() || (ch != "\0" && seq.iter().all(|b| *b == 0)) {
        return Err(format!(
            "line_terminator `{name}` cannot be written in this encoding"
        ));
    }
    Ok(crate::lines::Terminator {
        seq,
        unit,
        strip: strip.then(|| enc("\r")),
    })
}

/// The encoding for an `encoding` name (Filebeat's names and WHATWG labels).
pub fn encoding(name: &str) -> Option<&'static encoding_rs::Encoding> {
    let n = name.trim().to_ascii_lowercase();
    match n.as_str() {
        "utf-8" | "utf8" | "plain" | "" => Some(encoding_rs::UTF_8),
        "latin1" | "iso8859-1" | "iso-8859-1" => Some(encoding_rs::WINDOWS_1252),
        "utf-16le" | "utf-16le-bom" => Some(encoding_rs::UTF_16LE),
        "utf-16be" | "utf-16be-bom" => Some(encoding_rs::UTF_16BE),
        "ascii" => Some(encoding_rs::WINDOWS_1252),
        other => encoding_rs::Encoding::for_label(other.replace("iso8859", "iso-8859").as_bytes()),
    }
}

/// `file_identity`: how a file is recognised besides device + inode + head fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileIdentity {
    /// Device + inode, confirmed by the head fingerprint (the default).
    Native,
    /// As native; a file under a known path whose inode changed continues from the known
    /// file's offset when its head matches.
    Path,
    /// As native, but device ids are not trusted: a file with a known inode on another device
    /// id continues when its head matches. The marker file's path is kept for the message.
    InodeMarker(String),
    /// As native (the fingerprint already confirms every file and follows copies).
    Fingerprint,
}

/// Reads `file_identity` (Filebeat's shape: exactly one of `native`, `path`, `fingerprint`,
/// `inode_marker: {path: ...}`).
pub fn file_identity(v: Option<&serde_json::Value>) -> Result<FileIdentity, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(FileIdentity::Native);
    };
    let serde_json::Value::Object(m) = v else {
        return Err(
            "file_identity must be a map with one of native, path, fingerprint, inode_marker"
                .into(),
        );
    };
    let mut keys = m.keys();
    let (Some(k), None) = (keys.next(), keys.next()) else {
        return Err(
            "file_identity takes exactly one of native, path, fingerprint, inode_marker".into(),
        );
    };
    match k.as_str() {
        "native" => Ok(FileIdentity::Native),
        "path" => Ok(FileIdentity::Path),
        "fingerprint" => Ok(FileIdentity::Fingerprint),
        "inode_marker" => match m[k].get("path").and_then(|p| p.as_str()) {
            Some(p) if !p.is_empty() => Ok(FileIdentity::InodeMarker(p.to_owned())),
            _ => Err("file_identity.inode_marker needs `path`: the marker file".into()),
        },
        other => Err(format!(
            "unknown file_identity `{other}`; use native, path, fingerprint or inode_marker"
        )),
    }
}

/// Reads `rotation.external.strategy.copytruncate`: the regular expression matching the
/// suffix of rotated copies, or `None` when the strategy is not set. `suffix_regex` wins;
/// else `dateformat` (a Go layout such as `-20060102`) becomes one; else `\.\d+$`.
pub fn copytruncate_suffix(v: Option<&serde_json::Value>) -> Result<Option<String>, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let strategy = v
        .get("external")
        .and_then(|e| e.get("strategy"))
        .ok_or("rotation takes `external.strategy.copytruncate` (Filebeat's only strategy)")?;
    let serde_json::Value::Object(sm) = strategy else {
        return Err("rotation.external.strategy must be a map".into());
    };
    if let Some(k) = sm.keys().find(|k| *k != "copytruncate") {
        return Err(format!(
            "unknown rotation strategy `{k}`; only copytruncate exists"
        ));
    }
    let Some(ct) = sm.get("copytruncate") else {
        return Ok(None);
    };
    let field = |k: &str| ct.get(k).and_then(|s| s.as_str()).filter(|s| !s.is_empty());
    if let serde_json::Value::Object(cm) = ct
        && let Some(k) = cm
            .keys()
            .find(|k| *k != "suffix_regex" && *k != "dateformat")
    {
        return Err(format!(
            "unknown rotation.external.strategy.copytruncate setting `{k}`; use suffix_regex or dateformat"
        ));
    }
    let re = match (field("suffix_regex"), field("dateformat")) {
        (Some(r), _) => r.to_owned(),
        (None, Some(d)) => format!("{}$", go_layout_regex(d)),
        (None, None) => r"\.\d+$".to_owned(),
    };
    regex::Regex::new(&re).map_err(|e| format!("invalid copytruncate suffix_regex {re:?}: {e}"))?;
    Ok(Some(re))
}

/// A regular expression matching what the Go time layout `layout` prints (digits for the
/// date and time fields, everything else literally).
fn go_layout_regex(layout: &str) -> String {
    const FIELDS: &[(&str, &str)] = &[
        ("2006", r"\d{4}"),
        ("01", r"\d{2}"),
        ("02", r"\d{2}"),
        ("15", r"\d{2}"),
        ("04", r"\d{2}"),
        ("05", r"\d{2}"),
        ("06", r"\d{2}"),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (f, re) in FIELDS {
            if let Some(r) = rest.strip_prefix(f) {
                out.push_str(re);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push_str(&regex::escape(&c.to_string()));
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_identity_and_rotation_settings() {
        assert_eq!(file_identity(None), Ok(FileIdentity::Native));
        assert_eq!(
            file_identity(Some(&json!({"path": null}))),
            Ok(FileIdentity::Path)
        );
        assert_eq!(
            file_identity(Some(&json!({"inode_marker": {"path": "/logs/.m"}}))),
            Ok(FileIdentity::InodeMarker("/logs/.m".into()))
        );
        assert!(file_identity(Some(&json!({"inode_marker": {}}))).is_err());
        assert!(file_identity(Some(&json!({"native": null, "path": null}))).is_err());
        assert!(file_identity(Some(&json!({"inode": null}))).is_err());
        let ct = |v| copytruncate_suffix(Some(&v));
        assert_eq!(
            ct(json!({"external": {"strategy": {"copytruncate": null}}})),
            Ok(Some(r"\.\d+$".into()))
        );
        assert_eq!(
            ct(json!({"external": {"strategy": {"copytruncate": {"dateformat": "-20060102"}}}})),
            Ok(Some(r"\-\d{4}\d{2}\d{2}$".into()))
        );
        let re = regex::Regex::new(
            &ct(json!({"external": {"strategy": {"copytruncate": {"dateformat": "-20060102"}}}}))
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert!(re.is_match("/l/app.log-20240131"));
        assert!(!re.is_match("/l/app.log"));
        assert!(ct(json!({"external": {"strategy": {"rename": {}}}})).is_err());
        assert!(
            ct(json!({"external": {"strategy": {"copytruncate": {"suffix_regex": "("}}}})).is_err()
        );
        assert!(ct(json!({"external": {"strategy": {"copytruncate": {"suffix": "x"}}}})).is_err());
        assert_eq!(copytruncate_suffix(None), Ok(None));
    }
}
