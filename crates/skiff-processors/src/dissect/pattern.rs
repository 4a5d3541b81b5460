//! The dissect tokenizer: a pattern of `%{key}` fields between literal delimiters, matched left
//! to right without backtracking (Logstash's and libbeat's dissect).
//!
//! Hand-written because it is the product's core: the syntax is libbeat's and no crate
//! implements it. It runs on untrusted text, so it only slices the input at positions found by
//! `str::find` (never by arithmetic that could leave a char boundary) and allocates at most the
//! input's size per field.
//!
//! Field syntax, `%{[prefix]key[/ordinal][#length][->][|type]}`:
//! - `%{key}` a field; `%{}` skips text; `%{?key}` skips it but names it (for `&`);
//! - `%{+key}` appends to `key`, joined by the delimiter before it (a space when there is none),
//!   in the order of `/N` when given;
//! - `%{*key}` names a value, `%{&key}` stores its value under the name `*key`/`?key` matched;
//! - `->` skips repeats of the delimiter after the field (right padding);
//! - `#N` takes exactly N bytes; `|integer`, `long`, `float`, `double`, `boolean`, `ip`,
//!   `string` convert the value (a value that does not convert stays a string).

use skiff_event::Value;

/// The pattern could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

/// Why a text did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `%{key}`.
    Normal,
    /// `%{}`.
    Skip,
    /// `%{?key}`: captured for `&key`, not kept.
    NamedSkip,
    /// `%{*key}`: captured for `&key`, not kept.
    Pointer,
    /// `%{&key}`: stored under the value of `key`.
    Indirect,
    /// `%{+key}`.
    Append,
}

/// A value conversion, `|type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `integer`: 32-bit, decimal or `0x` hex.
    Integer,
    /// `long`: 64-bit, decimal or `0x` hex.
    Long,
    /// `float`: 32-bit float.
    Float,
    /// `double`.
    Double,
    /// `boolean` (Go's `strconv.ParseBool`: 1, t, true, TRUE, True, 0, f, ...).
    Boolean,
    /// `ip`: kept as a string when it is an IPv4 or IPv6 address.
    Ip,
    /// `string`.
    String,
}

impl DataType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "integer" => DataType::Integer,
            "long" => DataType::Long,
            "float" => DataType::Float,
            "double" => DataType::Double,
            "boolean" => DataType::Boolean,
            "ip" => DataType::Ip,
            "string" => DataType::String,
            _ => return None,
        })
    }

    /// Converts `s` (trailing spaces ignored); `None` when it does not convert.
    pub fn convert(self, s: &str) -> Option<Value> {
        let s = s.trim_end_matches(' ');
        use crate::convert::{parse_bool, parse_int as int};
        Some(match self {
            DataType::Integer => Value::from(i32::try_from(int(s)?).ok()?),
            DataType::Long => Value::from(int(s)?),
            DataType::Float => {
                let f = s.parse::<f32>().ok()?;
                Value::from(serde_json::Number::from_f64(f64::from(f))?)
            }
            DataType::Double => Value::from(serde_json::Number::from_f64(s.parse::<f64>().ok()?)?),
            DataType::Boolean => Value::Bool(parse_bool(s)?),
            DataType::Ip => {
                s.parse::<std::net::IpAddr>().ok()?;
                Value::String(s.to_owned())
            }
            DataType::String => Value::String(s.to_owned()),
        })
    }
}

#[derive(Debug, Clone)]
struct Field {
    kind: Kind,
    key: String,
    ordinal: u32,
    /// `#N`: a fixed length in bytes (0: up to the next delimiter).
    length: usize,
    /// `->`: skip repeats of the following delimiter.
    greedy: bool,
    data_type: Option<DataType>,
    /// What `+key` is joined with: the delimiter before it, or a space.
    join: String,
}

/// How extracted values are trimmed (`trim_values`, `trim_chars`).
#[derive(Debug, Clone, Default)]
pub struct Trim {
    /// Trim the start.
    pub left: bool,
    /// Trim the end.
    pub right: bool,
    /// The characters to trim.
    pub chars: Vec<char>,
}

impl Trim {
    fn apply<'a>(&self, mut s: &'a str) -> &'a str {
        if self.left {
            s = s.trim_start_matches(self.chars.as_slice());
        }
        if self.right {
            s = s.trim_end_matches(self.chars.as_slice());
        }
        s
    }
}

