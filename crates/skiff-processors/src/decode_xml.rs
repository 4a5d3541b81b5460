//! `decode_xml`: turns XML in a string field into fields (libbeat's, experimental there).
//!
//! Elements become keys, attributes become keys beside the children, an element with only text
//! becomes that text, text beside children or attributes goes under `#text`, and a repeated
//! element becomes a list; text is trimmed. Keys are lowercased unless `to_lower: false`.
//! Namespace prefixes are dropped (`<a:b>` is `b`, `xmlns:x='u'` is `x: u`), as libbeat's
//! decoder does.
//!
//! Parsing is `quick-xml` (no DTDs, no external entities: nothing is fetched or expanded beyond
//! the five XML entities and character references); nesting is limited to [`MAX_DEPTH`] levels,
//! and the input is bounded by the event's size. The `wineventlog` schema is refused (Windows
//! only).

use quick_xml::Reader;
use quick_xml::events::Event as Xml;
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Map, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::{error_at, plugin, set_error, yes};

plugin!(DECODE_XML, "decode_xml", build);

/// The deepest element nesting accepted.
pub const MAX_DEPTH: usize = 128;

/// `decode_xml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `field`: the XML text. Default `message`.
    #[serde(default = "message")]
    field: String,
    /// `target_field`: where the result goes; `""` merges into the root. Default: replaces
    /// `field`.
    #[serde(default)]
    target_field: Option<String>,
    /// `overwrite_keys`: with `target_field: ""`, replace existing keys. Default true.
    #[serde(default = "yes")]
    overwrite_keys: bool,
    /// `to_lower`: lowercase the keys. Default true.
    #[serde(default = "yes")]
    to_lower: bool,
    /// `document_id`: a key (dotted path) of the result moved to `@metadata._id`. Default none.
    #[serde(default)]
    document_id: Option<String>,
    /// `schema`: only the default is supported (`wineventlog` is Windows-only here).
    #[serde(default)]
    schema: Option<String>,
    /// `ignore_missing`: no error when `field` is missing. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `ignore_failure`: no error at all. Default false.
    #[serde(default)]
    ignore_failure: bool,
}

fn message() -> String {
    "message".into()
}

struct DecodeXml(Config);

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    if let Some(s) = &cfg.schema {
        return Err(error_at(node.get("schema").unwrap_or(node), format!("decode_xml schema `{s}` is not supported by skiff; leave `schema` out for plain XML")).into());
    }
    Ok(Box::new(DecodeXml(cfg)))
}

/// Adds `v` under `k`, turning a repeated key into a list.
fn add(map: &mut Map, k: String, v: Value) {
    match map.get_mut(&k) {
        Some(Value::Array(a)) => a.push(v),
        Some(old) => {
            let first = std::mem::take(old);
            *old = Value::Array(vec![first, v]);
        }
        None => {
            map.insert(k, v);
        }
    }
}

/// An element's attributes as keys and values.
fn attributes(
    e: &quick_xml::events::BytesStart<'_>,
    key: &dyn Fn(&[u8]) -> String,
) -> Result<Map, String> {
    let mut attrs = Map::new();
    for a in e.attributes() {
        let a = a.map_err(|e| format!("invalid XML attribute: {e}"))?;
        let v = a
            .unescape_value()
            .map_err(|e| format!("invalid XML attribute value: {e}"))?;
        add(
            &mut attrs,
            key(a.key.as_ref()),
            Value::String(v.into_owned()),
        );
    }
    Ok(attrs)
}

