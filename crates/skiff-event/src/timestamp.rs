//! `@timestamp`: nanoseconds since the Unix epoch, written as RFC 3339 in UTC with milliseconds,
//! as the Beats write it (`2026-11-22T03:13:47.123Z`).
//!
//! The formatter is written by hand because it runs once per event on the hottest path; it is
//! the civil-from-days algorithm (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms"),
//! checked against chrono in the tests.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(d.as_nanos().min(i64::MAX as u128) as i64),
            Err(e) => Timestamp(-(e.duration().as_nanos().min(i64::MAX as u128) as i64)),
        }
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Parses RFC 3339 (`2026-11-22T03:13:47.123Z`, any offset, any fraction).
    pub fn parse(s: &str) -> Option<Self> {
        let dt = chrono::DateTime::parse_from_rfc3339(s).ok()?;
        dt.timestamp_nanos_opt().map(Timestamp)
    }

    /// This time as a chrono UTC date-time (for date-based templates such as index names).
    pub fn to_chrono(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_nanos(self.0)
    }

    /// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` to `out`.
    ///
    /// Events come in bursts from the same second, so the date and time up to the seconds
    /// (`YYYY-MM-DDTHH:MM:SS.`, 20 bytes) are kept per thread and only the milliseconds are
    /// written for each event: the calendar arithmetic runs once a second, not once an event.
    pub fn write_rfc3339_millis(self, out: &mut Vec<u8>) {
        thread_local! {
            static PREFIX: std::cell::Cell<(i64, [u8; 20])> = const { std::cell::Cell::new((i64::MIN, [0; 20])) };
        }
        let millis = self.as_millis();
        let secs = millis.div_euclid(1000);
        let ms = millis.rem_euclid(1000) as u32;
        let (cached, mut prefix) = PREFIX.get();
        if cached != secs {
            prefix = second_prefix(secs);
            PREFIX.set((secs, prefix));
        }
        let mut buf = [0u8; 24];
        buf[..20].copy_from_slice(&prefix);
        put(&mut buf[20..23], ms, 3);
        buf[23] = b'Z';
        out.extend_from_slice(&buf);
    }

    /// The RFC 3339 text of this time.
    pub fn to_rfc3339_millis(self) -> String {
        let mut v = Vec::with_capacity(24);
        self.write_rfc3339_millis(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// `YYYY-MM-DDTHH:MM:SS.` for `secs` seconds since the epoch.
fn second_prefix(secs: i64) -> [u8; 20] {
    let days = secs.div_euclid(86_400);
    let s_of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, rest) = (s_of_day / 3600, s_of_day % 3600);
    let (mm, ss) = (rest / 60, rest % 60);
    let mut buf = [0u8; 20];
    put(&mut buf[0..4], y.clamp(0, 9999) as u32, 4);
    buf[4] = b'-';
    put(&mut buf[5..7], m, 2);
    buf[7] = b'-';
    put(&mut buf[8..10], d, 2);
    buf[10] = b'T';
    put(&mut buf[11..13], hh as u32, 2);
    buf[13] = b':';
    put(&mut buf[14..16], mm as u32, 2);
    buf[16] = b':';
    put(&mut buf[17..19], ss as u32, 2);
    buf[19] = b'.';
    buf
}

fn put(dst: &mut [u8], mut v: u32, width: usize) {
    for i in (0..width).rev() {
        dst[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339_millis())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_chrono_across_eras() {
        for &secs in &[
            0i64,
            951_782_400,
            1_700_000_000,
            4_102_444_799,
            1_234_567_890,
            68_169_600,
        ] {
            for &ms in &[0i64, 1, 999] {
                let ts = Timestamp((secs * 1000 + ms) * 1_000_000 + 123);
                let expected = ts.to_chrono().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
                assert_eq!(ts.to_rfc3339_millis(), expected);
            }
        }
    }

    #[test]
    fn parse_round_trip() {
        let ts = Timestamp::parse("2026-11-22T03:13:47.123+01:00").unwrap();
        assert_eq!(ts.to_rfc3339_millis(), "2026-11-22T02:13:47.123Z");
        assert!(Timestamp::parse("yesterday").is_none());
    }
}
