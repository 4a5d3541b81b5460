//! [`ParserChain`]: the `parsers:` list, built from configuration and run in order.

use std::time::Instant;

use skiff_config::{ConfigError, ConfigErrors, Node, NodeValue};
use skiff_pipeline::BuildContext;

use crate::{ContainerParser, Message, MultilineParser, NdjsonParser, Parser};

/// Parser names skiff knows, for "did you mean".
const KNOWN: &[&str] = &["multiline", "ndjson", "container"];
/// Filebeat parsers skiff does not have yet: a clear error rather than "unknown".
const NOT_YET: &[&str] = &["syslog", "include_message", "split"];

/// The parsers of one input, in configuration order. The output of each is the input of the
/// next; an empty chain passes messages through unchanged.
pub struct ParserChain {
    stages: Vec<Box<dyn Parser>>,
    /// Scratch buffers reused between calls, so feeding a line allocates nothing here.
    a: Vec<Message>,
    b: Vec<Message>,
}

impl std::fmt::Debug for ParserChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParserChain")
            .field("stages", &self.stages.len())
            .finish()
    }
}

impl ParserChain {
    /// Builds the chain from the `parsers:` node (a list of one-key maps, as in Filebeat's
    /// filestream). `None` or an empty value is an empty chain. `message_max_bytes` caps joined
    /// messages (multiline, partial container lines). Every problem is reported, each with its
    /// key path.
    pub fn build(
        parsers: Option<&Node>,
        _ctx: &BuildContext,
        message_max_bytes: usize,
    ) -> Result<ParserChain, ConfigErrors> {
        let mut chain = ParserChain::from_stages(Vec::new());
        let Some(node) = parsers else {
            return Ok(chain);
        };
        let items = match &node.value {
            NodeValue::Null => return Ok(chain),
            NodeValue::Seq(items) => items,
            other => {
                return Err(ConfigError::new(
                    node.path.clone(),
                    node.mark.clone(),
                    format!(
                        "expected a list of parsers, found {}; write e.g. `parsers: [{{ndjson: {{target: \"\"}}}}]` or one `- multiline: ...` line per parser",
                        other.describe()
                    ),
                )
                .into());
            }
        };
        let mut errors = Vec::new();
        for item in items {
            let entries = match &item.value {
                NodeValue::Map(entries) if entries.len() == 1 => entries,
                other => {
                    errors.push(ConfigError::new(
                        item.path.clone(),
                        item.mark.clone(),
                        format!(
                            "each parser is a map with exactly one key naming it (`multiline`, `ndjson` or `container`), found {}",
                            match other {
                                NodeValue::Map(e) => format!("a map with {} keys", e.len()),
                                v => v.describe(),
                            }
                        ),
                    ));
                    continue;
                }
            };
            let (name, cfg) = &entries[0];
            let built: Result<Box<dyn Parser>, ConfigErrors> = match name.as_str() {
                "multiline" => MultilineParser::from_node(cfg, message_max_bytes)
                    .map(|p| Box::new(p) as Box<dyn Parser>),
                "ndjson" => NdjsonParser::from_node(cfg).map(|p| Box::new(p) as Box<dyn Parser>),
                "container" => ContainerParser::from_node(cfg, message_max_bytes)
                    .map(|p| Box::new(p) as Box<dyn Parser>),
                other if NOT_YET.contains(&other) => Err(ConfigError::new(
                    cfg.path.clone(),
                    cfg.mark.clone(),
                    format!("the `{other}` parser is not supported by skiff yet; use a processor instead"),
                )
                .into()),
                other => Err(ConfigError::new(
                    cfg.path.clone(),
                    cfg.mark.clone(),
                    format!("unknown parser `{other}`; skiff has `multiline`, `ndjson` and `container`"),
                )
                .with_suggestion(skiff_config::suggest(other, KNOWN))
                .into()),
            };
            match built {
                Ok(p) => chain.stages.push(p),
                Err(e) => errors.extend(e),
            }
        }
        ConfigErrors(errors).into_result()?;
        Ok(chain)
    }

    /// A chain of already-built parsers (tests, inputs with fixed parsing).
    pub fn from_stages(stages: Vec<Box<dyn Parser>>) -> Self {
        ParserChain {
            stages,
            a: Vec::new(),
            b: Vec::new(),
        }
    }

    /// True when there is no parser: messages pass through unchanged.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Number of parsers.
    pub fn len(&self) -> usize {
        self.stages.len()
    }

    /// Runs `cur` (output of stage `from - 1`) through stages `from..`, appending to `out`.
    fn run_from(&mut self, from: usize, mut cur: Vec<Message>, out: &mut Vec<Message>) {
        let mut next = std::mem::take(&mut self.b);
        for stage in &mut self.stages[from..] {
            if cur.is_empty() {
                break;
            }
            next.clear();
            for m in cur.drain(..) {
                stage.feed(m, &mut next);
            }
            std::mem::swap(&mut cur, &mut next);
        }
        out.append(&mut cur);
        self.a = cur;
        self.b = next;
    }

    /// Lets every stage emit with `f` (a flush), each stage's output going through the stages
    /// after it.
    fn drain_with(
        &mut self,
        out: &mut Vec<Message>,
        mut f: impl FnMut(&mut dyn Parser, &mut Vec<Message>),
    ) {
        for i in 0..self.stages.len() {
            let mut cur = std::mem::take(&mut self.a);
            cur.clear();
            f(self.stages[i].as_mut(), &mut cur);
            if cur.is_empty() {
                self.a = cur;
                continue;
            }
            self.run_from(i + 1, cur, out);
        }
    }
}

impl Parser for ParserChain {
    fn feed(&mut self, msg: Message, out: &mut Vec<Message>) {
        if self.stages.is_empty() {
            out.push(msg);
            return;
        }
        let mut cur = std::mem::take(&mut self.a);
        cur.clear();
        cur.push(msg);
        self.run_from(0, cur, out);
    }

    fn deadline(&self) -> Option<Instant> {
        self.stages.iter().filter_map(|s| s.deadline()).min()
    }

    fn flush_expired(&mut self, now: Instant, out: &mut Vec<Message>) {
        self.drain_with(out, |s, o| s.flush_expired(now, o));
    }

    fn finish(&mut self, out: &mut Vec<Message>) {
        self.drain_with(out, |s, o| s.finish(o));
    }

    fn has_pending(&self) -> bool {
        self.stages.iter().any(|s| s.has_pending())
    }

    fn pending_bytes(&self) -> usize {
        self.stages.iter().map(|s| s.pending_bytes()).sum()
    }
}
