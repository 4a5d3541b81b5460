//! Differential test of the grok engine (src/grok_engine.rs): on every grok pattern of every
//! fileset, the fast path (relaxed regex on the automata, with its checks) must give exactly
//! what fancy-regex gives, or leave the decision to it. Inputs: every line of Filebeat's
//! module fixtures (`shared/corpus/filebeat-modules`, all modules, so most lines are also
//! tried on other modules' patterns), every value captured from them (later steps grok
//! captured fields), edits of those lines next to digits (where the look-arounds and atomic
//! groups of `IPV4`, `NUMBER`, `YEAR`, `TIME` decide), hand-written edge cases, and random
//! lines.

use std::path::Path;

use proptest::prelude::*;
use skiff_modules::grok_engine::{FastOutcome, GrokPattern};
use skiff_modules::{MODULES, Pipeline};

fn pipelines() -> &'static [(String, Pipeline)] {
    static ALL: std::sync::OnceLock<Vec<(String, Pipeline)>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        MODULES
            .iter()
            .flat_map(|m| m.filesets.iter().map(move |(f, _)| (m.name, *f)))
            .map(|(m, f)| {
                let def = skiff_modules::fileset(m, f).unwrap_or_else(|e| panic!("{e}"));
                let name = format!("{m}/{f}");
                let p = Pipeline::compile(&name, &def.pipeline).unwrap_or_else(|e| panic!("{e}"));
                (name, p)
            })
            .collect()
    })
}

fn patterns() -> impl Iterator<Item = (&'static str, &'static GrokPattern)> {
    pipelines()
        .iter()
        .flat_map(|(n, p)| p.grok_patterns().map(move |g| (n.as_str(), g)))
}

/// Counts of what the fast path did.
#[derive(Default, Debug)]
struct Tally {
    matched: usize,
    no_match: usize,
    unknown: usize,
}

/// Compares both engines on one text; panics on a difference.
fn compare(fileset: &str, p: &GrokPattern, text: &str, tally: &mut Tally) {
    let slow = p.captures_fancy(text);
    match p.captures_fast(text) {
        FastOutcome::Match(fast) => {
            tally.matched += 1;
            assert_eq!(
                Some(&fast),
                slow.as_ref(),
                "{fileset}: engines differ on {text:?}"
            );
        }
        FastOutcome::NoMatch => {
            tally.no_match += 1;
            assert_eq!(
                slow, None,
                "{fileset}: fast path found no match in {text:?}"
            );
        }
        FastOutcome::Unknown => tally.unknown += 1,
    }
    assert_eq!(
        p.captures(text),
        slow,
        "{fileset}: combined result on {text:?}"
    );
}

