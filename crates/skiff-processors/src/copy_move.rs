//! `copy_fields` and `move_fields` (libbeat's).
//!
//! `copy_fields` copies `from` to `to`; a `to` that exists is an error ("drop or rename it
//! first"). `move_fields` moves the children of the object `from` (or of the root, `from: ""`)
//! to keys named `to` + their name — `to` is a plain prefix, so `to: "rpc."` puts `method` at
//! `rpc.method` and `to: "my_"` at `my_method`; `fields` limits which children move, `exclude`
//! keeps some where they are.

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::fields::OneOrMany;
use crate::{each_item, plugin, set_error, yes};

plugin!(COPY_FIELDS, "copy_fields", build_copy);
plugin!(MOVE_FIELDS, "move_fields", build_move);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromTo {
    from: String,
    to: String,
}

/// `copy_fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CopyConfig {
    /// `fields`: `{from, to}` pairs, in order. Required.
    fields: Vec<FromTo>,
    /// `fail_on_error`: on an error, undo all copies. Default true.
    #[serde(default = "yes")]
    fail_on_error: bool,
    /// `ignore_missing`: no error when `from` is missing. Default false.
    #[serde(default)]
    ignore_missing: bool,
}

struct Copy(CopyConfig);

fn build_copy(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    Ok(Box::new(Copy(node.deserialize()?)))
}

impl Processor for Copy {
    fn process(&self, event: &mut Event) -> Verdict {
        let _ = each_item(
            event,
            "copy_fields",
            self.0.fail_on_error,
            &self.0.fields,
            |event, ft| {
                let Some(v) = event.get(&ft.from).map(|f| f.to_value()) else {
                    return if self.0.ignore_missing {
                        Ok(())
                    } else {
                        Err(format!("could not fetch value for key: {}", ft.from))
                    };
                };
                if event.get(&ft.to).is_some() {
                    return Err(format!(
                        "target field {} already exists, drop or rename this field first",
                        ft.to
                    ));
                }
                event.insert(&ft.to, v);
                Ok(())
            },
        );
        Verdict::Keep
    }
}

/// `move_fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveConfig {
    /// `from`: the object whose children move; `""` is the event's root. Default `""`.
    #[serde(default)]
    from: String,
    /// `fields`: the children to move. Default: all.
    #[serde(default)]
    fields: Option<OneOrMany>,
    /// `exclude`: children that stay. Default none.
    #[serde(default)]
    exclude: Option<OneOrMany>,
    /// `to`: the prefix of the new keys (`rpc.`, `my_`). Required.
    to: String,
    /// `ignore_missing`: no error when `from` or a listed field is missing. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `fail_on_error`: on an error, undo the moves. Default true.
    #[serde(default = "yes")]
    fail_on_error: bool,
}

struct Move {
    cfg: MoveConfig,
    fields: Vec<String>,
    exclude: Vec<String>,
}

fn build_move(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let mut cfg: MoveConfig = node.deserialize()?;
    let fields = cfg
        .fields
        .take()
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    let exclude = cfg
        .exclude
        .take()
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    Ok(Box::new(Move {
        cfg,
        fields,
        exclude,
    }))
}

/// The `@timestamp`/`@metadata` keys are not event fields to move.
fn movable(k: &str) -> bool {
    !k.starts_with('@')
}

