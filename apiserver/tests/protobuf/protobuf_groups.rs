//! Hand-built protobuf bodies for kinds of the groups beyond core and apps
//! that kubectl's typed commands do not send, chosen for what is particular
//! about them: JSON names unlike gogo's field names (`webhooks`, `apiGroup`,
//! `uid`), byte slices, `ExtraValue` string lists, MicroTime, RawExtension,
//! inlined structs, nested PersistentVolumeClaims, autoscaling/v2 metrics,
//! and DeleteOptions in the groups' versions. Field numbers come from
//! k8s.io/api's generated.proto.

use apiserver::protobuf::{ProtobufError, decode_request};
use serde_json::{Value, json};

use crate::assert_valid;
use crate::builder::{Msg, envelope, object_meta, quantity, time};

fn decode(api_version: &str, kind: &str, raw: Msg) -> Value {
    decode_request(&envelope(api_version, kind, raw)).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

/// LabelSelector {1 matchLabels}.
fn match_labels(key: &str, value: &str) -> Msg {
    Msg::new().entry(1, key, value)
}

#[test]
fn protobuf_stateful_set_with_volume_claim_templates() {
    // PodTemplateSpec {1 metadata, 2 spec {2 containers {1 name, 2 image}}}
    let template = Msg::new()
        .msg(1, object_meta("", "").entry(11, "app", "db"))
        .msg(
            2,
            Msg::new().msg(2, Msg::new().str(1, "db").str(2, "postgres:16")),
        );
    // PersistentVolumeClaim {1 metadata, 2 spec {1 accessModes, 2 resources {2 requests}, 3 volumeName, 5 storageClassName}}
    let claim = Msg::new().msg(1, object_meta("data", "")).msg(
        2,
        Msg::new()
            .str(1, "ReadWriteOnce")
            .msg(2, Msg::new().entry_msg(2, "storage", quantity("1Gi")))
            .str(3, ""),
    );
    // StatefulSetSpec {1 replicas, 2 selector, 3 template, 4 volumeClaimTemplates, 5 serviceName,
    // 6 podManagementPolicy, 9 minReadySeconds}
    let raw = Msg::new().msg(1, object_meta("db", "default")).msg(
        2,
        Msg::new()
            .int(1, 0)
            .msg(2, match_labels("app", "db"))
            .msg(3, template)
            .msg(4, claim)
            .str(5, "db")
            .str(6, "Parallel")
            .int(9, 0),
    );
    let s = decode("apps/v1", "StatefulSet", raw);
    assert_eq!(
        s["spec"],
        json!({
            "replicas": 0,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                         "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                      "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
            "serviceName": "db",
            "podManagementPolicy": "Parallel"
        })
    );
    assert_valid(&s);
}

#[test]
fn protobuf_events_v1_event_with_micro_time() {
    // Event {1 metadata, 2 eventTime (MicroTime), 4 reportingController, 5 reportingInstance,
    // 6 action, 7 reason, 8 regarding {1 kind, 2 namespace, 3 name}, 10 note, 11 type, 15 deprecatedCount}
    let raw = Msg::new()
        .msg(1, object_meta("web.1", "default"))
        .msg(2, time(1_704_207_845, 123_456_789))
        .str(4, "korral.dev/test")
        .str(5, "node-1")
        .str(6, "Pulling")
        .str(7, "Pulling")
        .msg(
            8,
            Msg::new()
                .str(1, "Pod")
                .str(2, "default")
                .str(3, "web")
                .str(4, "")
                .str(5, "")
                .str(6, "")
                .str(7, ""),
        )
        .str(10, "pulling image")
        .str(11, "Normal")
        .int(15, 0);
    let e = decode("events.k8s.io/v1", "Event", raw);
    assert_eq!(
        e,
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "eventTime": "2024-01-02T15:04:05.123456Z",
            "reportingController": "korral.dev/test", "reportingInstance": "node-1",
            "action": "Pulling", "reason": "Pulling",
            "regarding": {"kind": "Pod", "namespace": "default", "name": "web"},
            "note": "pulling image", "type": "Normal"
        })
    );
    assert_valid(&e);
}

