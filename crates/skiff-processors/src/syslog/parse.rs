//! Syslog messages, RFC 3164 (BSD) and RFC 5424, parsed from untrusted text: the one parser of
//! skiff, used by the `syslog` processor and by the `syslog` input (skiff-input-net).
//!
//! Lenient where senders differ in practice, as Filebeat's parser is: the `<PRI>` of an RFC
//! 3164 message may be missing, its day may be space- or zero-padded, its time may carry a
//! fraction and a year, or be an RFC 3339 time stamp (rsyslog's high-precision format), the
//! host name may be missing (the next word then is the tag). Strict where RFC 5424 is precise:
//! a header field that is not there makes the message fail, and the caller keeps it whole.
//!
//! Never panics and never allocates more than the message's own size: every index is checked
//! (`get`, `split_once`), there is no recursion. A proptest feeds it random input.
//!
//! Hand-written because the crates that parse syslog (`syslog_loose`, `syslog_rfc5424`) either
//! parse one format, drop the fields Filebeat keeps, or take the year from the clock in a way
//! the caller cannot decide; the grammar is small.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};

/// `format`.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// RFC 3164 (the default, as Filebeat).
    #[default]
    Rfc3164,
    /// RFC 5424.
    Rfc5424,
    /// Either, decided per message: `<PRI>` followed by a version number and a space is 5424.
    Auto,
}

/// A time stamp as written in the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamp {
    /// With its offset (RFC 5424, RFC 3339 in RFC 3164).
    Zoned(DateTime<FixedOffset>),
    /// Without zone and maybe without year (classic RFC 3164): the caller applies `timezone`
    /// and the year rule.
    Local {
        /// The year if the message had one.
        year: Option<i32>,
        /// 1-12.
        month: u32,
        /// 1-31.
        day: u32,
        /// The time of day.
        time: NaiveTime,
    },
}

/// One structured-data element: its id and its parameters, in order.
pub type SdElement = (String, Vec<(String, String)>);

/// A parsed message; the text fields borrow from the input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message<'a> {
    /// `<PRI>`: facility * 8 + severity.
    pub priority: Option<u8>,
    /// RFC 5424 VERSION.
    pub version: Option<u16>,
    /// The time stamp.
    pub timestamp: Option<Stamp>,
    /// HOSTNAME.
    pub hostname: Option<&'a str>,
    /// APP-NAME (RFC 3164: the tag's program).
    pub appname: Option<&'a str>,
    /// PROCID (RFC 3164: the tag's `[pid]`).
    pub procid: Option<&'a str>,
    /// MSGID.
    pub msgid: Option<&'a str>,
    /// STRUCTURED-DATA.
    pub structured_data: Vec<SdElement>,
    /// MSG.
    pub message: &'a str,
}

/// Why a message is not syslog.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Empty input.
    #[error("empty message")]
    Empty,
    /// `<PRI>` malformed or above 191.
    #[error("bad priority: expected <0> to <191> at the start")]
    Priority,
    /// An RFC 5424 header field is missing or malformed.
    #[error("not RFC 5424: {0}")]
    Header(&'static str),
    /// Structured data that does not close or is malformed.
    #[error("bad RFC 5424 structured data: {0}")]
    StructuredData(&'static str),
}

/// Parses `s` as `format`.
pub fn parse(s: &str, format: Format) -> Result<Message<'_>, ParseError> {
    let s = s.trim_end_matches(['\n', '\r', '\0']);
    if s.is_empty() {
        return Err(ParseError::Empty);
    }
    let (priority, rest) = priority(s)?;
    let is_5424 = match format {
        Format::Rfc5424 => true,
        Format::Rfc3164 => false,
        Format::Auto => priority.is_some() && looks_5424(rest),
    };
    if is_5424 {
        rfc5424(priority, rest)
    } else {
        Ok(rfc3164(priority, rest))
    }
}

/// `<N>` at the start, if any.
fn priority(s: &str) -> Result<(Option<u8>, &str), ParseError> {
    let Some(rest) = s.strip_prefix('<') else {
        return Ok((None, s));
    };
    let (num, rest) = rest.split_once('>').ok_or(ParseError::Priority)?;
    if num.is_empty() || num.len() > 3 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Priority);
    }
    match num.parse::<u8>() {
        Ok(p) if p <= 191 => Ok((Some(p), rest)),
        _ => Err(ParseError::Priority),
    }
}

