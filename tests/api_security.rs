//! Authentication, authorisation and bad input against a real server: every
//! refusal is a clean 4xx `Status` and changes nothing.

use crate::support;

use serde_json::{Value, json};
use std::time::Duration;

use support::{Server, stdout, wait_for};

fn status(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not a Status object ({e}): {body}"))
}

/// As kube-apiserver with its default `--anonymous-auth`: a request without
/// credentials is `system:anonymous`, which RBAC lets read only /version and
/// the health endpoints (403 with kube's texts elsewhere); a bad token is
/// 401; with `--anonymous-auth=false` no credentials is 401 too.
#[test]
fn anonymous_requests_reach_only_public_info_and_a_bad_token_is_401() {
    let s = Server::start();
    let get =
        |path: &str, token: Option<&str>| s.curl("GET", path, token, "application/json", None);
    let (code, body) = get("/api/v1/namespaces/default/pods", None);
    assert_eq!(code, 403, "{body}");
    assert_eq!(status(&body)["reason"], "Forbidden");
    assert_eq!(
        status(&body)["message"],
        "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    for path in ["/api", "/apis/apps/v1", "/openapi/v2"] {
        let (code, body) = get(path, None);
        assert_eq!(code, 403, "{path}: {body}");
        assert_eq!(
            status(&body)["message"],
            format!("forbidden: User \"system:anonymous\" cannot get path \"{path}\""),
        );
    }
    for path in ["/version", "/healthz", "/readyz", "/livez"] {
        let (code, body) = get(path, None);
        assert_eq!(code, 200, "{path}: {body}");
    }
    // a token-file viewer still reads discovery
    let viewer = s.token("viewer");
    assert_eq!(get("/api", Some(&viewer)).0, 200);
    let (code, body) = get("/api/v1/pods", Some("not-a-token"));
    assert_eq!(code, 401, "{body}");
    assert_eq!(status(&body)["reason"], "Unauthorized");

    let closed = Server::start_with(&["--anonymous-auth=false"]);
    let (code, body) = closed.curl(
        "GET",
        "/api/v1/namespaces/default/pods",
        None,
        "application/json",
        None,
    );
    assert_eq!(code, 401, "{body}");
    assert_eq!(status(&body)["reason"], "Unauthorized");
}

#[test]
fn roles_are_enforced_with_kubernetes_messages() {
    let s = Server::start();
    let viewer = s.token("viewer");
    let admin = s.token("admin");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}).to_string();

    // a viewer reads but does not write
    let (code, body) = s.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(&viewer),
        "application/json",
        Some(cm.as_bytes()),
    );
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        status(&body)["message"],
        "configmaps is forbidden: User \"viewer\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    let (code, _) = s.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps",
        Some(&viewer),
        "application/json",
        None,
    );
    assert_eq!(code, 200);

    // secrets are hidden from viewers
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}).to_string();
    let (code, body) = s.curl(
        "POST",
        "/api/v1/namespaces/default/secrets",
        Some(&admin),
        "application/json",
        Some(secret.as_bytes()),
    );
    assert_eq!(code, 201, "{body}");
    for path in [
        "/api/v1/namespaces/default/secrets/s",
        "/api/v1/namespaces/default/secrets",
        "/api/v1/secrets",
    ] {
        let (code, body) = s.curl("GET", path, Some(&viewer), "application/json", None);
        assert_eq!(code, 403, "{path}: {body}");
        assert!(!body.contains("aHVudGVyMg"), "secret data leaked: {body}");
    }

    // a node may only touch pods bound to it
    for (name, node) in [("on-a", "a"), ("on-b", "b")] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
        .to_string();
        let (code, body) = s.curl(
            "POST",
            "/api/v1/namespaces/default/pods",
            Some(&admin),
            "application/json",
            Some(pod.as_bytes()),
        );
        assert_eq!(code, 201, "{body}");
    }
    let node_a = s.token("node:a");
    let (code, body) = s.curl(
        "GET",
        "/api/v1/namespaces/default/pods/on-b",
        Some(&node_a),
        "application/json",
        None,
    );
    assert_eq!(code, 403, "{body}");
    let (_, on_b) = s.curl(
        "GET",
        "/api/v1/namespaces/default/pods/on-b",
        Some(&admin),
        "application/json",
        None,
    );
    let mut on_b: Value = serde_json::from_str(&on_b).expect("pod");
    on_b["status"]["phase"] = json!("Running");
    let (code, body) = s.curl(
        "PUT",
        "/api/v1/namespaces/default/pods/on-b/status",
        Some(&node_a),
        "application/json",
        Some(on_b.to_string().as_bytes()),
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        status(&body)["message"]
            .as_str()
            .is_some_and(|m| m.contains("system:node:a")),
        "{body}"
    );
    let (_, on_a) = s.curl(
        "GET",
        "/api/v1/namespaces/default/pods/on-a",
        Some(&node_a),
        "application/json",
        None,
    );
    let mut on_a: Value = serde_json::from_str(&on_a).expect("pod");
    on_a["status"]["phase"] = json!("Running");
    let (code, body) = s.curl(
        "PUT",
        "/api/v1/namespaces/default/pods/on-a/status",
        Some(&node_a),
        "application/json",
        Some(on_a.to_string().as_bytes()),
    );
    assert_eq!(code, 200, "{body}");
    let (code, _) = s.curl(
        "GET",
        "/api/v1/pods?fieldSelector=spec.nodeName%3Da",
        Some(&node_a),
        "application/json",
        None,
    );
    assert_eq!(code, 200);
    let (code, _) = s.curl(
        "GET",
        "/api/v1/pods",
        Some(&node_a),
        "application/json",
        None,
    );
    assert_eq!(code, 403, "a node may not list every pod");
}

