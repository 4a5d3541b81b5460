//! Helpers on JSON field maps shared by the parsers: deep merges as libbeat's `mapstr` does
//! them, dotted-key expansion, and a log rate limiter for per-line warnings.

use std::time::{Duration, Instant};

use skiff_event::{Map, Value};

/// Merges `src` into `dst`; objects present in both are merged recursively, anything else in
/// `src` replaces what is in `dst` (libbeat's `DeepUpdate`).
pub(crate) fn deep_update(dst: &mut Map, src: Map) {
    for (k, v) in src {
        match (dst.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => deep_update(d, s),
            (_, v) => {
                dst.insert(k, v);
            }
        }
    }
}

/// Like [`deep_update`], but values already in `dst` are kept (libbeat's
/// `DeepUpdateNoOverwrite`).
pub(crate) fn deep_update_no_overwrite(dst: &mut Map, src: Map) {
    for (k, v) in src {
        match (dst.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => deep_update_no_overwrite(d, s),
            (Some(_), _) => {}
            (None, v) => {
                dst.insert(k, v);
            }
        }
    }
}

/// Puts `value` at dotted `path` in `map`, creating objects on the way and merging with an
/// object already there (libbeat's `AddFields` of `{path: value}`).
pub(crate) fn put_path(map: &mut Map, path: &str, value: Value) {
    let mut parts = path.split('.').filter(|p| !p.is_empty()).peekable();
    let mut cur = map;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            match (cur.get_mut(p), value) {
                (Some(Value::Object(d)), Value::Object(s)) => deep_update(d, s),
                (_, value) => {
                    cur.insert(p.to_owned(), value);
                }
            }
            return;
        }
        let entry = cur
            .entry(p.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        match entry {
            Value::Object(m) => cur = m,
            _ => return,
        }
    }
}

/// Reads a dotted path (`a.b.c`) from `map`.
pub(crate) fn get_path<'a>(map: &'a Map, path: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut cur = map.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// Removes a dotted path from `map`.
pub(crate) fn remove_path(map: &mut Map, path: &str) -> Option<Value> {
    if let Some(v) = map.remove(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    remove_path(map.get_mut(head)?.as_object_mut()?, rest)
}

/// De-dots keys into nested objects, in place (libbeat's `jsontransform.expandFields`):
/// `{"a.b": 1, "a": {"c": 2}}` becomes `{"a": {"b": 1, "c": 2}}`. A conflict (a dotted key
/// that needs an object where a non-object is) is an error, as in libbeat; the map may then be
/// half expanded.
pub(crate) fn expand_keys(map: &mut Map) -> Result<(), String> {
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let Some(mut v) = map.remove(&k) else {
            continue;
        };
        if let Value::Object(inner) = &mut v {
            expand_keys(inner).map_err(|e| format!("error expanding {k:?}: {e}"))?;
        }
        if !k.contains('.') {
            map.insert(k, v);
            continue;
        }
        insert_expanded(map, &k, v).map_err(|e| format!("cannot expand {k:?}: {e}"))?;
    }
    Ok(())
}

fn insert_expanded(map: &mut Map, path: &str, v: Value) -> Result<(), String> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    match rest {
        None => match (map.get_mut(head), v) {
            (None, v) => {
                map.insert(head.to_owned(), v);
                Ok(())
            }
            (Some(Value::Object(old)), Value::Object(new)) => merge_objects(old, new),
            (Some(_), _) => Err("found conflicting key".to_owned()),
        },
        Some(rest) => {
            let entry = map
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(inner) => insert_expanded(inner, rest, v),
                _ => Err("found conflicting key".to_owned()),
            }
        }
    }
}

fn merge_objects(lhs: &mut Map, rhs: Map) -> Result<(), String> {
    for (k, r) in rhs {
        match (lhs.get_mut(&k), r) {
            (None, r) => {
                lhs.insert(k, r);
            }
            (Some(Value::Object(l)), Value::Object(r)) => {
                merge_objects(l, r).map_err(|e| format!("cannot merge {k:?}: {e}"))?
            }
            (Some(_), _) => return Err(format!("cannot merge {k:?}: found a non-object value")),
        }
    }
    Ok(())
}

/// The largest index `<= i` that is a char boundary of `s` (so a cut never splits a character).
pub(crate) fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Lets a per-line warning through at most once per interval, counting the rest, so a file full
/// of bad lines does not flood the log.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub(crate) fn new(every: Duration) -> Self {
        LogLimiter {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a warning may be logged now (`n` = how many were held back since the last
    /// one), `None` when it should be skipped.
    pub(crate) fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn deep_updates() {
        let mut a = obj(json!({"a": {"b": 1, "c": 2}, "x": 1}));
        deep_update(&mut a, obj(json!({"a": {"b": 9}, "x": {"y": 1}})));
        assert_eq!(
            Value::Object(a),
            json!({"a": {"b": 9, "c": 2}, "x": {"y": 1}})
        );
        let mut a = obj(json!({"a": {"b": 1}, "x": 1}));
        deep_update_no_overwrite(&mut a, obj(json!({"a": {"b": 9, "d": 4}, "x": 2, "z": 3})));
        assert_eq!(
            Value::Object(a),
            json!({"a": {"b": 1, "d": 4}, "x": 1, "z": 3})
        );
    }

    #[test]
    fn expand_merges_and_reports_conflicts() {
        let mut m = obj(json!({"a.b": 1, "a": {"c": 2}, "d": {"e.f": 3}}));
        expand_keys(&mut m).unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"a": {"b": 1, "c": 2}, "d": {"e": {"f": 3}}})
        );
        let mut m = obj(json!({"a": 1, "a.b": 2}));
        let err = expand_keys(&mut m).unwrap_err();
        assert!(err.contains("a.b"), "{err}");
    }

    #[test]
    fn paths() {
        let mut m = Map::new();
        put_path(&mut m, "a.b", json!({"c": 1}));
        put_path(&mut m, "a.b", json!({"d": 2}));
        assert_eq!(get_path(&m, "a.b.d"), Some(&json!(2)));
        assert_eq!(remove_path(&mut m, "a.b.c"), Some(json!(1)));
        assert_eq!(Value::Object(m), json!({"a": {"b": {"d": 2}}}));
    }

    #[test]
    fn char_boundary() {
        let s = "aé";
        assert_eq!(floor_char_boundary(s, 2), 1);
        assert_eq!(floor_char_boundary(s, 3), 3);
        assert_eq!(floor_char_boundary(s, 99), 3);
    }
}