fn looks_5424(rest: &str) -> bool {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (1..=3).contains(&digits) && rest.as_bytes().get(digits) == Some(&b' ')
}

/// Splits off the next space-delimited field.
fn field(s: &str) -> Option<(&str, &str)> {
    match s.split_once(' ') {
        Some((f, rest)) => Some((f, rest)),
        None if !s.is_empty() => Some((s, "")),
        None => None,
    }
}

fn nil(f: &str) -> Option<&str> {
    (f != "-" && !f.is_empty()).then_some(f)
}

fn rfc5424(priority: Option<u8>, rest: &str) -> Result<Message<'_>, ParseError> {
    let priority = priority.ok_or(ParseError::Header("no <PRI>"))?;
    let (version, rest) = field(rest).ok_or(ParseError::Header("no VERSION"))?;
    let version = version
        .parse::<u16>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or(ParseError::Header("bad VERSION"))?;
    let (ts, rest) = field(rest).ok_or(ParseError::Header("no TIMESTAMP"))?;
    let timestamp = match ts {
        "-" => None,
        t => Some(Stamp::Zoned(
            DateTime::parse_from_rfc3339(t).map_err(|_| ParseError::Header("bad TIMESTAMP"))?,
        )),
    };
    let (hostname, rest) = field(rest).ok_or(ParseError::Header("no HOSTNAME"))?;
    let (appname, rest) = field(rest).ok_or(ParseError::Header("no APP-NAME"))?;
    let (procid, rest) = field(rest).ok_or(ParseError::Header("no PROCID"))?;
    let (msgid, rest) = field(rest).ok_or(ParseError::Header("no MSGID"))?;
    let (structured_data, rest) = if let Some(r) = rest.strip_prefix('-') {
        (Vec::new(), r)
    } else if rest.starts_with('[') {
        structured(rest)?
    } else {
        return Err(ParseError::Header("no STRUCTURED-DATA"));
    };
    let message = match rest.strip_prefix(' ') {
        Some(m) => m.strip_prefix('\u{feff}').unwrap_or(m),
        None if rest.is_empty() => "",
        None => return Err(ParseError::StructuredData("no space after it")),
    };
    Ok(Message {
        priority: Some(priority),
        version: Some(version),
        timestamp,
        hostname: nil(hostname),
        appname: nil(appname),
        procid: nil(procid),
        msgid: nil(msgid),
        structured_data,
        message,
    })
}

/// `[id k="v" ...][...]`, with `\"`, `\\` and `\]` escapes in values.
fn structured(mut s: &str) -> Result<(Vec<SdElement>, &str), ParseError> {
    let mut out = Vec::new();
    while let Some(r) = s.strip_prefix('[') {
        let end_id = r
            .find([' ', ']'])
            .ok_or(ParseError::StructuredData("unclosed element"))?;
        let id = &r[..end_id];
        if id.is_empty() {
            return Err(ParseError::StructuredData("empty SD-ID"));
        }
        let mut r = &r[end_id..];
        let mut params = Vec::new();
        loop {
            if let Some(after) = r.strip_prefix(']') {
                r = after;
                break;
            }
            r = r
                .strip_prefix(' ')
                .ok_or(ParseError::StructuredData("expected a space or ]"))?;
            let (name, after) = r
                .split_once("=\"")
                .ok_or(ParseError::StructuredData("expected name=\"value\""))?;
            if name.is_empty() || name.contains([' ', ']', '"']) {
                return Err(ParseError::StructuredData("bad parameter name"));
            }
            let (value, after) = quoted(after)?;
            params.push((name.to_owned(), value));
            r = after;
        }
        out.push((id.to_owned(), params));
        s = r;
    }
    Ok((out, s))
}

