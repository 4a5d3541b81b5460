//! The serde error type used while deserializing a [`Node`](crate::Node):
//! plain-words messages, located at the innermost node that failed.

use std::fmt;

use serde::de::{self, Expected, Unexpected};

use crate::error::ConfigError;
use crate::node::{Mark, join_path};
use crate::suggest::suggest;

/// A [`ConfigError`] under construction. serde creates errors without
/// knowing where they happen; the deserializer fills in the path and mark
/// of the innermost node on the way out ([`DeError::locate`]).
#[derive(Debug)]
pub(crate) struct DeError {
    pub(crate) inner: Box<ConfigError>,
    located: bool,
    /// For `missing_field`: the key that is missing below the node that
    /// locates this error.
    child_key: Option<String>,
    /// For `unknown_field`: the key (Filebeat ignores unknown keys, so this
    /// one may become a warning).
    pub(crate) unknown_key: Option<String>,
}

impl DeError {
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        DeError {
            inner: Box::new(ConfigError::new("", Mark::none(), message)),
            located: false,
            child_key: None,
            unknown_key: None,
        }
    }

    /// Set path and mark unless a deeper node already did.
    pub(crate) fn locate(mut self, path: &str, mark: &Mark) -> Self {
        if !self.located {
            self.inner.path = match self.child_key.take() {
                Some(k) => join_path(path, &k),
                None => path.to_string(),
            };
            self.inner.mark = mark.clone();
            self.located = true;
            // Never echo a secret's value back (it may end up in a log or a ticket).
            let key = self.inner.path.rsplit('.').next().unwrap_or("");
            if crate::secrets::is_secret_key(key) && self.inner.message.contains('"') {
                self.inner.message = "invalid value (not shown: this key holds a secret)".into();
            }
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::msg(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        DeError::msg(format!(
            "expected {}, found {}",
            expected_words(exp),
            unexpected_words(&unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        DeError::msg(format!(
            "{} is not a valid value here; expected {}",
            unexpected_words(&unexp),
            expected_words(exp)
        ))
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        DeError::msg(format!(
            "expected {}, found a list of {len} item{}",
            expected_words(exp),
            if len == 1 { "" } else { "s" }
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::msg(format!(
            "unknown value `{variant}`; expected {}",
            one_of(expected)
        ));
        e.inner.suggestion = suggest(variant, expected);
        e
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let suggestion = suggest(field, expected);
        let mut message = format!("unknown key `{field}`");
        if expected.is_empty() {
            message.push_str("; no keys are allowed here");
        } else if suggestion.is_none() && expected.len() <= 16 {
            message.push_str(&format!("; known keys: {}", list(expected)));
        }
        let mut e = DeError::msg(message);
        e.inner.suggestion = suggestion;
        e.unknown_key = Some(field.to_string());
        e
    }

    fn missing_field(field: &'static str) -> Self {
        let mut e = DeError::msg(format!("missing required key `{field}`"));
        e.child_key = Some(field.to_string());
        e
    }

    fn duplicate_field(field: &'static str) -> Self {
        DeError::msg(format!("key `{field}` is set twice"))
    }
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_of(names: &[&str]) -> String {
    match names {
        [] => "nothing".to_string(),
        [one] => format!("`{one}`"),
        _ => format!("one of {}", list(names)),
    }
}

/// serde's "expected" text in plain words.
pub(crate) fn expected_words(exp: &dyn Expected) -> String {
    let text = exp.to_string();
    match text.as_str() {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" | "f32" | "f64" => "a number".to_string(),
        "a boolean" => "`true` or `false`".to_string(),
        "a string" | "a borrowed string" | "string" => "a string".to_string(),
        "a sequence" => "a list".to_string(),
        "a map" => "a map".to_string(),
        "unit" => "an empty value".to_string(),
        "a character" | "char" => "a single character".to_string(),
        t if t.starts_with("struct ") => "a map of settings".to_string(),
        t if t.starts_with("a tuple of size ") => {
            format!("a list of {} items", &t["a tuple of size ".len()..])
        }
        t if t.starts_with("tuple struct ") || t.starts_with("a tuple") => "a list".to_string(),
        t if t.starts_with("enum ") => "one of the allowed values".to_string(),
        t if t.starts_with("variant identifier") => "a known value".to_string(),
        t if t.starts_with("field identifier") => "a known key".to_string(),
        _ => text,
    }
}

/// serde's "unexpected" value in plain words.
pub(crate) fn unexpected_words(u: &Unexpected<'_>) -> String {
    match u {
        Unexpected::Bool(b) => format!("the boolean `{b}`"),
        Unexpected::Unsigned(n) => format!("the number {n}"),
        Unexpected::Signed(n) => format!("the number {n}"),
        Unexpected::Float(n) => format!("the number {n}"),
        Unexpected::Char(c) => format!("the character {c:?}"),
        Unexpected::Str(s) => format!("the string {s:?}"),
        Unexpected::Bytes(_) => "bytes".to_string(),
        Unexpected::Unit => "an empty value".to_string(),
        Unexpected::Option => "an optional value".to_string(),
        Unexpected::NewtypeStruct => "a value".to_string(),
        Unexpected::Seq => "a list".to_string(),
        Unexpected::Map => "a map".to_string(),
        Unexpected::Enum => "an enum".to_string(),
        Unexpected::UnitVariant => "a unit variant".to_string(),
        Unexpected::NewtypeVariant => "a newtype variant".to_string(),
        Unexpected::TupleVariant => "a tuple variant".to_string(),
        Unexpected::StructVariant => "a struct variant".to_string(),
        Unexpected::Other(o) => o.to_string(),
    }
}
