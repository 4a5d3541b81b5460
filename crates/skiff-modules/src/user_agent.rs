//! The `user_agent` step: Elasticsearch's user_agent processor at the edge, on the uap-core
//! regexes (`uap/regexes.yaml`, version and origin in `uap/README.md`), embedded in the binary
//! so that no package is needed at run time.
//!
//! How a string is parsed is Elasticsearch's, not the uap specification's, where the two
//! differ and the difference shows in documents:
//! - each of the three lists (agents, operating systems, devices) is tried in order and the
//!   first regex that matches anywhere in the string wins (Java's `Matcher.find`);
//! - a version part is the regex group as Java gives it: a group that matched the empty string
//!   is `""`, not absent, so `Firefox/49.0` has the parts `49`, `0`, `""` and the version
//!   `49.0.` (with its trailing dot, as Elasticsearch writes it);
//! - the fields are Elasticsearch's: `name` (`Other` when no agent regex matched), `version`,
//!   `os.name`/`os.version`/`os.full` (only when an OS regex matched), `device.name` (`Other`
//!   when no device regex matched) and `original`.
//!
//! Replacements (`family_replacement: 'Firefox ($1)'`, `os_v1_replacement: '$1'`, ...) follow
//! the uap specification: every `$N` is the group's text. Elasticsearch replaces only `$1`,
//! and only in names; with the regexes embedded here that writes a literal `$1` or `$2` into
//! some versions and device names, which skiff does not copy (docs/modules.md).
//!
//! The regexes are compiled once per process, the first time a string is parsed, with Java's
//! defaults: ASCII classes (`\d`, `\w`, `\s`), ASCII case folding for `regex_flag: 'i'`.
//! Rust's `regex` engine runs in time linear in the input, and only the first
//! [`MAX_PARSED`] bytes of a string are parsed, so a hostile string costs a bounded time.
//! Results are kept in a process-wide LRU cache keyed by the string, bounded both in entries
//! ([`CACHE_ENTRIES`], Elasticsearch's default `ingest.user_agent.cache_size`) and in bytes
//! ([`CACHE_BYTES`]): access logs repeat a few agents, so most events cost a lookup.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use lru::LruCache;
use regex::bytes::{Captures, Regex, RegexBuilder};
use serde_json::{Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// The uap-core database, embedded at build time (see `uap/README.md`).
const REGEXES: &str = include_str!("../uap/regexes.yaml");

/// How many parsed agents the cache keeps (Elasticsearch's default cache size).
pub const CACHE_ENTRIES: usize = 1000;
/// How many bytes (strings and parsed parts, estimated) the cache keeps at most.
pub const CACHE_BYTES: usize = 1 << 20;
/// Strings longer than this are not cached (one would push out many common ones).
const CACHE_MAX_ENTRY: usize = 4096;
/// Only this many bytes of a string are parsed (cut at a character boundary): real user
/// agents are far shorter, and it bounds the time a hostile string costs.
pub const MAX_PARSED: usize = 8192;

/// A part of the output the `properties` setting can select.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Property {
    Name,
    Os,
    Device,
    Original,
    Version,
}

impl Property {
    const ALL: [Property; 5] = [
        Property::Name,
        Property::Os,
        Property::Device,
        Property::Original,
        Property::Version,
    ];

    /// Elasticsearch's names, matched without regard to case.
    fn parse(name: &str) -> Result<Self, String> {
        match name.to_ascii_lowercase().as_str() {
            "name" => Ok(Property::Name),
            "os" => Ok(Property::Os),
            "device" => Ok(Property::Device),
            "original" => Ok(Property::Original),
            "version" => Ok(Property::Version),
            _ => Err(format!(
                "user_agent: illegal property value [{name}]. valid values are [NAME, OS, \
                 DEVICE, ORIGINAL, VERSION]"
            )),
        }
    }
}

/// A compiled `user_agent` step.
#[derive(Debug)]
pub struct UserAgentStep {
    /// The field holding the string.
    pub field: String,
    /// Where the parsed object goes (it replaces what was there, as in Elasticsearch).
    pub target: String,
    properties: Vec<Property>,
}