/// A value up to its closing quote, unescaped; returns the rest after the quote.
fn quoted(s: &str) -> Result<(String, &str), ParseError> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\' | ']'))) => value.push(e),
                // RFC 5424 6.3.3: any other backslash is kept as is.
                Some((_, e)) => {
                    value.push('\\');
                    value.push(e);
                }
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(ParseError::StructuredData("unclosed value"))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn rfc3164(priority: Option<u8>, rest: &str) -> Message<'_> {
    let rest = rest.trim_start_matches(' ');
    let (timestamp, rest) = match bsd_time(rest).or_else(|| rfc3339_word(rest)) {
        Some((t, r)) => (Some(t), r.trim_start_matches(' ')),
        None => (None, rest),
    };
    // HOSTNAME, unless the first word is already the tag (`prog:` or `prog[12]:`). Without a
    // time stamp there is no header: all of it is the message (RFC 3164 4.3.3).
    let (hostname, rest) = match (timestamp, field(rest)) {
        (Some(_), Some((w, r))) if !is_tag(w) && !r.is_empty() => (Some(w), r),
        _ => (None, rest),
    };
    let (appname, procid, message) = match (timestamp, tag(rest)) {
        (Some(_), Some(t)) => t,
        _ => (None, None, rest),
    };
    Message {
        priority,
        timestamp,
        hostname: hostname.and_then(nil),
        appname,
        procid,
        message,
        ..Message::default()
    }
}

fn is_tag(w: &str) -> bool {
    w.ends_with(':') || (w.contains('[') && w.ends_with("]:"))
}

/// `prog[pid]: msg` or `prog: msg`.
fn tag(s: &str) -> Option<(Option<&str>, Option<&str>, &str)> {
    let (w, rest) = field(s)?;
    let w = w.strip_suffix(':')?;
    let (prog, pid) = match w.split_once('[') {
        Some((p, pid)) => (p, Some(pid.strip_suffix(']')?)),
        None => (w, None),
    };
    if prog.is_empty() || prog.len() > 128 {
        return None;
    }
    Some((Some(prog), pid.filter(|p| !p.is_empty()), rest))
}

/// `Mmm dd hh:mm:ss[.frac][ yyyy]` or `Mmm dd yyyy hh:mm:ss`.
fn bsd_time(s: &str) -> Option<(Stamp, &str)> {
    let month = MONTHS
        .iter()
        .position(|m| s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(m)))?;
    let r = s.get(3..)?.strip_prefix(' ')?.trim_start_matches(' ');
    let (day, r) = field(r)?;
    let day: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let (mut word, mut r) = field(r)?;
    let mut year = None;
    if word.len() == 4 && word.bytes().all(|b| b.is_ascii_digit()) {
        year = word.parse().ok();
        (word, r) = field(r)?;
    }
    let time = clock(word)?;
    if year.is_none()
        && let Some((y, after)) = field(r)
        && y.len() == 4
        && y.bytes().all(|b| b.is_ascii_digit())
    {
        year = y.parse().ok();
        r = after;
    }
    Some((
        Stamp::Local {
            year,
            month: u32::try_from(month).ok()? + 1,
            day,
            time,
        },
        r,
    ))
}

/// `hh:mm:ss[.fraction]`.
fn clock(w: &str) -> Option<NaiveTime> {
    let (hms, frac) = match w.split_once(['.', ',']) {
        Some((a, b)) => (a, Some(b)),
        None => (w, None),
    };
    let mut it = hms.split(':');
    let (h, m, s) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || [h, m, s].iter().any(|p| p.len() != 2) {
        return None;
    }
    let nanos = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return None,
    };
    NaiveTime::from_hms_nano_opt(h.parse().ok()?, m.parse().ok()?, s.parse().ok()?, nanos)
}

/// An RFC 3339 time stamp as the first word (rsyslog's `RSYSLOG_ForwardFormat`).
fn rfc3339_word(s: &str) -> Option<(Stamp, &str)> {
    let (w, r) = field(s)?;
    if !w.as_bytes().first()?.is_ascii_digit() {
        return None;
    }
    DateTime::parse_from_rfc3339(w)
        .ok()
        .map(|t| (Stamp::Zoned(t), r))
}

/// A zoneless time stamp completed with `year`.
pub fn local_datetime(year: i32, month: u32, day: u32, time: NaiveTime) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(year, month, day).map(|d| d.and_time(time))
}

/// The facility's name, as Filebeat writes it (the `syslog` processor's table).
pub fn facility_name(code: u8) -> &'static str {
    super::facility_name(code).unwrap_or("unknown")
}