impl Processor for Move {
    fn process(&self, event: &mut Event) -> Verdict {
        let names: Vec<String> = if self.fields.is_empty() {
            let parent = if self.cfg.from.is_empty() {
                Some(event.to_value(false))
            } else {
                event.get(&self.cfg.from).map(|f| f.to_value())
            };
            match parent {
                Some(Value::Object(m)) => m.keys().filter(|k| movable(k)).cloned().collect(),
                Some(_) => {
                    set_error(
                        event,
                        format!("move_fields: `{}` is not an object", self.cfg.from),
                    );
                    return Verdict::Keep;
                }
                None if self.cfg.ignore_missing => return Verdict::Keep,
                None => {
                    set_error(event, format!("move_fields: no field `{}`", self.cfg.from));
                    return Verdict::Keep;
                }
            }
        } else {
            self.fields.clone()
        };
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| !self.exclude.contains(n))
            .collect();
        // Values first, then removals, then inserts: a target inside a source still works.
        let mut moved = Vec::new();
        let done = each_item(
            event,
            "move_fields",
            self.cfg.fail_on_error,
            &names,
            |event, name| {
                let from = if self.cfg.from.is_empty() {
                    name.clone()
                } else {
                    format!("{}.{name}", self.cfg.from)
                };
                match event.remove(&from) {
                    Some(v) => {
                        if from == "log" {
                            event.offset = None;
                        }
                        moved.push((format!("{}{name}", self.cfg.to), v));
                        Ok(())
                    }
                    None if from == "log.offset"
                        || (from == "message" && event.message.is_none()) =>
                    {
                        Ok(())
                    }
                    None if self.cfg.ignore_missing => Ok(()),
                    None => Err(format!("no field `{from}`")),
                }
            },
        );
        if done {
            for (to, v) in moved {
                event.insert(&to, v);
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

    /// Filebeat's documentation example of `copy_fields`.
    #[test]
    fn copy_fields_doc_example() {
        let p = build("processors:\n- copy_fields:\n    fields:\n    - from: message\n      to: event.original\n    fail_on_error: false\n    ignore_missing: true\n").unwrap();
        let v = json(&run(&p, event("my-interesting-message")).unwrap());
        assert_eq!(v["message"], "my-interesting-message");
        assert_eq!(v["event"]["original"], "my-interesting-message");
        // Existing target; missing source.
        let p = build("processors: [{copy_fields: {fields: [{from: message, to: host.name}]}}]")
            .unwrap();
        let v = json(&run(&p, event("m")).unwrap());
        assert_eq!(v["host"]["name"], "web-1");
        assert_eq!(
            v["error"]["message"],
            "copy_fields: target field host.name already exists, drop or rename this field first"
        );
        let p = build(
            "processors: [{copy_fields: {fields: [{from: message, to: a}, {from: nope, to: b}]}}]",
        )
        .unwrap();
        let v = json(&run(&p, event("m")).unwrap());
        assert!(v.get("a").is_none(), "undone: {v}");
        assert_eq!(
            v["error"]["message"],
            "copy_fields: could not fetch value for key: nope"
        );
    }

    /// Filebeat's documentation examples of `move_fields`.
    #[test]
    fn move_fields_doc_examples() {
        let p = build("processors:\n  - move_fields:\n      from: \"app\"\n      fields: [\"method\", \"elapsed_time\"]\n      to: \"rpc.\"\n").unwrap();
        let mut ev = event("m");
        ev.insert(
            "app",
            json!({"method": "a", "elapsed_time": 100, "user_id": 100, "message": "i'm a message"}),
        );
        let v = json(&run(&p, ev).unwrap());
        assert_eq!(
            v["app"],
            json!({"user_id": 100, "message": "i'm a message"})
        );
        assert_eq!(v["rpc"], json!({"method": "a", "elapsed_time": 100}));

        // All root fields but some, under a prefix.
        let p = build("processors:\n  - move_fields:\n      to: \"my_prefix_\"\n      exclude: [\"message\", \"log\", \"host\", \"input\", \"tags\", \"fields\"]\n").unwrap();
        let mut ev = event("m");
        ev.insert("app", json!({"method": "a"}));
        ev.insert("rpc", json!(1));
        let v = json(&run(&p, ev).unwrap());
        assert_eq!(v["my_prefix_app"], json!({"method": "a"}));
        assert_eq!(v["my_prefix_rpc"], 1);
        assert_eq!(v["message"], "m");
        assert!(v.get("app").is_none() && v.get("rpc").is_none());
        assert!(v["@timestamp"].is_string());

        let p = build("processors: [{move_fields: {from: nope, to: x_}}]").unwrap();
        assert_eq!(
            json(&run(&p, event("m")).unwrap())["error"]["message"],
            "move_fields: no field `nope`"
        );
        let p = build("processors: [{move_fields: {from: nope, to: x_, ignore_missing: true}}]")
            .unwrap();
        assert!(json(&run(&p, event("m")).unwrap()).get("error").is_none());
    }
}