#[test]
fn bad_bodies_get_clean_errors_and_change_nothing() {
    let s = Server::start();
    let admin = s.token("admin");
    let path = "/api/v1/namespaces/default/configmaps";

    // 10 MiB
    let big = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"a\":\"{}\"}}}}",
        "x".repeat(10 * 1024 * 1024)
    );
    let (code, body) = s.curl(
        "POST",
        path,
        Some(&admin),
        "application/json",
        Some(big.as_bytes()),
    );
    assert_eq!(code, 413, "{}", &body[..body.len().min(300)]);
    assert_eq!(status(&body)["reason"], "RequestEntityTooLarge");

    // malformed JSON
    let (code, body) = s.curl(
        "POST",
        path,
        Some(&admin),
        "application/json",
        Some(b"{\"apiVersion\": \"v1\", "),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(status(&body)["reason"], "BadRequest");

    // an unknown field under fieldValidation=Strict: kube's strict decoding error
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad", "labelz": {}}, "data": {"a": "1"}}).to_string();
    let (code, body) = s.curl(
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        Some(&admin),
        "application/json",
        Some(bad.as_bytes()),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        status(&body)["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"metadata.labelz\""
    );

    // a wrong type: 422 with the field path (the unknown field, without a
    // directive, is only warned about)
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad", "labelz": {}}, "data": {"a": 1}}).to_string();
    let (code, body) = s.curl(
        "POST",
        path,
        Some(&admin),
        "application/json",
        Some(bad.as_bytes()),
    );
    assert_eq!(code, 422, "{body}");
    let st = status(&body);
    assert_eq!(st["reason"], "Invalid");
    let fields: Vec<&str> = st["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(fields, ["data.a"]);

    // a stale resourceVersion is a conflict
    let good = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "good"}, "data": {"a": "1"}}).to_string();
    let (code, created) = s.curl(
        "POST",
        path,
        Some(&admin),
        "application/json",
        Some(good.as_bytes()),
    );
    assert_eq!(code, 201, "{created}");
    let mut obj: Value = serde_json::from_str(&created).expect("object");
    obj["data"]["a"] = json!("2");
    let (code, _) = s.curl(
        "PUT",
        &format!("{path}/good"),
        Some(&admin),
        "application/json",
        Some(obj.to_string().as_bytes()),
    );
    assert_eq!(code, 200);
    obj["data"]["a"] = json!("3");
    let (code, body) = s.curl(
        "PUT",
        &format!("{path}/good"),
        Some(&admin),
        "application/json",
        Some(obj.to_string().as_bytes()),
    );
    assert_eq!(code, 409, "{body}");
    assert_eq!(status(&body)["reason"], "Conflict");

    // a patch that would break the schema is refused and changes nothing
    let (code, body) = s.curl(
        "PATCH",
        &format!("{path}/good"),
        Some(&admin),
        "application/merge-patch+json",
        Some(br#"{"data":{"a":{"nested":true}}}"#),
    );
    assert_eq!(code, 422, "{body}");
    let (_, now) = s.curl(
        "GET",
        &format!("{path}/good"),
        Some(&admin),
        "application/json",
        None,
    );
    assert_eq!(
        serde_json::from_str::<Value>(&now).expect("object")["data"]["a"],
        "2"
    );

    // nothing else was created (kube-root-ca.crt is in every namespace)
    let (_, list) = s.curl("GET", path, Some(&admin), "application/json", None);
    let names: Vec<String> = serde_json::from_str::<Value>(&list).expect("list")["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, vec!["good"]);
}

/// Who a bearer token authenticates as (SelfSubjectReview), or the HTTP code.
fn whoami(s: &Server, token: &str) -> Result<String, u16> {
    let body = br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;
    let (code, reply) = s.curl(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(token),
        "application/json",
        Some(body),
    );
    if code != 201 {
        return Err(code);
    }
    let v: Value = serde_json::from_str(&reply).map_err(|_| code)?;
    Ok(v["status"]["userInfo"]["username"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[test]
fn a_legacy_token_secret_is_filled_and_lasts_as_long_as_its_account() {
    let s = Server::start();
    s.ok(&["create", "serviceaccount", "build"]);
    s.apply(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: build-token
  annotations:
    kubernetes.io/service-account.name: build
type: kubernetes.io/service-account-token
"#,
    );
    // the template's text, or "" while kubectl cannot execute it (no data yet)
    let field = |template: &str| {
        let o = s.kubectl(&[
            "get",
            "secret",
            "build-token",
            "-o",
            &format!("go-template={template}"),
        ]);
        if o.status.success() {
            stdout(&o)
        } else {
            String::new()
        }
    };
    wait_for(
        "the tokens controller to fill the Secret",
        Duration::from_secs(20),
        || !field("{{index .data \"token\" | base64decode}}").is_empty(),
    );
    let token = field("{{index .data \"token\" | base64decode}}");
    assert_eq!(
        field("{{index .data \"namespace\" | base64decode}}"),
        "default"
    );
    assert!(
        field("{{index .data \"ca.crt\" | base64decode}}")
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let sa_uid = s.ok(&["get", "sa", "build", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(
        field("{{index .metadata.annotations \"kubernetes.io/service-account.uid\"}}"),
        sa_uid
    );
    assert_eq!(
        whoami(&s, &token),
        Ok("system:serviceaccount:default:build".to_string())
    );
    // the account goes: its token Secret goes, and the token stops working
    s.ok(&["delete", "serviceaccount", "build"]);
    wait_for(
        "the token Secret to be deleted",
        Duration::from_secs(20),
        || {
            !s.kubectl(&["get", "secret", "build-token"])
                .status
                .success()
        },
    );
    assert_eq!(whoami(&s, &token), Err(401));
}
