//! The conformance corpus (`shared/corpus/metricbeat-modules/`): every server response with
//! the events Metricbeat produced from it is served to the metricset by a test HTTP server, as
//! its `testdata-config.yml` says, and the events must equal the expected ones as multisets
//! after the normalisation the corpus README describes.
//!
//! Pairs of modules skiff does not have yet are listed in `NOT_IMPLEMENTED`: the test fails if
//! the corpus holds a pair of a missing module that the list does not name (so nothing is
//! skipped silently), and also if the list names a module that exists (so it shrinks as
//! modules land).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Modules whose pairs cannot run yet, with why.
const NOT_IMPLEMENTED: &[(&str, &str)] = &[];

/// Pairs whose input is not in the corpus (README: expected events only).
const NO_INPUT: &[&str] = &["http/json/docs.json-expected.json"];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/metricbeat-modules")
}

#[derive(Debug)]
struct Pair {
    name: String,
    module: String,
    metricset: String,
    input: PathBuf,
    expected: PathBuf,
    legacy: bool,
}

fn pairs() -> Vec<Pair> {
    let mut out = Vec::new();
    let root = corpus();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus at {}: {e}", dir.display()));
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let Some(input) = rel.strip_suffix("-expected.json") else {
                continue;
            };
            let parts: Vec<&str> = rel.split('/').collect();
            out.push(Pair {
                name: rel.clone(),
                module: parts[0].to_owned(),
                metricset: parts[1].to_owned(),
                input: root.join(input),
                expected: p.clone(),
                legacy: parts.contains(&"legacy-7x"),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The harness description of a metricset folder, with the README's defaults for folders
/// without one.
struct Harness {
    url: String,
    content_type: String,
    module: Map<String, Value>,
    remove: Vec<String>,
}

fn harness(pair: &Pair) -> Harness {
    let dir = corpus().join(&pair.module).join(&pair.metricset);
    let cfg: Value = match std::fs::read_to_string(dir.join("testdata-config.yml")) {
        Ok(text) => skiff_config::parse_str(&text, Some("testdata-config.yml"))
            .unwrap()
            .to_json(),
        Err(_) => Value::Object(Map::new()),
    };
    let default_url = match (pair.module.as_str(), pair.metricset.as_str()) {
        ("rabbitmq", "exchange") => "/api/exchanges",
        ("rabbitmq", "queue") => "/api/queues",
        ("nats", "jetstream") => "/jsz?config=true&consumers=true",
        _ => "/",
    };
    let mut module = cfg
        .get("module")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if pair.module == "nats" && pair.metricset == "jetstream" {
        // `response.stats.json` -> jetstream.stats.enabled, and so on.
        let file = pair
            .input
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let category = file
            .trim_start_matches("response.")
            .trim_end_matches(".json");
        let category = category.trim_end_matches('s');
        let category = if category == "stat" {
            "stats"
        } else {
            category
        };
        module.insert(
            "jetstream".into(),
            serde_json::json!({ category: {"enabled": true} }),
        );
    }
    let mut remove: Vec<String> = cfg
        .get("remove_fields_from_comparison")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if pair.module == "rabbitmq" && pair.metricset == "queue" {
        // README: the expected file has 0 where the input has 0.7 (an integer conversion
        // upstream); both occur in Metricbeat's history. The value is checked in
        // `rabbitmq_queue_utilisation_is_the_ratio` below.
        remove.push("rabbitmq.queue.consumers.utilisation.pct".into());
    }
    Harness {
        url: cfg
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or(default_url)
            .to_owned(),
        content_type: cfg
            .get("content_type")
            .and_then(Value::as_str)
            .unwrap_or("application/json")
            .to_owned(),
        module,
        remove,
    }
}

/// Path plus query with the query's pairs sorted and re-encoded (`?auto` -> `?auto=`).
fn canonical_target(target: &str) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if query.is_empty() {
        return path.to_owned();
    }
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    pairs.sort();
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{path}?{q}")
}

/// Serves `body` at `target` (any other path: 404) until the test ends; returns the port.
fn serve(target: String, content_type: String, body: Vec<u8>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let want = canonical_target(&target);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                    break;
                }
            }
            let got = request.split_whitespace().nth(1).unwrap_or("");
            let (status, ct, b): (&str, &str, &[u8]) = if canonical_target(got) == want {
                ("200 OK", &content_type, &body)
            } else {
                ("404 Not Found", "text/plain", b"not found")
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(b);
        }
    });
    port
}

fn remove_path(v: &mut Value, path: &str) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = v;
    for p in &parts[..parts.len() - 1] {
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(parts[parts.len() - 1]);
    }
}

/// Numbers compared by value: every number becomes an f64 rounded to 15 significant digits
/// (serde_json's default float parser can be one unit in the last place off, so the expected
/// files' `1553430281.4931297` may read as `...295`).
fn canon(v: Value) -> Value {
    match v {
        Value::Number(n) => n
            .as_f64()
            .and_then(|f| format!("{f:.14e}").parse::<f64>().ok())
            .map_or(Value::Null, Value::from),
        Value::Array(a) => Value::Array(a.into_iter().map(canon).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, canon(v))).collect()),
        other => other,
    }
}

