//! Dotted-path access to a document held as nested JSON objects, the way an ingest pipeline
//! sees `ctx`: `a.b.c` walks objects, and a missing object on the way is created on insert.

use serde_json::{Map, Value};

/// The value at a dotted path.
pub fn get<'a>(doc: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = doc.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    match doc.get(head)? {
        Value::Object(m) => get(m, rest),
        _ => None,
    }
}

/// The value at a dotted path, to change in place.
pub fn get_mut<'a>(doc: &'a mut Map<String, Value>, path: &str) -> Option<&'a mut Value> {
    if doc.contains_key(path) {
        return doc.get_mut(path);
    }
    let (head, rest) = path.split_once('.')?;
    match doc.get_mut(head)? {
        Value::Object(m) => get_mut(m, rest),
        _ => None,
    }
}

/// The value at a dotted path as text: strings as they are, numbers and booleans printed,
/// nothing for objects, lists and null.
pub fn get_text(doc: &Map<String, Value>, path: &str) -> Option<String> {
    match get(doc, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Sets the value at a dotted path, creating (or replacing non-object) parents.
///
/// A parent's key is allocated only where the parent is new: a pipeline mostly writes under
/// objects that are already there (`http.response.*`, `event.*`).
pub fn insert(doc: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            doc.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            if let Some(Value::Object(m)) = doc.get_mut(head) {
                insert(m, rest, value);
                return;
            }
            let mut m = Map::new();
            insert(&mut m, rest, value);
            doc.insert(head.to_string(), Value::Object(m));
        }
    }
}

/// Removes the value at a dotted path, and the objects it leaves empty.
pub fn remove(doc: &mut Map<String, Value>, path: &str) -> Option<Value> {
    if let Some(v) = doc.remove(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    let Some(Value::Object(m)) = doc.get_mut(head) else {
        return None;
    };
    let out = remove(m, rest);
    if m.is_empty() {
        doc.remove(head);
    }
    out
}

/// Flattens nested objects into dotted keys (lists and scalars are leaves).
pub fn flatten(doc: &Map<String, Value>) -> Map<String, Value> {
    fn walk(prefix: &str, m: &Map<String, Value>, out: &mut Map<String, Value>) {
        for (k, v) in m {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Object(inner) if !inner.is_empty() => walk(&key, inner, out),
                other => {
                    out.insert(key, other.clone());
                }
            }
        }
    }
    let mut out = Map::new();
    walk("", doc, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_create_walk_and_prune() {
        let mut d = Map::new();
        insert(&mut d, "a.b.c", json!(1));
        insert(&mut d, "a.x", json!("y"));
        assert_eq!(get(&d, "a.b.c"), Some(&json!(1)));
        assert_eq!(get_text(&d, "a.b.c").as_deref(), Some("1"));
        assert_eq!(remove(&mut d, "a.b.c"), Some(json!(1)));
        assert_eq!(Value::Object(d.clone()), json!({"a": {"x": "y"}}));
        assert_eq!(flatten(&d).get("a.x"), Some(&json!("y")));
        // A scalar on the way is replaced by an object; siblings stay.
        insert(&mut d, "a.x.z", json!(2));
        insert(&mut d, "a.w", json!(3));
        assert_eq!(Value::Object(d), json!({"a": {"x": {"z": 2}, "w": 3}}));
    }
}
