//! `timestamp`: parses a time from a field with Go reference-time layouts (libbeat's, beta
//! there) and writes it to `@timestamp` or `target_field`, in UTC.
//!
//! ```yaml
//! - timestamp:
//!     field: start_time
//!     layouts: ['2006-01-02T15:04:05Z', '2006-01-02T15:04:05.999Z', UNIX, UNIX_MS]
//!     timezone: Europe/Paris    # for values without an offset; default UTC
//!     test: ['2019-06-22T16:33:51Z']
//! ```
//!
//! Layouts are tried in order ([`golayout`] reads them as Go does). `UNIX` and `UNIX_MS` take
//! seconds or milliseconds since the epoch, as a number or a numeric string. `timezone` is an
//! IANA name (via `chrono-tz`, the tz database compiled in, so it does not depend on the
//! machine's `/usr/share/zoneinfo`), `Local`, or an offset (`+0430`, `-03:00`, `+04`). A layout
//! without a year gets the current year in that zone. Every `test` value must parse when the
//! configuration is loaded, or the configuration is refused.
//!
//! A missing field is an error unless `ignore_missing`; with `ignore_failure` no error at all.
//! Errors go to `error.message`, the event is kept.

pub mod golayout;

use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, Local, LocalResult, Offset, TimeZone, Utc};
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, FieldRef, Timestamp, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::fields::OneOrMany;
use crate::{error_at, plugin, set_error};
use golayout::{Layout, Parsed};

plugin!(TIMESTAMP, "timestamp", build);

/// `timestamp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `field`: the field holding the time. Required.
    field: String,
    /// `target_field`: where the parsed time goes. Default `@timestamp`.
    #[serde(default = "at_timestamp")]
    target_field: String,
    /// `layouts`: Go layouts, `UNIX` or `UNIX_MS`, tried in order. Required.
    layouts: OneOrMany,
    /// `timezone`: the zone of values without an offset. Default UTC.
    #[serde(default)]
    timezone: Option<String>,
    /// `ignore_missing`: no error when `field` is missing. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `ignore_failure`: no error at all. Default false.
    #[serde(default)]
    ignore_failure: bool,
    /// `test`: values that must parse at load. Default none.
    #[serde(default)]
    test: Vec<String>,
    /// `id`: a name for this processor in messages. Default none.
    #[serde(default)]
    id: Option<String>,
}

fn at_timestamp() -> String {
    "@timestamp".into()
}

/// A time zone as `timezone` names it.
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    /// An IANA zone.
    Iana(chrono_tz::Tz),
    /// A fixed offset.
    Fixed(FixedOffset),
    /// The machine's zone.
    Local,
}

impl Zone {
    /// Reads an IANA name, `Local`, `UTC`, or an offset `+hh`, `+hhmm`, `+hh:mm`.
    pub fn parse(s: &str) -> Result<Zone, String> {
        if s == "Local" {
            return Ok(Zone::Local);
        }
        if let Some(rest) = s.strip_prefix(['+', '-']) {
            let sign = if s.starts_with('-') { -1 } else { 1 };
            let digits: String = rest.chars().filter(|c| *c != ':').collect();
            let well_formed = matches!(
                (rest.len(), rest.find(':')),
                (2, None) | (4, None) | (5, Some(2))
            ) && digits.bytes().all(|b| b.is_ascii_digit());
            if well_formed {
                let h: i32 = digits[..2].parse().map_err(|_| "bad hours")?;
                let m: i32 = digits
                    .get(2..)
                    .filter(|m| !m.is_empty())
                    .map_or(Ok(0), str::parse)
                    .map_err(|_| "bad minutes")?;
                if let Some(off) = FixedOffset::east_opt(sign * (h * 3600 + m * 60)) {
                    return Ok(Zone::Fixed(off));
                }
            }
            return Err(format!("`{s}` is not an offset like +0430, -03:00 or +04"));
        }
        chrono_tz::Tz::from_str(s).map(Zone::Iana).map_err(|_| {
            format!("unknown time zone `{s}`; use an IANA name like America/New_York, Local, or an offset like +0200")
        })
    }

    /// The UTC instant of a parsed value in this zone.
    pub(crate) fn resolve(self, p: &Parsed) -> Option<DateTime<Utc>> {
        match self {
            Zone::Iana(tz) => resolve_in(&tz, p, |off| off.to_string()),
            Zone::Fixed(tz) => resolve_in(&tz, p, |_| String::new()),
            Zone::Local => resolve_in(&Local, p, |_| String::new()),
        }
    }
}

/// Applies an offset the value carried, or else the zone; a year-less value gets the zone's
/// current year. `abbrev_of` names the zone's abbreviation for an offset (`CET`).
fn resolve_in<Tz: TimeZone>(
    tz: &Tz,
    p: &Parsed,
    abbrev_of: impl Fn(&Tz::Offset) -> String,
) -> Option<DateTime<Utc>> {
    let year = Utc::now().with_timezone(tz).year();
    let naive = p.naive(year)?;
    let fixed = |secs: i32| -> Option<DateTime<Utc>> {
        let off = FixedOffset::east_opt(secs)?;
        Some(
            off.from_local_datetime(&naive)
                .single()?
                .with_timezone(&Utc),
        )
    };
    if let Some(secs) = p.offset {
        return fixed(secs);
    }
    let local = match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(a, b) => {
            // The abbreviation tells which of the two (`CEST` vs `CET`); else the earlier.
            match &p.abbrev {
                Some(ab) if abbrev_of(b.offset()) == *ab => b,
                _ => a,
            }
        }
        // In a gap (spring forward), the offset before the change, as Go does.
        LocalResult::None => {
            let off = tz.offset_from_utc_datetime(&naive).fix();
            return fixed(off.local_minus_utc());
        }
    };
    if let Some(ab) = &p.abbrev
        && abbrev_of(local.offset()) != *ab
    {
        // An abbreviation that is not the zone's: Go takes it as offset 0.
        return fixed(0);
    }
    Some(local.with_timezone(&Utc))
}

