//! `Event::size_bytes` is what the memory budget and the queues' byte limits count, so it must
//! not undercount what an event really holds on the heap. This test measures the heap with a
//! counting allocator for events shaped like what the inputs and the module pipelines make
//! (a bare line, a parsed nginx access document with its nested objects) and checks the
//! estimate against it.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// A counting global allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use serde_json::{Value, json};
use skiff_event::{Event, Map};

/// Bytes currently allocated through the global allocator (requested sizes).
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::SeqCst);
        // SAFETY: same layout as given to us.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::SeqCst);
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// What a parsed nginx access event carries besides the shared part (flattened keys).
fn nginx_fields() -> Vec<(&'static str, Value)> {
    vec![
        ("event.module", json!("nginx")),
        ("event.dataset", json!("nginx.access")),
        ("event.kind", json!("event")),
        ("event.category", json!(["web"])),
        ("event.type", json!(["access"])),
        ("event.outcome", json!("success")),
        ("event.timezone", json!("+00:00")),
        ("event.created", json!("2026-12-06T18:00:00.000Z")),
        ("fileset.name", json!("access")),
        ("service.type", json!("nginx")),
        ("source.address", json!("89.160.20.156")),
        ("source.ip", json!("89.160.20.156")),
        ("user.name", json!("alice")),
        ("http.request.method", json!("GET")),
        ("http.request.referrer", json!("https://example.com/")),
        ("http.version", json!("1.1")),
        ("http.response.status_code", json!(200)),
        ("http.response.body.bytes", json!(612)),
        ("url.original", json!("/api/v1/items?id=42")),
        ("url.path", json!("/api/v1/items")),
        ("url.query", json!("id=42")),
        ("url.domain", json!("www.example.com")),
        (
            "user_agent.original",
            json!("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"),
        ),
        (
            "nginx.access.remote_ip_list",
            json!(["10.0.0.1", "89.160.20.156"]),
        ),
        ("related.ip", json!(["89.160.20.156"])),
        ("related.user", json!(["alice"])),
    ]
}

fn shared() -> Arc<Map> {
    let v =
        json!({"log": {"file": {"path": "/var/log/nginx/access.log"}}, "host": {"name": "web-1"}});
    Arc::new(v.as_object().unwrap().clone())
}

/// The heap an event made by `make` holds, and its estimate.
fn measure(make: impl Fn() -> Event) -> (usize, usize) {
    let _warm = make();
    let before = LIVE.load(Ordering::SeqCst);
    let e = make();
    let after = LIVE.load(Ordering::SeqCst);
    let estimate = e.size_bytes();
    drop(e);
    ((after - before) as usize, estimate)
}

#[test]
fn a_parsed_nginx_event_is_not_undercounted() {
    let sh = shared();
    let (real, estimate) = measure(|| {
        let mut e = Event::new(sh.clone(), String::new());
        e.remove("message");
        for (k, v) in nginx_fields() {
            e.insert(k, v);
        }
        e
    });
    // The event struct itself lives wherever it is moved to (a queue's buffer); the estimate
    // counts it, the heap measure does not.
    let own = real + std::mem::size_of::<Event>();
    assert!(
        estimate >= own,
        "estimate {estimate} bytes < {own} bytes really held (heap {real} + the struct)"
    );
    assert!(
        estimate <= own * 2,
        "estimate {estimate} bytes > twice the {own} bytes really held"
    );
}

#[test]
fn a_bare_line_is_not_undercounted() {
    let sh = shared();
    let line = "x".repeat(256);
    let (real, estimate) = measure(|| Event::new(sh.clone(), line.clone()));
    let own = real + std::mem::size_of::<Event>();
    assert!(estimate >= own, "estimate {estimate} < {own}");
    assert!(estimate <= own * 2, "estimate {estimate} > 2 x {own}");
}
