//! A YAML/JSON document as a tree whose every node and mapping key knows the
//! line and column it came from, so errors about a field can name its line.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

use crate::path::{FieldPath, PathSeg};

/// A node with the 1-based line and column it starts at (0 when unknown).
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// The value.
    pub node: Node,
}

/// A YAML value.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// `null`, `~` or empty.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer too large for `i64`.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Located>),
    /// A mapping, in source order.
    Map(Vec<(Key, Located)>),
}

/// A mapping key with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// The key as a string (scalar keys are stringified, as Kubernetes' YAML decoder does).
    pub name: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl Located {
    /// Converts to JSON, dropping mapping entries whose value is null
    /// (Kubernetes treats an explicit null like an absent field).
    pub fn to_json(&self) -> Value {
        match &self.node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Number((*i).into()),
            Node::UInt(u) => Value::Number((*u).into()),
            Node::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Node::Str(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(items.iter().map(Located::to_json).collect()),
            Node::Map(entries) => {
                let mut m = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    if v.node != Node::Null {
                        m.insert(k.name.clone(), v.to_json());
                    }
                }
                Value::Object(m)
            }
        }
    }

    /// The child at a mapping key.
    pub fn get(&self, key: &str) -> Option<&Located> {
        match &self.node {
            Node::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The line and column of the field at `path`: the key's position for a
    /// mapping entry, the item's for a sequence index. When the path does not
    /// exist (a required field is missing), the position of the deepest
    /// ancestor that does.
    pub fn position_of(&self, path: &FieldPath) -> (u32, u32) {
        let mut node = self;
        let mut pos = (self.line, self.column);
        for seg in path.segments() {
            match (seg, &node.node) {
                (PathSeg::Key(k), Node::Map(entries)) => {
                    match entries.iter().find(|(key, _)| &key.name == k) {
                        Some((key, v)) => {
                            pos = (key.line, key.column);
                            node = v;
                        }
                        None => break,
                    }
                }
                (PathSeg::Index(i), Node::Seq(items)) => match items.get(*i) {
                    Some(v) => {
                        pos = (v.line, v.column);
                        node = v;
                    }
                    None => break,
                },
                _ => break,
            }
        }
        pos
    }
}

impl Located {
    /// The node at `path`, if the path exists.
    pub fn node_at(&self, path: &FieldPath) -> Option<&Located> {
        let mut node = self;
        for seg in path.segments() {
            node = match (seg, &node.node) {
                (PathSeg::Key(k), Node::Map(entries)) => entries
                    .iter()
                    .find(|(key, _)| &key.name == k)
                    .map(|(_, v)| v)?,
                (PathSeg::Index(i), Node::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }
}

impl<'de> Deserialize<'de> for Located {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Node>::deserialize(d)?;
        Ok(Located {
            line: to_u32(s.referenced.line()),
            column: to_u32(s.referenced.column()),
            node: s.value,
        })
    }
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::UInt(v), Node::Int))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        i64::try_from(v)
            .map(Node::Int)
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        u64::try_from(v)
            .map(|u| i64::try_from(u).map_or(Node::UInt(u), Node::Int))
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        if v.is_finite() {
            Ok(Node::Float(v))
        } else {
            Err(E::custom(
                "non-finite numbers (.inf, .nan) are not valid in manifests",
            ))
        }
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
        String::from_utf8(v.to_vec())
            .map(Node::Str)
            .map_err(|_| E::custom("binary values must be valid UTF-8"))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<Located>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(Key, Located)> =
            Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(key) = map.next_key::<Spanned<KeyScalar>>()? {
            let value = map.next_value::<Located>()?;
            entries.push((
                Key {
                    name: key.value.0,
                    line: to_u32(key.referenced.line()),
                    column: to_u32(key.referenced.column()),
                },
                value,
            ));
        }
        Ok(Node::Map(entries))
    }
}

/// A scalar mapping key, stringified.
struct KeyScalar(String);

impl<'de> Deserialize<'de> for KeyScalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyScalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyScalar, E> {
                Ok(KeyScalar(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<KeyScalar, E> {
                Ok(KeyScalar(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyScalar, E> {
                Ok(KeyScalar(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyScalar, E> {
                Ok(KeyScalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyScalar, E> {
                Ok(KeyScalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyScalar, E> {
                Ok(KeyScalar(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyScalar, E> {
                Err(E::custom("a mapping key must not be null"))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}
