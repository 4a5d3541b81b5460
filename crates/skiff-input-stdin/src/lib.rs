//! The `stdin` input: one event per line of standard input, as Filebeat's `type: stdin`.
//!
//! It is the first stage of the pipeline (**input** -> processors -> queue -> output) for data
//! piped into skiff (`tail -F app.log | skiff -c pipe.yml`), and the input of the throughput
//! benchmarks, so it is written to cost one `String` allocation per line and nothing else:
//! lines are cut with `memchr` straight out of a large read buffer.
//!
//! Behaviour, as Filebeat's stdin (a log harvester over standard input):
//!
//! * lines end with `\n`; a `\r` before it is removed; the last line is published at end of
//!   input even without a newline; empty lines are skipped;
//! * bytes are decoded as UTF-8, invalid sequences become U+FFFD;
//! * a line longer than `max_bytes` (alias `message_max_bytes`, default 10 MiB) is cut to that
//!   many bytes (at a character boundary) and flagged `log.flags: ["truncated"]`; the rest of the
//!   line is read and dropped as it streams by, never held in memory;
//! * `parsers` (`ndjson`, `multiline`, `container`) as in filestream, see `skiff_parsers`; the
//!   `log`-input style `json.*` and `multiline.*` keys of older Filebeat configurations are
//!   turned into an `ndjson` and a `multiline` parser run first (JSON, then multiline, as the
//!   `log` input does); `include_lines` / `exclude_lines` (regular expressions) keep or drop
//!   messages after the parsers;
//! * each event carries `log.offset` (the line's first byte in the stream) and an
//!   acknowledgement token of one [`AckStream`](skiff_event::AckStream) positioned just past the
//!   line. There is nothing to commit for a pipe; the stream shows progress in the status board;
//! * at end of input the input returns: skiff then sends what is queued and exits.

mod readahead;
mod reader;

use std::sync::Arc;

use async_trait::async_trait;
use regex::RegexSet;
use serde::Deserialize;
use skiff_config::{ByteSize, ConfigError, ConfigErrors, Node};
use skiff_config::{Mark, NodeValue};
use skiff_parsers::ParserChain;
use skiff_pipeline::{BuildContext, Failure, Input, InputCommon, InputContext, InputPlugin};
use tokio::io::{AsyncBufRead, AsyncRead, BufReader};

pub use reader::Stats;

/// `type: stdin`.
pub static PLUGIN: InputPlugin = InputPlugin {
    name: "stdin",
    agent_type: "filebeat",
    build,
};

/// The default line limit: 10 MiB, as Filebeat.
pub const DEFAULT_MAX_BYTES: u64 = 10 << 20;

/// The input's own settings (the common ones, `fields`, `tags`, ..., are handled by the binary).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// `max_bytes` (or `message_max_bytes`, filestream's name): the longest message kept; longer
    /// lines are truncated and flagged. Default 10 MiB.
    #[serde(default = "default_max_bytes", alias = "message_max_bytes")]
    pub max_bytes: ByteSize,
    /// `encoding`: only `utf-8` (also `utf8`, `plain`) for now. Default `utf-8`.
    #[serde(default)]
    pub encoding: Option<String>,
}

fn default_max_bytes() -> ByteSize {
    ByteSize(DEFAULT_MAX_BYTES)
}

/// A built stdin input.
pub struct Stdin {
    max_bytes: usize,
    parsers: ParserChain,
    /// `include_lines`: keep only messages matching one of these.
    include: Option<RegexSet>,
    /// `exclude_lines`: drop messages matching one of these.
    exclude: Option<RegexSet>,
    /// Read buffer size (tests make it tiny to cross buffer boundaries).
    buffer: usize,
}

impl std::fmt::Debug for Stdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stdin")
            .field("max_bytes", &self.max_bytes)
            .field("parsers", &self.parsers)
            .finish()
    }
}

/// Builds a stdin input from its settings.
pub fn build(
    node: &Node,
    _common: &InputCommon,
    ctx: &BuildContext,
) -> Result<Box<dyn Input>, ConfigErrors> {
    Ok(Box::new(Stdin::from_node(node, ctx)?))
}

