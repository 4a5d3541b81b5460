//! `dissect`: splits a string field into keys by a pattern of delimiters (libbeat's dissect).
//!
//! ```yaml
//! - dissect:
//!     tokenizer: '"%{service.pid|integer} - %{service.name} - %{service.status}"'
//!     field: message          # default
//!     target_prefix: ""       # default `dissect`; "" writes at the root
//! ```
//!
//! As libbeat's: a text that does not match leaves the event as it was and flags it with
//! `log.flags: [dissect_parsing_error]` (also with `ignore_failure`, which only keeps
//! `error.message` quiet). A key that already exists is an error that undoes the processor's
//! changes, unless `overwrite_keys`. A missing or non-string `field` is an error. Where libbeat
//! stops the processor chain on an error, skiff records it in `error.message` and goes on, as
//! every skiff processor does (see the crate doc).
//!
//! Differences, on purpose: `trim_values` applies also when a key converts its type (libbeat
//! forgets it there), and `->` skips whole repeats of a multi-character delimiter.

mod pattern;

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::Event;
use skiff_pipeline::{BuildContext, Processor, Verdict};

pub use pattern::{DataType, MatchError, Pattern, PatternError, Trim};

use crate::{add_tag, error_at, plugin, set_error};

plugin!(DISSECT, "dissect", build);

/// `trim_values`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TrimMode {
    #[default]
    None,
    Left,
    Right,
    All,
}

/// `dissect`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `tokenizer`: the pattern. Required.
    tokenizer: String,
    /// `field`: the string field to split. Default `message`.
    #[serde(default = "message")]
    field: String,
    /// `target_prefix`: where the keys go. Default `dissect`; `""` is the event's root.
    #[serde(default = "dissect")]
    target_prefix: String,
    /// `ignore_failure`: no `error.message` when the text does not match. Default false.
    #[serde(default)]
    ignore_failure: bool,
    /// `overwrite_keys`: replace keys that exist. Default false (an existing key is an error).
    #[serde(default)]
    overwrite_keys: bool,
    /// `trim_values`: none, left, right or all. Default none.
    #[serde(default)]
    trim_values: TrimMode,
    /// `trim_chars`: the characters `trim_values` removes. Default `" "`.
    #[serde(default = "space")]
    trim_chars: String,
}

fn message() -> String {
    "message".into()
}
fn dissect() -> String {
    "dissect".into()
}
fn space() -> String {
    " ".into()
}

struct Dissect {
    pattern: Pattern,
    trim: Trim,
    field: String,
    prefix: String,
    ignore_failure: bool,
    overwrite_keys: bool,
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    let pattern = Pattern::parse(&cfg.tokenizer)
        .map_err(|e| error_at(node.get("tokenizer").unwrap_or(node), e.0))?;
    let (left, right) = match cfg.trim_values {
        TrimMode::None => (false, false),
        TrimMode::Left => (true, false),
        TrimMode::Right => (false, true),
        TrimMode::All => (true, true),
    };
    Ok(Box::new(Dissect {
        pattern,
        trim: Trim {
            left,
            right,
            chars: cfg.trim_chars.chars().collect(),
        },
        field: cfg.field,
        prefix: if cfg.target_prefix.is_empty() {
            String::new()
        } else {
            format!("{}.", cfg.target_prefix)
        },
        ignore_failure: cfg.ignore_failure,
        overwrite_keys: cfg.overwrite_keys,
    }))
}

impl Processor for Dissect {
    fn process(&self, event: &mut Event) -> Verdict {
        let found = match event.get(&self.field) {
            None => Err(format!("dissect: no field `{}`", self.field)),
            Some(f) => match f.as_str() {
                Some(s) => Ok(self.pattern.dissect(s, &self.trim)),
                None => Err(format!("dissect: field `{}` is not a string", self.field)),
            },
        };
        let pairs = match found {
            Err(msg) => {
                set_error(event, msg);
                return Verdict::Keep;
            }
            Ok(Err(MatchError(why))) => {
                add_tag(event, "log.flags", "dissect_parsing_error");
                if !self.ignore_failure {
                    set_error(event, format!("dissect: {why}"));
                }
                return Verdict::Keep;
            }
            Ok(Ok(pairs)) => pairs,
        };
        let keys: Vec<String> = pairs
            .iter()
            .map(|(k, _)| format!("{}{k}", self.prefix))
            .collect();
        if !self.overwrite_keys
            && let Some(k) = keys.iter().find(|k| event.get(k).is_some())
        {
            set_error(
                event,
                format!("dissect: cannot override existing key `{k}`"),
            );
            return Verdict::Keep;
        }
        for (key, (_, value)) in keys.iter().zip(pairs) {
            if self.overwrite_keys {
                event.remove(key);
            }
            event.insert(key, value);
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests;