impl UserAgentStep {
    /// The step of `- user_agent: {field, target_field, properties, extract_device_type}`.
    pub fn new(
        field: String,
        target: String,
        properties: Option<Vec<String>>,
        extract_device_type: bool,
    ) -> Result<Self, String> {
        if extract_device_type {
            // Elasticsearch's device types come from rules of its own (not uap-core), under
            // its licence; none of Filebeat's pipelines asks for them.
            return Err(
                "user_agent: `extract_device_type: true` is not supported by skiff \
                        (Elasticsearch's device-type rules are not part of uap-core); remove it"
                    .into(),
            );
        }
        let properties = match properties {
            None => Property::ALL.to_vec(),
            Some(names) => {
                let mut out = Vec::new();
                for n in &names {
                    let p = Property::parse(n)?;
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
                out
            }
        };
        Ok(Self {
            field,
            target,
            properties,
        })
    }

    /// The object written to the target for the string `text`.
    pub fn value_for(&self, text: &str) -> Value {
        let details = cached(text);
        let mut out = Map::new();
        for p in &self.properties {
            match p {
                Property::Original => {
                    out.insert("original".into(), Value::from(text));
                }
                Property::Name => {
                    let name = details.agent.as_ref().map_or("Other", |a| a.name.as_str());
                    out.insert("name".into(), Value::from(name));
                }
                Property::Version => {
                    if let Some(v) = details.agent.as_ref().and_then(VersionedName::version) {
                        out.insert("version".into(), Value::from(v));
                    }
                }
                Property::Os => {
                    if let Some(os) = &details.os {
                        let mut m = Map::new();
                        m.insert("name".into(), Value::from(os.name.as_str()));
                        if let Some(v) = os.version() {
                            m.insert("full".into(), Value::from(format!("{} {v}", os.name)));
                            m.insert("version".into(), Value::from(v));
                        }
                        out.insert("os".into(), Value::Object(m));
                    }
                }
                Property::Device => {
                    let name = details.device.as_ref().map_or("Other", |d| d.name.as_str());
                    let mut m = Map::new();
                    m.insert("name".into(), Value::from(name));
                    out.insert("device".into(), Value::Object(m));
                }
            }
        }
        Value::Object(out)
    }
}

/// A name and up to four version parts, as one regex of the database gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionedName {
    /// The agent's, OS's or device's name.
    pub name: String,
    /// Version parts: major, minor, patch, build. `Some("")` is a group that matched nothing.
    pub parts: [Option<String>; 4],
}

impl VersionedName {
    /// Elasticsearch's version text: the parts joined by `.` up to the first absent one;
    /// nothing without a major part.
    pub fn version(&self) -> Option<String> {
        let mut out: Option<String> = None;
        for part in &self.parts {
            let Some(p) = part else { break };
            match &mut out {
                None => out = Some(p.clone()),
                Some(o) => {
                    o.push('.');
                    o.push_str(p);
                }
            }
        }
        out
    }

    fn bytes(&self) -> usize {
        self.name.len() + self.parts.iter().flatten().map(String::len).sum::<usize>()
    }
}

/// What the database says about one string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    /// The first agent regex that matched.
    pub agent: Option<VersionedName>,
    /// The first OS regex that matched.
    pub os: Option<VersionedName>,
    /// The first device regex that matched (its name only, as Elasticsearch reads it).
    pub device: Option<VersionedName>,
}

impl Details {
    fn bytes(&self) -> usize {
        [&self.agent, &self.os, &self.device]
            .into_iter()
            .flatten()
            .map(VersionedName::bytes)
            .sum()
    }
}

/// One regex of the database with its replacements (`None`: take the group).
struct Rule {
    regex: Regex,
    name: Option<String>,
    parts: [Option<String>; 4],
}

impl Rule {
    /// Elasticsearch's match: `None` when the regex does not match or yields no name (then
    /// the next regex of the list is tried).
    fn apply(&self, s: &[u8]) -> Option<VersionedName> {
        // `is_match` first: on the many regexes that do not match it is far cheaper than
        // `captures`, and groups are needed from one regex per list only (the nginx bench's
        // distinct-agents case ran twice as fast with it, docs/performance.md).
        if !self.regex.is_match(s) {
            return None;
        }
        let caps = self.regex.captures(s)?;
        let group = |i: usize| {
            caps.get(i)
                .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
        };
        let name = match &self.name {
            Some(r) => Some(substitute(r, &caps)).filter(|n| !n.is_empty()),
            None => group(1),
        }?;
        let mut parts: [Option<String>; 4] = Default::default();
        for (i, part) in parts.iter_mut().enumerate() {
            *part = match &self.parts[i] {
                Some(r) => Some(substitute(r, &caps)).filter(|v| !v.is_empty()),
                None => group(i + 2),
            };
        }
        Some(VersionedName { name, parts })
    }
}

