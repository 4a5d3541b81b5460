//! Helpers shared by the tests of this crate.

#![allow(dead_code)]

use regex::Regex;
use serde_json::{Map, Value};

/// Splits a log into `(offset, text, multiline)` events with the fileset's multiline settings
/// (`pattern`, `negate`, `match: after`), as the input does; empty lines make no event, and
/// events matching `exclude_lines` are dropped.
pub fn split(log: &str, input: &Map<String, Value>) -> Vec<(usize, String, bool)> {
    let ml = input
        .get("parsers")
        .and_then(Value::as_array)
        .and_then(|p| p.iter().find_map(|x| x.get("multiline")));
    let rule = ml.map(|m| {
        let re =
            Regex::new(m["pattern"].as_str().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        (re, m["negate"].as_bool().unwrap_or(false))
    });
    let exclude: Vec<Regex> = input
        .get("exclude_lines")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| Regex::new(r.as_str()?).ok())
        .collect();
    let mut out: Vec<(usize, String, bool)> = Vec::new();
    let mut offset = 0;
    for raw in log.split_inclusive('\n') {
        let line = raw.trim_end_matches('\n').trim_end_matches('\r');
        let here = offset;
        offset += raw.len();
        let continues = match &rule {
            Some((re, negate)) => re.is_match(line) != *negate,
            None => false,
        };
        match out.last_mut() {
            Some(last) if continues => {
                last.1.push('\n');
                last.1.push_str(line);
                last.2 = true;
            }
            _ if line.is_empty() => {}
            _ => out.push((here, line.to_string(), false)),
        }
    }
    // As Filebeat: `exclude_lines` applies to the whole event, after multiline.
    out.retain(|(_, text, _)| !exclude.iter().any(|r| r.is_match(text)));
    out
}

/// A program the test needs, from `PATH` or the usual sbin folders; a missing one fails the
/// test loudly (scripts/ensure-test-deps installs them).
pub fn tool(name: &str) -> std::path::PathBuf {
    let dirs = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(Into::into))
        .chain(glob_pg_bin())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed: run scripts/ensure-test-deps"))
}

/// PostgreSQL's server programs live in a versioned folder on Debian.
fn glob_pg_bin() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    dirs.sort();
    dirs.reverse();
    dirs
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A child process killed (and reaped) when the test ends, passed or not.
pub struct Guard(pub std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `f` gives something, up to `secs` seconds (a start-up wait, not a measure).
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs a log through a fileset as its input would (multiline, exclude_lines) and returns
/// the flattened documents.
pub fn parse_log(module: &str, fileset: &str, log: &str) -> Vec<Map<String, Value>> {
    let def = skiff_modules::fileset(module, fileset).unwrap_or_else(|e| panic!("{e}"));
    let p = skiff_modules::processor::FilesetProcessor::new(module, fileset, None)
        .unwrap_or_else(|e| panic!("{e}"));
    split(log, &def.input)
        .into_iter()
        .map(|(offset, line, multi)| {
            let mut d = Map::new();
            skiff_modules::doc::insert(&mut d, "message", Value::String(line));
            skiff_modules::doc::insert(&mut d, "log.offset", Value::from(offset));
            if multi {
                skiff_modules::doc::insert(&mut d, "log.flags", serde_json::json!(["multiline"]));
            }
            p.run_doc(&mut d);
            skiff_modules::doc::flatten(&d)
        })
        .collect()
}

/// The Elasticsearch field types of the modules' field lists (`fields.yml`) that a JSON
/// value can show.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    /// `long` / `integer`: a whole JSON number.
    Long,
    /// `long`, where the module's pipeline writes the number as text and Elasticsearch's
    /// mapping coerces it (Filebeat's own documents show the text: apache error's
    /// `source.port`, PostgreSQL csvlog's `process.pid`).
    CoercedLong,
    /// `float` / `double` / `scaled_float`: a JSON number.
    Float,
    /// `keyword` / `text`: a string.
    Keyword,
    /// `ip`: a string that parses as an address.
    Ip,
    /// `date`: an RFC 3339 string.
    Date,
    /// `boolean`.
    Bool,
}

/// Asserts that every document parsed (no `error.message`), has every field of `always`,
/// and that every field of `types` it has is of that type.
pub fn check(docs: &[Map<String, Value>], always: &[&str], types: &[(&str, Ty)]) {
    assert!(!docs.is_empty(), "no events");
    for d in docs {
        assert!(
            !d.contains_key("error.message"),
            "not parsed: {:?}\n{d:#?}",
            d.get("error.message")
        );
        for f in always {
            assert!(d.contains_key(*f), "no {f} in {d:#?}");
        }
        for (f, ty) in types {
            let Some(v) = d.get(*f) else { continue };
            let ok = match ty {
                Ty::Long => v.is_i64() || v.is_u64(),
                Ty::CoercedLong => v.as_str().is_some_and(|t| t.parse::<i64>().is_ok()),
                Ty::Float => v.is_number(),
                Ty::Keyword => v.is_string(),
                Ty::Ip => v
                    .as_str()
                    .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
                Ty::Date => v
                    .as_str()
                    .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
                Ty::Bool => v.is_boolean(),
            };
            assert!(ok, "{f} is {v}, not a {ty:?}");
        }
    }
}

/// The documents whose field `f` equals `v`.
pub fn with<'a>(docs: &'a [Map<String, Value>], f: &str, v: &Value) -> Vec<&'a Map<String, Value>> {
    docs.iter().filter(|d| d.get(f) == Some(v)).collect()
}

/// A field of a flattened document, null when it is missing (so a failed check says what it
/// found instead of panicking on the index).
pub fn field<'a>(d: &'a Map<String, Value>, f: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    d.get(f).unwrap_or(&NULL)
}

/// Writes `GeoLite2-City.mmdb` and `GeoLite2-ASN.mmdb` into a new temporary folder with
/// MaxMind's real database writer (`tests/support/geoip-test-db.pl`, Debian's
/// `libmaxmind-db-writer-perl`, installed by `scripts/ensure-test-deps`): MaxMind's own test
/// databases cannot be fetched here, so the test makes databases in their layout holding the
/// corpus's addresses. A missing writer fails the test.
pub fn geoip_test_databases() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/geoip-test-db.pl");
    let out = std::process::Command::new("perl")
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("perl: {e}"));
    assert!(
        out.status.success(),
        "writing the GeoIP test databases failed (is libmaxmind-db-writer-perl installed? \
         run scripts/ensure-test-deps): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}