/// The severity's name, as Filebeat writes it (the `syslog` processor's table).
pub fn severity_name(code: u8) -> &'static str {
    super::severity_name(code).unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_example_of_the_rfc() {
        let m = parse(
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"] \u{feff}An application event log entry...",
            Format::Rfc5424,
        )
        .unwrap();
        assert_eq!(m.priority, Some(165));
        assert_eq!(m.version, Some(1));
        assert_eq!(
            m.timestamp,
            Some(Stamp::Zoned(
                DateTime::parse_from_rfc3339("2003-10-11T22:14:15.003Z").unwrap()
            ))
        );
        assert_eq!(m.hostname, Some("mymachine.example.com"));
        assert_eq!(m.appname, Some("evntslog"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid, Some("ID47"));
        assert_eq!(m.structured_data.len(), 2);
        assert_eq!(m.structured_data[0].0, "exampleSDID@32473");
        assert_eq!(
            m.structured_data[0].1[1],
            ("eventSource".into(), "Application".into())
        );
        assert_eq!(m.message, "An application event log entry...");
    }

    #[test]
    fn rfc5424_nil_values_and_escapes() {
        let m = parse("<34>1 - - - - - -", Format::Auto).unwrap();
        assert_eq!(m.version, Some(1));
        assert_eq!((m.timestamp, m.hostname, m.message), (None, None, ""));
        let m = parse(
            r#"<34>1 - h a 12 - [x@1 k="a\"b\]c\\d\e"] msg"#,
            Format::Auto,
        )
        .unwrap();
        assert_eq!(m.structured_data[0].1[0].1, r#"a"b]c\d\e"#);
        assert_eq!(m.procid, Some("12"));
        assert!(parse(r#"<34>1 - h a 12 - [x@1 k="open] msg"#, Format::Rfc5424).is_err());
        assert!(parse("<34>1 2003-13-45T00:00:00Z h a - - -", Format::Rfc5424).is_err());
    }

    #[test]
    fn rfc3164_variants() {
        let m = parse(
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            Format::Rfc3164,
        )
        .unwrap();
        assert_eq!(m.priority, Some(34));
        assert_eq!(
            m.timestamp,
            Some(Stamp::Local {
                year: None,
                month: 10,
                day: 11,
                time: NaiveTime::from_hms_opt(22, 14, 15).unwrap()
            })
        );
        assert_eq!(m.hostname, Some("mymachine"));
        assert_eq!(m.appname, Some("su"));
        assert_eq!(m.message, "'su root' failed for lonvick on /dev/pts/8");
        // Space-padded day, pid, no host name.
        let m = parse("<13>Feb  5 17:32:18 sshd[4242]: Accepted key", Format::Auto).unwrap();
        assert_eq!(
            (m.hostname, m.appname, m.procid),
            (None, Some("sshd"), Some("4242"))
        );
        assert_eq!(m.message, "Accepted key");
        // Fraction and year (Cisco style), no PRI.
        let m = parse(
            "Feb 05 2024 17:32:18.123 router1 %LINK-3-UPDOWN: down",
            Format::Auto,
        )
        .unwrap();
        match m.timestamp {
            Some(Stamp::Local { year, time, .. }) => {
                assert_eq!(year, Some(2024));
                assert_eq!(
                    time,
                    NaiveTime::from_hms_milli_opt(17, 32, 18, 123).unwrap()
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(m.hostname, Some("router1"));
        assert_eq!(m.appname, Some("%LINK-3-UPDOWN"));
        // RFC 3339 time in an RFC 3164 message.
        let m = parse(
            "<13>2026-12-06T10:00:00.5+01:00 web1 nginx: GET /",
            Format::Auto,
        )
        .unwrap();
        assert!(matches!(m.timestamp, Some(Stamp::Zoned(_))));
        assert_eq!(
            (m.hostname, m.appname, m.message),
            (Some("web1"), Some("nginx"), "GET /")
        );
        // No header at all: all of it is the message.
        let m = parse("<13>just text: here", Format::Auto).unwrap();
        assert_eq!(
            (m.timestamp, m.appname, m.message),
            (None, None, "just text: here")
        );
    }

    #[test]
    fn bad_priorities() {
        assert_eq!(parse("<192>x", Format::Auto), Err(ParseError::Priority));
        assert_eq!(parse("<1a>x", Format::Auto), Err(ParseError::Priority));
        assert_eq!(parse("<13", Format::Auto), Err(ParseError::Priority));
        assert_eq!(parse("", Format::Auto), Err(ParseError::Empty));
    }

    #[test]
    fn names() {
        assert_eq!(facility_name(165 / 8), "local4");
        assert_eq!(severity_name(165 % 8), "Notice");
        assert_eq!(facility_name(4), "security/authorization");
    }

    // The cases of the processor's former parser, on this one.

    fn local(m: &Message<'_>) -> Option<(Option<i32>, u32, u32, NaiveTime)> {
        match m.timestamp {
            Some(Stamp::Local {
                year,
                month,
                day,
                time,
            }) => Some((year, month, day, time)),
            _ => None,
        }
    }

    #[test]
    fn processor_rfc5424() {
        let m = parse(r#"<165>1 2022-01-11T22:14:15.003Z mymachine.example.com eventslog 1024 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] this is the message"#, Format::Auto).unwrap();
        assert_eq!((m.priority, m.version), (Some(165), Some(1)));
        assert_eq!(
            m.timestamp,
            Some(Stamp::Zoned(
                DateTime::parse_from_rfc3339("2022-01-11T22:14:15.003Z").unwrap()
            ))
        );
        assert_eq!(
            (m.hostname, m.appname, m.procid, m.msgid),
            (
                Some("mymachine.example.com"),
                Some("eventslog"),
                Some("1024"),
                Some("ID47")
            )
        );
        assert_eq!(m.structured_data.len(), 2);
        assert_eq!(
            m.structured_data[0].1[1],
            ("eventSource".into(), "Application".into())
        );
        assert_eq!(m.message, "this is the message");
        let m = parse(
            r#"<34>1 2003-10-11T22:14:15.003Z - - - - [a b="q\"uo\]te"] "#,
            Format::Rfc5424,
        )
        .unwrap();
        assert_eq!(m.hostname, None);
        assert_eq!(m.structured_data[0].1[0].1, "q\"uo]te");
        let m = parse(
            "<34>1 2003-10-11T22:14:15Z host app - - - \u{feff}hello",
            Format::Auto,
        )
        .unwrap();
        assert_eq!(m.message, "hello");
        for bad in [
            "<34>1 2003 h a p m [x",
            "<34>1 t h a p m x",
            "<999>1 x",
            "<34>x 2003",
        ] {
            assert!(parse(bad, Format::Rfc5424).is_err(), "{bad}");
        }
    }

    #[test]
    fn processor_rfc3164() {
        let m = parse(
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            Format::Auto,
        )
        .unwrap();
        assert_eq!(m.priority, Some(34));
        assert_eq!(
            local(&m),
            Some((None, 10, 11, NaiveTime::from_hms_opt(22, 14, 15).unwrap()))
        );
        assert_eq!(
            (m.hostname, m.appname, m.procid),
            (Some("mymachine"), Some("su"), None)
        );
        assert_eq!(m.message, "'su root' failed for lonvick on /dev/pts/8");
        let m = parse(
            "<13>Jan  3 04:05:06 web-1 sshd[1234]: Accepted publickey",
            Format::Auto,
        )
        .unwrap();
        assert_eq!(
            (m.appname, m.procid, m.message),
            (Some("sshd"), Some("1234"), "Accepted publickey")
        );
        let m = parse(
            "<13>2003-10-11T22:14:15.123456-06:00 host app: x",
            Format::Auto,
        )
        .unwrap();
        assert_eq!(
            m.timestamp,
            Some(Stamp::Zoned(
                DateTime::parse_from_rfc3339("2003-10-11T22:14:15.123456-06:00").unwrap()
            ))
        );
        let m = parse("Jan 23 14:09:01 cron[9]: ran", Format::Rfc3164).unwrap();
        assert_eq!(
            (m.priority, m.hostname, m.appname),
            (None, None, Some("cron"))
        );
        let m = parse("<13>Jan 23 14:09:01 host just a message", Format::Auto).unwrap();
        assert_eq!((m.appname, m.message), (None, "just a message"));
        // No time stamp: no header; the processor refuses such a message (see `syslog`).
        let m = parse("<13>no time here", Format::Auto).unwrap();
        assert_eq!((m.timestamp, m.message), (None, "no time here"));
    }

    mod fuzz {
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]
            /// Any text: parsed or an error, never a panic.
            #[test]
            fn never_panics(s in "(<[0-9]{1,4}>)?([0-9] )?(Jan|2003-10-11T22:14:15Z)?( [a-z\\[\\]:=\"\\\\ -]{0,8}){0,8}|\\PC{0,60}", f in 0..3u8) {
                let format = [super::super::Format::Auto, super::super::Format::Rfc3164, super::super::Format::Rfc5424][usize::from(f)];
                let _ = super::super::parse(&s, format);
            }
        }
    }
}