/// A replacement with each `$1`..`$9` replaced by that group's text (empty when the group
/// did not take part or does not exist), trimmed, as the uap specification says.
fn substitute(template: &str, caps: &Captures<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$'
            && let Some(d) = chars.peek().and_then(|d| d.to_digit(10))
            && d > 0
        {
            chars.next();
            if let Some(m) = caps.get(d as usize) {
                out.push_str(&String::from_utf8_lossy(m.as_bytes()));
            }
        } else {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// The three lists of the database, compiled.
pub struct Database {
    agents: Vec<Rule>,
    oses: Vec<Rule>,
    devices: Vec<Rule>,
    /// Regexes that could not be compiled (skipped), with why. Empty for the embedded file
    /// (a test checks it).
    pub skipped: Vec<(String, String)>,
}

impl Database {
    /// The embedded database, loaded and compiled the first time it is needed.
    pub fn embedded() -> &'static Database {
        static DB: OnceLock<Database> = OnceLock::new();
        DB.get_or_init(|| {
            let db = Database::load(REGEXES);
            if !db.skipped.is_empty() {
                tracing::warn!(
                    skipped = db.skipped.len(),
                    "user_agent: some uap-core regexes do not compile and are not used"
                );
            }
            db
        })
    }

    /// Reads a uap-core `regexes.yaml`; what cannot be read is listed in `skipped`.
    pub fn load(yaml: &str) -> Database {
        let mut db = Database {
            agents: Vec::new(),
            oses: Vec::new(),
            devices: Vec::new(),
            skipped: Vec::new(),
        };
        let docs = match YamlLoader::load_from_str(yaml) {
            Ok(d) => d,
            Err(e) => {
                db.skipped.push(("(file)".into(), e.to_string()));
                return db;
            }
        };
        let Some(top) = docs.first() else {
            db.skipped.push(("(file)".into(), "empty".into()));
            return db;
        };
        const AGENT: [&str; 5] = [
            "family_replacement",
            "v1_replacement",
            "v2_replacement",
            "v3_replacement",
            "v4_replacement",
        ];
        const OS: [&str; 5] = [
            "os_replacement",
            "os_v1_replacement",
            "os_v2_replacement",
            "os_v3_replacement",
            "os_v4_replacement",
        ];
        // Elasticsearch reads only the device's name (not brand or model).
        const DEVICE: [&str; 5] = ["device_replacement", "", "", "", ""];
        db.agents = rules(&top["user_agent_parsers"], AGENT, &mut db.skipped);
        db.oses = rules(&top["os_parsers"], OS, &mut db.skipped);
        db.devices = rules(&top["device_parsers"], DEVICE, &mut db.skipped);
        db
    }

    /// Parses a string (no cache): the first match of each list.
    pub fn parse(&self, text: &str) -> Details {
        let s = cut(text, MAX_PARSED).as_bytes();
        let first = |rules: &[Rule]| rules.iter().find_map(|r| r.apply(s));
        Details {
            agent: first(&self.agents),
            os: first(&self.oses),
            device: first(&self.devices),
        }
    }

    /// How many regexes each list has (agents, OSes, devices).
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.agents.len(), self.oses.len(), self.devices.len())
    }
}

fn rules(list: &Yaml, keys: [&str; 5], skipped: &mut Vec<(String, String)>) -> Vec<Rule> {
    let Some(items) = list.as_vec() else {
        skipped.push((keys[0].into(), "list missing".into()));
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some(pattern) = item["regex"].as_str() else {
            skipped.push(("(no regex)".into(), format!("{item:?}")));
            continue;
        };
        let text = |k: &str| (!k.is_empty()).then(|| item[k].as_str().map(String::from))?;
        // Java's defaults: ASCII-only classes and case folding (`unicode(false)`, on bytes).
        // `.` then also matches `\r` and other line ends but `\n`, where Java's does not.
        let regex = RegexBuilder::new(pattern)
            .unicode(false)
            .case_insensitive(item["regex_flag"].as_str() == Some("i"))
            .build();
        match regex {
            Ok(regex) => out.push(Rule {
                regex,
                name: text(keys[0]),
                parts: [text(keys[1]), text(keys[2]), text(keys[3]), text(keys[4])],
            }),
            Err(e) => skipped.push((pattern.to_string(), e.to_string())),
        }
    }
    out
}

