//! Property tests of the parsers of what services send: any text gives events or an error,
//! never a panic, and what parses keeps its shape (finite values, one event per label set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use skiff_input_metrics::modules::{apache, memcached, nats, nginx, prometheus, redis, zookeeper};

struct All;
impl prometheus::text::Filter for All {
    fn keep(&self, _: &str) -> bool {
        true
    }
}

/// Lines that look like exposition text, mangled.
fn exposition() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        "[a-z_]{1,8}(\\{[a-z]{1,3}=\"[a-z0-9\\\\\" ,]{0,6}\",?\\})? (-?[0-9.e+]{1,8}|NaN|\\+Inf|-Inf)( [0-9]{1,5})?",
        "# (TYPE|HELP) [a-z_]{1,8} (counter|gauge|histogram|summary|untyped|[a-z]{0,5})",
        "[a-z_]{1,6}_(bucket|sum|count|total|created)\\{le=\"[0-9.+Inf]{1,4}\"\\} [0-9]{1,4}",
        "\\PC{0,30}",
    ];
    prop::collection::vec(line, 0..30).prop_map(|l| l.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn prometheus_text_never_panics(text in exposition()) {
        if let Ok(samples) = prometheus::text::parse(&text) {
            let n = samples.len();
            let groups = prometheus::text::group(samples, "h:1", "prometheus", &All);
            let metrics: usize = groups.values().map(|m| m.len()).sum();
            prop_assert!(metrics <= n);
            for (labels, m) in &groups {
                prop_assert!(labels.iter().any(|(k, _)| k == "instance"));
                for v in m.values() {
                    prop_assert!(v.as_f64().is_some_and(f64::is_finite));
                }
            }
        }
    }

    #[test]
    fn text_answers_never_panic(text in "\\PC{0,400}", lines in prop::collection::vec("[A-Za-z_ ]{0,12}[:\t ][ 0-9.a-z]{0,10}", 0..20)) {
        let joined = lines.join("\n");
        for t in [&text, &joined] {
            let _ = apache::parse(t, "h");
            let _ = nginx::parse(t);
            let _ = memcached::parse(t);
            let _ = zookeeper::mntr(t, "h");
            let _ = zookeeper::srvr(t);
            let _ = redis::info_event(t, None);
            let _ = redis::keyspace_events(t);
            let _ = nats::duration_secs(t);
        }
    }
}
