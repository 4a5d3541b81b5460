//! serde access types for lists, maps, enums and map keys.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::{DeError, NodeDe};
use crate::node::{Node, NodeValue, join_path};

/// Items of a list, each deserialized at `path.N`.
pub(crate) struct SeqAcc<'de, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'de, Node>>,
    path: &'p str,
}

impl<'de, 'p> SeqAcc<'de, 'p> {
    pub(crate) fn new(items: &'de [Node], path: &'p str) -> Self {
        SeqAcc {
            items: items.iter().enumerate(),
            path,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.items.len()
    }
}

impl<'de> de::SeqAccess<'de> for SeqAcc<'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => {
                let path = join_path(self.path, &i.to_string());
                let mark = node.mark.clone();
                seed.deserialize(NodeDe {
                    node,
                    path: path.clone(),
                })
                .map(Some)
                .map_err(|e| e.locate(&path, &mark))
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// Entries of a map; keys and values are located at `path.key`.
pub(crate) struct MapAcc<'de, 'p> {
    entries: std::slice::Iter<'de, (String, Node)>,
    path: &'p str,
    value: Option<(&'de Node, String)>,
}

impl<'de, 'p> MapAcc<'de, 'p> {
    pub(crate) fn new(entries: &'de [(String, Node)], path: &'p str) -> Self {
        MapAcc {
            entries: entries.iter(),
            path,
            value: None,
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAcc<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, node)) = self.entries.next() else {
            return Ok(None);
        };
        let path = join_path(self.path, key);
        let k = seed
            .deserialize(KeyDe(key))
            .map_err(|e| e.locate(&path, &node.mark))?;
        self.value = Some((node, path));
        Ok(Some(k))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (node, path) = self
            .value
            .take()
            .ok_or_else(|| DeError::msg("a map value was read before its key"))?;
        let mark = node.mark.clone();
        seed.deserialize(NodeDe {
            node,
            path: path.clone(),
        })
        .map_err(|e| e.locate(&path, &mark))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A map key (always a string in the tree); numbers and bools are parsed
/// from it for maps with such keys.
pub(crate) struct KeyDe<'de>(pub(crate) &'de str);

macro_rules! key_parse {
    ($($method:ident => $visit:ident($ty:ty)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            match self.0.parse::<$ty>() {
                Ok(v) => visitor.$visit(v),
                Err(_) => Err(DeError::msg(format!(
                    "expected a {} key, found `{}`",
                    stringify!($ty),
                    self.0
                ))),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for KeyDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_str(self.0)
    }

    key_parse! {
        deserialize_i8 => visit_i8(i8),
        deserialize_i16 => visit_i16(i16),
        deserialize_i32 => visit_i32(i32),
        deserialize_i64 => visit_i64(i64),
        deserialize_u8 => visit_u8(u8),
        deserialize_u16 => visit_u16(u16),
        deserialize_u32 => visit_u32(u32),
        deserialize_u64 => visit_u64(u64),
        deserialize_bool => visit_bool(bool),
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_enum(self.0.into_deserializer())
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 f32 f64 char str string bytes byte_buf option unit unit_struct
        seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// An enum written as `value` (unit variant) or `{variant: value}`.
pub(crate) struct EnumAcc<'de, 'p> {
    variant: &'de str,
    value: Option<&'de Node>,
    node: &'de Node,
    path: &'p str,
}

impl<'de, 'p> EnumAcc<'de, 'p> {
    pub(crate) fn unit(variant: &'de str, node: &'de Node, path: &'p str) -> Self {
        EnumAcc {
            variant,
            value: None,
            node,
            path,
        }
    }

    pub(crate) fn with_value(
        variant: &'de str,
        value: &'de Node,
        node: &'de Node,
        path: &'p str,
    ) -> Self {
        EnumAcc {
            variant,
            value: Some(value),
            node,
            path,
        }
    }
}

impl<'de, 'p> de::EnumAccess<'de> for EnumAcc<'de, 'p> {
    type Error = DeError;
    type Variant = VariantAcc<'de, 'p>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), DeError> {
        let v = seed
            .deserialize(KeyDe(self.variant))
            .map_err(|e| e.locate(self.path, &self.node.mark))?;
        let path = match self.value {
            Some(_) => join_path(self.path, self.variant),
            None => self.path.to_string(),
        };
        Ok((
            v,
            VariantAcc {
                variant: self.variant,
                value: self.value,
                node: self.node,
                path,
                _p: std::marker::PhantomData,
            },
        ))
    }
}

/// The payload of an enum variant.
pub(crate) struct VariantAcc<'de, 'p> {
    variant: &'de str,
    value: Option<&'de Node>,
    node: &'de Node,
    path: String,
    _p: std::marker::PhantomData<&'p ()>,
}

impl<'de> VariantAcc<'de, '_> {
    fn payload(self) -> Result<NodeDe<'de>, DeError> {
        match self.value {
            Some(node) => Ok(NodeDe {
                node,
                path: self.path,
            }),
            None => Err(DeError::msg(format!(
                "`{0}` needs settings: write it as `{0}: ...`",
                self.variant
            ))
            .locate(&self.path, &self.node.mark)),
        }
    }
}

impl<'de> de::VariantAccess<'de> for VariantAcc<'de, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.value {
            None => Ok(()),
            Some(Node {
                value: NodeValue::Null,
                ..
            }) => Ok(()),
            Some(node) => Err(DeError::msg(format!(
                "`{}` takes no settings, found {}",
                self.variant,
                node.value.describe()
            ))
            .locate(&self.path, &node.mark)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self.payload()?)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_tuple(self.payload()?, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self.payload()?, "", fields, visitor)
    }
}