/// (module, line) of every fixture, and each multiline fixture whole.
fn corpus_lines() -> Vec<(String, String)> {
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/filebeat-modules");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = e.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "log") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 20, "corpus missing at {}", root.display());
    files.sort();
    let mut lines = Vec::new();
    for f in files {
        let module = f
            .strip_prefix(&root)
            .ok()
            .and_then(|r| r.iter().next())
            .map(|m| m.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let text = String::from_utf8_lossy(&text);
        lines.extend(text.lines().map(|l| (module.clone(), l.to_string())));
        // Multiline events (stack traces, slow-log entries) as the fileset would see them.
        lines.push((module.clone(), text.trim_end().to_string()));
    }
    lines
}

/// Edits next to digits: a digit, a dot or a colon inserted, or the character removed.
fn edits(line: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut out = Vec::new();
    for (k, (i, c)) in chars.iter().enumerate() {
        let next_digit = chars.get(k + 1).is_some_and(|(_, n)| n.is_ascii_digit());
        if !(c.is_ascii_digit() || next_digit) || out.len() >= EDITS_PER_LINE {
            continue;
        }
        for ins in ["7", ".", ":", "+"] {
            out.push(format!("{}{ins}{}", &line[..*i], &line[*i..]));
        }
        out.push(format!("{}{}", &line[..*i], &line[i + c.len_utf8()..]));
    }
    out
}

/// Enough to cover the digits of a line's address, time and numbers; the fancy-regex
/// reference is slow in a debug build.
const EDITS_PER_LINE: usize = 120;

const EDGE_CASES: &[&str] = &[
    // IPV4's look-arounds: digits glued to an address, inside and after a proxy list.
    "1.2.3.45678 - - [25/Oct/2016:14:49:33 +0200] \"GET / HTTP/1.1\" 200 612 \"-\" \"-\"",
    "91.2.3.4 - - [25/Oct/2016:14:49:33 +0200] \"GET / HTTP/1.1\" 200 612 \"-\" \"-\"",
    "10.0.0.2,10.0.0.1 81.2.69.143 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
    "10.0.0.2, 10.0.0.1,81.2.69.1433 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
    "1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4, 5.5.5.5, 6.6.6.6, 7.7.7.7, 8.8.8.8, 9.9.9.9 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
    "a, b, c, d, e, f, g, h, 1.2.3.4 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
    "2001:db8::1, 10.0.0.1 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
    "example.com:8080 1.2.3.4 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
    "1.2.3.4:80 1.2.3.4 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
    // NUMBER (atomic, look-behind): signs, dots, numbers glued to what follows.
    "1.2.3.4 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1\" +200 -1.5 \"-\" \"-\"",
    "1.2.3.4 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1\" 200 .5 \"-\" \"-\"",
    "1.2.3.4 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1\" 200 1.5.6 \"-\" \"-\"",
    "1.2.3.4 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1.1\" 200 1 \"-\" \"-\"",
    "1.2.3.4 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.\" 200 1 \"-\" \"-\"",
    "GET /x HTTP/1.1",
    "GET /x HTTP/11",
    "GET /x HTTP/.1",
    "GET /x HTTP/-1.1x",
    // YEAR and TIME: too many digits, a `<` before a time.
    "1.2.3.4 - - [07/Dec/20160:11:05:07 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
    "1.2.3.4 - - [07/Dec/201:11:05:07 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
    "1.2.3.4 - - [07/Dec/2016:11:05:079 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
    "Dec 13 11:35:28 host proc[1]: x",
    "Dec 13 11:35:281 host proc[1]: x",
    "Dec 13 <11:35:28 host proc[1]: x",
    "2019-03-24T13:44:25.484123Z 0 [System] x",
    "20190-03-24T13:44:25.484123Z 0 [System] x",
    "2016/10/25 14:49:34 [error] 54053#0: *1 open() failed",
    "2016/10/25 14:49:34 [error] 54053#0: *1.5 open() failed",
    "",
    " ",
    "-",
];

#[test]
fn fast_engine_agrees_with_fancy_regex_on_every_fileset_pattern() {
    let lines = corpus_lines();
    let mut tally = Tally::default();
    let mut inputs: Vec<String> = lines.iter().map(|(_, l)| l.clone()).collect();
    inputs.extend(EDGE_CASES.iter().map(|s| s.to_string()));
    // Values captured by any pattern are inputs of later steps (`nginx.access.info`, ...).
    let mut captured = Vec::new();
    for (_, p) in patterns() {
        for t in &inputs {
            if let Some(c) = p.captures_fancy(t) {
                captured.extend(c.into_iter().map(|(_, v)| v.to_string()));
            }
        }
    }
    captured.sort();
    captured.dedup();
    inputs.extend(captured);
    for (fileset, p) in patterns() {
        for t in &inputs {
            compare(fileset, p, t, &mut tally);
        }
    }
    // The edits: each line of a module against that module's patterns.
    for (fileset, p) in patterns() {
        let module = fileset.split('/').next().unwrap_or_default();
        for (_, line) in lines.iter().filter(|(m, l)| m == module && l.len() < 2000) {
            for t in edits(line) {
                compare(fileset, p, &t, &mut tally);
            }
        }
    }
    for e in EDGE_CASES {
        for t in edits(e) {
            for (fileset, p) in patterns() {
                compare(fileset, p, &t, &mut tally);
            }
        }
    }
    println!("{tally:?}");
    assert!(tally.matched > 1000 && tally.no_match > 1000, "{tally:?}");
}

/// The fast path must exist for every fileset pattern, and decide the real lines of the nginx
/// access fixture (else the fileset silently falls back to the slow engine), but those with an
/// IPv6 address, which it leaves to fancy-regex by design (src/grok_engine.rs, `SUPERSETS`).
#[test]
fn fast_path_covers_the_fileset_patterns_and_decides_nginx_lines() {
    let slow_only: Vec<&str> = patterns()
        .filter(|(_, p)| !p.has_fast_path())
        .map(|(f, _)| f)
        .collect();
    assert!(slow_only.is_empty(), "no fast path in {slow_only:?}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/filebeat-modules/nginx/access");
    let (_, nginx) = pipelines()
        .iter()
        .find(|(n, _)| n == "nginx/access")
        .expect("nginx access");
    let first = nginx.grok_patterns().next().expect("grok step");
    let mut lines = 0;
    for f in ["access.log", "test.log"] {
        let text = std::fs::read_to_string(root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        for line in text.lines() {
            let addresses = line.split(" - ").next().unwrap_or_default();
            if addresses.contains(':') {
                continue;
            }
            lines += 1;
            assert!(
                !matches!(first.captures_fast(line), FastOutcome::Unknown),
                "undecided: {line:?}"
            );
        }
    }
    assert!(lines > 10);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn random_lines_agree(line in "[0-9.:, \\-\"\\[\\]a-zA-Z/+#*]{0,80}", prefix in prop::sample::select(vec![
        "", "127.0.0.1 - - [07/Dec/2016:11:05:07 +0100] \"GET ", "1.2.3.4, ", "2016/10/25 14:49:34 [error] 1#0: ",
        "Dec 13 11:35:28 host proc[1]: ", "[Mon Dec 26 16:22:08 2016] [error] ", "1:M 30 May 12:50:13.457 * ",
        "2019-03-24T13:44:25.484123Z 0 [System] ", "2020-04-16 11:45:11.844 CEST [1] LOG:  ",
    ])) {
        let text = format!("{prefix}{line}");
        let mut tally = Tally::default();
        for (fileset, p) in patterns() {
            compare(fileset, p, &text, &mut tally);
        }
    }
}
