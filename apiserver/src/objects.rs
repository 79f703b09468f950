//! Generic access to objects as JSON values: metadata fields, store keys, and
//! the encoding objects are stored in (JSON without `resourceVersion`, which
//! is the store's `mod_revision` and filled in on read).

use serde_json::{Map, Value};

use schemas::KindInfo;

use crate::errors::{ApiError, ApiResult};
use crate::store::KeyValue;

/// The store key of an object: `<prefix>/<namespace>/<name>`, or
/// `<prefix>/<name>` when cluster-scoped, where the prefix is the kind's
/// plural (built-in kinds) or `<group>/<plural>` (custom kinds), the same
/// for every version of the kind.
pub fn key(info: &KindInfo, namespace: Option<&str>, name: &str) -> String {
    match namespace.filter(|_| info.namespaced) {
        Some(ns) => format!("{}/{ns}/{name}", info.storage_prefix),
        None => format!("{}/{name}", info.storage_prefix),
    }
}

/// The store prefix of a kind, or of a kind in one namespace.
pub fn prefix(info: &KindInfo, namespace: Option<&str>) -> String {
    match namespace.filter(|_| info.namespaced) {
        Some(ns) => format!("{}/{ns}/", info.storage_prefix),
        None => format!("{}/", info.storage_prefix),
    }
}

/// Whether stored objects of this kind are served exactly as stored (so a
/// list may splice their bytes): a built-in kind read at its storage version.
pub fn served_as_stored(info: &KindInfo) -> bool {
    info.is_builtin() && info.storage_version == info.api_version
}

/// Decodes a stored object as `info`'s version shows it: converted from the
/// storage version, and for custom kinds with the schema's defaults (which
/// kube-apiserver applies on every read).
pub fn decode_for(info: &KindInfo, kv: &KeyValue) -> ApiResult<Value> {
    let v = decode(kv)?;
    as_served(info, v)
}

/// A stored object (already decoded) as `info`'s version shows it.
pub fn as_served(info: &KindInfo, v: Value) -> ApiResult<Value> {
    let mut v = if served_as_stored(info) {
        v
    } else {
        info.convert_to(v, &info.api_version)
            .map_err(ApiError::internal)?
    };
    if !info.is_builtin() {
        info.compiled().prune(&mut v);
        v = info
            .apply_defaults(v)
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    Ok(v)
}

/// The object just written as `kv` as a read would show it: for a kind
/// served as stored, `obj` itself with the written resourceVersion and the
/// stored key order (apiVersion, kind, metadata first) — no need to parse
/// what was just encoded; otherwise decoded from the store's bytes.
pub fn as_written(info: &KindInfo, obj: Value, kv: &KeyValue) -> ApiResult<Value> {
    if !served_as_stored(info) {
        return decode_for(info, kv);
    }
    let Value::Object(mut m) = obj else {
        return decode_for(info, kv);
    };
    let mut ordered = Map::with_capacity(m.len());
    for k in ["apiVersion", "kind", "metadata"] {
        if let Some(x) = m.shift_remove(k) {
            ordered.insert(k.to_string(), x);
        }
    }
    ordered.extend(m);
    let mut v = Value::Object(ordered);
    meta_mut(&mut v).insert(
        "resourceVersion".into(),
        Value::String(kv.mod_revision.to_string()),
    );
    Ok(v)
}

/// Encodes an object for the store, at the kind's storage version.
pub fn encode_for(info: &KindInfo, obj: &Value) -> ApiResult<Vec<u8>> {
    if info.storage_version == info.api_version {
        return encode(obj);
    }
    let stored = info
        .convert_to(obj.clone(), &info.storage_version)
        .map_err(ApiError::internal)?;
    encode(&stored)
}

/// The object's `metadata`, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(root) = obj else {
        unreachable!("just made an object")
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The object's name ("" when unset).
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// The object's namespace, if set.
pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace").filter(|n| !n.is_empty())
}

/// The object's uid ("" when unset).
pub fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid").unwrap_or("")
}

/// The object's labels as pairs.
pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The object's finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets the finalizers (removing the field when empty).
pub fn set_finalizers(obj: &mut Value, finalizers: &[String]) {
    let meta = meta_mut(obj);
    if finalizers.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), Value::from(finalizers.to_vec()));
    }
}

/// Whether deletion has been requested.
pub fn is_deleting(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
}

/// The object's generation (0 when unset).
pub fn generation(obj: &Value) -> i64 {
    obj.get("metadata")
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Decodes a stored value and sets `metadata.resourceVersion` from its revision.
pub fn decode(kv: &KeyValue) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    meta_mut(&mut v).insert(
        "resourceVersion".into(),
        Value::String(kv.mod_revision.to_string()),
    );
    Ok(v)
}

/// Encodes an object for the store (without `metadata.resourceVersion`).
pub fn encode(obj: &Value) -> ApiResult<Vec<u8>> {
    let Value::Object(m) = obj else {
        return Err(ApiError::internal(
            "cannot encode an object that is not a JSON object",
        ));
    };
    // stored as kube-apiserver writes JSON (`<`, `>`, `&` escaped), so that
    // lists can splice stored bytes into responses unchanged
    let mut bytes = crate::status::encode(&StoredForm(m));
    bytes.pop();
    Ok(bytes)
}