/// A compiled tokenizer.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// `delimiters[i]` comes before `fields[i]`; there may be one more after the last field.
    delimiters: Vec<String>,
    fields: Vec<Field>,
    /// Indexes of `fields` in the order their values are applied (by ordinal, stable).
    apply_order: Vec<usize>,
    /// Whether any field converts its value.
    converts: bool,
}

impl Pattern {
    /// Compiles a tokenizer such as `%{ts} [%{level}] %{msg}`.
    pub fn parse(tokenizer: &str) -> Result<Self, PatternError> {
        let mut delimiters = Vec::new();
        let mut fields: Vec<Field> = Vec::new();
        let mut rest = tokenizer;
        while let Some(open) = rest.find("%{") {
            let Some(close) = rest[open + 2..].find('}') else {
                break;
            };
            let delim = &rest[..open];
            let raw = &rest[open + 2..open + 2 + close];
            fields.push(parse_field(raw, delim)?);
            delimiters.push(delim.to_owned());
            rest = &rest[open + 2 + close + 1..];
        }
        if fields.is_empty() {
            return Err(PatternError(format!(
                "`{tokenizer}` has no `%{{key}}` field; a tokenizer looks like `%{{key1}} - %{{key2}}`"
            )));
        }
        if !rest.is_empty() {
            delimiters.push(rest.to_owned());
        }
        for f in &fields {
            if f.kind == Kind::Indirect
                && !fields.iter().any(|g| {
                    g.key == f.key
                        && matches!(g.kind, Kind::NamedSkip | Kind::Pointer | Kind::Normal)
                })
            {
                return Err(PatternError(format!(
                    "`%{{&{0}}}` needs a field naming the key, like `%{{?{0}}}` or `%{{*{0}}}`",
                    f.key
                )));
            }
        }
        let mut apply_order: Vec<usize> = (0..fields.len()).collect();
        apply_order.sort_by_key(|&i| fields[i].ordinal);
        let converts = fields.iter().any(|f| f.data_type.is_some());
        Ok(Pattern {
            delimiters,
            fields,
            apply_order,
            converts,
        })
    }

    /// Matches `s`, returning the keys and values in the tokenizer's order.
    pub fn dissect(&self, s: &str, trim: &Trim) -> Result<Vec<(String, Value)>, MatchError> {
        if s.is_empty() {
            return Err(MatchError("empty string provided".into()));
        }
        let spans = self.extract(s)?;
        let mut m: Vec<(String, String)> = Vec::with_capacity(self.fields.len());
        let mut types: Vec<(String, DataType)> = Vec::new();
        for &i in &self.apply_order {
            let f = &self.fields[i];
            let (a, b) = spans[i];
            let v = trim.apply(&s[a..b]);
            match f.kind {
                Kind::Skip => {}
                Kind::Normal | Kind::NamedSkip | Kind::Pointer => {
                    set(&mut m, &f.key, v.to_owned());
                    if let Some(t) = f.data_type {
                        types.push((f.key.clone(), t));
                    }
                }
                Kind::Append => match m.iter_mut().find(|(k, _)| *k == f.key) {
                    Some((_, old)) => {
                        old.push_str(&f.join);
                        old.push_str(v);
                    }
                    None => m.push((f.key.clone(), v.to_owned())),
                },
                Kind::Indirect => {
                    if let Some(name) = m.iter().find(|(k, _)| *k == f.key).map(|(_, v)| v.clone())
                    {
                        if let Some(t) = f.data_type {
                            types.push((name.clone(), t));
                        }
                        set(&mut m, &name, v.to_owned());
                    }
                }
            }
        }
        // Reference fields only serve `&key`.
        for f in &self.fields {
            if matches!(f.kind, Kind::NamedSkip | Kind::Pointer) {
                m.retain(|(k, _)| *k != f.key);
            }
        }
        Ok(m.into_iter()
            .map(|(k, v)| {
                let value = if self.converts {
                    types
                        .iter()
                        .rev()
                        .find(|(tk, _)| *tk == k)
                        .and_then(|(_, t)| t.convert(&v))
                        .unwrap_or(Value::String(v))
                } else {
                    Value::String(v)
                };
                (k, value)
            })
            .collect())
    }

