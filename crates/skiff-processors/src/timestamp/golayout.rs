//! Go's reference-time layouts (`2006-01-02T15:04:05Z07:00`), parsed as Go's `time.Parse` does.
//!
//! Hand-written because Filebeat configurations carry these layouts verbatim and no Rust crate
//! reads them (chrono's are strftime). The layout is compiled once into chunks; parsing an
//! untrusted value only compares and slices it at ASCII positions, so it cannot panic.
//!
//! Go's rules kept: a space in the layout matches one or more spaces; `1`, `2`, `3`, `4`, `5`
//! take one or two digits and `01`...`05` exactly two; month and day names match in any case;
//! `.000` needs that many digits, `.999` takes any number or none; fractional seconds after
//! `05` are accepted even when the layout has none; `Z07:00` takes `Z` for UTC; a zone
//! abbreviation (`MST`) is UTC/GMT, the configured zone's own abbreviation, or else offset 0.

use chrono::{NaiveDate, NaiveDateTime};

/// One piece of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    Lit(String),
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm,
    LowerPm,
    TzAbbrev,
    /// A numeric zone: accepts `Z` when `z`, has `:` when `colon`, `parts` of 1..=3 (hh, mm, ss).
    NumTz {
        z: bool,
        colon: bool,
        parts: u8,
    },
    /// `.000` (`fixed`: exactly `digits`) or `.999` (optional, any number).
    Frac {
        fixed: bool,
        digits: usize,
    },
}

/// A compiled layout.
#[derive(Debug, Clone)]
pub struct Layout {
    chunks: Vec<Chunk>,
}

/// What a value held, before the zone is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The local date and time; the year is `None` when the layout has none.
    pub year: Option<i32>,
    /// Month, day, hour, minute, second, nanosecond.
    pub rest: (u32, u32, u32, u32, u32, u32),
    /// A numeric offset in seconds east of UTC, when the value had one.
    pub offset: Option<i32>,
    /// A zone abbreviation (`MST`), when the value had one and no numeric offset.
    pub abbrev: Option<String>,
}

impl Parsed {
    /// The local date-time in `year` (used when the layout has no year).
    pub fn naive(&self, year: i32) -> Option<NaiveDateTime> {
        let (mo, d, h, mi, s, ns) = self.rest;
        NaiveDate::from_ymd_opt(self.year.unwrap_or(year), mo, d)?.and_hms_nano_opt(h, mi, s, ns)
    }
}

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