/// The longest start of `text` of at most `max` bytes that ends at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A bounded LRU of parsed strings: at most `entries` entries and `bytes` bytes (strings and
/// parts, plus a fixed cost per entry).
pub struct Cache {
    lru: LruCache<Box<str>, Arc<Details>>,
    entries: usize,
    bytes: usize,
    used: usize,
}

/// What an entry costs beyond its strings: the key and value boxes, the `Details`, the
/// list's node (an estimate; it only has to keep the total bounded).
const ENTRY_OVERHEAD: usize = 160;

impl Cache {
    /// An empty cache with these bounds.
    pub fn new(entries: usize, bytes: usize) -> Self {
        Self {
            lru: LruCache::unbounded(),
            entries,
            bytes,
            used: 0,
        }
    }

    /// The parsed string, if cached (it becomes the most recently used).
    pub fn get(&mut self, text: &str) -> Option<Arc<Details>> {
        self.lru.get(text).cloned()
    }

    /// Keeps a parsed string, dropping the least recently used ones past either bound.
    /// Strings longer than a few KiB are not kept.
    pub fn put(&mut self, text: &str, details: Arc<Details>) {
        if text.len() > CACHE_MAX_ENTRY {
            return;
        }
        let added = cost(text, &details);
        if let Some(old) = self.lru.put(text.into(), details) {
            self.used -= cost(text, &old);
        }
        self.used += added;
        while self.lru.len() > self.entries || self.used > self.bytes {
            match self.lru.pop_lru() {
                Some((k, v)) => self.used -= cost(&k, &v),
                None => break,
            }
        }
    }

    /// `(entries, bytes)` held now.
    pub fn usage(&self) -> (usize, usize) {
        (self.lru.len(), self.used)
    }
}

fn cost(text: &str, d: &Details) -> usize {
    text.len() + d.bytes() + ENTRY_OVERHEAD
}

