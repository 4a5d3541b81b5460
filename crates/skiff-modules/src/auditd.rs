//! The auditd fileset's named steps: what Filebeat's auditd pipeline does in Painless scripts.
//!
//! - [`clean_values`]: the values of `auditd.log` as the cleanup script leaves them (`?`,
//!   `(null)` and empty values dropped, hex-encoded values of the known keys decoded, one
//!   enclosing quote trimmed at each end);
//! - [`EcsTable`] / [`apply_ecs`]: go-libaudit's record-type and system-call table
//!   (`modules/auditd/ecs-mappings.txt`, data) into `event.action`, `event.category`,
//!   `event.type` and the user fields it copies;
//! - [`execve_args`]: an EXECVE record's `a0`, `a1`, ... into `process.args`.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::doc;

/// The object at `field` (`auditd.log`), to change in place.
fn object_mut<'a>(
    d: &'a mut Map<String, Value>,
    field: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    match doc::get_mut(d, field) {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(format!("field [{field}] is not an object")),
        None => Err(format!(
            "field [{field}] not present as part of path [{field}]"
        )),
    }
}

/// Auditd writes a value in hex when it holds a space, a quote, a control character or a
/// byte above 0x7e. Filebeat decodes such a value when its key is one auditd encodes
/// (`hex_keys`) and it is an even number of hex digits whose bytes need the encoding; the
/// bytes become characters one for one (Java's `(char)` of each byte, so non-ASCII bytes are
/// Latin-1 characters, as in Filebeat's documents), control characters shown as `^X` (`^@`
/// for NUL, `^?` for DEL). `None` when the value is not to be decoded.
pub fn decode_hex(v: &str) -> Option<String> {
    hex_text(v).and_then(|(text, needed)| needed.then_some(text))
}

/// `v` decoded as [`decode_hex`] does, and whether a byte needed auditd's encoding; `None`
/// when `v` is not an even number of hex digits.
fn hex_text(v: &str) -> Option<(String, bool)> {
    if v.is_empty() || !v.len().is_multiple_of(2) || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = String::with_capacity(v.len() / 2 + 8);
    let mut needed = false;
    for pair in v.as_bytes().chunks_exact(2) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        let cp = (hi * 16 + lo) as u8;
        if cp < 33 || cp == b'"' || cp == 127 {
            needed = true;
        }
        if cp < 32 || cp == 127 {
            out.push('^');
            out.push(char::from(cp ^ 64));
        } else {
            out.push(char::from(cp));
        }
    }
    Some((out, needed))
}

/// One `'` or `"` off each end (Filebeat's trimQuotes: the two ends independently).
fn trim_quotes(v: &str) -> &str {
    let v = v.strip_prefix(['\'', '"']).unwrap_or(v);
    v.strip_suffix(['\'', '"']).unwrap_or(v)
}

/// Values auditd writes for "none", which Filebeat drops.
fn is_empty_value(v: &Value) -> bool {
    matches!(v.as_str(), Some("?" | "(null)" | ""))
}

/// The cleanup of Filebeat's auditd script, on the text values of the object at `field`.
/// Values that are not text (a key given twice is a list) are left as they are; Filebeat's
/// script fails the event on such a value under a hex key. The arguments of an EXECVE
/// record (`aN`) are left to [`execve_args`], which needs to see their quotes.
pub fn clean_values(
    d: &mut Map<String, Value>,
    field: &str,
    hex_keys: &[String],
) -> Result<(), String> {
    let log = object_mut(d, field)?;
    let execve = log.get("record_type").and_then(Value::as_str) == Some("EXECVE");
    let skip = |k: &str| execve && arg_index(k).is_some();
    log.retain(|k, v| skip(k) || !is_empty_value(v));
    for (k, v) in log.iter_mut() {
        if skip(k) {
            continue;
        }
        let Value::String(s) = v else { continue };
        let decoded = if hex_keys.iter().any(|h| h == k) {
            decode_hex(s)
        } else {
            None
        };
        let text = decoded.as_deref().unwrap_or(s);
        let trimmed = trim_quotes(text);
        if decoded.is_some() || trimmed.len() != s.len() {
            *s = trimmed.to_string();
        }
    }
    Ok(())
}

