//! Property tests: no patch, apply configuration or managedFields content,
//! however malformed, panics the patch machinery.

use apiserver::patch::{PatchType, apply, patch_object, update_managed_fields};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn fixture() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"a": "b"}, "finalizers": ["f"],
                     "ownerReferences": [{"uid": "1", "name": "o", "kind": "ReplicaSet", "apiVersion": "apps/v1"}]},
        "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "E", "value": "1"}],
                                 "ports": [{"containerPort": 80}]}],
                 "volumes": [{"name": "v", "emptyDir": {}}], "tolerations": [{"key": "k"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    })
}

/// Keys that steer the patch formats into their interesting branches.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$patch".to_string()),
        Just("$retainKeys".to_string()),
        Just("$setElementOrder/containers".to_string()),
        Just("$setElementOrder/finalizers".to_string()),
        Just("$deleteFromPrimitiveList/finalizers".to_string()),
        Just("metadata".to_string()),
        Just("spec".to_string()),
        Just("containers".to_string()),
        Just("finalizers".to_string()),
        Just("name".to_string()),
        Just("env".to_string()),
        Just("ports".to_string()),
        Just("containerPort".to_string()),
        Just("labels".to_string()),
        "[a-z]{1,3}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("replace"),
            Just("delete"),
            Just("merge"),
            Just("c"),
            Just("x")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn pointer() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("spec"),
            Just("containers"),
            Just("0"),
            Just("1"),
            Just("-"),
            Just("metadata"),
            Just("~0"),
            Just("x")
        ],
        0..5,
    )
    .prop_map(|toks| toks.iter().map(|t| format!("/{t}")).collect())
}

fn json_patch_op() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("add"),
            Just("remove"),
            Just("replace"),
            Just("move"),
            Just("copy"),
            Just("test"),
            Just("bad")
        ],
        pointer(),
        pointer(),
        json_value(),
    )
        .prop_map(
            |(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}),
        )
}

fn time() -> Time {
    serde_json::from_value(json!("2025-01-01T00:00:00Z")).expect("time")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn strategic_and_merge_patches_never_panic(patch in json_value()) {
        let pod = schemas::lookup("v1", "Pod").expect("Pod");
        let body = patch.to_string();
        for t in [PatchType::Strategic, PatchType::Merge] {
            if let Ok(v) = patch_object(t, &fixture(), body.as_bytes(), pod) {
                prop_assert!(v.is_object(), "{t:?} turned the object into {v}");
            }
        }
    }

    #[test]
    fn json_patches_never_panic(ops in prop::collection::vec(json_patch_op(), 0..6)) {
        let pod = schemas::lookup("v1", "Pod").expect("Pod");
        let body = Value::Array(ops).to_string();
        let before = fixture();
        let _ = patch_object(PatchType::Json, &before, body.as_bytes(), pod);
        prop_assert_eq!(before, fixture());
    }

    #[test]
    fn apply_and_managed_fields_never_panic(spec in json_value(), fields in json_value(), force in any::<bool>()) {
        let pod = schemas::lookup("v1", "Pod").expect("Pod");
        let mut live = fixture();
        live["metadata"]["managedFields"] = json!([
            {"manager": "m", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields.clone()},
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:containers": {}}}}
        ]);
        let config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec.clone()});
        if let Ok(out) = apply(Some(&live), &config, "kubectl", force, pod, "v1", time()) {
            prop_assert!(out.is_object());
        }
        let mut new = fixture();
        new["spec"] = spec;
        let out = update_managed_fields(Some(&live), &new, "editor", None, pod, "v1", time());
        prop_assert!(out["metadata"].is_object());
    }
}
