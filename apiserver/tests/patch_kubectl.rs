//! The patch machinery driven the way kubectl drives it: client-side
//! `kubectl apply` (strategic merge patches with `$setElementOrder` and
//! `$patch: delete`), `kubectl patch` of each type, and `kubectl apply
//! --server-side` with and without `--force-conflicts` against other managers.

use apiserver::patch::{
    ApplyError, PatchType, apply, decode_apply_body, patch_object, update_managed_fields,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemas::KindInfo;
use serde_json::{Value, json};

fn deployment_kind() -> &'static KindInfo {
    schemas::lookup("apps/v1", "Deployment").expect("Deployment is served")
}

fn now() -> Time {
    serde_json::from_value(json!("2025-01-01T00:00:00Z")).expect("time")
}

fn live_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "0b1c", "resourceVersion": "7",
                     "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.25",
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                        {"name": "log", "image": "busybox", "args": ["tail", "-f"]}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }
            }
        }
    })
}

fn smp(original: &Value, patch: Value) -> Value {
    patch_object(
        PatchType::Strategic,
        original,
        patch.to_string().as_bytes(),
        deployment_kind(),
    )
    .expect("strategic merge patch applies")
}

#[test]
fn client_side_apply_patch_removes_a_container_env_var_and_label() {
    // The patch `kubectl apply` computes when the file drops container
    // `log`, env var `B` and label `tier`, and bumps the image.
    let patch = json!({
        "metadata": {"labels": {"tier": null}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [
                {"$setElementOrder/env": [{"name": "A"}], "env": [{"$patch": "delete", "name": "B"}],
                 "image": "nginx:1.27", "name": "web"},
                {"$patch": "delete", "name": "log"}
            ]
        }}}
    });
    let out = smp(&live_deployment(), patch);
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx:1.27", "env": [{"name": "A", "value": "1"}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}]}])
    );
    assert_eq!(out["spec"]["replicas"], 2, "untouched fields stay");
}

#[test]
fn client_side_apply_patch_switches_strategy_with_retain_keys() {
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let out = smp(&live_deployment(), patch);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn kubectl_patch_in_each_format() {
    let live = live_deployment();
    let kind = deployment_kind();
    let json_patch = br#"[{"op":"replace","path":"/spec/replicas","value":5},
                          {"op":"add","path":"/spec/template/spec/containers/0/env/-","value":{"name":"C","value":"3"}}]"#;
    let out = patch_object(PatchType::Json, &live, json_patch, kind).expect("json patch");
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["env"][2]["name"],
        "C"
    );

    // a merge patch replaces lists whole
    let merge = br#"{"spec":{"template":{"spec":{"containers":[{"name":"only","image":"x"}]}}}}"#;
    let out = patch_object(PatchType::Merge, &live, merge, kind).expect("merge patch");
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // a strategic merge patch merges them by name
    let out = patch_object(PatchType::Strategic, &live, merge, kind).expect("smp");
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );

    let failing = br#"[{"op":"test","path":"/spec/replicas","value":3}]"#;
    let e = patch_object(PatchType::Json, &live, failing, kind).expect_err("test op fails");
    assert_eq!((e.code(), e.reason()), (422, "Invalid"));
    assert!(
        e.to_string().contains("operation 0 (test /spec/replicas)"),
        "{e}"
    );
}

#[test]
fn strategic_merge_patch_is_refused_for_korral_kinds() {
    let gs = schemas::lookup("korral.dev/v1alpha1", "GitSource").expect("GitSource");
    let e = patch_object(PatchType::Strategic, &json!({}), b"{}", gs).expect_err("415");
    assert_eq!((e.code(), e.reason()), (415, "UnsupportedMediaType"));
    let out = patch_object(
        PatchType::Merge,
        &json!({"spec": {"url": "a"}}),
        br#"{"spec":{"prune":true}}"#,
        gs,
    )
    .expect("merge patch works");
    assert_eq!(out["spec"], json!({"url": "a", "prune": true}));
}

const APPLIED: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
";

fn server_side_apply(live: Option<&Value>, yaml: &str, force: bool) -> Result<Value, ApplyError> {
    let cfg = decode_apply_body(yaml.as_bytes()).expect("apply body decodes");
    apply(
        live,
        &cfg,
        "kubectl",
        force,
        deployment_kind(),
        "apps/v1",
        now(),
    )
}

#[test]
fn server_side_apply_lifecycle_like_kubectl() {
    // kubectl apply --server-side creates
    let v1 = server_side_apply(None, APPLIED, false).expect("create");
    let fields = &v1["metadata"]["managedFields"][0]["fieldsV1"];
    assert!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["f:ports"]
            ["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]
            .is_object(),
        "{fields}"
    );

    // kubectl scale (an Update by another manager)
    let mut scaled = v1.clone();
    scaled["spec"]["replicas"] = json!(4);
    let v2 = update_managed_fields(
        Some(&v1),
        &scaled,
        "kubectl",
        Some("scale"),
        deployment_kind(),
        "apps/v1",
        now(),
    );

    // re-applying the file now conflicts on replicas
    let err = server_side_apply(Some(&v2), APPLIED, false).expect_err("conflict");
    assert_eq!(err.code(), 409);
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );

    // --force-conflicts takes replicas back
    let v3 = server_side_apply(Some(&v2), APPLIED, true).expect("forced");
    assert_eq!(v3["spec"]["replicas"], 2);
    let entries = v3["metadata"]["managedFields"].as_array().expect("entries");
    assert_eq!(
        entries.len(),
        1,
        "the scale entry lost its only field: {entries:?}"
    );

    // the file drops replicas: the applier no longer owns it, so it goes
    let without = APPLIED.replace("  replicas: 2\n", "");
    let v4 = server_side_apply(Some(&v3), &without, false).expect("drop");
    assert!(v4["spec"].get("replicas").is_none());
    assert_eq!(
        v4["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
}
