//! Elasticsearch's `kv` processor: a text of `key=value` pairs into fields.
//!
//! Elasticsearch splits with Java's `Pattern.split`: the pairs with `field_split` (no limit,
//! trailing empty pieces dropped) and each pair with `value_split` (limit 2: the first
//! separator only). Both are regular expressions, and Filebeat's auditd pipeline uses a
//! look-ahead (`\s+(?=[^\s]+=)`: split only before a word holding `=`, so a quoted value with
//! spaces stays whole), which the `regex` crate cannot express; `fancy-regex` (already built
//! for grok) can. Its backtracking is bounded by the crate's backtrack limit: an input that
//! hits it fails the step instead of running away.

use fancy_regex::Regex;

/// One compiled `kv` step's splitting rule.
pub struct KvSplit {
    field_split: Regex,
    value_split: Regex,
    /// `value_split` as written, for the error message Elasticsearch gives.
    value_split_text: String,
}

impl KvSplit {
    /// Compiles the two separators.
    pub fn new(field_split: &str, value_split: &str) -> Result<Self, String> {
        let compile = |r: &str| Regex::new(r).map_err(|e| format!("kv: `{r}`: {e}"));
        Ok(Self {
            field_split: compile(field_split)?,
            value_split: compile(value_split)?,
            value_split_text: value_split.to_string(),
        })
    }

    /// The `(key, value)` pairs of `text`, in order; a piece without `value_split` fails the
    /// whole text, as in Elasticsearch (`field` names the field in the message).
    pub fn pairs<'t>(&self, field: &str, text: &'t str) -> Result<Vec<(&'t str, &'t str)>, String> {
        java_split(&self.field_split, text, 0)?
            .into_iter()
            .map(
                |piece| match java_split(&self.value_split, piece, 2)?.as_slice() {
                    [k, v] => Ok((*k, *v)),
                    _ => Err(format!(
                        "field [{field}] does not contain value_split [{}]",
                        self.value_split_text
                    )),
                },
            )
            .collect()
    }
}

/// Java's `Pattern.split(text, limit)`: `limit` 0 splits at every match and drops trailing
/// empty pieces; a positive limit makes at most `limit` pieces (the last keeps the rest,
/// empty or not). A zero-width match at the very start makes no leading empty piece; a text
/// without a match is itself.
pub fn java_split<'t>(re: &Regex, text: &'t str, limit: usize) -> Result<Vec<&'t str>, String> {
    let mut out = Vec::new();
    let mut index = 0;
    for m in re.find_iter(text) {
        let m = m.map_err(|e| format!("kv: {e}"))?;
        if limit > 0 && out.len() + 1 >= limit {
            break;
        }
        if m.end() == 0 {
            continue;
        }
        out.push(&text[index..m.start()]);
        index = m.end();
    }
    if out.is_empty() {
        return Ok(vec![text]);
    }
    out.push(&text[index..]);
    if limit == 0 {
        while out.last().is_some_and(|p| p.is_empty()) {
            out.pop();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(re: &str, text: &str, limit: usize) -> Vec<String> {
        let re = Regex::new(re).expect("regex");
        java_split(&re, text, limit)
            .expect("split")
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn split_follows_java() {
        // Results as Java's String.split documents them ("boo:and:foo" examples).
        assert_eq!(split(":", "boo:and:foo", 2), ["boo", "and:foo"]);
        assert_eq!(split("o", "boo:and:foo", 0), ["b", "", ":and:f"]);
        assert_eq!(split("x", "abc", 0), ["abc"]);
        assert_eq!(split("=", "mac=", 2), ["mac", ""]);
        assert_eq!(split(r"\s+", " a b", 0), ["", "a", "b"]);
        assert_eq!(split(r"\s+", "  ", 0), Vec::<String>::new());
    }

    #[test]
    fn look_ahead_keeps_quoted_values_whole() {
        let kv = KvSplit::new(r"\s+(?=[^\s]+=)", "=").expect("compiles");
        let pairs = kv
            .pairs(
                "f",
                r#"comm="extproc" reason="memory violation" sig=6 mac= x=a=b"#,
            )
            .expect("pairs");
        assert_eq!(
            pairs,
            [
                ("comm", r#""extproc""#),
                ("reason", r#""memory violation""#),
                ("sig", "6"),
                ("mac", ""),
                ("x", "a=b"),
            ]
        );
        let err = KvSplit::new(r"\s+", "=")
            .expect("compiles")
            .pairs("f", "a=1 lonely")
            .expect_err("a piece without `=` fails");
        assert_eq!(err, "field [f] does not contain value_split [=]");
    }
}
