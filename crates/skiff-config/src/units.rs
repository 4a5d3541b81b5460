//! Human units in configs: [`Duration`] (`"1h30m"`) and [`ByteSize`]
//! (`"10MiB"`).

use std::fmt;

use serde::de::{self, Visitor};

/// A time span written like Go's `time.ParseDuration`: `"10s"`, `"5m"`,
/// `"1h30m"`, `"500ms"`, `"1.5s"`, `"250us"`, `"10ns"`. A plain number
/// (`10`, `1.5`, `"30"`) means seconds. Negative spans are refused.
/// Serializes to the same compact form (`"1h30m"`, `"500ms"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

/// A size in bytes, written as a plain integer (bytes) or a number with a
/// unit, case-insensitive, like go-humanize: decimal `KB`/`MB`/`GB`/`TB`/
/// `PB`/`EB` (and `K`, `M`, ...) are powers of 1000, binary `KiB`/`MiB`/
/// `GiB`/`TiB`/`PiB`/`EiB` (and `Ki`, ...) are powers of 1024. So `"10MB"`
/// is 10,000,000 bytes and `"10MiB"` is 10,485,760. Fractions are allowed
/// (`"1.5GiB"`) and rounded down to whole bytes. Serializes as an integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// `N` seconds, for `#[serde(default = "skiff_config::seconds::<30>")]`: one default function
/// for every component's timeouts instead of a `thirty_seconds()` in each crate.
pub fn seconds<const N: u64>() -> Duration {
    Duration(std::time::Duration::from_secs(N))
}

/// `N` milliseconds, as [`seconds`].
pub fn millis<const N: u64>() -> Duration {
    Duration(std::time::Duration::from_millis(N))
}

const NANOS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

const DURATION_HINT: &str = "use a number and a unit, like `10s`, `5m`, `1h30m` or `500ms`";

impl Duration {
    /// Parse the text form. The error is a plain message.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let s = text.trim();
        let bad = |why: &str| format!("invalid duration {text:?}: {why}; {DURATION_HINT}");
        if s.starts_with('-') {
            return Err(bad("negative durations are not allowed"));
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some((whole, frac)) = split_number(s)
            .filter(|(_, _, rest)| rest.is_empty())
            .map(|(w, f, _)| (w, f))
        {
            return scaled(whole, frac, 1_000_000_000)
                .and_then(nanos_to_duration)
                .ok_or_else(|| bad("it is too large"));
        }
        let mut total: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let Some((whole, frac, after)) = split_number(rest) else {
                return Err(bad("expected a number"));
            };
            let unit_len = after
                .char_indices()
                .find(|(_, c)| c.is_ascii_digit() || *c == '.')
                .map_or(after.len(), |(i, _)| i);
            let unit = &after[..unit_len];
            let Some((_, per)) = NANOS.iter().find(|(u, _)| *u == unit) else {
                return Err(if unit.is_empty() {
                    bad("a unit is missing")
                } else {
                    bad(&format!("unknown unit `{unit}`"))
                });
            };
            total = scaled(whole, frac, *per)
                .and_then(|n| total.checked_add(n))
                .ok_or_else(|| bad("it is too large"))?;
            rest = &after[unit_len..];
        }
        nanos_to_duration(total).ok_or_else(|| bad("it is too large"))
    }
}

impl ByteSize {
    /// Parse the text form. The error is a plain message.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let s = text.trim();
        let bad = |why: &str| {
            format!(
                "invalid size {text:?}: {why}; use bytes or a unit, like `512KB`, `10MiB` or `1GiB`"
            )
        };
        if s.starts_with('-') {
            return Err(bad("negative sizes are not allowed"));
        }
        let Some((whole, frac, unit)) = split_number(s.strip_prefix('+').unwrap_or(s)) else {
            return Err(bad("expected a number"));
        };
        let mult: u128 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "m" | "mb" => 1_000_000,
            "g" | "gb" => 1_000_000_000,
            "t" | "tb" => 1_000_000_000_000,
            "p" | "pb" => 1_000_000_000_000_000,
            "e" | "eb" => 1_000_000_000_000_000_000,
            "ki" | "kib" => 1 << 10,
            "mi" | "mib" => 1 << 20,
            "gi" | "gib" => 1 << 30,
            "ti" | "tib" => 1 << 40,
            "pi" | "pib" => 1 << 50,
            "ei" | "eib" => 1 << 60,
            other => return Err(bad(&format!("unknown unit `{other}`"))),
        };
        scaled(whole, frac, mult)
            .and_then(|n| u64::try_from(n).ok())
            .map(ByteSize)
            .ok_or_else(|| bad("it is too large"))
    }
}

/// Split `"1.5rest"` into `("1", "5", "rest")`; `None` without digits.
fn split_number(s: &str) -> Option<(&str, &str, &str)> {
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(s.len(), |(i, _)| i);
    let num = &s[..end];
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    Some((whole, frac, &s[end..]))
}

/// `whole.frac * unit`, rounded down, or `None` on overflow.
fn scaled(whole: &str, frac: &str, unit: u128) -> Option<u128> {
    let w: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut total = w.checked_mul(unit)?;
    let frac = &frac[..frac.len().min(30)];
    if !frac.is_empty() {
        let f: u128 = frac.parse().ok()?;
        let scale = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        total = total.checked_add(f.checked_mul(unit)? / scale)?;
    }
    Some(total)
}

