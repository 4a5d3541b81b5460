#![allow(missing_docs)]
//! Encoding cost of a typical file event (shared ECS fields + message + offset).
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use skiff_event::{Event, json};

fn bench(c: &mut Criterion) {
    let shared = serde_json::json!({
        "agent": {"name": "h", "type": "filebeat", "version": "0.1.0", "id": "5f1c", "ephemeral_id": "9a2b"},
        "ecs": {"version": "8.0.0"},
        "host": {"name": "h"},
        "input": {"type": "filestream"},
        "log": {"file": {"path": "/var/log/app/app.log", "inode": "1234", "device_id": "64768"}},
    });
    let shared = Arc::new(shared.as_object().cloned().unwrap_or_default());
    let mut ev = Event::new(shared, "x".repeat(256));
    ev.offset = Some(123_456);
    let mut out = Vec::with_capacity(1024);
    c.bench_function("encode_file_event_256b", |b| {
        b.iter(|| {
            out.clear();
            json::encode(&ev, &mut out, false);
            out.len()
        })
    });
    // The string escaper alone, on the line bench/gen.py writes (an access log: six quotes).
    let line = r#"57.12.140.125 - - [22/Nov/2026:03:13:47 +0000] "GET /api/v1/users/42 HTTP/1.1" 200 96530 "-" "Mozilla/5.0 (X11; Linux x86_64)" 8f1cbfno6b9m80o2rak1vrjnvgfygwwqc38hyf9sxmecosfogyr3xkxwnrek8pk3yr9oudocuzrenun5z3jqip98q1zxoi65fdhjk1eyy37q9ah8rvhs1k3aq6l6gt6m"#;
    c.bench_function("write_str_access_log", |b| {
        b.iter(|| {
            out.clear();
            json::write_str(&mut out, line);
            out.len()
        })
    });
    let plain = "y".repeat(256);
    c.bench_function("write_str_plain_256b", |b| {
        b.iter(|| {
            out.clear();
            json::write_str(&mut out, &plain);
            out.len()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
