//! Fuzzing the `_bulk` response reader: any body gives per-item results or an error, never a
//! panic; a valid response is read exactly; a mutated one is either refused or still accounts
//! for every document sent (each in at most one of retry/rejected, none invented).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use skiff_output_elasticsearch::bulk::{Span, read_response};

fn spans(n: usize) -> Vec<Span> {
    (0..n)
        .map(|i| Span {
            event: i,
            bytes: 0..0,
            create: i % 3 != 0,
        })
        .collect()
}

/// A valid response for `statuses` (one per document of `spans(statuses.len())`).
fn response(statuses: &[u16]) -> String {
    let items: Vec<String> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let action = if i % 3 != 0 { "create" } else { "index" };
            if *s < 300 {
                format!(r#"{{"{action}":{{"status":{s}}}}}"#)
            } else {
                format!(r#"{{"{action}":{{"status":{s},"error":{{"type":"x","reason":"y"}}}}}}"#)
            }
        })
        .collect();
    let errors = statuses.iter().any(|s| *s >= 300);
    format!(r#"{{"errors":{errors},"items":[{}]}}"#, items.join(","))
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(200u16),
        Just(201),
        Just(400),
        Just(404),
        Just(409),
        Just(429),
        Just(503)
    ]
}

fn check_accounting(r: &skiff_output_elasticsearch::bulk::ItemResults, n: usize) {
    let mut all: Vec<usize> = r
        .retry
        .iter()
        .copied()
        .chain(r.rejected.iter().map(|x| x.0))
        .collect();
    all.sort_unstable();
    let len = all.len();
    all.dedup();
    assert_eq!(all.len(), len, "an event in two lists");
    assert!(all.iter().all(|i| *i < n), "an invented event");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300), n in 0usize..5) {
        if let Ok(r) = read_response(&body, &spans(n)) {
            check_accounting(&r, n);
        }
    }

    #[test]
    fn valid_responses_are_read_and_mutated_ones_refused_or_consistent(
        statuses in proptest::collection::vec(status(), 1..8),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let n = statuses.len();
        let body = response(&statuses);
        let r = read_response(body.as_bytes(), &spans(n)).unwrap();
        check_accounting(&r, n);
        let expected_retry: Vec<usize> = statuses.iter().enumerate()
            .filter(|(_, s)| **s == 429 || **s == 503).map(|(i, _)| i).collect();
        prop_assert_eq!(&r.retry, &expected_retry);

        let mut bytes = body.clone().into_bytes();
        for (at, b) in &flips {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        if let Ok(r) = read_response(&bytes, &spans(n)) {
            check_accounting(&r, n);
        }
        // A truncated response is never accepted.
        let cut = cut.index(body.len());
        prop_assert!(read_response(&body.as_bytes()[..cut], &spans(n)).is_err());
        // Fewer documents answered than sent, or more: refused.
        prop_assert!(read_response(body.as_bytes(), &spans(n + 1)).is_err());
        if n > 1 {
            prop_assert!(read_response(body.as_bytes(), &spans(n - 1)).is_err());
        }
    }
}
