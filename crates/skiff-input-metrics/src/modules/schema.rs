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

/// One row of a SQL query read as text: column names and values (`None` for NULL).
pub type Row = Vec<(String, Option<String>)>;

/// The text of `name` in `row`; `None` when the column is absent or NULL.
pub fn column<'a>(row: &'a Row, name: &str) -> Option<&'a str> {
    row.iter()
        .find(|(c, _)| c == name)
        .and_then(|(_, v)| v.as_deref())
}

/// How a text value of a SQL row (`SHOW STATUS`, `pg_stat_*` read with the text protocol)
/// becomes a field, as Metricbeat's `c.Int`, `c.Float`, `c.Str`, `c.Bool` and `c.Time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv {
    /// A 64-bit integer; a decimal text is truncated (Metricbeat's `c.Int` of a float). Out of
    /// range (MariaDB's `18446744073709551615` for "unset") leaves the field out, as there.
    Int,
    /// A finite float.
    Float,
    /// The text as it is.
    Str,
    /// `t`/`true`/`on`/`1` or `f`/`false`/`off`/`0`.
    Bool,
    /// A timestamp with a zone (`2019-03-05 08:38:21.348123+00`), as RFC 3339 in UTC with
    /// milliseconds, the way Metricbeat prints times.
    Time,
}

/// Converts one text value; `None` when it does not read as `conv` (the field is left out).
pub fn convert_text(text: &str, conv: Conv) -> Option<Value> {
    match conv {
        Conv::Int => text.parse::<i64>().ok().map(Value::from).or_else(|| {
            text.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                .map(|f| Value::from(f.trunc() as i64))
        }),
        Conv::Float => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from),
        Conv::Str => Some(Value::from(text)),
        Conv::Bool => match text.to_ascii_lowercase().as_str() {
            "t" | "true" | "on" | "1" | "yes" => Some(Value::from(true)),
            "f" | "false" | "off" | "0" | "no" => Some(Value::from(false)),
            _ => None,
        },
        Conv::Time => chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z")
            .or_else(|_| chrono::DateTime::parse_from_rfc3339(text))
            .ok()
            .map(|t| {
                Value::from(
                    t.with_timezone(&chrono::Utc)
                        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                        .to_string(),
                )
            }),
    }
}

/// The fields of a row of text values: every `(column, destination, conversion)` whose column
/// is present, not NULL and converts. `column` looks a column up by name (`None`: absent or
/// NULL).
pub fn apply_text<'a>(
    column: impl Fn(&str) -> Option<&'a str>,
    rules: &[(&str, &str, Conv)],
) -> Map {
    let mut m = Map::new();
    for (from, to, conv) in rules {
        if let Some(v) = column(from).and_then(|t| convert_text(t, *conv)) {
            put(&mut m, to, v);
        }
    }
    m
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn text_values_convert_as_metricbeat_does() {
        assert_eq!(convert_text("42", Conv::Int), Some(Value::from(42)));
        assert_eq!(convert_text("12.9", Conv::Int), Some(Value::from(12)));
        assert_eq!(convert_text("18446744073709551615", Conv::Int), None);
        assert_eq!(convert_text("x", Conv::Int), None);
        assert_eq!(
            convert_text("0.011561", Conv::Float),
            Some(Value::from(0.011561))
        );
        assert_eq!(convert_text("NaN", Conv::Float), None);
        assert_eq!(convert_text("ON", Conv::Bool), Some(Value::from(true)));
        assert_eq!(convert_text("f", Conv::Bool), Some(Value::from(false)));
        assert_eq!(
            convert_text("2019-03-05 09:38:21.348123+01", Conv::Time),
            Some(Value::from("2019-03-05T08:38:21.348Z"))
        );
        assert_eq!(
            convert_text("2019-03-05 08:38:21+05:30", Conv::Time),
            Some(Value::from("2019-03-05T03:08:21.000Z"))
        );
        let row = [("a", "1"), ("b", "x")];
        let m = apply_text(
            |c| row.iter().find(|(k, _)| *k == c).map(|(_, v)| *v),
            &[
                ("a", "x.a", Conv::Int),
                ("b", "x.b", Conv::Int),
                ("c", "c", Conv::Str),
            ],
        );
        assert_eq!(Value::Object(m), serde_json::json!({"x": {"a": 1}}));
    }
}
