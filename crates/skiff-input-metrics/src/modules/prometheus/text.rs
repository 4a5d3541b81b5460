//! The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text, read into
//! Metricbeat's classic layout: samples with the same label set in one event, values under
//! `prometheus.metrics.<name>`, labels under `prometheus.labels.*`.
//!
//! Hand-written rather than a crate: the crates on crates.io either drop what Metricbeat keeps
//! (label order, untyped families, OpenMetrics suffixes) or are unmaintained, and the format is
//! a line grammar of a page. It never panics and allocates in proportion to its input (which
//! the HTTP side caps); a property test feeds it arbitrary text.

use std::collections::{BTreeMap, HashMap};

use skiff_event::{Map, Value};

/// A family's type from its `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `summary`.
    Summary,
    /// `histogram` (and OpenMetrics `gaugehistogram`).
    Histogram,
    /// `untyped`, `unknown`, `info`, `stateset`, or no `# TYPE` line.
    Untyped,
}

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name (`http_requests_total`, `x_bucket`).
    pub name: String,
    /// The family it belongs to (`x` for `x_bucket`).
    pub family: String,
    /// The family's type.
    pub kind: Kind,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// A line that is not Prometheus text.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

fn kind_of(word: &str) -> Kind {
    match word {
        "counter" => Kind::Counter,
        "gauge" => Kind::Gauge,
        "summary" => Kind::Summary,
        "histogram" | "gaugehistogram" => Kind::Histogram,
        _ => Kind::Untyped,
    }
}

const SUFFIXES: &[&str] = &[
    "_bucket", "_sum", "_count", "_total", "_created", "_gcount", "_gsum", "_info",
];

/// Parses a page into samples.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut types: HashMap<&str, Kind> = HashMap::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut words = rest.split_whitespace();
            if words.next() == Some("TYPE")
                && let (Some(name), Some(kind)) = (words.next(), words.next())
            {
                types.insert(name, kind_of(kind));
            }
            continue;
        }
        let err = |reason| ParseError {
            line: i + 1,
            reason,
        };
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .ok_or_else(|| err("a sample needs a value"))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(err("invalid metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if rest.starts_with('{') {
            let (l, after) = parse_labels(&rest[1..]).ok_or_else(|| err("invalid labels"))?;
            labels = l;
            rest = after;
        }
        // OpenMetrics exemplars follow ` # `.
        let rest = rest.split(" # ").next().unwrap_or(rest);
        let value = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| err("a sample needs a value"))?;
        let value = parse_value(value).ok_or_else(|| err("invalid value"))?;
        let (family, kind) = match types.get(name) {
            Some(k) => (name, *k),
            None => SUFFIXES
                .iter()
                .find_map(|s| {
                    let base = name.strip_suffix(s)?;
                    types.get(base).map(|k| (base, *k))
                })
                .unwrap_or((name, Kind::Untyped)),
        };
        out.push(Sample {
            name: name.to_owned(),
            family: family.to_owned(),
            kind,
            labels,
            value,
        });
    }
    Ok(out)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !n.starts_with(|c: char| c.is_ascii_digit())
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Labels after `{` up to `}`: the labels and what follows.
fn parse_labels(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = s.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        if !valid_name(name) {
            return None;
        }
        rest = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        rest = rest[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start();
        } else if !rest.starts_with('}') {
            return None;
        }
    }
}

/// A float label value the way Go's `FormatFloat(v, 'f', -1, 64)` writes it (`1`, `0.25`,
/// `+Inf`), as Metricbeat writes `le` and `quantile`.
fn float_label(v: &str) -> String {
    match parse_value(v) {
        Some(f) if f == f64::INFINITY => "+Inf".into(),
        Some(f) if f == f64::NEG_INFINITY => "-Inf".into(),
        Some(f) if f.is_finite() => format!("{f}"),
        _ => v.to_owned(),
    }
}

/// A value as JSON: integral values as integers (`3`, not `3.0`), as Metricbeat prints them.
pub fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

/// Which families to keep (`metrics_filters`).
pub trait Filter {
    /// Whether the family named `family` is kept.
    fn keep(&self, family: &str) -> bool;
}

/// Groups samples by label set, Metricbeat's classic layout: `(labels, metrics)` per event.
/// `instance` and `job` are added to every label set that lacks them.
pub fn group(
    samples: Vec<Sample>,
    instance: &str,
    job: &str,
    filter: &dyn Filter,
) -> BTreeMap<Vec<(String, String)>, Map> {
    let mut groups: BTreeMap<Vec<(String, String)>, Map> = BTreeMap::new();
    for s in samples {
        if !s.value.is_finite() || !filter.keep(&s.family) {
            continue;
        }
        let openmetrics_created = s.name.ends_with("_created") && s.name != s.family;
        if openmetrics_created {
            continue;
        }
        let mut labels: Vec<(String, String)> = s
            .labels
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| {
                let float = (k == "le" && s.kind == Kind::Histogram)
                    || (k == "quantile" && s.kind == Kind::Summary);
                let v = if float { float_label(&v) } else { v };
                (k, v)
            })
            .collect();
        if !labels.iter().any(|(k, _)| k == "instance") {
            labels.push(("instance".into(), instance.to_owned()));
        }
        if !labels.iter().any(|(k, _)| k == "job") {
            labels.push(("job".into(), job.to_owned()));
        }
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        groups
            .entry(labels)
            .or_default()
            .insert(s.name, number(s.value));
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    struct All;
    impl Filter for All {
        fn keep(&self, _: &str) -> bool {
            true
        }
    }

    #[test]
    fn lines_labels_and_values() {
        let page = "# TYPE h histogram\nh_bucket{le=\"0.50\",a=\"x\\\"y\",} 3 1700000000\nh_sum 1.5\nplain 2\nesc{a=\"\\\\n\\n\"} NaN\n";
        let s = parse(page).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].family, "h");
        assert_eq!(s[0].kind, Kind::Histogram);
        assert_eq!(
            s[0].labels,
            vec![("le".into(), "0.50".into()), ("a".into(), "x\"y".into())]
        );
        assert_eq!(s[1].family, "h");
        assert_eq!(s[2].kind, Kind::Untyped);
        assert_eq!(s[3].labels[0].1, "\\n\n");
        assert!(s[3].value.is_nan());
        let g = group(s, "h:1", "prometheus", &All);
        let le = g
            .keys()
            .find(|k| k.iter().any(|(n, v)| n == "le" && v == "0.5"))
            .unwrap();
        assert_eq!(g[le]["h_bucket"], 3);
        assert_eq!(g.len(), 2, "{g:?}");
    }

    #[test]
    fn openmetrics_exemplars_and_eof() {
        let page = "# TYPE c counter\nc_total 5 # {trace_id=\"a\"} 1\nc_created 1.7e9\n# EOF\n";
        let s = parse(page).unwrap();
        let g = group(s, "i", "j", &All);
        assert_eq!(g.len(), 1);
        let m = g.values().next().unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m["c_total"], 5);
    }

    #[test]
    fn broken_lines_are_errors_not_panics() {
        for bad in [
            "x{a=\"1\" 2",
            "x{a=1} 2",
            "x",
            "1x 2",
            "x{a=\"1\"} abc",
            "x{=\"\"} 1",
            "x{a=\"\\",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
