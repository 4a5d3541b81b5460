//! A serde `Deserializer` over `&Node` with located, plain-words errors.
//!
//! Every error carries the full key path from the root and the mark of the
//! innermost node involved. Scalars are coerced leniently like go-ucfg: the
//! string `"5066"` reads as a number, `"true"` (and `yes`/`on`) as a bool, a
//! number as its decimal text where a string is wanted. An empty value reads
//! as `None`, as an empty map or struct, and as an empty list.

mod access;
mod error;

use serde::de::{self, DeserializeOwned, Visitor};

use crate::error::ConfigError;
use crate::node::{Node, NodeValue};

use access::{EnumAcc, KeyDe, MapAcc, SeqAcc};
pub(crate) use error::DeError;

impl Node {
    /// Deserialize this node into `T`. Errors name the full key path from
    /// the root (this node's [`Node::path`] plus the key below it).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.deserialize_at(&self.path)
    }

    /// Like [`Node::deserialize`], but treat this node as sitting at
    /// `path_prefix` (for nodes built or moved by hand).
    ///
    /// Every problem of the node is found, not only serde's first one: after
    /// a failure the offending value is taken out of a copy and the copy is
    /// read again, up to [`MAX_PROBLEMS`] times. The first error is returned;
    /// the others, and unknown keys tolerated as warnings (see
    /// [`crate::diag`]), go to the current collector.
    pub fn deserialize_at<T: DeserializeOwned>(&self, path_prefix: &str) -> Result<T, ConfigError> {
        let mut work: Option<Node> = None;
        let mut first: Option<ConfigError> = None;
        let mut removed: Vec<String> = Vec::new();
        for _ in 0..MAX_PROBLEMS {
            let node = work.as_ref().unwrap_or(self);
            let de = NodeDe {
                node,
                path: path_prefix.to_string(),
            };
            let e = match T::deserialize(de) {
                Ok(v) => {
                    return match first {
                        None => Ok(v),
                        Some(e) => Err(e),
                    };
                }
                Err(e) => e.locate(path_prefix, &self.mark),
            };
            let unknown = e.unknown_key.is_some();
            let err = *e.inner;
            // A problem caused by taking a value out (`missing key` after a bad
            // value was removed) is not the user's.
            if removed
                .iter()
                .any(|p| err.path == *p || err.path.starts_with(&format!("{p}.")))
            {
                break;
            }
            let rel = relative_path(path_prefix, &err.path)
                .filter(|r| !r.is_empty() && node.get(r).is_some())
                .map(str::to_string);
            let path = err.path.clone();
            if unknown && rel.is_some() && !crate::diag::is_strict() {
                crate::diag::warn(ignored(err));
            } else if first.is_none() {
                first = Some(err);
            } else {
                crate::diag::error(err);
            }
            let Some(rel) = rel else { break };
            // Taking a list item out would shift the ones after it, and the
            // next error would name the wrong item: stop at the first one.
            let parent = rel.rsplit_once('.').map_or("", |(p, _)| p);
            if matches!(node.get(parent).map(|p| &p.value), Some(NodeValue::Seq(_))) {
                break;
            }
            work.get_or_insert_with(|| self.clone()).remove(&rel);
            removed.push(path);
        }
        Err(first.unwrap_or_else(|| {
            ConfigError::new(
                path_prefix,
                self.mark.clone(),
                format!("more than {MAX_PROBLEMS} problems; fix these first"),
            )
        }))
    }
}

/// The most problems looked for in one [`Node::deserialize`] call.
pub const MAX_PROBLEMS: usize = 100;

/// An unknown key as a warning: Filebeat ignores it, so do we, loudly.
fn ignored(mut e: ConfigError) -> ConfigError {
    e.message = match e.message.split_once(';') {
        Some((head, _)) => format!("{head} is ignored (Filebeat ignores it too)"),
        None => format!("{} is ignored (Filebeat ignores it too)", e.message),
    };
    e
}

/// `path` relative to `prefix` (`None` when it is not below it).
fn relative_path<'a>(prefix: &str, path: &'a str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix('.')
    }
}

/// Deserializer for one node at one path.
pub(crate) struct NodeDe<'de> {
    pub(crate) node: &'de Node,
    pub(crate) path: String,
}

impl<'de> NodeDe<'de> {
    fn error(&self, message: impl Into<String>) -> DeError {
        DeError::msg(message).locate(&self.path, &self.node.mark)
    }

    fn type_error(&self, expected: &str) -> DeError {
        self.error(format!(
            "expected {expected}, found {}",
            self.node.value.describe()
        ))
    }

    fn loc(&self, e: DeError) -> DeError {
        e.locate(&self.path, &self.node.mark)
    }

    /// The value as an integer, for any integer type.
    fn integer(&self) -> Result<i128, DeError> {
        match &self.node.value {
            NodeValue::Int(i) => Ok(i128::from(*i)),
            NodeValue::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 => {
                Ok(*f as i128)
            }
            NodeValue::Float(_) => Err(self.type_error("a whole number")),
            NodeValue::String(s) => s
                .trim()
                .parse::<i128>()
                .map_err(|_| self.type_error("a number")),
            _ => Err(self.type_error("a number")),
        }
    }

    fn float(&self) -> Result<f64, DeError> {
        match &self.node.value {
            NodeValue::Float(f) => Ok(*f),
            NodeValue::Int(i) => Ok(*i as f64),
            NodeValue::String(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| self.type_error("a number")),
            _ => Err(self.type_error("a number")),
        }
    }