/// How one row of the table categorises an event.
#[derive(Debug, Default)]
struct Mapping {
    action: Option<String>,
    category: Vec<String>,
    kind: Vec<String>,
    /// Fields that must be present for the row to apply.
    when: Vec<String>,
    /// `(target, sources)`: the first source present goes to `target.id` or `target.name`.
    copy: Vec<(String, Vec<String>)>,
}

/// go-libaudit's table: rows per record type (tried in order) and per system call.
#[derive(Debug, Default)]
pub struct EcsTable {
    types: HashMap<String, Vec<Mapping>>,
    syscalls: HashMap<String, Vec<Mapping>>,
}

const TABLE: &str = include_str!("../modules/auditd/ecs-mappings.txt");

impl EcsTable {
    /// The table shipped with the fileset, parsed once.
    pub fn shipped() -> Result<&'static EcsTable, String> {
        static PARSED: OnceLock<Result<EcsTable, String>> = OnceLock::new();
        PARSED
            .get_or_init(|| EcsTable::parse(TABLE))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Parses the table's text (format in the file's header).
    fn parse(text: &str) -> Result<Self, String> {
        let mut table = EcsTable::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            let &[kind, names, action, category, types, when, copy] = cols.as_slice() else {
                return Err(format!("ecs-mappings.txt line {}: 7 columns wanted", n + 1));
            };
            let list = |c: &str| -> Vec<String> {
                if c == "-" {
                    Vec::new()
                } else {
                    c.split(',').map(|s| s.trim().to_string()).collect()
                }
            };
            let mut copies = Vec::new();
            if copy != "-" {
                for item in copy.split_whitespace() {
                    let (to, from) = item
                        .split_once('<')
                        .ok_or_else(|| format!("ecs-mappings.txt line {}: copy `{item}`", n + 1))?;
                    copies.push((to.to_string(), list(from)));
                }
            }
            let into = match kind {
                "type" => &mut table.types,
                "syscall" => &mut table.syscalls,
                other => return Err(format!("ecs-mappings.txt line {}: kind `{other}`", n + 1)),
            };
            for name in list(names) {
                into.entry(name).or_default().push(Mapping {
                    action: (action != "-").then(|| action.to_string()),
                    category: list(category),
                    kind: list(types),
                    when: list(when),
                    copy: copies.clone(),
                });
            }
        }
        Ok(table)
    }
}