#[derive(Debug)]
enum LayoutKind {
    Unix,
    UnixMs,
    Go(String, Layout),
}

struct TimestampProc {
    field: String,
    target: String,
    layouts: Vec<LayoutKind>,
    zone: Zone,
    ignore_missing: bool,
    ignore_failure: bool,
    name: String,
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    let layouts = cfg.layouts.into_vec();
    if layouts.is_empty() {
        return Err(error_at(
            node.get("layouts").unwrap_or(node),
            "`layouts` needs at least one layout, like '2006-01-02T15:04:05Z07:00'",
        )
        .into());
    }
    let zone = match &cfg.timezone {
        None => Zone::Fixed(Utc.fix()),
        Some(s) => Zone::parse(s).map_err(|e| error_at(node.get("timezone").unwrap_or(node), e))?,
    };
    let p = TimestampProc {
        field: cfg.field,
        target: cfg.target_field,
        layouts: layouts
            .into_iter()
            .map(|l| match l.as_str() {
                "UNIX" => LayoutKind::Unix,
                "UNIX_MS" => LayoutKind::UnixMs,
                _ => {
                    let c = Layout::compile(&l);
                    LayoutKind::Go(l, c)
                }
            })
            .collect(),
        zone,
        ignore_missing: cfg.ignore_missing,
        ignore_failure: cfg.ignore_failure,
        name: cfg
            .id
            .map_or_else(|| "timestamp".into(), |id| format!("timestamp {id}")),
    };
    let mut errors = Vec::new();
    for (i, t) in cfg.test.iter().enumerate() {
        if let Err(e) = p.parse(&Value::String(t.clone())) {
            let at = node
                .get("test")
                .and_then(|n| n.items().get(i))
                .unwrap_or(node);
            errors.push(error_at(
                at,
                format!("test timestamp `{t}` does not parse: {e}"),
            ));
        }
    }
    ConfigErrors(errors).into_result()?;
    Ok(Box::new(p))
}

/// A number, or a string holding one, for `UNIX` and `UNIX_MS`.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

impl TimestampProc {
    fn parse(&self, v: &Value) -> Result<DateTime<Utc>, String> {
        let mut causes = Vec::new();
        for l in &self.layouts {
            let scale = match l {
                LayoutKind::Unix => 1e9,
                LayoutKind::UnixMs => 1e6,
                LayoutKind::Go(text, layout) => {
                    let Some(s) = v.as_str() else {
                        causes.push(format!("`{text}`: not a string"));
                        continue;
                    };
                    match layout.parse(s) {
                        Ok(p) => match self.zone.resolve(&p) {
                            Some(t) => return Ok(t),
                            None => causes.push(format!("`{text}`: no such time")),
                        },
                        Err(e) => causes.push(format!("`{text}`: {e}")),
                    }
                    continue;
                }
            };
            // Integers exactly (f64 would round nanoseconds), fractions through f64.
            let exact = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            let nanos = match (exact, number(v)) {
                (Some(i), _) => i.checked_mul(scale as i64),
                (None, Some(f)) if (f * scale).abs() < 9.2e18 => Some((f * scale) as i64),
                _ => None,
            };
            match nanos {
                Some(n) => return Ok(DateTime::from_timestamp_nanos(n)),
                None => causes.push(format!(
                    "`{}`: not a number of {}",
                    if scale == 1e9 { "UNIX" } else { "UNIX_MS" },
                    if scale == 1e9 {
                        "seconds"
                    } else {
                        "milliseconds"
                    }
                )),
            }
        }
        Err(causes.join("; "))
    }
}

impl Processor for TimestampProc {
    fn process(&self, event: &mut Event) -> Verdict {
        let parsed = match event.get(&self.field) {
            None => {
                if !(self.ignore_missing || self.ignore_failure) {
                    set_error(event, format!("{}: no field `{}`", self.name, self.field));
                }
                return Verdict::Keep;
            }
            Some(FieldRef::Timestamp(t)) => Ok(t.to_chrono()),
            Some(f) => {
                let v = f.to_value();
                self.parse(&v).map_err(|e| (v, e))
            }
        };
        // Times outside 1677-2262 do not fit skiff's nanosecond timestamps.
        let parsed = parsed.and_then(|t| match t.timestamp_nanos_opt() {
            Some(n) => Ok(Timestamp(n)),
            None => Err((
                Value::String(t.to_rfc3339()),
                "the time is outside 1677-2262".to_owned(),
            )),
        });
        match parsed {
            Ok(ts) => {
                if self.target == "@timestamp" {
                    event.timestamp = ts;
                } else {
                    event.remove(&self.target);
                    event.insert(&self.target, Value::String(ts.to_rfc3339_millis()));
                }
            }
            Err((v, e)) => {
                if !self.ignore_failure {
                    let shown = match &v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    set_error(
                        event,
                        format!(
                            "{}: failed parsing time field `{}` = `{shown}`: {e}",
                            self.name, self.field
                        ),
                    );
                }
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests;