#[test]
fn protobuf_certificate_signing_request_bytes_and_extra() {
    // CertificateSigningRequestSpec {1 request (bytes), 2 username, 4 groups, 5 usages,
    // 6 extra map<string, ExtraValue {1 items}>, 7 signerName, 8 expirationSeconds}
    let raw = Msg::new().msg(1, object_meta("csr-1", "")).msg(
        2,
        Msg::new()
            .bytes(1, b"-----BEGIN CERTIFICATE REQUEST-----\n")
            .str(2, "")
            .strs(4, &["system:authenticated"])
            .strs(5, &["digital signature", "client auth"])
            .entry_msg(6, "scopes", Msg::new().strs(1, &["a", "b"]))
            .str(7, "kubernetes.io/kube-apiserver-client")
            .int(8, 3600),
    );
    let c = decode("certificates.k8s.io/v1", "CertificateSigningRequest", raw);
    assert_eq!(
        c["spec"],
        json!({
            "request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
            "groups": ["system:authenticated"],
            "usages": ["digital signature", "client auth"],
            "extra": {"scopes": ["a", "b"]},
            "signerName": "kubernetes.io/kube-apiserver-client",
            "expirationSeconds": 3600
        })
    );
    let typed: k8s_openapi::api::certificates::v1::CertificateSigningRequest =
        serde_json::from_value(c).expect("korral's CSR type");
    assert_eq!(
        typed.spec.request.0,
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
    );
}

#[test]
fn protobuf_webhook_configuration_names_fields_as_json_does() {
    // ValidatingWebhookConfiguration {1 metadata, 2 webhooks (gogo: Webhooks)};
    // ValidatingWebhook {1 name, 2 clientConfig {1 service {1 namespace, 2 name, 3 path, 4 port}, 2 caBundle},
    // 3 rules {1 operations, 2 rule (inline) {1 apiGroups, 2 apiVersions, 3 resources, 4 scope}},
    // 4 failurePolicy, 6 sideEffects, 7 timeoutSeconds, 8 admissionReviewVersions}
    let webhook = Msg::new()
        .str(1, "check.korral.dev")
        .msg(
            2,
            Msg::new()
                .msg(
                    1,
                    Msg::new()
                        .str(1, "system")
                        .str(2, "checker")
                        .str(3, "/check")
                        .int(4, 443),
                )
                .bytes(2, b""),
        )
        .msg(
            3,
            Msg::new().strs(1, &["CREATE", "UPDATE"]).msg(
                2,
                Msg::new()
                    .strs(1, &["apps"])
                    .strs(2, &["v1"])
                    .strs(3, &["deployments"])
                    .str(4, "Namespaced"),
            ),
        )
        .str(4, "Fail")
        .str(6, "None")
        .int(7, 5)
        .strs(8, &["v1"]);
    let raw = Msg::new().msg(1, object_meta("checks", "")).msg(2, webhook);
    let w = decode(
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        raw,
    );
    assert_eq!(
        w["webhooks"],
        json!([{
            "name": "check.korral.dev",
            // an empty caBundle is left out, as Go's omitempty does
            "clientConfig": {"service": {"namespace": "system", "name": "checker", "path": "/check", "port": 443}},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
                       "resources": ["deployments"], "scope": "Namespaced"}],
            "failurePolicy": "Fail", "sideEffects": "None", "timeoutSeconds": 5,
            "admissionReviewVersions": ["v1"]
        }])
    );
    assert_valid(&w);
}

#[test]
fn protobuf_ingress_class_and_token_request_use_json_names() {
    // IngressClass {1 metadata, 2 spec {1 controller, 2 parameters {1 apiGroup (gogo: aPIGroup), 2 kind, 3 name, 4 scope, 5 namespace}}}
    let raw = Msg::new().msg(1, object_meta("nginx", "")).msg(
        2,
        Msg::new().str(1, "k8s.io/ingress-nginx").msg(
            2,
            Msg::new()
                .str(1, "k8s.example.com")
                .str(2, "IngressParameters")
                .str(3, "external-lb")
                .str(4, "Cluster"),
        ),
    );
    let i = decode("networking.k8s.io/v1", "IngressClass", raw);
    assert_eq!(
        i["spec"],
        json!({"controller": "k8s.io/ingress-nginx",
               "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb", "scope": "Cluster"}})
    );
    assert_valid(&i);
    // TokenRequest {1 metadata, 2 spec {1 audiences, 3 boundObjectRef {1 kind, 2 apiVersion, 3 name, 4 uid (gogo: uID)}, 4 expirationSeconds}}
    let raw = Msg::new().msg(1, object_meta("sa1", "default")).msg(
        2,
        Msg::new()
            .strs(1, &["https://kubernetes.default.svc"])
            .msg(
                3,
                Msg::new()
                    .str(1, "Pod")
                    .str(2, "v1")
                    .str(3, "web")
                    .str(4, "0b6c"),
            )
            .int(4, 600),
    );
    let t = decode("authentication.k8s.io/v1", "TokenRequest", raw);
    assert_eq!(
        t["spec"],
        json!({"audiences": ["https://kubernetes.default.svc"],
               "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "0b6c"},
               "expirationSeconds": 600})
    );
}

