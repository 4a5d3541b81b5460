//! The `_bulk` request body (NDJSON: one action line, one document line per event) and the
//! per-item reading of its response.
//!
//! Documents are written once into one buffer, in event order, so any contiguous run of events
//! (half a batch after a 413) is a slice of it: splitting costs no re-encoding.

use std::io::Write;
use std::ops::Range;

use serde::Deserialize;
use skiff_event::fastjson::{self, SharedCache};
use skiff_event::{Event, json};

use crate::select::Routing;

/// One encoded event: its index in the batch, its bytes in [`Body::ndjson`], and its action.
#[derive(Clone, Debug)]
pub struct Span {
    /// Index into the batch given to `send`.
    pub event: usize,
    /// Its action and document lines in [`Body::ndjson`].
    pub bytes: Range<usize>,
    /// `create` (409 means "already there": delivered) or `index`.
    pub create: bool,
}

/// A batch as NDJSON.
#[derive(Debug, Default)]
pub struct Body {
    /// Action and document lines of every encodable event.
    pub ndjson: Vec<u8>,
    /// Where each encoded event is.
    pub spans: Vec<Span>,
}

/// Encodes `events` into `out` (cleared first); returns the events that cannot be sent at all
/// (no index can be named for them), with the reason.
///
/// `cache` keeps each source's shared fields encoded once (most of an event's bytes); the
/// output is byte-identical to `skiff_event::json::encode`.
pub fn encode(
    events: &[Event],
    routing: &mut Routing,
    cache: &mut SharedCache,
    out: &mut Body,
) -> Vec<(usize, String)> {
    out.ndjson.clear();
    out.spans.clear();
    let mut rejected = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        let target = match routing.target(ev) {
            Ok(t) => t,
            Err(e) => {
                rejected.push((i, e));
                continue;
            }
        };
        let start = out.ndjson.len();
        // libbeat 8 sends `create` unless `@metadata.op_type` says `index`: `create` is the
        // only op a data stream takes, and for a classic index with generated ids it is the
        // same as `index`.
        let create = ev
            .get("@metadata.op_type")
            .is_none_or(|o| o.as_str() != Some("index"));
        let b = &mut out.ndjson;
        b.extend_from_slice(if create {
            b"{\"create\":{\"_index\":"
        } else {
            b"{\"index\":{\"_index\":"
        });
        json::write_str(b, &target.index);
        if let Some(p) = &target.pipeline {
            b.extend_from_slice(b",\"pipeline\":");
            json::write_str(b, p);
        }
        if let Some(id) = ev
            .get("@metadata._id")
            .and_then(|v| v.as_str().map(str::to_owned))
        {
            b.extend_from_slice(b",\"_id\":");
            json::write_str(b, &id);
        }
        b.extend_from_slice(b"}}\n");
        fastjson::encode(cache, ev, b, false);
        b.push(b'\n');
        out.spans.push(Span {
            event: i,
            bytes: start..out.ndjson.len(),
            create,
        });
    }
    rejected
}

/// Gzips `data` at `level` (1-9) into `out` (cleared first).
pub fn gzip(data: &[u8], level: u32, out: &mut Vec<u8>) {
    out.clear();
    let mut enc =
        flate2::write::GzEncoder::new(std::mem::take(out), flate2::Compression::new(level.min(9)));
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    *out = enc.finish().unwrap_or_default();
}

/// What became of each event of a bulk request.
#[derive(Debug, Default, PartialEq)]
pub struct ItemResults {
    /// Batch indices to send again (429, 5xx items).
    pub retry: Vec<usize>,
    /// Batch indices refused for good, with `type: reason`.
    pub rejected: Vec<(usize, String)>,
}

/// A `_bulk` response as skiff's `filter_path` leaves it: `errors` and, per item, its action
/// with `status` (and `error` when it failed).
#[derive(Deserialize)]
struct Response {
    errors: bool,
    items: Vec<Action>,
}

/// One item: an object with exactly one key, the action it answers (serde refuses a second key).
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Create(Item),
    Index(Item),
    Update(Item),
    Delete(Item),
}