    /// The byte span of each field in `s`.
    fn extract(&self, s: &str) -> Result<Vec<(usize, usize)>, MatchError> {
        let mut spans = vec![(0usize, 0usize); self.fields.len()];
        let first = &self.delimiters[0];
        if !s.starts_with(first.as_str()) {
            return Err(MatchError(format!(
                "could not find beginning delimiter `{first}` in `{}`",
                excerpt(s, 0)
            )));
        }
        let mut offset = first.len();
        let mut i = 0;
        while i + 1 < self.delimiters.len() {
            let field = &self.fields[i];
            let next = &self.delimiters[i + 1];
            let start = offset;
            let end = if field.length > 0 {
                let end = offset.saturating_add(field.length);
                if end > s.len() || !s.is_char_boundary(end) {
                    return Err(MatchError(format!(
                        "field `{}` is {} bytes long, but `{}` remains",
                        field.key,
                        field.length,
                        excerpt(s, offset)
                    )));
                }
                end
            } else {
                match s[offset..].find(next.as_str()) {
                    Some(p) => offset + p,
                    None => {
                        return Err(MatchError(format!(
                            "could not find delimiter `{next}` in `{}`",
                            excerpt(s, offset)
                        )));
                    }
                }
            };
            if !s[end..].starts_with(next.as_str()) {
                return Err(MatchError(format!(
                    "could not find delimiter `{next}` after field `{}` in `{}`",
                    field.key,
                    excerpt(s, offset)
                )));
            }
            offset = end + next.len();
            if field.greedy && !next.is_empty() {
                while s[offset..].starts_with(next.as_str()) {
                    offset += next.len();
                }
            }
            spans[i] = (start, end);
            i += 1;
        }
        if let Some(field) = self.fields.get(i) {
            // The last field takes the rest of the text (there is no trailing delimiter).
            if field.length > 0 && offset.saturating_add(field.length) != s.len() {
                return Err(MatchError(format!(
                    "last field `{}` is {} bytes long, but `{}` remains",
                    field.key,
                    field.length,
                    excerpt(s, offset)
                )));
            }
            spans[i] = (offset, s.len());
        }
        Ok(spans)
    }
}

fn set(m: &mut Vec<(String, String)>, key: &str, v: String) {
    match m.iter_mut().find(|(k, _)| k == key) {
        Some((_, old)) => *old = v,
        None => m.push((key.to_owned(), v)),
    }
}

/// At most 120 characters of `s` from `from`, for error messages.
fn excerpt(s: &str, from: usize) -> &str {
    let rest = s.get(from..).unwrap_or("");
    match rest.char_indices().nth(120) {
        Some((i, _)) => &rest[..i],
        None => rest,
    }
}

fn parse_field(raw: &str, delim: &str) -> Result<Field, PatternError> {
    let bad = |why: &str| PatternError(format!("`%{{{raw}}}`: {why}"));
    let mut field = Field {
        kind: Kind::Skip,
        key: String::new(),
        ordinal: 0,
        length: 0,
        greedy: false,
        data_type: None,
        join: if delim.is_empty() {
            " ".into()
        } else {
            delim.to_owned()
        },
    };
    if raw.is_empty() {
        return Ok(field);
    }
    let mut rest = raw;
    if let Some((k, t)) = rest.rsplit_once('|') {
        if t.is_empty() {
            return Err(bad("a type is missing after `|`"));
        }
        field.data_type = Some(DataType::parse(t).ok_or_else(|| {
            bad("unknown type; use integer, long, float, double, boolean, ip or string")
        })?);
        rest = k;
    }
    if let Some(k) = rest.strip_suffix("->") {
        field.greedy = true;
        rest = k;
    }
    if let Some((k, n)) = rest.rsplit_once('#')
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        field.length = n.parse().map_err(|_| bad("the length is too large"))?;
        rest = k;
    }
    if let Some((k, n)) = rest.rsplit_once('/')
        && (1..=2).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        field.ordinal = n.parse().map_err(|_| bad("bad ordinal"))?;
        rest = k;
    }
    if rest.starts_with("+&") || rest.starts_with("&+") {
        return Err(bad("`+` and `&` cannot be combined"));
    }
    let (kind, key) = match rest.as_bytes().first() {
        Some(b'?') => (Kind::NamedSkip, &rest[1..]),
        Some(b'*') => (Kind::Pointer, &rest[1..]),
        Some(b'&') => (Kind::Indirect, &rest[1..]),
        Some(b'+') => (Kind::Append, &rest[1..]),
        _ => (Kind::Normal, rest),
    };
    if key.is_empty() {
        if kind == Kind::NamedSkip {
            // `%{?}` is an unnamed skip.
            return Ok(field);
        }
        return Err(bad("the key is empty"));
    }
    field.kind = kind;
    field.key = key.to_owned();
    Ok(field)
}
