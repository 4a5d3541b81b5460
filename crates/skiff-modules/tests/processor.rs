//! The `module_pipeline` processor on events as inputs make them, against the pipeline run on
//! the whole event document (`Event::to_value`, the definition of what the pipeline sees): on
//! every fileset's corpus (`shared/corpus/filebeat-modules`, as `tests/corpus.rs` splits it),
//! the event after `process` must show exactly the document the pipeline makes of the whole
//! event, and the fields shared by all events of the input must stay shared (the same `Arc`)
//! when the pipeline does not change them.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use skiff_event::Event;
use skiff_modules::{MODULES, processor::FilesetProcessor};
use skiff_pipeline::component::Processor;
use support::split;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/filebeat-modules")
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// A file input's shared fields (`agent`, `host`, `ecs`, `input`, `log.file`, routing
/// metadata), as skiff-pipeline and skiff-input-file stamp them.
fn file_shared() -> Map<String, Value> {
    object(json!({
        "agent": {"name": "h1", "type": "filebeat", "version": "8.11.0", "id": "a-1", "ephemeral_id": "e-1"},
        "host": {"name": "h1"},
        "ecs": {"version": "8.0.0"},
        "input": {"type": "filestream"},
        "log": {"file": {"path": "/var/log/x.log", "inode": "12", "device_id": "2049"}},
        "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.11.0"},
    }))
}

/// Shared and own fields under keys the pipelines write (`event`, `source`, `tags`, a
/// `message` shared field the slot hides), so that merging, copy on write and hidden values
/// are exercised too.
fn crowded_shared() -> Map<String, Value> {
    let mut m = file_shared();
    m.extend(object(json!({
        "event": {"provider": "shared-provider"},
        "fields": {"env": "prod"},
        "tags": ["t1"],
        "message": "hidden by the slot",
    })));
    m
}

/// What the event shows, through JSON and back (as outputs see it).
fn shown(e: &Event) -> Value {
    e.to_value(false)
}

/// A document through JSON and back, so that numbers compare as the event's do.
fn reparsed(d: Map<String, Value>) -> Value {
    let text = serde_json::to_string(&Value::Object(d)).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one event both ways and compares; returns whether the shared `Arc` is unchanged.
fn check(
    p: &FilesetProcessor,
    name: &str,
    shared: &Arc<Map<String, Value>>,
    own: &Map<String, Value>,
    line: &str,
    offset: usize,
    multi: bool,
) -> bool {
    let mut e = Event::new(shared.clone(), line.to_string());
    e.offset = Some(offset as u64);
    e.fields = own.clone();
    if multi {
        e.insert("log.flags", json!(["multiline"]));
    }
    let Value::Object(mut want) = shown(&e) else {
        panic!("{name}: the event is not an object")
    };
    p.run_doc(&mut want);
    // The event holds `@timestamp` as an instant (in UTC): a pipeline's `-02:00` shows as `Z`.
    if let Some(t) = want
        .get("@timestamp")
        .and_then(Value::as_str)
        .and_then(skiff_event::Timestamp::parse)
    {
        want.insert("@timestamp".into(), Value::from(t.to_rfc3339_millis()));
    }
    let want = reparsed(want);
    let before_shared = (**shared).clone();
    p.process(&mut e);
    assert_eq!(
        shown(&e),
        want,
        "{name} offset {offset}: the processed event differs from the pipeline's document"
    );
    assert!(e.meta.is_empty(), "{name}: @metadata written");
    // Other events of the source see the shared fields as they were.
    assert_eq!(
        **shared, before_shared,
        "{name}: shared fields changed in place"
    );
    Arc::ptr_eq(&e.shared, shared)
}

#[test]
fn process_shows_the_pipelines_document_and_keeps_shared_fields_shared() {
    let root = corpus();
    assert!(root.join("README.md").exists(), "corpus missing");
    let geoip = support::geoip_test_databases();
    skiff_modules::geoip::set_dirs(vec![geoip.path().to_path_buf()]);
    let plain = Arc::new(file_shared());
    let crowded = Arc::new(crowded_shared());
    let own = object(json!({"event": {"custom": "own"}, "labels": {"k": "v"}}));
    let mut events = 0;
    let mut filesets_kept_shared = Vec::new();
    for m in MODULES {
        for (fileset, _) in m.filesets {
            let dir = root.join(m.name).join(fileset);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let def = skiff_modules::fileset(m.name, fileset).unwrap_or_else(|e| panic!("{e}"));
            let p = FilesetProcessor::new(m.name, fileset, Some("-02:00".into()))
                .unwrap_or_else(|e| panic!("{e}"));
            // The pipeline touches none of the plain shared keys: the Arc must survive.
            let untouched = p
                .keys()
                .is_some_and(|k| plain.keys().all(|s| !k.contains(s.as_str())));
            let mut logs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| !p.to_string_lossy().ends_with("-expected.json"))
                .collect();
            logs.sort();
            for log in logs {
                let name = log.display().to_string();
                let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{name}: {e}"));
                for (offset, line, multi) in split(&text, &def.input).into_iter().take(50) {
                    let kept = check(&p, &name, &plain, &Map::new(), &line, offset, multi);
                    assert!(
                        kept || !untouched,
                        "{name} offset {offset}: shared fields copied"
                    );
                    check(&p, &name, &crowded, &own, &line, offset, multi);
                    events += 1;
                }
            }
            if untouched {
                filesets_kept_shared.push(format!("{}/{fileset}", m.name));
            }
        }
    }
    println!("{events} events; shared fields kept by {filesets_kept_shared:?}");
    assert!(events > 200, "only {events} events checked");
    assert!(
        filesets_kept_shared.iter().any(|f| f == "nginx/access"),
        "nginx/access reads a shared key: {filesets_kept_shared:?}"
    );
}

