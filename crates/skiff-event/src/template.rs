//! Format strings, as the Beats write them: `%{[fields.log_topic]}`, `%{[agent.version]}`,
//! `%{[@metadata][beat]}`, a default after a colon (`%{[fields.env]:prod}`) and the event's date
//! in Joda style (`%{+yyyy.MM.dd}`).
//!
//! Used for `codec.format.string`, index names, Kafka topics and keys, Redis keys. A template is
//! parsed once at start-up, so a typo is a configuration error, not a per-event surprise.

use std::fmt::Write;

use thiserror::Error;

use crate::Event;

/// A parsed format string.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Field {
        path: String,
        default: Option<String>,
    },
    /// A chrono format string converted from Joda.
    Date(String),
}

/// What is wrong with a format string.
#[derive(Debug, Error, PartialEq)]
pub enum TemplateError {
    /// `%{` without `}`.
    #[error("unclosed `%{{` at byte {0}")]
    Unclosed(usize),
    /// `%{}` or an unparsable field reference.
    #[error("`%{{{0}}}` is not a field reference: write `%{{[field.name]}}` or `%{{+yyyy.MM.dd}}`")]
    BadReference(String),
}

/// The event lacks a field the template needs (and the template has no default for it).
#[derive(Debug, Error, PartialEq)]
#[error("the event has no field `{0}`")]
pub struct MissingField(pub String);

impl Template {
    /// Parses a format string.
    pub fn parse(s: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        let mut pos = 0;
        while let Some(i) = rest.find("%{") {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                return Err(TemplateError::Unclosed(pos + i));
            };
            let inner = &after[..end];
            if !lit.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut lit)));
            }
            parts.push(parse_ref(inner)?);
            pos += i + 2 + end + 1;
            rest = &after[end + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(Template { parts })
    }

    /// True when the template has no references (the result is the same for every event).
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The field paths the template reads.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field { path, .. } => Some(path.as_str()),
            _ => None,
        })
    }

    /// Renders the template for one event into `out`.
    pub fn render_into(&self, event: &Event, out: &mut String) -> Result<(), MissingField> {
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Field { path, default } => match event.get(path) {
                    Some(f) => match f.as_str() {
                        Some(s) => out.push_str(s),
                        None => out.push_str(&f.to_text()),
                    },
                    None => match default {
                        Some(d) => out.push_str(d),
                        None => return Err(MissingField(path.clone())),
                    },
                },
                Part::Date(fmt) => {
                    let _ = write!(out, "{}", event.timestamp.to_chrono().format(fmt));
                }
            }
        }
        Ok(())
    }

    /// Renders the template for one event.
    pub fn render(&self, event: &Event) -> Result<String, MissingField> {
        let mut s = String::new();
        self.render_into(event, &mut s)?;
        Ok(s)
    }
}

fn parse_ref(inner: &str) -> Result<Part, TemplateError> {
    let bad = || TemplateError::BadReference(inner.to_owned());
    if let Some(joda) = inner.strip_prefix('+') {
        return Ok(Part::Date(joda_to_chrono(joda)));
    }
    if !inner.starts_with('[') {
        return Err(bad());
    }
    // `[a][b]` or `[a.b]`, then optionally `:default`.
    let mut path = String::new();
    let mut rest = inner;
    while let Some(r) = rest.strip_prefix('[') {
        let end = r.find(']').ok_or_else(bad)?;
        let seg = &r[..end];
        if seg.is_empty() {
            return Err(bad());
        }
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(seg);
        rest = &r[end + 1..];
    }
    let default = match rest {
        "" => None,
        r => Some(r.strip_prefix(':').ok_or_else(bad)?.to_owned()),
    };
    Ok(Part::Field { path, default })
}

/// Converts a Joda-Time pattern (what the Beats use) to chrono's strftime syntax.
fn joda_to_chrono(joda: &str) -> String {
    const TABLE: &[(&str, &str)] = &[
        ("yyyy", "%Y"),
        ("yy", "%y"),
        ("MMMM", "%B"),
        ("MMM", "%b"),
        ("MM", "%m"),
        ("dd", "%d"),
        ("HH", "%H"),
        ("hh", "%I"),
        ("mm", "%M"),
        ("ss", "%S"),
        ("SSS", "%3f"),
        ("ww", "%V"),
        ("DDD", "%j"),
        ("a", "%p"),
        ("Z", "%z"),
    ];
    let mut out = String::new();
    let mut rest = joda;
    'outer: while !rest.is_empty() {
        for (j, c) in TABLE {
            if let Some(r) = rest.strip_prefix(j) {
                out.push_str(c);
                rest = r;
                continue 'outer;
            }
        }
        let ch = rest.chars().next().unwrap_or(' ');
        if ch == '%' {
            out.push_str("%%");
        } else {
            out.push(ch);
        }
        rest = &rest[ch.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Map, Timestamp};
    use serde_json::json;
    use std::sync::Arc;

    fn ev() -> Event {
        let shared = json!({"agent": {"version": "0.1.0"}, "fields": {"topic": "logs"}});
        let mut e = Event::new(Arc::new(shared.as_object().unwrap().clone()), "hi".into());
        e.timestamp = Timestamp::parse("2026-03-04T05:06:07Z").unwrap();
        e.insert("@metadata.beat", json!("skiff"));
        e
    }

    #[test]
    fn renders_fields_dates_and_defaults() {
        let t = Template::parse("%{[@metadata][beat]}-%{[agent.version]}-%{+yyyy.MM.dd}").unwrap();
        assert_eq!(t.render(&ev()).unwrap(), "skiff-0.1.0-2026.03.04");
        let t = Template::parse("%{[fields.env]:prod}/%{[message]}").unwrap();
        assert_eq!(t.render(&ev()).unwrap(), "prod/hi");
        let t = Template::parse("%{[fields.env]}").unwrap();
        assert_eq!(t.render(&ev()), Err(MissingField("fields.env".into())));
        assert!(Template::parse("plain").unwrap().is_constant());
    }

    #[test]
    fn rejects_malformed_references() {
        assert_eq!(Template::parse("a-%{[x]"), Err(TemplateError::Unclosed(2)));
        assert!(matches!(
            Template::parse("%{x}"),
            Err(TemplateError::BadReference(_))
        ));
        assert!(matches!(
            Template::parse("%{[]}"),
            Err(TemplateError::BadReference(_))
        ));
        assert!(matches!(
            Template::parse("%{[a]junk}"),
            Err(TemplateError::BadReference(_))
        ));
        let _ = Map::new();
    }
}