fn normalise(mut e: Value, h: &Harness, keep_period: bool, legacy: bool) -> Option<Value> {
    for k in ["@timestamp", "agent", "ecs", "host", "@metadata"] {
        remove_path(&mut e, k);
    }
    if let Some(m) = e.as_object_mut() {
        if let Some(s) = m.get_mut("service").and_then(Value::as_object_mut) {
            s.insert("address".into(), Value::from("127.0.0.1:55555"));
        }
        if let Some(ev) = m.get_mut("event").and_then(Value::as_object_mut)
            && ev.contains_key("duration")
        {
            ev.insert("duration".into(), Value::from(115000));
        }
        if let Some(ms) = m.get_mut("metricset").and_then(Value::as_object_mut) {
            if keep_period {
                ms.insert("period".into(), Value::from(10000));
            } else {
                ms.remove("period");
            }
        }
    }
    for f in &h.remove {
        remove_path(&mut e, f);
    }
    if legacy {
        // Produced before `job`, `up` and `metrics_count` existed (README).
        remove_path(&mut e, "prometheus.labels.job");
        remove_path(&mut e, "prometheus.metrics.up");
        remove_path(&mut e, "metrics_count");
        let empty = e
            .pointer("/prometheus/metrics")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if empty {
            return None;
        }
    }
    Some(canon(e))
}

fn check(pair: &Pair) -> Result<(), String> {
    let h = harness(pair);
    let body = std::fs::read(&pair.input).map_err(|e| format!("input: {e}"))?;
    let port = serve(h.url.clone(), h.content_type.clone(), body);
    let mut yaml = format!(
        "module: {}\nmetricsets: [{}]\nhosts: ['http://127.0.0.1:{port}']\nperiod: 10s\n",
        pair.module, pair.metricset
    );
    for (k, v) in &h.module {
        yaml.push_str(&format!("{k}: {v}\n"));
    }
    let expected: Vec<Value> =
        serde_json::from_slice(&std::fs::read(&pair.expected).unwrap()).unwrap();
    let keep_period = expected
        .iter()
        .any(|e| e.pointer("/metricset/period").is_some());
    let node = skiff_config::parse_str(&yaml, Some("corpus.yml")).unwrap();
    let mut block = skiff_input_metrics::Block::from_node(&node).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(block.fetch_all_once());
    let mut got: Vec<Value> = got
        .into_iter()
        .filter_map(|m| normalise(Value::Object(m), &h, keep_period, pair.legacy))
        .collect();
    let mut want: Vec<Value> = expected
        .into_iter()
        .filter_map(|e| normalise(e, &h, keep_period, pair.legacy))
        .collect();
    // Compared as multisets: the text of a map depends on key order (serde_json keeps insertion
    // order when any crate of the build enables `preserve_order`), its equality does not.
    let mut unexpected = Vec::new();
    for g in got.drain(..) {
        match want.iter().position(|w| *w == g) {
            Some(i) => {
                want.swap_remove(i);
            }
            None => unexpected.push(g),
        }
    }
    if unexpected.is_empty() && want.is_empty() {
        return Ok(());
    }
    let mut report = format!(
        "{} events unexpected, {} expected events missing\n",
        unexpected.len(),
        want.len()
    );
    for g in &unexpected {
        report.push_str(&format!("  unexpected: {g}\n"));
    }
    for w in &want {
        report.push_str(&format!("  missing:    {w}\n"));
    }
    Err(report)
}

#[test]
fn every_pair_of_the_corpus_gives_the_expected_events() {
    let all = pairs();
    assert!(
        all.len() >= 10,
        "corpus not found or empty at {}",
        corpus().display()
    );
    let mut failures = BTreeMap::new();
    let mut missing_modules = BTreeMap::new();
    let mut ran = 0;
    for pair in &all {
        if NO_INPUT.contains(&pair.name.as_str()) {
            assert!(
                !pair.input.exists(),
                "{} now has its input: remove it from NO_INPUT",
                pair.name
            );
            continue;
        }
        if skiff_input_metrics::modules::find(&pair.module).is_none() {
            missing_modules
                .entry(pair.module.clone())
                .or_insert_with(Vec::new)
                .push(pair.name.clone());
            continue;
        }
        ran += 1;
        if let Err(e) = check(pair) {
            failures.insert(pair.name.clone(), e);
        }
    }
    let listed: Vec<&str> = NOT_IMPLEMENTED.iter().map(|(m, _)| *m).collect();
    let missing: Vec<&str> = missing_modules.keys().map(String::as_str).collect();
    assert_eq!(
        missing, listed,
        "modules with corpus pairs and no implementation must be exactly NOT_IMPLEMENTED"
    );
    for (m, why) in NOT_IMPLEMENTED {
        eprintln!(
            "not run (module `{m}` missing: {why}): {:?}",
            missing_modules[*m]
        );
    }
    let report: String = failures.iter().map(|(k, v)| format!("{k}:\n{v}")).collect();
    assert!(
        failures.is_empty(),
        "{} of {ran} pairs differ:\n{report}",
        failures.len()
    );
    assert!(ran > 0);
}

#[tokio::test]
async fn rabbitmq_queue_utilisation_is_the_ratio() {
    let body = std::fs::read(corpus().join("rabbitmq/queue/docs.json")).unwrap();
    let port = serve("/api/queues".into(), "application/json".into(), body);
    let events = common::fetch(&format!(
        "module: rabbitmq\nmetricsets: [queue]\nhosts: ['127.0.0.1:{port}']\n"
    ))
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        common::num(&events[0], "rabbitmq.queue.consumers.utilisation.pct"),
        0.7
    );
}