/// Categorises an audit record as Filebeat's generated script does: the record type's rows,
/// else (a record with a `syscall`) the call's rows or the `*` row; the first row whose
/// `when` fields are present sets `event.action`, `event.category`, `event.type` (lists) and
/// copies the user fields. A record without a row is left alone: its `record_type` is then
/// renamed to `event.action` by the pipeline.
pub fn apply_ecs(d: &mut Map<String, Value>, field: &str, table: &EcsTable) -> Result<(), String> {
    let log = match doc::get(d, field) {
        Some(Value::Object(m)) => m,
        _ => return Ok(()),
    };
    let Some(Value::String(record_type)) = log.get("record_type") else {
        return Ok(());
    };
    let rows = match table.types.get(record_type) {
        Some(rows) => rows,
        None => match log.get("syscall") {
            None | Some(Value::Null) => return Ok(()),
            Some(call) => {
                let call = match call {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                match table
                    .syscalls
                    .get(&call)
                    .or_else(|| table.syscalls.get("*"))
                {
                    Some(rows) => rows,
                    None => return Ok(()),
                }
            }
        },
    };
    let present = |f: &str| log.get(f).is_some_and(|v| !v.is_null());
    let Some(row) = rows.iter().find(|r| r.when.iter().all(|f| present(f))) else {
        return Ok(());
    };
    let mut sets: Vec<(String, Value)> = Vec::new();
    let strings = |l: &[String]| Value::Array(l.iter().cloned().map(Value::String).collect());
    if let Some(a) = &row.action {
        sets.push(("event.action".into(), strings(std::slice::from_ref(a))));
    }
    if !row.category.is_empty() {
        sets.push(("event.category".into(), strings(&row.category)));
    }
    if !row.kind.is_empty() {
        sets.push(("event.type".into(), strings(&row.kind)));
    }
    for (to, from) in &row.copy {
        // The first source present; a value that is not text (a repeated key) copies nothing.
        let value = from
            .iter()
            .find_map(|f| log.get(f).filter(|v| !v.is_null()));
        if let Some(Value::String(v)) = value {
            let numeric = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
            let suffix = if numeric { "id" } else { "name" };
            sets.push((format!("{to}.{suffix}"), Value::String(v.clone())));
        }
    }
    for (k, v) in sets {
        doc::insert(d, &k, v);
    }
    Ok(())
}

/// The argument index of an EXECVE key (`a12`, `a12[3]`, `a12_len`) and what follows it.
/// Indices beyond Java's `int` are none: Filebeat's script fails on them (its handler notes
/// the error and the pipeline goes on); skiff leaves such a key where it is.
fn arg_index(k: &str) -> Option<(u32, &str)> {
    let rest = k.strip_prefix('a')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let index = rest[..digits]
        .parse::<u32>()
        .ok()
        .filter(|i| *i <= i32::MAX as u32)?;
    Some((index, &rest[digits..]))
}

/// One EXECVE argument as auditd wrote it into its text: a quoted value is the text itself,
/// an unquoted one is hex (the kernel quotes every argument it does not encode, and the
/// pieces `aN[i]` of a long encoded argument are hex even where their own bytes would not
/// need it). This is go-libaudit's rule; a decode-if-it-looks-like-hex would turn a quoted
/// `"3005"` into `0^E`.
fn execve_arg(raw: String) -> String {
    if raw.starts_with(['"', '\'']) {
        return trim_quotes(&raw).to_string();
    }
    match hex_text(&raw) {
        Some((text, _)) => text,
        None => trim_quotes(&raw).to_string(),
    }
}

/// An EXECVE record's arguments: every `aN` key of the object at `field` (and `aN[i]`, the
/// pieces of a long one; `aN_len` is dropped) leaves it, and `process.args` lists the values
/// in argument order (see [`execve_arg`]; `?`, `(null)` and empty values are dropped, as
/// the cleanup does for other keys). With `a0` present, `process.executable` is the first; a
/// record continuing a long argument list (first index above 0) gets
/// `[... N truncated arguments ...]` first, as Filebeat writes it.
pub fn execve_args(d: &mut Map<String, Value>, field: &str) -> Result<(), String> {
    let log = object_mut(d, field)?;
    let mut keys: Vec<(u32, Option<u64>, String, bool)> = Vec::new();
    for k in log.keys() {
        let Some((index, tail)) = arg_index(k) else {
            continue;
        };
        // `a1[0]`, `a1[1]`: the pieces of one argument, in order.
        let piece = tail
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse().ok());
        keys.push((index, piece, k.clone(), tail == "_len"));
    }
    keys.sort();
    let mut args = Vec::new();
    let mut first = None;
    for (index, _, k, is_len) in keys {
        let Some(v) = log.remove(&k) else { continue };
        if is_len || is_empty_value(&v) {
            continue;
        }
        first.get_or_insert(index);
        args.push(match v {
            Value::String(s) => Value::String(execve_arg(s)),
            other => other,
        });
    }
    let Some(first) = first else { return Ok(()) };
    if first == 0 {
        if let Some(exe) = args.first() {
            doc::insert(d, "process.executable", exe.clone());
        }
    } else {
        args.insert(
            0,
            Value::String(format!("[... {first} truncated arguments ...]")),
        );
    }
    doc::insert(d, "process.args", Value::Array(args));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object"),
        }
    }

    #[test]
    fn hex_decodes_only_what_auditd_encodes() {
        // `sshd: burn [priv]`, from Filebeat's test log.
        assert_eq!(
            decode_hex("737368643A206275726E205B707269765D").as_deref(),
            Some("sshd: burn [priv]")
        );
        // Control characters as ^X; DEL as ^?.
        assert_eq!(decode_hex("65687F0D00").as_deref(), Some("eh^?^M^@"));
        // Hex-looking text whose bytes need no encoding stays (a module name, a hash).
        assert_eq!(decode_hex("deadbeef"), None);
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("top"), None);
        assert_eq!(decode_hex(""), None);
    }

    #[test]
    fn clean_values_drops_decodes_and_trims() {
        let mut d = obj(json!({"a": {"log": {
            "hostname": "?", "key": "(null)", "mac": "", "exe": "\"/usr/sbin/sshd\"",
            "cmd": "6C73202D6C", "a0": "2F62696E", "quoted": "'\"?\"'", "n": 1
        }}}));
        clean_values(&mut d, "a.log", &["exe".into(), "cmd".into()]).expect("object");
        assert_eq!(
            Value::Object(d),
            json!({"a": {"log": {"exe": "/usr/sbin/sshd", "cmd": "ls -l", "a0": "2F62696E", "quoted": "\"?\"", "n": 1}}})
        );
        // An EXECVE record's arguments keep their quotes for execve_args.
        let mut d = obj(
            json!({"l": {"record_type": "EXECVE", "a0": "\"ls\"", "a1": "?", "argc": "\"2\""}}),
        );
        clean_values(&mut d, "l", &[]).expect("object");
        assert_eq!(
            Value::Object(d),
            json!({"l": {"record_type": "EXECVE", "a0": "\"ls\"", "a1": "?", "argc": "2"}})
        );
    }

    #[test]
    fn table_parses_and_maps_types_calls_and_copies() {
        let t = EcsTable::shipped().expect("the shipped table parses");
        let mut d =
            obj(json!({"l": {"record_type": "USER_LOGIN", "auid": "1000", "acct": "root"}}));
        apply_ecs(&mut d, "l", t).expect("runs");
        assert_eq!(d["event"]["action"], json!(["logged-in"]));
        assert_eq!(d["event"]["category"], json!(["authentication"]));
        assert_eq!(
            d["user"],
            json!({"id": "1000", "effective": {"name": "root"}})
        );

        let mut d = obj(json!({"l": {"record_type": "SYSCALL", "syscall": "44"}}));
        apply_ecs(&mut d, "l", t).expect("runs");
        assert_eq!(
            d["event"],
            json!({"category": ["process"], "type": ["info"]})
        );

        let mut d = obj(json!({"l": {"record_type": "AVC", "apparmor": "DENIED"}}));
        apply_ecs(&mut d, "l", t).expect("runs");
        assert_eq!(d["event"]["action"], json!(["violated-apparmor-policy"]));

        let mut d = obj(json!({"l": {"record_type": "MAC_IPSEC_EVENT"}}));
        apply_ecs(&mut d, "l", t).expect("runs");
        assert!(d.get("event").is_none());
    }

    #[test]
    fn execve_args_in_order_with_pieces_and_truncation() {
        let mut d = obj(json!({"l": {
            "argc": "3", "a0": "\"sh\"", "a1": "\"-c\"", "a10": "\"x\"", "a2_len": "8",
            "a2[1]": "7274", "a2[0]": "7061", "a11": "?", "arch": "x86_64"
        }}));
        execve_args(&mut d, "l").expect("runs");
        // a2's pieces are unquoted, so hex, even without a byte that needs encoding.
        assert_eq!(d["process"]["args"], json!(["sh", "-c", "pa", "rt", "x"]));
        assert_eq!(d["process"]["executable"], "sh");
        assert_eq!(d["l"], json!({"argc": "3", "arch": "x86_64"}));

        // Quoted text that looks like hex is text; unquoted hex is decoded.
        let mut d = obj(json!({"l": {"a0": "\"3005\"", "a1": "2F746D702F6D792066696C65"}}));
        execve_args(&mut d, "l").expect("runs");
        assert_eq!(d["process"]["args"], json!(["3005", "/tmp/my file"]));

        let mut d = obj(json!({"l": {"a3": "y", "a2": "x"}}));
        execve_args(&mut d, "l").expect("runs");
        assert_eq!(
            d["process"]["args"],
            json!(["[... 2 truncated arguments ...]", "x", "y"])
        );
        assert!(d["process"].get("executable").is_none());
    }
}
