//! RFC 3164 and RFC 5424 syslog messages, as the `syslog` processor reads them.
//!
//! Hand-written: small, and the processor needs libbeat's leniencies (an RFC 3339 time in an
//! RFC 3164 message, a missing host name) that the strict crates do not have. It slices the
//! text only at positions it found, so no input can make it panic.

/// A parsed message; the time is left as text for the processor to place in a zone.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Syslog {
    /// `<PRI>`.
    pub priority: Option<u8>,
    /// RFC 5424's version (1); `None` for RFC 3164.
    pub version: Option<u16>,
    /// The time as written.
    pub timestamp: Option<String>,
    /// HOSTNAME.
    pub hostname: Option<String>,
    /// APP-NAME, or RFC 3164's TAG.
    pub appname: Option<String>,
    /// PROCID, or the `[pid]` of RFC 3164's TAG.
    pub procid: Option<String>,
    /// MSGID (RFC 5424).
    pub msgid: Option<String>,
    /// STRUCTURED-DATA (RFC 5424): elements with their parameters, in order.
    pub structured_data: Vec<(String, Vec<(String, String)>)>,
    /// MSG.
    pub message: String,
}

/// Which format to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Decide by the version after `<PRI>`.
    Auto,
    /// BSD syslog.
    Rfc3164,
    /// The IETF format.
    Rfc5424,
}

fn priority(s: &str) -> Result<(Option<u8>, &str), String> {
    let Some(rest) = s.strip_prefix('<') else {
        return Ok((None, s));
    };
    let end = rest
        .find('>')
        .filter(|&e| (1..=3).contains(&e))
        .ok_or("bad <PRI>")?;
    let pri: u8 = rest[..end].parse().map_err(|_| "bad <PRI>")?;
    if pri > 191 {
        return Err("<PRI> above 191".into());
    }
    Ok((Some(pri), &rest[end + 1..]))
}