#[test]
fn nginx_access_moves_only_the_keys_its_pipeline_uses() {
    let p = FilesetProcessor::new("nginx", "access", Some("+00:00".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let keys = p
        .keys()
        .unwrap_or_else(|| panic!("nginx access: keys unknown"));
    for k in [
        "message",
        "event",
        "source",
        "url",
        "http",
        "@timestamp",
        "error",
    ] {
        assert!(keys.contains(k), "{k} missing from {keys:?}");
    }
    for k in ["agent", "host", "log", "input", "ecs", "fields", "tags"] {
        assert!(!keys.contains(k), "{k} in {keys:?}");
    }
}

#[test]
fn auditd_steps_writing_keys_the_log_names_make_the_keys_unknown() {
    let p = FilesetProcessor::new("auditd", "log", Some("+00:00".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.keys().is_none());
}

#[test]
fn shared_objects_the_pipeline_changes_are_merged_and_stay_shared() {
    // The nginx pipeline's `append: event.category` extends a shared list and its
    // `set: event.kind` overwrites a shared value: both changes go to the event's own fields,
    // merged over the shared `event` when shown.
    let p = FilesetProcessor::new("nginx", "access", Some("+00:00".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let shared = Arc::new(object(json!({
        "event": {"kind": "alert", "category": ["network"]},
        "host": {"name": "h1"},
    })));
    let line = "89.160.20.156 - - [25/Oct/2016:14:49:33 +0200] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl/8\"";
    let mut e = Event::new(shared.clone(), line.into());
    p.process(&mut e);
    let v = shown(&e);
    assert_eq!(v["event"]["kind"], "event");
    assert_eq!(v["event"]["category"], json!(["network", "web"]));
    assert_eq!(v["event"]["original"], line);
    assert_eq!(v["host"]["name"], "h1");
    assert!(v.get("message").is_none());
    // Nothing shared was removed: the event still holds the source's map.
    assert!(Arc::ptr_eq(&e.shared, &shared));
    assert_eq!(shared["event"]["kind"], "alert");
}