#[derive(Deserialize)]
struct Item {
    status: Option<u16>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Reads a 200 bulk response for `spans` (the events of that request, in order).
///
/// Nothing is taken on trust: the response must be the JSON object `_bulk` answers with,
/// with exactly one item per document sent, in order, each naming the action that was sent
/// (`create` or `index`) and carrying an HTTP status. Anything else (`{"errors":false,
/// "items":[]}` from a proxy, an HTML page, truncated JSON, extra or missing items) is an
/// error: the caller fails the whole request, so no document of it counts as delivered.
pub fn read_response(body: &[u8], spans: &[Span]) -> Result<ItemResults, String> {
    let resp: Response = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the bulk response is not the JSON `_bulk` answers with ({e}); it starts with {:?}: is a proxy or something else answering for Elasticsearch?",
            preview(body)
        )
    })?;
    if resp.items.len() != spans.len() {
        return Err(format!(
            "the bulk response has {} items for the {} documents sent (errors: {}): is a proxy or a broken node answering for the cluster?",
            resp.items.len(),
            spans.len(),
            resp.errors
        ));
    }
    let mut out = ItemResults::default();
    let mut failed = false;
    for (k, (action, span)) in resp.items.iter().zip(spans).enumerate() {
        let (name, item) = match action {
            Action::Create(i) => ("create", i),
            Action::Index(i) => ("index", i),
            Action::Update(i) => ("update", i),
            Action::Delete(i) => ("delete", i),
        };
        let sent = if span.create { "create" } else { "index" };
        if name != sent {
            return Err(format!(
                "item {k} of the bulk response answers `{name}`, but `{sent}` was sent"
            ));
        }
        let Some(status) = item.status else {
            return Err(format!("item {k} of the bulk response has no status"));
        };
        match status {
            200..=299 => {}
            // `create` of a document that is already there: delivered before (a retry after a
            // lost response, or a deliberate `_id` for deduplication).
            409 if span.create => {}
            100..=199 | 300..=399 | 600.. => {
                return Err(format!(
                    "item {k} of the bulk response has status {status}, which `_bulk` never gives an item"
                ));
            }
            429 | 500..=599 => {
                failed = true;
                out.retry.push(span.event);
            }
            s => {
                failed = true;
                out.rejected
                    .push((span.event, reason(s, item.error.as_ref())));
            }
        }
    }
    if failed && !resp.errors {
        tracing::debug!("bulk response says errors:false but has failed items; trusting the items");
    }
    Ok(out)
}

/// The start of a body, for messages.
fn preview(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(80)]);
    s.into_owned()
}