impl Layout {
    /// Compiles a layout.
    pub fn compile(layout: &str) -> Layout {
        let mut chunks = Vec::new();
        let mut lit = String::new();
        let b = layout.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let rest = &layout[i..];
            let (chunk, len) = std_chunk(rest, chunks.last(), lit.is_empty());
            match chunk {
                Some(c) => {
                    if !lit.is_empty() {
                        chunks.push(Chunk::Lit(std::mem::take(&mut lit)));
                    }
                    chunks.push(c);
                    i += len;
                }
                None => {
                    let ch = rest.chars().next().map_or(1, char::len_utf8);
                    lit.push_str(&rest[..ch]);
                    i += ch;
                }
            }
        }
        if !lit.is_empty() {
            chunks.push(Chunk::Lit(lit));
        }
        Layout { chunks }
    }

    /// Parses `value`; `Err` says what did not fit.
    pub fn parse(&self, value: &str) -> Result<Parsed, String> {
        let mut v = value;
        let mut year = None;
        let (mut month, mut day, mut hour, mut min, mut sec, mut nsec) = (1, 1, 0, 0, 0, 0);
        let mut yday: Option<u32> = None;
        let mut pm: Option<bool> = None;
        let mut offset = None;
        let mut abbrev = None;
        for (idx, c) in self.chunks.iter().enumerate() {
            match c {
                Chunk::Lit(l) => {
                    v = skip(v, l).ok_or_else(|| format!("cannot parse `{v}` as `{l}`"))?
                }
                Chunk::LongYear => {
                    let (n, r) = digits_exact(v, 4).ok_or("expected a 4-digit year")?;
                    year = Some(n as i32);
                    v = r;
                }
                Chunk::Year => {
                    let (n, r) = digits_exact(v, 2).ok_or("expected a 2-digit year")?;
                    year = Some(if n >= 69 {
                        1900 + n as i32
                    } else {
                        2000 + n as i32
                    });
                    v = r;
                }
                Chunk::LongMonth | Chunk::Month => {
                    let (m, r) =
                        name(v, &LONG_MONTHS, *c == Chunk::LongMonth).ok_or("bad month name")?;
                    month = m + 1;
                    v = r;
                }
                Chunk::NumMonth | Chunk::ZeroMonth => {
                    let (n, r) = num(v, *c == Chunk::ZeroMonth).ok_or("bad month")?;
                    if !(1..=12).contains(&n) {
                        return Err("month out of range".into());
                    }
                    month = n;
                    v = r;
                }
                Chunk::LongWeekDay | Chunk::WeekDay => {
                    v = name(v, &LONG_DAYS, *c == Chunk::LongWeekDay)
                        .ok_or("bad day name")?
                        .1;
                }
                Chunk::Day | Chunk::UnderDay | Chunk::ZeroDay => {
                    if *c == Chunk::UnderDay {
                        v = v.strip_prefix(' ').unwrap_or(v);
                    }
                    let (n, r) = num(v, *c == Chunk::ZeroDay).ok_or("bad day")?;
                    day = n;
                    v = r;
                }
                Chunk::UnderYearDay | Chunk::ZeroYearDay => {
                    let mut w = v;
                    if *c == Chunk::UnderYearDay {
                        w = w.trim_start_matches(' ');
                    }
                    let (n, r) = digits_upto(w, 3).ok_or("bad day of year")?;
                    yday = Some(n);
                    v = r;
                }
                Chunk::Hour => {
                    let (n, r) = num(v, false).ok_or("bad hour")?;
                    if n > 23 {
                        return Err("hour out of range".into());
                    }
                    hour = n;
                    v = r;
                }
                Chunk::Hour12 | Chunk::ZeroHour12 => {
                    let (n, r) = num(v, *c == Chunk::ZeroHour12).ok_or("bad hour")?;
                    if n > 12 {
                        return Err("hour out of range".into());
                    }
                    hour = n;
                    v = r;
                }
                Chunk::Minute | Chunk::ZeroMinute => {
                    let (n, r) = num(v, *c == Chunk::ZeroMinute).ok_or("bad minute")?;
                    if n > 59 {
                        return Err("minute out of range".into());
                    }
                    min = n;
                    v = r;
                }
                Chunk::Second | Chunk::ZeroSecond => {
                    let (n, r) = num(v, *c == Chunk::ZeroSecond).ok_or("bad second")?;
                    if n > 59 {
                        return Err("second out of range".into());
                    }
                    sec = n;
                    v = r;
                    // A fraction the layout does not mention is taken anyway, as Go does.
                    let next_is_frac = matches!(self.chunks.get(idx + 1), Some(Chunk::Frac { .. }));
                    if !next_is_frac
                        && v.len() >= 2
                        && matches!(v.as_bytes()[0], b'.' | b',')
                        && v.as_bytes()[1].is_ascii_digit()
                    {
                        let (ns, r) = fraction(&v[1..]);
                        nsec = ns;
                        v = r;
                    }
                }
                Chunk::Frac { fixed, digits } => {
                    if *fixed {
                        let ok = v.len() > *digits
                            && matches!(v.as_bytes()[0], b'.' | b',')
                            && v.as_bytes()[1..=*digits].iter().all(u8::is_ascii_digit);
                        if !ok {
                            return Err(format!("expected {digits} fractional digits"));
                        }
                        nsec = fraction(&v[1..=*digits]).0;
                        v = &v[1 + digits..];
                    } else if v.len() >= 2
                        && matches!(v.as_bytes()[0], b'.' | b',')
                        && v.as_bytes()[1].is_ascii_digit()
                    {
                        let (ns, r) = fraction(&v[1..]);
                        nsec = ns;
                        v = r;
                    }
                }
                Chunk::Pm | Chunk::LowerPm => {
                    let p = v.get(..2).ok_or("expected AM or PM")?;
                    pm = Some(match p.to_ascii_uppercase().as_str() {
                        "AM" => false,
                        "PM" => true,
                        _ => return Err("expected AM or PM".into()),
                    });
                    v = &v[2..];
                }
                Chunk::NumTz { z, colon, parts } => {
                    if *z && v.starts_with('Z') {
                        offset = Some(0);
                        v = &v[1..];
                    } else {
                        let (o, r) = num_tz(v, *colon, *parts).ok_or("bad time zone offset")?;
                        offset = Some(o);
                        v = r;
                    }
                }
                Chunk::TzAbbrev => {
                    let n = tz_abbrev_len(v).ok_or("bad time zone name")?;
                    let a = &v[..n];
                    v = &v[n..];
                    if a == "UTC" || a == "GMT" {
                        offset = Some(0);
                    } else if let Some(h) = a.strip_prefix("GMT") {
                        let n: i32 = h.parse().map_err(|_| "bad GMT offset")?;
                        offset = Some(n * 3600);
                    } else {
                        abbrev = Some(a.to_owned());
                    }
                }
            }
        }
        if !v.is_empty() {
            return Err(format!("extra text `{v}`"));
        }
        if let Some(pm) = pm {
            if hour == 12 {
                hour = 0;
            }
            if pm {
                hour += 12;
            }
        }
        if let Some(yd) = yday {
            let y = year.unwrap_or(2000);
            let d = NaiveDate::from_yo_opt(y, yd).ok_or("day of year out of range")?;
            use chrono::Datelike;
            month = d.month();
            day = d.day();
        }
        let p = Parsed {
            year,
            rest: (month, day, hour, min, sec, nsec),
            offset,
            abbrev,
        };
        // Validate the day against the month now when the year is known (leap days otherwise
        // against a leap year).
        if p.naive(2000).is_none() {
            return Err("day out of range".into());
        }
        Ok(p)
    }
}

