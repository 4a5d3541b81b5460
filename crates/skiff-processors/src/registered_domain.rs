//! `registered_domain`: the registered domain (`google.co.uk`), its public suffix (`co.uk`)
//! and the subdomain (`www`) of a host name, by the Public Suffix List (libbeat's).
//!
//! The list is compiled in by the `psl` crate (updated with its releases), so lookups do no
//! I/O. A value that has no registered domain (`localhost`, a bare suffix) is an error unless
//! `ignore_failure`; a missing field is one unless `ignore_missing`.

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::{plugin, set_error};

plugin!(REGISTERED_DOMAIN, "registered_domain", build);

/// `registered_domain`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `field`: the host name. Required.
    field: String,
    /// `target_field`: the registered domain. Required.
    target_field: String,
    /// `target_etld_field`: the public suffix. Default: not written.
    #[serde(default)]
    target_etld_field: Option<String>,
    /// `target_subdomain_field`: the subdomain. Default: not written.
    #[serde(default)]
    target_subdomain_field: Option<String>,
    /// `ignore_missing`: no error when `field` is missing. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `ignore_failure`: no error at all. Default false.
    #[serde(default)]
    ignore_failure: bool,
    /// `id`: a name for this processor in messages. Default none.
    #[serde(default)]
    id: Option<String>,
}

struct RegisteredDomain(Config);

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    Ok(Box::new(RegisteredDomain(node.deserialize()?)))
}

/// (registered domain, public suffix, subdomain) of a host name.
pub fn split(host: &str) -> Option<(String, String, Option<String>)> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let domain = psl::domain(host.as_bytes())?;
    let registered = std::str::from_utf8(domain.as_bytes()).ok()?.to_owned();
    let suffix = std::str::from_utf8(domain.suffix().as_bytes())
        .ok()?
        .to_owned();
    let sub = host
        .strip_suffix(registered.as_str())
        .and_then(|s| s.strip_suffix('.'))
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Some((registered, suffix, sub))
}

impl Processor for RegisteredDomain {
    fn process(&self, event: &mut Event) -> Verdict {
        let c = &self.0;
        let fail = |event: &mut Event, msg: String| {
            if !c.ignore_failure {
                let name = c.id.as_ref().map_or_else(
                    || "registered_domain".into(),
                    |i| format!("registered_domain {i}"),
                );
                set_error(event, format!("{name}: {msg}"));
            }
        };
        let host = match event.get(&c.field) {
            None if c.ignore_missing => return Verdict::Keep,
            None => {
                fail(event, format!("could not get value of field `{}`", c.field));
                return Verdict::Keep;
            }
            Some(f) => match f.as_str() {
                Some(s) => s.to_owned(),
                None => {
                    fail(
                        event,
                        format!("value of field `{}` is not a string", c.field),
                    );
                    return Verdict::Keep;
                }
            },
        };
        match split(&host) {
            Some((registered, suffix, sub)) => {
                event.insert(&c.target_field, Value::String(registered));
                if let Some(t) = &c.target_etld_field {
                    event.insert(t, Value::String(suffix));
                }
                if let (Some(t), Some(s)) = (&c.target_subdomain_field, sub) {
                    event.insert(t, Value::String(s));
                }
            }
            None => fail(
                event,
                format!("failed to find the registered domain of `{host}`"),
            ),
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;
    use serde_json::json;

    /// Filebeat's documentation example, and more names.
    #[test]
    fn table() {
        let doc = "processors:\n  - registered_domain:\n      field: dns.question.name\n      target_field: dns.question.registered_domain\n      target_etld_field: dns.question.top_level_domain\n      target_subdomain_field: dns.question.subdomain\n      ignore_missing: true\n      ignore_failure: true\n";
        let p = build(doc).unwrap();
        for (name, reg, tld, sub) in [
            ("www.google.co.uk", "google.co.uk", "co.uk", Some("www")),
            ("google.com", "google.com", "com", None),
            ("a.b.example.com.", "example.com", "com", Some("a.b")),
            ("WWW.Example.ORG", "example.org", "org", Some("www")),
            ("foo.blogspot.com", "foo.blogspot.com", "blogspot.com", None),
        ] {
            let mut ev = event("m");
            ev.insert("dns.question.name", json!(name));
            let v = json(&run(&p, ev).unwrap());
            let q = &v["dns"]["question"];
            assert_eq!(
                (
                    q["registered_domain"].as_str(),
                    q["top_level_domain"].as_str(),
                    q["subdomain"].as_str()
                ),
                (Some(reg), Some(tld), sub),
                "{name}"
            );
        }
        let p = build("processors: [{registered_domain: {field: h, target_field: r}}]").unwrap();
        let mut ev = event("m");
        ev.insert("h", json!("com"));
        assert!(
            json(&run(&p, ev).unwrap())["error"]["message"]
                .as_str()
                .unwrap()
                .contains("failed to find the registered domain")
        );
        assert!(
            json(&run(&p, event("m")).unwrap())["error"]["message"]
                .as_str()
                .unwrap()
                .contains("could not get value")
        );
    }
}