    fn seq<V: Visitor<'de>>(self, visitor: V, len: Option<usize>) -> Result<V::Value, DeError> {
        let items: &'de [Node] = match &self.node.value {
            NodeValue::Seq(items) => items,
            NodeValue::Null => &[],
            NodeValue::Map(_) => return Err(self.type_error("a list")),
            // Filebeat (go-ucfg) reads a single value as a list of one:
            // `hosts: ${ES_HOSTS}`, `ssl.certificate_authorities: /x/ca.crt`.
            _ if len.is_none_or(|n| n == 1) => std::slice::from_ref(self.node),
            _ => {
                return Err(self.error(format!(
                    "expected a list, found {} (write a list as `[a, b]` or as `- a` lines)",
                    self.node.value.describe()
                )));
            }
        };
        if let Some(len) = len
            && items.len() != len
        {
            return Err(self.error(format!(
                "expected a list of {len} items, found {} items",
                items.len()
            )));
        }
        let mut acc = SeqAcc::new(items, &self.path);
        let value = visitor.visit_seq(&mut acc).map_err(|e| self.loc(e))?;
        let left = acc.remaining();
        if left > 0 {
            return Err(self.error(format!("{left} more list items than expected")));
        }
        Ok(value)
    }

    fn map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let entries: &'de [(String, Node)] = match &self.node.value {
            NodeValue::Map(entries) => entries,
            NodeValue::Null => &[],
            _ => return Err(self.type_error("a map of settings")),
        };
        visitor
            .visit_map(MapAcc::new(entries, &self.path))
            .map_err(|e| self.loc(e))
    }
}

macro_rules! de_int {
    ($($method:ident => $visit:ident($ty:ty)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let n = self.integer()?;
            let v = <$ty>::try_from(n).map_err(|_| {
                self.error(format!(
                    "value {n} is out of range for this key ({})",
                    stringify!($ty)
                ))
            })?;
            visitor.$visit(v).map_err(|e| self.loc(e))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            NodeValue::Null => visitor.visit_unit(),
            NodeValue::Bool(b) => visitor.visit_bool(*b),
            NodeValue::Int(i) => visitor.visit_i64(*i),
            NodeValue::Float(f) => visitor.visit_f64(*f),
            NodeValue::String(s) => visitor.visit_borrowed_str(s),
            NodeValue::Seq(_) => return self.seq(visitor, None),
            NodeValue::Map(_) => return self.map(visitor),
        };
        r.map_err(|e| self.loc(e))
    }

    de_int! {
        deserialize_i8 => visit_i8(i8),
        deserialize_i16 => visit_i16(i16),
        deserialize_i32 => visit_i32(i32),
        deserialize_i64 => visit_i64(i64),
        deserialize_i128 => visit_i128(i128),
        deserialize_u8 => visit_u8(u8),
        deserialize_u16 => visit_u16(u16),
        deserialize_u32 => visit_u32(u32),
        deserialize_u64 => visit_u64(u64),
        deserialize_u128 => visit_u128(u128),
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let b = match &self.node.value {
            NodeValue::Bool(b) => *b,
            NodeValue::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => true,
                "false" | "no" | "off" => false,
                _ => return Err(self.type_error("`true` or `false`")),
            },
            _ => return Err(self.type_error("`true` or `false`")),
        };
        visitor.visit_bool(b).map_err(|e| self.loc(e))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let f = self.float()?;
        if f.is_finite() && f.abs() > f64::from(f32::MAX) {
            return Err(self.error(format!("value {f} is out of range for this key (f32)")));
        }
        visitor.visit_f32(f as f32).map_err(|e| self.loc(e))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let f = self.float()?;
        visitor.visit_f64(f).map_err(|e| self.loc(e))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if let NodeValue::String(s) = &self.node.value {
            let mut chars = s.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                return visitor.visit_char(c).map_err(|e| self.loc(e));
            }
        }
        Err(self.type_error("a single character"))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            NodeValue::String(s) => visitor.visit_borrowed_str(s),
            NodeValue::Int(i) => visitor.visit_string(i.to_string()),
            NodeValue::Float(f) => visitor.visit_string(f.to_string()),
            NodeValue::Bool(b) => visitor.visit_string(b.to_string()),
            _ => return Err(self.type_error("a string")),
        };
        r.map_err(|e| self.loc(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            NodeValue::String(s) => visitor
                .visit_borrowed_bytes(s.as_bytes())
                .map_err(|e| self.loc(e)),
            _ => self.seq(visitor, None),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if matches!(self.node.value, NodeValue::Null) {
            return visitor.visit_none().map_err(|e| self.loc(e));
        }
        let (path, mark) = (self.path.clone(), self.node.mark.clone());
        visitor.visit_some(self).map_err(|e| e.locate(&path, &mark))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            NodeValue::Null => visitor.visit_unit().map_err(|e| self.loc(e)),
            _ => Err(self.type_error("an empty value")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (path, mark) = (self.path.clone(), self.node.mark.clone());
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.locate(&path, &mark))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.seq(visitor, None)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.seq(visitor, Some(len))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.seq(visitor, Some(len))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.map(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let acc = match &self.node.value {
            NodeValue::String(s) => EnumAcc::unit(s, self.node, &self.path),
            NodeValue::Map(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                EnumAcc::with_value(k, v, self.node, &self.path)
            }
            _ => {
                return Err(self.error(format!(
                    "expected one of {}, found {}",
                    variants
                        .iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.node.value.describe()
                )));
            }
        };
        visitor.visit_enum(acc).map_err(|e| self.loc(e))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            NodeValue::String(s) => {
                de::Deserializer::deserialize_identifier(KeyDe(s), visitor).map_err(|e| self.loc(e))
            }
            _ => Err(self.type_error("a name")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}