impl Stdin {
    /// Validates the settings (`node`: the input's map, common keys removed).
    pub fn from_node(node: &Node, ctx: &BuildContext) -> Result<Self, ConfigErrors> {
        let mut own = node.clone();
        let parsers_node = legacy_parsers(&mut own);
        let include = own.remove("include_lines");
        let exclude = own.remove("exclude_lines");
        let cfg: StdinConfig = own.deserialize()?;
        let mut errors = Vec::new();
        if let Some(enc) = &cfg.encoding
            && !matches!(
                enc.to_ascii_lowercase().as_str(),
                "utf-8" | "utf8" | "plain"
            )
        {
            let at = node.get("encoding").unwrap_or(node);
            errors.push(ConfigError::new(
                at.path.clone(),
                at.mark.clone(),
                format!("encoding `{enc}` is not supported yet by the stdin input: use `utf-8` (convert with `iconv -f {enc} -t utf-8`)"),
            ));
        }
        let max_bytes = match usize::try_from(cfg.max_bytes.0) {
            Ok(0) | Err(_) => {
                let at = node
                    .get("max_bytes")
                    .or(node.get("message_max_bytes"))
                    .unwrap_or(node);
                errors.push(ConfigError::new(
                    at.path.clone(),
                    at.mark.clone(),
                    format!(
                        "{} is out of range: give a size of at least 1 byte, like `10MiB`",
                        cfg.max_bytes.0
                    ),
                ));
                1
            }
            Ok(n) => n,
        };
        let include = lines_filter(include.as_ref(), &mut errors);
        let exclude = lines_filter(exclude.as_ref(), &mut errors);
        let parsers = match ParserChain::build(parsers_node.as_ref(), ctx, max_bytes) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        match (parsers, errors.is_empty()) {
            (Some(parsers), true) => Ok(Stdin {
                max_bytes,
                parsers,
                include,
                exclude,
                buffer: reader::DEFAULT_BUFFER,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// The same input reading with a buffer of `bytes` (at least 1): for tests that need lines
    /// to cross read boundaries.
    pub fn with_buffer_size(mut self, bytes: usize) -> Self {
        self.buffer = bytes.max(1);
        self
    }

    /// Reads lines from `source` until it ends or `ctx.shutdown` is cancelled, publishing one
    /// event per line. Standard input in production; any byte source in tests and benchmarks.
    pub async fn run_with<R: AsyncRead + Unpin + Send>(
        self,
        source: R,
        ctx: InputContext,
    ) -> anyhow::Result<Stats> {
        let buffer = self.buffer;
        self.run_with_buffered(BufReader::with_capacity(buffer, source), ctx)
            .await
    }

    /// Like [`run_with`](Stdin::run_with) over a source that buffers itself.
    pub async fn run_with_buffered<R: AsyncBufRead + Unpin + Send>(
        self,
        source: R,
        ctx: InputContext,
    ) -> anyhow::Result<Stats> {
        let stats = Arc::new(reader::Counters::default());
        {
            let s = stats.clone();
            ctx.build.status.register(&ctx.id, move || {
                let st = s.snapshot();
                serde_json::json!({"type": "stdin", "lines": st.lines, "bytes": st.bytes, "truncated": st.truncated})
            });
        }
        reader::read(source, self, ctx, stats).await
    }
}

impl Stdin {
    /// Whether `include_lines` / `exclude_lines` let this message through.
    pub(crate) fn keeps(&self, text: &str) -> bool {
        self.include.as_ref().is_none_or(|r| r.is_match(text))
            && self.exclude.as_ref().is_none_or(|r| !r.is_match(text))
    }
}

/// The `parsers` list, with the `log` input's `json.*` (as `ndjson`) and `multiline.*` (as
/// `multiline`) in front, in that order. Takes those keys out of `own`.
fn legacy_parsers(own: &mut Node) -> Option<Node> {
    let explicit = own.remove("parsers");
    let mut items = Vec::new();
    if let Some(mut json) = own.remove("json") {
        let under_root = match json.remove("keys_under_root").map(|n| n.value) {
            Some(NodeValue::Bool(b)) => b,
            Some(NodeValue::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        if matches!(json.value, NodeValue::Null) {
            json.value = NodeValue::Map(Vec::new());
        }
        if json.get("target").is_none() {
            let target = if under_root { "" } else { "json" };
            let mark = json.mark.clone();
            if let NodeValue::Map(entries) = &mut json.value {
                let mut t = Node::new(NodeValue::String(target.into()), mark);
                t.path = format!("{}.keys_under_root", json.path);
                entries.push(("target".into(), t));
            }
        }
        items.push(one_key("ndjson", json));
    }
    if let Some(m) = own.remove("multiline") {
        items.push(one_key("multiline", m));
    }
    if items.is_empty() {
        return explicit;
    }
    let mark = explicit
        .as_ref()
        .map(|n| n.mark.clone())
        .unwrap_or_else(Mark::none);
    if let Some(NodeValue::Seq(rest)) = explicit.map(|n| n.value) {
        items.extend(rest);
    }
    let mut list = Node::new(NodeValue::Seq(items), mark);
    list.path = own.path.clone();
    Some(list)
}

/// `{name: node}`, keeping `node`'s own key paths for error messages.
fn one_key(name: &str, node: Node) -> Node {
    let mut n = Node::new(
        NodeValue::Map(vec![(name.to_owned(), node.clone())]),
        node.mark.clone(),
    );
    n.path = node.path;
    n
}

/// `include_lines` / `exclude_lines`: a list of regular expressions.
fn lines_filter(node: Option<&Node>, errors: &mut Vec<ConfigError>) -> Option<RegexSet> {
    let node = node?;
    let patterns: Vec<String> = match node.deserialize::<Vec<String>>() {
        Ok(p) => p,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    if patterns.is_empty() {
        return None;
    }
    match RegexSet::new(&patterns) {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push(ConfigError::new(
                node.path.clone(),
                node.mark.clone(),
                format!("invalid regular expression: {e}"),
            ));
            None
        }
    }
}

#[async_trait]
impl Input for Stdin {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        let stdin = readahead::ReadAhead::spawn(std::io::stdin())
            .map_err(|e| Failure::io("cannot start the thread that reads standard input", &e))?;
        let stats = self.run_with_buffered(stdin, ctx).await?;
        tracing::info!(
            lines = stats.lines,
            bytes = stats.bytes,
            end_of_input = stats.eof,
            "stdin input finished"
        );
        Ok(())
    }
}