/// `status type: reason (caused by type: reason)` from an Elasticsearch error object.
pub fn reason(status: u16, err: Option<&serde_json::Value>) -> String {
    let Some(e) = err else {
        return format!("status {status}");
    };
    if let Some(s) = e.as_str() {
        return format!("status {status}: {s}");
    }
    let part = |v: &serde_json::Value| {
        format!(
            "{}: {}",
            v.get("type").and_then(|t| t.as_str()).unwrap_or("error"),
            v.get("reason").and_then(|t| t.as_str()).unwrap_or("")
        )
    };
    let mut s = format!("status {status}, {}", part(e));
    if let Some(c) = e.get("caused_by") {
        s.push_str(&format!(" (caused by {})", part(c)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spans(n: usize) -> Vec<Span> {
        (0..n)
            .map(|i| Span {
                event: i * 10,
                bytes: 0..0,
                create: true,
            })
            .collect()
    }

    #[test]
    fn items_are_sorted_into_retry_and_rejected() {
        let body = json!({"errors": true, "items": [
            {"create": {"status": 201}},
            {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "busy"}}},
            {"create": {"status": 400, "error": {"type": "document_parsing_exception", "reason": "[1:2] failed to parse field [n] of type [long]",
                "caused_by": {"type": "illegal_argument_exception", "reason": "For input string: \"abc\""}}}},
            {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}},
            {"create": {"status": 503}},
        ]});
        let r = read_response(body.to_string().as_bytes(), &spans(5)).unwrap();
        assert_eq!(r.retry, vec![10, 40]);
        assert_eq!(r.rejected.len(), 1);
        assert_eq!(r.rejected[0].0, 20);
        assert_eq!(
            r.rejected[0].1,
            "status 400, document_parsing_exception: [1:2] failed to parse field [n] of type [long] (caused by illegal_argument_exception: For input string: \"abc\")"
        );
    }

    #[test]
    fn clean_and_broken_responses() {
        let r = read_response(
            br#"{"errors":false,"items":[{"create":{"status":201}}]}"#,
            &spans(1),
        );
        assert_eq!(r.unwrap(), ItemResults::default());
        assert!(read_response(b"<html>", &spans(1)).is_err());
        assert!(read_response(br#"{"errors":true,"items":[]}"#, &spans(1)).is_err());
    }

    /// Regression: a 200 `{"errors":false,"items":[]}` for a batch was taken as delivered.
    #[test]
    fn an_empty_item_list_for_a_non_empty_batch_is_an_error() {
        assert!(read_response(br#"{"took":3,"errors":false,"items":[]}"#, &spans(2)).is_err());
        assert!(read_response(br#"{"errors":false}"#, &spans(1)).is_err());
    }

    #[test]
    fn items_must_match_what_was_sent() {
        let ok =
            br#"{"errors":false,"items":[{"create":{"status":201}},{"create":{"status":201}}]}"#;
        assert!(read_response(ok, &spans(2)).is_ok());
        // Extra, missing, wrong action, no status, two actions in one item, truncated.
        for bad in [
            &br#"{"errors":false,"items":[{"create":{"status":201}},{"create":{"status":201}},{"create":{"status":201}}]}"#[..],
            br#"{"errors":false,"items":[{"create":{"status":201}}]}"#,
            br#"{"errors":false,"items":[{"index":{"status":201}},{"create":{"status":201}}]}"#,
            br#"{"errors":false,"items":[{"create":{}},{"create":{"status":201}}]}"#,
            br#"{"errors":false,"items":[{"create":{"status":201},"index":{"status":201}},{"create":{"status":201}}]}"#,
            br#"{"errors":false,"items":[{"create":{"status":201}},{"create":{"sta"#,
            br#"{"errors":false,"items":[{"create":{"status":201}},{"create":{"status":302}}]}"#,
            br#"{"errors":"no","items":[{"create":{"status":201}},{"create":{"status":201}}]}"#,
            br#"{"items":[{"create":{"status":201}},{"create":{"status":201}}]}"#,
            b"<html><body>502 Bad Gateway</body></html>",
            b"",
        ] {
            assert!(read_response(bad, &spans(2)).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn documents_are_what_the_event_encoder_writes() {
        let node = skiff_config::parse_str("hosts: [x]\nindex: i\n", None).unwrap();
        let cfg: crate::EsConfig = node.deserialize().unwrap();
        let mut routing = Routing::new(&cfg, &node).unwrap();
        let shared = json!({"log": {"file": {"path": "/a"}}, "host": {"name": "h"},
            "@metadata": {"pipeline": "p"}});
        let shared = std::sync::Arc::new(shared.as_object().unwrap().clone());
        let mut events = Vec::new();
        for i in 0..4u64 {
            // Plain lines (the cached shared-fields path) and one with fields of its own.
            let mut e = Event::new(shared.clone(), format!("line \"{i}\""));
            if i % 2 == 0 {
                e.offset = Some(i);
            }
            if i == 3 {
                e.insert("log.flags", json!(["x"]));
            }
            events.push(e);
        }
        let mut body = Body::default();
        let mut cache = SharedCache::default();
        assert!(encode(&events, &mut routing, &mut cache, &mut body).is_empty());
        let text = String::from_utf8(body.ndjson.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(lines[2 * i], r#"{"create":{"_index":"i","pipeline":"p"}}"#);
            assert_eq!(lines[2 * i + 1], skiff_event::json::to_string(e));
        }
    }

    #[test]
    fn index_op_conflict_is_a_rejection() {
        let mut s = spans(1);
        s[0].create = false;
        let r =
            read_response(br#"{"errors":true,"items":[{"index":{"status":409}}]}"#, &s).unwrap();
        assert_eq!(r.rejected.len(), 1);
    }
}
