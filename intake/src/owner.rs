//! Which source owns an object: the label and annotations intake stamps on
//! everything it applies, the field manager it applies as, and the digest of
//! the configuration last applied (so an unchanged re-sync writes nothing).

use std::fmt;

use ring::digest::{SHA256, digest};
use serde_json::{Map, Value};

/// The field manager of every write intake makes.
pub const MANAGER: &str = "korral-intake";
/// Label on every applied object: the owning source (for selecting them).
pub const SOURCE_LABEL: &str = "korral.dev/source";
/// Annotation on every applied object: the owning source, `namespace/name`.
pub const SOURCE_ANNOTATION: &str = "korral.dev/source";
/// Annotation on every applied object: the digest of the configuration applied.
pub const DIGEST_ANNOTATION: &str = "korral.dev/applied-digest";

/// A GitSource, as the owner of objects.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// The source's namespace.
    pub namespace: String,
    /// The source's name.
    pub name: String,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Owner {
    /// The owner `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Owner {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The value of [`SOURCE_LABEL`]: `namespace.name` when it fits a label
    /// value (63 characters), otherwise a prefix and a hash of both.
    pub fn label_value(&self) -> String {
        let full = format!("{}.{}", self.namespace, self.name);
        if full.len() <= 63 {
            return full;
        }
        let hash = hex(digest(&SHA256, full.as_bytes()).as_ref());
        let prefix: String = full.chars().take(46).collect();
        let prefix = prefix.trim_end_matches(['.', '-', '_']);
        format!("{prefix}-{}", &hash[..16])
    }

    /// The label selector of this source's objects.
    pub fn selector(&self) -> String {
        format!("{SOURCE_LABEL}={}", self.label_value())
    }

    /// Whether a live object carries this owner's annotation.
    pub fn owns(&self, object: &Value) -> bool {
        object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(SOURCE_ANNOTATION))
            .and_then(Value::as_str)
            == Some(self.to_string().as_str())
    }
}

/// The owner named by a live object's annotation, if any.
pub fn owner_of(object: &Value) -> Option<Owner> {
    let v = object
        .pointer("/metadata/annotations")?
        .get(SOURCE_ANNOTATION)?
        .as_str()?;
    let (ns, name) = v.split_once('/')?;
    Some(Owner::new(ns, name))
}

/// The digest recorded on a live object, if any.
pub fn applied_digest(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/annotations")?
        .get(DIGEST_ANNOTATION)?
        .as_str()
}

/// Adds the owner label and annotations to an object about to be applied;
/// the digest covers the object as it was before stamping.
pub fn stamp(object: &mut Value, owner: &Owner) {
    let d = content_digest(object);
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(l) = labels.as_object_mut() {
        l.insert(SOURCE_LABEL.into(), Value::String(owner.label_value()));
    }
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(a) = annotations.as_object_mut() {
        a.insert(SOURCE_ANNOTATION.into(), Value::String(owner.to_string()));
        a.insert(DIGEST_ANNOTATION.into(), Value::String(d));
    }
}

/// A digest of a JSON value that does not depend on the order of keys.
pub fn content_digest(v: &Value) -> String {
    let mut buf = Vec::with_capacity(1024);
    canonical(v, &mut buf);
    let d = digest(&SHA256, &buf);
    format!("sha256:{}", &hex(d.as_ref())[..32])
}

fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                canonical(&m[k], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(x, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_values_fit_and_stay_distinct() {
        let short = Owner::new("default", "demo");
        assert_eq!(short.label_value(), "default.demo");
        let a = Owner::new("team", &"x".repeat(80));
        let b = Owner::new("team", &format!("{}y", "x".repeat(79)));
        assert!(a.label_value().len() <= 63);
        assert_ne!(a.label_value(), b.label_value());
    }

    #[test]
    fn stamping_records_owner_and_an_order_independent_digest() {
        let owner = Owner::new("default", "demo");
        let mut a =
            json!({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1", "b": "2"}});
        let mut b =
            json!({"data": {"b": "2", "a": "1"}, "metadata": {"name": "x"}, "kind": "ConfigMap"});
        stamp(&mut a, &owner);
        stamp(&mut b, &owner);
        assert_eq!(applied_digest(&a), applied_digest(&b));
        assert!(owner.owns(&a));
        assert_eq!(owner_of(&a), Some(owner.clone()));
        assert_eq!(a["metadata"]["labels"][SOURCE_LABEL], "default.demo");
        let mut c = json!({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "2"}});
        stamp(&mut c, &owner);
        assert_ne!(applied_digest(&a), applied_digest(&c));
        assert!(!Owner::new("default", "other").owns(&a));
    }
}