#[test]
fn protobuf_autoscaling_v2_metrics_and_behavior() {
    // HorizontalPodAutoscalerSpec {1 scaleTargetRef {1 kind, 2 name, 3 apiVersion}, 2 minReplicas, 3 maxReplicas,
    // 4 metrics {1 type, 4 resource {1 name, 2 target {1 type, 4 averageUtilization}}},
    // 5 behavior {2 scaleDown {2 policies {1 type, 2 value, 3 periodSeconds}, 3 stabilizationWindowSeconds}}}
    let spec = Msg::new()
        .msg(
            1,
            Msg::new()
                .str(1, "Deployment")
                .str(2, "web")
                .str(3, "apps/v1"),
        )
        .int(2, 2)
        .int(3, 10)
        .msg(
            4,
            Msg::new().str(1, "Resource").msg(
                4,
                Msg::new()
                    .str(1, "cpu")
                    .msg(2, Msg::new().str(1, "Utilization").int(4, 70)),
            ),
        )
        .msg(
            5,
            Msg::new().msg(
                2,
                Msg::new()
                    .msg(2, Msg::new().str(1, "Pods").int(2, 1).int(3, 60))
                    .int(3, 300),
            ),
        );
    let raw = Msg::new()
        .msg(1, object_meta("web", "default"))
        .msg(2, spec);
    let h = decode("autoscaling/v2", "HorizontalPodAutoscaler", raw);
    assert_eq!(
        h["spec"],
        json!({
            "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
            "minReplicas": 2, "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
            "behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}], "stabilizationWindowSeconds": 300}}
        })
    );
    assert_valid(&h);
}

#[test]
fn protobuf_endpoint_slice_keeps_false_conditions_and_controller_revision_raw_json() {
    // EndpointSlice {1 metadata, 2 endpoints {1 addresses, 2 conditions {1 ready, 2 serving, 3 terminating}},
    // 3 ports {1 name, 2 protocol, 3 port}, 4 addressType}
    let raw = Msg::new()
        .msg(1, object_meta("web-abc", "default"))
        .msg(
            2,
            Msg::new()
                .strs(1, &["10.0.0.5"])
                .msg(2, Msg::new().bool(1, false).bool(2, true)),
        )
        .msg(3, Msg::new().str(1, "http").str(2, "TCP").int(3, 8080))
        .str(4, "IPv4");
    let s = decode("discovery.k8s.io/v1", "EndpointSlice", raw);
    assert_eq!(
        s["endpoints"],
        json!([{"addresses": ["10.0.0.5"], "conditions": {"ready": false, "serving": true}}])
    );
    assert_eq!(
        s["ports"],
        json!([{"name": "http", "protocol": "TCP", "port": 8080}])
    );
    assert_valid(&s);
    // ControllerRevision {1 metadata, 2 data (RawExtension {1 raw}), 3 revision}
    let data = br#"{"spec":{"template":{"metadata":{"labels":{"app":"web"}}}}}"#;
    let raw = Msg::new()
        .msg(1, object_meta("web-1", "default"))
        .msg(2, Msg::new().bytes(1, data))
        .int(3, 2);
    let r = decode("apps/v1", "ControllerRevision", raw);
    assert_eq!(
        r["data"],
        json!({"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}})
    );
    assert_eq!(r["revision"], 2);
}

#[test]
fn protobuf_delete_options_in_every_group_version() {
    // DeleteOptions {1 gracePeriodSeconds, 2 preconditions {1 uid, 2 resourceVersion}, 4 propagationPolicy, 5 dryRun}
    let raw = || {
        Msg::new()
            .int(1, 0)
            .msg(2, Msg::new().str(2, "42"))
            .str(4, "Foreground")
            .strs(5, &["All"])
    };
    for api_version in [
        "batch/v1",
        "rbac.authorization.k8s.io/v1",
        "networking.k8s.io/v1",
        "scheduling.k8s.io/v1",
        "storage.k8s.io/v1",
        "autoscaling/v2",
        "admissionregistration.k8s.io/v1",
        "certificates.k8s.io/v1",
        "events.k8s.io/v1",
        "discovery.k8s.io/v1",
        "node.k8s.io/v1",
    ] {
        let o = decode(api_version, "DeleteOptions", raw());
        assert_eq!(
            o,
            json!({"apiVersion": api_version, "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                   "preconditions": {"resourceVersion": "42"}, "propagationPolicy": "Foreground", "dryRun": ["All"]}),
            "{api_version}"
        );
    }
    // a group korral does not serve has no DeleteOptions either
    let err = decode_request(&envelope(
        "flowcontrol.apiserver.k8s.io/v1",
        "DeleteOptions",
        raw(),
    ))
    .expect_err("unserved group");
    assert!(
        matches!(err, ProtobufError::UnsupportedKind { .. }),
        "{err}"
    );
}
