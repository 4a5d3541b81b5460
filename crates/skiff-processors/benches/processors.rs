#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! Cost per event of `dissect`, `script`, `timestamp` and `decode_csv_fields`, against
//! `add_fields` (the cheapest useful processor) measured in the same run. Each iteration
//! copies a typical file event and runs the processor on the copy; the copy is in the baseline
//! too, so the differences are the processors' own cost.
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use skiff_event::Event;
use skiff_pipeline::{BuildContext, Processor};

fn procs(yaml: &str) -> Vec<Arc<dyn Processor>> {
    let root = skiff_config::parse_str(yaml, Some("bench.yml")).unwrap();
    let ctx = BuildContext::standalone("bench", "0.0.0", &Default::default());
    skiff_processors::build_list(root.get("processors"), &ctx).unwrap()
}

fn bench(c: &mut Criterion) {
    let shared = serde_json::json!({
        "agent": {"name": "h", "type": "filebeat", "version": "0.1.0"},
        "host": {"name": "h"},
        "input": {"type": "filestream"},
        "log": {"file": {"path": "/var/log/app/app.log"}},
    });
    let shared = Arc::new(shared.as_object().cloned().unwrap_or_default());
    let line = "2024-01-02T03:04:05.123Z INFO [http-nio-8080-exec-1] 10.1.2.3 GET /api/v1/users/42 200 12ms";
    let mut ev = Event::new(shared, line.to_owned());
    ev.offset = Some(123_456);
    let cases = [
        (
            "add_fields (baseline)",
            "processors: [{add_fields: {target: '', fields: {service.name: api}}}]",
        ),
        (
            "dissect",
            "processors: [{dissect: {tokenizer: '%{ts} %{level} [%{thread}] %{ip} %{method} %{path} %{status|integer} %{took}', target_prefix: ''}}]",
        ),
        (
            "script",
            "processors: [{script: {lang: javascript, source: 'function process(e) { var m = e.Get(\"message\"); e.Put(\"level\", m.split(\" \")[1]); }'}}]",
        ),
        (
            "timestamp",
            "processors: [{dissect: {tokenizer: '%{ts} %{}', target_prefix: ''}}, {timestamp: {field: ts, layouts: ['2006-01-02T15:04:05.999Z07:00']}}]",
        ),
        (
            "decode_csv_fields",
            "processors: [{decode_csv_fields: {fields: {message: csv}, separator: ' '}}]",
        ),
    ];
    for (name, yaml) in cases {
        let p = procs(yaml);
        c.bench_function(name, |b| {
            b.iter(|| {
                let mut e = ev.clone_without_ack();
                for x in &p {
                    x.process(&mut e);
                }
                e
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