/// XML text to a map with the root element as its one key.
pub fn xml_to_map(text: &str, to_lower: bool) -> Result<Map, String> {
    let mut reader = Reader::from_str(text);
    let key = |raw: &[u8]| -> String {
        let s = String::from_utf8_lossy(raw);
        let local = s.rsplit(':').next().unwrap_or(&s).to_owned();
        if to_lower {
            local.to_lowercase()
        } else {
            local
        }
    };
    // (name, children and attributes, text)
    let mut stack: Vec<(String, Map, String)> = vec![(String::new(), Map::new(), String::new())];
    let finish = |map: Map, text: String| -> Value {
        let text = text.trim().to_owned();
        if map.is_empty() {
            Value::String(text)
        } else {
            let mut map = map;
            if !text.is_empty() {
                map.insert("#text".into(), Value::String(text));
            }
            Value::Object(map)
        }
    };
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("invalid XML at byte {}: {e}", reader.error_position()))?
        {
            Xml::Start(e) | Xml::Empty(e) if stack.len() > MAX_DEPTH => {
                let _ = e;
                return Err(format!("XML nested deeper than {MAX_DEPTH} elements"));
            }
            Xml::Start(e) => {
                let attrs = attributes(&e, &key)?;
                stack.push((key(e.name().as_ref()), attrs, String::new()));
            }
            Xml::Empty(e) => {
                let attrs = attributes(&e, &key)?;
                let v = finish(attrs, String::new());
                if let Some(parent) = stack.last_mut() {
                    add(&mut parent.1, key(e.name().as_ref()), v);
                }
            }
            Xml::Text(t) => {
                let t = t
                    .xml_content()
                    .map_err(|e| format!("invalid XML text: {e}"))?;
                let t = quick_xml::escape::unescape(&t)
                    .map_err(|e| format!("invalid XML text: {e}"))?;
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&t);
                }
            }
            Xml::GeneralRef(r) => {
                // `&amp;`, `&#38;`: only the predefined entities and character references.
                let c = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| format!("invalid XML character reference: {e}"))?
                        .map(String::from)
                } else {
                    let name = r.decode().map_err(|e| format!("invalid XML entity: {e}"))?;
                    quick_xml::escape::resolve_predefined_entity(&name).map(str::to_owned)
                };
                let Some(c) = c else {
                    return Err("invalid XML: unknown entity".into());
                };
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&c);
                }
            }
            Xml::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Xml::End(_) => {
                if stack.len() < 2 {
                    return Err("invalid XML: unexpected closing tag".into());
                }
                let Some((name, map, text)) = stack.pop() else {
                    break;
                };
                let v = finish(map, text);
                if let Some(parent) = stack.last_mut() {
                    add(&mut parent.1, name, v);
                }
            }
            Xml::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err("invalid XML: an element is not closed".into());
    }
    let root = stack.pop().map(|(_, m, _)| m).unwrap_or_default();
    if root.is_empty() {
        return Err("no XML element found".into());
    }
    Ok(root)
}

fn remove_path(map: &mut Map, path: &str) -> Option<Value> {
    match path.split_once('.') {
        None => map.remove(path),
        Some((head, rest)) => match map.get_mut(head) {
            Some(Value::Object(m)) => remove_path(m, rest),
            _ => None,
        },
    }
}