/// An object as it is stored, serialised without copying it: apiVersion,
/// kind and metadata first (`with_resource_version` relies on the first
/// `"metadata":{` being the object's own), no `metadata.resourceVersion`.
struct StoredForm<'a>(&'a Map<String, Value>);

/// A `metadata` map without `resourceVersion`.
struct WithoutResourceVersion<'a>(&'a Map<String, Value>);

const FIRST: [&str; 3] = ["apiVersion", "kind", "metadata"];

impl serde::Serialize for StoredForm<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for k in FIRST {
            match self.0.get(k) {
                Some(Value::Object(meta)) if k == "metadata" => {
                    map.serialize_entry(k, &WithoutResourceVersion(meta))?
                }
                // every stored object has a metadata map
                _ if k == "metadata" => map.serialize_entry(k, &Map::new())?,
                Some(v) => map.serialize_entry(k, v)?,
                None => {}
            }
        }
        for (k, v) in self.0 {
            if !FIRST.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

impl serde::Serialize for WithoutResourceVersion<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0 {
            if k != "resourceVersion" {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// A stored object's JSON with `metadata.resourceVersion` spliced in, without
/// decoding it (stored objects start with apiVersion, kind and metadata).
pub fn with_resource_version(kv: &KeyValue) -> ApiResult<Vec<u8>> {
    const META: &[u8] = b"\"metadata\":{";
    let bytes = &kv.value;
    let Some(at) = bytes.windows(META.len()).position(|w| w == META) else {
        // not in the expected shape (written by an older version): decode
        return serde_json::to_vec(&decode(kv)?).map_err(|e| ApiError::internal(e.to_string()));
    };
    let split = at + META.len();
    let rv = format!("\"resourceVersion\":\"{}\"", kv.mod_revision);
    let mut out = Vec::with_capacity(bytes.len() + rv.len() + 1);
    out.extend_from_slice(&bytes[..split]);
    out.extend_from_slice(rv.as_bytes());
    if bytes.get(split) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(&bytes[split..]);
    Ok(out)
}

/// Parses a `resourceVersion` string.
pub fn parse_rv(rv: &str) -> ApiResult<i64> {
    rv.parse::<i64>().ok().filter(|r| *r >= 0).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid resource version {rv:?}: must be a non-negative integer"
        ))
    })
}

/// A random name suffix as Kubernetes makes them (5 characters without vowels or look-alikes).
pub fn random_suffix(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_and_prefixes() {
        let pod = schemas::lookup("v1", "Pod").expect("pod");
        let node = schemas::lookup("v1", "Node").expect("node");
        assert_eq!(key(pod, Some("default"), "web"), "pods/default/web");
        assert_eq!(key(node, Some("ignored"), "n1"), "nodes/n1");
        assert_eq!(prefix(pod, Some("default")), "pods/default/");
        assert_eq!(prefix(pod, None), "pods/");
    }

    #[test]
    fn stored_bytes_put_type_and_metadata_first_without_the_resource_version() {
        let obj = json!({"spec": {"a": "<&>"}, "kind": "ConfigMap", "data": {"k": "v"},
            "metadata": {"name": "c", "resourceVersion": "7", "labels": {"x": "y"}}, "apiVersion": "v1"});
        let bytes = encode(&obj).expect("encode");
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":{"x":"y"}},"spec":{"a":"\u003c\u0026\u003e"},"data":{"k":"v"}}"#
        );
        assert_eq!(
            encode(&json!({"kind": "X"})).expect("encode"),
            br#"{"kind":"X","metadata":{}}"#
        );
        assert!(encode(&json!([1])).is_err());
    }

    #[test]
    fn encode_strips_and_decode_restores_the_resource_version() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "7"}});
        let bytes = encode(&obj).expect("encode");
        assert!(!String::from_utf8_lossy(&bytes).contains("resourceVersion"));
        let kv = KeyValue {
            key: "x".into(),
            value: bytes,
            create_revision: 3,
            mod_revision: 9,
            version: 2,
        };
        assert_eq!(
            decode(&kv).expect("decode")["metadata"]["resourceVersion"],
            "9"
        );
    }

    #[test]
    fn resource_versions_splice_into_stored_bytes() {
        for obj in [
            json!({"spec": {"template": {"metadata": {"name": "inner"}}}, "metadata": {"name": "a"}, "kind": "Pod", "apiVersion": "v1"}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {}}),
        ] {
            let kv = KeyValue {
                key: "k".into(),
                value: encode(&obj).expect("encode"),
                create_revision: 1,
                mod_revision: 42,
                version: 1,
            };
            let spliced: Value =
                serde_json::from_slice(&with_resource_version(&kv).expect("splice"))
                    .expect("valid JSON");
            assert_eq!(spliced["metadata"]["resourceVersion"], "42");
            assert_eq!(spliced, decode(&kv).expect("decode"));
        }
    }

    #[test]
    fn random_suffixes_use_kubernetes_alphabet() {
        let s = random_suffix(5);
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