/// The standard chunk at the start of `s`, and its length; Go's `nextStdChunk`.
fn std_chunk(s: &str, prev: Option<&Chunk>, _lit_empty: bool) -> (Option<Chunk>, usize) {
    let b = s.as_bytes();
    let starts = |p: &str| s.starts_with(p);
    let c = match b[0] {
        b'J' if starts("January") => Some((Chunk::LongMonth, 7)),
        b'J' if starts("Jan") => Some((Chunk::Month, 3)),
        b'M' if starts("Monday") => Some((Chunk::LongWeekDay, 6)),
        b'M' if starts("Mon") => Some((Chunk::WeekDay, 3)),
        b'M' if starts("MST") => Some((Chunk::TzAbbrev, 3)),
        b'0' if starts("002") => Some((Chunk::ZeroYearDay, 3)),
        b'0' if b.len() > 1 && (b'1'..=b'6').contains(&b[1]) => Some((
            match b[1] {
                b'1' => Chunk::ZeroMonth,
                b'2' => Chunk::ZeroDay,
                b'3' => Chunk::ZeroHour12,
                b'4' => Chunk::ZeroMinute,
                b'5' => Chunk::ZeroSecond,
                _ => Chunk::Year,
            },
            2,
        )),
        b'1' if starts("15") => Some((Chunk::Hour, 2)),
        b'1' => Some((Chunk::NumMonth, 1)),
        b'2' if starts("2006") => Some((Chunk::LongYear, 4)),
        b'2' => Some((Chunk::Day, 1)),
        b'_' if starts("__2") => Some((Chunk::UnderYearDay, 3)),
        b'_' if starts("_2") && !starts("_2006") => Some((Chunk::UnderDay, 2)),
        b'3' => Some((Chunk::Hour12, 1)),
        b'4' => Some((Chunk::Minute, 1)),
        b'5' => Some((Chunk::Second, 1)),
        b'P' if starts("PM") => Some((Chunk::Pm, 2)),
        b'p' if starts("pm") => Some((Chunk::LowerPm, 2)),
        b'-' | b'Z' => {
            let z = b[0] == b'Z';
            let r = &s[1..];
            [
                ("07:00:00", true, 3u8),
                ("070000", false, 3),
                ("07:00", true, 2),
                ("0700", false, 2),
                ("07", false, 1),
            ]
            .iter()
            .find(|(p, _, _)| r.starts_with(p))
            .map(|(p, colon, parts)| {
                (
                    Chunk::NumTz {
                        z,
                        colon: *colon,
                        parts: *parts,
                    },
                    1 + p.len(),
                )
            })
        }
        b'.' | b',' if b.len() > 1 && (b[1] == b'0' || b[1] == b'9') => {
            let ch = b[1];
            let n = b[1..].iter().take_while(|&&x| x == ch).count();
            let after_digit = b.get(1 + n).is_some_and(u8::is_ascii_digit);
            // Go takes it as a fraction only right after the seconds... or anywhere if not
            // followed by more digits; keep Go's rule (not followed by a digit).
            let _ = prev;
            (!after_digit).then_some((
                Chunk::Frac {
                    fixed: ch == b'0',
                    digits: n,
                },
                1 + n,
            ))
        }
        _ => None,
    };
    match c {
        Some((chunk, len)) => (Some(chunk), len),
        None => (None, 0),
    }
}

