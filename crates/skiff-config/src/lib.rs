//! Beats-layout YAML configuration for skiff, with located, helpful
//! validation: tolerant where Filebeat is, and loud about it.
//!
//! # What this crate does
//!
//! A skiff configuration is a `filebeat.yml`: YAML in the Beats layout,
//! read from one or more `-c` files (or an embedded default), with `-E
//! key=value` overrides on the command line and `${VAR}` references. This
//! crate turns all of that into one [`Node`] tree and then into the typed
//! structs of each component through serde ([`Node::deserialize`]):
//!
//! ```text
//! files ──parse──▶ raw tree ──normalise──▶ Node ──merge files, -E──▶ ──${…}──▶ Node ──serde──▶ T
//! ```
//!
//! # Why it is built this way
//!
//! **Every value keeps its origin.** Config mistakes are the most common
//! support problem of a log shipper, and "invalid type: string, expected
//! u16" is a useless answer. So every [`Node`] carries a [`Mark`] (file,
//! line, column) and its full key path, and the serde `Deserializer` in
//! this crate reports errors as
//! `filebeat.yml:12:5: output.file.pth: unknown key `pth` (did you mean `path`?)`.
//! serde creates errors without knowing where they happen; our deserializer
//! locates each error at the innermost node on the way out, and turns
//! serde's type names into plain words.
//!
//! **Match libbeat, not YAML purity.** Users move configs over from Beats,
//! so the semantics are go-ucfg's: dotted keys and nested maps are the same
//! thing and merge deeply; `${VAR:default}` works anywhere a string does and
//! re-types the result (`port: ${PORT:5066}` is a number); strings are
//! coerced to numbers and bools when a struct asks for one; several files
//! merge in order with maps merged and lists replaced; `-E` wins over
//! files. Setting the same key twice in one file is an error, because in
//! Beats it silently loses one of them.
//!
//! **An event parser, not a YAML DOM.** We drive `yaml-rust2`'s marked event
//! parser directly (`serde_yaml` is unmaintained). That gives a position for
//! every value and lets us bound what a hostile document can make us do:
//! nesting deeper than [`MAX_DEPTH`], more than [`MAX_ALIAS_NODES`] values
//! copied by aliases (the "billion laughs" attack), or more than
//! [`MAX_INPUT_BYTES`] of text are refused with a clear error, and nothing
//! here panics on input.
//!
//! **Many errors at once.** Parsing, normalising, `-E` and `${…}` expansion
//! collect every problem into [`ConfigErrors`], so `skiff test config` can
//! list them all in one run. serde stops at the first error, so
//! [`Node::deserialize`] takes the offending value out of a copy and reads it
//! again until it has seen every problem of the node; the first is returned,
//! the rest go to the [`diag`] collector.
//!
//! **Tolerant where Filebeat is.** Filebeat ignores unknown keys; a typo then
//! goes unnoticed. skiff makes them warnings with a suggestion (`--strict`
//! makes them errors), reads a single value where a list is expected as a
//! list of one, and leaves `${data.*}` (autodiscover templates) alone.
//!
//! # Modules
//!
//! - `node`: [`Node`], [`NodeValue`], [`Mark`] and path helpers.
//! - `parse`: YAML events to a raw tree, with the limits above.
//! - `normalize`: dotted keys to nested maps, duplicate detection, [`merge`].
//! - `env`: `${…}` expansion ([`expand_env`]).
//! - `load`: files + default + `-E` ([`load`], [`parse_str`]).
//! - `de`: the serde `Deserializer` over `&Node` and its error type.
//! - `units`: [`Duration`] and [`ByteSize`].
//! - `suggest`: "did you mean" ([`suggest`]).
//! - `secrets`: [`mask_secrets`] for export.
//! - `diag`: warnings (unknown keys, which Filebeat ignores) and the problems
//!   beyond the first one, collected per thread ([`collect`]).

mod de;
pub mod diag;
mod env;
mod error;
mod load;
mod node;
mod normalize;
mod parse;
mod secrets;
mod suggest;
mod units;

pub use de::MAX_PROBLEMS;
pub use diag::{Diagnostics, collect};
pub use env::expand_env;
pub use error::{ConfigError, ConfigErrors};
pub use load::{LoadOptions, load, parse_list_str, parse_str};
pub use node::{Mark, Node, NodeValue};
pub use normalize::merge;
pub use parse::{MAX_ALIAS_NODES, MAX_DEPTH, MAX_INPUT_BYTES};
pub use secrets::{MASK, is_secret_key, mask_secrets};
pub use suggest::suggest;
pub use units::{ByteSize, Duration};
pub use units::{millis, seconds};