/// The next space-separated token and what follows the space.
fn token(s: &str) -> (&str, &str) {
    match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

fn nil(t: &str) -> Option<String> {
    (t != "-" && !t.is_empty()).then(|| t.to_owned())
}

/// Parses a message in `format`.
pub fn parse(text: &str, format: Format) -> Result<Syslog, String> {
    let text = text.trim_end_matches(['\n', '\r']);
    let (pri, rest) = priority(text)?;
    let is_5424 = match format {
        Format::Rfc5424 => true,
        Format::Rfc3164 => false,
        Format::Auto => {
            let (v, _) = token(rest);
            pri.is_some() && !v.is_empty() && v.len() <= 3 && v.bytes().all(|b| b.is_ascii_digit())
        }
    };
    let mut m = if is_5424 {
        parse_5424(rest)?
    } else {
        parse_3164(rest)?
    };
    m.priority = pri;
    Ok(m)
}

fn parse_5424(s: &str) -> Result<Syslog, String> {
    let mut m = Syslog::default();
    let (v, s) = token(s);
    m.version = Some(
        v.parse()
            .map_err(|_| format!("RFC 5424 version `{v}` is not a number"))?,
    );
    let (ts, s) = token(s);
    m.timestamp = nil(ts);
    let (host, s) = token(s);
    m.hostname = nil(host);
    let (app, s) = token(s);
    m.appname = nil(app);
    let (proc, s) = token(s);
    m.procid = nil(proc);
    let (msgid, s) = token(s);
    m.msgid = nil(msgid);
    let rest = if let Some(r) = s.strip_prefix('-') {
        r
    } else if s.starts_with('[') {
        structured_data(s, &mut m.structured_data)?
    } else if s.is_empty() {
        ""
    } else {
        return Err("RFC 5424 structured data must be `-` or `[...]`".into());
    };
    let msg = rest.strip_prefix(' ').unwrap_or(rest);
    m.message = msg.strip_prefix('\u{feff}').unwrap_or(msg).to_owned();
    Ok(m)
}

/// Reads `[id k="v" ...]...`, returns what follows.
fn structured_data<'a>(
    mut s: &'a str,
    out: &mut Vec<(String, Vec<(String, String)>)>,
) -> Result<&'a str, String> {
    while let Some(r) = s.strip_prefix('[') {
        let id_end = r.find([' ', ']']).ok_or("unterminated structured data")?;
        let id = &r[..id_end];
        let mut params = Vec::new();
        let mut rest = &r[id_end..];
        loop {
            rest = rest.trim_start_matches(' ');
            if let Some(after) = rest.strip_prefix(']') {
                rest = after;
                break;
            }
            let eq = rest.find("=\"").ok_or("bad structured data parameter")?;
            let name = &rest[..eq];
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e @ ('"' | '\\' | ']'))) => value.push(e),
                        Some((_, e)) => {
                            value.push('\\');
                            value.push(e);
                        }
                        None => break,
                    },
                    '"' => {
                        end = Some(eq + 2 + i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or("unterminated structured data value")?;
            params.push((name.to_owned(), value));
            rest = &rest[end..];
        }
        out.push((id.to_owned(), params));
        s = rest;
    }
    Ok(s)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn parse_3164(s: &str) -> Result<Syslog, String> {
    let mut m = Syslog::default();
    // `Mmm dd hh:mm:ss` (day space-padded), or an RFC 3339 time.
    let rest =
        if s.len() >= 15 && MONTHS.iter().any(|mo| s.starts_with(mo)) && s.is_char_boundary(15) {
            m.timestamp = Some(s[..15].to_owned());
            s[15..].strip_prefix(' ').unwrap_or(&s[15..])
        } else if s.len() > 10
            && s.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && s.as_bytes()[4] == b'-'
        {
            let (ts, r) = token(s);
            m.timestamp = Some(ts.to_owned());
            r
        } else {
            return Err("RFC 3164 message without a timestamp".into());
        };
    // HOSTNAME, unless the first word is already the tag (`sshd[12]:`).
    let (first, after) = token(rest);
    let (tag_part, rest) = if first.ends_with(':') || first.contains('[') {
        (rest, "")
    } else {
        m.hostname = nil(first);
        (after, "")
    };
    let _ = rest;
    // TAG: letters up to `[`, `:` or a space.
    let tag_end = tag_part.find([':', '[', ' ']).unwrap_or(tag_part.len());
    let tag = &tag_part[..tag_end];
    let mut msg = &tag_part[tag_end..];
    if let Some(r) = msg.strip_prefix('[')
        && let Some(close) = r.find(']')
    {
        m.procid = nil(&r[..close]);
        msg = &r[close + 1..];
    }
    if let Some(r) = msg.strip_prefix(':') {
        m.appname = nil(tag);
        msg = r;
    } else if m.procid.is_some() {
        m.appname = nil(tag);
    } else {
        // No tag after all: the word is part of the message.
        msg = tag_part;
    }
    m.message = msg.strip_prefix(' ').unwrap_or(msg).to_owned();
    Ok(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc5424() {
        let m = parse(r#"<165>1 2022-01-11T22:14:15.003Z mymachine.example.com eventslog 1024 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] this is the message"#, Format::Auto).unwrap();
        assert_eq!((m.priority, m.version), (Some(165), Some(1)));
        assert_eq!(m.timestamp.as_deref(), Some("2022-01-11T22:14:15.003Z"));
        assert_eq!(
            (
                m.hostname.as_deref(),
                m.appname.as_deref(),
                m.procid.as_deref(),
                m.msgid.as_deref()
            ),
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
    fn rfc3164() {
        let m = parse(
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            Format::Auto,
        )
        .unwrap();
        assert_eq!(m.priority, Some(34));
        assert_eq!(m.timestamp.as_deref(), Some("Oct 11 22:14:15"));
        assert_eq!(
            (
                m.hostname.as_deref(),
                m.appname.as_deref(),
                m.procid.as_deref()
            ),
            (Some("mymachine"), Some("su"), None)
        );
        assert_eq!(m.message, "'su root' failed for lonvick on /dev/pts/8");
        let m = parse(
            "<13>Jan  3 04:05:06 web-1 sshd[1234]: Accepted publickey",
            Format::Auto,
        )
        .unwrap();
        assert_eq!(
            (
                m.appname.as_deref(),
                m.procid.as_deref(),
                m.message.as_str()
            ),
            (Some("sshd"), Some("1234"), "Accepted publickey")
        );
        let m = parse(
            "<13>2003-10-11T22:14:15.123456-06:00 host app: x",
            Format::Auto,
        )
        .unwrap();
        assert_eq!(
            m.timestamp.as_deref(),
            Some("2003-10-11T22:14:15.123456-06:00")
        );
        let m = parse("Jan 23 14:09:01 cron[9]: ran", Format::Rfc3164).unwrap();
        assert_eq!(
            (m.priority, m.hostname.as_deref(), m.appname.as_deref()),
            (None, None, Some("cron"))
        );
        let m = parse("<13>Jan 23 14:09:01 host just a message", Format::Auto).unwrap();
        assert_eq!((m.appname, m.message.as_str()), (None, "just a message"));
        assert!(parse("<13>no time here", Format::Auto).is_err());
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