/// Go's `skip`: the literal must match, a space matching one or more spaces.
fn skip<'a>(mut v: &'a str, lit: &str) -> Option<&'a str> {
    let mut l = lit;
    while let Some(c) = l.chars().next() {
        if c == ' ' {
            if !v.starts_with(' ') {
                return None;
            }
            l = l.trim_start_matches(' ');
            v = v.trim_start_matches(' ');
            continue;
        }
        v = v.strip_prefix(c)?;
        l = &l[c.len_utf8()..];
    }
    Some(v)
}

/// One or two digits (`fixed`: exactly two).
fn num(v: &str, fixed: bool) -> Option<(u32, &str)> {
    let b = v.as_bytes();
    if !b.first()?.is_ascii_digit() {
        return None;
    }
    if !b.get(1).is_some_and(u8::is_ascii_digit) {
        if fixed {
            return None;
        }
        return Some((u32::from(b[0] - b'0'), &v[1..]));
    }
    Some((
        u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0'),
        &v[2..],
    ))
}

fn digits_exact(v: &str, n: usize) -> Option<(u32, &str)> {
    let d = v.get(..n)?;
    if !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((d.parse().ok()?, &v[n..]))
}

fn digits_upto(v: &str, n: usize) -> Option<(u32, &str)> {
    let k = v.bytes().take(n).take_while(u8::is_ascii_digit).count();
    if k == 0 {
        return None;
    }
    Some((v[..k].parse().ok()?, &v[k..]))
}

/// A month or day name, long or its 3-letter short form, in any case.
fn name<'a>(v: &'a str, names: &[&str], long: bool) -> Option<(u32, &'a str)> {
    for (i, n) in names.iter().enumerate() {
        let want = if long { n } else { &n[..3] };
        if let Some(head) = v.get(..want.len())
            && head.eq_ignore_ascii_case(want)
        {
            return Some((i as u32, &v[want.len()..]));
        }
    }
    None
}

/// Digits after the decimal point as nanoseconds (beyond 9 digits ignored).
fn fraction(v: &str) -> (u32, &str) {
    let n = v.bytes().take_while(u8::is_ascii_digit).count();
    let mut ns: u32 = 0;
    for (i, d) in v.bytes().take(n).enumerate() {
        if i < 9 {
            ns = ns * 10 + u32::from(d - b'0');
        }
    }
    for _ in n..9 {
        ns *= 10;
    }
    (ns, &v[n..])
}

fn num_tz(v: &str, colon: bool, parts: u8) -> Option<(i32, &str)> {
    let sign = match v.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let mut r = &v[1..];
    let mut secs = 0i32;
    for (i, mult) in [3600, 60, 1].iter().take(usize::from(parts)).enumerate() {
        if i > 0 && colon {
            r = r.strip_prefix(':')?;
        }
        let (n, rest) = digits_exact(r, 2)?;
        secs += n as i32 * mult;
        r = rest;
    }
    Some((sign * secs, r))
}

