//! Field paths as Kubernetes prints them (`spec.containers[0].image`,
//! `metadata.labels[app.kubernetes.io/name]`).

use std::fmt;

use serde_json::Value;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSeg {
    /// A field or map key.
    Key(String),
    /// A list index.
    Index(usize),
    /// A key Kubernetes prints in brackets whatever it looks like
    /// (`spec.resources[storage]`).
    MapKey(String),
}

/// A path from an object's root to one of its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(Vec<PathSeg>);

impl FieldPath {
    /// The empty path (the object itself).
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// Parses a dotted path of field names (`spec.template.metadata`); no indices.
    pub fn fields(dotted: &str) -> Self {
        FieldPath(
            dotted
                .split('.')
                .filter(|s| !s.is_empty())
                .map(|s| PathSeg::Key(s.to_string()))
                .collect(),
        )
    }

    /// This path extended by a field or key.
    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Key(k.into()));
        p
    }

    /// This path extended by a key printed in brackets (`[storage]`).
    pub fn map_key(&self, k: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::MapKey(k.into()));
        p
    }

    /// This path extended by a list index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Index(i));
        p
    }

    /// This path followed by `other`.
    pub fn join(&self, other: &FieldPath) -> Self {
        let mut p = self.clone();
        p.0.extend(other.0.iter().cloned());
        p
    }

    /// The steps.
    pub fn segments(&self) -> &[PathSeg] {
        &self.0
    }

    /// Whether `prefix` is this path or one of its ancestors.
    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Builds a path from a JSON pointer (`/spec/containers/0`), using `root`
    /// to tell list indices from map keys that look like numbers.
    pub fn from_pointer(pointer: &str, root: &Value) -> Self {
        let mut segs = Vec::new();
        let mut node = Some(root);
        for raw in pointer.split('/').skip(1) {
            let token = raw.replace("~1", "/").replace("~0", "~");
            match node {
                Some(Value::Array(items)) => match token.parse::<usize>() {
                    Ok(i) => {
                        node = items.get(i);
                        segs.push(PathSeg::Index(i));
                    }
                    Err(_) => {
                        node = None;
                        segs.push(PathSeg::Key(token));
                    }
                },
                Some(Value::Object(m)) => {
                    node = m.get(&token);
                    segs.push(PathSeg::Key(token));
                }
                _ => {
                    node = None;
                    segs.push(match token.parse::<usize>() {
                        Ok(i) => PathSeg::Index(i),
                        Err(_) => PathSeg::Key(token),
                    });
                }
            }
        }
        FieldPath(segs)
    }

    /// The value at this path in `root`, if present.
    pub fn lookup<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        let mut node = root;
        for seg in &self.0 {
            node = match (seg, node) {
                (PathSeg::Key(k) | PathSeg::MapKey(k), Value::Object(m)) => m.get(k)?,
                (PathSeg::Index(i), Value::Array(a)) => a.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }
}

fn is_plain_field(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        && !k.as_bytes()[0].is_ascii_digit()
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<root>");
        }
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if is_plain_field(k) => {
                    if n > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                PathSeg::Key(k) | PathSeg::MapKey(k) => write!(f, "[{k}]")?,
                PathSeg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_like_kubernetes() {
        let p = FieldPath::fields("spec.containers").index(0).key("image");
        assert_eq!(p.to_string(), "spec.containers[0].image");
        let l = FieldPath::fields("metadata.labels").key("app.kubernetes.io/name");
        assert_eq!(l.to_string(), "metadata.labels[app.kubernetes.io/name]");
        assert_eq!(FieldPath::root().to_string(), "<root>");
    }

    #[test]
    fn pointers_tell_indices_from_numeric_keys() {
        let v = json!({"a": [{"b": 1}], "m": {"0": 2}});
        assert_eq!(FieldPath::from_pointer("/a/0/b", &v).to_string(), "a[0].b");
        assert_eq!(FieldPath::from_pointer("/m/0", &v).to_string(), "m[0]");
        assert_eq!(
            FieldPath::from_pointer("/m/0", &v).segments()[1],
            PathSeg::Key("0".into())
        );
        assert_eq!(
            FieldPath::from_pointer("/a/0/b", &v).lookup(&v),
            Some(&json!(1))
        );
    }
}
