//! Real kubectl protobuf bodies decode to the JSON kubectl sends for the same
//! command, and pass korral's validation.

use std::fs;

use apiserver::protobuf::decode_request;
use serde_json::Value;

use crate::{assert_valid, fixtures};

/// Drops `null` members: Go writes unset `Time`s as null, the decoder leaves them out.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[test]
fn kubectl_protobuf_bodies_decode_to_kubectls_json() {
    let dir = fixtures().join("kubectl");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".pb").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 14, "fixtures: {names:?}");
    for name in names {
        let body = fs::read(dir.join(format!("{name}.pb"))).expect("body");
        let decoded = decode_request(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let json = fs::read(dir.join(format!("{name}.kubectl-1.31.json"))).expect("json twin");
        let mut expected: Value = serde_json::from_slice(&json).expect("kubectl's JSON");
        strip_nulls(&mut expected);
        assert_eq!(
            decoded, expected,
            "{name}: decoded\n{decoded:#}\nexpected\n{expected:#}"
        );
        if schemas::lookup(
            decoded["apiVersion"].as_str().unwrap_or(""),
            decoded["kind"].as_str().unwrap_or(""),
        )
        .is_ok()
        {
            assert_valid(&decoded);
        }
    }
}

#[test]
fn kubectl_protobuf_zero_replicas_and_binary_data_survive() {
    let body = fs::read(fixtures().join("kubectl/deployment0.pb")).expect("body");
    let d = decode_request(&body).expect("decodes");
    assert_eq!(d["spec"]["replicas"], 0, "a *int32 zero is set, not unset");
    let body = fs::read(fixtures().join("kubectl/configmapfiles.pb")).expect("body");
    let cm = decode_request(&body).expect("decodes");
    let blob = cm["binaryData"]["blob"].as_str().expect("binaryData.blob");
    assert_eq!(blob.len(), 24, "16 random bytes in padded base64: {blob}");
    assert_eq!(cm["data"]["text.txt"], "hello\n");
}