/// The length of a zone abbreviation at the start of `v` (Go's `parseTimeZone`).
fn tz_abbrev_len(v: &str) -> Option<usize> {
    let b = v.as_bytes();
    if b.len() < 3 {
        return None;
    }
    if v.starts_with("GMT") {
        let sign = b.get(3).copied();
        if matches!(sign, Some(b'+' | b'-')) {
            let n = b[4..]
                .iter()
                .take(2)
                .take_while(|x| x.is_ascii_digit())
                .count();
            if n > 0 {
                return Some(4 + n);
            }
        }
        return Some(3);
    }
    let n = b
        .iter()
        .take(5)
        .take_while(|x| x.is_ascii_uppercase())
        .count();
    match n {
        3 => Some(3),
        4 if b[3] == b'T' || v.starts_with("ChST") || v.starts_with("MeST") => Some(4),
        5 if b[4] == b'T' => Some(5),
        4 => Some(3),
        5 => Some(3),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(layout: &str, v: &str) -> Result<Parsed, String> {
        Layout::compile(layout).parse(v)
    }

    type Want = (Option<i32>, (u32, u32, u32, u32, u32, u32), Option<i32>);

    #[test]
    fn go_layouts() {
        let ok = |layout: &str, v: &str, want: Want| {
            let got = p(layout, v).unwrap_or_else(|e| panic!("{layout} {v}: {e}"));
            assert_eq!((got.year, got.rest, got.offset), want, "{layout} {v}");
        };
        ok(
            "2006-01-02T15:04:05Z07:00",
            "2019-06-22T16:33:51Z",
            (Some(2019), (6, 22, 16, 33, 51, 0), Some(0)),
        );
        ok(
            "2006-01-02T15:04:05Z07:00",
            "2019-06-22T16:33:51.5+02:00",
            (Some(2019), (6, 22, 16, 33, 51, 500_000_000), Some(7200)),
        );
        ok(
            "2006-01-02T15:04:05.999Z",
            "2019-11-18T04:59:51.123Z",
            (Some(2019), (11, 18, 4, 59, 51, 123_000_000), None),
        );
        ok(
            "2006-01-02T15:04:05Z",
            "2019-11-18T04:59:51.123Z",
            (Some(2019), (11, 18, 4, 59, 51, 123_000_000), None),
        );
        ok(
            "Mon Jan _2 15:04:05 2006",
            "Sat Mar  7 11:06:39 2015",
            (Some(2015), (3, 7, 11, 6, 39, 0), None),
        );
        ok(
            "Jan _2 15:04:05.000",
            "Mar  7 11:06:39.002",
            (None, (3, 7, 11, 6, 39, 2_000_000), None),
        );
        ok(
            "02/Jan/2006:15:04:05 -0700",
            "22/Nov/2026:03:13:47 +0000",
            (Some(2026), (11, 22, 3, 13, 47, 0), Some(0)),
        );
        ok(
            "January 2, 2006 3:04 PM",
            "march 17, 2024 12:30 am",
            (Some(2024), (3, 17, 0, 30, 0, 0), None),
        );
        ok(
            "06-1-2 15:04",
            "99-12-31 23:59",
            (Some(1999), (12, 31, 23, 59, 0, 0), None),
        );
        ok(
            "2006-002",
            "2024-060",
            (Some(2024), (2, 29, 0, 0, 0, 0), None),
        );
        ok(
            "2006-01-02 15:04:05,000",
            "2024-01-02 03:04:05,678",
            (Some(2024), (1, 2, 3, 4, 5, 678_000_000), None),
        );
        let g = p("Mon Jan 2 15:04:05 MST 2006", "Mon Jan 2 15:04:05 PDT 2006").unwrap();
        assert_eq!(g.abbrev.as_deref(), Some("PDT"));
        for (layout, v) in [
            ("2006-01-02", "2006-02-30"),
            ("2006-01-02", "2006-1-02"),
            ("2006-01-02", "2006-01-02 extra"),
            ("15:04", "24:00"),
            ("2006-01-89T15:04:05Z07:00", "2015-03-07T11:06:39Z"),
            ("3:04PM", "3:04XM"),
            (".000", ".12"),
            ("Z07:00", "+0200"),
        ] {
            assert!(p(layout, v).is_err(), "{layout} {v} should fail");
        }
    }
}