impl Processor for DecodeXml {
    fn process(&self, event: &mut Event) -> Verdict {
        let c = &self.0;
        let text = match event.get(&c.field) {
            None if c.ignore_missing => return Verdict::Keep,
            None => Err(format!("field `{}` not found", c.field)),
            Some(f) => f
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("field `{}` is not a string", c.field)),
        };
        let decoded = text.and_then(|t| xml_to_map(&t, c.to_lower));
        let mut map = match decoded {
            Ok(m) => m,
            Err(e) => {
                if !c.ignore_failure {
                    set_error(event, format!("decode_xml: {e}"));
                }
                return Verdict::Keep;
            }
        };
        if let Some(id) = &c.document_id
            && let Some(v) = remove_path(&mut map, id)
        {
            event.insert("@metadata._id", v);
        }
        match c.target_field.as_deref() {
            Some("") => {
                for (k, v) in map {
                    if c.overwrite_keys || event.get(&k).is_none() {
                        event.remove(&k);
                        event.insert(&k, v);
                    }
                }
            }
            target => {
                let t = target.unwrap_or(&c.field);
                event.remove(t);
                event.insert(t, Value::Object(map));
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;
    use serde_json::json;

    const CATALOG: &str = "<catalog>\n  <book seq=\"1\">\n    <author>William H. Gaddis</author>\n    <title>The Recognitions</title>\n    <review>One of the great seminal American novels of the 20th century.</review>\n  </book>\n</catalog>";

    /// Filebeat's documentation examples.
    #[test]
    fn doc_examples() {
        let p =
            build("processors:\n  - decode_xml:\n      field: message\n      target_field: xml\n")
                .unwrap();
        let v = json(&run(&p, event(CATALOG)).unwrap());
        assert_eq!(
            v["xml"],
            json!({"catalog": {"book": {"author": "William H. Gaddis", "review": "One of the great seminal American novels of the 20th century.", "seq": "1", "title": "The Recognitions"}}})
        );
        // Into the root, overwriting.
        let p = build("processors:\n  - decode_xml:\n      field: message\n      target_field: \"\"\n      overwrite_keys: true\n").unwrap();
        let v = json(&run(&p, event("<host><name>x</name></host>")).unwrap());
        assert_eq!(v["host"], json!({"name": "x"}));
        // Missing and broken input, ignored on request.
        let p = build("processors:\n  - decode_xml:\n      field: example\n      target_field: xml\n      ignore_missing: true\n      ignore_failure: true\n").unwrap();
        assert!(json(&run(&p, event("m")).unwrap()).get("error").is_none());
        let mut ev = event("m");
        ev.insert("example", json!("<a><b></a>"));
        assert!(json(&run(&p, ev).unwrap()).get("error").is_none());
        // to_lower: false keeps the case.
        let p = build(
            "processors: [{decode_xml: {field: message, target_field: xml, to_lower: false}}]",
        )
        .unwrap();
        let v = json(
            &run(
                &p,
                event("<Root Id='7'><Item>a</Item><Item>b</Item><Empty/></Root>"),
            )
            .unwrap(),
        );
        assert_eq!(
            v["xml"],
            json!({"Root": {"Id": "7", "Item": ["a", "b"], "Empty": ""}})
        );
    }

    #[test]
    fn details() {
        // In place by default; text beside children; entities; CDATA; namespaces; document_id.
        let p = build("processors: [{decode_xml: {document_id: r.id}}]").unwrap();
        let v = run(
            &p,
            event(
                "<x:r xmlns:x='u'><id>42</id><t a='1'>A &amp; B</t><c><![CDATA[<raw>]]></c></x:r>",
            ),
        )
        .unwrap();
        assert_eq!(v.get("@metadata._id").unwrap().as_str(), Some("42"));
        assert_eq!(
            json(&v)["message"],
            json!({"r": {"x": "u", "t": {"a": "1", "#text": "A & B"}, "c": "<raw>"}})
        );
        let p = build("processors: [{decode_xml: {target_field: x}}]").unwrap();
        for bad in ["not xml", "<a>", "<a></b>", "</a>", ""] {
            let v = json(&run(&p, event(bad)).unwrap());
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("decode_xml: "),
                "{bad}: {v}"
            );
        }
        let deep = "<a>".repeat(200) + &"</a>".repeat(200);
        let v = json(&run(&p, event(&deep)).unwrap());
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nested deeper"),
            "{v}"
        );
        assert!(build("processors: [{decode_xml: {schema: wineventlog}}]").is_err());
    }

    mod fuzz {
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            /// Any text: a map or an error, never a panic.
            #[test]
            fn never_panics(s in "(<[a-c:]{0,3}( [a-c]{1,2}='[^']{0,3}')?/?>|</[a-c:]{0,3}>|<!\\[CDATA\\[|\\]\\]>|&[a-z#0-9]{0,4};|[^<&]{0,4}){0,12}|\\PC{0,40}", lower in any::<bool>()) {
                let _ = super::super::xml_to_map(&s, lower);
            }
        }
    }
}