fn nanos_to_duration(n: u128) -> Option<Duration> {
    let secs = u64::try_from(n / 1_000_000_000).ok()?;
    let nanos = u32::try_from(n % 1_000_000_000).ok()?;
    Some(Duration(std::time::Duration::new(secs, nanos)))
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_nanos();
        if total == 0 {
            return f.write_str("0s");
        }
        if total < 1_000_000_000 {
            let (unit, per) = match total {
                n if n % 1_000_000 == 0 || n >= 1_000_000 => ("ms", 1_000_000),
                n if n >= 1_000 => ("us", 1_000),
                _ => ("ns", 1),
            };
            return write!(f, "{}{unit}", decimal(total, per));
        }
        let secs = self.0.as_secs();
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        let rest = u128::from(s) * 1_000_000_000 + u128::from(self.0.subsec_nanos());
        if rest > 0 {
            write!(f, "{}s", decimal(rest, 1_000_000_000))?;
        }
        Ok(())
    }
}

/// `n / per` as a decimal without trailing zeros.
fn decimal(n: u128, per: u128) -> String {
    let (whole, frac) = (n / per, n % per);
    if frac == 0 {
        return whole.to_string();
    }
    let width = per.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [
            ("EiB", 60),
            ("PiB", 50),
            ("TiB", 40),
            ("GiB", 30),
            ("MiB", 20),
            ("KiB", 10),
        ];
        for (name, shift) in units {
            let per = 1u64 << shift;
            if self.0 >= per && self.0.is_multiple_of(per) {
                return write!(f, "{}{name}", self.0 / per);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration like `10s`, `5m` or `1h30m`")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration(std::time::Duration::from_secs(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(|v| Duration(std::time::Duration::from_secs(v)))
            .map_err(|_| {
                E::custom(format!(
                    "invalid duration {v}: negative durations are not allowed"
                ))
            })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        std::time::Duration::try_from_secs_f64(v)
            .map(Duration)
            .map_err(|_| E::custom(format!("invalid duration {v}: {DURATION_HINT}")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        Duration::parse(v).map_err(E::custom)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size like `512KB`, `10MiB` or a number of bytes")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("invalid size {v}: negative sizes are not allowed")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
        if v.is_finite() && (0.0..1.8e19).contains(&v) {
            Ok(ByteSize(v as u64))
        } else {
            Err(E::custom(format!("invalid size {v}")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        ByteSize::parse(v).map_err(E::custom)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ByteSizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    #[test]
    fn durations() {
        let ok = [
            ("10s", Std::from_secs(10)),
            ("5m", Std::from_secs(300)),
            ("1h30m", Std::from_secs(5400)),
            ("500ms", Std::from_millis(500)),
            ("1.5s", Std::from_millis(1500)),
            ("250us", Std::from_micros(250)),
            ("10ns", Std::from_nanos(10)),
            ("1h0m10.5s", Std::from_millis(3_610_500)),
            ("30", Std::from_secs(30)),
            ("0.25", Std::from_millis(250)),
            ("0", Std::ZERO),
            (" 2m ", Std::from_secs(120)),
        ];
        for (text, want) in ok {
            assert_eq!(Duration::parse(text), Ok(Duration(want)), "{text}");
        }
        for (text, why) in [
            ("", "empty"),
            ("-5s", "negative"),
            ("10x", "unknown unit `x`"),
            ("5 minutes", "unknown unit"),
            ("1.2.3s", "expected a number"),
            ("abc", "expected a number"),
            ("10s5", "a unit is missing"),
            ("99999999999999999999999h", "too large"),
        ] {
            let e = Duration::parse(text).unwrap_err();
            assert!(e.contains(why) && e.contains("1h30m"), "{text}: {e}");
        }
    }

    #[test]
    fn duration_display_round_trips() {
        for text in [
            "0s", "1h30m", "500ms", "1.5s", "250us", "10ns", "2h0.001s", "1.5ms",
        ] {
            let d = Duration::parse(text).unwrap();
            assert_eq!(d.to_string(), text);
            assert_eq!(Duration::parse(&d.to_string()).unwrap(), d);
        }
    }

    #[test]
    fn byte_sizes() {
        let ok = [
            ("10MiB", 10 << 20),
            ("10MB", 10_000_000),
            ("10mb", 10_000_000),
            ("1GiB", 1 << 30),
            ("512KB", 512_000),
            ("512 KiB", 512 << 10),
            ("1.5GiB", 3 << 29),
            ("4096", 4096),
            ("1k", 1000),
            ("7b", 7),
        ];
        for (text, want) in ok {
            assert_eq!(ByteSize::parse(text), Ok(ByteSize(want)), "{text}");
        }
        for (text, why) in [
            ("-1MB", "negative"),
            ("10XB", "unknown unit `xb`"),
            ("MB", "expected a number"),
            ("100EiB", "too large"),
        ] {
            let e = ByteSize::parse(text).unwrap_err();
            assert!(e.contains(why) && e.contains("10MiB"), "{text}: {e}");
        }
        assert_eq!(ByteSize(10 << 20).to_string(), "10MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }
}