/// The parsed string, from the process-wide cache or parsed (and cached) now.
fn cached(text: &str) -> Arc<Details> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Cache::new(CACHE_ENTRIES, CACHE_BYTES)));
    // A panic elsewhere while holding the lock leaves the cache consistent (each method
    // finishes its bookkeeping before returning), so a poisoned lock is used as it is.
    let lock = || cache.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(d) = lock().get(text) {
        return d;
    }
    // Parsed without the lock: other threads keep using the cache meanwhile.
    let d = Arc::new(Database::embedded().parse(text));
    lock().put(text, d.clone());
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pipeline;
    use serde_json::json;

    fn parse(s: &str) -> Details {
        Database::embedded().parse(s)
    }

    fn run(step: Value, d: Value) -> Value {
        let p = Pipeline::compile("t", &json!([{ "user_agent": step }]))
            .unwrap_or_else(|e| panic!("{e}"));
        let Value::Object(mut m) = d else {
            panic!("object")
        };
        p.run(&mut m);
        Value::Object(m)
    }

    #[test]
    fn every_embedded_regex_compiles() {
        let db = Database::embedded();
        assert!(db.skipped.is_empty(), "{:#?}", db.skipped);
        // uap-core 0.16.0's counts: a regex silently lost would change them, and together
        // they are every `- regex:` line of the file.
        assert_eq!(db.sizes(), (347, 190, 625), "agents, oses, devices");
        let lines = REGEXES
            .lines()
            .filter(|l| l.trim_start().starts_with("- regex:"))
            .count();
        assert_eq!(347 + 190 + 625, lines);
    }

    #[test]
    fn versions_keep_empty_groups_as_elasticsearch_does() {
        let d = parse(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.12; rv:49.0) Gecko/20100101 Firefox/49.0",
        );
        let agent = d.agent.unwrap_or_default();
        assert_eq!(agent.name, "Firefox");
        // `(pre|[ab]\d+[a-z]*|)` matched the empty string: Elasticsearch writes `49.0.`.
        assert_eq!(agent.version().as_deref(), Some("49.0."));
        let os = d.os.unwrap_or_default();
        assert_eq!(
            (os.name.as_str(), os.version()),
            ("Mac OS X", Some("10.12".into()))
        );
        let d = parse("Mozilla/5.0 (Windows NT 6.1; rv:15.0) Gecko/20120716 Firefox/15.0a2");
        let agent = d.agent.unwrap_or_default();
        assert_eq!(
            (agent.name.as_str(), agent.version()),
            ("Firefox Alpha", Some("15.0.a2".into()))
        );
    }

    #[test]
    fn output_fields_are_elasticsearch_s() {
        let ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/54.0.2840.59 Safari/537.36";
        let out = run(
            json!({"field": "user_agent.original"}),
            json!({"user_agent": {"original": ua}}),
        );
        assert_eq!(
            out,
            json!({"user_agent": {
                "original": ua,
                "name": "Chrome",
                "version": "54.0.2840.59",
                "os": {"name": "Mac OS X", "version": "10.12.0", "full": "Mac OS X 10.12.0"},
                "device": {"name": "Mac"},
            }})
        );
        // Nothing matches: `Other` for the name and device, no version, no os.
        let out = run(json!({"field": "ua"}), json!({"ua": "-"}));
        assert_eq!(
            out["user_agent"],
            json!({"original": "-", "name": "Other", "device": {"name": "Other"}})
        );
    }

    #[test]
    fn replacements_substitute_groups_and_a_rule_without_name_is_passed() {
        let db = Database::load(
            r#"
user_agent_parsers:
  - regex: '(Foo)/(\d+)\.(\d+)(pre|)'
  - regex: 'Bar (\d+)(?:\.(\d+))?'
    family_replacement: 'Bar ($1)'
    v1_replacement: 'v$2'
os_parsers:
  - regex: 'Zed (\d+)|(Zed)'
  - regex: 'Zed (\d+)'
    os_replacement: 'ZedOS'
    os_v1_replacement: '$1'
device_parsers:
  - regex: 'DEV(ice)'
    regex_flag: 'i'
    device_replacement: ' D$1 $2 '
"#,
        );
        assert!(db.skipped.is_empty(), "{:?}", db.skipped);
        let d = db.parse("Foo/1.2 Zed 7 device");
        let agent = d.agent.unwrap_or_default();
        assert_eq!(agent.name, "Foo");
        assert_eq!(
            agent.parts,
            [Some("1".into()), Some("2".into()), Some("".into()), None]
        );
        // Without `os_replacement` the name is group 1, whatever it holds (here `7`).
        assert_eq!(d.os.unwrap_or_default().name, "7");
        // Case-insensitive flag; `$2` of a missing group is empty; the result is trimmed.
        assert_eq!(d.device.unwrap_or_default().name, "Dice");
        let d = db.parse("Bar 3 Zed");
        let agent = d.agent.unwrap_or_default();
        assert_eq!(agent.name, "Bar (3)");
        // `v$2` with no group 2: `v`.
        assert_eq!(agent.parts[0].as_deref(), Some("v"));
        // `(Zed)` alone: group 1 did not take part, so no name: the second regex is tried,
        // and it does not match either.
        assert_eq!(d.os, None);
    }

    #[test]
    fn options_target_properties_and_missing() {
        let ua = "curl/7.54.0";
        let out = run(
            json!({"field": "agent", "target_field": "ua", "properties": ["NAME", "version"]}),
            json!({"agent": ua}),
        );
        assert_eq!(
            out,
            json!({"agent": ua, "ua": {"name": "curl", "version": "7.54.0"}})
        );
        // The parsed object replaces the target, as in Elasticsearch.
        let out = run(
            json!({"field": "user_agent.original", "properties": ["name"]}),
            json!({"user_agent": {"original": ua, "x": 1}}),
        );
        assert_eq!(out, json!({"user_agent": {"name": "curl"}}));
        // Missing or null: nothing with ignore_missing, else the pipeline's failure.
        for (d, message) in [
            (json!({}), "field [ua] not present as part of path [ua]"),
            (
                json!({"ua": null}),
                "field [ua] is null, cannot parse user-agent.",
            ),
        ] {
            assert_eq!(
                run(json!({"field": "ua", "ignore_missing": true}), d.clone()),
                d
            );
            let failed = run(json!({"field": "ua"}), d);
            assert_eq!(failed["error"]["message"], message);
        }
        let failed = run(
            json!({"field": "ua", "ignore_missing": true}),
            json!({"ua": 7}),
        );
        assert_eq!(
            failed["error"]["message"],
            "field [ua] of type [java.lang.Long] cannot be cast to [java.lang.String]"
        );
    }

    #[test]
    fn bad_settings_fail_when_the_pipeline_is_compiled() {
        let compile = |step: Value| {
            Pipeline::compile("t", &json!([{ "user_agent": step }]))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            compile(json!({"field": "a", "properties": ["name", "colour"]}))
                .contains("illegal property value [colour]")
        );
        assert!(
            compile(json!({"field": "a", "extract_device_type": true}))
                .contains("extract_device_type")
        );
        assert!(compile(json!({"field": "a", "regex_file": "x.yml"})).contains("regex_file"));
        assert_eq!(
            compile(json!({"field": "a", "extract_device_type": false})),
            ""
        );
    }

    #[test]
    fn hostile_strings_parse_without_panic() {
        let long = format!("{}Firefox/3.0", "(".repeat(MAX_PARSED));
        let snowmen = "☃".repeat(MAX_PARSED);
        let cases = [
            long.as_str(),
            snowmen.as_str(),
            "",
            "\0\r\n\x1b[31mFirefox/1.0\x7f",
            "Mozilla/5.0 (Ünïcödé; Lïnux) Firefox/3.0 ☃",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 11_2_5 like Mac OS X) \u{feff}\u{10ffff}",
        ];
        for ua in cases {
            let out = run(json!({"field": "ua"}), json!({"ua": ua}));
            assert_eq!(out["user_agent"]["original"], ua);
            assert!(out["user_agent"]["name"].is_string(), "{ua:?}: {out}");
            assert!(out.get("error").is_none(), "{ua:?}: {out}");
        }
        // Past MAX_PARSED bytes nothing is read: the Firefox at the end is not seen.
        assert_eq!(parse(&long).agent, None);
        // Control characters do not stop a match before them.
        assert_eq!(
            parse("\0\r\n\x1b[31mFirefox/1.0\x7f").agent.map(|a| a.name),
            Some("Firefox".to_string())
        );
    }

    fn details(name: &str) -> Arc<Details> {
        Arc::new(Details {
            agent: Some(VersionedName {
                name: name.into(),
                parts: Default::default(),
            }),
            ..Default::default()
        })
    }

    #[test]
    fn cache_is_bounded_in_entries_and_bytes() {
        let mut c = Cache::new(3, 10_000);
        for k in ["a", "b", "c"] {
            c.put(k, details(k));
        }
        // `a` used last: `b` is the least recently used and goes first.
        assert!(c.get("a").is_some());
        c.put("d", details("d"));
        assert_eq!(c.usage().0, 3);
        assert!(c.get("b").is_none());
        assert!(c.get("a").is_some() && c.get("c").is_some() && c.get("d").is_some());

        // Bytes: each entry costs its strings plus ENTRY_OVERHEAD.
        let one = cost("k0", &details("k0"));
        let mut c = Cache::new(100, 3 * one);
        for i in 0..10 {
            let k = format!("k{i}");
            c.put(&k, details(&k));
            assert!(c.usage().1 <= 3 * one, "{:?}", c.usage());
        }
        assert_eq!(c.usage(), (3, 3 * one));
        assert!(c.get("k9").is_some() && c.get("k6").is_none());

        // A replaced entry is not counted twice; a very long string is not kept.
        c.put("k9", details("k9"));
        assert_eq!(c.usage(), (3, 3 * one));
        let long = "x".repeat(CACHE_MAX_ENTRY + 1);
        c.put(&long, details("x"));
        assert!(c.get(&long).is_none());
        assert_eq!(c.usage().0, 3);
    }

    #[test]
    fn cut_stays_on_a_character_boundary() {
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("aé", 3), "aé");
        assert_eq!(cut("", 0), "");
    }
}
