//! Protobuf response bodies read back: every captured kubectl body, decoded,
//! encodes to a response the decoder reads as the same object; every
//! built-in kind of `fixtures/kinds/` encodes; lists and Statuses carry
//! their envelopes.

use std::fs;

use apiserver::protobuf::decode_request;
use apiserver::protobuf::responses;
use apiserver::protobuf::wire::{Fields, Value as Wire};
use serde_json::{Value, json};

use crate::fixtures;

#[test]
fn captured_objects_survive_encoding_as_responses() {
    let dir = fixtures().join("kubectl");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).expect("fixture dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("pb") {
            continue;
        }
        let object = decode_request(&fs::read(&path).expect("body")).expect("decodes");
        let encoded =
            responses::object(&object).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let back = decode_request(&encoded).expect("the response decodes");
        assert_eq!(back, object, "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 32, "{checked} bodies");
}

#[test]
fn every_built_in_kind_of_the_fixtures_encodes() {
    let root = fixtures().join("../../../fixtures/kinds");
    let mut kinds = std::collections::BTreeSet::new();
    for entry in walk(&root) {
        let text = fs::read_to_string(&entry).expect("fixture");
        for doc in serde_saphyr::from_multiple::<Value>(&text).expect("yaml") {
            let (Some(api_version), Some(kind)) =
                (doc["apiVersion"].as_str(), doc["kind"].as_str())
            else {
                continue;
            };
            if !responses::supports(api_version, kind) {
                continue;
            }
            let encoded = responses::object(&doc)
                .unwrap_or_else(|e| panic!("{} {kind}: {e}", entry.display()));
            let back = decode_request(&encoded).expect("decodes");
            assert_eq!(back["metadata"]["name"], doc["metadata"]["name"]);
            assert_eq!(back["kind"], kind);
            kinds.insert(kind.to_string());
        }
    }
    assert!(kinds.len() >= 35, "{kinds:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
    out
}

/// The `raw` of an enveloped body, and its type meta.
fn unwrap(body: &[u8]) -> (String, String, Vec<u8>) {
    let inner = body.strip_prefix(b"k8s\0").expect("magic");
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), Vec::new());
    for item in Fields::new(inner) {
        match item.expect("envelope") {
            (1, Wire::Len(tm)) => {
                for f in Fields::new(tm) {
                    match f.expect("type meta") {
                        (1, Wire::Len(b)) => api_version = String::from_utf8_lossy(b).into(),
                        (2, Wire::Len(b)) => kind = String::from_utf8_lossy(b).into(),
                        _ => {}
                    }
                }
            }
            (2, Wire::Len(b)) => raw = b.to_vec(),
            _ => {}
        }
    }
    (api_version, kind, raw)
}

#[test]
fn lists_and_statuses_have_their_envelopes() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
    let body = responses::list(
        "v1",
        "ConfigMap",
        "ConfigMapList",
        &json!({"resourceVersion": "7", "continue": "abc"}),
        &[cm.clone(), cm],
    )
    .expect("list");
    let (api_version, kind, raw) = unwrap(&body);
    assert_eq!(
        (api_version.as_str(), kind.as_str()),
        ("v1", "ConfigMapList")
    );
    let fields: Vec<u32> = Fields::new(&raw).map(|f| f.expect("field").0).collect();
    assert_eq!(fields, [1, 2, 2], "ListMeta then two items");

    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "configmaps \"x\" not found", "reason": "NotFound",
        "details": {"name": "x", "kind": "configmaps"}, "code": 404});
    let body = responses::status(&status).expect("status");
    let (api_version, kind, raw) = unwrap(&body);
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Status"));
    let mut code = 0;
    for f in Fields::new(&raw) {
        if let (6, Wire::Varint(c)) = f.expect("field") {
            code = c;
        }
    }
    assert_eq!(code, 404);
}
