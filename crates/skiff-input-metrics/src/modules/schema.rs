//! Mapping a service's JSON document to Metricbeat's field names: a table of
//! `(source path, destination path)` pairs; a missing source leaves the field out, as
//! Metricbeat's optional schema fields do.

use skiff_event::{Map, Value};

/// Sets `dotted` in `m`, creating objects on the way.
pub fn put(m: &mut Map, dotted: &str, v: Value) {
    match dotted.split_once('.') {
        None => {
            m.insert(dotted.to_owned(), v);
        }
        Some((head, tail)) => {
            let e = m
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !e.is_object() {
                *e = Value::Object(Map::new());
            }
            if let Value::Object(inner) = e {
                put(inner, tail, v);
            }
        }
    }
}

/// The value at `dotted` in `v` (`a.b` reads `{"a": {"b": ..}}`).
pub fn get<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(v, |cur, k| cur.get(k))
}

/// Copies every `(from, to)` present and not null in `src` into a new map.
pub fn pick(src: &Value, rules: &[(&str, &str)]) -> Map {
    let mut m = Map::new();
    for (from, to) in rules {
        if let Some(v) = get(src, from).filter(|v| !v.is_null()) {
            put(&mut m, to, v.clone());
        }
    }
    m
}
